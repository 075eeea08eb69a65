"""``logs tail --redis URL``: the Redis watch's account streams as JSON Lines, at least once.

``logs watch --redis`` appends each new log of an account to the stream
``PREFIX:NAME`` (its JSON in the field ``log``), exactly once. This command reads
every such stream as one consumer of a consumer group (``_redis._tail.StreamTail``)
and writes one line per entry to stdout or ``--out FILE``::

    {"account": "shop-1", "entry": "1733059200123-0", "log": {...the IntegrationLog...}}

``entry`` is the stream entry ID: with ``account`` it names the entry uniquely,
in the order of its stream. A batch is written, flushed and fsync-ed (for a file,
or stdout redirected to one) before it is acknowledged (``XACK``), so nothing
acknowledged is ever missing from the output. What was written but not yet
acknowledged when the tail was killed is pending in Redis and written again by
the next run (of the same ``--consumer`` at once, of another after
``--claim-idle``): the output is at least once; deduplicate on ``(account,
entry)`` (or the log's ``id``) where it matters. An unfinished last line left by
a kill is cut off when the file is opened again.

Ctrl-C and SIGTERM stop it after the batch in hand is written and acknowledged;
exit 0 (``--once``: drain what is there and exit).

Here: its options and their check. The run is ``tail_loop`` and the output
``tail_output``, imported when it runs, so that ``logs tail --help`` loads no
more than the options.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING, Final

from .command import Handlers
from .common import UsageError
from .options import seconds

if TYPE_CHECKING:
    from .context import Context

__all__ = ["LOGS_TAIL"]

DEFAULT_GROUP: Final = "sendcloud-async-tail"
DEFAULT_CLAIM_IDLE: Final = 60.0
DEFAULT_SCAN_INTERVAL: Final = 5.0
_NAME: Final = re.compile(r"[A-Za-z0-9._:-]{1,100}")


def _name(text: str) -> str:
    if not _NAME.fullmatch(text):
        raise argparse.ArgumentTypeError(
            f"must be 1 to 100 letters, digits, '.', '_', ':' or '-': {text!r}"
        )
    return text


def _configure(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("what to read")
    source.add_argument(
        "--redis", metavar="URL", required=True, help="the Redis the watch workers write to"
    )
    source.add_argument(
        "--stream",
        metavar="PREFIX",
        help="the streams' name prefix, as given to logs watch (sendcloud-async:logs)",
    )
    source.add_argument(
        "--group",
        type=_name,
        default=DEFAULT_GROUP,
        metavar="NAME",
        help=f"the consumer group: tails of one group share the work ({DEFAULT_GROUP})",
    )
    source.add_argument(
        "--consumer",
        type=_name,
        default=None,
        metavar="NAME",
        help="this tail's name in the group (this host's name); give each tail its own",
    )
    source.add_argument(
        "--start",
        choices=("all", "now"),
        default="all",
        help="where a group this tail creates starts: every entry (all, default) or the "
        "entries written from now on (now)",
    )
    source.add_argument(
        "--claim-idle",
        type=seconds,
        default=DEFAULT_CLAIM_IDLE,
        metavar="S",
        help="take over entries another consumer read but did not acknowledge for S seconds "
        f"(a tail that died) ({DEFAULT_CLAIM_IDLE:g})",
    )
    source.add_argument(
        "--scan-interval",
        type=seconds,
        default=DEFAULT_SCAN_INTERVAL,
        metavar="S",
        help=f"look for new account streams every S seconds ({DEFAULT_SCAN_INTERVAL:g})",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out",
        metavar="FILE",
        default="-",
        help="append the JSON Lines to FILE (default: standard output)",
    )
    output.add_argument(
        "--once",
        action="store_true",
        help="write what is there (pending entries included) and exit",
    )


def _check(args: argparse.Namespace) -> None:
    from .redis_watch import check_redis_url  # here: --help does not load the Redis watch

    check_redis_url(args.redis)
    if args.out != "-" and Path(args.out).is_dir():
        raise UsageError(f"--out {args.out} is a directory; name a file")


def _run(args: argparse.Namespace, ctx: Context) -> int:
    from .tail_loop import run

    return run(args, ctx)


LOGS_TAIL = Handlers(
    configure=_configure,
    run=_run,
    check=_check,
)
