"""``logs export --accounts FILE --out-dir DIR``: every account of a file, on one AccountPool."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .._errors import SendcloudError
from .._export import ExportInputError, ExportStats, LogExport
from .._pool import AccountPool
from .accounts import Account, open_accounts
from .clients import maybe_fake, rate_limit
from .common import EXIT_FAILURE, EXIT_OK, FAKE_SOURCE, PROG, UsageError, extension, one_line
from .context import Context
from .destination import make_directory, refuse_to_clobber
from .output import table
from .per_integration import new_job
from .progress import account_var

__all__ = ["NOTE_WIDTH", "export_accounts"]

#: The widest cell of the results table (a long error is cut: stderr has it whole).
NOTE_WIDTH: Final = 72


@dataclass(slots=True)
class _AccountRun:
    account: Account
    job: LogExport
    stats: ExportStats | None = None
    error: str | None = None
    finished: bool = False


def export_accounts(args: argparse.Namespace, ctx: Context) -> int:
    """Check the file and open every output (exit 2 on any refusal), then export them all."""
    if args.out_dir is None:
        raise UsageError("--accounts needs --out-dir DIR (each account gets DIR/NAME.jsonl)")
    path = Path(args.accounts)
    accounts = open_accounts(path, ctx.env, ctx.warn)
    out_dir = Path(args.out_dir)
    make_directory(out_dir, what=f"into {out_dir}")
    runs: list[_AccountRun] = []
    try:
        for account in accounts:
            out = out_dir / f"{account.name}.{extension(args.format)}"
            if not args.resume and not args.restart:
                refuse_to_clobber(out, label=f"account {account.name}: ")
            job = new_job(
                args,
                out,
                base_url=FAKE_SOURCE if args.fake else account.base_url,
                integration_id=account.integration_id,
            )
            try:
                job.open()
            except ExportInputError as exc:
                raise UsageError(f"account {account.name}: {exc}") from None
            runs.append(_AccountRun(account, job))
        return asyncio.run(_run_accounts(args, ctx, runs))
    finally:
        for run in runs:
            run.job.close()


class _Pools:
    """One ``AccountPool`` per base URL, all on the first pool's session."""

    def __init__(self, args: argparse.Namespace, stack: AsyncExitStack) -> None:
        self._args = args
        self._stack = stack
        self._pools: dict[str, AccountPool] = {}

    def get(self, base_url: str) -> AccountPool:
        """The pool of ``base_url`` (created on first use)."""
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
async def _pools(args: argparse.Namespace) -> AsyncIterator[_Pools]:
    async with AsyncExitStack() as stack:
        yield _Pools(args, stack)


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
        progress.update(records, pages, rate, elapsed, extra=extra, force=force)

    semaphore = asyncio.Semaphore(args.concurrency)
    async with maybe_fake(args.fake) as fake, _pools(args) as pools, ctx.live():

        async def one(run: _AccountRun) -> None:
            name = run.account.name
            account_var.set(name)
            if run.job.already_complete:
                run.finished = True
                return
            async with semaphore:
                try:
                    if fake is not None:
                        auth, url = run.account.auth(token_url=fake.token_url), fake.base_url
                    else:
                        auth, url = run.account.auth(), run.account.base_url
                    client = pools.get(url).client(auth)

                    def report(stats: ExportStats) -> None:
                        latest[name] = stats
                        show()

                    run.stats = await run.job.run(client, progress=report)
                    latest[name] = run.stats
                except (SendcloudError, OSError) as exc:
                    run.error = one_line(exc)
                    progress.message(f"{PROG}: account {name}: failed: {run.error}")
                except Exception as exc:  # a bug must not take the other accounts down
                    run.error = one_line(f"unexpected {type(exc).__name__}: {exc}")
                    progress.message(f"{PROG}: account {name}: failed: {run.error}")
                finally:
                    run.finished = True
                    show(force=True)

        await asyncio.gather(*(one(run) for run in runs))
    progress.close()
    failed = [r for r in runs if r.error is not None]
    if not ctx.quiet:
        ctx.say(_results(runs))
        total = sum(r.stats.run_records for r in runs if r.stats is not None)
        ok = len(runs) - len(failed)
        ctx.say(
            f"exported {total:,} records for {ok} of {len(runs)} accounts "
            f"in {time.monotonic() - started:.2f} s"
            + (f"; {len(failed)} failed (run again with --resume to retry them)" if failed else "")
        )
    return EXIT_FAILURE if failed else EXIT_OK


def _results(runs: list[_AccountRun]) -> str:
    """The table of every account's outcome."""
    rows = []
    for run in runs:
        if run.error is not None:
            status, records, note = "failed", "-", run.error
        elif run.stats is None:
            status, records, note = "complete", "-", "already complete (checkpoint)"
        else:
            status = "ok"
            records = f"{run.stats.records:,}"
            note = f"+{run.stats.run_records:,} this run" if run.stats.resumed else ""
        rows.append((run.account.name, status, records, str(run.job.path), note))
    return table(("ACCOUNT", "STATUS", "RECORDS", "FILE", "NOTE"), rows, max_width=NOTE_WIDTH)
