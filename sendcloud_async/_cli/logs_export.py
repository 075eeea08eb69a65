"""``logs export``: exception logs to a file (exactly once, resumable) or to standard output.

Its options and their check; the export itself is ``export_run``, imported when it
runs, so that ``logs export --help`` loads no more than the options.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .._defaults import FORMATS
from .command import Handlers
from .common import DEFAULT_CONCURRENCY, DEFAULT_PAGE_SIZE, UsageError
from .formats import STDOUT, format_for, implied_format
from .metrics import metrics_option
from .options import listing_options, positive
from .per_integration import check_per_integration, per_integration_options

if TYPE_CHECKING:
    from .context import Context

__all__ = ["LOGS_EXPORT"]


def _configure(export: argparse.ArgumentParser) -> None:
    output = export.add_argument_group("output")
    output.add_argument(
        "--out",
        metavar="FILE",
        help="the output file (missing directories are created); - writes JSON Lines (or "
        "CSV) to standard output, without a checkpoint",
    )
    output.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="jsonl or csv (default: from the file name's extension, else jsonl)",
    )
    output.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint beside the output; options left out (format, page "
        "size, integration, --per-integration) are the checkpoint's",
    )
    output.add_argument(
        "--restart",
        "--force",
        action="store_true",
        help="start over, replacing an unfinished export (refused without it)",
    )
    what = export.add_argument_group("what to export")
    listing_options(what)
    per_integration_options(what)
    # Left out, --page-size is the default, or with --resume the checkpoint's (see _check).
    export.set_defaults(page_size=None)
    many = export.add_argument_group("many accounts")
    many.add_argument(
        "--accounts",
        metavar="TOML",
        help="export every account of this file, each into DIR/NAME.jsonl (needs --out-dir)",
    )
    many.add_argument("--out-dir", metavar="DIR", help="the output directory with --accounts")
    many.add_argument(
        "--concurrency",
        type=positive,
        default=None,
        metavar="N",
        help=f"accounts exported at once with --accounts ({DEFAULT_CONCURRENCY}); "
        "integrations walked at once with --per-integration",
    )
    metrics_option(export)


def _check(args: argparse.Namespace) -> None:
    from .resume import Query, choose  # here: --help does not load the export

    if args.out is None and args.accounts is None:
        raise UsageError(
            "say where to export: --out FILE (- for standard output), "
            "or --accounts TOML --out-dir DIR"
        )
    if args.out is not None and args.accounts is not None:
        raise UsageError("--out and --accounts cannot be used together (use --out-dir)")
    if args.resume and args.restart:
        raise UsageError("--resume and --restart cannot be used together")
    if args.out == STDOUT and args.resume:
        raise UsageError(
            "--resume needs an output file: standard output (--out -) has no checkpoint"
        )
    format_for(args.out, args.format)  # refuses a --format the file name contradicts
    # What the command line says of the query; with --resume the rest comes from the
    # checkpoint (for --accounts: each account's, when its job is made).
    args.query = Query(
        fmt=args.format,
        implied_fmt=implied_format(args.out),
        page_size=args.page_size,
        integration_id=args.integration,
        per_integration=args.per_integration,
    )
    out = None if args.accounts is not None or args.out == STDOUT else Path(args.out)
    chosen = choose(args.query, out, resume=args.resume) if out is not None else None
    if chosen is not None:
        args.format, args.page_size = chosen.fmt, chosen.page_size
        args.integration, args.per_integration = chosen.integration_id, chosen.per_integration
    else:
        args.format = format_for(args.out, args.format)
        if args.page_size is None:
            args.page_size = DEFAULT_PAGE_SIZE
    check_per_integration(args)
    if args.accounts is None:
        if args.out_dir is not None:
            raise UsageError("--out-dir goes with --accounts; for one account use --out FILE")
        if args.concurrency is not None:
            raise UsageError("--concurrency goes with --accounts")
    elif args.integration is not None:
        raise UsageError(
            "--integration cannot be used with --accounts; set integration = ID in the "
            "account's table"
        )
    if args.concurrency is None:
        args.concurrency = DEFAULT_CONCURRENCY


def _run(args: argparse.Namespace, ctx: Context) -> int:
    from .export_run import run

    return run(args, ctx)


LOGS_EXPORT = Handlers(
    configure=_configure,
    run=_run,
    check=_check,
)
