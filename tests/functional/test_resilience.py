"""Every row of the retry policy, the timeout bound and the logging, over real sockets.

Retries are instant here (the ``retries`` fixture records the wait the SDK chose
instead of sleeping it), except where a test measures real time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, Fault, RetryEvent
from tests._tls import self_signed_server_context

Call = Callable[[sc.SendcloudClient], Awaitable[object]]

MAPPING = {"READY_TO_SEND": "A", "IN_TRANSIT": "A", "DELIVERED": "A", "CANCEL": None}
STATUSES = [{"external_id": "A", "translations": [{"status": "Ready", "language": "en-gb"}]}]


async def _all_logs(client: sc.SendcloudClient) -> object:
    return [log async for log in client.logs.iter()]


# name -> (call, method, route): every idempotent operation of the SDK.
IDEMPOTENT: dict[str, tuple[Call, str, str]] = {
    "list integrations": (lambda c: c.integrations.list(), "GET", "/integrations"),
    "get integration": (lambda c: c.integrations.get(1), "GET", "/integrations/1"),
    "update integration": (
        lambda c: c.integrations.update(1, shop_name="Renamed"),
        "PATCH",
        "/integrations/1",
    ),
    "delete integration": (lambda c: c.integrations.delete(2), "DELETE", "/integrations/2"),
    "page logs": (_all_logs, "GET", "/integrations/logs"),
    "list statuses": (
        lambda c: c.shop_order_statuses.list(1),
        "GET",
        "/shop-order-statuses",
    ),
    "replace statuses (POST upsert)": (
        lambda c: c.shop_order_statuses.replace(1, STATUSES),
        "POST",
        "/shop-order-statuses",
    ),
    "get mapping": (
        lambda c: c.shop_order_statuses.get_mapping(1),
        "GET",
        "/shop-order-statuses/mapping",
    ),
    "set mapping (POST upsert)": (
        lambda c: c.shop_order_statuses.set_mapping(1, MAPPING),
        "POST",
        "/shop-order-statuses/mapping",
    ),
}


def create_log(client: sc.SendcloudClient) -> Awaitable[sc.IntegrationLog]:
    """POST /integrations/1/logs: the one non-idempotent call."""
    return client.logs.create(1, base_url="https://shop.example", exception="boom")


def hits(fake: FakeSendcloud, method: str, path: str) -> int:
    """How many requests for ``method path`` reached the fake."""
    return sum(1 for r in fake.requests if r.method == method and r.path == path)


def created(fake: FakeSendcloud) -> int:
    """How many logs the SDK's POSTs created (seeded logs have another base_url)."""
    return sum(1 for log in fake.logs if log["base_url"] == "https://shop.example")


def make_client(fake: FakeSendcloud, **kw: Any) -> sc.SendcloudClient:
    """A Basic-auth client for ``fake``."""
    return sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url, **kw)


@pytest.fixture
def seeded(fake: FakeSendcloud) -> FakeSendcloud:
    """The fake with two integrations, a few logs, statuses and mappings."""
    fake.seed(integrations=2, logs_per_integration=3, seed=1)
    return fake


def assert_backoff(events: list[RetryEvent]) -> None:
    """Each recorded wait lies in the equal-jitter band of its retry: [0.5, 1] × 0.5·2^(n-1)."""
    for n, event in enumerate(events, start=1):
        assert event.attempt == n
        ceiling = min(8.0, 0.5 * 2 ** (n - 1))
        assert 0.5 * ceiling <= event.wait <= ceiling, event


# -- retryable statuses ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
@pytest.mark.parametrize("name", list(IDEMPOTENT))
async def test_retryable_status_retried_for_idempotent_calls(
    seeded: FakeSendcloud, retries: list[RetryEvent], name: str, status: int
) -> None:
    """Two faults then success: three attempts, waits within the backoff band."""
    call, method, path = IDEMPOTENT[name]
    seeded.inject(method, path, Fault.status(status), Fault.status(status))
    async with make_client(seeded) as client:
        await call(client)
    assert hits(seeded, method, path) == 3
    assert [e.reason for e in retries] == [f"status {status}"] * 2
    assert {e.method for e in retries} == {method}
    assert_backoff(retries)


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
async def test_post_log_not_retried_after_5xx_or_408(
    seeded: FakeSendcloud, retries: list[RetryEvent], status: int
) -> None:
    """The server may have stored the log: one attempt, the error raised, nothing repeated."""
    seeded.inject("POST", "/integrations/1/logs", Fault.status(status))
    async with make_client(seeded) as client:
        with pytest.raises(sc.APIError) as info:
            await create_log(client)
    assert info.value.status == status
    assert hits(seeded, "POST", "/integrations/1/logs") == 1
    assert retries == []


async def test_post_log_retried_after_429(seeded: FakeSendcloud, retries: list[RetryEvent]) -> None:
    """A 429 means not processed: the POST is repeated and the log stored exactly once."""
    seeded.inject("POST", "/integrations/1/logs", Fault.status(429), Fault.status(429))
    async with make_client(seeded) as client:
        log = await create_log(client)
    assert log.exception == "boom"
    assert hits(seeded, "POST", "/integrations/1/logs") == 3
    assert created(seeded) == 1
    assert [e.reason for e in retries] == ["status 429"] * 2
    assert_backoff(retries)


async def test_persistent_failure_makes_one_plus_max_retries_attempts(
    seeded: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """With max_retries=3 a GET that keeps failing is tried four times, then raises."""
    seeded.chaos(seed=0, rates={"status_503": 1.0})
    async with make_client(seeded, max_retries=3) as client:
        with pytest.raises(sc.ServerError) as info:
            await client.integrations.list()
    assert hits(seeded, "GET", "/integrations") == 4
    assert [e.attempt for e in retries] == [1, 2, 3]
    assert_backoff(retries)
    assert "Gave up after 4 attempts." in (info.value.__notes__ or [])


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 501, 505])
async def test_other_statuses_fail_at_once(
    seeded: FakeSendcloud, retries: list[RetryEvent], status: int
) -> None:
    """Client errors and unlisted 5xx are raised after one attempt."""
    seeded.inject("GET", "/integrations", Fault.status(status))
    async with make_client(seeded) as client:
        with pytest.raises(sc.APIError) as info:
            await client.integrations.list()
    assert info.value.status == status
    assert hits(seeded, "GET", "/integrations") == 1
    assert retries == []


async def test_basic_auth_401_not_retried(seeded: FakeSendcloud, retries: list[RetryEvent]) -> None:
    """Wrong Basic credentials: one request, AuthenticationError."""
    auth = sc.BasicAuth("fake-public-key", "not-the-secret")
    async with sc.SendcloudClient(auth=auth, base_url=seeded.base_url, max_retries=3) as client:
        with pytest.raises(sc.AuthenticationError):
            await client.integrations.list()
    assert len(seeded.requests) == 1
    assert retries == []


# -- Retry-After -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_seconds_is_the_wait(
    seeded: FakeSendcloud, retries: list[RetryEvent], status: int
) -> None:
    """Retry-After in seconds replaces the backoff, exactly (429 and 503 alike)."""
    seeded.inject("GET", "/integrations", Fault.status(status, headers={"Retry-After": "7"}))
    async with make_client(seeded) as client:
        await client.integrations.list()
    assert [e.wait for e in retries] == [7.0]


async def test_retry_after_http_date_is_the_wait(
    seeded: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """Retry-After as an HTTP-date waits until that moment."""
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=20)
    header = {"Retry-After": format_datetime(when, usegmt=True)}
    seeded.inject("GET", "/integrations", Fault.status(429, headers=header))
    async with make_client(seeded) as client:
        await client.integrations.list()
    assert len(retries) == 1
    assert 18.0 < retries[0].wait <= 20.0


async def test_retry_after_really_sleeps(seeded: FakeSendcloud) -> None:
    """Without instant retries the SDK sleeps the Retry-After before the next attempt."""
    seeded.inject("POST", "/integrations/1/logs", Fault.status(429, headers={"Retry-After": "0.3"}))
    async with make_client(seeded) as client:
        started = time.perf_counter()
        await create_log(client)
        elapsed = time.perf_counter() - started
    assert 0.3 <= elapsed < 1.0
    assert created(seeded) == 1


@pytest.mark.parametrize("value", ["3600", "http-date"])
async def test_retry_after_above_cap_raises_rate_limit_error_at_once(
    seeded: FakeSendcloud, value: str
) -> None:
    """A Retry-After beyond 60 s is not slept: RateLimitError carries it, after one attempt."""
    if value == "http-date":
        value = format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2), usegmt=True)
    seeded.inject("GET", "/integrations", Fault.status(429, headers={"Retry-After": value}))
    async with make_client(seeded, max_retries=3) as client:
        started = time.perf_counter()
        with pytest.raises(sc.RateLimitError) as info:
            await client.integrations.list()
        assert time.perf_counter() - started < 0.5
    assert info.value.retry_after is not None
    assert info.value.retry_after > 3500
    assert any("cap" in note for note in info.value.__notes__)
    assert hits(seeded, "GET", "/integrations") == 1


async def test_rate_limit_error_after_retries_carries_retry_after(
    seeded: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """When 429s outlast the retries, the last RateLimitError says how long to wait."""
    seeded.chaos(seed=0, rates={"status_429": 1.0}, retry_after=2)
    async with make_client(seeded, max_retries=2) as client:
        with pytest.raises(sc.RateLimitError) as info:
            await create_log(client)
    assert info.value.retry_after == 2.0
    assert [e.wait for e in retries] == [2.0, 2.0]
    assert created(seeded) == 0


# -- connections dropped, refused, truncated -----------------------------------------------


@pytest.mark.parametrize("fault", [Fault.drop_before_read(), Fault.drop_after_read()])
async def test_dropped_patch_is_retried(
    seeded: FakeSendcloud, retries: list[RetryEvent], fault: Fault
) -> None:
    """A PATCH whose connection drops is repeated by the SDK (aiohttp never resends PATCH)."""
    seeded.inject("PATCH", "/integrations/1", fault)
    async with make_client(seeded) as client:
        await client.integrations.update(1, shop_name="Renamed")
    assert hits(seeded, "PATCH", "/integrations/1") == 2
    assert [e.reason for e in retries] == ["ServerDisconnectedError"]
    assert seeded.integrations[1]["shop_name"] == "Renamed"


async def test_dropped_get_is_resent_by_aiohttp_then_by_the_sdk(
    seeded: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """aiohttp resends a dropped GET once by itself; a second drop is an SDK retry."""
    seeded.inject("GET", "/integrations", Fault.drop_before_read())
    async with make_client(seeded) as client:
        await client.integrations.list()
        assert (hits(seeded, "GET", "/integrations"), retries) == (2, [])
        seeded.clear_requests()
        seeded.inject("GET", "/integrations", Fault.drop_after_read(), Fault.drop_after_read())
        await client.integrations.list()
    assert hits(seeded, "GET", "/integrations") == 3
    assert [e.reason for e in retries] == ["ServerDisconnectedError"]


@pytest.mark.parametrize(
    "fault", [Fault.drop_before_read(), Fault.drop_after_read(), Fault.truncated_body()]
)
async def test_post_log_never_repeated_after_sending(
    seeded: FakeSendcloud, retries: list[RetryEvent], fault: Fault
) -> None:
    """A POST that may have been processed is sent once: no SDK retry, no aiohttp resend."""
    seeded.inject("POST", "/integrations/1/logs", fault)
    async with make_client(seeded, max_retries=3) as client:
        with pytest.raises(sc.APIConnectionError):
            await create_log(client)
    assert hits(seeded, "POST", "/integrations/1/logs") == 1
    assert retries == []
    # drop_before_read stored nothing; the others stored the log exactly once.
    assert created(seeded) == (0 if fault.kind == "drop_before_read" else 1)


async def test_truncated_get_is_retried(seeded: FakeSendcloud, retries: list[RetryEvent]) -> None:
    """A body cut short is a transport error: the GET is repeated and succeeds."""
    seeded.inject("GET", "/integrations/logs", Fault.truncated_body())
    async with make_client(seeded) as client:
        logs = await _all_logs(client)
    assert isinstance(logs, list)
    assert len(logs) == 6
    assert [e.reason for e in retries] == ["ClientPayloadError"]


async def _closed_port() -> int:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port: int = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    return port


async def test_refused_connection_retries_even_a_post(retries: list[RetryEvent]) -> None:
    """Nothing was sent when the connection is refused, so even POST logs is retried."""
    url = f"http://127.0.0.1:{await _closed_port()}/api/v3"
    async with sc.SendcloudClient(
        auth=sc.BasicAuth("a", "b"), base_url=url, max_retries=2
    ) as client:
        with pytest.raises(sc.APIConnectionError) as info:
            await create_log(client)
    assert not isinstance(info.value, sc.APITimeoutError)
    assert [e.reason for e in retries] == ["ClientConnectorError"] * 2
    assert_backoff(retries)


async def test_untrusted_certificate_not_retried(retries: list[RetryEvent], tmp_path: Path) -> None:
    """A TLS certificate the client does not trust fails at once: retrying cannot fix it."""
    context = self_signed_server_context(tmp_path)
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    try:
        async with sc.SendcloudClient(
            auth=sc.BasicAuth("a", "b"), base_url=f"https://127.0.0.1:{port}/api/v3"
        ) as client:
            with pytest.raises(sc.APIConnectionError) as info:
                await client.integrations.list()
    finally:
        await runner.cleanup()
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectorCertificateError)
    assert retries == []


# -- OAuth2 token endpoint -------------------------------------------------------------------


async def test_token_endpoint_failure_retries_even_a_post(
    seeded: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """A token fetch that fails means the API request was never sent: POST logs is retried."""
    seeded.inject("POST", "/oauth2/token/", Fault.status(503), Fault.drop_before_read())
    auth = seeded.oauth2_credentials
    async with sc.SendcloudClient(auth=auth, base_url=seeded.base_url) as client:
        await create_log(client)
    assert created(seeded) == 1
    assert hits(seeded, "POST", "/integrations/1/logs") == 1
    assert [e.reason for e in retries] == ["status 503", "ServerDisconnectedError"]


async def test_timeout_while_waiting_for_a_token_retries_even_a_post(
    seeded: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """An attempt that timed out waiting for its OAuth2 token sent nothing: POST is retried."""
    seeded.inject("POST", "/oauth2/token/", Fault.delay(0.5))
    auth = seeded.oauth2_credentials
    async with sc.SendcloudClient(auth=auth, base_url=seeded.base_url, timeout=5) as client:
        await create_log(client.with_options(timeout=0.2, max_retries=5))
    assert created(seeded) == 1
    assert hits(seeded, "POST", "/integrations/1/logs") == 1
    assert seeded.token_requests == 1
    assert len(retries) >= 2
    assert {e.reason for e in retries} == {"timeout"}


# -- timeouts ---------------------------------------------------------------------------------


async def test_timeout_raised_within_the_bound(seeded: FakeSendcloud) -> None:
    """One attempt that hangs raises APITimeoutError (a TimeoutError) right after `timeout`."""
    seeded.inject("GET", "/integrations", Fault.delay(5))
    async with make_client(seeded, timeout=0.3, max_retries=0) as client:
        started = time.perf_counter()
        with pytest.raises(TimeoutError) as info:
            await client.integrations.list()
        elapsed = time.perf_counter() - started
    assert isinstance(info.value, sc.APITimeoutError)
    assert 0.3 <= elapsed < 0.6


async def test_timeout_is_per_attempt_and_retried(
    seeded: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """Each attempt gets the whole timeout; a call ends within (1 + max_retries) × timeout."""
    seeded.chaos(seed=0, rates={"delay": 1.0}, delay=5)
    async with make_client(seeded, timeout=0.2, max_retries=2) as client:
        started = time.perf_counter()
        with pytest.raises(sc.APITimeoutError):
            await client.integrations.list()
        elapsed = time.perf_counter() - started
    assert 0.6 <= elapsed < 1.0
    assert [e.reason for e in retries] == ["timeout", "timeout"]


async def test_timed_out_post_not_repeated(
    seeded: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """A POST that timed out waiting for its answer may have been processed: not repeated."""
    seeded.inject("POST", "/integrations/1/logs", Fault.delay(5))
    async with make_client(seeded, timeout=0.2, max_retries=3) as client:
        with pytest.raises(sc.APITimeoutError):
            await create_log(client)
    assert hits(seeded, "POST", "/integrations/1/logs") == 1
    assert retries == []


async def test_with_options_overrides_timeout_per_call(seeded: FakeSendcloud) -> None:
    """with_options(timeout=...) bounds one call; the original client keeps its timeout."""
    seeded.inject("GET", "/integrations", Fault.delay(0.5), Fault.delay(0.5))
    async with make_client(seeded, timeout=10, max_retries=0) as client:
        started = time.perf_counter()
        with pytest.raises(sc.APITimeoutError):
            await client.with_options(timeout=0.2).integrations.list()
        assert time.perf_counter() - started < 0.45
        assert await client.integrations.list() == await client.integrations.list()


async def test_pool_wait_counts_toward_the_timeout(seeded: FakeSendcloud) -> None:
    """Waiting for a pooled connection is part of the timeout: the call fails in time, unsent."""
    seeded.inject("GET", "/integrations/logs", Fault.delay(1.0))
    connector = aiohttp.TCPConnector(limit=1)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        make_client(seeded, session=session, timeout=5, max_retries=0) as client,
    ):
        hog = asyncio.create_task(_all_logs(client))
        await asyncio.sleep(0.1)  # the only connection is taken
        started = time.perf_counter()
        with pytest.raises(sc.APITimeoutError):
            await client.with_options(timeout=0.3).integrations.list()
        assert 0.3 <= time.perf_counter() - started < 0.6
        await hog
    assert hits(seeded, "GET", "/integrations") == 0  # it never got a connection


async def test_pool_wait_timeout_retries_even_a_post(
    seeded: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """A POST that timed out waiting for a connection was not sent, so it is retried."""
    seeded.inject("GET", "/integrations/logs", Fault.delay(0.7))
    connector = aiohttp.TCPConnector(limit=1)
    async with (
        aiohttp.ClientSession(connector=connector) as session,
        make_client(seeded, session=session, timeout=0.25, max_retries=8) as client,
    ):
        hog = asyncio.create_task(client.with_options(timeout=5).logs.pages().__anext__())
        await asyncio.sleep(0.1)
        await create_log(client)
        await hog
    assert created(seeded) == 1
    assert hits(seeded, "POST", "/integrations/1/logs") == 1
    assert len(retries) >= 2
    assert {e.reason for e in retries} == {"timeout"}


@pytest.mark.alone  # its short timeouts assume the server answers at once once connected
async def test_pool_wait_on_the_sdks_own_session_is_known_unsent(
    seeded: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """On a session the SDK made (an AccountPool's, no tracing): a POST that timed out
    waiting for a connection is retried, one that timed out after it got one is not."""
    seeded.inject("GET", "/integrations/logs", Fault.delay(1.2))
    async with sc.AccountPool(base_url=seeded.base_url, connections=1) as pool:
        assert pool.session.trace_configs == []  # the connector tells, not tracing
        client = pool.client(seeded.basic_auth)
        hog = asyncio.create_task(client.with_options(timeout=5).logs.pages().__anext__())
        await asyncio.sleep(0.1)  # the only connection is taken
        await client.with_options(timeout=0.4, max_retries=8).logs.create(
            1, base_url="https://shop.example", exception="boom"
        )
        await hog
        assert created(seeded) == 1
        assert hits(seeded, "POST", "/integrations/1/logs") == 1
        assert len(retries) >= 2
        assert {e.reason for e in retries} == {"timeout"}
        retries.clear()
        seeded.inject("POST", "/integrations/1/logs", Fault.delay(5))
        with pytest.raises(sc.APITimeoutError):
            await client.with_options(timeout=0.2, max_retries=3).logs.create(
                1, base_url="https://shop.example", exception="boom"
            )
    assert hits(seeded, "POST", "/integrations/1/logs") == 2
    assert retries == []


# -- per-call retries ---------------------------------------------------------------------------


async def test_with_options_overrides_max_retries(
    seeded: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """with_options(max_retries=...) changes the attempts of that client only."""
    seeded.chaos(seed=0, rates={"status_502": 1.0})
    async with make_client(seeded, max_retries=1) as client:
        for max_retries, attempts in ((5, 6), (0, 1)):
            seeded.clear_requests()
            with pytest.raises(sc.ServerError):
                await client.with_options(max_retries=max_retries).integrations.list()
            assert len(seeded.requests) == attempts
        seeded.clear_requests()
        with pytest.raises(sc.ServerError):
            await client.integrations.list()
        assert len(seeded.requests) == 2


async def test_with_options_shares_the_session_and_lifecycle(seeded: FakeSendcloud) -> None:
    """A derived client uses the same pool; closing it does nothing, closing the original does."""
    client = make_client(seeded)
    derived = client.with_options(timeout=3, max_retries=0)
    async with derived:
        await derived.integrations.list()
    assert not derived.closed
    assert derived._transport.session() is client._transport.session()
    await client.integrations.list()
    await client.aclose()
    assert derived.closed
    with pytest.raises(sc.SendcloudError, match="closed"):
        await derived.integrations.list()


@pytest.mark.parametrize(
    ("kw", "message"),
    [({"timeout": 0}, "timeout must be"), ({"max_retries": -1}, "max_retries must be")],
)
async def test_with_options_checks_its_arguments(
    seeded: FakeSendcloud, kw: dict[str, Any], message: str
) -> None:
    """Bad overrides are refused like the constructor's."""
    async with make_client(seeded) as client:
        with pytest.raises(sc.InvalidInputError, match=message):
            client.with_options(**kw)


# -- logging ------------------------------------------------------------------------------------


async def test_debug_line_per_attempt(
    seeded: FakeSendcloud, caplog: pytest.LogCaptureFixture
) -> None:
    """DEBUG per attempt: method, URL, status (or error), elapsed time and attempt number."""
    caplog.set_level(logging.DEBUG, logger="sendcloud_async")
    seeded.inject("GET", "/integrations", Fault.status(503), Fault.truncated_body())
    async with make_client(seeded) as client:
        from sendcloud_async.testing import instant_retries

        with instant_retries():
            await client.integrations.list()
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.DEBUG]
    url = seeded.base_url + "/integrations"
    assert any(line.startswith(f"GET {url} -> 503 in ") and "(attempt 1)" in line for line in lines)
    assert any("ClientPayloadError after" in line and "(attempt 2)" in line for line in lines)
    assert any(f"GET {url} -> 200 in " in line and "ms (attempt 3)" in line for line in lines)


async def test_retry_logged_with_reason_and_wait(
    seeded: FakeSendcloud, retries: list[RetryEvent], caplog: pytest.LogCaptureFixture
) -> None:
    """A 429 retry logs at INFO, other retries at WARNING, each with reason and wait."""
    caplog.set_level(logging.INFO, logger="sendcloud_async")
    seeded.inject(
        "GET",
        "/integrations",
        Fault.status(429, headers={"Retry-After": "1.5"}),
        Fault.status(502),
    )
    async with make_client(seeded) as client:
        await client.integrations.list()
    first, second = (r for r in caplog.records if "retrying" in r.getMessage())
    assert first.levelno == logging.INFO
    assert (
        "(status 429, Retry-After 1.5 s); retrying in 1.50 s (retry 1 of 3)" in first.getMessage()
    )
    assert second.levelno == logging.WARNING
    assert f"(status 502); retrying in {retries[1].wait:.2f} s (retry 2 of 3)" in (
        second.getMessage()
    )


async def test_no_secret_in_any_log_line_or_error(
    seeded: FakeSendcloud, retries: list[RetryEvent], caplog: pytest.LogCaptureFixture
) -> None:
    """Across retries, refreshes and failures, no credential or token reaches a log or an error."""
    caplog.set_level(logging.DEBUG)
    seeded.chaos(
        seed=5,
        rates={
            "status_503": 0.15,
            "status_429": 0.1,
            "drop_after_read": 0.1,
            "truncated_body": 0.1,
            "revoke_token": 0.15,
        },
    )
    errors: list[str] = []
    async with (
        make_client(seeded, max_retries=1) as basic,
        sc.SendcloudClient(
            auth=seeded.oauth2_credentials, base_url=seeded.base_url, max_retries=1
        ) as oauth,
    ):
        for client in (basic, oauth) * 15:
            try:
                await client.integrations.list()
                await create_log(client)
            except sc.SendcloudError as exc:
                errors.append(f"{exc} {exc!r} {getattr(exc, '__notes__', '')}")
    assert retries, "the chaos should have caused retries"
    assert seeded.fault_counts.get("revoke_token")
    text = "\n".join(
        [record.getMessage() for record in caplog.records]
        + [repr(record.args) for record in caplog.records]
        + errors
    )
    assert "sendcloud_async" in {r.name for r in caplog.records}
    authorizations = {r.headers.get("Authorization", "") for r in seeded.requests}
    secrets = [seeded.client_secret, "fake-secret-key", *seeded.issued_tokens]
    secrets += [a.split(" ", 1)[1] for a in authorizations if " " in a]
    for secret in secrets:
        assert secret not in text
