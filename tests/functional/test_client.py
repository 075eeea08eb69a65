"""SendcloudClient lifecycle, session ownership, auth scoping and error mapping over sockets."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse, instant_retries


async def test_use_after_close_is_clear(fake: FakeSendcloud) -> None:
    """Any call after aclose() raises a clear SendcloudError (a RuntimeError); nothing is sent."""
    client = sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url)
    await client.integrations.list()
    await client.aclose()
    await client.aclose()  # idempotent
    assert client.closed
    with pytest.raises(sc.SendcloudError, match="closed") as info:
        await client.integrations.list()
    assert isinstance(info.value, RuntimeError)
    with pytest.raises(sc.SendcloudError, match="closed"):
        async with client:
            pass
    assert len(fake.requests) == 1


async def test_resources_are_kept_and_closed_with_the_client(fake: FakeSendcloud) -> None:
    """A resource is made once per client; a kept one raises ClientClosedError after
    aclose() like the client, and sends nothing; a with_options copy has its own."""
    client = sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url)
    logs, integrations, statuses = client.logs, client.integrations, client.shop_order_statuses
    assert client.logs is logs
    assert client.integrations is integrations
    assert client.shop_order_statuses is statuses
    derived = client.with_options(max_retries=0)
    assert derived.logs is not logs
    assert derived.logs is derived.logs
    await integrations.list()
    await client.aclose()
    sent = len(fake.requests)
    with pytest.raises(sc.ClientClosedError, match="this SendcloudClient is closed"):
        await integrations.list()
    with pytest.raises(sc.ClientClosedError, match="this SendcloudClient is closed"):
        await anext(logs.iter())
    with pytest.raises(sc.ClientClosedError, match="this SendcloudClient is closed"):
        await derived.integrations.list()
    assert len(fake.requests) == sent


async def test_only_the_sdks_connector_reads_the_attempt(fake: FakeSendcloud) -> None:
    """The attempt is handed to the connector only on a session on the SDK's connector
    (the client's own, a pool's); a borrowed session's attempts are told by tracing."""
    from sendcloud_async._sessions import TRACE_CONFIG

    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as own:
        await own.integrations.list()
        assert own._transport._shared.attempts is not None
    async with sc.AccountPool(base_url=fake.base_url) as pool:
        pooled = pool.client(fake.basic_auth)
        await pooled.integrations.list()
        assert pooled._transport._shared.attempts is not None
    async with (
        aiohttp.ClientSession() as session,
        sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url, session=session) as c,
    ):
        await c.integrations.list()
        assert c._transport._shared.attempts is None
        assert TRACE_CONFIG in session.trace_configs
    assert [r.auth_scheme for r in fake.requests] == ["basic"] * 3


async def test_borrowed_session_is_never_closed(fake: FakeSendcloud) -> None:
    """A session passed in is used for requests and left open by aclose()."""
    async with aiohttp.ClientSession() as session:
        async with sc.SendcloudClient(
            auth=fake.basic_auth, base_url=fake.base_url, session=session
        ) as client:
            await client.integrations.list()
        assert not session.closed
        async with session.get(fake.origin + "/api/v3/integrations") as resp:
            assert resp.status == 401  # the session itself carries no credentials
    assert fake.requests[0].auth_scheme == "basic"


async def test_closed_borrowed_session_is_clear(fake: FakeSendcloud) -> None:
    """A borrowed session closed by its owner gives a clear error, not aiohttp internals."""
    session = aiohttp.ClientSession()
    client = sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url, session=session)
    await session.close()
    with pytest.raises(sc.SendcloudError, match="closed"):
        await client.integrations.list()
    await client.aclose()


async def test_owned_session_is_closed(fake: FakeSendcloud) -> None:
    """The session the client created is closed by aclose()."""
    client = sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url)
    await client.integrations.list()
    session = client._transport.session()
    await client.aclose()
    assert session.closed


async def test_wrong_credentials_are_authentication_error(fake: FakeSendcloud) -> None:
    """Wrong Basic credentials → AuthenticationError, not retried, the secret not in the message."""
    auth = sc.BasicAuth("fake-public-key", "wrong-secret-value")
    async with sc.SendcloudClient(auth=auth, base_url=fake.base_url, max_retries=3) as client:
        with pytest.raises(sc.AuthenticationError) as info:
            await client.integrations.list()
    assert info.value.code == "authentication_failed"
    assert "wrong-secret-value" not in str(info.value)
    assert "wrong-secret-value" not in repr(info.value)
    assert "wrong-secret-value" not in repr(client)
    assert len(fake.requests) == 1


async def test_basic_auth_is_sent(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """Requests carry the Basic credentials, a JSON Accept header and a User-Agent."""
    await client.integrations.list()
    req = fake.requests[0]
    assert req.headers["Authorization"].startswith("Basic ")
    assert req.headers["Accept"] == "application/json"
    assert req.headers["User-Agent"].startswith("sendcloud-async/")


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, sc.BadRequestError),
        (401, sc.AuthenticationError),
        (403, sc.PermissionDeniedError),
        (404, sc.NotFoundError),
        (409, sc.APIError),
        (422, sc.APIError),
        (429, sc.RateLimitError),
        (500, sc.ServerError),
        (502, sc.ServerError),
        (503, sc.ServerError),
    ],
)
async def test_status_maps_to_error_class(
    fake: FakeSendcloud, status: int, cls: type[sc.APIError]
) -> None:
    """Each error status raises its class, with spec-shaped errors decoded."""
    body = {"errors": [{"status": str(status), "code": "some_code", "detail": f"detail {status}"}]}
    fake.script("GET", "/integrations", ScriptedResponse(status=status, body=body))
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, max_retries=0
    ) as client:
        with pytest.raises(cls) as info:
            await client.integrations.list()
    err = info.value
    assert type(err) is cls
    assert err.status == status
    assert err.code == "some_code"
    assert err.errors[0].status == status
    assert f"detail {status}" in str(err)
    assert "GET" in str(err)
    assert fake.base_url in str(err)


async def test_html_error_body_still_maps(fake: FakeSendcloud) -> None:
    """An HTML 502 from a proxy becomes ServerError with the text shortened in the message."""
    html = "<html><body><h1>502 Bad Gateway</h1>" + "x" * 500 + "</body></html>"
    fake.script(
        "GET",
        "/integrations",
        ScriptedResponse(status=502, body=html, headers={"Content-Type": "text/html"}),
    )
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url, max_retries=0) as c:
        with pytest.raises(sc.ServerError) as info:
            await c.integrations.list()
    assert info.value.errors == []
    assert info.value.body is not None
    assert "502 Bad Gateway" in info.value.body
    assert len(info.value.body) <= 200


async def test_empty_429_has_retry_after(fake: FakeSendcloud) -> None:
    """An empty 429 becomes RateLimitError carrying Retry-After as seconds."""
    fake.script(
        "GET", "/integrations", ScriptedResponse(status=429, body=b"", headers={"Retry-After": "7"})
    )
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url, max_retries=0) as c:
        with pytest.raises(sc.RateLimitError) as info:
            await c.integrations.list()
    assert info.value.retry_after == 7.0
    assert "Retry after 7 seconds" in str(info.value)


async def test_single_error_object_is_accepted(fake: FakeSendcloud) -> None:
    """'errors' sent as a single object (not a list) is decoded too."""
    body = {"errors": {"status": 400, "code": "invalid", "detail": "nope"}}
    fake.script("GET", "/integrations", ScriptedResponse(status=400, body=body))
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as c:
        with pytest.raises(sc.BadRequestError) as info:
            await c.integrations.list()
    assert info.value.detail == "nope"


async def test_undecodable_success_is_decode_error(fake: FakeSendcloud) -> None:
    """A 200 whose body is not JSON raises DecodeError with method and URL."""
    fake.script("GET", "/integrations", ScriptedResponse(body=b"<html>maintenance</html>"))
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as c:
        with pytest.raises(sc.DecodeError, match=r"GET http://127\.0\.0\.1"):
            await c.integrations.list()


async def test_connection_refused_is_connection_error() -> None:
    """A closed port raises APIConnectionError after the retries."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    async with sc.SendcloudClient(
        auth=sc.BasicAuth("a", "b"), base_url=f"http://127.0.0.1:{port}/api/v3", max_retries=1
    ) as client:
        with instant_retries(), pytest.raises(sc.APIConnectionError) as info:
            await client.integrations.list()
    assert not isinstance(info.value, sc.APITimeoutError)
    assert isinstance(info.value.__cause__, aiohttp.ClientError)


async def test_timeout_is_api_timeout_error(fake: FakeSendcloud) -> None:
    """A response slower than the timeout raises APITimeoutError, also a builtin TimeoutError."""
    fake.script("GET", "/integrations", ScriptedResponse(body={"data": []}, delay=2.0))
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, timeout=0.2, max_retries=0
    ) as client:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError) as info:
            await client.integrations.list()
        assert loop.time() - started < 1.5
    assert isinstance(info.value, sc.APITimeoutError)


async def test_retry_then_success(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """A 503 then a 200: the GET is retried and succeeds."""
    fake.script("GET", "/integrations", ScriptedResponse(status=503))
    assert await client.integrations.list() == []
    assert len(fake.requests) == 2


async def test_secrets_never_logged(fake: FakeSendcloud, caplog: pytest.LogCaptureFixture) -> None:
    """At DEBUG, no log line carries the secret key or the Authorization header value."""
    caplog.set_level(logging.DEBUG)
    fake.script("GET", "/integrations", ScriptedResponse(status=503))
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
        with instant_retries():
            await client.integrations.list()
    header = fake.requests[0].headers["Authorization"]
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "integrations" in text  # the client did log its requests
    assert "fake-secret-key" not in text
    assert header.split()[1] not in text
