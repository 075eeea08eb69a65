"""``logs report``: what is failing, from an export file or from the account.

A table in the terminal (``report_table``), ``--json`` for machines, ``--html FILE``
for one self-contained page (``sendcloud_async._report``). The report is computed in
one pass over the logs, in memory bounded whatever their number. Every problem with
the input (a missing file, an unknown format, a malformed line, a CSV without the
export's columns) is one line and exit status 2; a refusal of Sendcloud is 1.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .._report._readers import READERS, STDIN
from .command import Handlers
from .common import DEFAULT_PAGE_SIZE, EXIT_FAILURE, EXIT_OK, UsageError
from .context import Context
from .destination import make_directory
from .options import listing_options, positive
from .signals import run as run_stoppable

if TYPE_CHECKING:
    from .._report import Report

# The report's engine, the client and the outputs are imported when the command runs:
# `--help` and every other command do not pay for them.

__all__ = ["FAKE_REPORT_SOURCE", "LOGS_REPORT", "write_page"]

#: What a report read through ``--fake`` names as its source.
FAKE_REPORT_SOURCE = "the embedded FakeSendcloud (--fake)"


def _configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "source",
        nargs="?",
        metavar="FILE_OR_URL",
        help="an export of logs export: a JSON Lines or CSV file, a file:// URL, or - for "
        "standard input; left out, the account's logs are read through the API (the "
        "embedded fake's with --fake)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--html",
        metavar="FILE",
        help="also write the report as one self-contained HTML page (charts included; it "
        "fetches nothing, opens offline and prints on A4)",
    )
    output.add_argument(
        "--json", action="store_true", help="print the report as JSON instead of the table"
    )
    output.add_argument(
        "--top",
        type=positive,
        default=10,
        metavar="N",
        help="entries of each top list in --json and --html (10)",
    )
    what = parser.add_argument_group("what to report on")
    what.add_argument(
        "--format",
        choices=tuple(READERS),
        default=None,
        help="the export's format (default: from the file name's extension, else from its "
        "first bytes)",
    )
    listing_options(what)
    parser.set_defaults(page_size=None)  # left out: the listing's default (only for the account)


def _check(args: argparse.Namespace) -> None:
    if args.source is not None:
        if args.fake:
            raise UsageError(
                "--fake reads the embedded fake's account: give FILE_OR_URL or --fake, not both"
            )
        if args.page_size is not None:
            raise UsageError("--page-size is for reading the account; a file has no pages")
    else:
        if args.format is not None:
            raise UsageError("--format is the format of FILE_OR_URL: give the file too")
        if args.page_size is None:
            args.page_size = DEFAULT_PAGE_SIZE
    if args.html is not None:
        if args.html in ("", STDIN):
            raise UsageError("--html needs a file name (the page is written to it)")
        page = Path(args.html)
        problem = _page_problem(page)
        if problem is not None:
            raise UsageError(f"cannot write {page}: {problem}")
        if args.source not in (None, STDIN) and _same_file(args.source, page):
            raise UsageError(f"--html {page} is the export being read: choose another file")


def _page_problem(page: Path) -> str | None:
    """Why the page cannot be written at ``page`` (``None``: it can). It replaces what is
    there by a rename, so only a regular file (or nothing) may be there."""
    try:
        mode = page.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISDIR(mode):
        return "it is a directory"
    if not stat.S_ISREG(mode):
        return "it is not a regular file (the page replaces the file there)"
    return None


def _same_file(source: str, page: Path) -> bool:
    try:
        return Path(source).resolve() == page.resolve()
    except (OSError, RuntimeError):
        return False


def write_page(report: Report, path: Path) -> int:
    """Write the HTML page of ``report`` to ``path`` atomically (a temporary file beside it,
    then renamed): a reader never sees half a page. Returns its size in bytes."""
    from .._fileio import writing
    from .._report import render_html

    data = render_html(report).encode()
    make_directory(path.parent, what=str(path))
    with writing(path, "writing the report"):
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                stream.write(data)
            os.chmod(temporary, 0o644)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return len(data)


def _status(logs: int, began: float, extra: str = "") -> str:
    elapsed = time.monotonic() - began
    rate = logs / elapsed if elapsed > 0 else 0.0
    return f"read {logs:,} logs{extra} ({rate:,.0f} logs/s, {elapsed:.1f} s)"


def _from_file(args: argparse.Namespace, ctx: Context) -> Report:
    from .._report import ReportInputError, Source, read_export

    began = time.monotonic()

    def progress(source: Source, logs: int) -> None:
        extra = ""
        if source.size:
            extra = f", {min(source.bytes_read / source.size, 1.0):.0%} of {source.name}"
        ctx.progress.show(_status(logs, began, extra), fields={"logs": logs})

    try:
        return read_export(
            args.source,
            fmt=args.format,
            integration_id=args.integration,
            top=args.top,
            stdin=sys.stdin.buffer if args.source == STDIN else None,
            progress=progress,
        )
    except ReportInputError as exc:
        raise UsageError(str(exc)) from None


async def _from_account(args: argparse.Namespace, ctx: Context) -> Report | None:
    from yarl import URL

    from .._errors import InvalidInputError, SendcloudError
    from .._report import read_account
    from .._request import display_url
    from .clients import single_client
    from .credentials import command_credentials
    from .output import failure

    credentials, base_url = command_credentials(ctx.env, fake=args.fake)
    # The address as errors show it: never with user info (the report may be shared).
    source = FAKE_REPORT_SOURCE if args.fake else f"the account at {display_url(URL(base_url))}"
    began = time.monotonic()

    def progress(logs: int, pages: int) -> None:
        ctx.progress.show(
            _status(logs, began, f" in {pages:,} pages"), fields={"logs": logs, "pages": pages}
        )

    async with single_client(args, credentials, base_url) as client, ctx.live():
        ctx.progress.show(_status(0, began))
        try:
            return await read_account(
                client,
                source=source,
                integration_id=args.integration,
                page_size=args.page_size,
                top=args.top,
                progress=progress,
            )
        except InvalidInputError as exc:
            raise UsageError(str(exc)) from None
        except SendcloudError as exc:
            ctx.error(failure(exc))
            return None


def _run(args: argparse.Namespace, ctx: Context) -> int:

    from .._report import to_json
    from .output import failure, size
    from .report_table import look_for, render_table

    began = time.monotonic()
    if args.html is not None:  # before reading: a long read must not end in a refusal
        make_directory(Path(args.html).parent, what=args.html)
    if args.source is not None:
        report = _from_file(args, ctx)
    else:
        found = run_stoppable(_from_account(args, ctx))
        if found is None:
            return EXIT_FAILURE
        report = found
    ctx.progress.finish()
    written = None
    if args.html is not None:
        try:
            written = write_page(report, Path(args.html))
        except OSError as exc:
            ctx.error(failure(exc), path=args.html)
            return EXIT_FAILURE
    text = to_json(report) if args.json else render_table(report, look_for(ctx.stdout, ctx.env))
    ctx.stdout.write(text + "\n")
    ctx.stdout.flush()
    if not ctx.quiet:
        elapsed = time.monotonic() - began
        line = f"reported on {report.logs:,} logs in {elapsed:.2f} s"
        if written is not None:
            line += f"; wrote the page {args.html} ({size(written)})"
        ctx.progress.message(
            line,
            event="summary",
            logs=report.logs,
            elapsed=round(elapsed, 3),
            html=args.html,
        )
    return EXIT_OK


LOGS_REPORT = Handlers(
    configure=_configure,
    run=_run,
    check=_check,
)
