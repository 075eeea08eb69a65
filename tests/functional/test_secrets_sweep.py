"""A sweep for credentials: every error, its whole chain, its frame locals, every log line, the CLI.

A small hostile server on 127.0.0.1 echoes the request's ``Authorization``
value back (in a 400 ``detail``, a header of an error or of a success, an HTML
page, the reason phrase;
its token endpoint quotes the client's Basic header) or fails the connection in
the ways the transport wraps (dropped, timed out, truncated). For every error
the SDK raises — with Basic and with OAuth2 — ``str``, ``repr``, each
attribute of each exception in the ``__cause__``/``__context__`` chain, and
``traceback.TracebackException(..., capture_locals=True)`` formatted must hold
no secret; neither may any log record (root logger at DEBUG, aiohttp traced),
nor the console script's stdout and stderr. The secrets: the Basic secret key,
the base64 header value and the decoded ``public:secret``; the OAuth2 client
secret and its base64 pair; the issued token. The events of a call
(``events.subscribe``) and what ``events.capture_responses()`` keeps hold no
secret either, and no ``Set-Cookie``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import socket
import sys
import traceback
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async import events
from tests._log_secrets import SecretScanner
from tests._tls import self_signed_server_context
from tests.functional._hostile import serving

PUBLIC = "sweep-public-key"
SECRET = "sweep-Secret-Key-7f3a9c"
CLIENT_ID = "sweep-client-id"
CLIENT_SECRET = "sweep-Client-Secret-5d1e0b"
TOKEN = "sweep-issued-token-8c2f4a6e"
BASIC_PAIR = f"{PUBLIC}:{SECRET}"
BASIC_B64 = base64.b64encode(BASIC_PAIR.encode()).decode()
CLIENT_B64 = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
#: A session cookie the server sets: never in an event or a captured response.
COOKIE = "sweep-Session-Cookie-3b9d1f"
#: Never to be seen anywhere.
SECRETS = (SECRET, BASIC_B64, BASIC_PAIR, CLIENT_SECRET, CLIENT_B64, TOKEN)
SCRIPT = Path(sys.executable).parent / "sendcloud-async"


# -- the echoing server -----------------------------------------------------------------------

API_MODES = ("detail", "header", "html", "reason", "429", "bad-json", "drop", "slow", "truncated")
TOKEN_MODES = ("token-reject", "token-unusable", "token-html", "token-detail")


def echo_error(status: int, text: str, **extra: str) -> web.Response:
    """A JSON:API error whose title, detail and meta quote ``text``."""
    body = {
        "errors": [
            {
                "status": str(status),
                "code": "echo",
                "title": text,
                "detail": f"you sent Authorization: {text}",
                "meta": {"received": {"authorization": text}},
            }
        ]
    }
    return web.json_response(body, status=status, headers=extra)


async def api(request: web.Request) -> web.StreamResponse:
    """The API: answers per the mode in the first path segment, quoting Authorization."""
    mode = request.match_info["mode"]
    sent = request.headers.get("Authorization", "")
    await request.read()
    if mode in ("detail", "token-detail"):
        return echo_error(400, sent)
    if mode == "header":
        refused = web.Response(status=400, text="bad", headers={"X-Echo-Authorization": sent})
        refused.set_cookie("session", COOKIE)
        return refused
    if mode == "ok-echo":  # a success quoting it in headers (a proxy's debugging echo)
        answer = web.json_response(
            {"data": []}, headers={"X-Echo-Authorization": sent, "X-Request-Id": sent}
        )
        answer.set_cookie("session", COOKIE)
        return answer
    if mode == "html":
        return web.Response(
            status=500, text=f"<html><pre>{sent}</pre></html>", content_type="text/html"
        )
    if mode == "reason":
        return web.Response(status=400, reason=f"Bad {sent}", text="")
    if mode == "429":
        return echo_error(429, sent, **{"Retry-After": "0"})
    if mode == "bad-json":
        return web.Response(status=200, text=f"not json {sent}", content_type="application/json")
    if mode == "drop":
        assert request.transport is not None
        request.transport.close()
        raise asyncio.CancelledError
    if mode == "slow":
        await asyncio.sleep(5)
        return echo_error(400, sent)
    # truncated: promise 1000 bytes, send 10 quoting the header, hang up
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.content_length = 1000
    await resp.prepare(request)
    await resp.write(f'{{"data": "{sent}'.encode()[:10])
    assert request.transport is not None
    request.transport.close()
    return resp


async def token(request: web.Request) -> web.Response:
    """The token endpoint: issues TOKEN, or answers per mode quoting the client's header."""
    mode = request.match_info["mode"]
    sent = request.headers.get("Authorization", "")
    form = (await request.read()).decode(errors="replace")
    if mode == "token-reject":
        return web.json_response(
            {"error": "invalid_client", "error_description": f"bad client {sent} {form}"},
            status=401,
        )
    if mode == "token-unusable":
        return web.json_response({"access_token": "", "token_type": sent})
    if mode == "token-html":
        return web.Response(status=500, text=f"<p>{sent} {form}</p>", content_type="text/html")
    return web.json_response({"access_token": TOKEN, "token_type": "Bearer", "expires_in": 3600})


@pytest.fixture
async def echo() -> AsyncIterator[str]:
    """The echoing server; yields its origin (``{origin}/{mode}/api/v3`` is a base URL)."""
    app = web.Application()
    app.router.add_post("/{mode}/oauth2/token/", token)
    app.router.add_route("*", "/{mode}/api/v3/{tail:.*}", api)
    async with serving(app) as origin:
        yield origin


# -- what must not hold a secret --------------------------------------------------------------


def chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception in its ``__cause__``/``__context__`` chain, once each."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        todo.extend(e for e in (current.__cause__, current.__context__) if e is not None)
        if isinstance(current, BaseExceptionGroup):
            todo.extend(current.exceptions)


def exposures(exc: BaseException) -> dict[str, str]:
    """Every text an error tracker or a log could make of ``exc`` and its chain."""
    shown: dict[str, str] = {
        "traceback with locals": "".join(
            traceback.TracebackException.from_exception(exc, capture_locals=True).format()
        ),
        "traceback": "".join(traceback.format_exception(exc)),
    }
    for n, member in enumerate(chain(exc)):
        name = f"[{n}] {type(member).__name__}"
        shown[f"{name} str"] = str(member)
        shown[f"{name} repr"] = repr(member)
        shown[f"{name} args"] = repr(member.args)
        for attr, value in vars(member).items():
            shown[f"{name}.{attr}"] = repr(value)
            for inner, inner_value in getattr(value, "__dict__", {}).items():
                shown[f"{name}.{attr}.{inner}"] = repr(inner_value)
    return shown


def leaks(texts: dict[str, str]) -> list[str]:
    """Where a secret shows, as ``place: secret-kind``."""
    names = {
        SECRET: "secret key",
        BASIC_B64: "basic base64",
        BASIC_PAIR: "public:secret",
        CLIENT_SECRET: "client secret",
        CLIENT_B64: "client base64",
        TOKEN: "issued token",
        COOKIE: "session cookie",
    }
    return [f"{place}: {names[s]}" for place, text in texts.items() for s in names if s in text]


class Collect(logging.Handler):
    """Keeps every record, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def logs(log_secrets: SecretScanner) -> Iterator[Collect]:
    """The root logger at DEBUG for the test, every record kept (and scanned for our secrets)."""
    log_secrets.extra.update(SECRETS)
    root = logging.getLogger()
    handler = Collect()
    level = root.level
    root.setLevel(logging.DEBUG)
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def traced_session() -> aiohttp.ClientSession:
    """A session whose every trace signal is logged at DEBUG (what aiohttp lets us see)."""
    log = logging.getLogger("tests.aiohttp_trace")
    config = aiohttp.TraceConfig()

    async def start(
        _s: aiohttp.ClientSession, _c: SimpleNamespace, p: aiohttp.TraceRequestStartParams
    ) -> None:
        log.debug("request start %s %s", p.method, p.url)

    async def end(
        _s: aiohttp.ClientSession, _c: SimpleNamespace, p: aiohttp.TraceRequestEndParams
    ) -> None:
        log.debug("request end %s %s -> %d", p.method, p.url, p.response.status)

    async def failed(
        _s: aiohttp.ClientSession, _c: SimpleNamespace, p: aiohttp.TraceRequestExceptionParams
    ) -> None:
        log.debug("request failed %s %s: %s", p.method, p.url, type(p.exception).__name__)

    async def chunk(
        _s: aiohttp.ClientSession, _c: SimpleNamespace, p: aiohttp.TraceResponseChunkReceivedParams
    ) -> None:
        log.debug("chunk of %d bytes for %s", len(p.chunk), p.url)

    async def queued(
        _s: aiohttp.ClientSession, _c: SimpleNamespace, _p: aiohttp.TraceConnectionQueuedStartParams
    ) -> None:
        log.debug("connection queued")

    config.on_request_start.append(start)
    config.on_request_end.append(end)
    config.on_request_exception.append(failed)
    config.on_response_chunk_received.append(chunk)
    config.on_connection_queued_start.append(queued)
    config.freeze()
    return aiohttp.ClientSession(trace_configs=[config])


@dataclass(frozen=True)
class Case:
    """One way to fail: the auth kind and the server's mode."""

    auth: str
    mode: str


CASES = [Case("basic", m) for m in API_MODES] + [Case("oauth2", m) for m in API_MODES + TOKEN_MODES]


def make_auth(kind: str, origin: str, mode: str) -> sc.BasicAuth | sc.OAuth2ClientCredentials:
    """Basic with the sweep's key pair, or OAuth2 against the echo server's token endpoint."""
    if kind == "basic":
        return sc.BasicAuth(PUBLIC, SECRET)
    return sc.OAuth2ClientCredentials(
        CLIENT_ID, CLIENT_SECRET, token_url=f"{origin}/{mode}/oauth2/token/"
    )


@pytest.mark.parametrize("case", CASES, ids=[f"{c.auth}-{c.mode}" for c in CASES])
async def test_no_secret_in_any_error_chain_locals_or_log(
    echo: str, logs: Collect, case: Case
) -> None:
    """Every error (and its chain, attributes, frame locals) and every log line: no secret."""
    async with traced_session() as session:
        async with sc.SendcloudClient(
            auth=make_auth(case.auth, echo, case.mode),
            base_url=f"{echo}/{case.mode}/api/v3",
            session=session,
            timeout=0.5,
            max_retries=0,
        ) as client:
            with pytest.raises(sc.SendcloudError) as info:
                await client.integrations.get(7)
        found = leaks(exposures(info.value))
    found += leaks({f"log line {i}": line for i, line in enumerate(logs.lines)})
    assert found == [], f"{type(info.value).__name__}: secrets in " + "; ".join(found)


async def test_the_echo_server_does_echo(echo: str) -> None:
    """The sweep can fail: without masking, the server's answer holds the secret."""
    header = f"Basic {BASIC_B64}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{echo}/detail/api/v3/integrations/7", headers={"Authorization": header}) as r,
    ):
        assert BASIC_B64 in await r.text()


EVENT_CASES = [Case(kind, mode) for kind in ("basic", "oauth2") for mode in ("ok-echo", "header")]


@pytest.mark.parametrize("case", EVENT_CASES, ids=[f"{c.auth}-{c.mode}" for c in EVENT_CASES])
async def test_no_secret_or_cookie_in_events_or_captured_responses(
    echo: str, logs: Collect, case: Case
) -> None:
    """A success or an error echoing the credential in its headers and setting a cookie:
    every event a subscriber gets and the captured ``ResponseInfo`` show the header
    masked, and no ``Set-Cookie``."""
    seen: list[events.Event] = []
    async with sc.SendcloudClient(
        auth=make_auth(case.auth, echo, case.mode),
        base_url=f"{echo}/{case.mode}/api/v3",
        max_retries=0,
    ) as client:
        with events.subscribe(seen.append), events.capture_responses() as captured:
            if case.mode == "ok-echo":
                await client.integrations.list()
            else:
                with pytest.raises(sc.BadRequestError):
                    await client.integrations.list()
    ended = [event for event in seen if isinstance(event, events.CallEnded)]
    assert len(ended) == 1
    assert len(captured) == 1
    shown = ended[0].headers
    info = captured.last
    assert shown is not None
    for headers in (shown, info.headers):
        assert headers["X-Echo-Authorization"] == "**********"  # there, masked
        assert "Set-Cookie" not in headers
        assert "set-cookie" not in repr(headers).lower()
    if case.mode == "ok-echo":
        assert info.request_id == "**********"
    texts = {f"event {i}": repr(event) for i, event in enumerate(seen)}
    texts["response info"] = repr(info)
    texts["response info headers"] = repr(list(info.headers.items()))
    texts.update({f"log line {i}": line for i, line in enumerate(logs.lines)})
    assert leaks(texts) == []
    assert [place for place, text in texts.items() if COOKIE in text] == []


async def test_the_echo_server_echoes_on_success(echo: str) -> None:
    """The events test can fail: the successful answer holds the secret and the cookie."""
    header = f"Basic {BASIC_B64}"
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{echo}/ok-echo/api/v3/integrations", headers={"Authorization": header}) as r,
    ):
        assert r.status == 200
        assert r.headers["X-Echo-Authorization"] == header
        assert COOKIE in r.headers["Set-Cookie"]


# -- an authenticated proxy ------------------------------------------------------------------------

PROXY_USER = "sweep-proxy-user"
PROXY_PASSWORD = "sweep-Proxy-Passw0rd-e71c"
PROXY_B64 = base64.b64encode(f"{PROXY_USER}:{PROXY_PASSWORD}".encode()).decode()


class ConnectProxy:
    """An HTTP CONNECT proxy on 127.0.0.1 that tunnels to the asked host; keeps each
    request head it got (to show the credentials were sent to it)."""

    def __init__(self) -> None:
        self.heads: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._server is not None
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.heads.append(head)
            host, port = head.split()[1].decode().rsplit(":", 1)
            upstream_reader, upstream = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await asyncio.gather(
                _pipe(reader, upstream), _pipe(upstream_reader, writer), return_exceptions=True
            )
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            self._tasks.discard(task)


def _closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    finally:
        sink.close()


@pytest.mark.parametrize("failure", ["untrusted certificate", "proxy down"])
async def test_no_proxy_password_in_a_connection_error_through_an_authenticated_proxy(
    tmp_path: Path, logs: Collect, failure: str
) -> None:
    """The application's session goes through ``http://user:password@proxy``; the target's
    certificate is not trusted, or the proxy is down. aiohttp's connection error holds the
    proxy's credentials in its connection key: the chained cause keeps its type, not them."""
    logs.lines.clear()

    async def integrations(_request: web.Request) -> web.Response:
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_get("/api/v3/integrations", integrations)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=self_signed_server_context(tmp_path))
    await site.start()
    target = runner.addresses[0][1]
    try:
        async with ConnectProxy() as proxy:
            port = proxy.port if failure == "untrusted certificate" else _closed_port()
            async with (
                aiohttp.ClientSession(
                    proxy=f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}"
                ) as session,
                sc.SendcloudClient(
                    auth=sc.BasicAuth(PUBLIC, SECRET),
                    base_url=f"https://127.0.0.1:{target}/api/v3",
                    session=session,
                    max_retries=0,
                ) as client,
            ):
                with pytest.raises(sc.APIConnectionError) as info:
                    await client.integrations.list()
    finally:
        await runner.cleanup()
    expected = (
        aiohttp.ClientConnectorCertificateError
        if failure == "untrusted certificate"
        else aiohttp.ClientProxyConnectionError
    )
    assert isinstance(info.value.__cause__, expected)
    if failure == "untrusted certificate":  # the proxy was asked, with the credentials
        assert len(proxy.heads) == 1
        assert PROXY_B64.encode() in proxy.heads[0]
    texts = exposures(info.value)
    texts.update({f"log line {i}": line for i, line in enumerate(logs.lines)})
    found = [place for place, text in texts.items() if PROXY_PASSWORD in text or PROXY_B64 in text]
    assert found == []
    assert leaks(texts) == []


# -- the console script ---------------------------------------------------------------------------


def cli_env(origin: str, mode: str, kind: str) -> dict[str, str]:
    """The environment of one CLI run: credentials of ``kind`` and the echo server's URLs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDCLOUD_")}
    env["SENDCLOUD_BASE_URL"] = f"{origin}/{mode}/api/v3"
    if kind == "basic":
        env.update(SENDCLOUD_PUBLIC_KEY=PUBLIC, SENDCLOUD_SECRET_KEY=SECRET)
    else:
        env.update(
            SENDCLOUD_CLIENT_ID=CLIENT_ID,
            SENDCLOUD_CLIENT_SECRET=CLIENT_SECRET,
            SENDCLOUD_TOKEN_URL=f"{origin}/{mode}/oauth2/token/",
        )
    return env


async def run_cli(*args: str, env: dict[str, str]) -> tuple[int, str]:
    """Run the console script; (exit status, stdout + stderr)."""
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT}"
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *args,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


CLI_CASES = [
    Case("basic", "detail"),
    Case("basic", "header"),
    Case("basic", "html"),
    Case("basic", "reason"),
    Case("basic", "bad-json"),
    Case("oauth2", "detail"),
    Case("oauth2", "token-reject"),
    Case("oauth2", "token-unusable"),
    Case("oauth2", "token-html"),
]


async def test_no_secret_on_the_cli_output(echo: str) -> None:
    """``integrations get`` (verbose) against every echoing answer: exit non-zero, no secret."""
    results = await asyncio.gather(
        *(
            run_cli(
                "integrations", "get", "7", "--verbose", env=cli_env(echo, case.mode, case.auth)
            )
            for case in CLI_CASES
        )
    )
    found = []
    for case, (code, output) in zip(CLI_CASES, results, strict=True):
        assert code != 0, (case, output)
        assert output.strip(), case
        found += [f"{case.auth}-{case.mode} {leak}" for leak in leaks({"output": output})]
    assert found == [], "; ".join(found)
