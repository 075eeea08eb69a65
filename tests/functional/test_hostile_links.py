"""Hostile ``Link`` headers over real sockets: only typed errors, never a request elsewhere.

Every example answers the first page of ``logs.pages()`` with a generated
``Link`` header (structured hostile URLs through FakeSendcloud, raw bytes that
are not UTF-8 through a raw HTTP server) and walks the listing. What may come
out: a clean stop, or a ``SendcloudError`` — and when the link itself is what
is wrong (nothing was followed), the same class a foreign link raises. What
must never happen: a request to another origin, watched by servers on
127.0.0.2 and on ``[::1]``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse
from tests.functional._hostile import RawServer, Watcher, raw_response, raw_serving, watching

# One fake, one client and the watchers serve every example of a test; each example
# clears the journals first and looks only at what it caused.
EXAMPLES = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
LOGS = "/integrations/logs"
#: Pages walked at most per example (a clean stop needs two: the hostile one, the next).
MAX_PAGES = 4


@dataclass
class Watchers:
    """The other origins a request must never reach."""

    v4: Watcher
    v6: Watcher

    def received(self) -> list[str]:
        """Everything that reached either."""
        return self.v4.received + self.v6.received

    def clear(self) -> None:
        """Forget what reached them."""
        self.v4.received.clear()
        self.v6.received.clear()


@pytest.fixture
async def watchers() -> AsyncIterator[Watchers]:
    """A watcher on 127.0.0.2 and one on [::1]."""
    async with watching("127.0.0.2") as v4, watching("::1") as v6:
        yield Watchers(v4, v6)


@pytest.fixture
async def api() -> AsyncIterator[FakeSendcloud]:
    """A FakeSendcloud that answers off-spec requests too (a followed link may be odd)."""
    async with FakeSendcloud(validate_spec=False) as server:
        yield server


@pytest.fixture
async def client(api: FakeSendcloud) -> AsyncIterator[sc.SendcloudClient]:
    """A client that never retries: each page is one request."""
    async with sc.SendcloudClient(
        auth=api.basic_auth, base_url=api.base_url, timeout=5.0, max_retries=0
    ) as c:
        yield c


async def walk(client: sc.SendcloudClient) -> tuple[int, Exception | None]:
    """Pages walked, and the exception that ended the walk (``None``: a clean stop)."""
    pages = 0
    try:
        async for _page in client.logs.pages():
            pages += 1
            if pages >= MAX_PAGES:
                break
    except Exception as exc:  # judged by the caller: only SendcloudError may come out
        return pages, exc
    return pages, None


def link_value(target: str, layout: str, other: str) -> str:
    """A ``Link`` header value whose first ``rel=next`` link targets ``target``."""
    if layout == "plain":
        return f'<{target}>; rel="next"'
    if layout == "bare":
        return f"<{target}>; REL=NEXT"
    if layout == "multi-rel":
        return f'<{target}>; rel="last next"; title="x"'
    if layout == "prev first":
        return f'<{other}>; rel="prev", <{target}>; rel="next"'
    return f'<{target}>; rel="next", <{other}>; rel="next"'  # "two next": the first wins


LAYOUTS = st.sampled_from(["plain", "bare", "multi-rel", "prev first", "two next"])


async def foreign_link_error(
    api: FakeSendcloud, client: sc.SendcloudClient, watchers: Watchers
) -> type[Exception]:
    """The class a plainly foreign next link (the 127.0.0.2 watcher) raises."""
    api.script(
        "GET",
        LOGS,
        ScriptedResponse(
            200,
            body={"data": []},
            headers={"Link": f'<{watchers.v4.origin}/api/v3{LOGS}>; rel="next"'},
        ),
    )
    _pages, exc = await walk(client)
    assert watchers.received() == []
    assert isinstance(exc, sc.SendcloudError), exc
    assert not isinstance(exc, sc.APIError), exc
    api.clear_requests()
    return type(exc)


def judge(
    pages: int,
    exc: Exception | None,
    *,
    requests: list[str],
    watchers: Watchers,
    link_error: type[Exception],
    must_refuse: bool,
    must_follow: bool,
    parsable: bool = True,
) -> None:
    """Only typed outcomes; a refused link raises the link error; nothing reached elsewhere.

    ``parsable=False``: the header holds bytes HTTP forbids (controls), so the response
    itself may be refused with any ``SendcloudError`` before its links are looked at.
    """
    assert watchers.received() == [], "a request left the API origin"
    if exc is not None and not isinstance(exc, sc.SendcloudError):
        raise AssertionError(f"an untyped exception escaped: {exc!r}") from exc
    assert pages <= MAX_PAGES
    assert requests, "not even the first page was requested"
    if len(requests) == 1 and exc is not None and parsable:
        # Nothing was followed: the link itself was refused, with the link error.
        assert type(exc) is link_error, f"{type(exc).__name__}: {exc}"
    if must_refuse and parsable:
        assert len(requests) == 1, requests
        assert type(exc) is link_error, exc
    if must_follow:
        assert len(requests) >= 2, (requests, exc)
        assert exc is None or isinstance(exc, sc.APIError), exc


# -- structured hostile URLs through FakeSendcloud -----------------------------------------------

SCHEMES = st.sampled_from(["http", "HTTP", "https", "ftp", "javascript", "file", "ws", "//"])
USERINFO = st.sampled_from(["", "", "user@", "user:pw@", ":@", "%40@", "fake-public-key:x@"])
HOSTS = st.sampled_from(
    [
        "127.0.0.1",
        "127.0.0.1",
        "127.0.0.2",
        "[::1]",
        "localhost",
        "ü.example",
        "xn--tda.example",
        "[::ffff:127.0.0.1]",
        "127.1",
        "2130706433",
        "[fe80::1%25lo]",
        "",
        "[::1",
        "exa mple",
        "ÄÖÜ.例え.テスト",
    ]
)
PORTS = st.sampled_from(
    [
        "api",
        "api",
        "watcher",
        None,
        "99999",
        "abc",
        "1:2",
        "0",
        "-1",
        "",
        "65536",
        "٣",
        "+80",
        "8O",
        "1" * 30,
    ]
)
PATHS = st.sampled_from(
    ["/api/v3/integrations/logs", "/x", "", "/api/v3/../../etc", "/%2e%2e/", "/ü", "/a b"]
)
CLEAN_QUERIES = ["", "?cursor=2024-01-01T00:00:00%2B01:00", "?cursor=2024-01-01T00:00:00Z"]
QUERY_TEXT = st.text(
    alphabet=st.characters(exclude_characters="<>\r\n", exclude_categories=["Cc", "Cs"]),
    max_size=20,
)
QUERIES = st.sampled_from([*CLEAN_QUERIES, "?cursor=a+b", "?cursor=%ZZ", "?cursor=ü", "?"]) | (
    QUERY_TEXT.map(lambda t: "?cursor=" + t)
)
FRAGMENTS = st.sampled_from(["", "", "#frag", "#", "#ü", "#?cursor=x"])


@st.composite
def hostile_target(
    draw: st.DrawFn, api_port: int, watcher_ports: dict[str, int]
) -> tuple[str, bool, bool]:
    """(target, must_refuse, must_follow) for an absolute or scheme-relative URL."""
    scheme = draw(SCHEMES)
    userinfo = draw(USERINFO)
    host = draw(HOSTS)
    port_choice = draw(PORTS)
    if port_choice == "api":
        port: str | None = str(api_port)
    elif port_choice == "watcher":
        port = str(watcher_ports.get(host, watcher_ports["127.0.0.2"]))
    else:
        port = port_choice
    path = draw(PATHS)
    query = draw(QUERIES)
    fragment = draw(FRAGMENTS)
    authority = userinfo + host + ("" if port is None else f":{port}")
    prefix = "//" if scheme == "//" else f"{scheme}://"
    target = f"{prefix}{authority}{path}{query}{fragment}"
    same_origin = (
        scheme.lower() == "http" and host == "127.0.0.1" and port == str(api_port) and not userinfo
    )
    must_refuse = not same_origin
    must_follow = (
        scheme == "http"
        and same_origin
        and path == "/api/v3/integrations/logs"
        and query in CLEAN_QUERIES[1:]  # not the first page's own URL: that one is a loop
    )
    return target, must_refuse, must_follow


@st.composite
def watcher_target(draw: st.DrawFn, watcher_ports: dict[str, int]) -> str:
    """A URL on a watcher's origin, dressed up (case, userinfo, default-looking parts)."""
    host = draw(st.sampled_from(["127.0.0.2", "[::1]"]))
    scheme = draw(st.sampled_from(["http", "HTTP", "Http", "//"]))
    userinfo = draw(st.sampled_from(["", "user@", "127.0.0.1@", "fake-public-key:fake-secret@"]))
    prefix = "//" if scheme == "//" else f"{scheme}://"
    path = draw(st.sampled_from(["/api/v3/integrations/logs", "/", ""]))
    query = draw(QUERIES)
    return f"{prefix}{userinfo}{host}:{watcher_ports[host]}{path}{query}{draw(FRAGMENTS)}"


RELATIVE = st.sampled_from(
    [
        "?cursor=2024-01-01T00:00:00%2B01:00",
        "/api/v3/integrations/logs?cursor=x",
        "logs?cursor=x",
        "",
        " ",
        "../../../x",
        "?cursor=%ff%fe",
        "\\\\127.0.0.2\\x",
        "http:/127.0.0.2/x",
        "http:127.0.0.2/x",
        "/\\127.0.0.2/x",
    ]
)


@EXAMPLES
@given(data=st.data(), layout=LAYOUTS)
async def test_hostile_link_targets_give_typed_errors_and_stay_home(
    api: FakeSendcloud,
    client: sc.SendcloudClient,
    watchers: Watchers,
    data: st.DataObject,
    layout: str,
) -> None:
    """Ports like 99999 or :abc, userinfo, IPv6, unicode hosts, schemes: typed, never elsewhere."""
    link_error = await foreign_link_error(api, client, watchers)
    ports = {"127.0.0.2": watchers.v4.port, "[::1]": watchers.v6.port}
    kind = data.draw(st.sampled_from(["absolute", "watcher", "relative", "home"]), label="kind")
    must_refuse = must_follow = False
    if kind == "home":  # a good link on the API origin, to show that good links are followed
        query = data.draw(st.sampled_from(CLEAN_QUERIES[1:]), label="query")
        target = f"{api.origin}/api/v3{LOGS}{query}{data.draw(FRAGMENTS, label='fragment')}"
        must_follow = True
    elif kind == "absolute":
        target, must_refuse, must_follow = data.draw(hostile_target(api.port, ports), label="url")
    elif kind == "watcher":
        target = data.draw(watcher_target(ports), label="url")
        must_refuse = True
    else:
        target = data.draw(RELATIVE, label="url")
    other = data.draw(watcher_target(ports), label="other link")
    event(f"{kind}: must refuse {must_refuse}, must follow {must_follow}")
    link = link_value(target, layout, other)
    watchers.clear()
    api.script("GET", LOGS, ScriptedResponse(200, body={"data": []}, headers={"Link": link}))
    pages, exc = await walk(client)
    judge(
        pages,
        exc,
        requests=[f"{r.method} {r.raw_path}" for r in api.requests],
        watchers=watchers,
        link_error=link_error,
        must_refuse=must_refuse,
        must_follow=must_follow,
    )
    api.clear_requests()


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:99999/x",
        "http://127.0.0.1:abc/x",
        "http://127.0.0.1:1:2/x",
        "http://ü.example/x",
        "http://[::1]:99999/x",
        "http://user:pw@127.0.0.1:{port}/api/v3/integrations/logs",
        "http://[::1/x",
    ],
)
async def test_each_reported_link_raises_the_link_error(
    api: FakeSendcloud, client: sc.SendcloudClient, watchers: Watchers, target: str
) -> None:
    """Known bad links one by one: the link error, one request, nothing elsewhere."""
    link_error = await foreign_link_error(api, client, watchers)
    link = f'<{target.format(port=api.port)}>; rel="next"'
    api.script("GET", LOGS, ScriptedResponse(200, body={"data": []}, headers={"Link": link}))
    pages, exc = await walk(client)
    judge(
        pages,
        exc,
        requests=[r.raw_path for r in api.requests],
        watchers=watchers,
        link_error=link_error,
        must_refuse=True,
        must_follow=False,
    )


# -- raw bytes: a Link header that is not UTF-8 ---------------------------------------------------

RAW_PAGE = b'{"data": []}'
JSON_TYPE = (b"Content-Type", b"application/json")
# Header bytes a server can put on the wire: anything but CR and LF.
RAW_BYTES = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
NOT_UTF8 = st.sampled_from(
    [b"\xff", b"\xc3\x28", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]
)


@pytest.fixture
async def raw_links(watchers: Watchers) -> AsyncIterator[tuple[RawServer, list[bytes]]]:
    """A raw server whose first answer carries the Link in the list (later ones: no Link)."""
    link: list[bytes] = [b""]

    def answer(n: int, _head: bytes) -> bytes:
        if n == 1:
            return raw_response(200, [JSON_TYPE, (b"Link", link[0])], RAW_PAGE)
        return raw_response(200, [JSON_TYPE], RAW_PAGE)

    async with raw_serving(answer) as raw:
        yield raw, link


@pytest.fixture
async def raw_client(raw_links: tuple[RawServer, list[bytes]]) -> AsyncIterator[sc.SendcloudClient]:
    """A client of the raw server that never retries."""
    raw, _ = raw_links
    async with sc.SendcloudClient(
        auth=sc.BasicAuth("raw-public", "raw-secret-key"),
        base_url=raw.origin + "/api/v3",
        timeout=5.0,
        max_retries=0,
    ) as c:
        yield c


async def raw_walk(
    raw: RawServer, link: list[bytes], value: bytes, client: sc.SendcloudClient
) -> tuple[int, Exception | None, list[str]]:
    """Serve ``value`` as the first page's Link and walk; (pages, exception, request lines)."""
    raw.requests.clear()
    link[0] = value
    pages, exc = await walk(client)
    return pages, exc, raw.targets


@EXAMPLES
@given(
    prefix=st.sampled_from(["api", "relative", "query", "watcher4", "watcher6", "none"]),
    junk=st.lists(RAW_BYTES | NOT_UTF8, min_size=1, max_size=4).map(b"".join),
    closing=st.sampled_from([b'>; rel="next"', b">; rel=next", b'; rel="next"', b""]),
)
async def test_raw_link_bytes_give_typed_errors_and_stay_home(
    raw_links: tuple[RawServer, list[bytes]],
    raw_client: sc.SendcloudClient,
    watchers: Watchers,
    prefix: str,
    junk: bytes,
    closing: bytes,
) -> None:
    """A Link with bytes that are not UTF-8 (in the query or anywhere): typed, never elsewhere."""
    raw, link = raw_links
    starts = {
        "api": raw.origin.encode() + b"/api/v3/integrations/logs?cursor=",
        "relative": b"/api/v3/integrations/logs?cursor=",
        "query": b"?cursor=",
        "watcher4": watchers.v4.origin.encode() + b"/api/v3/integrations/logs?cursor=",
        "watcher6": watchers.v6.origin.encode() + b"/api/v3/integrations/logs?cursor=",
        "none": b"",
    }
    # The class a plainly foreign link raises, from this server too.
    foreign = b"<" + watchers.v4.origin.encode() + b'/x>; rel="next"'
    _, ref, _ = await raw_walk(raw, link, foreign, raw_client)
    assert isinstance(ref, sc.SendcloudError), ref
    watchers.clear()
    value = b"<" + starts[prefix] + junk + closing
    pages, exc, requests = await raw_walk(raw, link, value, raw_client)
    judge(
        pages,
        exc,
        requests=requests,
        watchers=watchers,
        link_error=type(ref),
        # A '>' inside the junk ends the target early and leaves garbage where the
        # parameters belong: RFC 8288 parsing drops that link (a clean stop).
        must_refuse=prefix.startswith("watcher") and closing.startswith(b">") and b">" not in junk,
        must_follow=False,
        parsable=not any((b < 0x20 and b != 0x09) or b == 0x7F for b in value),
    )


@pytest.mark.parametrize(
    "query",
    [b"cursor=\xff", b"cursor=2024-01-01T00:00:00\xc3\x28", b"a=\x80&cursor=x", b"cursor=%ff\xfe"],
)
async def test_a_query_that_is_not_utf8_gives_the_link_error_or_is_followed(
    raw_links: tuple[RawServer, list[bytes]],
    raw_client: sc.SendcloudClient,
    watchers: Watchers,
    query: bytes,
) -> None:
    """A query byte that is not UTF-8 (a surrogate escape once read): refused or followed home."""
    raw, link = raw_links
    _, ref, _ = await raw_walk(
        raw, link, b"<" + watchers.v4.origin.encode() + b'/x>; rel="next"', raw_client
    )
    assert isinstance(ref, sc.SendcloudError), ref
    target = raw.origin.encode() + b"/api/v3/integrations/logs?" + query
    pages, exc, requests = await raw_walk(raw, link, b"<" + target + b'>; rel="next"', raw_client)
    judge(
        pages,
        exc,
        requests=requests,
        watchers=watchers,
        link_error=type(ref),
        must_refuse=False,
        must_follow=False,
    )
    assert all(line.startswith("GET /api/v3/integrations/logs") for line in requests), requests
