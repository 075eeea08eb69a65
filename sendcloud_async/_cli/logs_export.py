"""``logs export``: exception logs to a file (exactly once, resumable) or to standard output.

Its options and their check; the export itself is ``export_run``, imported when it
runs, so that ``logs export --help`` loads no more than the options.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .._defaults import DEFAULT_WATCH_LEASE, EXPORT_FORMATS
from .command import Handlers
from .common import DEFAULT_CONCURRENCY, DEFAULT_PAGE_SIZE, UsageError
from .export_output import check_output, output_options, range_options
from .formats import STDOUT, format_for, implied_format
from .metrics import metrics_option
from .options import listing_options, positive, seconds
from .per_integration import check_per_integration, per_integration_options

if TYPE_CHECKING:
    from .context import Context

__all__ = ["LOGS_EXPORT"]


def _configure(export: argparse.ArgumentParser) -> None:
    output = export.add_argument_group("output")
    output.add_argument(
        "--out",
        metavar="FILE|URL",
        help="the output file (missing directories are created; .gz or .zst compresses it); "
        "- writes JSON Lines (or CSV) to standard output, without a checkpoint; a URL "
        "(s3://BUCKET/PREFIX, gs://, az://, file://) or --format parquet: a directory of "
        "parts, account=NAME/date=YYYY-MM-DD/part-..., with their manifest",
    )
    output.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default=None,
        help="jsonl, csv or parquet (default: from the file name's extension, else jsonl); "
        "parquet needs the [parquet] extra, a bucket the [storage] extra",
    )
    output_options(output)
    output.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint beside the output; options left out (format, page "
        "size, integration, --per-integration, --since, --until) are the checkpoint's. Parts "
        "continue from their manifest's checkpoint: give the options as before",
    )
    output.add_argument(
        "--restart",
        "--force",
        action="store_true",
        help="start over, replacing an unfinished export (refused without it)",
    )
    what = export.add_argument_group("what to export")
    listing_options(what)
    range_options(what)
    per_integration_options(what)
    # Left out, --page-size is the default, or with --resume the checkpoint's (see _check).
    export.set_defaults(page_size=None)
    many = export.add_argument_group("many accounts")
    many.add_argument(
        "--accounts",
        metavar="TOML",
        help="export every account of this file, each into DIR/NAME.jsonl (needs --out-dir)",
    )
    many.add_argument(
        "--out-dir",
        metavar="DIR|URL",
        help="the output directory with --accounts; parts (a URL, or --format parquet): "
        "an account=NAME folder per account",
    )
    many.add_argument(
        "--redis",
        metavar="URL",
        help="one of many workers (the [redis] extra): every worker runs the same command and "
        "each account is exported by one of them at a time, under a lease in this Redis",
    )
    many.add_argument(
        "--lease",
        type=seconds,
        metavar="S",
        help="with --redis: seconds an account stays with a worker that stopped renewing "
        f"({DEFAULT_WATCH_LEASE:g})",
    )
    many.add_argument(
        "--run",
        metavar="NAME",
        help="with --redis: the export run the workers share (default: named after the "
        "accounts and --out-dir; give the same NAME where workers see the directory "
        "under different paths)",
    )
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
    from .export_workers import check_workers
    from .resume import Query, choose  # here: --help does not load the export

    check_workers(args)  # --redis, --lease, --run
    if args.out is None and args.accounts is None:
        raise UsageError(
            "say where to export: --out FILE (- for standard output), "
            "or --accounts TOML --out-dir DIR"
        )
    check_output(args)  # --compression, --part-records, --since, --until; sets args.parts
    if args.out is not None and args.accounts is not None and not args.parts:
        raise UsageError(
            "--out and --accounts cannot be used together (use --out-dir; or --out URL, "
            "or --format parquet, for parts of every account in one place)"
        )
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
        since=args.since,
        until=args.until,
    )
    # Parts keep their checkpoint in their manifest: the job checks a resume against it.
    files = args.accounts is None and args.out != STDOUT and not args.parts
    out = Path(args.out) if files else None
    chosen = choose(args.query, out, resume=args.resume) if out is not None else None
    if chosen is not None:
        args.format, args.page_size = chosen.fmt, chosen.page_size
        args.integration, args.per_integration = chosen.integration_id, chosen.per_integration
        args.since, args.until = chosen.since, chosen.until
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
