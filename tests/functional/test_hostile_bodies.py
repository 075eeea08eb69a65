"""Hostile response bodies over real sockets: deep nesting, huge bodies, bombs, odd encodings.

Each test serves one hostile answer (FakeSendcloud's faults and scripts where
they can, a tiny aiohttp server where the answer must be streamed or
compressed by hand) and checks the exact error class, that the SDK sent exactly
the requests it should (no retry of an answer that will not change), and, for
the big ones, that memory stays bounded by the response-size limit.
"""

from __future__ import annotations

import base64
import functools
import tracemalloc
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, Fault, RetryEvent, ScriptedResponse
from tests.functional._hostile import nested_array, nested_object, serving

JSON = {"Content-Type": "application/json"}
MiB = 1024 * 1024


@pytest.fixture
async def plain(fake: FakeSendcloud) -> AsyncIterator[sc.SendcloudClient]:
    """A Basic-auth client that never retries (one request per call)."""
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, timeout=10.0, max_retries=0
    ) as client:
        yield client


def api_requests(fake: FakeSendcloud) -> list[str]:
    """``METHOD path`` of every request to the API (the token endpoint left out)."""
    return [f"{r.method} {r.path}" for r in fake.requests if not r.path.startswith("/oauth2/")]


def token_requests(fake: FakeSendcloud) -> int:
    """How many requests reached the token endpoint (faulted ones included)."""
    return sum(1 for r in fake.requests if r.path.startswith("/oauth2/"))


# -- deep nesting ------------------------------------------------------------------------------

DEEP_200 = {
    "unknown field first": b'{"x":' + nested_object() + b',"data":[]}',
    "in an item": b'{"data":[{"x":' + nested_array() + b"}]}",
    "top level objects": nested_object(),
}


@pytest.mark.parametrize("body", DEEP_200.values(), ids=list(DEEP_200))
async def test_deeply_nested_200_body_is_a_decode_error(
    fake: FakeSendcloud, client: sc.SendcloudClient, retries: list[RetryEvent], body: bytes
) -> None:
    """JSON nested ~1,000 levels deep in a 200: DecodeError, not RecursionError; one request."""
    fake.script("GET", "/integrations", ScriptedResponse(200, body=body, headers=JSON))
    with pytest.raises(sc.DecodeError) as info:
        await client.integrations.list()
    assert type(info.value) is sc.DecodeError
    assert api_requests(fake) == ["GET /integrations"]
    assert retries == []


async def test_deeply_nested_log_page_is_a_decode_error(
    fake: FakeSendcloud, client: sc.SendcloudClient, retries: list[RetryEvent]
) -> None:
    """A log page nested ~1,000 levels deep: DecodeError from the listing; one request."""
    body = b'{"data":[],"meta":' + nested_object() + b"}"
    fake.script("GET", "/integrations/logs", ScriptedResponse(200, body=body, headers=JSON))
    with pytest.raises(sc.DecodeError):
        async for _log in client.logs.iter():
            pass
    assert api_requests(fake) == ["GET /integrations/logs"]
    assert retries == []


DEEP_ERRORS = {
    "top level": nested_object(),
    "errors list": b'{"errors":' + nested_array() + b"}",
    "meta": b'{"errors":[{"code":"x","detail":"d","meta":' + nested_object() + b"}]}",
}


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, sc.BadRequestError),
        (401, sc.AuthenticationError),
        (403, sc.PermissionDeniedError),
        (404, sc.NotFoundError),
        (422, sc.APIError),
        (429, sc.RateLimitError),
        (500, sc.ServerError),
        (503, sc.ServerError),
    ],
)
@pytest.mark.parametrize("body", DEEP_ERRORS.values(), ids=list(DEEP_ERRORS))
async def test_deeply_nested_error_body_gives_the_status_class(
    fake: FakeSendcloud,
    plain: sc.SendcloudClient,
    status: int,
    cls: type[sc.APIError],
    body: bytes,
) -> None:
    """An error body nested ~1,000 levels deep: the status's own class, never RecursionError."""
    fake.inject("GET", "/integrations", Fault.status(status, body=body, headers=JSON))
    with pytest.raises(sc.APIError) as info:
        await plain.integrations.list()
    assert type(info.value) is cls
    assert info.value.status == status
    assert info.value.errors == []
    assert len(str(info.value)) < 500
    assert api_requests(fake) == ["GET /integrations"]


async def test_deeply_nested_token_response_is_a_decode_error(fake: FakeSendcloud) -> None:
    """A token endpoint answering 200 with JSON ~1,000 levels deep: DecodeError, one request."""
    fake.inject("POST", "/oauth2/token/", Fault.status(200, body=nested_object(), headers=JSON))
    async with sc.SendcloudClient(
        auth=fake.oauth2_credentials, base_url=fake.base_url, max_retries=3
    ) as client:
        with pytest.raises(sc.DecodeError):
            await client.integrations.list()
    assert token_requests(fake) == 1
    assert api_requests(fake) == []


# -- huge bodies and the response-size limit ---------------------------------------------------


def integrations_page(count: int, fake: FakeSendcloud) -> dict[str, Any]:
    """A list answer of ``count`` copies of a real integration, ~600 bytes each."""
    fake.seed(integrations=1, logs_per_integration=0)
    record = dict(next(iter(fake.integrations.values())))
    record["shop_name"] = "s" * 250
    return {"data": [{**record, "id": i + 1} for i in range(count)]}


async def test_a_big_real_page_is_read_under_the_default_limit(
    fake: FakeSendcloud, plain: sc.SendcloudClient
) -> None:
    """The default limit is far above any real page: a 2 MB answer decodes."""
    page = integrations_page(4_000, fake)
    assert len(msgspec.json.encode(page)) > 2 * 10**6
    fake.script("GET", "/integrations", ScriptedResponse(200, body=page))
    listed = await plain.integrations.list()
    assert len(listed) == 4_000


@pytest.mark.parametrize(
    "value", [0, -1, 1.5, "1000", True, None], ids=["0", "-1", "float", "str", "bool", "None"]
)
async def test_max_response_size_is_checked_before_sending(
    fake: FakeSendcloud, value: object
) -> None:
    """A limit that is not a positive int raises InvalidInputError naming it; nothing is sent."""
    with pytest.raises(sc.InvalidInputError, match="max_response_size"):
        sc.SendcloudClient(
            auth=fake.basic_auth,
            base_url=fake.base_url,
            max_response_size=value,  # type: ignore[arg-type]
        )
    assert fake.requests == []


async def test_a_body_over_the_limit_with_content_length(
    fake: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """A 3 MB answer over a 1 MB limit: ResponseTooLargeError naming the limit; one request."""
    fake.script("GET", "/integrations", ScriptedResponse(200, body=integrations_page(5_000, fake)))
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, max_retries=2, max_response_size=10**6
    ) as client:
        with pytest.raises(sc.ResponseTooLargeError) as info:
            await client.integrations.list()
    assert isinstance(info.value, sc.DecodeError)
    assert "1,000,000 bytes" in str(info.value)
    assert info.value.limit == 10**6
    assert api_requests(fake) == ["GET /integrations"]
    assert retries == []


async def test_an_error_body_over_the_limit_is_refused_too(
    fake: FakeSendcloud, retries: list[RetryEvent]
) -> None:
    """A 502 whose HTML page is over the limit: ResponseTooLargeError, the page never held."""
    page = b"<html>" + b"<p>bad gateway</p>" * 200_000 + b"</html>"
    fake.inject("GET", "/integrations", Fault.status(502, body=page))
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, max_retries=0, max_response_size=10**6
    ) as client:
        with pytest.raises(sc.ResponseTooLargeError):
            await client.integrations.list()
    assert api_requests(fake) == ["GET /integrations"]


async def test_a_big_html_error_page_gives_a_short_message(
    fake: FakeSendcloud, plain: sc.SendcloudClient
) -> None:
    """A 5 MB HTML 502 page under the limit: ServerError with a sentence, not megabytes."""
    page = b"<html><body>" + b"<p>upstream went away</p>\n" * 200_000 + b"</body></html>"
    fake.inject("GET", "/integrations", Fault.status(502, body=page))
    with pytest.raises(sc.ServerError) as info:
        await plain.integrations.list()
    assert len(str(info.value)) < 400
    assert info.value.body is not None
    assert len(info.value.body) <= 200


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@pytest.fixture
async def hostile() -> AsyncIterator[Callable[[Handler], Awaitable[str]]]:
    """A starter of one-handler servers (every path); each call returns the base URL."""
    stack: list[Any] = []

    async def start(handler: Handler) -> str:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handler)
        cm = serving(app)
        origin = await cm.__aenter__()
        stack.append(cm)
        return origin + "/api/v3"

    yield start
    for cm in reversed(stack):
        await cm.__aexit__(None, None, None)


def measured() -> Callable[[], int]:
    """Start tracing allocations; the returned function stops and gives the peak in bytes."""
    tracemalloc.start()

    def stop() -> int:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak

    return stop


async def test_a_streamed_body_over_the_limit_is_cut_off_with_bounded_memory(
    hostile: Callable[[Handler], Awaitable[str]],
) -> None:
    """50 MB streamed without Content-Length over a 1 MB limit: refused, memory stays small."""
    served: list[int] = []
    chunk = b"[" + b"0," * 32_767 + b"0"

    async def endless(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers=JSON)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        served.append(0)
        try:
            for _ in range(50 * MiB // len(chunk)):
                await resp.write(chunk)
                served[-1] += len(chunk)
        except (ConnectionError, RuntimeError):
            pass
        return resp

    base = await hostile(endless)
    async with sc.SendcloudClient(
        auth=sc.BasicAuth("pk-stream", "sk-stream-secret"),
        base_url=base,
        max_retries=0,
        max_response_size=MiB,
    ) as client:
        stop = measured()
        try:
            with pytest.raises(sc.ResponseTooLargeError, match="1,048,576 bytes"):
                await client.integrations.list()
        finally:
            peak = stop()
    assert len(served) == 1
    assert peak < 8 * MiB, f"peak {peak / MiB:.1f} MiB for a 1 MiB limit"


@functools.cache
def gzip_bomb(size: int = 256 * MiB) -> bytes:
    """``size`` zero bytes, gzip-compressed (about a thousandth of the size)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"\0" * MiB
    parts = [packer.compress(block) for _ in range(size // MiB)]
    parts.append(packer.flush())
    return b"".join(parts)


@pytest.mark.parametrize("limit", [None, 10 * MiB], ids=["default limit", "10 MiB"])
async def test_a_gzip_bomb_is_stopped_at_the_limit(
    hostile: Callable[[Handler], Awaitable[str]], limit: int | None
) -> None:
    """A ~256 kB gzip body inflating to 256 MiB: ResponseTooLargeError, memory bounded."""
    bomb = gzip_bomb()
    assert len(bomb) < 400_000
    hits: list[str] = []

    async def explode(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=bomb, headers={**JSON, "Content-Encoding": "gzip"})

    base = await hostile(explode)
    extra: dict[str, Any] = {} if limit is None else {"max_response_size": limit}
    async with sc.SendcloudClient(
        auth=sc.BasicAuth("pk-bomb", "sk-bomb-secret"), base_url=base, max_retries=0, **extra
    ) as client:
        stop = measured()
        try:
            with pytest.raises(sc.ResponseTooLargeError):
                await client.integrations.list()
        finally:
            peak = stop()
    assert hits == ["/api/v3/integrations"]
    bound = (limit or 64 * MiB) * 2 + 8 * MiB
    assert peak < bound, f"peak {peak / MiB:.0f} MiB"


# -- encodings that do not decode --------------------------------------------------------------

LATIN1_PAGE = b'{"data": [{"id": 1, "shop_name": "caf\xe9"}]}'


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ('{"data": []}'.encode("utf-16"), "application/json; charset=utf-16"),
        (LATIN1_PAGE, "application/json; charset=iso-8859-1"),
        (b"\xff\xfe\xfd", "application/json"),
        (base64.b64encode(b'{"data": []}'), "application/json"),
    ],
    ids=["utf-16", "latin-1", "garbage", "base64"],
)
async def test_a_200_body_in_another_encoding_is_a_decode_error(
    fake: FakeSendcloud,
    client: sc.SendcloudClient,
    retries: list[RetryEvent],
    body: bytes,
    content_type: str,
) -> None:
    """UTF-16, Latin-1 or garbage bytes in a 200: DecodeError after one request."""
    fake.script(
        "GET",
        "/integrations",
        ScriptedResponse(200, body=body, headers={"Content-Type": content_type}),
    )
    with pytest.raises(sc.DecodeError):
        await client.integrations.list()
    assert api_requests(fake) == ["GET /integrations"]
    assert retries == []


async def test_an_error_body_in_latin_1_still_gives_the_status_class(
    fake: FakeSendcloud, plain: sc.SendcloudClient
) -> None:
    """A 400 whose body is Latin-1 text: BadRequestError with the text (bad bytes replaced)."""
    body = b"Ung\xfcltige Anfrage"
    fake.inject(
        "GET",
        "/integrations",
        Fault.status(400, body=body, headers={"Content-Type": "text/plain; charset=iso-8859-1"}),
    )
    with pytest.raises(sc.BadRequestError) as info:
        await plain.integrations.list()
    assert info.value.body == "Ung\ufffdltige Anfrage"
    assert api_requests(fake) == ["GET /integrations"]


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_inflate_is_a_decode_error(
    hostile: Callable[[Handler], Awaitable[str]], retries: list[RetryEvent], encoding: str
) -> None:
    """Content-Encoding gzip/deflate over bytes that are not: DecodeError, not retried."""
    hits: list[str] = []

    async def lying(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(body=b'{"data": []}', headers={**JSON, "Content-Encoding": encoding})

    base = await hostile(lying)
    async with sc.SendcloudClient(
        auth=sc.BasicAuth("pk-enc", "sk-enc-secret"), base_url=base, max_retries=2
    ) as client:
        with pytest.raises(sc.DecodeError):
            await client.integrations.list()
    assert hits == ["/api/v3/integrations"]
    assert retries == []


# -- a 3xx that reaches the SDK is never success ------------------------------------------------


@pytest.mark.parametrize("status", [300, 301, 302, 303, 304, 307, 308])
async def test_an_unfollowed_redirect_is_an_api_error(
    fake: FakeSendcloud, plain: sc.SendcloudClient, status: int
) -> None:
    """DELETE answered by a 3xx without Location: APIError with that status; nothing deleted."""
    fake.seed(integrations=7, logs_per_integration=0)
    fake.inject("DELETE", "/integrations/7", Fault.status(status, body=b""))
    with pytest.raises(sc.APIError) as info:
        await plain.integrations.delete(7)
    assert type(info.value) is sc.APIError
    assert info.value.status == status
    assert api_requests(fake) == ["DELETE /integrations/7"]
    assert 7 in fake.integrations


@pytest.mark.parametrize("status", [300, 302, 304])
async def test_an_unfollowed_redirect_on_a_read_is_an_api_error(
    fake: FakeSendcloud, plain: sc.SendcloudClient, status: int
) -> None:
    """GET answered by a 3xx without Location: APIError, not an empty list."""
    fake.inject("GET", "/integrations", Fault.status(status, body=b""))
    with pytest.raises(sc.APIError) as info:
        await plain.integrations.list()
    assert type(info.value) is sc.APIError
    assert info.value.status == status


# -- a listing that never ends ------------------------------------------------------------------


async def real_page(fake: FakeSendcloud) -> list[dict[str, Any]]:
    """The JSON items of a real first page of logs, as the fake serves them."""
    fake.seed(integrations=1, logs_per_integration=3)
    token = base64.b64encode(f"{fake.public_key}:{fake.secret_key}".encode()).decode()
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            fake.base_url + "/integrations/logs", headers={"Authorization": f"Basic {token}"}
        ) as resp,
    ):
        assert resp.status == 200
        items: list[dict[str, Any]] = (await resp.json())["data"]
    fake.clear_requests()
    return items


def endless(fake: FakeSendcloud, items: list[dict[str, Any]], pages: int) -> list[ScriptedResponse]:
    """``pages`` answers with the same items, each linking on with a new cursor."""
    return [
        ScriptedResponse(
            200,
            body={"data": items},
            headers={
                "Link": f"<{fake.base_url}/integrations/logs?cursor=2024-01-{day:02d}T00:00:00Z>;"
                ' rel="next"'
            },
        )
        for day in range(1, pages + 1)
    ]


async def drain(logs: AsyncIterator[sc.IntegrationLog], into: list[int | None]) -> None:
    """Append the id of every log ``logs`` yields to ``into``."""
    async for log in logs:
        into.append(log.id)


async def drain_pages(pages: AsyncIterator[sc.LogPage], into: list[list[int | None]]) -> None:
    """Append the log ids of every page ``pages`` yields to ``into``."""
    async for page in pages:
        into.append([log.id for log in page.items])


async def test_a_listing_that_repeats_its_page_stops_with_the_pagination_error(
    fake: FakeSendcloud, plain: sc.SendcloudClient
) -> None:
    """The same logs again under a new cursor: PaginationError at the repeat, each log once."""
    items = await real_page(fake)
    fake.script("GET", "/integrations/logs", *endless(fake, items, 20))
    seen: list[int | None] = []
    with pytest.raises(sc.PaginationError):
        await drain(plain.logs.iter(), seen)
    assert seen == [item["id"] for item in items]
    assert 2 <= len(api_requests(fake)) <= 3  # the repeat, and at most one page read ahead


async def test_a_repeating_listing_stops_in_pages_too(
    fake: FakeSendcloud, plain: sc.SendcloudClient
) -> None:
    """pages() delivers the first page once, then raises PaginationError."""
    items = await real_page(fake)
    fake.script("GET", "/integrations/logs", *endless(fake, items, 20))
    delivered: list[list[int | None]] = []
    with pytest.raises(sc.PaginationError):
        await drain_pages(plain.logs.pages(), delivered)
    assert delivered == [[item["id"] for item in items]]
