"""``LogWatcher`` over real sockets: many accounts, a failing one, health events, stores."""

from __future__ import annotations

import asyncio
import os
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

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
    assert all(isinstance(e.error, sc.AuthenticationError) for e in failed)
    polled = Counter(e.account for e in seen.of(sc.AccountPolled))
    assert polled["shop-0"] >= 3
    assert polled["shop-1"] >= 3
    assert "revoked" not in polled
    assert sorted(seen.logs["shop-0"]) == [1, 2]
    assert "revoked" not in seen.logs


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
