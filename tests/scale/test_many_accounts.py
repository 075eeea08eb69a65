"""Many accounts on one session, each under its rate gate, against FakeSendcloud's limits."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

import sendcloud_async as sc
from sendcloud_async._cli.clients import rate_limit
from sendcloud_async._cli.parser import build_parser
from sendcloud_async._ratelimit import MemoryGate, RateGate
from sendcloud_async._state import StateBackend, account_key
from sendcloud_async.testing import FakeSendcloud, Fault, instant_retries

SMALL = sc.RateLimits(get=8, unsafe=3, unsafe_concurrency=2, window=0.3)


async def _hammer(client: sc.SendcloudClient, gets: int, patches: int) -> None:
    results = await asyncio.gather(
        *(client.integrations.get(1) for _ in range(gets)),
        *(client.integrations.update(1, shop_name="busy") for _ in range(patches)),
        return_exceptions=True,
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result


@pytest.mark.parametrize("gated", [True, False])
async def test_the_gate_keeps_many_accounts_under_the_limits(
    fake: FakeSendcloud, gated: bool
) -> None:
    """20 accounts x (20 GET + 6 PATCH) at once: no 429 with the gate; many without."""
    fake.seed(integrations=1, logs_per_integration=0)
    fake.enforce_rate_limits(SMALL, latency=0.005)
    auths = [fake.add_account(f"pk-{n}", f"sk-{n}") for n in range(20)]
    limits = SMALL if gated else None
    with instant_retries():
        async with sc.AccountPool(base_url=fake.base_url, rate_limit=limits, max_retries=3) as pool:
            results = await asyncio.gather(
                *(_hammer(pool.client(a), 20, 6) for a in auths), return_exceptions=True
            )
    if gated:
        assert results == [None] * 20
        assert fake.throttled == 0
        assert max(fake.peak_unsafe_concurrency.values()) <= SMALL.unsafe_concurrency
    else:
        assert fake.throttled > 20 * (20 - SMALL.get)
        assert set(fake.throttled_by_account) == {f"basic:pk-{n}" for n in range(20)}


async def test_a_429_with_retry_after_holds_every_queued_request_of_the_account(
    fake: FakeSendcloud,
) -> None:
    """One request's 429 + Retry-After: the account's other requests wait instead of failing."""
    fake.seed(integrations=2, logs_per_integration=0)
    fake.inject("GET", "/integrations/1", Fault.status(429, headers={"Retry-After": "0.3"}))
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, rate_limit=sc.RateLimits()
    ) as client:
        started = time.monotonic()

        async def later() -> float:
            await asyncio.sleep(0.05)  # after the 429 arrived
            await client.integrations.get(2)
            return time.monotonic() - started

        first = asyncio.create_task(client.integrations.get(1))
        others = await asyncio.gather(*(later() for _ in range(5)))
        assert (await first).id == 1
    assert min(others) >= 0.3 - 0.02  # none went out during the block
    paths = [r.path for r in fake.requests]
    assert paths.count("/integrations/1") == 2
    assert paths.count("/integrations/2") == 5


async def test_a_block_beyond_max_wait_fails_fast_without_sending(fake: FakeSendcloud) -> None:
    """Retry-After 120 s: the call raises; the account's next call raises without a request."""
    fake.seed(integrations=1, logs_per_integration=0)
    fake.inject("GET", "/integrations/1", Fault.status(429, headers={"Retry-After": "120"}))
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, rate_limit=sc.RateLimits()
    ) as client:
        with pytest.raises(sc.RateLimitError):
            await client.integrations.get(1)
        sent = len(fake.requests)
        with pytest.raises(sc.RateLimitError, match="not sent") as caught:
            await client.integrations.list()
    assert caught.value.retry_after is not None
    assert caught.value.retry_after > 100
    assert len(fake.requests) == sent


class _CountingGate:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def acquire(self, method: str) -> object:
        self.events.append(f"acquire {method}")
        return method

    def release(self, lease: object) -> None:
        self.events.append(f"release {lease}")

    def block(self, seconds: float) -> None:
        self.events.append(f"block {seconds:g}")


class _CountingState(StateBackend):
    def __init__(self) -> None:
        self.gates: dict[str, _CountingGate] = {}

    def gate(self, account: str, limits: sc.RateLimits) -> RateGate:
        return self.gates.setdefault(account, _CountingGate())


async def test_every_attempt_goes_through_the_gate(fake: FakeSendcloud) -> None:
    """Retries acquire and release again; a 429's Retry-After blocks the gate."""
    fake.seed(integrations=1, logs_per_integration=0)
    fake.inject(
        "GET",
        "/integrations/1",
        Fault.status(503),
        Fault.status(429, headers={"Retry-After": "2"}),
    )
    state = _CountingState()
    with instant_retries():
        async with sc.SendcloudClient(
            auth=fake.basic_auth, base_url=fake.base_url, rate_limit=sc.RateLimits(), state=state
        ) as client:
            await client.integrations.get(1)
            await client.with_options(max_retries=0).integrations.update(1, shop_name="x")
    (gate,) = state.gates.values()
    assert gate.events == [
        "acquire GET", "release GET",
        "acquire GET", "block 2", "release GET",
        "acquire GET", "release GET",
        "acquire PATCH", "release PATCH",
    ]  # fmt: skip


async def test_clients_of_one_account_share_one_gate(fake: FakeSendcloud) -> None:
    """Same credentials (even new objects) and with_options share a gate; others do not."""
    other = fake.add_account("other-pk", "other-sk")
    base = fake.base_url
    limits = sc.RateLimits()
    a = sc.SendcloudClient(
        auth=sc.BasicAuth("fake-public-key", "x"), base_url=base, rate_limit=limits
    )
    b = sc.SendcloudClient(auth=fake.basic_auth, base_url=base, rate_limit=limits)
    c = sc.SendcloudClient(auth=other, base_url=base, rate_limit=limits)
    d = sc.SendcloudClient(auth=fake.basic_auth, base_url=base)
    gate = a._transport._gate
    assert isinstance(gate, MemoryGate)
    assert b._transport._gate is gate
    assert b.with_options(timeout=5)._transport._gate is gate
    assert c._transport._gate is not gate
    assert d._transport._gate is None
    for client in (a, b, c, d):
        await client.aclose()


def test_keys_never_contain_credentials() -> None:
    """Gate and token keys are digests: no public key, client id or secret in them."""
    from yarl import URL

    basic = sc.BasicAuth("my-public-key", "my-secret-key")
    oauth = sc.OAuth2ClientCredentials("my-client-id", "my-client-secret")
    url = URL("https://panel.sendcloud.sc/api/v3")
    keys = [account_key(basic, url), account_key(oauth, url), oauth.cache_key]
    for key in keys:
        assert len(key) == 32
        assert all(part not in key for part in ("my-", "public", "secret", "client"))
    other = sc.OAuth2ClientCredentials("my-client-id", "another-secret")
    assert account_key(other, url) == keys[1]  # one account, one budget
    assert other.cache_key != keys[2]  # but a wrong secret cannot read its token


def test_client_rejects_a_bad_rate_limit_or_state() -> None:
    """rate_limit must be a RateLimits and state a StateBackend."""
    auth = sc.BasicAuth("pk", "sk")
    with pytest.raises(sc.InvalidInputError, match="rate_limit"):
        sc.SendcloudClient(auth=auth, rate_limit=1000)  # type: ignore[arg-type]
    with pytest.raises(sc.InvalidInputError, match="state"):
        sc.SendcloudClient(auth=auth, state={})  # type: ignore[arg-type]
    with pytest.raises(sc.InvalidInputError, match="connections"):
        sc.AccountPool(connections=0)


async def test_pool_hands_out_one_client_per_credentials(fake: FakeSendcloud) -> None:
    """New but equal credential objects get the same client, hence one OAuth2 token."""
    fake.seed(integrations=1, logs_per_integration=0)
    async with sc.AccountPool(base_url=fake.base_url) as pool:
        for _ in range(3):  # three polling cycles, credentials rebuilt each time
            client = pool.client(
                sc.OAuth2ClientCredentials(
                    fake.client_id, fake.client_secret, token_url=fake.token_url
                )
            )
            await client.integrations.list()
        assert pool.client(fake.basic_auth) is pool.client(
            sc.BasicAuth("fake-public-key", "fake-secret-key")
        )
        assert len(pool) == 2
        pool.discard(fake.basic_auth)
        assert len(pool) == 1
    assert fake.token_requests == 1


async def test_pool_shares_one_session_sized_for_one_host(fake: FakeSendcloud) -> None:
    """One session and connector for every account; closed with the pool, never borrowed ones."""
    async with sc.AccountPool(base_url=fake.base_url, connections=40) as pool:
        a = pool.client(fake.add_account("a", "a"))
        b = pool.client(fake.add_account("b", "b"))
        session = pool.session
        assert a._transport.session() is session
        assert b._transport.session() is session
        connector = session.connector
        assert isinstance(connector, aiohttp.TCPConnector)
        assert (connector.limit, connector.limit_per_host) == (50, 40)
        await a.aclose()  # a client of the pool never closes the shared session
        assert not session.closed
    assert session.closed
    assert pool.closed
    with pytest.raises(sc.SendcloudError, match="closed"):
        pool.client(fake.basic_auth)
    async with aiohttp.ClientSession() as mine:
        async with sc.AccountPool(base_url=fake.base_url, session=mine) as borrowed:
            assert borrowed.session is mine
        assert not mine.closed
    assert "AccountPool closed" in repr(pool)


async def test_pool_of_200_oauth2_accounts_mints_one_token_each(fake: FakeSendcloud) -> None:
    """200 OAuth2 accounts polled concurrently: 200 token requests, no 429, one session."""
    fake.seed(integrations=2, logs_per_integration=30)
    fake.enforce_rate_limits(sc.RateLimits(get=3, unsafe=1, unsafe_concurrency=1, window=0.2))
    for n in range(200):
        fake.add_oauth_client(f"client-{n}", f"secret-{n}")

    async def poll(client: sc.SendcloudClient) -> int:
        pages = [page async for page in client.logs.pages(page_size=10)]
        await client.integrations.list()
        return sum(len(p.items) for p in pages)

    async with sc.AccountPool(
        base_url=fake.base_url,
        rate_limit=sc.RateLimits(get=3, unsafe=1, unsafe_concurrency=1, window=0.2),
    ) as pool:
        clients = [
            pool.client(
                sc.OAuth2ClientCredentials(f"client-{n}", f"secret-{n}", token_url=fake.token_url)
            )
            for n in range(200)
        ]
        counts = await asyncio.gather(*(poll(c) for c in clients))
    assert counts == [60] * 200
    assert fake.token_requests == 200
    assert set(fake.token_requests_by_client.values()) == {1}
    assert fake.throttled == 0


async def test_fake_enforces_a_strict_sliding_window(fake: FakeSendcloud) -> None:
    """The (get+1)th GET within the window gets 429 + Retry-After; later it passes."""
    fake.seed(integrations=1, logs_per_integration=0)
    fake.enforce_rate_limits(sc.RateLimits(get=3, window=0.3))
    assert fake.rate_limits == sc.RateLimits(get=3, window=0.3)
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url, max_retries=0) as c:
        for _ in range(3):
            await c.integrations.get(1)
        with pytest.raises(sc.RateLimitError) as caught:
            await c.integrations.get(1)
        assert caught.value.retry_after is not None
        assert 0 < caught.value.retry_after <= 0.3
        assert caught.value.code == "throttled"
        await asyncio.sleep(caught.value.retry_after)
        await c.integrations.get(1)
    assert fake.throttled == 1
    assert fake.throttled_by_account == {"basic:fake-public-key": 1}
    fake.enforce_rate_limits(None)
    assert fake.throttled == 0
    assert fake.rate_limits is None


async def test_fake_caps_unsafe_concurrency(fake: FakeSendcloud) -> None:
    """With latency, the 2nd concurrent unsafe request over a cap of 1 gets 429."""
    fake.seed(integrations=1, logs_per_integration=0)
    fake.enforce_rate_limits(sc.RateLimits(unsafe=100, unsafe_concurrency=1), latency=0.1)
    fake.add_oauth_client("cid", "csecret")
    auth = sc.OAuth2ClientCredentials("cid", "csecret", token_url=fake.token_url)
    async with sc.SendcloudClient(auth=auth, base_url=fake.base_url, max_retries=0) as c:
        results: tuple[object, ...] = await asyncio.gather(
            c.integrations.update(1, shop_name="a"),
            c.integrations.update(1, shop_name="b"),
            return_exceptions=True,
        )
    assert sum(isinstance(r, sc.RateLimitError) for r in results) == 1
    assert fake.throttled_by_account == {"oauth2:cid": 1}
    assert fake.peak_unsafe_concurrency == {"oauth2:cid": 1}


async def test_fake_rejects_bad_limit_arguments(fake: FakeSendcloud) -> None:
    """enforce_rate_limits wants a RateLimits and latency >= 0; oauth clients need both halves."""
    with pytest.raises(TypeError):
        fake.enforce_rate_limits({"get": 1})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="latency"):
        fake.enforce_rate_limits(sc.RateLimits(), latency=-1)
    with pytest.raises(ValueError, match="non-empty"):
        fake.add_oauth_client("", "x")


def test_cli_gates_by_default_and_can_be_told_not_to() -> None:
    """The command line uses Sendcloud's limits unless --no-rate-limit."""
    parser = build_parser()
    on = parser.parse_args(["integrations", "list", "--fake"])
    off = parser.parse_args(["integrations", "list", "--fake", "--no-rate-limit"])
    assert rate_limit(on) == sc.RateLimits()
    assert rate_limit(off) is None
