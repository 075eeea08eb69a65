"""OAuth2 client credentials against FakeSendcloud's token endpoint, over real sockets."""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import parse_qsl

import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse
from tests.conftest import fast_backoff

TOKEN_PATH = "/oauth2/token/"


def oauth_client(
    fake: FakeSendcloud, auth: sc.OAuth2ClientCredentials, **kw: object
) -> sc.SendcloudClient:
    """A client for ``fake`` using ``auth``."""
    client = sc.SendcloudClient(auth=auth, base_url=fake.base_url, **kw)  # type: ignore[arg-type]
    fast_backoff(client)
    return client


def token_calls(fake: FakeSendcloud) -> int:
    """Requests that reached the token endpoint, scripted ones included."""
    return sum(1 for r in fake.requests if r.path == TOKEN_PATH)


async def test_token_request_is_client_credentials_with_basic(fake: FakeSendcloud) -> None:
    """The token request is a form POST (grant_type, scope) authenticated by HTTP Basic."""
    async with oauth_client(fake, fake.oauth2_credentials) as client:
        assert await client.integrations.list() == []
    token_req, api_req = fake.requests
    assert (token_req.method, token_req.path) == ("POST", TOKEN_PATH)
    assert token_req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(token_req.body.decode())) == {
        "grant_type": "client_credentials",
        "scope": "api",
    }
    assert token_req.auth_scheme == "basic"
    assert fake.token_auth_methods == ["client_secret_basic"]
    assert api_req.auth_scheme == "bearer"
    assert api_req.headers["Authorization"] == f"Bearer {fake.issued_tokens[0]}"


async def test_thousand_concurrent_first_calls_mint_one_token(fake: FakeSendcloud) -> None:
    """1,000 concurrent first calls cause exactly one token request."""
    fake.seed(integrations=1, logs_per_integration=0, seed=1)
    async with oauth_client(fake, fake.oauth2_credentials) as client:
        results = await asyncio.gather(*(client.integrations.list() for _ in range(1000)))
    assert all(len(r) == 1 for r in results)
    assert fake.token_requests == 1
    assert len(fake.issued_tokens) == 1
    assert sum(1 for r in fake.requests if r.path == "/integrations") == 1000


async def test_short_lived_token_is_refreshed_before_expiry(fake: FakeSendcloud) -> None:
    """With expires_in of 2 s, no API call ever goes out with an expired token."""
    fake.token_expires_in = 2.0
    async with oauth_client(fake, fake.oauth2_credentials) as client:
        deadline = time.monotonic() + 4.5
        calls = 0
        while time.monotonic() < deadline:
            await client.integrations.list()
            calls += 1
            await asyncio.sleep(0.05)
    api = [r for r in fake.requests if r.path == "/integrations"]
    assert len(api) == calls  # no 401 → no replay: every token was still valid
    assert fake.token_requests >= 3  # refreshed proactively, about every second
    assert fake.token_requests <= 6


async def test_revoked_token_gets_one_refresh_and_one_replay(fake: FakeSendcloud) -> None:
    """A revoked token: the 401 triggers one new token and one replay, which succeeds."""
    async with oauth_client(fake, fake.oauth2_credentials) as client:
        await client.integrations.list()
        assert fake.revoke_tokens() == 1
        fake.clear_requests()
        assert await client.integrations.list() == []
    paths = [(r.method, r.path) for r in fake.requests]
    assert paths == [("GET", "/integrations"), ("POST", TOKEN_PATH), ("GET", "/integrations")]
    assert fake.token_requests == 2
    assert fake.requests[0].headers["Authorization"] != fake.requests[2].headers["Authorization"]


async def test_burst_of_401s_causes_one_refresh(fake: FakeSendcloud) -> None:
    """Fifty concurrent calls all hitting 401 with the same revoked token cause one refresh."""
    async with oauth_client(fake, fake.oauth2_credentials) as client:
        await client.integrations.list()
        fake.revoke_tokens()
        await asyncio.gather(*(client.integrations.list() for _ in range(50)))
    assert fake.token_requests == 2


async def test_second_401_raises_authentication_error(fake: FakeSendcloud) -> None:
    """If the replay with a fresh token is refused too, AuthenticationError is raised."""
    unauthorized = ScriptedResponse(
        status=401,
        body={
            "errors": [
                {"status": "401", "code": "authentication_failed", "detail": "Token rejected."}
            ]
        },
    )
    fake.script("GET", "/integrations", unauthorized, unauthorized)
    async with oauth_client(fake, fake.oauth2_credentials, max_retries=3) as client:
        with pytest.raises(sc.AuthenticationError, match="Token rejected"):
            await client.integrations.list()
    api = [r for r in fake.requests if r.path == "/integrations"]
    assert len(api) == 2
    assert fake.token_requests == 2


async def test_rejected_client_credentials_fail_fast(fake: FakeSendcloud) -> None:
    """Wrong client credentials → AuthenticationError quoting the RFC 6749 error, no retries."""
    auth = sc.OAuth2ClientCredentials("fake-client-id", "wrong-secret", token_url=fake.token_url)
    async with oauth_client(fake, auth, max_retries=3) as client:
        started = time.monotonic()
        with pytest.raises(sc.AuthenticationError) as info:
            await client.integrations.list()
        assert time.monotonic() - started < 1.0
    err = info.value
    assert err.code == "invalid_client"
    assert "Client authentication failed" in str(err)
    assert "wrong-secret" not in str(err)
    assert err.url == fake.token_url
    assert fake.token_requests == 1
    assert not [
        r for r in fake.requests if r.path == "/integrations"
    ]  # the API call never went out


async def test_invalid_scope_is_authentication_error(fake: FakeSendcloud) -> None:
    """An unknown scope → AuthenticationError with invalid_scope and the server's description."""
    auth = sc.OAuth2ClientCredentials(
        fake.client_id, fake.client_secret, token_url=fake.token_url, scope="admin"
    )
    async with oauth_client(fake, auth) as client:
        with pytest.raises(sc.AuthenticationError, match="Unknown scope: admin") as info:
            await client.integrations.list()
    assert info.value.code == "invalid_scope"
    assert info.value.status == 400


async def test_token_endpoint_5xx_is_retried_then_succeeds(fake: FakeSendcloud) -> None:
    """A 503 from the token endpoint goes through the retry policy, even for a POST of logs."""
    iid = fake.add_integration()["id"]
    fake.script("POST", TOKEN_PATH, ScriptedResponse(status=503))
    async with oauth_client(fake, fake.oauth2_credentials, max_retries=2) as client:
        log = await client.logs.create(iid, base_url="https://shop.example")
    assert log.integration_id == iid
    assert [(r.method, r.path) for r in fake.requests] == [
        ("POST", TOKEN_PATH),
        ("POST", TOKEN_PATH),
        ("POST", f"/integrations/{iid}/logs"),
    ]


async def test_failed_refresh_fails_every_waiter_and_does_not_poison(fake: FakeSendcloud) -> None:
    """A failing token fetch fails all concurrent waiters with one error; the next call works."""
    fake.script("POST", TOKEN_PATH, ScriptedResponse(status=503, delay=0.1))
    async with oauth_client(fake, fake.oauth2_credentials, max_retries=0) as client:
        results = await asyncio.gather(
            *(client.integrations.list() for _ in range(20)), return_exceptions=True
        )
        assert all(isinstance(r, sc.ServerError) for r in results)
        assert len({id(r) for r in results}) == 1  # one failure, shared
        assert token_calls(fake) == 1
        assert await client.integrations.list() == []
    assert token_calls(fake) == 2


async def test_cancelled_waiter_does_not_cancel_the_fetch(fake: FakeSendcloud) -> None:
    """Cancelling one coroutine waiting for a token leaves the fetch running for the others."""
    fake.script(
        "POST",
        TOKEN_PATH,
        ScriptedResponse(
            body={"access_token": "slow-token", "token_type": "Bearer", "expires_in": 60},
            delay=0.3,
        ),
    )
    fake._bearer_tokens.add("slow-token")
    async with oauth_client(fake, fake.oauth2_credentials) as client:
        first = asyncio.create_task(client.integrations.list())
        second = asyncio.create_task(client.integrations.list())
        await asyncio.sleep(0.1)
        first.cancel()
        assert await second == []
        with pytest.raises(asyncio.CancelledError):
            await first
    assert token_calls(fake) == 1


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html>login</html>", "without a usable access_token"),
        (b'{"token_type": "Bearer"}', "without a usable access_token"),
        (b'{"access_token": "x", "token_type": "mac"}', "unusable token"),
    ],
)
async def test_unusable_token_response_is_decode_error(
    fake: FakeSendcloud, body: bytes, match: str
) -> None:
    """A 200 from the token endpoint without a usable bearer token raises DecodeError."""
    fake.script("POST", TOKEN_PATH, ScriptedResponse(body=body))
    async with oauth_client(fake, fake.oauth2_credentials, max_retries=0) as client:
        with pytest.raises(sc.DecodeError, match=match):
            await client.integrations.list()


async def test_token_without_expires_in_is_not_forever(fake: FakeSendcloud) -> None:
    """A token without expires_in is kept for default_lifetime seconds, then replaced."""
    fake.token_expires_in = None
    auth = sc.OAuth2ClientCredentials(
        fake.client_id, fake.client_secret, token_url=fake.token_url, default_lifetime=0.6
    )
    async with oauth_client(fake, auth) as client:
        await client.integrations.list()
        await client.integrations.list()
        assert fake.token_requests == 1
        await asyncio.sleep(0.7)
        await client.integrations.list()
    assert fake.token_requests == 2


async def test_shared_credentials_share_one_token(fake: FakeSendcloud) -> None:
    """One OAuth2ClientCredentials used by two clients fetches one token for both."""
    auth = fake.oauth2_credentials
    async with oauth_client(fake, auth) as a, oauth_client(fake, auth) as b:
        await asyncio.gather(a.integrations.list(), b.integrations.list())
        await a.integrations.list()
        assert a.token_requests == b.token_requests == 1  # one flow, one count
    assert fake.token_requests == 1


async def test_basic_still_accepted_alongside_bearer(fake: FakeSendcloud) -> None:
    """The API accepts both Basic and bearer credentials, like Sendcloud."""
    async with (
        oauth_client(fake, fake.oauth2_credentials) as oauth,
        oauth_client(
            fake,
            fake.basic_auth,  # type: ignore[arg-type]
        ) as basic,
    ):
        await oauth.integrations.list()
        await basic.integrations.list()
    schemes = [r.auth_scheme for r in fake.requests if r.path == "/integrations"]
    assert schemes == ["bearer", "basic"]


async def test_no_secret_in_logs_reprs_or_errors(
    fake: FakeSendcloud, caplog: pytest.LogCaptureFixture
) -> None:
    """Client secret and tokens never appear in DEBUG logs, reprs or error messages."""
    caplog.set_level(logging.DEBUG)
    auth = fake.oauth2_credentials
    fake.script("GET", "/integrations", ScriptedResponse(status=503))
    async with oauth_client(fake, auth) as client:
        await client.integrations.list()
        fake.revoke_tokens()
        await client.integrations.list()
        with pytest.raises(sc.NotFoundError) as info:
            await client.integrations.get(12345)
        shown = [repr(auth), str(auth), repr(client), str(info.value), repr(info.value)]
    logged = [r.getMessage() for r in caplog.records]
    assert any("oauth2/token" in line for line in logged)  # the token fetch was logged
    secrets = [fake.client_secret, *fake.issued_tokens]
    assert len(fake.issued_tokens) == 2
    for text in shown + logged:
        for secret in secrets:
            assert secret not in text


def test_token_url_must_be_https_except_loopback() -> None:
    """token_url must be https unless the host is loopback."""
    with pytest.raises(sc.InvalidInputError, match="https"):
        sc.OAuth2ClientCredentials("id", "secret", token_url="http://account.sendcloud.com/t/")
    with pytest.raises(sc.InvalidInputError, match="credentials"):
        sc.OAuth2ClientCredentials("id", "secret", token_url="https://u:p@account.sendcloud.com/")
    for ok in (
        "https://account.sendcloud.com/oauth2/token/",
        "http://127.0.0.1:8080/t",
        "http://localhost/t",
        "http://[::1]:9/t",
    ):
        assert sc.OAuth2ClientCredentials("id", "secret", token_url=ok).token_url == ok


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        (("", "s"), {}, "client_id"),
        (("i", ""), {}, "client_secret"),
        ((1, "s"), {}, "client_id"),
        (("i", "s"), {"scope": 5}, "scope"),
        (("i", "s"), {"leeway": -1}, "leeway"),
        (("i", "s"), {"default_lifetime": 0}, "default_lifetime"),
        (("i", "s"), {"token_url": "ftp://x/"}, "https"),
    ],
)
def test_bad_oauth2_arguments(
    args: tuple[object, ...], kwargs: dict[str, object], match: str
) -> None:
    """Bad OAuth2ClientCredentials arguments raise InvalidInputError naming the argument."""
    with pytest.raises(sc.InvalidInputError, match=match):
        sc.OAuth2ClientCredentials(*args, **kwargs)  # type: ignore[arg-type]


def test_repr_masks_identifiers() -> None:
    """repr shows a masked client id and never the secret."""
    auth = sc.OAuth2ClientCredentials("client-123456", "top-secret-value")
    assert "top-secret-value" not in repr(auth)
    assert "client-123456" not in repr(auth)
    assert "clie…" in repr(auth)
