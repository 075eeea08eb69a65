"""Cancelling a call at each point leaves no connection, no task and no warning behind.

After each cancellation the tests check that the connector holds no acquired
connection, that no task but the test's own (and idle server connections) is
left, that nothing warns (warnings are errors in this suite, and a collection
brings out "Unclosed ..." ResourceWarnings now rather than later), and that the
same client still works.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any

import aiohttp
import pytest
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, Fault


def _is_server_task(task: asyncio.Task[Any]) -> bool:
    """A task of an aiohttp server (the fake's idle keep-alive connections)."""
    name = getattr(task.get_coro(), "__qualname__", "")
    return isinstance(name, str) and name.startswith("RequestHandler.")


async def assert_clean(client: sc.SendcloudClient, before: set[asyncio.Task[Any]]) -> None:
    """No acquired connection, no leftover client-side task, no warning; the client works."""
    await asyncio.sleep(0.05)  # let closed transports call connection_lost
    connector = client._transport.session().connector
    assert connector is not None
    # aiohttp has no public count of connections in use; _acquired is what `limit` counts.
    assert not connector._acquired
    assert not connector._waiters
    current = asyncio.current_task()
    leftover = {
        t for t in asyncio.all_tasks() - before if t is not current and not _is_server_task(t)
    }
    assert leftover == set()
    gc.collect()


async def cancel_after(delay: float, coro: Coroutine[Any, Any, object]) -> float:
    """Run ``coro`` as a task, cancel it after ``delay`` seconds; return when it ended."""
    task = asyncio.create_task(coro)
    await asyncio.sleep(delay)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return time.perf_counter()


@pytest.fixture
async def seeded(fake: FakeSendcloud) -> FakeSendcloud:
    """The fake with one integration and 250 logs."""
    fake.seed(integrations=1, logs_per_integration=250, seed=2)
    return fake


@pytest.fixture
async def api(seeded: FakeSendcloud) -> AsyncIterator[sc.SendcloudClient]:
    """A Basic-auth client for the seeded fake."""
    async with sc.SendcloudClient(auth=seeded.basic_auth, base_url=seeded.base_url) as client:
        await client.integrations.list()  # the session exists and a connection is pooled
        yield client


async def test_cancel_while_waiting_for_the_response(
    seeded: FakeSendcloud, api: sc.SendcloudClient
) -> None:
    """Cancelled before the headers arrive: the connection is closed, the server sees it go."""
    before = asyncio.all_tasks()
    seeded.inject("GET", "/integrations", Fault.delay(5))
    await cancel_after(0.1, api.integrations.list())
    await assert_clean(api, before)
    assert len(await api.integrations.list()) == 1


async def test_cancel_while_reading_the_body() -> None:
    """Cancelled halfway through a body: the connection is closed, nothing is left open."""

    async def stall(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        resp.content_length = 1000
        await resp.prepare(request)
        await resp.write(b'{"data": [')
        await asyncio.sleep(10)
        return resp  # pragma: no cover - the client goes away first

    async def ok(request: web.Request) -> web.Response:
        return web.json_response({"data": {"id": 1, "shop_name": "x", "type": "api"}})

    app = web.Application()
    app.router.add_get("/api/v3/integrations", stall)
    app.router.add_get("/api/v3/integrations/1", ok)
    runner = web.AppRunner(app, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    base_url = f"http://127.0.0.1:{runner.addresses[0][1]}/api/v3"
    try:
        async with sc.SendcloudClient(auth=sc.BasicAuth("a", "b"), base_url=base_url) as client:
            before = asyncio.all_tasks()
            for _ in range(3):
                await cancel_after(0.15, client.integrations.list())
            await assert_clean(client, before)
            assert (await client.integrations.get(1)).id == 1
    finally:
        await runner.cleanup()


async def test_cancel_during_the_retry_sleep(
    seeded: FakeSendcloud, api: sc.SendcloudClient
) -> None:
    """Cancelled while sleeping before a retry: it ends at once, no second attempt is made."""
    before = asyncio.all_tasks()
    seeded.clear_requests()
    seeded.inject("GET", "/integrations", Fault.status(503, headers={"Retry-After": "30"}))
    ended = await cancel_after(0.2, api.integrations.list())
    assert time.perf_counter() - ended < 0.1
    assert len(seeded.requests) == 1
    await assert_clean(api, before)
    assert len(await api.integrations.list()) == 1


async def test_cancel_while_waiting_for_a_pooled_connection(seeded: FakeSendcloud) -> None:
    """Cancelled in the pool's queue: the waiter is removed and the pool keeps serving."""
    seeded.inject("GET", "/integrations", Fault.delay(0.5))
    async with (
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1)) as session,
        sc.SendcloudClient(
            auth=seeded.basic_auth, base_url=seeded.base_url, session=session
        ) as client,
    ):
        before = asyncio.all_tasks()
        hog = asyncio.create_task(client.integrations.list())
        await asyncio.sleep(0.1)
        await cancel_after(0.1, client.integrations.get(1))
        assert len(await hog) == 1
        await assert_clean(client, before)
        assert (await client.integrations.get(1)).id == 1
    assert [r.path for r in seeded.requests] == ["/integrations", "/integrations/1"]


async def test_cancel_mid_pagination_then_resume_exactly_after(
    seeded: FakeSendcloud, api: sc.SendcloudClient
) -> None:
    """A paging task cancelled on page 2 leaves nothing open; resuming gives the rest once."""
    before = asyncio.all_tasks()
    seen: list[int | None] = []
    cursors: list[str | None] = []

    async def export() -> None:
        async for page in api.logs.pages(page_size=100):
            seen.extend(log.id for log in page.items)
            cursors.append(page.next_cursor)

    seeded.inject("GET", "/integrations/logs", Fault.delay(0), Fault.delay(5))
    await cancel_after(0.3, export())
    assert len(seen) == 100
    await assert_clean(api, before)
    async for page in api.logs.pages(page_size=100, cursor=cursors[-1]):
        seen.extend(log.id for log in page.items)
    assert seen == [log["id"] for log in seeded.logs]


async def test_cancel_while_a_token_is_fetched(seeded: FakeSendcloud) -> None:
    """Cancelled while the OAuth2 token is fetched: the shared fetch ends with the client."""
    seeded.inject("POST", "/oauth2/token/", Fault.delay(5))
    auth = seeded.oauth2_credentials
    before = asyncio.all_tasks()
    client = sc.SendcloudClient(auth=auth, base_url=seeded.base_url)
    await cancel_after(0.2, client.integrations.list())
    await client.aclose()
    await asyncio.sleep(0.05)
    current = asyncio.current_task()
    leftover = {
        t for t in asyncio.all_tasks() - before if t is not current and not _is_server_task(t)
    }
    assert leftover == set()
    gc.collect()
    async with sc.SendcloudClient(auth=auth, base_url=seeded.base_url) as again:
        assert len(await again.integrations.list()) == 1


async def test_cancel_by_an_outer_asyncio_timeout(
    seeded: FakeSendcloud, api: sc.SendcloudClient
) -> None:
    """The caller's own asyncio.timeout cancels the call cleanly (its TimeoutError, not ours)."""
    before = asyncio.all_tasks()
    seeded.inject("GET", "/integrations", Fault.delay(5))
    with pytest.raises(TimeoutError) as info:
        async with asyncio.timeout(0.1):
            await api.integrations.list()
    assert not isinstance(info.value, sc.APITimeoutError)
    await assert_clean(api, before)


async def test_cancel_many_calls_at_every_stage(
    seeded: FakeSendcloud, api: sc.SendcloudClient
) -> None:
    """Fifty calls cancelled at once, spread over waiting, reading and retry sleeps."""
    before = asyncio.all_tasks()
    seeded.chaos(
        seed=9,
        rates={"delay": 0.5, "status_503": 0.3},
        retry_after=30,
        delay=5,
        routes=["GET /integrations/{id}"],
    )
    calls: list[Awaitable[object]] = [api.integrations.get(1) for _ in range(50)]
    tasks = [asyncio.ensure_future(call) for call in calls]
    await asyncio.sleep(0.3)
    for task in tasks:
        task.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(isinstance(r, asyncio.CancelledError) for r in results) >= 40
    seeded.chaos(None)
    await assert_clean(api, before)
    assert all(
        r.id == 1 for r in await asyncio.gather(*(api.integrations.get(1) for _ in range(20)))
    )
