"""Small hostile servers for the hostile-input tests: watchers, raw HTTP, and a stuck endpoint.

Everything listens on loopback. ``Watcher`` records whatever reaches another
origin (127.0.0.2 or ``[::1]``) so a test can assert that nothing did;
``RawServer`` answers with bytes no aiohttp server would write (a ``Link``
header that is not UTF-8); ``serve`` runs a tiny ``web.Application``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from aiohttp import web

#: How deep the hostile JSON is nested (about 100 kB): deeper than any supported Python
#: decodes (3.11 stops near 1,000 levels, 3.12 near 5,000, 3.13 near 20,000: msgspec
#: uses the interpreter's C recursion limit).
DEPTH = 50_000


def nested_object(depth: int = DEPTH, inner: bytes = b"1") -> bytes:
    """``{"a":{"a":...inner...}}`` nested ``depth`` levels."""
    return b'{"a":' * depth + inner + b"}" * depth


def nested_array(depth: int = DEPTH) -> bytes:
    """``[[[...]]]`` nested ``depth`` levels."""
    return b"[" * depth + b"]" * depth


@dataclass
class Watcher:
    """A loopback server on another origin; ``received`` lists every request that reached it."""

    origin: str = ""
    port: int = 0
    received: list[str] = field(default_factory=list)


@contextlib.asynccontextmanager
async def watching(host: str) -> AsyncIterator[Watcher]:
    """A ``Watcher`` listening on ``host`` ("127.0.0.2" or "::1"), any port."""
    watcher = Watcher()

    async def record(request: web.Request) -> web.Response:
        watcher.received.append(f"{request.method} {request.path_qs}")
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    async with serving(app, host) as origin:
        watcher.origin = origin
        watcher.port = int(origin.rsplit(":", 1)[1])
        yield watcher


@contextlib.asynccontextmanager
async def serving(app: web.Application, host: str = "127.0.0.1") -> AsyncIterator[str]:
    """Run ``app`` on ``host`` (any port); yields its origin ``http://host:port``."""
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, 0).start()
        port = runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{port}"
    finally:
        await runner.cleanup()


def raw_response(
    status: int = 200, headers: list[tuple[bytes, bytes]] | None = None, body: bytes = b""
) -> bytes:
    """One HTTP/1.1 response as bytes, exactly as given (``Connection: close``)."""
    lines = [b"HTTP/1.1 %d X" % status]
    for name, value in headers or []:
        lines.append(name + b": " + value)
    lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


@dataclass
class RawServer:
    """Answers request number ``n`` (from 1) with ``answer(n, head)``; records request heads."""

    answer: Callable[[int, bytes], bytes]
    origin: str = ""
    requests: list[bytes] = field(default_factory=list)

    @property
    def targets(self) -> list[str]:
        """The request lines received (``GET /path?query HTTP/1.1``)."""
        return [head.split(b"\r\n", 1)[0].decode("latin-1") for head in self.requests]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head)
            writer.write(self.answer(len(self.requests), head))
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def raw_serving(answer: Callable[[int, bytes], bytes]) -> AsyncIterator[RawServer]:
    """A ``RawServer`` on 127.0.0.1 (any port)."""
    raw = RawServer(answer)
    server = await asyncio.start_server(raw._serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    raw.origin = f"http://127.0.0.1:{port}"
    try:
        yield raw
    finally:
        server.close()
        await server.wait_closed()
