"""The SDK's default values, each decided once: the client's, the watch's, the command line's.

Nothing here imports anything, so that the command line can show its defaults
(``--help``) without loading the HTTP stack.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WALKS",
    "DEFAULT_WATCH_INTERVAL",
    "DEFAULT_WATCH_LOOKBACK",
    "DEFAULT_WATCH_START",
    "FORMATS",
    "Format",
]

# -- a client (SendcloudClient, AccountPool) ----------------------------------------------

DEFAULT_BASE_URL: Final = "https://panel.sendcloud.sc/api/v3"
#: Seconds one attempt may take, from asking the pool for a connection to reading the
#: last byte of the response. A call makes at most ``1 + max_retries`` attempts.
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_MAX_RETRIES: Final = 3
#: 64 MiB of decompressed body: far above any real page (a page of 100 logs is tens of kB).
DEFAULT_MAX_RESPONSE_SIZE: Final = 64 * 1024 * 1024

# -- watching for new logs (logs.watch, LogWatcher, the Redis watch, ``logs watch``) ------

#: Where a watch without a saved state begins: only logs created from now on.
DEFAULT_WATCH_START: Final = "now"
#: Seconds between two polls of an account once its watch is caught up.
DEFAULT_WATCH_INTERVAL: Final = 60.0
#: Seconds behind the high-water mark every poll re-reads, unless told otherwise
#: (``_watch.DEFAULT_LOOKBACK``; see docs/watch.md for why this value).
DEFAULT_WATCH_LOOKBACK: Final = 30.0
#: Logs per request where a number must be chosen (a watch, the command line): the
#: largest page the API serves.
DEFAULT_PAGE_SIZE: Final = 100
#: Seconds a Redis watch lease outlives its worker's last renewal.
DEFAULT_WATCH_LEASE: Final = 30.0

# -- an export (export_logs, LogExport, ``logs export``) ------------------------------------

Format = Literal["jsonl", "csv"]
#: The formats of an export; the first is the default.
FORMATS: Final[tuple[Format, ...]] = ("jsonl", "csv")
#: Integrations walked at once by a per-integration export.
DEFAULT_WALKS: Final = 8
