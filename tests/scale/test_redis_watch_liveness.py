"""Liveness that means progress, lost claim replies, and every state change as an event.

Real servers only: a ``redis-server``, a ``FakeSendcloud``, and ``TcpProxy`` (a TCP
proxy on 127.0.0.1) for a network path a test breaks.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING, Any

import msgspec
import pytest
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, Fault
from tests._wait import until

from ._proxy import TcpProxy
from .conftest import RedisServer

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from sendcloud_async.redis import CoordinatorEvent, RedisWatchCoordinator, RedisWatchStore

ACCOUNTS = [f"acct-{n}" for n in range(1, 5)]  # acct-N watches integration N


class PolledFake(FakeSendcloud):
    """A FakeSendcloud that notes when each integration's logs were asked for (monotonic)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.polls: dict[int, list[float]] = defaultdict(list)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        parts = request.path.split("/")
        if request.method == "GET" and parts[-1] == "logs" and parts[-2].isdigit():
            self.polls[int(parts[-2])].append(time.monotonic())
        return await super()._handle(request)


class Recorder:
    """Collects a coordinator's events, with when they came (monotonic)."""

    def __init__(self) -> None:
        self.events: list[tuple[float, CoordinatorEvent]] = []

    def __call__(self, event: CoordinatorEvent) -> None:
        self.events.append((time.monotonic(), event))

    def names(self) -> list[str]:
        return [_name(event) for _, event in self.events]

    def of(self, name: str) -> list[Any]:
        return [event for _, event in self.events if _name(event) == name]


def _name(event: CoordinatorEvent) -> str:
    """The event's name (``lease_taken_over``, ``redis_down``, ...)."""
    from sendcloud_async.redis import describe_event

    return describe_event(event)[0]


def _sentence(event: CoordinatorEvent) -> str:
    """The sentence the coordinator logs for ``event``."""
    from sendcloud_async.redis import describe_event

    return describe_event(event)[2]


def _integration(name: str) -> int:
    return int(name.rsplit("-", 1)[1])


def _always(client: sc.SendcloudClient) -> Callable[[str], sc.SendcloudClient]:
    """The ``client`` argument of ``logs_watch``: ``client`` for every account."""
    return lambda name: client


@pytest.fixture
async def fake() -> AsyncIterator[PolledFake]:
    async with PolledFake(validate_spec=False) as server:
        server.seed(integrations=len(ACCOUNTS), logs_per_integration=3)
        yield server


async def _stream_ids(client: aioredis.Redis, store: RedisWatchStore, account: str) -> list[int]:
    entries: Any = await client.xrange(store.stream_key(account))
    return [msgspec.json.decode(fields[b"log"])["id"] for _, fields in entries]


async def test_a_worker_cut_off_from_sendcloud_hands_its_accounts_to_a_healthy_one(
    fake: PolledFake, redis_server: RedisServer, namespace: str, redis_client: aioredis.Redis
) -> None:
    """Two workers, Redis fine; A's path to the fake breaks (a proxy): B polls A's accounts
    within the documented bound, A stays out of them, every log is written once."""
    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore, logs_watch

    lease, interval = 1.0, 0.2
    async with AsyncExitStack() as stack:
        proxy = await stack.enter_async_context(TcpProxy(fake.port))
        runs: dict[str, tuple[RedisWatchCoordinator, Recorder, asyncio.Task[None]]] = {}
        for worker, base_url in (("a", proxy.url + "/api/v3"), ("b", fake.base_url)):
            client = await stack.enter_async_context(
                sc.SendcloudClient(auth=fake.basic_auth, base_url=base_url, max_retries=0)
            )
            store = await stack.enter_async_context(
                RedisWatchStore.from_url(
                    redis_server.url,
                    namespace=namespace,
                    stream_prefix=f"{namespace}:logs",
                    lease=lease,
                    worker_id={"a": "cut-off", "b": "healthy"}[worker],  # 2 accounts each
                )
            )
            watch = logs_watch(
                _always(client),
                integration_id=_integration,
                start="all",
                interval=interval,
            )
            recorder = Recorder()
            coordinator = RedisWatchCoordinator(store, ACCOUNTS, watch, on_event=recorder)
            runs[worker] = (coordinator, recorder, asyncio.create_task(coordinator.run()))
        a, a_events, a_task = runs["a"]
        b, b_events, b_task = runs["b"]
        try:
            await until(lambda: len(a.held) == len(b.held) == 2, 5, "split 2 + 2")
            await asyncio.sleep(0.5)  # both poll their accounts
            cut_off = sorted(a.held)
            proxy.cut()
            cut_at = time.monotonic()
            # The bound (docs/redis-watch.md): max(interval + 2 failed polls + lease/2,
            # stall_after) + lease/2; a failed poll takes next to nothing here (refused).
            bound = max(interval + lease / 2, a.stall_after) + lease / 2
            await until(lambda: len(b.held) == 4, bound + 1.0, f"B holds all ({b_events.names()})")

            def polled_after_cut() -> bool:
                return all(
                    any(t > cut_at for t in fake.polls[_integration(name)]) for name in cut_off
                )

            took = await until(polled_after_cut, bound + 1.0, "B polls A's accounts")
            assert took <= bound + 0.5, (took, bound)
            # A gave them up as failing; B adopted them, naming A.
            assert sorted(e.account for e in a_events.of("account_failing")) == cut_off
            given_up = a_events.of("lease_given_up")
            assert sorted(e.account for e in given_up) == cut_off
            assert all(e.reason == "stalled" for e in given_up)
            adopted = [e for e in b_events.of("lease_taken_over") if e.account in cut_off]
            assert sorted(e.account for e in adopted) == cut_off
            assert {(e.how, e.previous) for e in adopted} == {("adopted", "cut-off")}
            # B keeps them beyond its share; A does not claim them back meanwhile.
            await asyncio.sleep(lease * 1.5)
            assert a.held == {}
            assert len(b.held) == 4
            claimed_by_a = [e for e in a_events.of("lease_claimed") if e.account in cut_off]
            assert len(claimed_by_a) == 2  # its first claims only
        finally:
            proxy.heal()
            a.stop()
            b.stop()
            await asyncio.gather(a_task, b_task)
        for name in ACCOUNTS:  # handed over through the fence: no log twice, none lost
            ids = await _stream_ids(redis_client, b.store, name)
            expected = [
                log["id"] for log in fake.logs if log["integration_id"] == _integration(name)
            ]
            assert ids == expected, name


async def test_a_claim_whose_reply_was_lost_is_taken_back_at_once(
    fake: PolledFake, redis_server: RedisServer, namespace: str, redis_client: aioredis.Redis
) -> None:
    """The claim ran in Redis but its reply never came back (dropped by the proxy): the
    worker recognises the lease as its own at its next round, not a lease later."""
    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore, logs_watch

    target = redis_server.url.rsplit(":", 1)
    lease = 4.0
    async with (
        TcpProxy(int(target[1].split("/")[0])) as proxy,
        sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client,
        RedisWatchStore.from_url(
            f"redis://127.0.0.1:{proxy.port}/0",
            namespace=namespace,
            stream_prefix=f"{namespace}:logs",
            lease=lease,
            socket_timeout=0.3,
        ) as store,
    ):
        sha = store._scripts["claim"].sha.encode()
        proxy.swallow(b"EVALSHA\r\n$40\r\n" + sha)
        recorder = Recorder()
        watch = logs_watch(lambda name: client, integration_id=_integration, start="all")
        coordinator = RedisWatchCoordinator(store, ["acct-1"], watch, on_event=recorder)
        task = asyncio.create_task(coordinator.run())
        try:
            await until(lambda: proxy.seen == 1, 5, "the claim was sent")
            lost_at = time.monotonic()
            took = await until(lambda: "acct-1" in coordinator.held, lease, "taken back")
            assert time.monotonic() - lost_at < lease / 2  # a round or two, not a lease
            (claimed,) = recorder.of("lease_claimed")
            assert (claimed.how, claimed.token) == ("own", 2)  # the lost claim had token 1
            assert took > 0
        finally:
            coordinator.stop()
            await task
        assert await redis_client.get(store.key("acct-1", "fence")) == b"2"
        assert recorder.names()[:3] == ["redis_down", "redis_up", "lease_claimed"]


async def test_joins_leaves_and_deaths_are_events(
    fake: PolledFake, redis_server: RedisServer, namespace: str
) -> None:
    """A worker joins (the other rebalances), dies (the other takes over, naming it): events."""
    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore, source_watch

    async def idle(account: str, state: bytes | None) -> AsyncIterator[tuple[bytes, list[bytes]]]:
        yield b"0", []
        await asyncio.Event().wait()

    lease = 0.6
    async with (
        RedisWatchStore.from_url(
            redis_server.url,
            namespace=namespace,
            stream_prefix=f"{namespace}:logs",
            lease=lease,
            worker_id="survivor-0",
        ) as first,
        RedisWatchStore.from_url(
            redis_server.url,
            namespace=namespace,
            stream_prefix=f"{namespace}:logs",
            lease=lease,
            worker_id="doomed-0",  # owns 2 of the 4 accounts (rendezvous hashing)
        ) as second,
    ):
        events = Recorder()
        survivor = RedisWatchCoordinator(first, ACCOUNTS, source_watch(idle), on_event=events)
        survivor_task = asyncio.create_task(survivor.run())
        doomed = RedisWatchCoordinator(second, ACCOUNTS, source_watch(idle))
        try:
            await until(lambda: len(survivor.held) == 4, 5, "all four")
            doomed_task = asyncio.create_task(doomed.run())
            await until(lambda: len(survivor.held) == len(doomed.held) == 2, 5, "2 + 2")
            rebalanced = events.of("lease_rebalanced")
            assert len(rebalanced) == 2
            assert {e.reason for e in rebalanced} == {"rebalance"}
            gone = sorted(doomed.held)

            async def vanish() -> None:  # a crash: nothing released, the leases lapse
                doomed._runner.stop()  # the watches end, the leases stay

            doomed._shutdown = vanish  # type: ignore[method-assign]
            doomed_task.cancel()
            await until(lambda: len(survivor.held) == 4, 5, "taken over")
            taken = [e for e in events.of("lease_taken_over") if e.account in gone]
            assert sorted(e.account for e in taken) == gone
            assert {(e.how, e.previous) for e in taken} == {("takeover", second.worker_id)}
            assert all(
                _sentence(e).startswith(f"account {e.account}: taken over from worker")
                for e in taken
            )
        finally:
            survivor.stop()
            await survivor_task
    released = events.of("lease_released")
    assert sorted(e.account for e in released) == ACCOUNTS  # the clean stop
    assert {e.reason for e in released} == {"stop"}


@pytest.mark.alone  # leases must lapse within a bound while Redis is away
async def test_redis_down_and_up_are_one_event_each_and_say_so_once(
    redis_server: RedisServer, namespace: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The path to Redis breaks for a while: one RedisDown (its text not doubled), one RedisUp
    with how long it was gone, and the accounts back afterwards. ``sendcloud_async.events``
    subscribers get the very objects ``on_event`` gets, and none of them, nor the log,
    holds the URL's password."""
    import logging

    from sendcloud_async import events as public
    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore, source_watch

    secret = "s3cret-redis-pass"  # the default user of a Redis with no password takes any

    async def idle(account: str, state: bytes | None) -> AsyncIterator[tuple[bytes, list[bytes]]]:
        yield b"0", []
        await asyncio.Event().wait()

    caplog.set_level(logging.INFO, "sendcloud_async")
    port = int(redis_server.url.rsplit(":", 1)[1].split("/")[0])
    async with (
        TcpProxy(port) as proxy,
        RedisWatchStore.from_url(
            f"redis://default:{secret}@127.0.0.1:{proxy.port}/0",
            namespace=namespace,
            stream_prefix=f"{namespace}:logs",
            lease=0.4,
        ) as store,
    ):
        events = Recorder()
        published: list[public.Event] = []
        coordinator = RedisWatchCoordinator(store, ["a", "b"], source_watch(idle), on_event=events)
        task = asyncio.create_task(coordinator.run())
        with public.subscribe(published.append):
            try:
                await until(lambda: len(coordinator.held) == 2, 5, "both held")
                proxy.cut()
                cut_at = time.monotonic()
                await until(lambda: coordinator.held == {}, 2, "leases lapse while Redis is away")
                await asyncio.sleep(0.5)
                proxy.heal()
                healed_at = time.monotonic()
                await until(lambda: len(coordinator.held) == 2, 5, "both held again")
            finally:
                coordinator.stop()
                await task
    (down,) = events.of("redis_down")
    (up,) = events.of("redis_up")
    assert isinstance(down, public.RedisDown)
    assert isinstance(up, public.RedisUp)
    assert "Redis is unreachable since" in _sentence(down)
    # not "unreachable (Redis is unreachable: …)"
    assert _sentence(down).count("unreachable") == 1
    assert "writes nothing" in _sentence(down)
    assert down.error.startswith("ConnectionError: ")
    assert healed_at - cut_at - 0.3 <= up.down_for <= time.monotonic() - cut_at
    assert _sentence(up).startswith(f"Redis answers again after {up.down_for:.1f} s")
    assert up.since == down.since
    mine = [e for _, e in events.events]
    assert [e for e in published if any(e is m for m in mine)] == mine  # the same objects
    assert [type(e) for e in published if isinstance(e, public.RedisDown | public.RedisUp)] == [
        public.RedisDown,
        public.RedisUp,
    ]
    said = [repr(e) + _sentence(e) for e in mine] + [r.getMessage() for r in caplog.records]
    assert [line for line in said if secret in line] == []
    names = events.names()
    assert names.index("redis_down") < names.index("redis_up")
    assert names.count("lease_lost") == 2  # the leases lapsed meanwhile
    logged = [r.getMessage() for r in caplog.records if r.name == "sendcloud_async.redis.watch"]
    assert sum("Redis is unreachable" in m for m in logged) == 1
    assert sum("Redis answers again" in m for m in logged) == 1


async def test_an_account_failing_and_recovering_is_one_event_each(
    fake: PolledFake, redis_server: RedisServer, namespace: str
) -> None:
    """Polls of an account fail (500s) and then work: AccountFailing once, AccountRecovered
    once with the count; a worker alone keeps its account (nobody could do better)."""
    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore, log_watcher_watch

    fake.inject("GET", "/integrations", *[Fault.status(500)] * 3)
    async with (
        sc.AccountPool(base_url=fake.base_url, max_retries=0) as pool,
        RedisWatchStore.from_url(
            redis_server.url, namespace=namespace, stream_prefix=f"{namespace}:logs", lease=0.4
        ) as store,
    ):
        watch = log_watcher_watch(pool, {"acct-1": fake.basic_auth}, start="all", interval=0.05)
        events = Recorder()
        coordinator = RedisWatchCoordinator(
            store, ["acct-1"], watch, stall_after=60.0, on_event=events
        )
        task = asyncio.create_task(coordinator.run())
        try:
            await until(lambda: bool(events.of("account_recovered")), 10, "recovered")
        finally:
            coordinator.stop()
            await task
    (failing,) = events.of("account_failing")
    (recovered,) = events.of("account_recovered")
    assert failing.account == recovered.account == "acct-1"
    assert failing.error == "ServerError"
    assert failing.detail.startswith("ServerError: ")
    assert "500" in failing.detail
    assert failing.failures == 1
    assert _sentence(failing) == (
        f"account acct-1: failing ({failing.detail}); trying again in {failing.retry_in:.1f} s"
    )
    assert recovered.failing_since == failing.since
    assert recovered.failures == 3
    assert _sentence(recovered) == (
        f"account acct-1: works again after 3 failed attempts (failing since "
        f"{failing.since.astimezone().strftime('%H:%M:%S')})"
    )
    assert events.of("lease_given_up") == []  # stall_after is far away


async def test_an_account_nobody_else_takes_comes_back_after_a_lease(
    fake: PolledFake, redis_server: RedisServer, namespace: str
) -> None:
    """A worker alone, an account whose polls always fail (revoked credentials): it gives
    the account up, nobody adopts it, and the worker claims it again one lease later
    (giving up helps no one when every worker fails the same way)."""
    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore, log_watcher_watch

    lease = 0.4
    async with (
        sc.AccountPool(base_url=fake.base_url, max_retries=0) as pool,
        RedisWatchStore.from_url(
            redis_server.url,
            namespace=namespace,
            stream_prefix=f"{namespace}:logs",
            lease=lease,
        ) as store,
    ):
        revoked = sc.BasicAuth("pk-revoked", "sk-revoked")
        watch = log_watcher_watch(pool, {"acct-1": revoked}, start="all", interval=0.05)
        events = Recorder()
        coordinator = RedisWatchCoordinator(
            store, ["acct-1"], watch, stall_after=0.5, on_event=events
        )
        task = asyncio.create_task(coordinator.run())
        try:
            await until(lambda: len(events.of("lease_claimed")) >= 2, 10, "claimed back")
        finally:
            coordinator.stop()
            await task
    given_up = [t for t, e in events.events if _name(e) == "lease_given_up"]
    claimed = [t for t, e in events.events if _name(e) == "lease_claimed"]
    assert len(given_up) >= 1
    back = next(t for t in claimed if t > given_up[0])
    assert lease * 0.9 <= back - given_up[0] <= lease + 2 * coordinator.tick + 0.3
    assert events.of("lease_taken_over") == []  # its own account: no takeover
    failing = events.of("account_failing")
    assert failing
    assert "AuthenticationError" in failing[0].error
