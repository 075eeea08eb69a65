"""Four watch worker processes share 200 accounts through Redis: kills, a pause, a Redis restart.

The run (about 40 s) is scaled down: a 2-second lease, a 1-second poll interval.
It prints its figures (``-s`` shows them); ``benchmarks/RESULTS.md`` quotes them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import random
import signal
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud

from .conftest import free_port, redis_binary
from .test_redis_watch import PersistentRedis

ROOT = Path(__file__).resolve().parents[2]
ACCOUNTS = 200
OAUTH2 = range(0, ACCOUNTS, 40)  # 5 accounts with OAuth2, the others with Basic auth
WORKERS = 4
LEASE = 2.0
INTERVAL = 1.0
#: On a loaded 2-core machine (4 to 5 workers, the fake and Redis) one poll takes up to a
#: few hundred ms, so polls are ``INTERVAL`` + that apart; a takeover adds a claim round
#: trip and the first request. The bound checked is lease + interval + this.
SLACK = 0.5
LIMITS = sc.RateLimits(get=10, window=1.0)
PREFIX = "watch-test"


class TimedFake(FakeSendcloud):
    """A FakeSendcloud that notes when each integration's logs were listed (monotonic)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.polls: dict[int, list[float]] = defaultdict(list)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        parts = request.path.split("/")
        if request.method == "GET" and parts[-1] == "logs" and parts[-2].isdigit():
            self.polls[int(parts[-2])].append(time.monotonic())
        return await super()._handle(request)


def _name(n: int) -> str:
    return f"acct-{n:03d}"


@dataclass
class Worker:
    """One ``tests.scale._watch_worker`` process and what it printed."""

    config: dict[str, Any]
    process: asyncio.subprocess.Process | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    stderr: bytearray = field(default_factory=bytearray)
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    paused: asyncio.Event = field(default_factory=asyncio.Event)
    #: When it was killed or stopped (monotonic), ending what it held.
    ended: float | None = None
    readers: list[asyncio.Task[None]] = field(default_factory=list)

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.scale._watch_worker",
            json.dumps(self.config),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        self.readers = [asyncio.create_task(self._out()), asyncio.create_task(self._err())]

    async def _out(self) -> None:
        assert self.process is not None
        assert self.process.stdout is not None
        async for line in self.process.stdout:
            event = json.loads(line)
            self.events.append(event)
            if event["event"] == "ready":
                self.ready.set()
            elif event["event"] == "pausing":
                self.paused.set()

    async def _err(self) -> None:
        assert self.process is not None
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            self.stderr += line

    def signal(self, signum: int) -> None:
        assert self.process is not None
        if signum in (signal.SIGKILL, signal.SIGTERM):
            self.ended = time.monotonic()
        self.process.send_signal(signum)

    async def wait(self) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), 20)
        await asyncio.gather(*self.readers)
        return code

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["event"] == kind]


async def _add_logs(fake: FakeSendcloud, stop: asyncio.Event, rng: random.Random) -> int:
    """Logs keep coming, about 50 a second, one in ten sharing the previous one's created_at."""
    added = 0
    last: str | None = None
    while not stop.is_set():
        for _ in range(rng.randint(0, 2)):
            fields: dict[str, Any] = {"base_url": "https://shop.example", "method": "POST"}
            if last is not None and rng.random() < 0.1:
                fields["created_at"] = last
            record = fake.add_log(rng.randint(1, ACCOUNTS), **fields)
            last = record["created_at"]
            added += 1
        await asyncio.sleep(0.02)
    return added


def _intervals(workers: list[Worker]) -> dict[str, list[tuple[float, float, int]]]:
    """Per account, when each worker was actively holding it: (from, to, worker)."""
    spans: dict[str, list[tuple[float, float, int]]] = defaultdict(list)
    for index, worker in enumerate(workers):
        pauses = worker.of("pausing")
        paused_at = pauses[0]["t"] if pauses else None
        resumed = worker.of("resumed")
        resumed_at = resumed[0]["t"] if resumed else None
        open_: dict[str, float] = {}
        for event in worker.events:
            kind, account = event["event"], str(event.get("account"))
            if kind == "claimed":
                open_[account] = event["t"]
            elif kind in ("released", "lost", "refused") and account in open_:
                start = open_.pop(account)
                end = event["t"]
                if paused_at is not None and resumed_at is not None and start < paused_at < end:
                    end = paused_at  # stopped: it did nothing more (and the fence saw to that)
                spans[account].append((start, end, index))
        for account, start in open_.items():
            assert worker.ended is not None
            spans[account].append((start, worker.ended, index))
    return spans


@pytest.mark.alone
async def test_four_workers_200_accounts_kills_a_pause_and_a_redis_restart(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """Every log once, in order, in its stream; one holder at a time; gaps within the lease."""
    seed = int(os.environ.get("WATCH_SEED", str(time.time_ns() % 1_000_000)))
    rng = random.Random(seed)
    server = PersistentRedis(redis_binary(), free_port(), tmp_path_factory.mktemp("watch-run"))
    server.start()
    namespace = f"run-{seed}"
    fake = TimedFake(validate_spec=False, unique_log_times=False)
    workers: list[Worker] = []
    stop_adding = asyncio.Event()
    figures: dict[str, Any] = {"seed": seed}
    try:
        await fake.start()
        fake.seed(integrations=ACCOUNTS, logs_per_integration=2)
        accounts = []
        for n in range(ACCOUNTS):
            account: dict[str, Any] = {"name": _name(n), "integration": n + 1}
            if n in OAUTH2:
                fake.add_oauth_client(f"client-{n}", f"secret-{n}")
                account["oauth2"] = [f"client-{n}", f"secret-{n}"]
            else:
                fake.add_account(f"pk-{n}", f"sk-{n}")
                account["basic"] = [f"pk-{n}", f"sk-{n}"]
            accounts.append(account)
        fake.enforce_rate_limits(LIMITS)
        config = {
            "redis": server.url,
            "namespace": namespace,
            "prefix": PREFIX,
            "lease": LEASE,
            "interval": INTERVAL,
            "base_url": fake.base_url,
            "token_url": fake.token_url,
            "accounts": accounts,
            "limits": {"get": LIMITS.get, "window": LIMITS.window},
        }

        async def spawn(**extra: Any) -> Worker:
            worker = Worker({**config, **extra})
            workers.append(worker)
            await worker.start()
            await asyncio.wait_for(worker.ready.wait(), 30)
            return worker

        await asyncio.gather(*(spawn(pause_at=150 if i == 1 else None) for i in range(WORKERS)))
        started = time.monotonic()
        adder = asyncio.create_task(_add_logs(fake, stop_adding, rng))

        async def at(seconds: float) -> None:
            await asyncio.sleep(max(0.0, started + seconds - time.monotonic()))

        # 1st SIGKILL at a random moment, a replacement at once.
        await at(rng.uniform(3.0, 6.0))
        workers[0].signal(signal.SIGKILL)
        kills = [time.monotonic() - started]
        await spawn()
        # The pausing worker stops itself before a write; it stays stopped 2.5 leases.
        paused = workers[1]
        await asyncio.wait_for(paused.paused.wait(), 25)
        pause_started = time.monotonic()
        await asyncio.sleep(LEASE * 2.5)
        paused.signal(signal.SIGCONT)
        figures["pause"] = round(time.monotonic() - pause_started, 2)
        # 2nd SIGKILL at a random moment.
        await at(rng.uniform(max(16.0, time.monotonic() - started + 1), 20.0))
        workers[2].signal(signal.SIGKILL)
        kills.append(time.monotonic() - started)
        await spawn()
        # Redis restarts (its data kept on disk: appendonly, fsync always).
        await at(23.0)
        outage = [time.monotonic()]
        server.stop()
        await asyncio.sleep(0.5)
        server.start()
        outage.append(time.monotonic())
        await at(28.0)
        stop_adding.set()
        added = await adder
        adding_ended = time.monotonic()

        # Caught up: every integration's logs are in its stream.
        client = redis.asyncio.Redis.from_url(server.url)
        try:
            expected = defaultdict(list)
            for log in fake.logs:
                expected[log["integration_id"]].append(log["id"])
            deadline = time.monotonic() + 20
            while True:
                async with client.pipeline(transaction=False) as pipe:
                    for n in range(ACCOUNTS):
                        pipe.xlen(f"{PREFIX}:{_name(n)}")
                    lengths = await pipe.execute()
                if all(lengths[n] >= len(expected[n + 1]) for n in range(ACCOUNTS)):
                    break
                assert time.monotonic() < deadline, f"not caught up (seed {seed})"
                await asyncio.sleep(0.2)
            caught_up = time.monotonic() - adding_ended
            await asyncio.sleep(INTERVAL * 1.5)  # a duplicate would show up now
            for worker in workers:
                if worker.ended is None:
                    worker.signal(signal.SIGTERM)
            codes = [await worker.wait() for worker in workers]
            streams: dict[int, list[int]] = {}
            for n in range(ACCOUNTS):
                entries: Any = await client.xrange(f"{PREFIX}:{_name(n)}")
                streams[n + 1] = [msgspec.json.decode(f[b"log"])["id"] for _, f in entries]
            leftover = [k async for k in client.scan_iter(f"{namespace}:watch:*:lease")]
        finally:
            await client.aclose()
    finally:
        stop_adding.set()
        for worker in workers:
            if worker.process is not None and worker.process.returncode is None:
                worker.process.kill()
                await worker.process.wait()
        await fake.close()
        server.stop()

    killed = [w for w in workers if w.process is not None and w.process.returncode == -9]
    assert len(killed) == 2
    for worker, code in zip(workers, codes, strict=True):
        if worker not in killed:
            assert code == 0, worker.stderr.decode()
            assert worker.of("summary"), worker.stderr.decode()
    assert leftover == []  # a clean stop releases its leases

    # Every log of every account in its stream exactly once, in delivery order.
    duplicates = sum(len(ids) - len(set(ids)) for ids in streams.values())
    lost = sum(len(set(expected[i]) - set(streams[i])) for i in expected)
    assert duplicates == 0, f"seed {seed}"
    assert lost == 0, f"seed {seed}"
    assert streams == dict(expected), f"order differs (seed {seed})"
    total = sum(len(ids) for ids in streams.values())

    # The paused worker's write was refused by the fence, and nothing else was.
    assert paused.of("stale-write-refused"), paused.events[-5:]
    assert not any(w.of("stale-write-accepted") for w in workers)

    # One worker at a time on each account.
    spans = _intervals(workers)
    for name, held in spans.items():
        held.sort()
        for (_, end, a), (start, _, b) in itertools.pairwise(held):
            assert a == b or start >= end - 0.001, (name, held, f"seed {seed}")

    # No account went unwatched longer than lease + interval (the API's own journal).
    worst = 0.0
    worst_outage = 0.0
    gaps = []
    for iid in range(1, ACCOUNTS + 1):
        times = [t for t in fake.polls[iid] if t <= adding_ended]
        for before, after in itertools.pairwise(times):
            if before < outage[1] and after > outage[0]:
                worst_outage = max(worst_outage, after - before)
            else:
                worst = max(worst, after - before)
                gaps.append((after - before, iid, before - started))
    gaps.sort(reverse=True)
    periods = sorted(g for g, _, _ in gaps)
    figures["poll_period_p50"] = round(periods[len(periods) // 2], 2)
    figures["longest_gaps"] = [(round(g, 2), _name(i - 1), round(t, 2)) for g, i, t in gaps[:5]]
    figures["pause_at"] = round(paused.of("pausing")[0]["t"] - started, 2)
    figures["outage_at"] = round(outage[0] - started, 2)
    report = Path(os.environ.get("WATCH_REPORT", "/dev/null"))
    dump = json.dumps({"figures": figures, "events": [w.events for w in workers]})
    await asyncio.to_thread(report.write_text, dump)
    assert worst <= LEASE + INTERVAL + SLACK, f"worst gap {worst:.2f} s ({figures})"

    # Tokens: one per OAuth2 account, plus at most one per takeover of that account.
    claims: dict[str, int] = defaultdict(int)
    for worker in workers:
        for event in worker.of("claimed"):
            claims[event["account"]] += 1
    tokens = fake.token_requests_by_client
    for n in OAUTH2:
        assert 1 <= tokens[f"client-{n}"] <= claims[_name(n)], (tokens, claims)
    assert fake.throttled == 0

    takeovers = sum(claims.values()) - ACCOUNTS
    figures.update(
        accounts=ACCOUNTS,
        oauth2_accounts=len(OAUTH2),
        workers=WORKERS,
        processes=len(workers),
        kills=[round(k, 1) for k in kills],
        lease=LEASE,
        interval=INTERVAL,
        logs=total,
        logs_added_during_run=added,
        claims_beyond_first=takeovers,
        worst_gap=round(worst, 2),
        worst_gap_across_redis_restart=round(worst_outage, 2),
        redis_outage=round(outage[1] - outage[0], 2),
        caught_up_after=round(caught_up, 2),
        stale_writes_refused=len(paused.of("stale-write-refused")),
        refused_by_fence=sum(w.of("summary")[0]["refused"] for w in workers if w.of("summary")),
        token_requests=sum(tokens.values()),
        throttled=fake.throttled,
        duplicates=duplicates,
        lost=lost,
        started=datetime.now().isoformat(timespec="seconds"),
    )
    print("\nredis watch run:", json.dumps(figures))
