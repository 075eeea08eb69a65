"""One worker of a many-worker export (``logs export --redis``): its rounds and the export
of each account it holds.

Each round renews the leases held here, reads which accounts were done since the
last round (the run's record of finished accounts, ``export_finished``; now and then a
full sweep of every unfinished account's done mark), and tries to claim as many
accounts as it has free slots under ``--concurrency``, this worker's own first
(rendezvous hashing), then the others' (``export_plan``): a round's Redis commands do
not grow with the number of accounts. Each account held is exported by its own task
from its checkpoint, every write behind the lease's fence (``export_lease``), marked
done in Redis once its output is complete, then added to the record. What it says is
``export_tally``'s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import msgspec

from .._checkpoint import Checkpoint, checkpoint_path
from .._errors import ExportInputError, ExportInUseError, SendcloudError, StateUnavailableError
from .accounts import Account
from .common import PROG, UsageError, one_line
from .context import Context
from .export_finished import DamagedRecordError, FinishedRecord
from .export_lease import LeaseFence, done_state, is_done, without_restart
from .export_plan import ClaimPlan
from .export_tally import Tally
from .many_accounts import AccountPools, account_job, export_account
from .output import failure
from .progress import account_var

if TYPE_CHECKING:
    from .._export import ExportStats, LogExport
    from .._redis._watch import RedisWatchStore, WatchLease

__all__ = ["Worker", "worker_job"]

#: The longest pause between two rounds (claims, renewals, the done check).
_ROUND: Final = 1.0
#: How long a worker waits before it tries again an account whose output another
#: process holds locked (at most: a fraction of the lease when that is shorter).
_IN_USE_RETRY: Final = 1.0


def worker_job(args: argparse.Namespace, account: Account) -> LogExport:
    """The export job of ``account`` (not opened): the one ``logs export --accounts`` makes
    (a file in ``--out-dir``, or the account's parts)."""
    return account_job(args, Path(args.out_dir or "."), account)


@dataclass(slots=True)
class Held:
    """An account this worker holds: its lease's fence, and the export of it."""

    account: Account
    fence: LeaseFence
    task: asyncio.Task[None] | None = None
    #: Whether the loss of its lease was said (once).
    told_lost: bool = False

    @property
    def lease(self) -> WatchLease:
        return self.fence.lease

    @property
    def lost(self) -> bool:
        return self.fence.lost


class Worker:
    """One worker's rounds: renew, see what is done, claim, export, mark done, release."""

    def __init__(
        self,
        args: argparse.Namespace,
        ctx: Context,
        store: RedisWatchStore,
        accounts: list[Account],
        run: str,
        pools: AccountPools,
    ) -> None:
        self.args = args
        self.ctx = ctx
        self.store = store
        self.accounts = {account.name: account for account in accounts}
        self.run_name = run
        self.pools = pools
        self.lease = store.lease
        self.round = min(_ROUND, self.lease / 3)
        self.retry = min(_IN_USE_RETRY, self.lease / 2)
        #: What to claim, in which order, and when to sweep.
        self.plan = ClaimPlan(store.worker_id, list(self.accounts), self.lease)
        #: The run's record of finished accounts, read from where the last round stopped.
        self.record = FinishedRecord(store)
        #: Accounts marked done here whose record entry is still to be added.
        self.to_record: list[str] = []
        #: Whether the record was said to be damaged (once).
        self.told_damaged = False
        self.held: dict[str, Held] = {}
        self.done: set[str] = set()
        #: Accounts whose export failed here (not tried again by this worker), and why.
        self.failed: dict[str, str] = {}
        #: Accounts whose output another process holds locked: not claimed before then.
        self.in_use_until: dict[str, float] = {}
        self.to_release: list[WatchLease] = []
        self.told_in_use: set[str] = set()
        self.wake = asyncio.Event()
        self.unreachable = False
        #: Whether this worker left the live workers (``_stop``).
        self.left = False
        self.tally = Tally(ctx, accounts=len(self.accounts), run=run, worker=store.worker_id)

    # -- the rounds --------------------------------------------------------------------------

    async def run(self) -> int:
        ctx, store = self.ctx, self.store
        ctx.progress.message(
            f"{PROG}: worker {store.worker_id} joined export run {self.run_name} "
            f"({len(self.accounts)} accounts, lease {self.lease:g} s)",
            level="info",
            event="joined",
            worker=store.worker_id,
            run=self.run_name,
            accounts=len(self.accounts),
        )
        try:
            while True:
                if await self._round():
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.round)
                self.wake.clear()
        except asyncio.CancelledError:  # Ctrl-C or SIGTERM
            await self._stop()
            total = self.tally.run_records()
            ctx.progress.finish()
            ctx.progress.message(
                f"{PROG}: stopped; leases released, {total:,} records exported by this worker",
                event="stopped",
                run_records=total,
            )
            raise
        finally:
            await self._stop()
        failed = [name for name in self.failed if name not in self.done]
        return self.tally.report(done=len(self.done), failed=failed)

    async def _round(self) -> bool | None:
        """One round; whether this worker is finished (``_finished``), or ``None`` when
        Redis could not be reached (the next round does it all again: nothing is lost)."""
        store = self.store
        try:
            await self._settle()
            sent = time.monotonic()
            held = [h for h in self.held.values() if not h.lost]
            live, lost = await store.renew_live([h.lease for h in held])
            for h in held:
                if self.held.get(h.account.name) is not h:
                    continue  # its export ended meanwhile
                if h.account.name in lost:
                    self._lose(h, "its lease lapsed or was taken over")
                else:
                    h.fence.renewed(sent)
            self.plan.update(live)
            await self._learn_done()
            await self._claim()
            finished = await self._finished()
        except StateUnavailableError as exc:
            self._unreachable(exc)
            return None
        if self.unreachable:
            self.unreachable = False
            self.ctx.progress.message(
                f"{PROG}: Redis answers again", level="info", event="redis_up"
            )
        self._show()
        return finished

    async def _settle(self) -> None:
        """Add the accounts marked done to the record, and release the leases let go (the
        round an export ends in is woken at once: right after its done mark)."""
        if self.to_record:
            names = self.to_record[:]
            try:
                await self.record.add(names)
            except DamagedRecordError as exc:  # the sweeps find them instead
                self._damaged(f"{exc}; every round reads every unfinished account instead")
            del self.to_record[: len(names)]  # an add that failed is tried again
        if self.to_release:
            leases = self.to_release[:]
            await self.store.release(leases)
            del self.to_release[: len(leases)]  # a release that failed is tried again

    async def _learn_done(self) -> None:
        """Take in the accounts done since the last round: those the record's new entries
        name and, at a full sweep (``export_plan``), every account whose done mark Redis
        holds. Each is believed once its checkpoint at the destination says done too."""
        plan, record = self.plan, self.record
        try:
            news = await record.read(self.accounts)
        except DamagedRecordError as exc:  # every round sweeps instead
            self._damaged(f"{exc}; every round reads every unfinished account instead")
            news, sweep = [], True
        else:
            sweep = plan.sweep_due()
        if (damage := record.damage()) is not None:
            self._damaged(damage)
        if sweep:
            undone = [n for n in self.accounts if n not in self.done and n not in self.held]
            states = await self.store.read_many(undone)
            news += [name for name, state in states.items() if is_done(state)]
        newly = 0
        for name in dict.fromkeys(news):
            # One held here is known done when its export (or its next claim) says so.
            if name not in self.held and name not in self.done and await self._complete_here(name):
                self.done.add(name)
                newly += 1
        if newly:
            plan.finished(newly, self._open)
        if sweep:
            plan.swept()

    async def _claim(self) -> None:
        """Try to claim as many accounts as there are free slots (``--concurrency``), in
        this worker's order (``export_plan``): its own first, then the others'."""
        now = time.monotonic()
        order = self.plan.candidates(
            self.args.concurrency - len(self.held),
            lambda name: (
                not self._open(name) or name in self.held or self.in_use_until.get(name, 0.0) > now
            ),
        )
        if not order:
            return
        claimed_at = time.monotonic()
        leases, others = await self.store.claim(order)
        self.plan.busy(others)
        for lease in leases:
            await self._start(lease, claimed_at)

    def _open(self, name: str) -> bool:
        """Whether ``name`` may still be claimed here: neither done nor failed here."""
        return name not in self.done and name not in self.failed

    async def _finished(self) -> bool:
        """Whether every account is done, or failed here and held by no other worker."""
        failed = [name for name in self.failed if name not in self.done]
        if self.held or len(self.done) + len(failed) < len(self.accounts):
            return False
        left = await self.store.probe(failed)
        return all(left.get(name, 0) == 0 for name in failed)

    def _damaged(self, why: str) -> None:
        """The run's record of finished accounts cannot be trusted: said once."""
        if not self.told_damaged:
            self.told_damaged = True
            self.ctx.progress.message(
                f"{PROG}: warning: {why}",
                level="warning",
                event="record_damaged",
                key=self.record.key,
            )

    def _unreachable(self, exc: StateUnavailableError) -> None:
        if not self.unreachable:
            self.unreachable = True
            self.ctx.progress.message(
                f"{PROG}: warning: {one_line(str(exc))}; the exports here stop writing once "
                "their leases run out, and go on when Redis answers",
                level="warning",
                event="redis_down",
            )

    # -- one account ---------------------------------------------------------------------------

    async def _start(self, lease: WatchLease, claimed_at: float) -> None:
        name = lease.account
        account = self.accounts[name]
        if is_done(lease.state) and await self._complete_here(name):
            self.done.add(name)
            self.to_record.append(name)  # its record entry may have been lost
            self.to_release.append(lease)
            self.wake.set()
            return
        if lease.previous is not None:
            self.ctx.progress.message(
                f"{PROG}: account {name}: taken over from worker {lease.previous} "
                f"({lease.how}); continuing from its checkpoint",
                level="info",
                event="takeover",
                account=name,
                previous=lease.previous,
                token=lease.token,
            )
        fence = LeaseFence(
            self.store,
            lease,
            claimed_at=claimed_at,
            retry=min(0.5, self.round),
            on_unreachable=self._unreachable,
        )
        held = Held(account, fence)
        self.held[name] = held
        held.task = asyncio.get_running_loop().create_task(self._export(held))

    async def _export(self, held: Held) -> None:
        """Export one held account from its checkpoint; mark it done once it is complete."""
        name = held.account.name
        account_var.set(name)
        job: LogExport | None = None
        try:
            from .._redis._watch import LeaseLostError

            try:
                job = worker_job(self.args, held.account)
                job.fence = held.fence
                job.open()
            except Exception as exc:
                if self._in_use(exc):
                    self._wait_for_output(name)
                elif isinstance(exc, ExportInputError | UsageError):
                    said = without_restart(str(exc)).removeprefix(f"account {name}: ")
                    self._fail(name, said, job)
                else:
                    self._fail(name, one_line(failure(exc)), job)
                return
            stats: ExportStats | None = None
            try:
                if not job.already_complete:
                    stats = await export_account(
                        job,
                        held.account,
                        self.pools,
                        None,
                        functools.partial(self._progress, name),
                    )
                records = job.saved_records if stats is None else stats.records
                await job.aclose()  # the output is complete: now it may be marked done
                await self._mark_done(held, records)
            except LeaseLostError:
                self._lose(held, "its lease lapsed or was taken over")
            except asyncio.CancelledError:
                if not held.lost:
                    raise  # the worker stops
            except Exception as exc:  # a bug must not take the other accounts down either
                if self._in_use(exc):  # a parts destination another writer holds
                    self._wait_for_output(name)
                    self.tally.row(
                        name, None, job, status="waiting", note="another writer holds it"
                    )
                else:
                    self._fail(name, one_line(failure(exc)), job)
            else:
                self.tally.row(name, stats, job)
            if held.lost:
                self.tally.row(name, None, job, status="lost", note="its lease was taken over")
        finally:
            if job is not None:
                with contextlib.suppress(Exception):  # the first error is the one said
                    await job.aclose()
            self.held.pop(name, None)
            if not held.lost:
                self.to_release.append(held.lease)
            self.wake.set()

    async def _mark_done(self, held: Held, records: int) -> None:
        """Mark ``held``'s account done in Redis, through the fence (``LeaseLostError``)."""
        state = done_state(records, self.store.worker_id)
        while True:
            await held.fence()
            try:
                await self.store.commit(held.lease, state, [])
            except StateUnavailableError as exc:
                self._unreachable(exc)
                await asyncio.sleep(min(0.5, self.round))
                continue
            self.done.add(held.account.name)
            self.plan.finished(1, self._open)
            self.to_record.append(held.account.name)  # added by the next round (woken)
            return

    def _lose(self, held: Held, why: str) -> None:
        """``held``'s lease is gone: its export stops, with nothing more written."""
        held.fence.lost = True
        if held.told_lost:
            return
        held.told_lost = True
        task = held.task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()  # a write in progress ends first (the job's cancel rule)
        self.ctx.progress.message(
            f"{PROG}: account {held.account.name}: lost the lease ({why}); another worker "
            "continues from its checkpoint",
            level="warning",
            event="lease_lost",
            account=held.account.name,
            token=held.lease.token,
        )

    def _fail(self, name: str, error: str, job: LogExport | None) -> None:
        self.failed[name] = error
        self.plan.finished(1, self._open)
        self.ctx.progress.message(
            f"{PROG}: account {name}: failed: {error}",
            level="error",
            event="account_failed",
            account=name,
            error=error,
        )
        self.tally.row(name, None, job, status="failed", note=error)

    def _in_use(self, exc: BaseException) -> bool:
        """Whether ``exc`` says another writer holds the account's output (not a failure)."""
        if isinstance(exc, ExportInUseError):
            return True
        if getattr(self.args, "parts", False):  # into parts (--out URL, --format parquet)
            from .._parts import SecondWriterError

            return isinstance(exc, SecondWriterError)
        return False

    def _wait_for_output(self, name: str) -> None:
        """Another process holds ``name``'s output: a worker paused past its lease finds
        out when it wakes and lets it go. The account is claimed again a little later."""
        self.in_use_until[name] = time.monotonic() + self.retry
        if name not in self.told_in_use:
            self.told_in_use.add(name)
            self.ctx.progress.message(
                f"{PROG}: account {name}: another process holds its output "
                "(a worker paused past its lease, say); waiting for it to let go",
                level="info",
                event="output_locked",
                account=name,
            )

    async def _complete_here(self, name: str) -> bool:
        """Whether the checkpoint at the destination says ``name``'s export is complete.

        A file's checkpoint is read as it is (without the lock another worker may
        hold); a parts destination's from its manifest.
        """
        try:
            job = worker_job(self.args, self.accounts[name])
        except UsageError:
            return False
        if not job.parts:
            try:
                raw = checkpoint_path(job.path).read_bytes()
                return msgspec.json.decode(raw, type=Checkpoint).done
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                return False
        try:
            state = await job.recorded()
        except Exception:  # unreadable now: not known to be complete
            return False
        finally:
            with contextlib.suppress(Exception):
                await job.aclose()
        return state is not None and state.done

    # -- what is shown --------------------------------------------------------------------------

    def _progress(self, name: str, stats: ExportStats) -> None:
        self.tally.progress(name, stats)
        self._show()

    def _show(self) -> None:
        self.tally.show(done=len(self.done), held=len(self.held), failed=len(self.failed))

    # -- the stop ------------------------------------------------------------------------------

    async def _stop(self) -> None:
        """Stop every export here (a write in progress ends first), release every lease
        still this worker's and leave the live workers. Runs on every way out."""
        tasks = [h.task for h in self.held.values() if h.task is not None]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        leases, self.to_release = self.to_release, []
        leases += [h.lease for h in self.held.values() if not h.lost]
        if self.left:
            return
        self.left = True
        names, self.to_record = self.to_record, []
        with contextlib.suppress(SendcloudError, DamagedRecordError):  # the sweeps find them
            await self.record.add(names)
        with contextlib.suppress(SendcloudError):  # unreachable, refused: the leases lapse
            await self.store.release(leases, leave=True)
