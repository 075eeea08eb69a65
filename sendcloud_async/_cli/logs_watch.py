"""``logs watch``: its options and their check. The watch itself is ``watch`` (into files)
and ``redis_watch`` (many workers through Redis), imported when it runs, so that
``logs watch --help`` loads no more than the options.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import TYPE_CHECKING, Final

from .._defaults import (
    DEFAULT_WATCH_INTERVAL,
    DEFAULT_WATCH_LEASE,
    DEFAULT_WATCH_LOOKBACK,
    DEFAULT_WATCH_START,
    EXPORT_COMPRESSIONS,
    EXPORT_FORMATS,
    split_compression,
    writes_parts,
)
from .command import Handlers
from .common import UsageError
from .formats import format_for
from .metrics import metrics_option
from .options import listing_options, lookback_seconds, positive, seconds

if TYPE_CHECKING:
    from .context import Context

__all__ = [
    "DEFAULT_ROLL_SECONDS",
    "DEFAULT_WATCH_CONCURRENCY",
    "LOGS_WATCH",
    "PARTS_OPTIONS",
]

DEFAULT_WATCH_CONCURRENCY: Final = 10
#: ``--roll-seconds``: a part is published at most this long after its first log.
DEFAULT_ROLL_SECONDS: Final = 300.0
#: The options of a watch into parts (``writes_parts``), as ``(dest, flag)``.
PARTS_OPTIONS: Final = (
    ("compression", "--compression"),
    ("roll_records", "--roll-records"),
    ("roll_seconds", "--roll-seconds"),
)


def _start(text: str) -> str | datetime:
    if text in ("now", "all"):
        return text
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not now, all or an ISO 8601 date-time: {text!r}"
        ) from None
    from .._errors import InvalidInputError  # here: --help does not load the watch
    from .._sources._watch_state import check_start

    try:
        check_start(value)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(f"{exc}: {text!r}") from None
    return value


def _configure(watch: argparse.ArgumentParser) -> None:
    output = watch.add_argument_group("output")
    output.add_argument(
        "--out",
        metavar="FILE|URL",
        help="append new logs to FILE; a URL (s3://, gs://, az://, file://) or --format "
        "parquet writes parts into that folder instead",
    )
    output.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default=None,
        help="jsonl, csv or parquet (default: from the file name's extension, else jsonl)",
    )
    _parts_options(output)
    output.add_argument(
        "--events", metavar="FILE", help="also append integration health events as JSON lines"
    )
    what = watch.add_argument_group("what to watch")
    what.add_argument(
        "--start",
        type=_start,
        default=DEFAULT_WATCH_START,
        metavar="now|all|ISO-8601",
        help="without a saved state: logs created after now (default), all of them, or after "
        "an aware date-time",
    )
    what.add_argument(
        "--interval",
        type=seconds,
        default=DEFAULT_WATCH_INTERVAL,
        metavar="S",
        help="seconds between polls of an account (60)",
    )
    what.add_argument(
        "--lookback",
        type=lookback_seconds,
        default=DEFAULT_WATCH_LOOKBACK,
        metavar="S",
        help="every poll also re-reads S seconds behind the newest log delivered, so that "
        f"a log that becomes visible late is still written once "
        f"({DEFAULT_WATCH_LOOKBACK:g}; 0: no window)",
    )
    what.add_argument("--once", action="store_true", help="poll once, append, exit (for cron)")
    listing_options(what)
    many = watch.add_argument_group("many accounts")
    many.add_argument(
        "--accounts", metavar="TOML", help="watch every account of this file (needs --out-dir)"
    )
    many.add_argument(
        "--out-dir",
        metavar="DIR|URL",
        help="DIR/NAME.jsonl per account; parts: an account=NAME folder per account",
    )
    many.add_argument(
        "--concurrency",
        type=positive,
        default=None,
        metavar="N",
        help=f"accounts polled at once with --accounts ({DEFAULT_WATCH_CONCURRENCY})",
    )
    _redis_options(watch)
    metrics_option(watch)


def _parts_options(output: argparse._ArgumentGroup) -> None:
    """``--compression``, ``--roll-records``, ``--roll-seconds``: a watch into parts."""
    output.add_argument(
        "--compression",
        choices=EXPORT_COMPRESSIONS,
        help="of the parts: parquet zstd (default), snappy, gzip or none; jsonl and csv none "
        "(default), gzip or zstd",
    )
    output.add_argument(
        "--roll-records",
        type=positive,
        default=None,
        metavar="N",
        help="publish a part once it holds N logs (1,000,000, as an export's parts)",
    )
    output.add_argument(
        "--roll-seconds",
        type=seconds,
        default=None,
        metavar="S",
        help="publish a part at most S seconds after its first log: the manifest (and so "
        f"a resume) moves on only with published parts ({DEFAULT_ROLL_SECONDS:g})",
    )


def _check_parts(args: argparse.Namespace) -> None:
    """The parts options go with parts only (``writes_parts``, checked after the format)."""
    out = args.out if args.accounts is None else args.out_dir
    if args.redis is None and writes_parts(out, args.format):
        if args.roll_seconds is None:
            args.roll_seconds = DEFAULT_ROLL_SECONDS
        return
    for dest, flag in PARTS_OPTIONS:
        if getattr(args, dest) is not None:
            where = "--redis" if args.redis is not None else "a file"
            raise UsageError(
                f"{flag} goes with parts (--out or --out-dir a URL, or --format parquet), "
                f"not with {where}"
            )
    if args.redis is None and args.out is not None:
        stem, compression = split_compression(args.out)
        if compression is not None:
            raise UsageError(
                f"the watch appends to {args.out}, which cannot be a compressed file: drop "
                f"{args.out[len(stem) :]}, or write compressed parts (--out URL or --format "
                f"parquet, with --compression {compression})"
            )


def _check(args: argparse.Namespace) -> None:
    from .redis_watch import check_redis  # here: --help does not load the Redis watch

    if check_redis(args):
        _check_parts(args)
        return
    if (args.out is None) == (args.accounts is None):
        raise UsageError("say where to write: --out FILE, or --accounts TOML --out-dir DIR")
    if args.out == "-":
        raise UsageError("--out needs a file: the watch state is kept beside it")
    if args.accounts is None:
        if args.out_dir is not None:
            raise UsageError("--out-dir goes with --accounts; for one account use --out FILE")
        if args.concurrency is not None:
            raise UsageError("--concurrency goes with --accounts")
    else:
        if args.out_dir is None:
            raise UsageError("--accounts needs --out-dir DIR (each account gets DIR/NAME.jsonl)")
        if args.integration is not None:
            raise UsageError(
                "--integration cannot be used with --accounts; set integration = ID in the "
                "account's table"
            )
    args.format = format_for(args.out, args.format)
    _check_parts(args)
    if args.concurrency is None:
        args.concurrency = DEFAULT_WATCH_CONCURRENCY


def _redis_options(parser: argparse.ArgumentParser) -> None:
    """``--redis URL [--stream PREFIX] [--lease S]`` in their own group (``redis_watch``)."""
    group = parser.add_argument_group("many workers (the [redis] extra)")
    group.add_argument(
        "--redis",
        metavar="URL",
        help="share the accounts of --accounts with every worker using this Redis; new logs "
        "go to the stream PREFIX:NAME of each account (instead of --out-dir)",
    )
    group.add_argument(
        "--stream",
        metavar="PREFIX",
        help="the streams' name prefix with --redis (sendcloud-async:logs)",
    )
    group.add_argument(
        "--lease",
        type=seconds,
        metavar="S",
        help="seconds an account stays with a worker that stopped renewing "
        f"({DEFAULT_WATCH_LEASE:g})",
    )


def _run(args: argparse.Namespace, ctx: Context) -> int:
    from .watch import run

    return run(args, ctx)


LOGS_WATCH = Handlers(
    configure=_configure,
    run=_run,
    check=_check,
)
