"""``demo``: the export path end to end against the embedded FakeSendcloud ``--fake`` serves,
ending with the report of what is failing (``logs report``) and the path of its page.

Where the page goes: beside a kept export (``--keep DIR``: ``DIR/report.html``;
``--out FILE``: ``FILE``'s name with ``.report.html``), to ``--report FILE``, or
else, since the export itself is removed, to the user's cache directory
(``$XDG_CACHE_HOME/sendcloud-async/demo-report.html``, ``~/.cache/…`` without it;
``~/Library/Caches/…`` on macOS, ``%LOCALAPPDATA%\\sendcloud-async\\Cache`` on
Windows), replaced by the next demo, so running it again leaves one page behind.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import msgspec

from .._defaults import FORMATS
from .._export import ExportStats, LogExport
from .._fileio import output_file_problem
from .clients import client_for, maybe_fake
from .command import Handlers
from .common import (
    DEFAULT_PAGE_SIZE,
    EXIT_FAILURE,
    EXIT_OK,
    FAKE_SOURCE,
    PROG,
    UsageError,
    extension,
)
from .context import Context, open_job
from .destination import make_directory
from .formats import format_for
from .output import integrations_table, size, summary
from .signals import run as run_stoppable

__all__ = ["DEMO"]


class _Ids(msgspec.Struct):
    id: int | None = None
    integration_id: int | None = None
    exception_type: str | None = None


def _read_back(path: Path, fmt: str) -> list[_Ids]:
    data = path.read_bytes()
    if fmt == "jsonl":
        return msgspec.json.Decoder(_Ids).decode_lines(data)
    rows = csv.DictReader(data.decode().splitlines(keepends=True))
    return [
        _Ids(
            id=int(r["id"]) if r["id"] else None,
            integration_id=int(r["integration_id"]) if r["integration_id"] else None,
            exception_type=r["exception_type"] or None,
        )
        for r in rows
    ]


def _configure(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--keep",
        metavar="DIR",
        help="write the export into DIR and keep it (default: a temporary directory, removed)",
    )
    where.add_argument("--out", metavar="FILE", help="write the export to FILE and keep it")
    parser.add_argument(
        "--format", choices=FORMATS, default="jsonl", help="jsonl (default) or csv: the export's"
    )
    parser.add_argument(
        "--report",
        metavar="FILE",
        help="write the report's page to FILE (default: beside a kept export, else "
        "demo-report.html in the user's cache directory, replaced on every run)",
    )


#: What the report's page of a demo without a kept export is called, in the cache directory.
REPORT_NAME = "demo-report.html"


def cache_directory(env: Mapping[str, str]) -> Path:
    """The user's cache directory for this program (``XDG_CACHE_HOME`` first)."""
    named = env.get("XDG_CACHE_HOME")
    if named and Path(named).is_absolute():
        return Path(named) / PROG
    home = Path(env["HOME"]) if env.get("HOME") else Path.home()
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / PROG
    if sys.platform == "win32" and env.get("LOCALAPPDATA"):
        return Path(env["LOCALAPPDATA"]) / PROG / "Cache"
    return home / ".cache" / PROG


def _report_path(args: argparse.Namespace, env: Mapping[str, str], out: Path) -> Path:
    if args.report is not None:
        return Path(args.report)
    if args.keep is not None:
        return Path(args.keep) / "report.html"
    if args.out is not None:
        return out.with_name(f"{out.stem}.report.html")
    return cache_directory(env) / REPORT_NAME


def _report_command(source: Path, page: Path) -> str:
    """The ``logs report`` command line that writes the same page from the export (pasteable
    while the export is there: after the ``logs export`` line, when it was removed)."""
    words = [PROG, "logs", "report", str(source)]
    return " ".join(shlex.quote(word) for word in [*words, "--html", str(page)])


def _command(out: Path, fmt: str, *extra: str) -> str:
    """The ``logs export`` command line that writes (or resumes) ``out``: pasteable."""
    words = [PROG, "logs", "export", "--fake", "--out", str(out)]
    if format_for(str(out), None) != fmt:
        words += ["--format", fmt]
    return " ".join(shlex.quote(word) for word in [*words, *extra])


def _run(args: argparse.Namespace, ctx: Context) -> int:
    began = time.monotonic()
    fmt: str = args.format
    scratch: Path | None = None
    if args.out is not None:
        out = Path(args.out)
        make_directory(out.parent, what=str(out))
    elif args.keep is not None:
        make_directory(Path(args.keep), what=f"into {args.keep}")
        out = Path(args.keep) / f"logs.{extension(fmt)}"
    else:
        scratch = Path(tempfile.mkdtemp(prefix="sendcloud-demo-"))
        out = scratch / f"logs.{extension(fmt)}"
    page = _report_path(args, ctx.env, out)
    problem = output_file_problem(page)
    if problem is not None:
        raise UsageError(f"cannot write {page}: {problem}")
    try:
        job = LogExport(out, base_url=FAKE_SOURCE, fmt=fmt, page_size=DEFAULT_PAGE_SIZE)
        with open_job(job):
            stats, expected = run_stoppable(_demo(args, ctx, job))
        ctx.say(summary(stats))
        if not _verify(ctx, out, fmt, expected):
            return EXIT_FAILURE
        if scratch is None:
            ctx.say(f"kept {out} ({size(stats.bytes)}) and its checkpoint {job.checkpoint_path}")
            ctx.say("the same data is served by --fake, so this continues (or re-checks) it:")
            ctx.say(f"$ {_command(out, fmt, '--resume')}")
        from .._report import read_export  # (imported when the demo runs, as logs report does)
        from .logs_report import write_page
        from .report_table import look_for, render_table

        report = read_export(str(out), fmt=fmt)  # what logs report reads: the export file
        ctx.say()
        ctx.say(f"$ {_report_command(out, page)}")
        ctx.say(render_table(report, look_for(ctx.stdout, ctx.env)))
        written = write_page(report, page)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
    if scratch is not None:
        ctx.say(f"removed the demo's files ({size(stats.bytes)}); --keep DIR keeps them")
    ctx.say(f"demo finished in {time.monotonic() - began:.2f} s")
    ctx.say(f"the report's page: {page} ({size(written)}); open it in a browser")
    return EXIT_OK


def _verify(ctx: Context, out: Path, fmt: str, expected: list[int]) -> bool:
    logs = _read_back(out, fmt)
    ids = [log.id for log in logs]
    if ids != expected:
        ctx.error(
            f"verification failed: the file holds {len(ids):,} logs "
            f"({len(set(ids)):,} distinct ids), the server has {len(expected):,}"
        )
        return False
    ctx.say(
        f"verified: {len(ids):,} logs, {len(set(ids)):,} distinct ids, "
        "the same ids in the same order as on the server (exactly once)"
    )
    per_integration = sorted(Counter(log.integration_id or 0 for log in logs).items())
    ctx.say("per integration: " + " · ".join(f"#{k} {v:,}" for k, v in per_integration))
    kinds = Counter(log.exception_type or "(none)" for log in logs).most_common(3)
    ctx.say("top exception types: " + " · ".join(f"{k} {v:,}" for k, v in kinds))
    return True


async def _demo(
    args: argparse.Namespace, ctx: Context, job: LogExport
) -> tuple[ExportStats, list[int]]:
    async with maybe_fake(True) as fake:
        assert fake is not None
        expected: list[int] = [record["id"] for record in fake.logs]
        ctx.say(f"FakeSendcloud is serving on {fake.base_url} (loopback; no credentials needed)")
        ctx.say(
            f"seeded {len(fake.integrations)} integrations with {len(expected):,} exception logs, "
            "the same data --fake serves"
        )
        ctx.say()
        async with client_for(args, fake.basic_auth, fake.base_url) as client, ctx.live():
            integrations = await client.integrations.list()
            ctx.say(f"$ {PROG} integrations list --fake")
            ctx.say(integrations_table(integrations))
            ctx.say()
            ctx.say(f"$ {_command(job.path, job.query.format)}")
            ctx.progress.total = len(expected)
            stats = await job.run(client, progress=ctx.progress.for_export())
    return stats, expected


DEMO = Handlers(
    configure=_configure,
    run=_run,
)
