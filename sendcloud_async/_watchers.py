"""``LogWatcher``: watch the new logs of every account of an ``AccountPool`` at once.

Per account, one *poll* is the step "given the stored ``AccountState`` S, deliver
what is new and store S'":

1. (``health=True``) ``GET /integrations``; ``health_transitions`` (pure) compares
   each integration's ``started_failing_at`` with S and yields an
   ``IntegrationFailing`` or ``IntegrationRecovered`` per change;
2. ``client.logs.watch(S.logs, once=True)``: for each ``LogBatch``, the handler
   gets ``NewLogs`` and then ``store.save(account, S', batch.items)`` runs; a poll
   that delivered nothing but changed the state (its window closed, a walk
   finished) ends with ``store.save(account, S', [])``, without ``NewLogs``.

Where logs and states go is the store's business (``WatchStore``): ``save`` is
the one place a poll's output is committed; a ``save`` that raises (or is
cancelled) may have committed, so the next poll loads the state again.
``DirectoryWatchStore`` and ``MemoryWatchStore`` keep the state only: the handler
is called first, so a crash between the handler and ``save`` delivers that batch
again (at least once). A store whose ``save`` writes the logs and the state in one
atomic step (``FileWatchStore``, a Redis ``MULTI``) delivers each log exactly once.

Scheduling is the engine's ``run_due``: every account is due at start, then
``interval`` seconds after its last poll ended, at most ``concurrency`` at a time.
A poll's ``SendcloudError`` is the account's (``AccountFailed``, tried again after
``backoff`` doubling up to ``max_backoff``; under ``once``, not tried again); a
``ClientClosedError``, a ``StateConfigurationError`` or any error of the handler
(even a ``SendcloudError``: ``_call`` carries it past the backoff in a
``_HandlerFailed``) stops the run and is raised as it is.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol, TypeAlias

import msgspec

from . import _observe, events
from . import _validate as check
from ._account_state import AccountState, check_account_state
from ._auth import Auth
from ._defaults import DEFAULT_PAGE_SIZE, DEFAULT_WATCH_INTERVAL, DEFAULT_WATCH_START
from ._engine import Backoff, Recovered, RunEvent, run_due
from ._errors import (
    ClientClosedError,
    InvalidInputError,
    SendcloudError,
    StateConfigurationError,
)
from ._event_types import account_failing
from ._models import Integration, IntegrationLog
from ._sources._watch_state import (
    DEFAULT_LOOKBACK,
    LateLog,
    WatchState,
    begin,
    check_lookback,
    check_start,
)

if TYPE_CHECKING:
    from ._pool import AccountPool


__all__ = [
    "AccountFailed",
    "AccountPolled",
    "AccountState",
    "IntegrationFailing",
    "IntegrationRecovered",
    "LogWatcher",
    "MemoryWatchStore",
    "NewLogs",
    "WatchEvent",
    "WatchStore",
    "health_transitions",
]

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
    """A poll of one account failed (its ``failures``-th in a row).

    ``retrying``: it is tried again in ``retry_in`` seconds. Under ``run(once=True)``
    it is not (``retrying=False``); ``retry_in`` then says when a run without
    ``once`` would try it again.
    """

    account: str
    error: SendcloudError
    failures: int
    retry_in: float
    retrying: bool = True


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


# -- the watcher -----------------------------------------------------------------------------


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
        self._concurrency = check.positive_int(concurrency, "concurrency")
        self._health = check.boolean(health, "health")
        # A poll's SendcloudError is the account's; a closed client or a state store
        # that refuses its configuration fails every account alike, and the handler's
        # own error is the caller's: the run stops.
        self._retry = Backoff(
            check.positive_seconds(backoff, "backoff"),
            check.positive_seconds(max_backoff, "max_backoff"),
            retry=(SendcloudError,),
            fatal=(ClientClosedError, StateConfigurationError, _HandlerFailed),
        )
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
        return self._retry.wait(failures)

    async def poll(self, account: str, handler: Handler | None = None) -> AccountState:
        """One poll of one account: health, then every new log; the state after it.

        Raises what the client raises (nothing is retried here beyond the client's
        own retries), or what ``handler`` raises; the state saved so far stays valid.
        """
        try:
            state, _, _ = await self._poll(account, handler)
        except _HandlerFailed as failed:
            error = failed.error
        else:
            return state
        raise error

    async def _poll(
        self, account: str, handler: Handler | None
    ) -> tuple[AccountState, int, list[LateLog]]:
        client = self._pool.client(self._accounts[account])
        iid = self._integrations.get(account)
        state = self._states.get(account)
        if state is None:
            state = await self._store.load(account)
            if state is not None:
                check_account_state(state, f"of account {account!r}")
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
            await self._save(account, state, ())
        batches = client.logs._watch(
            state.logs, iid, self._page_size, self._interval, True, self._lookback, True
        )
        async for batch in batches:
            state = msgspec.structs.replace(state, logs=batch.state)
            if batch.items:
                late += batch.late
                await _call(handler, NewLogs(account, batch.items, state, batch.late))
            # A batch without logs is the state a poll ended with (a walk finished, a
            # window closed): saved alone, so the next poll begins from it.
            await self._save(account, state, batch.items)
            new_logs += len(batch.items)
        return state, new_logs, late

    async def _save(
        self, account: str, state: AccountState, logs: Sequence[IntegrationLog]
    ) -> None:
        try:
            await self._store.save(account, state, logs)
        except BaseException:
            # Raised (or cancelled) midway, the store may have committed it: the next
            # poll loads what it holds rather than fetch (and append) the batch again.
            self._states.pop(account, None)
            raise
        self._states[account] = state

    async def run(self, handler: Handler | None = None, *, once: bool = False) -> None:
        """Poll every account (``once``: one time each), calling ``handler`` per event.

        ``handler`` may be a plain function or a coroutine function; an exception
        it raises (any, a ``SendcloudError`` too) stops the run and is raised as it
        is (with the state of the events before it saved). Cancel the task to stop:
        polls in flight are cancelled, and what was saved stays valid.
        """
        stop_after_one = check.boolean(once, "once")

        async def poll(account: str) -> float | None:
            state, new_logs, late = await self._poll(account, handler)
            wait = None if stop_after_one else self._interval
            failing = state.failing
            polled = AccountPolled(
                account,
                new_logs,
                tuple(sorted(failing)) if failing else (),
                time.time(),
                None if wait is None else time.time() + wait,
                len(late),
                max(log.behind for log in late) if late else 0.0,
            )
            await _call(handler, polled)
            return wait

        async def report(event: RunEvent[str]) -> None:
            if isinstance(event, Recovered):
                _observe.emit(events.AccountRecovered, event.item)
                return
            assert isinstance(event.error, SendcloudError)  # what the backoff retries
            failed = AccountFailed(
                event.item, event.error, event.failures, event.retry_in, event.retrying
            )
            await _call(handler, failed)

        try:
            await run_due(
                self._accounts,
                poll,
                concurrency=self._concurrency,
                backoff=self._retry,
                on_event=report,
                once=stop_after_one,
                failures=self._failures,
            )
        except _HandlerFailed as failed:
            error = failed.error
        else:
            return
        raise error  # outside the except: its own traceback, cause and context


class _HandlerFailed(Exception):
    """An error the handler raised, carried past the backoff (which would retry a
    ``SendcloudError`` as the account's) to ``run()`` and ``poll()``, which raise
    ``error`` itself."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


async def _call(handler: Handler | None, event: WatchEvent) -> None:
    """``handler(event)`` (awaited if it returns an awaitable); its error as ``_HandlerFailed``."""
    _relay(event)  # sendcloud_async.events, when anyone listens
    if handler is None:
        return
    try:
        result = handler(event)
        if inspect.isawaitable(result):
            await result
    except Exception as exc:
        raise _HandlerFailed(exc) from exc


def _relay(event: WatchEvent) -> None:
    """A ``LogWatcher`` event, as the public events it amounts to (if anyone subscribed)."""
    if not _observe.listening():
        return
    if isinstance(event, NewLogs):
        if event.items:
            times = (log.created_at for log in event.items if log.created_at is not None)
            newest = max(times, default=None)
            lag = None if newest is None else max(0.0, time.time() - newest.timestamp())
            _observe.publish(events.BatchDelivered(event.account, len(event.items), lag))
        if event.late:
            _observe.publish(events.LatenessSeen(event.account, len(event.late), event.lateness))
    elif isinstance(event, AccountPolled):
        _observe.publish(events.PollCompleted(event.account, event.new_logs))
    elif isinstance(event, AccountFailed):
        _observe.publish(
            account_failing(event.account, event.error, event.failures, event.retry_in)
        )
