"""Option types (text to a checked value, through the SDK's validators) and shared options.

Nothing of the SDK is imported until a value is checked: building the parser (for
``--help``) loads neither the validators nor what they import.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Final, TypeVar

from .common import DEFAULT_PAGE_SIZE, DEFAULT_STATUS_INTERVAL, LOG_FORMATS, STATUS_REPEAT

__all__ = [
    "count",
    "general_options",
    "listing_options",
    "lookback_seconds",
    "network_options",
    "page_size",
    "positive",
    "seconds",
]

_T = TypeVar("_T")


def _typed(
    convert: Callable[[str], _T], kind: str, validate: Callable[[_T], object]
) -> Callable[[str], _T]:
    def parse(text: str) -> _T:
        from .._errors import InvalidInputError  # here: --help does not load the SDK

        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {kind}: {text!r}") from None
        try:
            validate(value)
        except InvalidInputError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parse.__name__ = kind  # argparse names the type in some messages
    return parse


def _positive(value: int) -> None:
    from .._validate import positive_int

    positive_int(value, "the value")


def _non_negative(value: int) -> None:
    from .._validate import non_negative_int

    non_negative_int(value, "the value")


def _positive_seconds(value: float) -> None:
    from .._validate import positive_seconds

    positive_seconds(value, "the value")


def _lookback(value: float) -> None:
    from .._sources._watch_state import check_lookback

    check_lookback(value)


def _page_size(value: int) -> None:
    from .._validate import page_size

    page_size(value)


#: An int of 1 or more (ids, counts).
positive: Final = _typed(int, "an integer", _positive)
#: An int of 0 or more (retries).
count: Final = _typed(int, "an integer", _non_negative)
#: A finite number of seconds above 0.
seconds: Final = _typed(float, "a number", _positive_seconds)
#: Seconds of 0 or more: how far behind its mark a watch re-reads.
lookback_seconds: Final = _typed(float, "a number", _lookback)
#: Logs per request: 1..100.
page_size: Final = _typed(int, "an integer", _page_size)


def _default(value: object, top: bool) -> object:
    # After the command, an option left out must not undo one given before the command.
    return value if top else argparse.SUPPRESS


def general_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """``-q``, ``-v``, ``--log-format`` and ``--status-interval``: accepted before the command
    (``top``) and after it."""
    group = parser.add_argument_group("general options")
    group.add_argument(
        "--quiet",
        "-q",
        action="store_true",
        default=_default(False, top),
        help="no progress, no summary, no warnings (errors are still printed)",
    )
    group.add_argument(
        "--verbose",
        "-v",
        action="store_true",
        default=_default(False, top),
        help="also print the SDK's log of every request on stderr (never a header or secret)",
    )
    group.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=_default(LOG_FORMATS[0], top),
        help="what stderr holds: text (on a terminal a live status line; elsewhere log lines "
        "'2026-12-06T16:40:01Z INFO message', UTC) or json (one JSON object per line: ts, "
        "level, event, message and the event's fields; the SDK's log too). With json the "
        "summary on stdout is a JSON line too",
    )
    group.add_argument(
        "--status-interval",
        type=seconds,
        default=_default(DEFAULT_STATUS_INTERVAL, top),
        metavar="S",
        help="off a terminal (or with --log-format json): a status line when the status "
        f"changed, at most every S seconds ({DEFAULT_STATUS_INTERVAL:g}); unchanged, every "
        f"{STATUS_REPEAT / 60:g} minutes (or every S, if longer)",
    )


def network_options(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    """The connection options every network command shares (also before the command)."""
    group = parser.add_argument_group("connection options")
    group.add_argument(
        "--fake",
        action="store_true",
        default=_default(False, top),
        help="use an embedded FakeSendcloud (the same seeded data every run) instead of Sendcloud",
    )
    group.add_argument(
        "--timeout",
        type=seconds,
        default=_default(30.0, top),
        metavar="S",
        help="seconds one attempt of a request may take (30)",
    )
    group.add_argument(
        "--max-retries",
        type=count,
        default=_default(3, top),
        metavar="N",
        help="retries of a failed request (3; 0 disables)",
    )
    group.add_argument(
        "--no-rate-limit",
        action="store_true",
        default=_default(False, top),
        help="do not hold requests to Sendcloud's per-account limits (1,000 GET and 100 "
        "unsafe requests a minute, 15 unsafe at once); a 429 is then only retried",
    )


def listing_options(group: argparse._ArgumentGroup) -> None:
    """``--integration ID`` and ``--page-size N``, as every logs command takes them."""
    group.add_argument(
        "--integration", type=positive, metavar="ID", help="only this integration's logs"
    )
    group.add_argument(
        "--page-size",
        type=page_size,
        default=DEFAULT_PAGE_SIZE,
        metavar="N",
        help=f"logs per request, 1..100 ({DEFAULT_PAGE_SIZE})",
    )
