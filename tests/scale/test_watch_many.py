"""Watching at scale: 1,000 accounts from one process, and a catch-up of 100,000 logs."""

from __future__ import annotations

import asyncio
import gc
import sys
import tracemalloc
from asyncio.subprocess import PIPE
from collections import defaultdict

import msgspec
import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud

LIMITS = sc.RateLimits(get=4, unsafe=1, unsafe_concurrency=1, window=0.5)


async def test_1000_oauth2_accounts_two_polls_each() -> None:
    """1,000 OAuth2 accounts, rate gate on: 2 polls each, 1 token each, no 429, each log once."""
    async with FakeSendcloud(validate_spec=True, unique_log_times=False) as fake:
        await _watch_1000(fake)
        assert fake.spec_violations == []


async def _watch_1000(fake: FakeSendcloud) -> None:
    fake.seed(integrations=2, logs_per_integration=3)
    fake.enforce_rate_limits(LIMITS)
    for n in range(1000):
        fake.add_oauth_client(f"client-{n}", f"secret-{n}")
    accounts = {
        f"acct-{n}": sc.OAuth2ClientCredentials(
            f"client-{n}", f"secret-{n}", token_url=fake.token_url
        )
        for n in range(1000)
    }
    delivered: dict[str, list[int]] = defaultdict(list)
    polls: dict[str, int] = defaultdict(int)
    failures: list[sc.AccountFailed] = []

    def record(event: sc.WatchEvent) -> None:
        if isinstance(event, sc.NewLogs):
            delivered[event.account] += [i.id for i in event.items if i.id is not None]
        elif isinstance(event, sc.AccountPolled):
            polls[event.account] += 1
        elif isinstance(event, sc.AccountFailed):
            failures.append(event)

    store = sc.MemoryWatchStore()
    async with sc.AccountPool(base_url=fake.base_url, rate_limit=LIMITS) as pool:
        options = {"store": store, "start": "all", "concurrency": 100}
        await sc.LogWatcher(pool, accounts, **options).run(record, once=True)  # type: ignore[arg-type]
        fake.add_log(1)
        fake.add_log(2, created_at=fake.logs[-1]["created_at"])  # a tie with the newest
        await sc.LogWatcher(pool, accounts, **options).run(record, once=True)  # type: ignore[arg-type]
    assert failures == []
    every = [r["id"] for r in fake.logs]
    assert len(every) == 8
    assert set(polls.values()) == {2}
    assert len(polls) == 1000
    assert all(sorted(ids) == every for ids in delivered.values())
    assert len(delivered) == 1000
    assert fake.token_requests == 1000
    assert set(fake.token_requests_by_client.values()) == {1}
    assert fake.throttled == 0


_SERVE = """
import asyncio, sys
from sendcloud_async.testing import FakeSendcloud

async def main():
    async with FakeSendcloud(log_order=sys.argv[2]) as fake:
        fake.seed(integrations=1, logs_per_integration=int(sys.argv[1]))
        print(fake.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


@pytest.mark.parametrize("order", ["oldest_first", "newest_first"])
async def test_a_catch_up_of_100000_logs_stays_within_a_few_mb(order: str) -> None:
    """100,000 new logs walked page by page: the client's traced peak stays under 4 MB."""
    # The fake runs in its own process, so only the client's memory is traced here.
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SERVE, "100000", order, stdin=PIPE, stdout=PIPE
    )
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        port = int(await server.stdout.readline())
        auth = sc.BasicAuth("fake-public-key", "fake-secret-key")
        base_url = f"http://127.0.0.1:{port}/api/v3"
        async with sc.SendcloudClient(auth=auth, base_url=base_url) as client:
            count = 0
            state: sc.WatchState | None = None
            gc.collect()
            tracemalloc.start()
            try:
                baseline, _ = tracemalloc.get_traced_memory()
                # lookback=0: the state of the walk alone (the window's ids are bounded
                # by one window, tests/functional/test_watch_lookback.py).
                batches = client.logs.watch(start="all", once=True, page_size=100, lookback=0)
                async for batch in batches:
                    count += len(batch.items)
                    state = batch.state
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
    finally:
        server.stdin.close()
        await server.wait()
    assert count == 100_000
    assert state is not None
    assert state.order == order
    assert len(msgspec.json.encode(state)) < 300
    assert peak - baseline < 4 * 1024 * 1024, f"peak {(peak - baseline) / 1e6:.1f} MB"
