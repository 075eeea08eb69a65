"""``LogWatcher`` over real sockets: many accounts, a failing one, health events, stores."""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import msgspec
import pytest

import sendcloud_async as sc
from sendcloud_async._watchers import health_transitions
from sendcloud_async.testing import FakeSendcloud, Fault

E = TypeVar("E")


def accounts_of(fake: FakeSendcloud, count: int) -> dict[str, sc.BasicAuth]:
    """``count`` Basic accounts the fake accepts, named shop-0..."""
    return {f"shop-{n}": fake.add_account(f"pk-{n}", f"sk-{n}") for n in range(count)}


class Recorder:
    """Collects the events of a run, by type."""

    def __init__(self) -> None:
        self.events: list[sc.WatchEvent] = []
        self.logs: dict[str, list[int]] = defaultdict(list)

    def __call__(self, event: sc.WatchEvent) -> None:
        self.events.append(event)
        if isinstance(event, sc.NewLogs):
            self.logs[event.account] += [i.id for i in event.items if i.id is not None]

    def of(self, kind: type[E]) -> list[E]:
        """The events of one type, in order."""
        return [e for e in self.events if isinstance(e, kind)]


async def test_every_account_gets_every_new_log_once(fake: FakeSendcloud) -> None:
    """Three accounts, two once-polls with logs added between: each log once per account."""
    fake.seed(integrations=2, logs_per_integration=6)
    accounts = accounts_of(fake, 3)
    store = sc.MemoryWatchStore()
    seen = Recorder()
    async with sc.AccountPool(base_url=fake.base_url) as pool:
        watcher = sc.LogWatcher(pool, accounts, store=store, start="all", page_size=5)
        await watcher.run(seen, once=True)
        fake.add_log(1)
        fake.add_log(2)
        await sc.LogWatcher(pool, accounts, store=store, page_size=5).run(seen, once=True)
    every = [r["id"] for r in fake.logs]
    assert {a: sorted(ids) for a, ids in seen.logs.items()} == dict.fromkeys(accounts, every)
    polled = seen.of(sc.AccountPolled)
    assert Counter(e.account for e in polled) == dict.fromkeys(accounts, 2)
    assert set(store.states) == set(accounts)


async def test_a_failing_account_is_retried_with_backoff_while_others_go_on(
    fake: FakeSendcloud,
) -> None:
    """Bad credentials: AccountFailed with growing retry_in; the good accounts keep polling."""
    fake.seed(integrations=1, logs_per_integration=2)
    accounts: dict[str, sc.BasicAuth] = {
        **accounts_of(fake, 2),
        "revoked": sc.BasicAuth("pk-unknown", "sk-unknown"),
    }
    seen = Recorder()
    async with sc.AccountPool(base_url=fake.base_url, max_retries=0) as pool:
        watcher = sc.LogWatcher(
            pool,
            accounts,
            store=sc.MemoryWatchStore(),
            start="all",
            interval=0.05,
            backoff=0.04,
            max_backoff=0.1,
        )
        task = asyncio.create_task(watcher.run(seen))
        await asyncio.sleep(0.6)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    failed = seen.of(sc.AccountFailed)
    assert {e.account for e in failed} == {"revoked"}
    assert [e.failures for e in failed[:3]] == [1, 2, 3]
    assert [e.retry_in for e in failed[:3]] == [0.04, 0.08, 0.1]
    assert all(e.retrying for e in failed)
    assert all(isinstance(e.error, sc.AuthenticationError) for e in failed)
    polled = Counter(e.account for e in seen.of(sc.AccountPolled))
    assert polled["shop-0"] >= 3
    assert polled["shop-1"] >= 3
    assert "revoked" not in polled
    assert sorted(seen.logs["shop-0"]) == [1, 2]
    assert "revoked" not in seen.logs


async def test_with_once_a_failed_account_is_reported_as_not_retried(fake: FakeSendcloud) -> None:
    """``once=True``: ``AccountFailed(retrying=False)`` (``retry_in`` is what a run without
    ``once`` would wait), the account is asked once, and the run ends."""
    fake.seed(integrations=1, logs_per_integration=2)
    seen = Recorder()
    accounts = {"good": fake.basic_auth, "revoked": sc.BasicAuth("pk-unknown", "sk-unknown")}
    async with sc.AccountPool(base_url=fake.base_url, max_retries=0) as pool:
        watcher = sc.LogWatcher(
            pool, accounts, store=sc.MemoryWatchStore(), start="all", backoff=0.01, health=False
        )
        await asyncio.wait_for(watcher.run(seen, once=True), 10)
    failed = seen.of(sc.AccountFailed)
    assert [(e.account, e.failures, e.retry_in, e.retrying) for e in failed] == [
        ("revoked", 1, 0.01, False)
    ]
    assert isinstance(failed[0].error, sc.AuthenticationError)
    assert [e.account for e in seen.of(sc.AccountPolled)] == ["good"]
    asked = [r for r in fake.requests if r.path.endswith("/integrations/logs")]
    assert len(asked) == 2  # one poll each: the revoked account is not asked again


async def test_a_5xx_after_retries_is_reported_then_the_account_recovers(
    fake: FakeSendcloud, retries: list[object]
) -> None:
    """503s beyond the client's retries: AccountFailed(ServerError); then polled, nothing lost."""
    fake.seed(integrations=1, logs_per_integration=3)
    fake.inject("GET", "/integrations/logs", *[Fault.status(503)] * 3)
    seen = Recorder()
    async with sc.AccountPool(base_url=fake.base_url, max_retries=2) as pool:
        watcher = sc.LogWatcher(
            pool,
            {"main": fake.basic_auth},
            store=sc.MemoryWatchStore(),
            start="all",
            interval=0.05,
            backoff=0.01,
        )
        task = asyncio.create_task(watcher.run(seen))
        await asyncio.sleep(0.3)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    failed = seen.of(sc.AccountFailed)
    assert len(failed) == 1
    assert isinstance(failed[0].error, sc.ServerError)
    assert seen.logs["main"] == [1, 2, 3]


async def test_a_failing_account_is_one_public_failing_then_one_recovered_event(
    fake: FakeSendcloud,
) -> None:
    """The public events: AccountFailing per failed poll, then AccountRecovered once, after
    the first poll that works (and none for an account that never failed)."""
    from sendcloud_async import events

    fake.seed(integrations=1, logs_per_integration=1)
    fake.inject("GET", "/integrations/logs", *[Fault.status(503)] * 2)
    seen: list[events.Event] = []
    recorder = Recorder()
    async with sc.AccountPool(base_url=fake.base_url, max_retries=0) as pool:
        watcher = sc.LogWatcher(
            pool, {"main": fake.basic_auth}, store=sc.MemoryWatchStore(), start="all", backoff=0.01
        )
        with events.subscribe(seen.append):
            for _ in range(4):
                await watcher.run(recorder, once=True)
    kinds = [
        (type(e).__name__, e.account)
        for e in seen
        if isinstance(e, events.AccountFailing | events.AccountRecovered | events.PollCompleted)
    ]
    assert kinds == [
        ("AccountFailing", "main"),
        ("AccountFailing", "main"),
        ("PollCompleted", "main"),
        ("AccountRecovered", "main"),
        ("PollCompleted", "main"),
    ]
    failing = [e for e in seen if isinstance(e, events.AccountFailing)]
    assert [(e.failures, e.retry_in) for e in failing] == [(1, 0.01), (2, 0.02)]
    # error: the class; detail: the error on one line; since: a LogWatcher does not say
    assert all(e.detail.startswith(f"{e.error}: ") and "503" in e.detail for e in failing)
    assert [e.since for e in failing] == [None, None]
    assert recorder.logs["main"] == [1]


async def test_health_transitions_are_reported_once_across_restarts(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """started_failing_at appears: one IntegrationFailing; clears: one IntegrationRecovered."""
    fake.add_integration(id=1)
    fake.add_integration(id=2)
    store = sc.DirectoryWatchStore(tmp_path / "state")
    seen = Recorder()
    async with sc.AccountPool(base_url=fake.base_url) as pool:

        async def poll() -> None:
            await sc.LogWatcher(pool, {"main": fake.basic_auth}, store=store).run(seen, once=True)

        await poll()
        assert seen.of(sc.IntegrationFailing) == []
        fake.start_failing(2)
        await poll()
        await poll()
        failing = seen.of(sc.IntegrationFailing)
        assert [(e.account, e.integration.id) for e in failing] == [("main", 2)]
        assert seen.of(sc.AccountPolled)[-1].failing == (2,)
        fake.stop_failing(2)
        await poll()
        await poll()
    recovered = seen.of(sc.IntegrationRecovered)
    assert [e.integration.id for e in recovered] == [2]
    assert len(seen.of(sc.IntegrationFailing)) == 1


def test_health_transitions_pure() -> None:
    """First look reports what fails already; a changed instant is a recovery plus a failure."""
    a = datetime(2024, 1, 1, tzinfo=UTC)
    b = datetime(2024, 1, 2, tzinfo=UTC)
    ok = sc.Integration(id=1)
    bad = sc.Integration(id=2, started_failing_at=a)
    events, now = health_transitions("x", None, [ok, bad])
    assert [type(e).__name__ for e in events] == ["IntegrationFailing"]
    assert now == {2: a}
    events, now = health_transitions("x", now, [ok, sc.Integration(id=2, started_failing_at=b)])
    assert [(type(e).__name__, e.integration.id) for e in events] == [
        ("IntegrationRecovered", 2),
        ("IntegrationFailing", 2),
    ]
    events, now = health_transitions("x", now, [ok])
    assert events == []
    assert now == {}


async def test_directory_store_writes_atomically_and_refuses_damage(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """One JSON per account, no temp file left; a damaged one: AccountFailed, nothing sent."""
    fake.seed(integrations=1, logs_per_integration=4)
    store = sc.DirectoryWatchStore(tmp_path)
    seen = Recorder()
    async with sc.AccountPool(base_url=fake.base_url) as pool:
        accounts = {"shop/a b": fake.basic_auth}
        await sc.LogWatcher(pool, accounts, store=store, start="all").run(seen, once=True)
        assert sorted(os.listdir(tmp_path)) == ["shop%2Fa%20b.json"]
        saved = await store.load("shop/a b")
        assert saved is not None
        assert saved.logs.mark is not None
        store.path("shop/a b").write_bytes(b'{"logs": {"version": 1}, "colour": 3}')
        fake.clear_requests()
        await sc.LogWatcher(pool, accounts, store=store).run(seen, once=True)
    failed = seen.of(sc.AccountFailed)
    assert len(failed) == 1
    error = failed[0].error
    assert isinstance(error, sc.InvalidInputError)
    assert str(error).startswith(f"the watch state {store.path('shop/a b')} is damaged: ")
    assert "unknown field `colour`" in str(error)
    assert fake.requests == []


async def test_a_handler_error_stops_the_run_unwrapped(fake: FakeSendcloud) -> None:
    """An exception in the handler ends run() with that exception; its batch is not saved."""
    fake.seed(integrations=1, logs_per_integration=3)
    store = sc.MemoryWatchStore()

    def handler(event: sc.WatchEvent) -> None:
        if isinstance(event, sc.NewLogs):
            raise RuntimeError("disk full")

    async with sc.AccountPool(base_url=fake.base_url) as pool:
        watcher = sc.LogWatcher(pool, {"main": fake.basic_auth}, store=store, start="all")
        with pytest.raises(RuntimeError, match="disk full"):
            await watcher.run(handler, once=True)
    state = store.states["main"]
    assert state.logs.mark is None  # the initial state only: the batch was not committed


class _HandlerError:
    """A handler that raises ``error`` at its first event of type ``kind``, and counts."""

    def __init__(self, kind: type[object], error: Exception, *, awaited: bool = False) -> None:
        self.kind = kind
        self.error = error
        self.awaited = awaited
        self.events: list[sc.WatchEvent] = []
        self.raised = 0

    async def _later(self, event: sc.WatchEvent) -> None:
        await asyncio.sleep(0)
        self._maybe_raise(event)

    def _maybe_raise(self, event: sc.WatchEvent) -> None:
        if isinstance(event, self.kind):
            self.raised += 1
            raise self.error

    def __call__(self, event: sc.WatchEvent) -> Awaitable[None] | None:
        self.events.append(event)
        if self.awaited:
            return self._later(event)
        self._maybe_raise(event)
        return None


@pytest.mark.parametrize("awaited", [False, True], ids=["function", "coroutine"])
@pytest.mark.parametrize(
    ("kind", "error"),
    [
        (sc.NewLogs, sc.InvalidInputError("the handler's own call was refused")),
        (sc.AccountPolled, sc.ServerError(503, reason="the handler's own 503")),
        (sc.AccountFailed, sc.AuthenticationError(401, reason="the handler's own 401")),
    ],
    ids=["new-logs", "polled", "failed"],
)
async def test_a_handler_sendcloud_error_stops_the_run_and_is_not_retried(
    fake: FakeSendcloud, kind: type[object], error: sc.SendcloudError, awaited: bool
) -> None:
    """A ``SendcloudError`` the handler raises is not the account's: ``run()`` (without
    ``once``) raises that very exception at once, the handler is not called again with
    the same batch, and no ``AccountFailed`` reports it."""
    fake.seed(integrations=1, logs_per_integration=3)
    store = sc.MemoryWatchStore()
    handler = _HandlerError(kind, error, awaited=awaited)
    revoked = {"revoked": sc.BasicAuth("pk-unknown", "sk-unknown")}
    accounts = {"main": fake.basic_auth, **(revoked if kind is sc.AccountFailed else {})}
    async with sc.AccountPool(base_url=fake.base_url, max_retries=0) as pool:
        watcher = sc.LogWatcher(
            pool, accounts, store=store, start="all", interval=0.05, backoff=0.01, concurrency=1
        )
        with pytest.raises(type(error)) as raised:
            await asyncio.wait_for(watcher.run(handler), 10)
    assert raised.value is error
    assert handler.raised == 1
    failed = [e for e in handler.events if isinstance(e, sc.AccountFailed)]
    assert [e.account for e in failed] == (["revoked"] if kind is sc.AccountFailed else [])
    if kind is sc.NewLogs:
        assert store.states["main"].logs.mark is None  # the batch was not committed


async def test_poll_raises_the_handlers_own_error_as_it_is(fake: FakeSendcloud) -> None:
    """``LogWatcher.poll`` raises the handler's error itself, and the batch stays unsaved."""
    fake.seed(integrations=1, logs_per_integration=3)
    store = sc.MemoryWatchStore()
    error = sc.NotFoundError(404, reason="the handler's own 404")
    async with sc.AccountPool(base_url=fake.base_url) as pool:
        watcher = sc.LogWatcher(pool, {"main": fake.basic_auth}, store=store, start="all")
        with pytest.raises(sc.NotFoundError) as raised:
            await watcher.poll("main", _HandlerError(sc.NewLogs, error))
        assert raised.value is error
        state = await watcher.poll("main")  # the same batch, delivered again
    assert state.logs.mark is not None
    assert store.states["main"] == state


def _log_watch_of_version(state: sc.AccountState, version: int) -> sc.AccountState:
    """``state`` with a ``WatchState`` of ``version`` in it (a newer release's)."""
    return msgspec.structs.replace(state, logs=msgspec.structs.replace(state.logs, version=version))


_UNREADABLE_LOG_WATCH = (
    "holds an unreadable log watch (state is not a valid WatchState: version 3; "
    "this sendcloud-async reads versions 1 and 2)"
)


async def test_a_saved_state_with_an_unreadable_log_watch_fails_the_account_by_name(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A saved ``AccountState`` whose ``WatchState`` this release cannot read: the
    directory store refuses it naming its file, any other store's is refused naming the
    account; before any request, once per run with ``once``."""
    fake.seed(integrations=1, logs_per_integration=2)
    directory = sc.DirectoryWatchStore(tmp_path)
    memory = sc.MemoryWatchStore()
    accounts = {"shop": fake.basic_auth}
    async with sc.AccountPool(base_url=fake.base_url) as pool:
        for store in (directory, memory):
            await sc.LogWatcher(pool, accounts, store=store, start="all").run(once=True)
        saved = memory.states["shop"]
        directory.path("shop").write_bytes(
            msgspec.json.encode(_log_watch_of_version(saved, 3)) + b"\n"
        )
        memory.states["shop"] = _log_watch_of_version(saved, 3)
        with pytest.raises(sc.InvalidInputError) as refused:
            await directory.load("shop")
        assert str(refused.value) == f"the watch state {directory.path('shop')} " + (
            _UNREADABLE_LOG_WATCH
        )
        messages = []
        for store in (directory, memory):
            seen = Recorder()
            fake.clear_requests()
            await sc.LogWatcher(pool, accounts, store=store).run(seen, once=True)
            assert fake.requests == []
            (failed,) = seen.of(sc.AccountFailed)
            assert isinstance(failed.error, sc.InvalidInputError)
            messages.append(str(failed.error))
    assert messages == [
        f"the watch state {directory.path('shop')} {_UNREADABLE_LOG_WATCH}",
        f"the watch state of account 'shop' {_UNREADABLE_LOG_WATCH}",
    ]


class _SlowDirectoryStore(sc.DirectoryWatchStore):
    """A directory store on a slow disk: once ``slow`` is set, each write takes 0.3 s."""

    slow = False

    def _save(self, account: str, state: sc.AccountState) -> None:
        if self.slow:
            time.sleep(0.3)
        super()._save(account, state)


async def test_a_run_cancelled_while_the_directory_store_writes_returns_after_the_write(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A cancel that lands while ``DirectoryWatchStore.save`` writes in its thread: the
    write finishes before ``run()`` raises ``CancelledError``, so the file holds the state
    of the batch at that moment, and nothing changes it afterwards."""
    fake.seed(integrations=1, logs_per_integration=3)
    store = _SlowDirectoryStore(tmp_path)
    batches: list[sc.AccountState] = []
    task: asyncio.Task[None] | None = None

    def cancel_while_saving(event: sc.WatchEvent) -> None:
        if isinstance(event, sc.NewLogs) and not batches:
            batches.append(event.state)
            store.slow = True
            assert task is not None
            asyncio.get_running_loop().call_soon(task.cancel)  # during save()

    async with sc.AccountPool(base_url=fake.base_url) as pool:
        watcher = sc.LogWatcher(pool, {"shop": fake.basic_auth}, store=store, start="all")
        task = asyncio.create_task(watcher.run(cancel_while_saving))
        with pytest.raises(asyncio.CancelledError):
            await task
        on_disk = store.path("shop").read_bytes()
        assert msgspec.json.decode(on_disk, type=sc.AccountState) == batches[0]
        await asyncio.sleep(0.4)
        assert store.path("shop").read_bytes() == on_disk


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"interval": -1}, "interval must be a positive number of seconds, got -1"),
        ({"concurrency": 0}, "concurrency must be an int of 1 or more, got 0"),
        ({"start": "later"}, "start must be 'now', 'all' or an aware datetime, got 'later'"),
        ({"page_size": 500}, "page_size must be between 1 and 100, got 500"),
        ({"backoff": 0}, "backoff must be a positive number of seconds, got 0"),
        ({"health": "yes"}, "health must be a bool, not str"),
        ({"store": object()}, "store must have async load() and save(), like MemoryWatchStore"),
        ({"accounts": [1]}, "accounts must be a mapping of name to credentials, not list"),
        ({"accounts": {"a": "secret"}}, "the credentials of account 'a' must be BasicAuth"),
        ({"accounts": {"": None}}, "account name must not be empty"),
    ],
)
async def test_bad_watcher_arguments_are_refused_before_any_request(
    fake: FakeSendcloud, kwargs: dict[str, object], message: str
) -> None:
    """Each bad argument: InvalidInputError with a clear message; nothing sent."""
    options: dict[str, object] = {
        "accounts": {"main": fake.basic_auth},
        "store": sc.MemoryWatchStore(),
        **kwargs,
    }
    async with sc.AccountPool(base_url=fake.base_url) as pool:
        with pytest.raises(sc.InvalidInputError) as info:
            sc.LogWatcher(pool, **options)  # type: ignore[arg-type]
    assert str(info.value).startswith(message)
    assert "secret" not in str(info.value)
    assert fake.requests == []
