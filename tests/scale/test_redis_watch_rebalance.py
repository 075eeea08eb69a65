"""Rebalancing moves only the joining or leaving worker's share (rendezvous hashing).

Real worker processes (``tests.scale._watch_worker``) share 200 accounts of a
``FakeSendcloud`` through a real redis-server: four settle, a fifth joins (the
claims after the join are its share, at most 1.2 × 200 / 5), one stops cleanly and
one is killed with SIGKILL (only their accounts move). Every log lands in its
stream exactly once, in order. ``-s`` shows the figures.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import time
from collections import defaultdict
from typing import Any

import msgspec
import pytest
import redis.asyncio

from sendcloud_async._redis._watch import owners
from sendcloud_async.testing import FakeSendcloud

from .conftest import RedisServer
from .test_redis_watch_workers import ACCOUNTS, INTERVAL, LEASE, PREFIX, Worker, _add_logs, _name

#: Fixed worker ids, so that the shares are known: 49, 51, 50 and 50 accounts for four,
#: 40 for the fifth (ids drawn at random give it 40 ± 5.7, a binomial spread).
IDS = [f"w{n}" for n in range(1, 6)]
NAMES = [_name(n) for n in range(ACCOUNTS)]


def _holding(worker: Worker) -> set[str]:
    """The accounts ``worker`` holds now, replaying its lease events."""
    held: set[str] = set()
    for event in worker.events:
        if event["event"] == "claimed":
            held.add(event["account"])
        elif event["event"] in ("released", "lost", "refused"):
            held.discard(event["account"])
    return held


def _count(workers: list[Worker], kind: str, after: float) -> list[str]:
    return [e["account"] for w in workers for e in w.of(kind) if e["t"] > after]


async def _settled(workers: dict[str, Worker], limit: float) -> float:
    """Wait until each worker holds exactly the accounts it owns; how long that took."""
    started = time.monotonic()
    owner = owners(NAMES, list(workers))
    while True:
        if all(
            _holding(w) == {a for a, o in owner.items() if o == wid} for wid, w in workers.items()
        ):
            return time.monotonic() - started
        assert time.monotonic() - started < limit, {k: len(_holding(w)) for k, w in workers.items()}
        await asyncio.sleep(0.05)


@pytest.mark.alone
async def test_a_join_a_stop_and_a_kill_move_only_that_workers_share(
    redis_server: RedisServer, namespace: str
) -> None:
    rng = random.Random(7)
    fake = FakeSendcloud(validate_spec=False, unique_log_times=False)
    stop_adding = asyncio.Event()
    running: dict[str, Worker] = {}
    everyone: list[Worker] = []
    figures: dict[str, Any] = {}
    try:
        await fake.start()
        fake.seed(integrations=ACCOUNTS, logs_per_integration=2)
        accounts = []
        for n in range(ACCOUNTS):
            fake.add_account(f"pk-{n}", f"sk-{n}")
            accounts.append(
                {"name": _name(n), "integration": n + 1, "basic": [f"pk-{n}", f"sk-{n}"]}
            )
        config = {
            "redis": redis_server.url,
            "namespace": namespace,
            "prefix": PREFIX,
            "lease": LEASE,
            "interval": INTERVAL,
            "base_url": fake.base_url,
            "token_url": fake.token_url,
            "accounts": accounts,
            "limits": {"get": 100, "window": 1.0},
        }

        async def spawn(worker_id: str) -> None:
            worker = Worker({**config, "worker_id": worker_id})
            running[worker_id] = worker
            everyone.append(worker)
            await worker.start()
            await asyncio.wait_for(worker.ready.wait(), 30)

        await asyncio.gather(*(spawn(wid) for wid in IDS[:4]))
        await _settled(running, 15)
        adder = asyncio.create_task(_add_logs(fake, stop_adding, rng))
        await asyncio.sleep(1.0)

        # A fifth worker joins: it claims its share, taken from the others; nothing else moves.
        before = {wid: _holding(w) for wid, w in running.items()}
        joined_at = time.monotonic()
        await spawn(IDS[4])
        figures["join_settled_s"] = round(await _settled(running, 10), 2)
        await asyncio.sleep(LEASE)  # any late reshuffle would show now
        share = len(_holding(running[IDS[4]]))
        claims = _count(everyone, "claimed", joined_at)
        figures.update(share_of_the_fifth=share, claims_after_join=len(claims))
        assert share == 40
        assert len(claims) <= 1.2 * ACCOUNTS / 5
        assert sorted(claims) == sorted(_holding(running[IDS[4]]))  # all by the newcomer
        for wid in IDS[:4]:  # the others only gave some up
            assert _holding(running[wid]) <= before[wid]
        assert sorted(_count(everyone, "released", joined_at)) == sorted(claims)
        assert _count(everyone, "lost", joined_at) == _count(everyone, "refused", joined_at) == []

        # A clean stop, then a SIGKILL: only the leaving worker's accounts move.
        for leaving, signum in (("w2", signal.SIGTERM), ("w3", signal.SIGKILL)):
            before = {wid: _holding(w) for wid, w in running.items()}
            left_at = time.monotonic()
            gone = running.pop(leaving)
            gone.signal(signum)
            assert await gone.wait() == (0 if signum == signal.SIGTERM else -signal.SIGKILL)
            took = await _settled(running, LEASE + 5)
            figures[f"{signal.Signals(signum).name}_settled_s"] = round(took, 2)
            if signum == signal.SIGTERM:
                assert took < LEASE  # released: taken at once, not after the lease
            for wid, worker in running.items():
                assert _holding(worker) >= before[wid], wid  # kept everything it held
                assert set(_holding(worker)) - before[wid] <= before[leaving]
            moved = _count(list(running.values()), "claimed", left_at)
            assert sorted(moved) == sorted(before[leaving])
            assert _count(list(running.values()), "released", left_at) == []
            figures[f"claims_after_{signal.Signals(signum).name}"] = len(moved)

        stop_adding.set()
        await adder
        # Caught up, then every log once, in order, in its stream.
        client = redis.asyncio.Redis.from_url(redis_server.url)
        try:
            expected: dict[int, list[int]] = defaultdict(list)
            for log in fake.logs:
                expected[log["integration_id"]].append(log["id"])
            deadline = time.monotonic() + 20
            while True:
                async with client.pipeline(transaction=False) as pipe:
                    for name in NAMES:
                        pipe.xlen(f"{PREFIX}:{name}")
                    lengths = await pipe.execute()
                if all(lengths[n] >= len(expected[n + 1]) for n in range(ACCOUNTS)):
                    break
                assert time.monotonic() < deadline, "not caught up"
                await asyncio.sleep(0.2)
            await asyncio.sleep(INTERVAL * 1.5)  # a duplicate would show up now
            for worker in running.values():
                worker.signal(signal.SIGTERM)
            codes = [await worker.wait() for worker in running.values()]
            streams: dict[int, list[int]] = {}
            for n, name in enumerate(NAMES):
                entries: Any = await client.xrange(f"{PREFIX}:{name}")
                streams[n + 1] = [msgspec.json.decode(f[b"log"])["id"] for _, f in entries]
            leftover = [k async for k in client.scan_iter(f"{namespace}:watch:*:lease")]
        finally:
            await client.aclose()
    finally:
        stop_adding.set()
        for worker in everyone:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()
        await fake.close()
    assert codes == [0, 0, 0], [w.stderr.decode()[-2000:] for w in running.values()]
    assert leftover == []
    assert streams == dict(expected)  # no duplicate, none lost, in delivery order
    assert sum(len(ids) for ids in streams.values()) > 2 * ACCOUNTS
    assert not any(w.of("stale-write-accepted") for w in everyone)
    print("\nredis watch rebalancing:", json.dumps(figures))
