"""The SDK's default values, each decided once: the client's, the watch's, the command line's.

Nothing here imports anything, so that the command line can show its defaults
(``--help``) without loading the HTTP stack.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_EXPORT_ROLL_SECONDS",
    "DEFAULT_MAX_RESPONSE_SIZE",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_TIMEOUT",
    "DEFAULT_WALKS",
    "DEFAULT_WATCH_INTERVAL",
    "DEFAULT_WATCH_LOOKBACK",
    "DEFAULT_WATCH_START",
    "EXPORT_COMPRESSIONS",
    "EXPORT_FORMATS",
    "FORMATS",
    "Format",
    "compression_suffix",
    "output_compression",
    "split_compression",
    "writes_parts",
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
#: (``_sources._watch_state.DEFAULT_LOOKBACK``; see docs/watch.md for why this value).
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
#: Seconds a parts export buffers its commits at most before it publishes them (the
#: work a kill can lose, which a resume fetches again).
DEFAULT_EXPORT_ROLL_SECONDS: Final = 60.0
#: What ``logs export --format`` takes: the file formats, and Parquet (always as parts).
EXPORT_FORMATS: Final = (*FORMATS, "parquet")
#: What ``logs export --compression`` takes: the file formats' (none, gzip, zstd) and the
#: codecs of Parquet parts (zstd, snappy, gzip, none).
EXPORT_COMPRESSIONS: Final = ("none", "gzip", "zstd", "snappy")
#: The file name suffix of each compression of a JSON Lines or CSV output.
_COMPRESSION_SUFFIXES: Final = {".gz": "gzip", ".zst": "zstd"}


def split_compression(name: str) -> tuple[str, str | None]:
    """``name`` without a compression suffix, and the compression it names (``None``: none).

    The one rule for compressed file names: ``logs.jsonl.gz`` is gzip, ``logs.csv.zst``
    zstd (``.gz`` and ``.zst`` in any case).
    """
    for suffix, compression in _COMPRESSION_SUFFIXES.items():
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)], compression
    return name, None


def writes_parts(out: str | None, fmt: str | None) -> bool:
    """Whether an export to ``out`` in ``fmt`` is a directory of parts, not one file.

    The one rule for it: a URL (``scheme://``: ``s3://``, ``gs://``, ``az://``,
    ``file://``; the parts store refuses the schemes it does not know), or the
    ``parquet`` format anywhere.
    """
    scheme, sep, _rest = (out or "").partition("://")
    return fmt == "parquet" or (bool(sep) and len(scheme) > 1)


def output_compression(name: str, fmt: str, given: str | None, *, parts: bool) -> str | None:
    """The compression of an export's output named ``name``; ``ValueError`` if it cannot be.

    The one rule for it. A file: ``given`` or what its name says (``.gz``, ``.zst``),
    the two agreeing; ``none``, ``gzip`` or ``zstd``. Parts (``writes_parts``):
    ``given`` (``None``: the format's default; the parts check it), and a name that
    says "compressed file" is refused, since parts are compressed one by one.
    """
    stem, implied = split_compression(name)
    if parts:
        if implied is not None:
            raise ValueError(
                f"{name} is the name of a compressed file, but a {fmt} export there is a "
                f"directory of parts: drop {name[len(stem) :]} from the name (parts are "
                "compressed one by one, as the compression option says)"
            )
        return given
    if given is not None and given not in ("none", *_COMPRESSION_SUFFIXES.values()):
        raise ValueError(f"a {fmt} file is compressed with gzip or zstd, not {given}")
    if given is not None and given != (implied or "none"):
        wanted = stem + compression_suffix(given)
        raise ValueError(
            f"compression {given} contradicts the file name {name} "
            f"({implied or 'not compressed'}); name the file {wanted}, or drop the compression"
        )
    return given or implied or "none"


def compression_suffix(compression: str | None) -> str:
    """The file name suffix of ``compression`` (``""`` for none)."""
    for suffix, named in _COMPRESSION_SUFFIXES.items():
        if named == compression:
            return suffix
    return ""
