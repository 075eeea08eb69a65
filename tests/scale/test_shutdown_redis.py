"""The Redis coordinator always stops when cancelled: 1,000 cancels at random moments.

The coordinator's share of the cancellation stress test of
``tests/functional/test_shutdown.py`` (the ``LogWatcher`` runs and the exports are
there): a real ``redis-server``, a real ``FakeSendcloud``, the watch the command
line runs (``log_watcher_watch``), two accounts of which one is revoked, several
coordinators side by side in one namespace (they take leases from each other).
Each cancelled ``run()`` must have ended, its leases released or left to lapse,
within 2 s of its cancel.
"""

from __future__ import annotations

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud

from ..functional.test_shutdown import BOUND, cancel_at_random
from .conftest import RedisServer


async def test_the_redis_coordinator_always_stops_when_cancelled(
    redis_server: RedisServer, namespace: str
) -> None:
    from sendcloud_async.redis import RedisWatchCoordinator, RedisWatchStore, log_watcher_watch

    async with FakeSendcloud() as fake:
        fake.seed(integrations=2, logs_per_integration=5)
        accounts: dict[str, sc.BasicAuth] = {
            "shop": fake.add_account("pk-0", "sk-0"),
            "revoked": sc.BasicAuth("pk-unknown", "sk-unknown"),
        }
        store = RedisWatchStore.from_url(
            redis_server.url, namespace=namespace, stream_prefix=f"{namespace}:logs", lease=0.4
        )
        async with store, sc.AccountPool(base_url=fake.base_url, max_retries=0) as pool:
            watch = log_watcher_watch(pool, accounts, start="all", interval=0.05)

            async def run(n: int) -> None:
                coordinator = RedisWatchCoordinator(
                    store, list(accounts), watch, retry_interval=0.04
                )
                await coordinator.run()

            slowest = await cancel_at_random(run, 1000, side_by_side=8, latest=0.4, seed=15)
        assert slowest[-1] < BOUND
        assert any(r.path == "/integrations/logs" for r in fake.requests)  # they did poll
