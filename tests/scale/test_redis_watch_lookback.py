"""The Redis watch with a lookback window: a log that becomes visible late lands once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import msgspec
import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud

from .conftest import RedisServer
from .test_redis_watch import _stream

if TYPE_CHECKING:
    import redis.asyncio as aioredis


@pytest.mark.parametrize("order", ["oldest_first", "newest_first"])
async def test_a_late_log_lands_in_the_stream_once(
    redis_server: RedisServer, namespace: str, redis_client: aioredis.Redis, order: str
) -> None:
    """logs_watch(lookback=…) and log_watcher_watch(lookback=…): late logs once, in the stream."""
    from sendcloud_async.redis import (
        RedisWatchCoordinator,
        RedisWatchStore,
        log_watcher_watch,
        logs_watch,
    )

    async with FakeSendcloud(log_order=order) as fake:
        fake.seed(integrations=1, logs_per_integration=0)
        store = RedisWatchStore.from_url(
            redis_server.url, namespace=namespace, stream_prefix=f"{namespace}:logs", lease=1.0
        )
        async with (
            store,
            sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client,
            sc.AccountPool(base_url=fake.base_url) as pool,
        ):
            watches = {
                "plain": logs_watch(lambda name: client, start="all", interval=0.05, lookback=1),
                "watcher": log_watcher_watch(
                    pool, {"watcher": fake.basic_auth}, start="all", interval=0.05, lookback=1
                ),
            }

            async def dispatch(name: str, state: bytes | None, commit: object) -> None:
                await watches[name](name, state, commit)  # type: ignore[arg-type]

            # A few seconds old: the server's clock keeps the window open for the late log.
            base = datetime.now(UTC) - timedelta(seconds=5.2)
            for n in range(6):
                fake.add_log(
                    1, created_at=base + timedelta(seconds=n), base_url="https://s.example"
                )
            coordinator = RedisWatchCoordinator(store, list(watches), dispatch)
            task = asyncio.create_task(coordinator.run())
            await asyncio.sleep(0.5)
            late = fake.add_log(
                1, created_at=base + timedelta(seconds=4.6), base_url="https://s.example"
            )
            # 2.5 s behind the mark: inside the default window, outside the one given.
            too_late = fake.add_log(
                1, created_at=base + timedelta(seconds=2.5), base_url="https://s.example"
            )
            await asyncio.sleep(0.5)
            coordinator.stop()
            await task
        for name in watches:
            stored = [
                msgspec.json.decode(raw)["id"] for raw in await _stream(redis_client, store, name)
            ]
            assert sorted(stored[:6]) == [1, 2, 3, 4, 5, 6]
            assert stored[6:] == [late["id"]]  # once; the one beyond the window never
            assert too_late["id"] not in stored
