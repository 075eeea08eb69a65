"""``LogWatcher``: watch the new logs of every account of an ``AccountPool`` at once.

Per account, one *poll* is the step "given the stored ``AccountState`` S, deliver
what is new and store S'":

1. (``health=True``) ``GET /integrations``; ``health_transitions`` (pure) compares
   each integration's ``started_failing_at`` with S and yields an
   ``IntegrationFailing`` or ``IntegrationRecovered`` per change;
2. ``client.logs.watch(S.logs, once=True)``: for each ``LogBatch``, the handler
   gets ``NewLogs`` and then ``store.save(account, S', batch.items)`` runs.

Where logs and states go is the store's business (``WatchStore``): ``save`` is
the one place a poll's output is committed. ``DirectoryWatchStore`` (one JSON file
per account, written to a temporary file, fsync-ed, renamed over the old one,
directory fsync-ed) and ``MemoryWatchStore`` keep the state only: the handler is
called first, so a crash between the handler and ``save`` delivers that batch
again on restart (at least once). A store whose ``save`` writes the logs and the
state in one atomic step (the CLI's files, a Redis ``MULTI``) delivers each log
exactly once; the handler then only reports.

Scheduling: every account is due at start, then ``interval`` seconds after its
last poll ended; at most ``concurrency`` accounts are polled at a time. An
account whose poll fails (a ``SendcloudError`` after the client's own retries:
401, 5xx, a dropped connection) is reported as ``AccountFailed`` and tried again
after ``backoff * 2**(failures - 1)`` seconds (at most ``max_backoff``), while
the others go on. A ``StateConfigurationError`` (the pool's Redis refused its
password or database: every account's poll would fail alike, and no retry fixes
it) stops the run and is raised. With ``once=True`` every account is polled once and ``run``
returns.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol, TypeAlias
from urllib.parse import quote

import msgspec

from . import _observe, events
from . import _validate as check
from ._aio import sleep_until
from ._auth import Auth
from ._defaults import DEFAULT_PAGE_SIZE, DEFAULT_WATCH_INTERVAL, DEFAULT_WATCH_START
from ._errors import (
    ClientClosedError,
    InvalidInputError,
    SendcloudError,
    StateConfigurationError,
)
from ._fileio import atomic_write
from ._models import AwareDatetime, Integration, IntegrationLog
from ._retry import capped_backoff
from ._watch import DEFAULT_LOOKBACK, LateLog, WatchState, begin, check_lookback, check_start

if TYPE_CHECKING:
    from ._pool import AccountPool


__all__ = [
    "AccountFailed",
    "AccountPolled",
    "AccountState",
    "DirectoryWatchStore",
    "IntegrationFailing",
    "IntegrationRecovered",
    "LogWatcher",
    "MemoryWatchStore",
    "NewLogs",
    "WatchEvent",
    "WatchStore",
    "health_transitions",
]

ACCOUNT_STATE_VERSION: Final = 1


class AccountState(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What a ``LogWatcher`` keeps per account: the log watch and the failing integrations.

    ``failing`` maps integration id to its ``started_failing_at``; ``None`` until
    the integrations were first looked at.
    """

    version: int = ACCOUNT_STATE_VERSION
    logs: WatchState
    failing: dict[int, AwareDatetime] | None = None


_ACCOUNT_DECODER: Final = msgspec.json.Decoder(AccountState)
_ENCODER: Final = msgspec.json.Encoder()


# -- events ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NewLogs:
    """New logs of one account (a page at most), and the state just after them.

    ``late``: those of ``items`` that became visible behind the account's
    high-water mark (delivered from the lookback window), with how far behind.
    """

    account: str
    items: list[IntegrationLog]
    state: AccountState
    late: tuple[LateLog, ...] = ()

    @property
    def lateness(self) -> float:
        """Seconds the latest of ``late`` was behind the mark (0.0: none was late)."""
        return max((log.behind for log in self.late), default=0.0)


@dataclass(frozen=True, slots=True)
class IntegrationFailing:
    """An integration got a ``started_failing_at`` (or a new one): it started failing."""

    account: str
    integration: Integration
    since: datetime


@dataclass(frozen=True, slots=True)
class IntegrationRecovered:
    """An integration's ``started_failing_at`` cleared (or changed): it works again."""

    account: str
    integration: Integration
    failing_since: datetime


@dataclass(frozen=True, slots=True)
class AccountFailed:
    """A poll of one account failed; it is tried again in ``retry_in`` seconds."""

    account: str
    error: SendcloudError
    failures: int
    retry_in: float


@dataclass(frozen=True, slots=True)
class AccountPolled:
    """A poll of one account finished: how many new logs, what is failing, when next.

    ``late_logs`` of the new logs were behind the high-water mark, the latest of
    them by ``lateness`` seconds (size ``lookback`` from the worst seen).
    """

    account: str
    new_logs: int
    failing: tuple[int, ...]
    polled_at: float
    next_poll: float | None
    late_logs: int = 0
    lateness: float = 0.0


WatchEvent: TypeAlias = (
    NewLogs | IntegrationFailing | IntegrationRecovered | AccountFailed | AccountPolled
)
Handler: TypeAlias = Callable[[WatchEvent], Awaitable[None] | None]


def health_transitions(
    account: str, previous: Mapping[int, datetime] | None, integrations: Sequence[Integration]
) -> tuple[list[IntegrationFailing | IntegrationRecovered], dict[int, datetime]]:
    """The health events between two looks at the integrations, and the new failing map.

    The first look (``previous is None``) reports the integrations failing already.
    A ``started_failing_at`` that changed is a recovery and a new failure. An
    integration that disappeared is forgotten without an event.
    """
    before = previous or {}
    now: dict[int, datetime] = {}
    events: list[IntegrationFailing | IntegrationRecovered] = []
    for integration in integrations:
        since = integration.started_failing_at
        was = before.get(integration.id)
        if was is not None and was != since:
            events.append(IntegrationRecovered(account, integration, was))
        if since is not None:
            now[integration.id] = since
            if since != was:
                events.append(IntegrationFailing(account, integration, since))
    return events, now


# -- stores ------------------------------------------------------------------------------


class WatchStore(Protocol):
    """Where a ``LogWatcher`` keeps each account's ``AccountState`` (and maybe its logs).

    ``save(account, state, logs)`` commits a poll's progress: ``logs`` are the
    new logs that ``state`` moves past (empty when only health or the start
    changed). Storing both in one atomic step makes delivery exactly-once.
    """

    async def load(self, account: str) -> AccountState | None:
        """The saved state of ``account``, or ``None`` if it has none."""
        ...

    async def save(self, account: str, state: AccountState, logs: Sequence[IntegrationLog]) -> None:
        """Commit ``state`` (and, if this store keeps them, ``logs``) for ``account``."""
        ...


class MemoryWatchStore:
    """States in a dict (lost when the process ends): for tests and one-off runs."""

    def __init__(self) -> None:
        self.states: dict[str, AccountState] = {}

    async def load(self, account: str) -> AccountState | None:
        return self.states.get(account)

    async def save(self, account: str, state: AccountState, logs: Sequence[IntegrationLog]) -> None:
        self.states[account] = state


def decode_account_state(raw: bytes, where: object) -> AccountState:
    """An ``AccountState`` from its JSON; ``InvalidInputError`` naming ``where`` otherwise."""
    try:
        state = _ACCOUNT_DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInputError(f"the watch state {where} is damaged: {exc}") from None
    if state.version != ACCOUNT_STATE_VERSION:
        raise InvalidInputError(
            f"the watch state {where} has version {state.version}; "
            f"this sendcloud-async reads version {ACCOUNT_STATE_VERSION}"
        )
    return state


class DirectoryWatchStore:
    """One ``NAME.json`` per account in ``directory``, replaced atomically and fsync-ed.

    Account names are percent-encoded into file names. The directory is created
    if missing. Reads and writes run in a worker thread.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, account: str) -> Path:
        """The file of ``account``."""
        return self.directory / (quote(check.non_empty_str(account, "account"), safe="") + ".json")

    def _load(self, account: str) -> AccountState | None:
        where = self.path(account)
        try:
            raw = where.read_bytes()
        except FileNotFoundError:
            return None
        return decode_account_state(raw, where)

    def _save(self, account: str, state: AccountState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path(account), _ENCODER.encode(state) + b"\n")

    async def load(self, account: str) -> AccountState | None:
        return await asyncio.to_thread(self._load, account)

    async def save(self, account: str, state: AccountState, logs: Sequence[IntegrationLog]) -> None:
        await asyncio.to_thread(self._save, account, state)


# -- the watcher -----------------------------------------------------------------------------


def _count(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be an int of 1 or more, got {value!r}")
    return value


class LogWatcher:
    """Watch the new logs of many accounts (see the module docstring).

    ::

        async with sc.AccountPool(rate_limit=sc.RateLimits()) as pool:
            watcher = sc.LogWatcher(pool, {"shop-a": auth_a, "shop-b": auth_b},
                                    store=sc.DirectoryWatchStore("watch-state"))
            await watcher.run(handle)          # handle(event) for every WatchEvent

    ``integrations`` maps an account name to the one integration whose logs it
    watches (default: all of the account's). Arguments are checked here, before
    any request.
    """

    def __init__(
        self,
        pool: AccountPool,
        accounts: Mapping[str, Auth],
        *,
        store: WatchStore,
        start: str | datetime = DEFAULT_WATCH_START,
        interval: float = DEFAULT_WATCH_INTERVAL,
        page_size: int = DEFAULT_PAGE_SIZE,
        concurrency: int = 10,
        health: bool = True,
        backoff: float = 30.0,
        max_backoff: float = 3600.0,
        integrations: Mapping[str, int] | None = None,
        lookback: float | timedelta = DEFAULT_LOOKBACK,
    ) -> None:
        from ._pool import AccountPool  # here: importing the watch types loads no aiohttp

        if not isinstance(pool, AccountPool):
            raise InvalidInputError(f"pool must be an AccountPool, not {type(pool).__name__}")
        if not isinstance(accounts, Mapping):
            raise InvalidInputError(
                f"accounts must be a mapping of name to credentials, not {type(accounts).__name__}"
            )
        for name, auth in accounts.items():
            check.non_empty_str(name, "account name")
            if not isinstance(auth, Auth):
                raise InvalidInputError(
                    f"the credentials of account {name!r} must be BasicAuth or "
                    f"OAuth2ClientCredentials, not {type(auth).__name__}"
                )
        for method in ("load", "save"):
            if not callable(getattr(store, method, None)):
                raise InvalidInputError(
                    "store must have async load() and save(), like MemoryWatchStore"
                )
        size = check.required_page_size(page_size)
        self._pool = pool
        self._accounts = dict(accounts)
        self._store = store
        self._start = check_start(start)
        self._interval = check.positive_seconds(interval, "interval")
        self._page_size = size
        self._concurrency = _count(concurrency, "concurrency")
        self._health = check.boolean(health, "health")
        self._backoff = check.positive_seconds(backoff, "backoff")
        self._max_backoff = check.positive_seconds(max_backoff, "max_backoff")
        self._lookback = check_lookback(lookback)
        self._integrations: dict[str, int] = {}
        for name, ident in (integrations or {}).items():
            if name not in self._accounts:
                raise InvalidInputError(f"integrations names an unknown account {name!r}")
            self._integrations[name] = check.integration_id(ident, f"integrations[{name!r}]")
        self._states: dict[str, AccountState] = {}
        self._failures: dict[str, int] = {}

    @property
    def accounts(self) -> list[str]:
        """The account names, in the order given."""
        return list(self._accounts)

    def retry_in(self, failures: int) -> float:
        """Seconds before an account that failed ``failures`` times in a row is tried again."""
        return capped_backoff(failures, self._backoff, self._max_backoff)

    async def poll(self, account: str, handler: Handler | None = None) -> AccountState:
        """One poll of one account: health, then every new log; the state after it.

        Raises what the client raises (nothing is retried here beyond the client's
        own retries); the state saved so far stays valid.
        """
        state, _, _ = await self._poll(account, handler)
        return state

    async def _poll(
        self, account: str, handler: Handler | None
    ) -> tuple[AccountState, int, list[LateLog]]:
        client = self._pool.client(self._accounts[account])
        iid = self._integrations.get(account)
        state = self._states.get(account)
        if state is None:
            state = await self._store.load(account)
            if state is not None:
                # Checked once, as ``logs.watch`` checks a state it is given: from then
                # on it is the watch's own, and each poll skips the check.
                logs = begin(state.logs, start=self._start, integration_id=iid)
                if logs is not state.logs:
                    state = msgspec.structs.replace(state, logs=logs)
        dirty = state is None
        if state is None:
            state = AccountState(logs=WatchState.initial(self._start, integration_id=iid))
        self._states[account] = state
        new_logs = 0
        late: list[LateLog] = []
        if self._health:
            events, failing = health_transitions(
                account, state.failing, await client.integrations.list()
            )
            for event in events:
                await _call(handler, event)
            if failing != state.failing:
                state = msgspec.structs.replace(state, failing=failing)
                dirty = True
        if dirty:
            await self._store.save(account, state, ())
            self._states[account] = state
        batches = client.logs._watch(
            state.logs, iid, self._page_size, self._interval, True, self._lookback
        )
        async for batch in batches:
            state = msgspec.structs.replace(state, logs=batch.state)
            late += batch.late
            await _call(handler, NewLogs(account, batch.items, state, batch.late))
            await self._store.save(account, state, batch.items)
            self._states[account] = state
            new_logs += len(batch.items)
        return state, new_logs, late

    async def run(self, handler: Handler | None = None, *, once: bool = False) -> None:
        """Poll every account (``once``: one time each), calling ``handler`` per event.

        ``handler`` may be a plain function or a coroutine function; an exception
        it raises stops the run (with the state of the events before it saved).
        Cancel the task to stop: polls in flight are cancelled, and what was
        saved stays valid.
        """
        stop_after_one = check.boolean(once, "once")
        due: list[tuple[float, int, str]] = [(0.0, n, a) for n, a in enumerate(self._accounts)]
        heapq.heapify(due)
        ready: asyncio.Queue[str | None] = asyncio.Queue(maxsize=self._concurrency)
        wake = asyncio.Event()
        order = {name: n for n, name in enumerate(self._accounts)}
        in_flight = 0
        loop = asyncio.get_running_loop()

        def take_due() -> str | None:
            """The first account due by now, off the heap (``None``: none is due yet)."""
            nonlocal in_flight
            if due and due[0][0] <= loop.time():
                in_flight += 1
                return heapq.heappop(due)[2]
            return None

        async def worker() -> None:
            nonlocal in_flight
            while True:
                # An account due already is taken straight off the heap (no hand-over:
                # a task switch per poll saved); the dispatcher hands out the accounts
                # that become due while every worker waits.
                account = take_due()
                if account is None:
                    account = await ready.get()
                    if account is None:
                        return
                next_at = await self._one(account, handler, stop_after_one)
                in_flight -= 1
                if next_at is not None:
                    entry = (next_at, order[account], account)
                    heapq.heappush(due, entry)
                    if due[0] is entry:
                        wake.set()  # the dispatcher sleeps for a later one, or for none

        async def dispatch() -> None:
            nonlocal in_flight
            while due or (in_flight and not stop_after_one):
                if not due:
                    wake.clear()
                    await wake.wait()
                    continue
                at = due[0][0]
                delay = at - loop.time()
                if delay > 0:
                    wake.clear()
                    await sleep_until(wake, delay)
                    continue
                _, _, account = heapq.heappop(due)
                in_flight += 1
                await ready.put(account)
            for _ in range(self._concurrency):
                await ready.put(None)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(self._concurrency):
                    group.create_task(worker())
                group.create_task(dispatch())
        except BaseExceptionGroup as group_error:
            # One failure stops the run (the others were cancelled because of it):
            # raise it as it is, not wrapped.
            errors = group_error.exceptions
            if len(errors) == 1:
                raise errors[0] from None
            raise

    async def _one(self, account: str, handler: Handler | None, once: bool) -> float | None:
        """Poll ``account``, report the outcome; when it is due again (``None``: never)."""
        loop = asyncio.get_running_loop()
        try:
            state, new_logs, late = await self._poll(account, handler)
        except (ClientClosedError, StateConfigurationError):
            raise  # nothing a retry fixes, and not this account's: the run stops
        except SendcloudError as exc:
            failures = self._failures.get(account, 0) + 1
            self._failures[account] = failures
            wait = self.retry_in(failures)
            await _call(handler, AccountFailed(account, exc, failures, wait))
            return None if once else loop.time() + wait
        self._failures.pop(account, None)
        failing = tuple(sorted(state.failing or ()))
        next_at = None if once else loop.time() + self._interval
        await _call(
            handler,
            AccountPolled(
                account,
                new_logs,
                failing,
                time.time(),
                None if next_at is None else time.time() + self._interval,
                len(late),
                max((log.behind for log in late), default=0.0),
            ),
        )
        return next_at


async def _call(handler: Handler | None, event: WatchEvent) -> None:
    _relay(event)  # sendcloud_async.events, when anyone listens
    if handler is None:
        return
    result = handler(event)
    if inspect.isawaitable(result):
        await result


#: Accounts a ``LogWatcher`` reported failing (to say ``AccountRecovered`` after).
_failing: Final[set[str]] = set()


def _relay(event: WatchEvent) -> None:
    """A ``LogWatcher`` event, as the public events it amounts to (if anyone subscribed)."""
    if not _observe.listening():
        return
    found: list[events.Event] = []
    if isinstance(event, NewLogs):
        if event.items:
            newest = max(
                (log.created_at for log in event.items if log.created_at is not None),
                default=None,
            )
            lag = None if newest is None else max(0.0, time.time() - newest.timestamp())
            found.append(events.BatchDelivered(event.account, len(event.items), lag))
        if event.late:
            found.append(events.LatenessSeen(event.account, len(event.late), event.lateness))
    elif isinstance(event, AccountPolled):
        found.append(events.PollCompleted(event.account, event.new_logs))
        if event.account in _failing:
            _failing.discard(event.account)
            found.append(events.AccountRecovered(event.account))
    elif isinstance(event, AccountFailed):
        _failing.add(event.account)
        found.append(
            events.AccountFailing(
                event.account, type(event.error).__name__, event.failures, event.retry_in
            )
        )
    for public in found:
        _observe.publish(public)
