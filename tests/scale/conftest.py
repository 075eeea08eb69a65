"""Fixtures for the many-accounts tests: a real ``redis-server`` on a loopback port.

``redis-server`` comes from the system's package manager (``.ci/run`` installs it
with apt-get when it is missing) and the ``redis`` package from
``requirements-test.txt``. When either cannot be had, the tests that need Redis
are skipped with the reason, unless ``SENDCLOUD_REQUIRE_REDIS=1`` (set by
``.ci/run`` once it installed Redis): then they fail, so CI never skips them
silently.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    import redis.asyncio as aioredis

_REQUIRE = os.environ.get("SENDCLOUD_REQUIRE_REDIS", "") not in ("", "0")


def _unavailable(reason: str) -> None:
    if _REQUIRE:
        pytest.fail(f"{reason} (SENDCLOUD_REQUIRE_REDIS is set)")
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ping(port: int, *, answered: bool = False) -> bool:
    """Whether Redis answers PING (``answered``: answers at all, e.g. NOAUTH with a password)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
            return reply.startswith(b"+PONG") or (answered and reply.startswith(b"-"))
    except OSError:
        return False


@dataclass
class RedisServer:
    """A ``redis-server`` process on 127.0.0.1 (no persistence)."""

    binary: str
    port: int
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    #: More ``redis-server`` options (``("--requirepass", "…")``).
    extra: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start it on ``port`` and wait until it answers PING (5 s at most)."""
        self.process = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 5.0
        while not _ping(self.port, answered=bool(self.extra)):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not start on port {self.port}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Terminate it (kill after 5 s) and wait."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(5.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def redis_binary() -> str:
    """The path of ``redis-server``, or skip (fail under SENDCLOUD_REQUIRE_REDIS)."""
    try:
        import redis  # noqa: F401
    except ImportError:
        _unavailable("the redis package is not installed: pip install 'sendcloud-async[redis]'")
    binary = shutil.which("redis-server") or next(
        (p for p in ("/usr/bin/redis-server", "/usr/sbin/redis-server") if os.path.exists(p)),
        None,
    )
    if binary is None:
        _unavailable(
            "redis-server is not installed (apt-get install redis-server; .ci/run does this)"
        )
    assert binary is not None
    return binary


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One ``redis-server`` for the whole session, on a free loopback port."""
    server = RedisServer(redis_binary(), free_port(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A ``redis-server`` of this test's own: the test may stop and start it again, and its
    command counts are this test's."""
    server = RedisServer(redis_binary(), free_port(), tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def namespace() -> str:
    """A key namespace of this test's own (tests share the server, never keys)."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A plain ``redis.asyncio.Redis`` to look at what the SDK stored."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        yield client
    finally:
        await client.aclose()
