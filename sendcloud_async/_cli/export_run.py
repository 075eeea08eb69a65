"""``logs export``'s run: one account into a file or to standard output, or ``--accounts``.

The options and their check are ``logs_export``'s, which imports this module only
when an export runs (``--help`` loads none of it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .._errors import ExportInputError, SendcloudError
from .._export import LogExport
from .clients import single_client
from .common import EXIT_FAILURE, EXIT_OK, UsageError
from .context import Context, open_job
from .credentials import Credentials, command_credentials
from .destination import make_directory, refuse_to_clobber
from .export_output import check_destinations
from .formats import STDOUT, stream_logs
from .many_accounts import export_accounts
from .output import failure, summary, summary_fields
from .per_integration import new_job, walks_note
from .signals import run as run_stoppable

__all__ = ["run"]


def run(args: argparse.Namespace, ctx: Context) -> int:
    """Export as the checked options say: everything is checked (and the output locked)
    before the event loop starts."""
    if args.accounts is not None and getattr(args, "redis", None) is not None:
        from .export_workers import export_with_workers  # one of many workers

        return export_with_workers(args, ctx)
    if args.accounts is not None:
        return export_accounts(args, ctx)
    credentials, base_url = command_credentials(ctx.env, fake=args.fake)
    if args.out == STDOUT:
        return run_stoppable(_export_to_stdout(args, ctx, credentials, base_url))
    if args.parts:
        return _export_parts(args, ctx, credentials, base_url)
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


def _export_parts(
    args: argparse.Namespace, ctx: Context, credentials: Credentials | None, base_url: str
) -> int:
    """One account into parts (a URL, or Parquet): its manifest checked, then the export."""
    job = open_job(new_job(args, args.out, base_url=base_url))
    try:
        run_stoppable(check_destinations([("", job)], resume=args.resume, restart=args.restart))
        return run_stoppable(_export_one(args, ctx, job, credentials, base_url))
    finally:
        job.close()


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
        except ExportInputError as exc:  # a parts manifest refused the resume: bad input
            raise UsageError(str(exc)) from None
        except (SendcloudError, OSError) as exc:
            saved = job.saved_records
            hint = f"; {saved:,} records are saved, --resume continues" if saved else ""
            ctx.error(failure(exc) + hint, path=job.destination, records_saved=saved)
            return EXIT_FAILURE
        finally:
            await job.aclose()
    if stats.already_complete:
        ctx.result(
            f"already complete: {job.destination} holds the whole export "
            f"(see {job.state_location})",
            event="summary",
            path=job.destination,
            already_complete=True,
        )
        return EXIT_OK
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
