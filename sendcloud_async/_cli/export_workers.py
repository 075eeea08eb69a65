"""``logs export --accounts FILE --out-dir DIR --redis URL``: one of many workers sharing an export.

Every worker runs the same command. The accounts are split by the Redis watch's
leases (``_redis_watch``: claim, renew, release, a fencing token per claim); each
worker first claims the accounts rendezvous hashing gives it (``_members``) and,
once those are done or held, helps with the others. An account is exported by
its own job (``many_accounts.account_job`` and ``export_account``, as without
``--redis``), always continuing from the checkpoint at the destination (a
takeover is a resume), and is marked done in Redis -- through the fenced commit,
as a state ``{"done": true, ...}`` -- only once its output is complete on disk.

Exactly once, whoever writes:

* the output is one writer's at a time: the job holds an exclusive lock on the
  output file from ``open()`` to ``close()`` (``FileSink``), and every page is
  committed file first, then the checkpoint (``_export``);
* before each write the job awaits its ``fence`` (``LeaseFence``): the lease is
  renewed with its fencing token in Redis, and a lease that lapsed or was taken
  over (or whose time ran out here, or whose renewal came back too late) stops
  the job with nothing more written (``LeaseLostError``);
* a worker paused (SIGSTOP) past its lease keeps the lock while it sleeps, so the
  worker that takes its lease over cannot open the output: it lets the lease go
  and tries again a little later (``ExportInUseError``). Woken up, the paused
  worker finishes at most the write it was in the middle of (under the lock,
  file then checkpoint), finds its lease gone at the next fence, and closes the
  job, which releases the lock; the next holder continues from the checkpoint,
  which accounts for that last write. A killed worker's lock goes with its
  process, and its lease lapses ``--lease`` seconds later.

The run's keys live under ``NS:watch:{export:RUN:NAME}`` (the watch's layout,
``RUN`` from ``run_name``), so two export runs never mix; an account's done
state lives as long as the watch's states (``DEFAULT_STATE_TTL``). A done state
is believed only when the account's checkpoint at the destination says done
too: the same command run again after the files were removed exports them again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

import msgspec

from .._checkpoint import Checkpoint, checkpoint_path
from .._defaults import DEFAULT_WATCH_LEASE
from .._errors import (
    ExportInputError,
    ExportInUseError,
    InvalidInputError,
    MissingExtraError,
    SendcloudError,
    StateUnavailableError,
)
from .accounts import Account, open_accounts
from .common import EXIT_FAILURE, EXIT_OK, PROG, UsageError, one_line
from .context import Context
from .destination import make_directory
from .many_accounts import NOTE_WIDTH, AccountPools, account_job, account_pools, export_account
from .output import failure, table
from .progress import account_var
from .signals import run as run_stoppable

if TYPE_CHECKING:
    from .._export import ExportStats, LogExport
    from .._redis_watch import RedisWatchStore, WatchLease
    from .._redis_watch._members import Membership

__all__ = ["DoneState", "LeaseFence", "check_workers", "export_with_workers", "run_name"]

_RUN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: The longest pause between two rounds (claims, renewals, the done check).
_ROUND: Final = 1.0
#: How long a worker waits before it tries again an account whose output another
#: process holds locked (at most: a fraction of the lease when that is shorter).
_IN_USE_RETRY: Final = 1.0


class DoneState(msgspec.Struct, kw_only=True):
    """The state of an account whose export is complete (the watch state's ``state`` field)."""

    done: bool
    records: int
    worker: str


_DECODE_DONE: Final = msgspec.json.Decoder(DoneState)


def _is_done(state: bytes | None) -> bool:
    if not state:
        return False
    try:
        return _DECODE_DONE.decode(state).done
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False


# -- the options -------------------------------------------------------------------------------


def check_workers(args: argparse.Namespace) -> None:
    """``UsageError`` for ``--redis``, ``--lease`` or ``--run`` where they do not go.

    With ``--redis`` every account continues from its checkpoint: ``args.resume`` is set.
    """
    if args.redis is None:
        for option in ("lease", "run"):
            if getattr(args, option) is not None:
                raise UsageError(f"--{option} goes with --redis URL")
        return
    if args.accounts is None:
        raise UsageError(
            "--redis needs --accounts TOML and --out-dir DIR (every worker gets the same)"
        )
    if args.restart:
        raise UsageError(
            "--restart cannot be used with --redis: the workers continue each account from "
            "its checkpoint; to start over, export into another --out-dir"
        )
    if args.fake:
        raise UsageError(
            "--fake cannot be used with --redis: each worker would export its own fake"
        )
    if args.run is not None and not _RUN.fullmatch(args.run):
        raise UsageError(
            "--run must be 1 to 64 letters, digits, '.', '_' or '-' (starting with a letter "
            "or digit)"
        )
    from .redis_watch import check_redis_url  # here: a run without --redis does not load it

    check_redis_url(args.redis)
    args.resume = True  # a takeover continues from the checkpoint another worker left


def run_name(args: argparse.Namespace, accounts: list[Account]) -> str:
    """The export run the workers share: ``--run``, else a hash of what the run is.

    What it is: the accounts' names, the destination (the absolute path of
    ``--out-dir``, or the URL of ``--out``) and the ``--format`` given, so that
    every worker of the same command on the same destination agrees, and another
    export never mixes with it.
    """
    if args.run is not None:
        return str(args.run)
    digest = hashlib.blake2b(digest_size=8)
    for part in (
        *sorted(account.name for account in accounts),
        "",
        _destination(args),
        args.query.fmt or "",
    ):
        digest.update(part.encode() + b"\n")
    return digest.hexdigest()


def _destination(args: argparse.Namespace) -> str:
    """Where every account goes: ``--out`` (a URL), else ``--out-dir`` (its absolute path)."""
    out: str | None = getattr(args, "out", None)
    if out is not None and "://" in out:
        return out
    return str(Path(out if out is not None else args.out_dir).absolute())


def _parts(args: argparse.Namespace) -> bool:
    """Whether the accounts go into parts (``--out URL``, or ``--format parquet``)."""
    return bool(getattr(args, "parts", False))


def _job(args: argparse.Namespace, account: Account) -> LogExport:
    """The export job of ``account`` (not opened): the one ``logs export --accounts`` makes
    (a file in ``--out-dir``, or the account's parts)."""
    return account_job(args, Path(args.out_dir or "."), account)


# -- the command -------------------------------------------------------------------------------


def export_with_workers(args: argparse.Namespace, ctx: Context) -> int:
    """Check the accounts and every output (exit 2 on a refusal), then work until all are done.

    Redis refusing the URL's credentials or user ends the run with status 1 before
    anything is written (a database it does not have with status 2).
    """
    from .._errors import StateConfigurationError
    from .redis_watch import require_redis_extra

    require_redis_extra()

    accounts = open_accounts(Path(args.accounts), ctx.env, ctx.warn)
    out_dir = None if args.out_dir is None else Path(args.out_dir)
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"cannot write into {out_dir}: it is not a directory")
    for account in accounts:  # a checkpoint of another export: refused before anything is sent
        job = _job(args, account)
        if job.parts:  # a missing extra, a destination that cannot be: said now
            try:
                job.open()
            except (ExportInputError, MissingExtraError) as exc:
                raise UsageError(f"account {account.name}: {exc}") from None
            finally:
                job.close()
    run = run_name(args, accounts)
    try:
        return run_stoppable(_work(args, ctx, accounts, out_dir, run))
    except InvalidInputError as exc:
        raise UsageError(str(exc)) from None
    except StateConfigurationError as exc:
        if exc.reason == "database":
            raise UsageError(f"--redis: {exc}") from None
        raise


async def _work(
    args: argparse.Namespace,
    ctx: Context,
    accounts: list[Account],
    out_dir: Path | None,
    run: str,
) -> int:
    from .._redis_watch import RedisWatchStore
    from ..redis import RedisConnection

    lease = DEFAULT_WATCH_LEASE if args.lease is None else args.lease
    async with (
        RedisConnection.from_url(args.redis) as connection,
        RedisWatchStore(connection, stream_prefix=f"export:{run}", lease=lease) as store,
    ):
        await store.check()  # a URL Redis refuses stops here: nothing is written
        if out_dir is not None:
            make_directory(out_dir, what=f"into {out_dir}")
        async with account_pools(args) as pools, ctx.live():
            worker = _Worker(args, ctx, store, accounts, run, pools)
            return await worker.run()


class LeaseFence:
    """The fence of one held account: awaited before each write of its export.

    It renews the lease with its fencing token (one round trip, the heartbeat
    too) and returns when Redis says the lease is still this one; otherwise it
    raises ``LeaseLostError`` and the write does not happen. It also raises,
    without asking, once the lease's time is up as this worker counts it
    (``deadline``, monotonic: a process paused past its lease finds out at once
    when it wakes), and when a renewal's reply comes back after that time. While
    Redis is unreachable it asks again every ``retry`` seconds until then.
    """

    __slots__ = ("_on_unreachable", "deadline", "lease", "lost", "retry", "store")

    def __init__(
        self,
        store: RedisWatchStore,
        lease: WatchLease,
        *,
        claimed_at: float,
        retry: float = 0.5,
        on_unreachable: Callable[[StateUnavailableError], None] | None = None,
    ) -> None:
        self.store = store
        self.lease = lease
        #: When this worker must count the lease as gone (monotonic).
        self.deadline = claimed_at + store.lease
        self.retry = retry
        #: The lease lapsed or was taken over: nothing more is written, it is not released.
        self.lost = False
        self._on_unreachable = on_unreachable

    def renewed(self, sent: float) -> None:
        """A renewal sent at ``sent`` (monotonic) succeeded: the lease lasts from then."""
        self.deadline = max(self.deadline, sent + self.store.lease)

    async def __call__(self) -> None:
        from .._redis_watch import LeaseLostError

        while True:
            if self.lost or time.monotonic() > self.deadline:
                self.lost = True
                raise LeaseLostError(
                    f"account {self.lease.account}: the lease of fencing token "
                    f"{self.lease.token} is no longer this worker's; nothing more was written"
                )
            sent = time.monotonic()
            try:
                _, lost, _ = await self.store.renew([self.lease])
            except StateUnavailableError as exc:
                if self._on_unreachable is not None:
                    self._on_unreachable(exc)
                await asyncio.sleep(self.retry)
                continue
            if lost:
                self.lost = True
                continue
            self.renewed(sent)
            # A reply that took longer than the lease may be about a lease since taken over.
            if time.monotonic() <= sent + self.store.lease:
                return
            self.lost = True


@dataclass(slots=True)
class _Held:
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


@dataclass(slots=True)
class _Row:
    """What this worker did with an account: a row of its table."""

    status: str
    records: int | None
    run_records: int
    path: str
    note: str = ""


class _Worker:
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
        from .._redis_watch._members import Membership

        self.args = args
        self.ctx = ctx
        self.store = store
        self.accounts = {account.name: account for account in accounts}
        self.run_name = run
        self.pools = pools
        self.lease = store.lease
        self.round = min(_ROUND, self.lease / 3)
        self.retry = min(_IN_USE_RETRY, self.lease / 2)
        self.membership: Membership = Membership(store.worker_id, list(self.accounts))
        self.held: dict[str, _Held] = {}
        self.done: set[str] = set()
        #: Accounts whose export failed here (not tried again by this worker), and why.
        self.failed: dict[str, str] = {}
        #: Accounts whose output another process holds locked: not claimed before then.
        self.in_use_until: dict[str, float] = {}
        self.to_release: list[WatchLease] = []
        self.rows: dict[str, _Row] = {}
        self.latest: dict[str, ExportStats] = {}
        self.told_in_use: set[str] = set()
        self.wake = asyncio.Event()
        self.unreachable = False
        #: Whether this worker left the live workers (``_stop``).
        self.left = False
        self.started = time.monotonic()

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
                left = await self._round()
                if left is not None and self._finished(left):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), self.round)
                self.wake.clear()
        except asyncio.CancelledError:  # Ctrl-C or SIGTERM
            await self._stop()
            total = sum(row.run_records for row in self.rows.values())
            total += sum(stats.run_records for stats in self.latest.values())
            ctx.progress.finish()
            ctx.progress.message(
                f"{PROG}: stopped; leases released, {total:,} records exported by this worker",
                event="stopped",
                run_records=total,
            )
            raise
        finally:
            await self._stop()
        return self._report()

    async def _round(self) -> dict[str, float] | None:
        """One round; the seconds left on the lease of every account not done (0: free),
        or ``None`` when Redis could not be reached."""
        store = self.store
        try:
            if self.to_release:
                leases = self.to_release[:]
                await store.release(leases)
                del self.to_release[: len(leases)]  # a release that failed is tried again
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
            self.membership.update(live)
            undone = [name for name in self.accounts if name not in self.done]
            states = await store.read_many(undone)
            for name, state in states.items():
                if name not in self.held and _is_done(state) and await self._complete_here(name):
                    self.done.add(name)
            undone = [name for name in undone if name not in self.done]
            left = await store.probe(undone)
            now = time.monotonic()
            await self._claim(
                [
                    name
                    for name in undone
                    if left.get(name, 0) == 0
                    and name not in self.held
                    and name not in self.failed
                    and self.in_use_until.get(name, 0.0) <= now
                ]
            )
        except StateUnavailableError as exc:
            self._unreachable(exc)
            return None
        if self.unreachable:
            self.unreachable = False
            self.ctx.progress.message(
                f"{PROG}: Redis answers again", level="info", event="redis_up"
            )
        self._show()
        return left

    async def _claim(self, free: list[str]) -> None:
        """Claim accounts of ``free``, this worker's own first (rendezvous hashing), then
        the others by this worker's place in their ranking; ``--concurrency`` held at most."""
        room = self.args.concurrency - len(self.held)
        if room <= 0 or not free:
            return
        membership = self.membership
        order = [name for name in free if membership.mine(name)][:room]
        if len(order) < room:  # its own are all done or held: help with the others
            others = [name for name in free if not membership.mine(name)]
            order += sorted(others, key=lambda name: (membership.rank(name), name))[
                : room - len(order)
            ]
        claimed_at = time.monotonic()
        leases, _ = await self.store.claim(order)
        for lease in leases:
            await self._start(lease, claimed_at)

    def _finished(self, left: dict[str, float]) -> bool:
        """Whether every account is done, or failed here and held by no other worker."""
        if self.held:
            return False
        return all(
            name in self.done or (name in self.failed and left.get(name, 0) == 0)
            for name in self.accounts
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
        if _is_done(lease.state) and await self._complete_here(name):
            self.done.add(name)
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
        held = _Held(account, fence)
        self.held[name] = held
        held.task = asyncio.get_running_loop().create_task(self._export(held))

    async def _export(self, held: _Held) -> None:
        """Export one held account from its checkpoint; mark it done once it is complete."""
        name = held.account.name
        account_var.set(name)
        job: LogExport | None = None
        try:
            from .._redis_watch import LeaseLostError

            try:
                job = _job(self.args, held.account)
                job.fence = held.fence
                job.open()
            except Exception as exc:
                if self._in_use(exc):
                    self._wait_for_output(name)
                elif isinstance(exc, ExportInputError | UsageError):
                    self._fail(name, str(exc).removeprefix(f"account {name}: "), job)
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
                        functools.partial(self._report_stats, name),
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
                    self._row(name, None, job, status="waiting", note="another writer holds it")
                else:
                    self._fail(name, one_line(failure(exc)), job)
            else:
                self._row(name, stats, job)
            if held.lost:
                self._row(name, None, job, status="lost", note="its lease was taken over")
        finally:
            if job is not None:
                with contextlib.suppress(Exception):  # the first error is the one said
                    await job.aclose()
            self.held.pop(name, None)
            if not held.lost:
                self.to_release.append(held.lease)
            self.wake.set()

    async def _mark_done(self, held: _Held, records: int) -> None:
        """Mark ``held``'s account done in Redis, through the fence (``LeaseLostError``)."""
        state = msgspec.json.encode(
            DoneState(done=True, records=records, worker=self.store.worker_id)
        )
        while True:
            await held.fence()
            try:
                await self.store.commit(held.lease, state, [])
            except StateUnavailableError as exc:
                self._unreachable(exc)
                await asyncio.sleep(min(0.5, self.round))
                continue
            self.done.add(held.account.name)
            return

    def _lose(self, held: _Held, why: str) -> None:
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
        self.ctx.progress.message(
            f"{PROG}: account {name}: failed: {error}",
            level="error",
            event="account_failed",
            account=name,
            error=error,
        )
        self._row(name, None, job, status="failed", note=error)

    def _in_use(self, exc: BaseException) -> bool:
        """Whether ``exc`` says another writer holds the account's output (not a failure)."""
        if isinstance(exc, ExportInUseError):
            return True
        if _parts(self.args):
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
            job = _job(self.args, self.accounts[name])
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

    # -- what is shown -------------------------------------------------------------------------

    def _report_stats(self, name: str, stats: ExportStats) -> None:
        self.latest[name] = stats
        self._show()

    def _show(self, force: bool = False) -> None:
        stats = self.latest.values()
        elapsed = time.monotonic() - self.started
        run_records = sum(s.run_records for s in stats)
        rate = run_records / elapsed if elapsed > 0 else 0.0
        extra = f" · accounts {len(self.done)}/{len(self.accounts)} done, {len(self.held)} here" + (
            f", {len(self.failed)} failed here" if self.failed else ""
        )
        fields = {
            "accounts": len(self.accounts),
            "accounts_done": len(self.done),
            "accounts_held": len(self.held),
            "accounts_failed": len(self.failed),
        }
        self.ctx.progress.update(
            run_records,
            sum(s.run_pages for s in stats),
            rate,
            elapsed,
            extra=extra,
            fields=fields,
            force=force,
        )

    def _row(
        self,
        name: str,
        stats: ExportStats | None,
        job: LogExport | None,
        *,
        status: str | None = None,
        note: str = "",
    ) -> None:
        """Say what this worker did with ``name``: ``stats`` of a finished export, else the
        last progress reported and the records the checkpoint now holds (an export
        stopped, say, by a lost lease after one more write)."""
        before = self.rows.get(name)
        latest = self.latest.pop(name, None) if stats is None else stats
        records = None if latest is None else latest.records
        run_records = 0 if latest is None else latest.run_records
        if stats is None and latest is not None and job is not None:
            records = job.saved_records
            run_records += records - latest.records
        if before is not None:
            run_records += before.run_records
        if status is None:
            status = "ok" if stats is not None else "complete"
            if stats is not None and stats.resumed and stats.records != stats.run_records:
                note = f"continued: +{stats.run_records:,} of {stats.records:,}"
            elif stats is None:
                note = "already complete (checkpoint)"
        path = "-" if job is None else job.destination
        self.rows[name] = _Row(status, records, run_records, path, note)

    def _report(self) -> int:
        ctx = self.ctx
        ctx.progress.finish()
        names = sorted(self.rows)
        rows = [
            (
                name,
                self.rows[name].status,
                "-" if self.rows[name].records is None else f"{self.rows[name].records:,}",
                self.rows[name].path,
                self.rows[name].note,
            )
            for name in names
        ]
        if ctx.log_format == "json":
            for name, status, records, path, note in rows:
                ctx.result(
                    f"account {name}: {status}" + (f" ({note})" if note else ""),
                    event="account_result",
                    account=name,
                    status=status,
                    records=None if records == "-" else int(records.replace(",", "")),
                    run_records=self.rows[name].run_records,
                    path=path,
                    note=note,
                )
        elif rows:
            ctx.say(table(_HEADERS, rows, max_width=NOTE_WIDTH))
        failed = sorted(name for name in self.failed if name not in self.done)
        total = sum(row.run_records for row in self.rows.values())
        exported = sum(1 for row in self.rows.values() if row.run_records)
        elapsed = time.monotonic() - self.started
        ctx.result(
            f"this worker exported {total:,} records of {exported} accounts in {elapsed:.2f} s; "
            f"{len(self.done)} of {len(self.accounts)} accounts of run {self.run_name} are done"
            + (f"; {', '.join(failed)} failed here" if failed else ""),
            event="summary",
            run_records=total,
            accounts=len(self.accounts),
            accounts_done=len(self.done),
            accounts_failed=failed,
            run=self.run_name,
            worker=self.store.worker_id,
            elapsed=round(elapsed, 3),
        )
        return EXIT_FAILURE if failed else EXIT_OK

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
        with contextlib.suppress(SendcloudError):  # unreachable, refused: the leases lapse
            await self.store.release(leases, leave=True)


_HEADERS: Final = ("ACCOUNT", "STATUS", "RECORDS", "FILE", "NOTE")
