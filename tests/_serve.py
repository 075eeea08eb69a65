"""An aiohttp application served on an ephemeral 127.0.0.1 port, for receiver tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web


@asynccontextmanager
async def serving(app: web.Application, path: str) -> AsyncIterator[str]:
    """Run ``app`` on 127.0.0.1 (a free port) until the block ends; yield the URL of ``path``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
    finally:
        await runner.cleanup()
