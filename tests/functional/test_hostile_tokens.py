"""Hostile OAuth2 token endpoints over real sockets: unusable tokens, odd lifetimes, stuck fetches.

The token endpoint's answers come from FakeSendcloud's fault injection where it
can serve them; a stuck endpoint is a tiny aiohttp server of our own that holds
the request until it is told to recover (then it passes requests on to the
fake's real endpoint) and notes when the SDK gave up on the connection.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, Fault, RetryEvent
from tests.functional._hostile import serving

TOKEN_PATH = "/oauth2/token/"
JSON = {"Content-Type": "application/json"}


def api_requests(fake: FakeSendcloud) -> list[str]:
    """``METHOD path`` of every request to the API (the token endpoint left out)."""
    return [f"{r.method} {r.path}" for r in fake.requests if r.path != TOKEN_PATH]


def token_requests(fake: FakeSendcloud) -> int:
    """How many requests reached the fake's token endpoint (faulted ones included)."""
    return sum(1 for r in fake.requests if r.path == TOKEN_PATH)


@pytest.fixture
async def oauth(
    fake: FakeSendcloud, retries: list[RetryEvent]
) -> AsyncIterator[sc.SendcloudClient]:
    """An OAuth2 client against ``fake`` that would retry three times (instantly)."""
    async with sc.SendcloudClient(
        auth=fake.oauth2_credentials, base_url=fake.base_url, timeout=5.0, max_retries=3
    ) as client:
        yield client


async def issue_token(fake: FakeSendcloud) -> str:
    """A token the fake really issued (asked for directly, then the journal is cleared)."""
    pair = base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            fake.token_url,
            data={"grant_type": "client_credentials"},
            headers={"Authorization": f"Basic {pair}"},
        ) as resp,
    ):
        assert resp.status == 200
        token: str = (await resp.json())["access_token"]
    fake.clear_requests()
    return token


# -- a 200 without a usable token: DecodeError after exactly one request ------------------------

UNUSABLE: dict[str, tuple[object, dict[str, str]]] = {
    "not json": (b"this is not json", {"Content-Type": "text/plain"}),
    "html login page": (
        b"<!doctype html><html><body><form action=/login>Sign in</form></body></html>",
        {"Content-Type": "text/html"},
    ),
    "empty object": ({}, {}),
    "empty token": ({"access_token": "", "token_type": "Bearer", "expires_in": 3600}, {}),
    "null token": ({"access_token": None, "token_type": "Bearer"}, {}),
    "number token": ({"access_token": 12345678, "token_type": "Bearer"}, {}),
    "list token": ({"access_token": ["tok"], "token_type": "Bearer"}, {}),
    "object token": ({"access_token": {"value": "tok"}, "token_type": "Bearer"}, {}),
    "mac token": ({"access_token": "tok-abcdef123456", "token_type": "mac"}, {}),
    "basic token": ({"access_token": "tok-abcdef123456", "token_type": "Basic"}, {}),
    "number token_type": ({"access_token": "tok-abcdef123456", "token_type": 1}, {}),
    "json list": ([{"access_token": "tok-abcdef123456"}], {}),
    "json string": (b'"tok-abcdef123456"', JSON),
}


@pytest.mark.parametrize("answer", UNUSABLE.values(), ids=list(UNUSABLE))
async def test_a_200_without_a_usable_token_is_a_decode_error_at_once(
    fake: FakeSendcloud,
    oauth: sc.SendcloudClient,
    retries: list[RetryEvent],
    answer: tuple[object, dict[str, str]],
) -> None:
    """Not JSON, an HTML page, {}, an empty or non-string token, not bearer: one token request."""
    body, headers = answer
    fake.inject("POST", TOKEN_PATH, Fault.status(200, body=body, headers=headers or None))
    with pytest.raises(sc.DecodeError) as info:
        await oauth.integrations.list()
    assert type(info.value) is sc.DecodeError
    assert token_requests(fake) == 1
    assert api_requests(fake) == []
    assert retries == []


# -- expires_in that is not a sane number ---------------------------------------------------------

LIFETIMES: dict[str, bytes] = {
    "inf string": b'"inf"',
    "nan string": b'"nan"',
    "-inf string": b'"-inf"',
    "1e400": b"1e400",
    "-1e400": b"-1e400",
    "huge int": b"1" + b"0" * 400,
    "negative": b"-5",
    "zero": b"0",
    "word": b'"soon"',
    "bool": b"true",
    "object": b'{"s": 1}',
    "tiny": b"1e-300",
}


@pytest.mark.parametrize("lifetime", LIFETIMES.values(), ids=list(LIFETIMES))
async def test_an_odd_expires_in_gives_a_sane_lifetime_or_a_decode_error(
    fake: FakeSendcloud, oauth: sc.SendcloudClient, retries: list[RetryEvent], lifetime: bytes
) -> None:
    """expires_in "inf", "nan", 1e400, a huge int, negative...: a working token or DecodeError."""
    token = await issue_token(fake)
    body = b'{"access_token": "%s", "token_type": "Bearer", "expires_in": %s}' % (
        token.encode(),
        lifetime,
    )
    fake.inject("POST", TOKEN_PATH, Fault.status(200, body=body, headers=JSON))
    try:
        first = await oauth.integrations.list()
    except sc.DecodeError:
        assert token_requests(fake) == 1
        assert api_requests(fake) == []
        return
    assert first == []
    # A sane lifetime: the token works and the next call neither crashes nor spins.
    assert await oauth.integrations.list() == []
    assert api_requests(fake) == ["GET /integrations", "GET /integrations"]
    assert token_requests(fake) <= 2
    used = {r.header("Authorization") for r in fake.requests if r.path != TOKEN_PATH}
    assert f"Bearer {token}" in used
    assert retries == []


# -- a token that cannot go into a header ----------------------------------------------------------


@pytest.mark.parametrize(
    "token",
    ["tok\r\nX-Injected: yes", "tok\nabc", "tok\rabc", "tok\x00abc", "\r\n", "tok\x7f"],
    ids=["crlf header", "lf", "cr", "nul", "only crlf", "del"],
)
async def test_a_token_with_control_characters_is_refused_by_the_fetch(
    fake: FakeSendcloud, oauth: sc.SendcloudClient, retries: list[RetryEvent], token: str
) -> None:
    """CR, LF or NUL in access_token: DecodeError from the token fetch; no API request."""
    answer = {"access_token": token, "token_type": "Bearer", "expires_in": 3600}
    fake.inject("POST", TOKEN_PATH, Fault.status(200, body=answer))
    with pytest.raises(sc.DecodeError, match="token"):
        await oauth.integrations.list()
    assert token_requests(fake) == 1
    assert api_requests(fake) == []
    assert retries == []


# -- a stuck token endpoint ------------------------------------------------------------------------


@dataclass
class StuckEndpoint:
    """A token endpoint that holds requests while ``stuck``, else passes them to the fake."""

    fake: FakeSendcloud
    url: str = ""
    stuck: bool = True
    held: int = 0
    passed: int = 0
    #: Set each time the SDK gives up on a held request (its connection closed).
    abandoned: asyncio.Event = field(default_factory=asyncio.Event)
    reached: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        if self.stuck:
            self.held += 1
            self.reached.set()
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.abandoned.set()
                raise
        self.passed += 1
        headers = {"Content-Type": request.headers.get("Content-Type", "")}
        if "Authorization" in request.headers:
            headers["Authorization"] = request.headers["Authorization"]
        async with (
            aiohttp.ClientSession() as session,
            session.post(self.fake.token_url, data=body, headers=headers) as resp,
        ):
            return web.Response(
                status=resp.status, body=await resp.read(), content_type="application/json"
            )


@pytest.fixture
async def stuck(fake: FakeSendcloud) -> AsyncIterator[StuckEndpoint]:
    """A stuck token endpoint in front of the fake's."""
    endpoint = StuckEndpoint(fake)
    app = web.Application()
    app.router.add_post(TOKEN_PATH, endpoint.handle)
    async with serving(app) as origin:
        endpoint.url = origin + TOKEN_PATH
        yield endpoint


def credentials(fake: FakeSendcloud, endpoint: StuckEndpoint) -> sc.OAuth2ClientCredentials:
    """The fake's client id and secret, with the stuck endpoint as token URL."""
    return sc.OAuth2ClientCredentials(fake.client_id, fake.client_secret, token_url=endpoint.url)


async def test_a_stuck_token_request_on_a_borrowed_session_is_bounded_by_the_timeout(
    fake: FakeSendcloud, stuck: StuckEndpoint
) -> None:
    """Borrowed session (300 s default): the token wait ends with the attempt's 1 s timeout."""
    async with aiohttp.ClientSession() as session:
        client = sc.SendcloudClient(
            auth=credentials(fake, stuck),
            base_url=fake.base_url,
            session=session,
            timeout=1.0,
            max_retries=0,
        )
        started = time.monotonic()
        with pytest.raises(sc.APITimeoutError):
            await client.integrations.list()
        assert time.monotonic() - started < 3.0
        # Callers arriving while it is stuck are bounded too, not queued behind the stuck fetch.
        started = time.monotonic()
        outcomes = await asyncio.gather(
            *(client.integrations.list() for _ in range(5)), return_exceptions=True
        )
        assert time.monotonic() - started < 3.0
        assert all(isinstance(o, sc.APITimeoutError) for o in outcomes), outcomes
        assert api_requests(fake) == []
        # The endpoint recovers: the very next call gets a token and succeeds.
        stuck.stuck = False
        started = time.monotonic()
        assert await client.integrations.list() == []
        assert time.monotonic() - started < 1.0
        assert stuck.passed == 1
        assert api_requests(fake) == ["GET /integrations"]
        await client.aclose()
        assert not session.closed


@pytest.mark.parametrize("borrowed", [True, False], ids=["borrowed session", "own session"])
async def test_aclose_ends_an_in_flight_token_fetch(
    fake: FakeSendcloud, stuck: StuckEndpoint, borrowed: bool
) -> None:
    """aclose() while the token request hangs: the caller gets a SendcloudError, the fetch ends."""
    async with aiohttp.ClientSession() as session:
        client = sc.SendcloudClient(
            auth=credentials(fake, stuck),
            base_url=fake.base_url,
            session=session if borrowed else None,
            timeout=60.0,
            max_retries=0,
        )
        call = asyncio.ensure_future(client.integrations.list())
        await asyncio.wait_for(stuck.reached.wait(), 5)
        started = time.monotonic()
        await asyncio.wait_for(client.aclose(), 5)
        done, _ = await asyncio.wait({call}, timeout=2)
        assert done, "the call still waits on the token fetch after aclose()"
        exc = call.exception()
        assert isinstance(exc, sc.SendcloudError), exc
        await asyncio.wait_for(stuck.abandoned.wait(), 2)
        assert time.monotonic() - started < 3.0
        assert stuck.held == 1
        assert api_requests(fake) == []
        assert session.closed is False
