"""Four worker processes share accounts through Redis: one token per account, zero 429s."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud

from .conftest import RedisServer

ROOT = Path(__file__).resolve().parents[2]
WORKERS = 4
ACCOUNTS = 12
LIMITS = sc.RateLimits(get=10, unsafe=4, unsafe_concurrency=2, window=0.5)


async def test_four_workers_one_token_per_account_and_no_429(
    fake: FakeSendcloud, redis_server: RedisServer, namespace: str
) -> None:
    """4 processes x 12 accounts x (6 GET + 2 PATCH): 12 token requests, no 429 at all."""
    fake.seed(integrations=1, logs_per_integration=0)
    fake.enforce_rate_limits(LIMITS, latency=0.003)
    for n in range(ACCOUNTS):
        fake.add_oauth_client(f"client-{n}", f"secret-{n}")
    config = {
        "base_url": fake.base_url,
        "token_url": fake.token_url,
        "redis": redis_server.url,
        "namespace": namespace,
        "accounts": ACCOUNTS,
        "gets": 6,
        "patches": 2,
        "limits": {
            "get": LIMITS.get,
            "unsafe": LIMITS.unsafe,
            "unsafe_concurrency": LIMITS.unsafe_concurrency,
            "window": LIMITS.window,
        },
    }
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.scale._worker",
            json.dumps(config),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(WORKERS)
    ]
    try:
        for proc in procs:  # every worker set up before any starts: they really compete
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line.strip() == b"ready", line
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outputs = [await asyncio.wait_for(proc.communicate(), 60) for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    summaries = []
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err.decode()
        summaries.append(json.loads(out.decode().strip().splitlines()[-1]))
    assert [s["errors"] for s in summaries] == [[]] * WORKERS
    assert fake.token_requests_by_client == {f"client-{n}": 1 for n in range(ACCOUNTS)}
    assert sum(s["token_requests"] for s in summaries) == ACCOUNTS
    assert fake.throttled == 0
    api = [r for r in fake.requests if r.path.startswith("/integrations")]
    assert len(api) == WORKERS * ACCOUNTS * 8
    assert max(fake.peak_unsafe_concurrency.values()) <= LIMITS.unsafe_concurrency
