"""What every part of the command line shares: names, the usage error (exit statuses: ``exits``)."""

from __future__ import annotations

from typing import Final, Literal

from .._defaults import DEFAULT_PAGE_SIZE

# The exit statuses live in one table (``exits``); they are named here too for the commands.
from .exits import EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED, EXIT_USAGE

__all__ = [
    "DEFAULT_CONCURRENCY",
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_STATUS_INTERVAL",
    "EXIT_FAILURE",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_USAGE",
    "FAKE_INTEGRATIONS",
    "FAKE_LOGS_PER_INTEGRATION",
    "FAKE_SEED",
    "FAKE_SOURCE",
    "LOG_FORMATS",
    "PROG",
    "RESUME_HINT",
    "STATUS_REPEAT",
    "LogFormat",
    "UsageError",
    "one_line",
    "version_line",
]

PROG: Final = "sendcloud-async"


def version_line() -> str:
    """What ``--version`` prints."""
    from .._version import __version__

    return f"{PROG} {__version__}"


#: The data ``--fake`` (and ``demo``) serves: the same on every run, so ``--resume`` works
#: there too, and the commands the demo prints can be pasted.
FAKE_INTEGRATIONS: Final = 4
FAKE_LOGS_PER_INTEGRATION: Final = 7_500
FAKE_SEED: Final = 2024
#: What a checkpoint written against ``--fake`` names as its base URL.
FAKE_SOURCE: Final = f"fake:{FAKE_INTEGRATIONS}x{FAKE_LOGS_PER_INTEGRATION}:seed={FAKE_SEED}"

DEFAULT_CONCURRENCY: Final = 4

LogFormat = Literal["text", "json"]
#: The values of ``--log-format`` (what a line looks like: ``logline``); the first is the default.
LOG_FORMATS: Final[tuple[LogFormat, ...]] = ("text", "json")
#: ``--status-interval``: off a terminal, at most one status line this often (seconds).
DEFAULT_STATUS_INTERVAL: Final = 60.0
#: Off a terminal, an unchanged status is repeated this often (or every interval, if longer).
STATUS_REPEAT: Final = 600.0

RESUME_HINT: Final = "interrupted; run again with --resume to continue"

ENV_PUBLIC_KEY: Final = "SENDCLOUD_PUBLIC_KEY"
ENV_SECRET_KEY: Final = "SENDCLOUD_SECRET_KEY"
ENV_CLIENT_ID: Final = "SENDCLOUD_CLIENT_ID"
ENV_CLIENT_SECRET: Final = "SENDCLOUD_CLIENT_SECRET"
ENV_BASE_URL: Final = "SENDCLOUD_BASE_URL"
ENV_TOKEN_URL: Final = "SENDCLOUD_TOKEN_URL"


class UsageError(Exception):
    """Bad usage or input, found before any request: exit status 2."""


def one_line(text: object) -> str:
    """``text`` with every run of whitespace (newlines included) as one space."""
    return " ".join(str(text).split())


def extension(fmt: str) -> str:
    """The file name extension of an export format."""
    return "csv" if fmt == "csv" else "jsonl"
