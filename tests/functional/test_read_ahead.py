"""The read-ahead hand-off: the next request overlaps the consumer, at one task switch a page."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import sendcloud_async as sc
from sendcloud_async._resources.logs import _Handoff

ROOT = Path(__file__).resolve().parents[2]


async def _blocked(awaitable: asyncio.Future[None] | asyncio.Task[None]) -> bool:
    await asyncio.sleep(0.01)
    return not awaitable.done()


async def test_a_waiting_consumer_frees_the_slot_as_the_page_is_handed_over() -> None:
    """depth 1: a page put while the consumer waits frees its slot at once (no extra turn)."""
    handoff = _Handoff(1)
    taking = asyncio.ensure_future(handoff.take())
    await asyncio.sleep(0)
    await handoff.slot()
    handoff.put(ValueError("page 1"))
    await asyncio.wait_for(handoff.slot(), 0.1)  # the next request may go before we run
    assert str(await taking) == "page 1"
    assert not handoff.producer_waits


async def test_a_page_already_waiting_frees_its_slot_when_taken() -> None:
    """depth 1: with a page waiting the producer is held; taking it lets it go."""
    handoff = _Handoff(1)
    await handoff.slot()
    handoff.put(ValueError("page 1"))
    held = asyncio.ensure_future(handoff.slot())
    assert await _blocked(held)
    assert str(await handoff.take()) == "page 1"
    assert handoff.producer_waits  # the consumer must give it a loop turn
    await asyncio.wait_for(held, 0.1)


async def test_pages_keep_their_order_whichever_side_waits() -> None:
    """Mixed hand-offs (waiting consumer, waiting pages) deliver in put order."""
    handoff = _Handoff(2)
    got: list[str] = []

    async def consume() -> None:
        for _ in range(6):
            got.append(str(await handoff.take()))
            await asyncio.sleep(0.002 if len(got) % 2 else 0)

    consumer = asyncio.ensure_future(consume())
    for n in range(6):
        await handoff.slot()
        handoff.put(ValueError(f"p{n}"))
        await asyncio.sleep(0.001 if n % 3 else 0)
    await asyncio.wait_for(consumer, 1)
    assert got == [f"p{n}" for n in range(6)]


def _busy(seconds: float) -> None:
    """Work that keeps the event loop from running (decoding, writing)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        pass


@contextlib.asynccontextmanager
async def _slow_server(records: int, page_size: int, delay_ms: int) -> AsyncIterator[str]:
    """``benchmarks.server`` in its own process, ``delay_ms`` before each page: its base URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.server", "--records", str(records),
        "--page-size", str(page_size), "--delay-ms", str(delay_ms),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(await asyncio.wait_for(proc.stdout.readline(), 60))
        yield f"http://127.0.0.1:{port}/api/v3"
    finally:
        proc.terminate()
        await proc.wait()


@pytest.mark.parametrize("blocking", [True, False], ids=["cpu-bound", "awaiting"])
async def test_the_next_request_overlaps_the_consumer(blocking: bool) -> None:
    """Server 40 ms a page (another process), consumer 40 ms a page: ~10 x 40 ms, not x 80 ms."""
    auth = sc.BasicAuth("bench-public-key", "bench-secret-key")
    async with (
        _slow_server(100, 10, 40) as base_url,
        sc.SendcloudClient(auth=auth, base_url=base_url) as client,
    ):
        started = time.monotonic()
        pages = 0
        async for _ in client.logs.pages(page_size=10):
            pages += 1
            if blocking:
                _busy(0.04)
            else:
                await asyncio.sleep(0.04)
        took = time.monotonic() - started
    assert pages == 10
    assert took < 10 * 0.08 * 0.75, took  # fetching and working in turn: 0.8 s


async def test_without_read_ahead_fetching_and_working_alternate() -> None:
    """The same with read_ahead=0 takes ~10 x 80 ms: the overlap test can fail."""
    auth = sc.BasicAuth("bench-public-key", "bench-secret-key")
    async with (
        _slow_server(100, 10, 40) as base_url,
        sc.SendcloudClient(auth=auth, base_url=base_url) as client,
    ):
        started = time.monotonic()
        async for _ in client.logs.pages(page_size=10, read_ahead=0):
            _busy(0.04)
        took = time.monotonic() - started
    assert took >= 10 * 0.08 * 0.95, took
