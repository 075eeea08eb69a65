"""Every async resource of the SDK has one lifecycle: ``ClientClosedError`` after ``aclose()``.

``sendcloud_async._lifecycle.Lifecycle`` is the one base; the Redis pieces are
checked the same way in ``tests/scale/test_lifecycle_redis.py`` (they need a real
``redis-server``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest

import sendcloud_async as sc
from sendcloud_async._lifecycle import Lifecycle
from sendcloud_async.testing import FakeSendcloud

Use = Callable[[Any], Awaitable[object]]


async def _client_call(client: sc.SendcloudClient) -> object:
    return await client.integrations.list()


async def _pool_call(pool: sc.AccountPool) -> object:
    return pool.client(sc.BasicAuth("pk", "sk"))


RESOURCES: dict[str, tuple[Callable[[FakeSendcloud], Any], Use, str]] = {
    "SendcloudClient": (
        lambda fake: sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url),
        _client_call,
        "this SendcloudClient is closed",
    ),
    "AccountPool": (
        lambda fake: sc.AccountPool(base_url=fake.base_url),
        _pool_call,
        "this AccountPool is closed",
    ),
}


@pytest.mark.parametrize("name", sorted(RESOURCES))
async def test_use_after_aclose_raises_client_closed_error(fake: FakeSendcloud, name: str) -> None:
    make, use, message = RESOURCES[name]
    resource = make(fake)
    async with resource:
        await use(resource)
    assert resource.closed
    sent = len(fake.requests)
    with pytest.raises(sc.ClientClosedError, match=message):
        await use(resource)
    await resource.aclose()  # a second close does nothing
    with pytest.raises(sc.ClientClosedError, match=message):
        async with resource:
            pass
    assert len(fake.requests) == sent  # nothing was sent after the close


async def test_a_borrowed_session_is_never_closed(fake: FakeSendcloud) -> None:
    async with aiohttp.ClientSession() as session:
        for resource in (
            sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url, session=session),
            sc.AccountPool(base_url=fake.base_url, session=session),
        ):
            async with resource:
                pass
            assert resource.closed
            assert not session.closed


def test_the_resources_share_one_lifecycle() -> None:
    from sendcloud_async._lifecycle import Facade
    from sendcloud_async._redis._conn import RedisConnection, RedisPiece
    from sendcloud_async._sessions import Shared

    for resource in (sc.AccountPool, Shared, RedisConnection, FakeSendcloud):
        assert issubclass(resource, Lifecycle), resource
    # The client's lifecycle is its transport's (shared with with_options copies); a
    # Redis piece's is its connection handle's.
    for face in (sc.SendcloudClient, RedisPiece):
        assert issubclass(face, Facade), face


async def test_the_fake_is_one_of_them() -> None:
    """FakeSendcloud: closed once, then ClientClosedError instead of listening again."""
    fake = FakeSendcloud()
    async with fake:
        port = fake.port
    assert fake.closed
    await fake.close()  # idempotent, as aclose()
    with pytest.raises(sc.ClientClosedError, match="this FakeSendcloud is closed"):
        await fake.start()
    with pytest.raises(sc.ClientClosedError, match="this FakeSendcloud is closed"):
        async with fake:
            pass
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await session.get(f"http://127.0.0.1:{port}/api/v3/integrations")
    assert isinstance(fake, Lifecycle)
