"""A TCP proxy on 127.0.0.1 that a test can break: a real network path, not a mock.

``TcpProxy(port)`` forwards every connection to ``127.0.0.1:port``. ``cut()`` breaks
the path the way a failed link or a firewall does: open connections are closed
and new ones are accepted and closed at once, so a client sees resets and
disconnects. ``heal()`` forwards again. ``swallow(pattern)`` drops the server's
next reply to a request that contains ``pattern`` (the request itself reaches the
server): a reply lost on the way back, which the client only notices by its
timeout. ``seen`` counts the requests that matched.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

__all__ = ["TcpProxy"]


class TcpProxy:
    """Forwards ``127.0.0.1:self.port`` to ``127.0.0.1:target``; see the module docstring."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = 0
        self.broken = False
        self.seen = 0
        self._swallow: bytes | None = None
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (for a FakeSendcloud behind it add the API path)."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> TcpProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def cut(self) -> None:
        """Break the path: close every open connection, and each new one at once."""
        self.broken = True
        for writer in list(self._open):
            self._reset(writer)

    def heal(self) -> None:
        """Forward again (new connections; the ones cut stay closed)."""
        self.broken = False

    def swallow(self, pattern: bytes) -> None:
        """Drop the reply to the next request that contains ``pattern`` (once)."""
        self._swallow = pattern

    @staticmethod
    def _reset(writer: asyncio.StreamWriter) -> None:
        sock = writer.get_extra_info("socket")
        if sock is not None:  # an RST, not a polite FIN: what a broken path looks like
            with contextlib.suppress(OSError):
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
        writer.close()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.broken:
            self._reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            self._reset(writer)
            return
        if self.broken:  # cut while this connection was being made: it is cut too
            self._reset(writer)
            up_writer.close()
            return
        self._open.update((writer, up_writer))
        drop = asyncio.Event()  # set: the next chunk from the server is not passed on

        async def upstream() -> None:
            while data := await reader.read(65536):
                pattern = self._swallow
                if pattern is not None and pattern in data:
                    self._swallow = None
                    self.seen += 1
                    drop.set()
                up_writer.write(data)
                await up_writer.drain()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if drop.is_set():
                    drop.clear()
                    continue
                writer.write(data)
                await writer.drain()

        pumps = [asyncio.create_task(upstream()), asyncio.create_task(downstream())]
        try:
            with contextlib.suppress(OSError, ConnectionError):
                await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pump in pumps:
                pump.cancel()
            await asyncio.gather(*pumps, return_exceptions=True)
            for end in (writer, up_writer):
                self._open.discard(end)
                end.close()

    async def aclose(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def __aenter__(self) -> TcpProxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
