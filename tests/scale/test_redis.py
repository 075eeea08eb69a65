"""RedisState against a real redis-server: shared budgets, one token per account, degradation."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import pytest

import sendcloud_async as sc
from sendcloud_async._flows import TokenFlow
from sendcloud_async.testing import FakeSendcloud, Fault

from .conftest import RedisServer, free_port, redis_binary

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from sendcloud_async.redis import RedisState

LIMITS = sc.RateLimits(get=6, unsafe=3, unsafe_concurrency=2, window=0.3)

StateFactory = Callable[..., "RedisState"]


@pytest.fixture
async def states(redis_server: RedisServer, namespace: str) -> AsyncIterator[StateFactory]:
    """Makes ``RedisState``s, each with its own connection (like separate processes)."""
    from sendcloud_async.redis import RedisState

    async with AsyncExitStack() as stack:

        def make(**options: object) -> RedisState:
            options.setdefault("namespace", namespace)
            state = RedisState.from_url(redis_server.url, **options)
            stack.push_async_callback(state.aclose)
            return state

        yield make


def _oauth(fake: FakeSendcloud, n: int = 0) -> sc.OAuth2ClientCredentials:
    return sc.OAuth2ClientCredentials(f"client-{n}", f"secret-{n}", token_url=fake.token_url)


async def test_workers_share_one_rate_budget(fake: FakeSendcloud, states: StateFactory) -> None:
    """Three 'workers' (own RedisState, own pool) on one account: no 429, budget respected."""
    fake.seed(integrations=1, logs_per_integration=0)
    fake.enforce_rate_limits(LIMITS, latency=0.005)
    started = time.monotonic()

    async def worker() -> None:
        async with sc.AccountPool(
            base_url=fake.base_url, rate_limit=LIMITS, state=states()
        ) as pool:
            client = pool.client(fake.basic_auth)
            await asyncio.gather(
                *(client.integrations.get(1) for _ in range(6)),
                *(client.integrations.update(1, shop_name="w") for _ in range(3)),
            )

    await asyncio.gather(worker(), worker(), worker())
    assert fake.throttled == 0
    assert fake.peak_unsafe_concurrency["basic:fake-public-key"] <= 2
    assert time.monotonic() - started >= 2 * LIMITS.window  # 18 GETs at 6 per window


async def test_workers_mint_one_token_per_account(
    fake: FakeSendcloud, states: StateFactory
) -> None:
    """Five 'workers', each with its own credentials object per account: one token each."""
    fake.seed(integrations=1, logs_per_integration=0)
    for n in range(4):
        fake.add_oauth_client(f"client-{n}", f"secret-{n}")

    async def worker() -> None:
        state = states()
        async with sc.AccountPool(base_url=fake.base_url, state=state) as pool:
            await asyncio.gather(
                *(
                    pool.client(_oauth(fake, n)).integrations.list()
                    for n in range(4)
                    for _ in range(3)
                )
            )

    await asyncio.gather(*(worker() for _ in range(5)))
    assert fake.token_requests_by_client == {f"client-{n}": 1 for n in range(4)}


async def test_keys_are_namespaced_expire_and_hold_no_secret(
    fake: FakeSendcloud,
    states: StateFactory,
    redis_client: aioredis.Redis,
    namespace: str,
) -> None:
    """Every key is under the namespace with a TTL; only the token value is sensitive."""
    fake.seed(integrations=1, logs_per_integration=0)
    fake.add_oauth_client("client-0", "secret-0")
    async with sc.SendcloudClient(
        auth=_oauth(fake), base_url=fake.base_url, rate_limit=LIMITS, state=states()
    ) as client:
        await client.integrations.list()
        await client.integrations.update(1, shop_name="x")
    await asyncio.sleep(0.05)  # releases are written in the background
    keys = sorted([k.decode() async for k in redis_client.scan_iter(f"{namespace}:*")])
    suffixes = sorted(k.rsplit("}:", 1)[1] for k in keys)
    assert suffixes == ["safe:cool", "token", "unsafe:cool"]  # nothing in flight any more
    for key in keys:
        assert 0 < await redis_client.pttl(key) <= 3_600_000
        value = (await redis_client.dump(key)) or b""
        for secret in (b"secret-0", b"client-0", b"fake-"):
            assert secret not in key.encode()
            assert secret not in value
    token_key = next(k for k in keys if k.endswith(":token"))
    assert fake.issued_tokens[0].encode() in (await redis_client.get(token_key) or b"")


async def test_a_crashed_token_minter_only_delays_the_others(
    fake: FakeSendcloud,
    states: StateFactory,
    redis_client: aioredis.Redis,
    namespace: str,
) -> None:
    """A lock left by a dead worker expires after lock_ttl; then one worker mints."""
    fake.seed(integrations=1, logs_per_integration=0)
    fake.add_oauth_client("client-0", "secret-0")
    auth = _oauth(fake)
    await redis_client.set(f"{namespace}:{{{auth.cache_key}}}:lock", "dead-worker", px=300)
    started = time.monotonic()
    async with sc.SendcloudClient(
        auth=auth, base_url=fake.base_url, state=states(lock_ttl=0.3)
    ) as client:
        await client.integrations.list()
    assert 0.25 <= time.monotonic() - started < 2.0
    assert fake.token_requests == 1


async def test_a_rejected_token_is_dropped_for_every_worker(
    fake: FakeSendcloud, states: StateFactory
) -> None:
    """A 401 with a shared token deletes it in Redis: the next worker mints a new one."""
    fake.seed(integrations=1, logs_per_integration=0)
    fake.add_oauth_client("client-0", "secret-0")
    first = sc.SendcloudClient(auth=_oauth(fake), base_url=fake.base_url, state=states())
    second = sc.SendcloudClient(auth=_oauth(fake), base_url=fake.base_url, state=states())
    async with first, second:
        await first.integrations.list()
        await second.integrations.list()  # shares the first token
        assert fake.token_requests == 1
        fake.revoke_tokens()
        await first.integrations.list()  # 401, drops the shared token, mints, replays
        flow = second._transport.flow
        assert isinstance(flow, TokenFlow)
        flow.clear()  # its local copy expires
        await second.integrations.list()  # finds the new token in Redis
    assert fake.token_requests == 2


async def test_one_workers_429_blocks_the_others(
    fake: FakeSendcloud, states: StateFactory, redis_client: aioredis.Redis, namespace: str
) -> None:
    """Retry-After seen by one worker holds the account's requests in every worker."""
    fake.seed(integrations=2, logs_per_integration=0)
    fake.inject("GET", "/integrations/1", Fault.status(429, headers={"Retry-After": "1.0"}))
    limits = sc.RateLimits()
    a = sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, rate_limit=limits, state=states()
    )
    b = sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, rate_limit=limits, state=states()
    )
    async with a, b:
        blocked = asyncio.create_task(a.integrations.get(1))
        # Until the 429 is in and the block written (however slow the machine is).
        keys: list[bytes] = []
        waited = time.monotonic()
        while not keys:
            assert time.monotonic() - waited < 10, "the block was never written to Redis"
            await asyncio.sleep(0.01)
            keys = [k async for k in redis_client.scan_iter(f"{namespace}*blocked*")]
        left = await redis_client.pttl(keys[0]) / 1000
        started = time.monotonic()
        await b.integrations.get(2)
        assert left > 0.2  # written just now: most of the second is left
        assert time.monotonic() - started >= left - 0.05
        await blocked


async def test_a_crashed_workers_leases_expire(fake: FakeSendcloud, states: StateFactory) -> None:
    """Unsafe slots taken by a worker that died free up after ``lease`` seconds."""
    from sendcloud_async._state import account_key

    fake.seed(integrations=1, logs_per_integration=0)
    limits = sc.RateLimits(unsafe=100, unsafe_concurrency=2)
    dead = states(lease=0.3)
    gate = dead.gate(
        account_key(
            fake.basic_auth,
            sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url).base_url,
        ),
        limits,
    )
    await gate.acquire("POST")
    await gate.acquire("POST")  # never released: the worker "crashed"
    started = time.monotonic()
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, rate_limit=limits, state=states()
    ) as client:
        await client.integrations.update(1, shop_name="after the crash")
    assert time.monotonic() - started >= 0.25


async def test_unreachable_redis_degrades_to_this_process(
    fake: FakeSendcloud, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis down: one WARNING, calls still work with a local gate and a local token."""
    from sendcloud_async.redis import RedisState

    redis_binary()  # skip like the others when Redis support is missing
    fake.seed(integrations=1, logs_per_integration=0)
    fake.add_oauth_client("client-0", "secret-0")
    state = RedisState.from_url(f"redis://127.0.0.1:{free_port()}/0", local_share=0.5)
    caplog.set_level(logging.INFO, "sendcloud_async")
    async with (
        state,
        sc.SendcloudClient(
            auth=_oauth(fake), base_url=fake.base_url, rate_limit=LIMITS, state=state
        ) as client,
    ):
        for _ in range(3):
            await client.integrations.list()
        await client.integrations.update(1, shop_name="still works")
        assert not state.available
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Redis is unreachable" in warnings[0].getMessage()
    assert "per-process rate gate (0.5 of the limits)" in warnings[0].getMessage()
    assert fake.token_requests == 1


async def test_unreachable_redis_can_be_told_to_raise(fake: FakeSendcloud) -> None:
    """on_unavailable='raise': StateUnavailableError instead of a silent fallback."""
    from sendcloud_async.redis import RedisState, StateUnavailableError

    redis_binary()
    fake.seed(integrations=1, logs_per_integration=0)
    state = RedisState.from_url(f"redis://127.0.0.1:{free_port()}/0", on_unavailable="raise")
    async with (
        state,
        sc.SendcloudClient(
            auth=fake.basic_auth, base_url=fake.base_url, rate_limit=LIMITS, state=state
        ) as client,
    ):
        with pytest.raises(StateUnavailableError, match="Redis is unreachable"):
            await client.integrations.list()
    assert isinstance(StateUnavailableError("x"), sc.SendcloudError)
    assert fake.requests == []


async def test_redis_back_after_an_outage_is_used_again(
    fake: FakeSendcloud, tmp_path_factory: pytest.TempPathFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A restarted Redis is used again after retry_interval, with an INFO line."""
    from sendcloud_async.redis import RedisState

    server = RedisServer(redis_binary(), free_port(), tmp_path_factory.mktemp("redis-restart"))
    server.start()
    fake.seed(integrations=1, logs_per_integration=0)
    caplog.set_level(logging.INFO, "sendcloud_async")
    state = RedisState.from_url(server.url, retry_interval=0.1)
    try:
        async with (
            state,
            sc.SendcloudClient(
                auth=fake.basic_auth, base_url=fake.base_url, rate_limit=LIMITS, state=state
            ) as client,
        ):
            await client.integrations.list()
            server.stop()
            await client.integrations.list()  # local gate
            assert not state.available
            server.start()
            await asyncio.sleep(0.15)
            await client.integrations.list()
            assert state.available
    finally:
        server.stop()
    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert any("Redis is unreachable" in m for m in messages)
    assert any("Redis answers again" in m for m in messages)


def test_redis_state_rejects_bad_options() -> None:
    """Options are checked when the state is made."""
    import redis.asyncio

    from sendcloud_async.redis import RedisState

    redis_binary()
    client = redis.asyncio.Redis()
    for kwargs in (
        {"namespace": ""},
        {"namespace": "a{b"},
        {"on_unavailable": "ignore"},
        {"local_share": 0},
        {"lease": 0},
        {"lock_ttl": float("nan")},
    ):
        with pytest.raises(sc.InvalidInputError):
            RedisState(client, **kwargs)
    with pytest.raises(sc.InvalidInputError, match=r"redis\.asyncio\.Redis"):
        RedisState("redis://localhost")  # type: ignore[arg-type]


async def test_a_shared_block_beyond_max_wait_fails_fast(
    fake: FakeSendcloud, states: StateFactory
) -> None:
    """Retry-After 120 s seen by one worker: another worker's call fails at once, unsent."""
    fake.seed(integrations=1, logs_per_integration=0)
    fake.inject("GET", "/integrations/1", Fault.status(429, headers={"Retry-After": "120"}))
    limits = sc.RateLimits()
    a = sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, rate_limit=limits, state=states()
    )
    b = sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, rate_limit=limits, state=states()
    )
    async with a, b:
        with pytest.raises(sc.RateLimitError):
            await a.integrations.get(1)
        await asyncio.sleep(0.05)  # the block reaches Redis
        sent = len(fake.requests)
        with pytest.raises(sc.RateLimitError, match="not sent"):
            await b.integrations.list()
    assert len(fake.requests) == sent
