"""What the coordinator runs for each account it holds: ``AccountWatch``es.

``source_watch`` adapts any async iterator of ``(state, logs)`` batches,
``logs_watch`` runs ``client.logs.watch`` (the state is ``sc.WatchState`` JSON),
``log_watcher_watch`` runs ``sc.LogWatcher`` with the fence as its ``WatchStore``
(the state is its ``AccountState`` JSON). Each writes through ``Commit``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec

from ..._account_state import AccountState, decode_account_state
from ..._defaults import DEFAULT_PAGE_SIZE, DEFAULT_WATCH_INTERVAL, DEFAULT_WATCH_START
from ..._sources._watch_state import (
    DEFAULT_LOOKBACK,
    begin,
    check_lookback,
    check_start,
)
from ..._validate import account_name, positive_seconds, required_page_size
from ..._validate import integration_id as valid_integration_id
from ..._watchers import Handler, LogWatcher, MemoryWatchStore

if TYPE_CHECKING:
    from ..._auth import Auth
    from ..._client import SendcloudClient
    from ..._models import IntegrationLog
    from ..._pool import AccountPool

#: A watch source: given an account name and its saved state (``None``: never watched),
#: yields ``(new_state, logs)`` batches, each log as its JSON bytes, in delivery order.
WatchSource = Callable[[str, bytes | None], AsyncIterator[tuple[bytes, Sequence[bytes]]]]


class Commit(Protocol):
    """What a watch is handed to write its batches and to say that its polls work.

    ``await commit(new_state, logs)`` writes one batch through the fence: it raises
    ``LeaseLostError`` when the fence refuses it and retries while Redis is
    unreachable. ``commit.polled()`` says that a poll succeeded, new logs or not:
    the progress by which the coordinator tells a working account from one whose
    polls keep failing (a written batch counts as progress too).
    """

    async def __call__(self, state: bytes, logs: Sequence[bytes], /) -> None:
        """Write ``logs`` and then ``state``, atomically, if this worker still holds the lease."""

    def polled(self) -> None:
        """Say that a poll of the account succeeded (even one that found nothing new)."""


#: Runs the watch of one account: ``await watch(name, state, commit)``, from ``state``
#: (the bytes written last, ``None``: never watched), calling ``commit`` for every
#: batch, until cancelled. ``source_watch``, ``logs_watch`` and ``log_watcher_watch``
#: make one.
AccountWatch = Callable[[str, bytes | None, Commit], Awaitable[None]]


def _polled(commit: Commit) -> None:
    """``commit.polled()``, if ``commit`` has it (a plain function handed by a test does not)."""
    polled = getattr(commit, "polled", None)
    if callable(polled):
        polled()


_ENCODE: Final = msgspec.json.Encoder().encode


def source_watch(source: WatchSource) -> AccountWatch:
    """An ``AccountWatch`` that commits every batch ``source`` yields, in order.

    Every batch written counts as progress; a source that yields nothing for long
    stretches and fails now and then counts its failures as in a row.
    """

    async def watch(account: str, state: bytes | None, commit: Commit) -> None:
        batches = source(account, state)
        try:
            async for new_state, logs in batches:
                await commit(new_state, logs)
        finally:
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                await aclose()

    return watch


def logs_watch(
    client: Callable[[str], SendcloudClient],
    *,
    integration_id: Callable[[str], int | None] = lambda name: None,
    start: str | datetime = DEFAULT_WATCH_START,
    interval: float = DEFAULT_WATCH_INTERVAL,
    page_size: int = DEFAULT_PAGE_SIZE,
    lookback: float | timedelta = DEFAULT_LOOKBACK,
) -> AccountWatch:
    """An ``AccountWatch`` over ``client(name).logs.watch(...)``; states are ``WatchState`` JSON.

    ``client`` gives the ``SendcloudClient`` of an account (e.g.
    ``pool.client(auths[name])``), ``integration_id`` the integration it watches
    (``None``: all of them). ``start`` applies to an account never written before:
    its starting state is written first, before the first poll, so that a worker
    dying early does not move the start of the next one. Each poll runs until the
    watch is caught up (``once=True``) and writes the state it ends with, also when
    it delivered nothing and that state changed (a walk finished, the window closed);
    then ``commit.polled()`` says it worked and the next one comes ``interval``
    seconds later. Arguments are checked now.
    """
    begin_at = check_start(start)
    every = positive_seconds(interval, "interval")
    size = required_page_size(page_size)
    window = check_lookback(lookback)

    async def watch(account: str, state: bytes | None, commit: Commit) -> None:
        iid = integration_id(account)
        if iid is not None:
            iid = valid_integration_id(iid)
        # Checked once, as ``logs.watch`` checks it: from then on the state is the watch's own.
        current = begin(state, start=begin_at, integration_id=iid)
        if state is None:  # the starting state, written before the first poll
            await commit(_ENCODE(current), [])
        while True:
            # Each poll also yields the state it ended with when it delivered nothing
            # (a walk finished, a window closed): written alone, the next poll begins from it.
            batches = client(account).logs._watch(current, iid, size, every, True, window, True)
            async with contextlib.aclosing(batches):
                async for batch in batches:
                    await commit(_ENCODE(batch.state), [_ENCODE(log) for log in batch.items])
                    current = batch.state
            _polled(commit)
            await asyncio.sleep(every)

    return watch


class _FencedWatchStore:
    """The ``WatchStore`` of one held account: ``save`` is the fenced commit."""

    def __init__(self, account: str, state: bytes | None, commit: Commit) -> None:
        self._account = account
        self._state = state
        self._commit = commit

    async def load(self, account: str) -> AccountState | None:
        if self._state is None:
            return None
        return decode_account_state(self._state, f"the Redis state of account {account}")

    async def save(self, account: str, state: AccountState, logs: Sequence[IntegrationLog]) -> None:
        raw = _ENCODE(state)
        await self._commit(raw, [_ENCODE(log) for log in logs])
        self._state = raw


def log_watcher_watch(
    pool: AccountPool,
    accounts: Mapping[str, Auth],
    *,
    handler: Handler | None = None,
    interval: float = DEFAULT_WATCH_INTERVAL,
    **options: Any,
) -> AccountWatch:
    """An ``AccountWatch`` that runs ``LogWatcher.poll`` every ``interval`` seconds.

    The account's ``AccountState`` (log watch and failing integrations) is what
    Redis keeps: ``LogWatcher``'s store is the fence, so each batch of logs and the
    state after it are written together, exactly once. ``handler`` gets the
    ``LogWatcher`` events (``NewLogs``, ``IntegrationFailing``,
    ``IntegrationRecovered``) of the accounts this worker holds; ``options`` go to
    ``LogWatcher`` (``start``, ``page_size``, ``health``, ``integrations``) and are
    checked now. Every poll that succeeds is reported with ``commit.polled()``.
    """
    every = positive_seconds(interval, "interval")
    names = dict(accounts)
    for name in names:
        account_name(name)
    LogWatcher(pool, names, store=MemoryWatchStore(), interval=every, **options)  # checks

    async def watch(account: str, state: bytes | None, commit: Commit) -> None:
        store = _FencedWatchStore(account, state, commit)
        watcher = LogWatcher(pool, names, store=store, interval=every, **options)
        while True:
            await watcher.poll(account, handler)
            _polled(commit)
            await asyncio.sleep(every)

    return watch
