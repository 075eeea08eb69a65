"""``logs export``: exception logs to a file (exactly once, resumable) or to standard output."""

from __future__ import annotations

import argparse
from pathlib import Path

from .._errors import SendcloudError
from .._export import FORMATS, ExportInputError, LogExport
from .clients import single_client
from .command import Command
from .common import (
    DEFAULT_CONCURRENCY,
    DEFAULT_PAGE_SIZE,
    EXIT_FAILURE,
    EXIT_OK,
    PROG,
    RESUME_HINT,
    UsageError,
)
from .context import Context, open_job
from .credentials import Credentials, command_credentials
from .destination import make_directory, refuse_to_clobber
from .formats import STDOUT, format_for, implied_format, stream_logs
from .many_accounts import export_accounts
from .options import listing_options, positive
from .output import failure, summary, summary_fields
from .per_integration import check_per_integration, new_job, per_integration_options, walks_note
from .resume import Query, choose
from .signals import run as run_stoppable

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


def _check(args: argparse.Namespace) -> None:
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
    """Everything is checked (and the output locked) before the event loop starts."""
    if args.accounts is not None:
        return export_accounts(args, ctx)
    credentials, base_url = command_credentials(ctx.env, fake=args.fake)
    if args.out == STDOUT:
        return run_stoppable(_export_to_stdout(args, ctx, credentials, base_url))
    out = Path(args.out)
    if not args.resume and not args.restart:
        refuse_to_clobber(out)
    make_directory(out.parent, what=str(out))
    try:
        job = new_job(args, out, base_url=base_url)
    except ExportInputError as exc:
        raise UsageError(str(exc)) from None
    with open_job(job):
        if job.already_complete:
            ctx.result(
                f"already complete: {job.path} holds the whole export (see {job.checkpoint_path})",
                event="summary",
                path=str(job.path),
                already_complete=True,
            )
            return EXIT_OK
        return run_stoppable(_export_one(args, ctx, job, credentials, base_url))


async def _export_one(
    args: argparse.Namespace,
    ctx: Context,
    job: LogExport,
    credentials: Credentials | None,
    base_url: str,
) -> int:
    async with single_client(args, credentials, base_url) as client, ctx.live():
        try:
            stats = await job.run(client, progress=ctx.progress.for_export())
        except (SendcloudError, OSError) as exc:
            saved = job.saved_records
            hint = f"; {saved:,} records are saved, --resume continues" if saved else ""
            ctx.error(failure(exc) + hint, path=str(job.path), records_saved=saved)
            return EXIT_FAILURE
    ctx.result(summary(stats) + walks_note(stats), event="summary", **summary_fields(stats))
    return EXIT_OK


async def _export_to_stdout(
    args: argparse.Namespace, ctx: Context, credentials: Credentials | None, base_url: str
) -> int:
    async with single_client(args, credentials, base_url) as client, ctx.live():
        try:
            stats = await stream_logs(
                client,
                ctx.stdout,
                fmt=args.format,
                integration_id=args.integration,
                page_size=args.page_size,
                progress=ctx.progress,
            )
        except SendcloudError as exc:
            ctx.error(failure(exc))
            return EXIT_FAILURE
    ctx.progress.finish()
    if not ctx.quiet:  # standard output holds the data: the summary goes to stderr
        ctx.progress.message(
            f"exported {stats.records:,} records in {stats.pages:,} pages "
            f"({stats.rate:,.0f} rec/s, {stats.elapsed:.2f} s) to standard output",
            event="summary",
            records=stats.records,
            pages=stats.pages,
            elapsed=round(stats.elapsed, 3),
        )
    return EXIT_OK


LOGS_EXPORT = Command(
    words=("logs", "export"),
    help="export exception logs to a file, exactly once, resumable",
    description="Export exception logs to JSON Lines or CSV. After every page the file is "
    "fsync-ed and a checkpoint beside it (FILE.checkpoint.json) is replaced atomically; "
    "--resume continues after the last complete page, so every log is written exactly once "
    "even if the run was killed. Ctrl-C or SIGTERM lets the page in hand finish and saves "
    "the checkpoint.",
    configure=_configure,
    run=_run,
    check=_check,
    examples=(
        f"{PROG} logs export --out logs.jsonl",
        f"{PROG} logs export --out logs.csv --integration 1234",
        f"{PROG} logs export --out logs.jsonl --resume      # after a kill or Ctrl-C",
        f"{PROG} logs export --out - | jq .exception_type    # JSON Lines to stdout",
        f"{PROG} logs export --accounts accounts.toml --out-dir exports/",
        f"{PROG} logs export --out logs.jsonl --per-integration   # integrations side by side",
        f"{PROG} logs export --fake --out demo.jsonl         # no credentials needed",
    ),
    interrupt_hint=RESUME_HINT,
)
