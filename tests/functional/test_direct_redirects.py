"""A GET with static credentials on the SDK's own session follows a redirect as aiohttp does.

Such a GET is sent without the per-attempt middleware (``Request.direct``): aiohttp
does not follow its redirect, the transport does, by aiohttp's rules, and the rest of
the attempt goes through the middleware. Every test here runs one redirect twice:
through a client on its own session (that path) and through a client on a borrowed
session (aiohttp follows, the middleware on every hop), and asserts that the server saw
the same requests, with the same credentials, and that the caller got the same outcome.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import pytest
from yarl import URL

import sendcloud_async as sc
from sendcloud_async._operations import INTEGRATIONS_LIST
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse

Seen = tuple[str, list[tuple[str, str, str | None]]]


@pytest.fixture
async def server() -> AsyncIterator[FakeSendcloud]:
    """A fake with one integration; it does not check redirect targets against the spec."""
    async with FakeSendcloud(validate_spec=False) as fake:
        fake.add_integration(id=1)
        yield fake


async def _outcome(
    call: Callable[[sc.SendcloudClient], Awaitable[object]], client: sc.SendcloudClient
) -> str:
    """What the caller got: a result's size, or the error's type and message."""
    try:
        result = await call(client)
    except sc.SendcloudError as exc:
        return f"{type(exc).__name__}: {exc}"
    return f"ok: {len(result) if isinstance(result, list) else result!r}"


async def both_ways(
    fake: FakeSendcloud,
    script: Callable[[], None],
    call: Callable[[sc.SendcloudClient], Awaitable[object]],
) -> tuple[Seen, Seen]:
    """``call`` on a client of its own session, then on a borrowed one, ``script`` before each."""
    seen: list[Seen] = []
    for borrowed in (False, True):
        fake.clear_requests()
        script()
        async with (
            aiohttp.ClientSession() as session,
            sc.SendcloudClient(
                auth=fake.basic_auth,
                base_url=fake.base_url,
                max_retries=0,
                session=session if borrowed else None,
            ) as client,
        ):
            got = await _outcome(call, client)
        requests = [(r.method, r.raw_path, r.auth_scheme) for r in fake.requests]
        seen.append((got, requests))
    return seen[0], seen[1]


def redirect(fake: FakeSendcloud, status: int, location: str, header: str = "Location") -> None:
    fake.script("GET", "/integrations", ScriptedResponse(status, headers={header: location}))


def listing(client: sc.SendcloudClient) -> Awaitable[object]:
    return client.integrations.list()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize(
    "location",
    [
        "{base}/integrations/1",  # absolute, same origin
        "/api/v3/integrations/1",  # absolute path
        "integrations/1",  # relative to the request's path
        "http:/api/v3/integrations/1",  # the scheme, no authority
    ],
)
async def test_a_same_origin_redirect_is_followed_as_aiohttp_follows_it(
    server: FakeSendcloud, status: int, location: str
) -> None:
    target = location.format(base=server.base_url)
    own, borrowed = await both_ways(server, lambda: redirect(server, status, target), listing)
    assert own == borrowed
    got, requests = own
    assert [path for _, path, _ in requests] == [
        "/api/v3/integrations",
        "/api/v3/integrations/1",
    ]
    assert [scheme for _, _, scheme in requests] == ["basic", "basic"]
    assert got.startswith("DecodeError")  # the target's body is not a list of integrations


async def test_the_uri_header_is_a_location_too(server: FakeSendcloud) -> None:
    target = server.base_url + "/integrations/1"
    own, borrowed = await both_ways(server, lambda: redirect(server, 302, target, "URI"), listing)
    assert own == borrowed
    assert len(own[1]) == 2


@pytest.mark.parametrize(
    "location", ["ftp://127.0.0.1/api/v3/integrations", "http://[::1", "http://"]
)
async def test_a_location_aiohttp_refuses_fails_the_same_way(
    server: FakeSendcloud, location: str
) -> None:
    """Not http(s), not a URL, no host: the error aiohttp raises, and no second request."""
    own, borrowed = await both_ways(server, lambda: redirect(server, 302, location), listing)
    assert own == borrowed
    got, requests = own
    assert got.startswith("APIConnectionError")
    assert len(requests) == 1


async def test_a_redirect_loop_stops_after_ten_hops(server: FakeSendcloud) -> None:
    """aiohttp's ``max_redirects``: the first hop the transport follows counts as one."""
    loop = ScriptedResponse(302, headers={"Location": server.base_url + "/integrations"})

    def script() -> None:
        server.script("GET", "/integrations", *[loop] * 12)

    own, borrowed = await both_ways(server, script, listing)
    assert own == borrowed
    got, requests = own
    assert got.startswith("APIConnectionError")
    assert "TooManyRedirects" in got
    assert len(requests) == 10


async def test_a_redirect_without_location_is_an_api_error(server: FakeSendcloud) -> None:
    own, borrowed = await both_ways(
        server,
        lambda: server.script("GET", "/integrations", ScriptedResponse(302)),
        listing,
    )
    assert own == borrowed
    assert own[0].startswith("APIError")
    assert len(own[1]) == 1


async def test_the_followed_hop_keeps_within_the_attempts_timeout(
    server: FakeSendcloud,
) -> None:
    """The redirect and its target share one timeout: a slow target times out the attempt."""
    target = server.base_url + "/integrations/1"
    server.script(
        "GET", "/integrations", ScriptedResponse(302, headers={"Location": target}, delay=0.3)
    )
    server.script("GET", "/integrations/1", ScriptedResponse(200, delay=0.4))
    async with sc.SendcloudClient(
        auth=server.basic_auth, base_url=server.base_url, max_retries=0, timeout=0.5
    ) as client:
        with pytest.raises(sc.APITimeoutError):
            await client.integrations.list()
    assert [r.path for r in server.requests] == [
        "/integrations",
        "/integrations/1",
    ]


async def test_a_get_off_the_apis_origin_is_refused_before_anything_is_sent(
    server: FakeSendcloud,
) -> None:
    """Defence in depth: a GET whose URL is not on the API's origin (none gets that far:
    next-page links are checked first) is never sent with the credentials directly; the
    middleware refuses it and the other server sees nothing."""
    async with FakeSendcloud() as other:
        foreign = URL(other.base_url) / "integrations"
        async with sc.SendcloudClient(
            auth=server.basic_auth, base_url=server.base_url, max_retries=0
        ) as client:
            with pytest.raises(sc.SendcloudError, match="another origin") as raised:
                await client._transport.send(INTEGRATIONS_LIST, foreign)
        assert other.requests == []
        assert server.requests == []
        secret = server.basic_auth.secret_key.get_secret_value()
        assert secret not in str(raised.value)
