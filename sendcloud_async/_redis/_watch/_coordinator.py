"""``RedisWatchCoordinator``: one worker's rounds (heartbeat, renewals, hand-overs, claims);
the accounts it holds are watched on the engine's ``Runner``, every batch through the fence."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Final, Literal

from ... import _observe
from ..._aio import finish, sleep_until
from ..._engine import Backoff, Failed, RunEvent, Runner
from ..._errors import InvalidInputError, StateConfigurationError, StateUnavailableError
from ..._event_types import (
    AccountRecovered,
    LeaseClaimed,
    LeaseLost,
    LeaseRefused,
    LeaseReleased,
    RedisDown,
    RedisUp,
    account_failing,
    error_text,
)
from ..._validate import account_name, positive_int, positive_seconds
from .._rules import describe_failure
from ._commit import _Committer, _Held, _Overdue
from ._events import CoordinatorEvent, LeaseReason, describe_event, events_logger
from ._leases import WatchLease
from ._members import Membership
from ._sources import AccountWatch
from ._store import LeaseLostError, RedisWatchStore

logger: Final = logging.getLogger("sendcloud_async")
#: The longest wait before a failed watch is started again, in seconds.
_MAX_RESTART_DELAY: Final = 60.0


class _Ended(Exception):
    """The watch's source stopped on its own: it is started again, backing off as after
    a failure (but the account is not failing)."""


class RedisWatchCoordinator:
    """One worker's share of a watch: takes accounts, watches them, renews, hands over.

    ``accounts`` are the names every worker is given (the same list everywhere). Each
    account's *owner* is the live worker of the highest ``hash(account, worker)``
    (rendezvous hashing over the heartbeat set, ``_members``). Every ``lease / 4``
    seconds the worker renews its leases and its heartbeat, releases (after its last
    write) what now belongs to another live worker, and claims the free accounts it
    owns (up to ``max_accounts``): a worker joining takes only what it owns, one
    leaving or dying hands over only its own (the others wake up when its heartbeat
    and leases run out). A free account its owner leaves unclaimed goes to the n-th
    worker of its ranking after ``n × lease / 2``, kept until its owner changes.
    Leases and fencing tokens, not the hashing, decide who writes. For each account
    held it runs ``watch(name, state, commit)`` from the state written last;
    ``commit`` writes through the fence (``RedisWatchStore.commit``). A batch the
    fence refuses is dropped with the account; a watch that fails is started again
    with backoff. A lease not confirmed for ``0.9 * lease`` counts as lost here too.

    An account whose watch failed twice in a row with no poll or write succeeding
    for ``stall_after`` (default ``2 × lease``) is given up and listed as an orphan
    for ``stall_cooldown`` (default ``10 × lease``): a healthy worker (none of its
    accounts failing) adopts it whoever owns it and keeps it that long; the worker
    that gave it up does not claim it again for one ``lease``. Polls count through
    ``Commit.polled()`` and every written batch. When Redis cannot be reached the
    worker reports ``RedisDown``, retries (writes every ``retry_interval``), lets its
    leases lapse and resumes on ``RedisUp``; when Redis refuses the URL, ``run()``
    releases what it can and raises ``StateConfigurationError``. ``on_event`` gets
    every ``CoordinatorEvent`` (also logged on ``sendcloud_async.redis.watch`` and
    published to ``sendcloud_async.events``' subscribers; an exception it raises is
    logged). See docs/redis-watch.md for the bounds.
    """

    def __init__(
        self,
        store: RedisWatchStore,
        accounts: Sequence[str],
        watch: AccountWatch,
        *,
        max_accounts: int | None = None,
        retry_interval: float | None = None,
        stall_after: float | None = None,
        stall_cooldown: float | None = None,
        on_event: Callable[[CoordinatorEvent], None] | None = None,
    ) -> None:
        names = [account_name(a) for a in accounts]
        if not names:
            raise InvalidInputError("accounts must name at least one account")
        if len({n.lower() for n in names}) != len(names):
            raise InvalidInputError("accounts must not name an account twice")
        self.store = store
        self.accounts: tuple[str, ...] = tuple(names)
        self.watch = watch
        self.max_accounts = (
            None if max_accounts is None else positive_int(max_accounts, "max_accounts")
        )
        #: Seconds between two rounds of renewals, heartbeat and rebalancing.
        self.tick = store.lease / 4
        self.retry_interval = (
            self.tick
            if retry_interval is None
            else positive_seconds(retry_interval, "retry_interval")
        )
        #: Seconds without a successful poll (and two failed watches) before an account
        #: is given up for a healthy worker.
        self.stall_after = (
            2 * store.lease if stall_after is None else positive_seconds(stall_after, "stall_after")
        )
        #: Seconds an account given up that way stays with the healthy worker that took it.
        self.stall_cooldown = (
            10 * store.lease
            if stall_cooldown is None
            else positive_seconds(stall_cooldown, "stall_cooldown")
        )
        self.on_event = on_event
        #: Live workers seen at the last heartbeat (this one included).
        self.live_workers = 0
        #: Writes the fence refused, and leases taken, by this worker so far.
        self.refused = 0
        self.claims = 0
        self._members = Membership(store.worker_id, names)
        self._held: dict[str, _Held] = {}
        self._joined = False
        self._stopping = asyncio.Event()
        self._down_since: float | None = None
        self._down_at: datetime | None = None
        self._failed_at = 0.0
        #: Accounts given up here as failing: not claimed again before, nor adopted until, then.
        self._avoid: dict[str, float] = {}
        self._orphaned: dict[str, float] = {}
        #: Accounts other workers gave up as failing, as of the last round: until when.
        self._orphans: dict[str, float] = {}
        #: Accounts whose claim got no reply: Redis may have made them this worker's.
        self._unanswered: set[str] = set()
        #: Since when (monotonic) each account not held here has been seen free.
        self._free_since: dict[str, float] = {}
        self._progress_at = 0.0
        self._stalled_at = -math.inf
        #: Runs the watch of each account held; a watch that ends is started again after
        #: ``2 × tick``, doubling while it keeps ending, and a configuration error stops it.
        self._runner: Runner[str] = Runner(
            self._watch,
            concurrency=len(names),
            backoff=Backoff(2 * self.tick, _MAX_RESTART_DELAY, fatal=(StateConfigurationError,)),
            on_event=self._ran,
            keep_open=True,
        )

    @property
    def held(self) -> dict[str, int]:
        """The accounts this worker holds now, with their fencing tokens.

        A lease whose renewal is overdue here is left out even before the next tick
        drops it: it may have lapsed in Redis.
        """
        now = time.monotonic()
        return {name: h.lease.token for name, h in self._held.items() if now <= h.deadline}

    @property
    def share(self) -> int:
        """How many accounts this worker owns among the live workers (``max_accounts`` at most)."""
        share = self._members.share()
        return share if self.max_accounts is None else min(share, self.max_accounts)

    @property
    def healthy(self) -> bool:
        """Whether this worker may take orphans: none of its accounts is failing now,
        and it made progress since it last gave an account up."""
        if any(h.failing_since is not None for h in self._held.values()):
            return False
        return self._stalled_at <= self._progress_at

    def stop(self) -> None:
        """Ask ``run()`` to stop: watches end, leases are released, ``run()`` returns."""
        self._stopping.set()

    def _publish(self, event: CoordinatorEvent) -> None:
        """Log ``event`` (its sentence, at its level), publish it to the subscribers of
        ``sendcloud_async.events`` and hand it to ``on_event``.

        An error of ``on_event`` is logged and goes no further: reporting must not
        stop the leases, the renewals and the fence that keep the watch exactly once.
        """
        name, level, sentence = describe_event(event)
        events_logger.log(level, "%s", sentence)
        _observe.publish(event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception as exc:
                logger.error("on_event raised %s for %s; the watch goes on", error_text(exc), name)

    async def run(self) -> None:
        """Run until ``stop()``; then end every watch, release the leases and leave.

        Raises ``StateConfigurationError`` (after releasing what it can) when Redis
        refuses the URL's credentials, database or user.
        """
        runner = asyncio.get_running_loop().create_task(self._runner.run(), name="watches")
        runner.add_done_callback(lambda _: self._stopping.set())  # a configuration error
        try:
            while not self._stopping.is_set():
                wait = await self._tick()
                await sleep_until(self._stopping, wait)
        finally:
            try:
                await self._shutdown()
            finally:
                self._runner.stop()
                await finish(runner, check=False)
        if not runner.cancelled() and (error := runner.exception()) is not None:
            raise error

    async def _tick(self) -> float:
        """One round: renew + heartbeat, drop what is lost, hand over, claim; the wait."""
        sent = time.monotonic()
        wait = self.tick
        try:
            live, lost, soonest, orphans = await self.store._renew(
                [h.lease for h in self._held.values()]
            )
            self._answering(sent)
            self.live_workers = len(live)
            for name in self._members.update(live):  # a new owner: no longer kept here
                if name in self._held:
                    self._held[name].fallback = False
            self._orphans = {name: sent + left for name, left in orphans.items()}
            for name in lost:
                await self._drop(name, "lost", "gone")
            for held in self._held.values():
                self._arm(held, sent + self.store.lease * 0.9)
            if not self._joined:
                # First round: only say we are here, so that workers starting together
                # see each other before any of them takes accounts.
                self._joined = True
                return wait
            if soonest is not None:  # another worker's heartbeat ends: its accounts free up
                wait = min(wait, soonest + 0.01)
            await self._give_up_stalled()
            await self._hand_over()
            wait = min(wait, await self._take())
        except StateUnavailableError as exc:
            self._unreachable(exc)
        now = time.monotonic()
        for name in [n for n, h in self._held.items() if now > h.deadline]:
            await self._drop(name, "lost", "expired")
        return wait

    async def _hand_over(self) -> None:
        """Release the accounts held here that belong to another live worker (a join)."""
        now = time.monotonic()
        names = sorted(
            name
            for name, held in self._held.items()
            if not held.fallback and held.adopted_until <= now and not self._members.mine(name)
        )
        if names:
            leases = [self._held[name].lease for name in names]
            for name in names:
                await self._drop(name, "released", "rebalance")
            await self.store.release(leases)

    def _due(self, name: str, now: float) -> bool:
        """Whether to claim free ``name``: owned here, or unclaimed for ``rank × lease / 2``."""
        if self._members.mine(name):
            return True
        if name in self._orphans:  # for a healthy worker, or for its owner after a lease
            return False
        waited = now - self._free_since.get(name, now)
        return waited >= self._members.rank(name) * self.store.lease / 2

    async def _take(self) -> float:
        """Claim the free accounts that are due, and orphans; the wait until the next tick.

        Orphans (accounts another worker gave up as failing) are taken by a healthy
        worker whoever owns them; a lease of this worker's whose claim got no reply
        is taken back at once.
        """
        now = time.monotonic()
        self._avoid = {n: until for n, until in self._avoid.items() if until > now}
        self._orphaned = {n: until for n, until in self._orphaned.items() if until > now}
        adoptable = (
            {n for n, until in self._orphans.items() if until > now and n not in self._orphaned}
            if self.healthy
            else set[str]()
        )
        room = math.inf if self.max_accounts is None else self.max_accounts - len(self._held)
        candidates = [a for a in self.accounts if a not in self._held and a not in self._avoid]
        if not candidates or room <= 0:
            return self.tick
        left = await self.store._leases(candidates)
        # A lease that lapses before the next tick: come back just after it does.
        soonest = min([self.tick, *(s + 0.01 for s, mine in left.values() if s > 0)])
        own = [a for a in candidates if left[a][1] and a in self._unanswered]
        self._unanswered.difference_update(a for a in candidates if not left[a][1])
        free = [a for a in candidates if left[a][0] == 0]
        self._free_since = {a: self._free_since.get(a, now) for a in free}
        orphans = [a for a in free if a in adoptable]
        due = sorted(
            (a for a in free if a not in adoptable and self._due(a, now)),
            key=lambda a: not self._members.mine(a),
        )
        chosen = list(dict.fromkeys(own + orphans + due))[: int(min(room, len(candidates)))]
        if chosen:
            sent = time.monotonic()
            self._unanswered.update(chosen)  # until the reply comes: Redis may grant them
            leases, _ = await self.store.claim(chosen)
            self._unanswered.difference_update(chosen)
            for lease in leases:
                self._start(lease, sent)
        return soonest

    def _arm(self, held: _Held, deadline: float) -> None:
        """Move ``held``'s deadline; its watch is cancelled when the deadline passes.

        A timer, not the next tick, so that a late tick (a busy or paused process)
        never lets a watch run on a lease that may have lapsed in Redis.
        """
        held.deadline = deadline
        if held.timer is not None:
            held.timer.cancel()
        held.timer = asyncio.get_running_loop().call_at(deadline, self._expire, held)

    def _expire(self, held: _Held) -> None:
        name = held.lease.account
        if self._held.get(name) is not held or time.monotonic() < held.deadline:
            return
        del self._held[name]
        self._runner.discard(name)  # its watch is cancelled now, not at the next tick
        self._publish(LeaseLost(name, held.lease.token, "expired"))

    def _start(self, lease: WatchLease, renewed: float) -> None:
        held = _Held(lease, 0.0, lease.state, lease.seq, ok_at=renewed)
        if lease.how == "adopted":
            held.adopted_until = self._orphans.get(lease.account, 0.0)
        else:
            held.fallback = not self._members.mine(lease.account)
        self._arm(held, renewed + self.store.lease * 0.9)
        self._held[lease.account] = held
        self._free_since.pop(lease.account, None)
        self.claims += 1
        self._runner.add(lease.account)
        self._publish(LeaseClaimed(lease.account, lease.token, lease.how, lease.previous))

    def _progress(self, held: _Held) -> None:
        """The account made progress (a poll or a write succeeded): it is not failing."""
        if self._held.get(held.lease.account) is not held:
            return
        held.ok_at = self._progress_at = time.monotonic()
        self._runner.progress(held.lease.account)  # failing: ``Recovered``, see ``_ran``

    async def _watch(self, name: str) -> None:
        """Watch one account held, every batch through the fence; a watch that stops
        (the source ended, a write overdue) is started again after the runner's backoff."""
        held = self._held.get(name)
        if held is None:
            return  # dropped meanwhile: the runner forgets it
        try:
            await self.watch(name, held.state, _Committer(self, held))
        except LeaseLostError:
            self.refused += 1
            if self._held.get(name) is held:
                del self._held[name]
                if held.timer is not None:
                    held.timer.cancel()
            self._publish(LeaseRefused(name, held.lease.token))
            return  # done: the runner forgets it
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the runner's: the account was dropped, or the worker stops
            # Nobody here cancelled it (the watch awaited a future another party
            # cancelled): it ended, and starts again like any watch that ends.
        raise _Ended

    def _ran(self, event: RunEvent[str]) -> None:
        """The runner's word on a held account's watch: ``AccountFailing`` when it first
        fails, ``AccountRecovered`` when it works again."""
        name = event.item
        held = self._held.get(name)
        if held is None:
            return
        if not isinstance(event, Failed):
            if held.failing_since is not None and held.failing_at is not None:
                self._publish(AccountRecovered(name, held.failing_at, held.failed))
            held.failed = 0
            held.failing_since = held.failing_at = None
        elif not isinstance(event.error, (_Ended, _Overdue)):
            held.failed += 1
            text, delay = error_text(event.error), event.retry_in
            if held.failing_since is None:
                held.failing_since, held.failing_at = time.monotonic(), datetime.now(UTC)
                self._publish(
                    account_failing(name, event.error, held.failed, delay, held.failing_at)
                )
            else:
                logger.warning(
                    "account %s: failed again (%s); trying again in %.1f s", name, text, delay
                )

    async def _drop(
        self, name: str, kind: Literal["lost", "released"], reason: LeaseReason
    ) -> None:
        """Stop watching ``name``; a release first lets a write in flight end (at most
        until the lease's deadline), so that the account is handed over between batches."""
        held = self._held.pop(name, None)
        if held is None:
            return
        if held.timer is not None:
            held.timer.cancel()
        if kind == "released" and held.writing.locked():
            with contextlib.suppress(TimeoutError):
                limit = max(0.0, held.deadline - time.monotonic())
                await asyncio.wait_for(held.writing.acquire(), limit)
        await self._runner.remove(name)
        ended = (LeaseLost if kind == "lost" else LeaseReleased)(name, held.lease.token, reason)
        self._publish(ended)

    async def _give_up_stalled(self) -> None:
        """Give up the accounts whose polls keep failing here: a healthy worker adopts them."""
        now = time.monotonic()
        stalled = [
            name
            for name, held in self._held.items()
            if held.failed >= 2 and now - held.ok_at >= self.stall_after
        ]
        if not stalled:
            return
        leases = [self._held[name].lease for name in stalled]
        self._stalled_at = now
        for name in stalled:
            # Not claimed again for a lease, unless nobody else took it by then.
            self._avoid[name] = now + self.store.lease
            self._orphaned[name] = now + self.stall_cooldown
            await self._drop(name, "released", "stalled")
        await self.store.give_up(leases, self.stall_cooldown)

    def _unreachable(self, exc: BaseException) -> None:
        self._failed_at = time.monotonic()
        if self._down_since is None:
            self._down_since = self._failed_at
            self._down_at = datetime.now(UTC)
            self._publish(RedisDown(self._down_at, describe_failure(exc), self.tick))

    def _answering(self, started: float) -> None:
        # Only a round that began after the last failure proves that Redis is back.
        if self._down_since is not None and started > self._failed_at:
            down_for = time.monotonic() - self._down_since
            since = self._down_at or datetime.now(UTC)
            self._down_since = self._down_at = None
            self._publish(RedisUp(since, down_for))

    async def _shutdown(self) -> None:
        held = list(self._held.values())
        for h in held:
            await self._drop(h.lease.account, "released", "stop")
        with contextlib.suppress(StateUnavailableError, StateConfigurationError):
            await self.store.release([h.lease for h in held], leave=True)

    def __repr__(self) -> str:
        return (
            f"<RedisWatchCoordinator worker={self.store.worker_id!r} "
            f"holds={len(self._held)}/{len(self.accounts)}>"
        )
