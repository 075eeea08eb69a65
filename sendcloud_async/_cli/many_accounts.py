"""``logs export --accounts FILE --out-dir DIR``: every account of a file, on one AccountPool.

Each account's export is one item of the engine's ``run_due``, run once, at most
``--concurrency`` at once; a cancel (Ctrl-C, SIGTERM) stops the exports in flight,
each after the commit in hand, so every account's checkpoint matches its file.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Final, NamedTuple

from .._checkpoint import checkpoint_path
from .._defaults import FORMATS
from .._engine import Backoff, Failed, RunEvent, run_due
from .._errors import ExportInputError, MissingExtraError
from .._export import ExportStats, LogExport
from .accounts import Account, open_accounts
from .clients import auth_for, maybe_fake, rate_limit
from .common import EXIT_FAILURE, EXIT_OK, FAKE_SOURCE, PROG, UsageError, extension, one_line
from .context import Context
from .destination import make_directory, refuse_to_clobber
from .export_output import account_file, check_destinations
from .output import failure, table
from .per_integration import new_job, parts_job
from .progress import account_var
from .resume import choose
from .signals import run as run_stoppable

if TYPE_CHECKING:
    from .._pool import AccountPool
    from ..testing import FakeSendcloud


__all__ = [
    "NOTE_WIDTH",
    "AccountPools",
    "AccountRow",
    "account_job",
    "account_pools",
    "export_account",
    "export_accounts",
    "show_results",
]

#: The widest cell of the results table (a long error is cut: stderr has it whole).
NOTE_WIDTH: Final = 72
#: Whatever an account's export raises is that account's failure (a bug must not take
#: the other accounts down either): reported, not retried in this run (``--resume`` does).
_ACCOUNT_FAILURE: Final = Backoff(0.0, 0.0, retry=(Exception,))


@dataclass(slots=True)
class _AccountRun:
    account: Account
    job: LogExport
    stats: ExportStats | None = None
    error: str | None = None
    finished: bool = False


def export_accounts(args: argparse.Namespace, ctx: Context) -> int:
    """Check the file and open every output (exit 2 on any refusal), then export them all.

    With ``--redis`` this process is one of many workers sharing the accounts
    (``export_workers``).
    """
    parts = getattr(args, "parts", False)  # every account's parts in one place
    if args.out_dir is None and not parts:
        raise UsageError("--accounts needs --out-dir DIR (each account gets DIR/NAME.jsonl)")
    path = Path(args.accounts)
    accounts = open_accounts(path, ctx.env, ctx.warn)
    out_dir = Path(args.out_dir or ".")
    if not parts:
        make_directory(out_dir, what=f"into {out_dir}")
    runs: list[_AccountRun] = []
    try:
        for account in accounts:
            job = account_job(args, out_dir, account)
            try:
                job.open()
            except (ExportInputError, MissingExtraError) as exc:
                raise UsageError(f"account {account.name}: {exc}") from None
            runs.append(_AccountRun(account, job))
        if parts:
            labelled = [(f"account {run.account.name}: ", run.job) for run in runs]
            run_stoppable(check_destinations(labelled, resume=args.resume, restart=args.restart))
        return run_stoppable(_run_accounts(args, ctx, runs))
    finally:
        for run in runs:
            run.job.close()


def account_job(args: argparse.Namespace, out_dir: Path, account: Account) -> LogExport:
    """The export job of ``account`` (not opened): ``DIR/NAME.EXT`` and its checkpoint.

    Its query is the command line's, completed from the account's checkpoint with
    ``--resume``; ``UsageError`` for an unfinished export without ``--resume`` or
    ``--restart``, or a checkpoint of another query.
    """
    if getattr(args, "parts", False):
        return parts_job(args, account)  # into the one place of every account's parts
    label = f"account {account.name}: "
    fmt = _resumed_format(args, out_dir, account.name) or args.format
    out = out_dir / account_file(account.name, fmt, args)
    if not args.resume and not args.restart:
        refuse_to_clobber(out, label=label)
    query = replace(args.query, implied_fmt=fmt, integration_id=account.integration_id)
    return new_job(
        args,
        out,
        base_url=FAKE_SOURCE if args.fake else account.base_url,
        chosen=choose(query, out, resume=args.resume, label=label),
    )


def _resumed_format(args: argparse.Namespace, out_dir: Path, name: str) -> str | None:
    """With ``--resume`` and no ``--format``: the format of the account's checkpointed file."""
    if not args.resume or args.query.fmt is not None:
        return None
    found = [f for f in FORMATS if checkpoint_path(out_dir / f"{name}.{extension(f)}").exists()]
    if len(found) > 1:
        files = " and ".join(f"{name}.{extension(f)}" for f in found)
        raise UsageError(
            f"account {name}: {files} in {out_dir} both have a checkpoint; "
            "say which to resume with --format"
        )
    return found[0] if found else None


class AccountPools:
    """One ``AccountPool`` per base URL, all on the first pool's session."""

    def __init__(self, args: argparse.Namespace, stack: AsyncExitStack) -> None:
        self._args = args
        self._stack = stack
        self._pools: dict[str, AccountPool] = {}

    def get(self, base_url: str) -> AccountPool:
        """The pool of ``base_url`` (created on first use)."""
        from .._pool import AccountPool  # here: --help and --version do not load aiohttp

        pool = self._pools.get(base_url)
        if pool is None:
            first = next(iter(self._pools.values()), None)
            pool = AccountPool(
                base_url=base_url,
                timeout=self._args.timeout,
                max_retries=self._args.max_retries,
                rate_limit=rate_limit(self._args),
                connections=max(10, 2 * self._args.concurrency * (self._args.walks or 1)),
                session=None if first is None else first.session,
            )
            # Closed in reverse: the pools that borrow the session before its owner.
            self._stack.push_async_callback(pool.aclose)
            self._pools[base_url] = pool
        return pool


@asynccontextmanager
async def account_pools(args: argparse.Namespace) -> AsyncIterator[AccountPools]:
    """The pools of an export of many accounts, closed on leaving."""
    async with AsyncExitStack() as stack:
        yield AccountPools(args, stack)


async def export_account(
    job: LogExport,
    account: Account,
    pools: AccountPools,
    fake: FakeSendcloud | None,
    report: Callable[[ExportStats], None],
) -> ExportStats:
    """Run ``job`` (opened) for ``account`` on its base URL's pool: the export of one account."""
    auth = auth_for(account.credentials, fake)
    url = account.base_url if fake is None else fake.base_url
    return await job.run(pools.get(url).client(auth), progress=report)


async def _run_accounts(args: argparse.Namespace, ctx: Context, runs: list[_AccountRun]) -> int:
    started = time.monotonic()
    progress = ctx.progress
    latest: dict[str, ExportStats] = {}

    def show(force: bool = False) -> None:
        records = sum(s.records for s in latest.values())
        pages = sum(s.pages for s in latest.values())
        run_records = sum(s.run_records for s in latest.values())
        elapsed = time.monotonic() - started
        finished = sum(1 for r in runs if r.finished)
        failed = sum(1 for r in runs if r.error is not None)
        extra = f" · accounts {finished}/{len(runs)} finished" + (
            f", {failed} failed" if failed else ""
        )
        rate = run_records / elapsed if elapsed > 0 else 0.0
        fields = {"accounts": len(runs), "accounts_finished": finished, "accounts_failed": failed}
        progress.update(records, pages, rate, elapsed, extra=extra, fields=fields, force=force)

    def account_failed(event: RunEvent[str]) -> None:
        assert isinstance(event, Failed)  # each account runs once: none recovers
        run = by_name[event.item]
        run.error = one_line(failure(event.error))
        progress.message(
            f"{PROG}: account {run.account.name}: failed: {run.error}",
            level="error",
            event="account_failed",
            account=run.account.name,
            error=run.error,
        )
        run.finished = True
        show(force=True)

    by_name = {run.account.name: run for run in runs}
    for run in runs:
        run.finished = run.job.already_complete  # nothing to run
    async with maybe_fake(args.fake) as fake, account_pools(args) as pools, ctx.live():

        async def export(name: str) -> None:
            account_var.set(name)
            run = by_name[name]

            def report(stats: ExportStats) -> None:
                latest[name] = stats
                show()

            run.stats = await export_account(run.job, run.account, pools, fake, report)
            latest[name] = run.stats
            run.finished = True
            show(force=True)

        await run_due(
            [run.account.name for run in runs if not run.finished],
            export,
            concurrency=args.concurrency,
            backoff=_ACCOUNT_FAILURE,
            on_event=account_failed,
            once=True,
        )
    progress.finish()
    failed = [r for r in runs if r.error is not None]
    show_results(ctx, _results(runs))
    total = sum(r.stats.run_records for r in runs if r.stats is not None)
    ok = len(runs) - len(failed)
    ctx.result(
        f"exported {total:,} records for {ok} of {len(runs)} accounts "
        f"in {time.monotonic() - started:.2f} s"
        + (f"; {len(failed)} failed (run again with --resume to retry them)" if failed else ""),
        event="summary",
        run_records=total,
        accounts=len(runs),
        accounts_failed=[r.account.name for r in failed],
        elapsed=round(time.monotonic() - started, 3),
    )
    return EXIT_FAILURE if failed else EXIT_OK


_HEADERS: Final = ("ACCOUNT", "STATUS", "RECORDS", "FILE", "NOTE")


class AccountRow(NamedTuple):
    """One account's outcome: a row of the results table (``_HEADERS``)."""

    account: str
    status: str
    records: int | None
    path: str
    note: str
    #: Records this run (only the many-worker export's results say it).
    run_records: int | None = None


def show_results(ctx: Context, rows: Sequence[AccountRow]) -> None:
    """Every account's outcome: a table, or with ``--log-format json`` a line per account."""
    if ctx.log_format == "json":
        for row in rows:
            fields: dict[str, object] = {
                "account": row.account,
                "status": row.status,
                "records": row.records,
            }
            if row.run_records is not None:
                fields["run_records"] = row.run_records
            ctx.result(
                f"account {row.account}: {row.status}" + (f" ({row.note})" if row.note else ""),
                event="account_result",
                **fields,
                path=row.path,
                note=row.note,
            )
    elif rows:
        cells = [
            (r.account, r.status, "-" if r.records is None else f"{r.records:,}", r.path, r.note)
            for r in rows
        ]
        ctx.say(table(_HEADERS, cells, max_width=NOTE_WIDTH))


def _results(runs: list[_AccountRun]) -> list[AccountRow]:
    """Every account's outcome."""
    rows = []
    for run in runs:
        records: int | None = None
        if run.error is not None:
            status, note = "failed", run.error
        elif run.stats is None:
            status, note = "complete", "already complete (checkpoint)"
        else:
            status, records = "ok", run.stats.records
            note = f"+{run.stats.run_records:,} this run" if run.stats.resumed else ""
        rows.append(AccountRow(run.account.name, status, records, run.job.destination, note))
    return rows
