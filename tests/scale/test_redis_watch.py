"""Leases, fencing tokens and the Redis Streams sink against a real redis-server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, suppress
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

import sendcloud_async as sc
from sendcloud_async.events import LeaseClaimed, LeaseLost
from sendcloud_async.testing import FakeSendcloud, Fault

from .conftest import RedisServer, free_port, redis_binary

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from sendcloud_async.redis import CoordinatorEvent, RedisWatchCoordinator, RedisWatchStore

StoreFactory = Callable[..., "RedisWatchStore"]
PREFIX = "test-logs"


@pytest.fixture
async def stores(redis_server: RedisServer, namespace: str) -> AsyncIterator[StoreFactory]:
    """Makes ``RedisWatchStore``s, each with its own connection and worker id (a 'worker')."""
    from sendcloud_async.redis import RedisWatchStore

    async with AsyncExitStack() as stack:

        def make(**options: Any) -> RedisWatchStore:
            options.setdefault("namespace", namespace)
            options.setdefault("stream_prefix", f"{namespace}:{PREFIX}")
            store = RedisWatchStore.from_url(redis_server.url, **options)
            stack.push_async_callback(store.aclose)
            return store

        yield make


async def _stream(client: aioredis.Redis, store: RedisWatchStore, account: str) -> list[bytes]:
    entries: Any = await client.xrange(store.stream_key(account))
    return [fields[b"log"] for _, fields in entries]


async def test_one_holder_at_a_time_and_tokens_grow_on_every_takeover(
    stores: StoreFactory,
) -> None:
    """A claims (token 1); B is refused while A holds; after A releases B gets token 2."""
    a, b = stores(lease=5.0), stores(lease=5.0)
    (held,), others = await a.claim(["acme"])
    assert (held.account, held.token, held.state, held.seq) == ("acme", 1, None, 0)
    assert others == {}
    again, others = await b.claim(["acme"])
    assert again == []
    assert 4.0 < others["acme"] <= 5.0
    (mine,), _ = await a.claim(["acme"])  # claiming what it holds: a new token
    assert mine.token == 2
    await a.release([held])  # the old lease is not this one: nothing released
    assert (await b.claim(["acme"]))[0] == []
    await a.release([mine])
    (taken,), _ = await b.claim(["acme"])
    assert taken.token == 3
    await b.release([held])  # a stale lease is not released by its worker
    assert (await a.claim(["acme"]))[0] == []


async def test_the_fence_refuses_a_stale_token_and_writes_nothing(
    stores: StoreFactory, redis_client: aioredis.Redis
) -> None:
    """A paused holder's write after a takeover: LeaseLostError, stream and state untouched."""
    from sendcloud_async.redis import LeaseLostError

    old, new = stores(lease=0.2), stores(lease=0.2)
    (stale,), _ = await old.claim(["acme"])
    seq = await old.commit(stale, b'{"s":1}', [b'{"id":1}'])
    assert seq == 1
    await asyncio.sleep(0.3)  # the lease lapses: the old holder was "paused"
    (lease,), _ = await new.claim(["acme"])
    assert (lease.token, lease.state, lease.seq) == (2, b'{"s":1}', 1)
    with pytest.raises(LeaseLostError, match=r"account acme: the write was refused.*token 1"):
        await old.commit(("acme", stale.token, 1), b'{"s":"stale"}', [b'{"id":2}'])
    assert await _stream(redis_client, old, "acme") == [b'{"id":1}']
    assert await new.read("acme") == (b'{"s":1}', 1)
    assert await redis_client.hget(old.key("acme", "state"), "refused") == b"1"
    assert await new.commit(lease, b'{"s":2}', [b'{"id":2}']) == 2
    assert await _stream(redis_client, new, "acme") == [b'{"id":1}', b'{"id":2}']


async def test_an_expired_lease_refuses_writes_even_without_a_takeover(
    stores: StoreFactory, redis_client: aioredis.Redis
) -> None:
    """Fence counter unchanged but the lease lapsed: the write is still refused."""
    from sendcloud_async.redis import LeaseLostError

    store = stores(lease=0.1)
    (lease,), _ = await store.claim(["acme"])
    await asyncio.sleep(0.2)
    assert await store.probe(["acme"]) == {"acme": 0}
    with pytest.raises(LeaseLostError):
        await store.commit(lease, b"{}", [b'{"id":1}'])
    assert await redis_client.exists(store.stream_key("acme")) == 0
    (again,), _ = await store.claim(["acme"])
    assert again.token == 2  # a new lease, even for the same worker


async def test_renewal_keeps_a_lease_and_reports_the_lost_ones(stores: StoreFactory) -> None:
    """Renewed leases outlive ``lease``; a lapsed one is reported lost, live workers counted."""
    a, b = stores(lease=0.3), stores(lease=0.3)
    leases, _ = await a.claim(["one", "two"])
    for _ in range(4):
        await asyncio.sleep(0.1)
        live, lost, soonest = await a.renew([x for x in leases if x.account == "one"])
        assert (live, lost, soonest) == (1, set(), None)
    live, lost, _ = await a.renew(leases)
    assert lost == {"two"}
    assert await b.heartbeat() == 2
    _, _, soonest = await a.renew([])
    assert soonest is not None
    assert 0.2 < soonest <= 0.3  # b's heartbeat
    held, others = await b.claim(["one", "two"])
    assert [x.account for x in held] == ["two"]
    assert set(others) == {"one"}


async def test_a_worker_taking_its_own_lease_again_fences_out_its_earlier_writes(
    stores: StoreFactory, redis_client: aioredis.Redis
) -> None:
    """Claimed again by the same worker: a new token; a write of the old watch is refused."""
    from sendcloud_async.redis import LeaseLostError

    store = stores()
    (first,), _ = await store.claim(["acme"])
    assert await store.commit(first, b'{"s":1}', [b'{"id":1}']) == 1
    (again,), _ = await store.claim(["acme"])  # e.g. after its deadline passed locally
    assert (again.token, again.state, again.seq) == (2, b'{"s":1}', 1)
    with pytest.raises(LeaseLostError, match="fencing token 1"):
        await store.commit(("acme", first.token, 1), b'{"s":2}', [b'{"id":2}'])
    assert await store.commit(again, b'{"s":2}', [b'{"id":2}', b'{"id":3}']) == 2
    assert await _stream(redis_client, store, "acme") == [b'{"id":1}', b'{"id":2}', b'{"id":3}']


async def test_a_retried_write_is_applied_once(
    stores: StoreFactory, redis_client: aioredis.Redis
) -> None:
    """The same commit sent twice (a reply lost) appends its logs once; a gap is refused."""
    from sendcloud_async.redis import LeaseLostError

    store = stores()
    (lease,), _ = await store.claim(["acme"])
    logs = [b'{"id":1}', b'{"id":2}', b'{"id":3}']
    assert await store.commit(lease, b'{"s":1}', logs) == 1
    assert await store.commit(lease, b'{"s":1}', logs) == 1
    assert await _stream(redis_client, store, "acme") == logs
    with pytest.raises(LeaseLostError, match="seq check"):  # same seq, another batch
        await store.commit(lease, b'{"s":"other"}', [b'{"id":4}'])
    with pytest.raises(LeaseLostError, match="seq check"):
        await store.commit(("acme", lease.token, 5), b'{"s":9}', [b'{"id":9}'])
    assert await _stream(redis_client, store, "acme") == logs
    fields = await redis_client.hgetall(store.key("acme", "state"))
    assert fields[b"state"] == b'{"s":1}'
    assert fields[b"seq"] == b"1"
    assert fields[b"token"] == b"1"
    assert int(fields[b"at"]) > 1_600_000_000_000


async def test_a_key_that_is_not_a_stream_is_an_error_and_nothing_is_written(
    stores: StoreFactory, redis_client: aioredis.Redis
) -> None:
    """PREFIX:NAME holding a string: a clear error, state unchanged."""
    store = stores()
    await redis_client.set(store.stream_key("acme"), "not a stream")
    (lease,), _ = await store.claim(["acme"])
    with pytest.raises(sc.InvalidInputError, match="exists and is not a stream"):
        await store.commit(lease, b'{"s":1}', [b'{"id":1}'])
    assert await store.read("acme") == (None, 0)


@pytest.mark.parametrize("trim", ["maxlen", "max_age"])
async def test_streams_are_trimmed(
    stores: StoreFactory, redis_client: aioredis.Redis, trim: str
) -> None:
    """MAXLEN ~ / MINID ~ trimming: old entries go, whole nodes at a time (approximate)."""
    options = {"stream_maxlen": 10} if trim == "maxlen" else {"stream_max_age": 0.2}
    store = stores(**options)
    (lease,), _ = await store.claim(["acme"])
    seq = lease.seq
    for batch in range(3):
        logs = [f'{{"id":{batch * 100 + i}}}'.encode() for i in range(100)]
        seq = await store.commit(("acme", lease.token, seq), b"{}", logs)
    await asyncio.sleep(0.3)
    await store.commit(("acme", lease.token, seq), b"{}", [b'{"id":"last"}'])
    length = await redis_client.xlen(store.stream_key("acme"))
    assert 1 <= length < 301
    if trim == "maxlen":
        assert length >= 10
    entries = await _stream(redis_client, store, "acme")
    assert entries[-1] == b'{"id":"last"}'


async def test_keys_follow_the_layout_expire_and_hold_no_secret(
    stores: StoreFactory, redis_client: aioredis.Redis, namespace: str
) -> None:
    """Every key is named as documented and expires; the stream only with stream_ttl."""
    prefix = f"{namespace}:{PREFIX}"
    store = stores(lease=5.0, state_ttl=60.0, stream_ttl=120.0, worker_id="host-1:42:ab")
    assert await store.heartbeat() == 1
    (lease,), _ = await store.claim(["acme"])
    await store.commit(lease, b'{"s":1}', [b'{"id":1}'])
    keys = sorted([k.decode() async for k in redis_client.scan_iter(f"{namespace}:*")])
    assert keys == sorted(
        [
            f"{prefix}:acme",
            f"{namespace}:watch:{{{prefix}:acme}}:lease",
            f"{namespace}:watch:{{{prefix}:acme}}:fence",
            f"{namespace}:watch:{{{prefix}:acme}}:state",
            f"{namespace}:watch:{{{prefix}}}:workers",
        ]
    )
    ttls = {k.rsplit(":", 1)[1]: await redis_client.pttl(k) for k in keys}
    assert 4_000 < ttls["lease"] <= 5_000
    assert 4_000 < ttls["workers"] <= 5_000
    assert 50_000 < ttls["fence"] <= 60_000
    assert 50_000 < ttls["state"] <= 60_000
    assert 100_000 < ttls["acme"] <= 120_000
    assert await redis_client.get(store.key("acme", "lease")) == b"host-1:42:ab 1"
    plain = stores()
    (other,), _ = await plain.claim(["plain"])
    await plain.commit(other, b"{}", [b"{}"])
    assert await redis_client.pttl(plain.stream_key("plain")) == -1  # lives until trimmed


@pytest.mark.parametrize("name", ["", "a:b", "a b", "{acme}", "acme}", "é", "-acme", "a" * 101])
async def test_account_names_that_cannot_be_keys_are_refused(
    stores: StoreFactory, redis_client: aioredis.Redis, namespace: str, name: str
) -> None:
    """A name outside [A-Za-z0-9._-] is refused with the rule, before Redis is asked."""
    store = stores()
    with pytest.raises(sc.InvalidInputError, match=r"use 1 to 100 letters, digits, '\.'"):
        await store.claim([name])
    with pytest.raises(sc.InvalidInputError, match="not allowed"):
        await store.commit((name, 1, 0), b"{}", [])
    assert [k async for k in redis_client.scan_iter(f"{namespace}:*")] == []


def test_store_and_coordinator_options_are_checked() -> None:
    """Bad prefixes, namespaces, trims, lifetimes and clients: InvalidInputError at once."""
    import redis.asyncio

    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore

    redis_binary()
    client = redis.asyncio.Redis()
    for kwargs, message in (
        ({"stream_prefix": "a b"}, "stream_prefix must be"),
        ({"stream_prefix": "{x}"}, "stream_prefix must be"),
        ({"namespace": "a{b"}, "namespace"),
        ({"stream_maxlen": 10, "stream_max_age": 1.0}, "not both"),
        ({"stream_maxlen": 0}, "stream_maxlen must be an int of 1 or more"),
        ({"lease": 0}, "lease must be a positive number"),
        ({"state_ttl": 1.0, "lease": 10.0}, "state_ttl must be at least"),
        ({"worker_id": "has space"}, "worker_id must be"),
    ):
        with pytest.raises(sc.InvalidInputError, match=message):
            RedisWatchStore(client, **kwargs)
    with pytest.raises(sc.InvalidInputError, match="must return bytes"):
        RedisWatchStore(redis.asyncio.Redis(decode_responses=True))
    with pytest.raises(sc.InvalidInputError, match=r"redis\.asyncio\.Redis"):
        RedisWatchStore("redis://localhost")  # type: ignore[arg-type]
    store = RedisWatchStore(client)
    for accounts, message in (
        ([], "at least one"),
        (["a", "A"], "twice"),
        (["a:b"], "not allowed"),
    ):
        with pytest.raises(sc.InvalidInputError, match=message):
            RedisWatchCoordinator(store, accounts, _sourced())
    with pytest.raises(sc.InvalidInputError, match="max_accounts"):
        RedisWatchCoordinator(store, ["a"], _sourced(), max_accounts=0)


# -- the coordinator ----------------------------------------------------------------------


def _counting(per_batch: int = 2, pause: float = 0.05) -> Any:
    """A source whose logs are numbered per account: a duplicate or a gap shows at once."""

    async def source(account: str, state: bytes | None) -> AsyncIterator[tuple[bytes, list[bytes]]]:
        if state is None:
            state = b"0"
            yield state, []  # the starting point, written before the first batch
        n = int(state)
        while True:
            await asyncio.sleep(pause)
            logs = [msgspec.json.encode({"account": account, "n": n + i}) for i in range(per_batch)]
            n += per_batch
            yield str(n).encode(), logs

    return source


def _sourced(**options: Any) -> Any:
    """``_counting(**options)`` as the coordinator's ``watch``."""
    from sendcloud_async.redis import source_watch

    return source_watch(_counting(**options))


async def _numbers(client: aioredis.Redis, store: RedisWatchStore, account: str) -> list[int]:
    return [msgspec.json.decode(raw)["n"] for raw in await _stream(client, store, account)]


class _Workers:
    """Coordinators run as tasks of this test (each its own store: its own worker id)."""

    def __init__(self, stores: StoreFactory, accounts: Sequence[str], lease: float) -> None:
        self.stores = stores
        self.accounts = accounts
        self.lease = lease
        self.running: dict[RedisWatchCoordinator, asyncio.Task[None]] = {}
        self.events: list[CoordinatorEvent] = []

    def start(self, source: Any = None, worker_id: str | None = None) -> RedisWatchCoordinator:
        from sendcloud_async.redis import RedisWatchCoordinator

        coordinator = RedisWatchCoordinator(
            self.stores(lease=self.lease, worker_id=worker_id),
            self.accounts,
            source or _sourced(),
            on_event=self.events.append,
        )
        self.running[coordinator] = asyncio.create_task(coordinator.run())
        return coordinator

    async def stop(self, coordinator: RedisWatchCoordinator) -> None:
        coordinator.stop()
        await self.running.pop(coordinator)

    def kill(self, coordinator: RedisWatchCoordinator) -> None:
        """Die without a word: the task is dropped mid-flight, nothing is released."""
        task = self.running.pop(coordinator)

        async def vanish() -> None:  # no release, no leave: the leases must lapse
            coordinator._runner.stop()  # the watches end, the leases stay

        coordinator._shutdown = vanish  # type: ignore[method-assign]
        task.cancel()

    def as_owned(self) -> bool:
        """Whether each running worker holds exactly the accounts it owns (rendezvous)."""
        from sendcloud_async._redis._watch import owners

        owner = owners(self.accounts, [c.store.worker_id for c in self.running])
        return all(
            set(c.held) == {a for a, w in owner.items() if w == c.store.worker_id}
            for c in self.running
        )

    def check_one_holder(self) -> None:
        owners: dict[str, int] = {}
        for coordinator in self.running:
            for name in coordinator.held:
                owners[name] = owners.get(name, 0) + 1
        assert all(n == 1 for n in owners.values()), owners

    async def settle(self, until: Callable[[], bool], limit: float = 5.0) -> float:
        started = time.monotonic()
        while not until():
            self.check_one_holder()
            assert time.monotonic() - started < limit, [c.held for c in self.running]
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    async def aclose(self) -> None:
        for coordinator in list(self.running):
            await self.stop(coordinator)


async def test_workers_split_the_accounts_and_rebalance_when_they_join_and_leave(
    stores: StoreFactory, redis_client: aioredis.Redis
) -> None:
    """1 → 2 → 3 workers: 12, 6+6, 4+4+4 accounts (what each owns by rendezvous hashing);
    one leaves cleanly: its accounts are taken at once, the others' stay where they are."""
    accounts = [f"acct-{n}" for n in range(12)]
    workers = _Workers(stores, accounts, lease=0.4)
    try:
        first = workers.start(worker_id="first-10")
        await workers.settle(lambda: len(first.held) == 12)
        second = workers.start(worker_id="second-10")
        await workers.settle(lambda: sorted(len(c.held) for c in workers.running) == [6, 6])
        assert workers.as_owned()
        third = workers.start(worker_id="third-10")
        await workers.settle(lambda: sorted(len(c.held) for c in workers.running) == [4, 4, 4])
        assert workers.as_owned()
        kept = {name: (c, token) for c in (first, third) for name, token in c.held.items()}
        await workers.stop(second)
        assert second.held == {}
        took = await workers.settle(lambda: len(first.held) + len(third.held) == 12)
        assert took < 0.4 + 0.2  # released, not expired: taken within a tick or two
        assert workers.as_owned()
        for name, (c, token) in kept.items():  # nothing else moved: same holder, same token
            assert c.held[name] == token, name
        await asyncio.sleep(0.2)
    finally:
        await workers.aclose()
    assert third.refused == first.refused == 0
    for name in accounts:  # handed over three times, written without a gap or a repeat
        numbers = await _numbers(redis_client, first.store, name)
        assert numbers == list(range(len(numbers))), name
        assert len(numbers) > 4, name


async def test_a_dead_workers_accounts_are_taken_over_after_the_lease(
    stores: StoreFactory, redis_client: aioredis.Redis
) -> None:
    """A worker dies silently: the other holds all 8 accounts by lease + a tick, tokens +1."""
    accounts = [f"acct-{n}" for n in range(8)]
    lease = 0.4
    workers = _Workers(stores, accounts, lease=lease)
    try:
        survivor = workers.start(worker_id="survivor-1")
        doomed = workers.start(worker_id="doomed-1")
        await workers.settle(lambda: len(survivor.held) == len(doomed.held) == 4)
        kept = survivor.held
        before = doomed.held
        workers.kill(doomed)
        took = await workers.settle(lambda: len(survivor.held) == 8)
        assert lease * 0.5 < took < lease + survivor.tick + 0.15
        for name, token in before.items():
            assert survivor.held[name] == token + 1
        assert all(survivor.held[name] == token for name, token in kept.items())
    finally:
        await workers.aclose()
    for name in accounts:
        numbers = await _numbers(redis_client, survivor.store, name)
        assert numbers == list(range(len(numbers))), name


async def test_a_write_delayed_past_the_lease_is_refused_by_the_fence(
    redis_server: RedisServer, namespace: str, redis_client: aioredis.Redis
) -> None:
    """A write on its way while the lease lapses: the watch is cancelled, the write refused."""
    from sendcloud_async.redis import LeaseLostError, RedisWatchCoordinator, RedisWatchStore

    paused = asyncio.Event()
    resume = asyncio.Event()
    late: list[asyncio.Future[int]] = []

    class Delaying(RedisWatchStore):
        async def commit(self, *args: Any, **kwargs: Any) -> int:
            if not args[2]:  # the starting state goes through
                return await super().commit(*args, **kwargs)

            async def delayed() -> int:  # e.g. stuck in a congested network
                await resume.wait()
                return await RedisWatchStore.commit(self, *args, **kwargs)

            late.append(asyncio.ensure_future(delayed()))
            paused.set()
            return await asyncio.shield(late[0])

    store = Delaying.from_url(redis_server.url, namespace=namespace, lease=0.3)
    events: list[Any] = []
    coordinator = RedisWatchCoordinator(store, ["acme"], _sourced(), on_event=events.append)
    task = asyncio.create_task(coordinator.run())
    try:
        await asyncio.wait_for(paused.wait(), 2)
        coordinator._tick = _stalled  # type: ignore[method-assign]
        await asyncio.sleep(0.4)  # no renewal: the lease lapses, the watchdog ends the watch
        assert coordinator.held == {}
        assert [(type(e), e.token) for e in events] == [(LeaseClaimed, 1), (LeaseLost, 1)]
        async with RedisWatchStore.from_url(
            redis_server.url, namespace=namespace, lease=5.0
        ) as thief:
            (taken,), _ = await thief.claim(["acme"])
            assert taken.token == 2
            resume.set()
            with pytest.raises(LeaseLostError, match="fencing token 1"):
                await late[0]
            assert await redis_client.exists(store.stream_key("acme")) == 0
            assert await thief.read("acme") == (b"0", 1)  # the starting state only
            assert await redis_client.hget(store.key("acme", "state"), "refused") == b"1"
    finally:
        coordinator.stop()
        await task
        await store.aclose()


async def _stalled() -> float:
    """A tick that does nothing (a worker whose lease loop stalled)."""
    return 0.05


async def test_unreachable_redis_stops_writing_warns_once_and_resumes(
    tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture, namespace: str
) -> None:
    """Redis restarted (AOF on): one WARNING, nothing written meanwhile, no gap or repeat after."""
    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore

    server = PersistentRedis(redis_binary(), free_port(), tmp_path_factory.mktemp("watch-aof"))
    server.start()
    caplog.set_level(logging.INFO, "sendcloud_async")
    store = RedisWatchStore.from_url(server.url, namespace=namespace, lease=0.4)
    coordinator = RedisWatchCoordinator(store, ["a", "b"], _sourced(pause=0.01))
    task = asyncio.create_task(coordinator.run())
    try:
        await asyncio.sleep(0.5)
        assert len(coordinator.held) == 2
        server.stop()
        await asyncio.sleep(0.6)  # longer than the lease: the worker must have stopped
        assert coordinator.held == {}
        server.start()
        await asyncio.sleep(0.8)
        assert len(coordinator.held) == 2
        coordinator.stop()
        await task
        import redis.asyncio

        client = redis.asyncio.Redis.from_url(server.url)
        try:
            for name in ("a", "b"):
                numbers = await _numbers(client, store, name)
                assert numbers == list(range(len(numbers)))
                assert len(numbers) > 10
        finally:
            await client.aclose()
    finally:
        await store.aclose()
        server.stop()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Redis is unreachable" in warnings[0]
    assert "writes nothing" in warnings[0]
    assert any("Redis answers again" in r.getMessage() for r in caplog.records)


class PersistentRedis(RedisServer):
    """A ``redis-server`` that keeps its data across a restart (AOF, fsync on every write)."""

    def start(self) -> None:
        """Start it with ``appendonly yes`` and ``appendfsync always`` on ``port``."""
        import subprocess

        from .conftest import _ping

        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                str(self.workdir),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5.0
        while not _ping(self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)


async def test_the_watch_of_a_fake_account_lands_in_its_stream_once(
    redis_server: RedisServer, namespace: str, redis_client: aioredis.Redis
) -> None:
    """logs_watch_source over FakeSendcloud: seeded and added logs, each once, in order."""
    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore, logs_watch

    async with FakeSendcloud(validate_spec=True) as fake:
        fake.seed(integrations=2, logs_per_integration=30)
        store = RedisWatchStore.from_url(
            redis_server.url, namespace=namespace, stream_prefix=f"{namespace}:logs", lease=1.0
        )
        async with (
            store,
            sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client,
        ):
            watch = logs_watch(
                lambda name: client,
                integration_id=lambda name: int(name.split("-")[1]),
                start="all",
                interval=0.05,
                page_size=7,
            )
            coordinator = RedisWatchCoordinator(store, ["integration-1", "integration-2"], watch)
            task = asyncio.create_task(coordinator.run())
            await asyncio.sleep(0.3)
            for n in range(10):
                fake.add_log(1 + n % 2, base_url="https://shop.example")
            await asyncio.sleep(0.4)
            coordinator.stop()
            await task
        assert fake.spec_violations == []
        for iid in (1, 2):
            stored = [
                msgspec.json.decode(raw)["id"]
                for raw in await _stream(redis_client, store, f"integration-{iid}")
            ]
            expected = [log["id"] for log in fake.logs if log["integration_id"] == iid]
            assert stored == expected
            assert len(expected) == 35


async def test_a_log_watcher_behind_the_fence_writes_logs_and_health_once(
    redis_server: RedisServer, namespace: str, redis_client: aioredis.Redis
) -> None:
    """log_watcher_watch: LogWatcher polls through the fence; its AccountState lives in Redis."""
    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore, log_watcher_watch

    events: list[Any] = []
    async with FakeSendcloud(validate_spec=True) as fake:
        fake.seed(integrations=2, logs_per_integration=5)
        fake.start_failing(2)
        store = RedisWatchStore.from_url(
            redis_server.url, namespace=namespace, stream_prefix=f"{namespace}:logs", lease=1.0
        )
        async with store, sc.AccountPool(base_url=fake.base_url) as pool:
            watch = log_watcher_watch(
                pool, {"shop": fake.basic_auth}, handler=events.append, start="all", interval=0.05
            )
            for _ in range(2):  # a second worker resumes from the state in Redis
                coordinator = RedisWatchCoordinator(store, ["shop"], watch)
                task = asyncio.create_task(coordinator.run())
                await asyncio.sleep(0.4)
                fake.add_log(1, base_url="https://shop.example")
                await asyncio.sleep(0.3)
                coordinator.stop()
                await task
        assert fake.spec_violations == []
        stored = [
            msgspec.json.decode(raw)["id"] for raw in await _stream(redis_client, store, "shop")
        ]
        assert stored == [log["id"] for log in fake.logs]
        assert len(stored) == 12
    with pytest.raises(sc.ClientClosedError, match="RedisWatchStore is closed"):
        await store.read("shop")
    state: Any = await redis_client.hget(store.key("shop", "state"), "state")
    assert state is not None
    assert msgspec.json.decode(state)["failing"].keys() == {"2"}
    failing = [e for e in events if type(e).__name__ == "IntegrationFailing"]
    assert [e.integration.id for e in failing] == [2]  # once, not again after the handover


async def test_a_takeover_in_the_middle_of_a_newest_first_catch_up_loses_and_repeats_nothing(
    redis_server: RedisServer, namespace: str, redis_client: aioredis.Redis
) -> None:
    """Newest-first listing, a worker dies mid-walk: the next one resumes the walk exactly."""
    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore, logs_watch

    async with FakeSendcloud(validate_spec=True, log_order="newest_first") as fake:
        fake.seed(integrations=1, logs_per_integration=60)
        fake.inject("GET", "/integrations/logs", *[Fault.delay(0.1)] * 30)  # a slow walk
        async with (
            sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client,
            RedisWatchStore.from_url(redis_server.url, namespace=namespace, lease=0.4) as first,
            RedisWatchStore.from_url(redis_server.url, namespace=namespace, lease=0.4) as second,
        ):
            watch = logs_watch(lambda name: client, start="all", interval=0.05, page_size=7)
            workers = _Workers(lambda **_: first, ["shop"], lease=0.4)
            doomed = workers.start(watch)
            await asyncio.sleep(0.3)  # a few pages into the walk
            assert 0 < await redis_client.xlen(first.stream_key("shop")) < 60
            workers.kill(doomed)
            fake.add_log(1, base_url="https://shop.example")  # new while nobody watches
            survivor = RedisWatchCoordinator(second, ["shop"], watch)
            task = asyncio.create_task(survivor.run())
            await asyncio.sleep(2.0)
            survivor.stop()
            await task
        stored = [msgspec.json.decode(r)["id"] for r in await _stream(redis_client, first, "shop")]
    assert len(stored) == len(set(stored)) == 61
    assert set(stored) == {log["id"] for log in fake.logs}


async def test_a_watch_ended_by_a_cancel_nobody_asked_for_is_started_again(
    stores: StoreFactory,
) -> None:
    """An account's watch ends with a ``CancelledError`` neither the coordinator nor its
    caller asked for (it awaited a future another party cancelled): the account is watched
    again after the restart backoff, as after any end of its watch, not held on with no
    watch at all (its lease renewed, so no other worker would take it either)."""
    from sendcloud_async.redis import RedisWatchCoordinator, describe_event

    loop = asyncio.get_running_loop()
    starts: list[float] = []
    again = asyncio.Event()

    async def watch(account: str, state: bytes | None, commit: Any) -> None:
        starts.append(time.monotonic())
        if len(starts) > 1:
            again.set()
        else:
            shared = loop.create_future()
            loop.call_later(0.01, shared.cancel)
            await shared
        await asyncio.sleep(60)

    store = stores(lease=0.4)
    events: list[Any] = []
    coordinator = RedisWatchCoordinator(store, ["acme"], watch, on_event=events.append)
    task = asyncio.create_task(coordinator.run())
    try:
        with suppress(TimeoutError):
            await asyncio.wait_for(again.wait(), 3)
        assert len(starts) == 2, "the watch was not started again"
        assert 2 * coordinator.tick - 0.05 <= starts[1] - starts[0] <= 2 * coordinator.tick + 0.5
        assert coordinator.held == {"acme": 1}
        assert [describe_event(e)[0] for e in events] == ["lease_claimed"]  # not a failure
    finally:
        coordinator.stop()
        await asyncio.wait_for(task, 5)
