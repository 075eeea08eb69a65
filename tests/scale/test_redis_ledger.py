"""RedisEventLedger on a real redis-server: in-memory verdicts, atomic, TTLs, four processes."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
import pytest
from aiohttp import web

from sendcloud_async import webhooks
from sendcloud_async.testing import FakeSendcloud
from sendcloud_async.webhooks._parse import decode_event
from tests._ledger_stores import UNAVAILABLE, meet_alike
from tests._serve import serving

from .conftest import RedisServer, free_port

if TYPE_CHECKING:
    import redis.asyncio as aioredis

    from sendcloud_async.redis import RedisEventLedger, RedisState

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec-shared-ledger-5d1e"

StateFactory = Callable[..., "RedisState"]


@pytest.fixture
async def states(redis_server: RedisServer, namespace: str) -> AsyncIterator[StateFactory]:
    """Makes ``RedisState``s, each with its own connection pool (like separate processes)."""
    from sendcloud_async.redis import RedisState

    async with AsyncExitStack() as stack:

        def make(**options: Any) -> RedisState:
            """A new RedisState in this test's namespace."""
            options.setdefault("namespace", namespace)
            state = RedisState.from_url(redis_server.url, **options)
            stack.push_async_callback(state.aclose)
            return state

        yield make


def redis_ledger(states: StateFactory, **options: Any) -> RedisEventLedger:
    """A RedisEventLedger over a new RedisState."""
    from sendcloud_async.redis import RedisEventLedger

    return RedisEventLedger(states(), **options)


def text(value: bytes | str) -> str:
    """A Redis reply as text."""
    return value.decode() if isinstance(value, bytes) else value


def decode(obj: dict[str, Any]) -> webhooks.WebhookEvent:
    """A decoded event (the ledger only sees verified, decoded events)."""
    return decode_event(json.dumps(obj).encode())


def parcel(ident: int, when: float) -> webhooks.WebhookEvent:
    """A parcel_status_changed event."""
    return decode({"action": "parcel_status_changed", "timestamp": when, "parcel": {"id": ident}})


SCRIPT: list[dict[str, Any]] = [
    {"action": "parcel_status_changed", "timestamp": 1000, "parcel": {"id": 7}},
    {"action": "parcel_status_changed", "timestamp": 1000, "parcel": {"id": 7, "x": 1}},
    {"action": "parcel_status_changed", "timestamp": 1_000_000, "parcel": {"id": 7}},
    {"action": "parcel_status_changed", "timestamp": 999, "parcel": {"id": 7}},
    {"action": "parcel_status_changed", "timestamp": 999, "parcel": {"id": 8}},
    {"action": "integration_connected", "timestamp": 100, "integration": {"id": 3}},
    {"action": "integration_deleted", "timestamp": 300, "integration": {"id": 3}},
    {"action": "integration_updated", "timestamp": 200, "integration": {"id": 3}},
    {"action": "return_created", "timestamp": 50, "data": {"id": 7}},
    {"action": "return_created", "timestamp": 50.0, "data": {"id": 7}},
    {"action": "label_printed", "timestamp": 5, "label": {"id": 1}},
    {"action": "label_printed", "timestamp": 5, "label": {"id": 1}},
    {"action": "label_printed", "timestamp": 4, "label": {"id": 1}},
    {"action": "parcel_status_changed", "timestamp": 1_000_000_000, "parcel": {"id": 7}},
]
EXPECTED = [
    "new",
    "duplicate",
    "new",
    "stale",
    "new",
    "new",
    "new",
    "stale",
    "new",
    "duplicate",
    "new",
    "duplicate",
    "new",
    "new",  # 1e9 and 1e6 are both seconds: a newer parcel 7 event
]


async def test_redis_ledger_gives_the_in_memory_verdicts(states: StateFactory) -> None:
    """The same script of events gets the same verdicts from Redis as from memory."""
    memory = webhooks.EventLedger()
    shared = redis_ledger(states)
    in_memory = [await memory.admit(decode(e)) for e in SCRIPT]
    in_redis = [await shared.admit(decode(e)) for e in SCRIPT]
    assert in_memory == EXPECTED
    assert in_redis == EXPECTED
    assert shared.counts == memory.counts
    assert await shared.size() == await memory.size() == EXPECTED.count("new")


async def test_two_processes_see_each_others_admissions(states: StateFactory) -> None:
    """What one ledger admitted is a duplicate (or makes older events stale) for another."""
    first, second = redis_ledger(states), redis_ledger(states)
    assert await first.admit(parcel(7, 2000)) == "new"
    assert await second.admit(parcel(7, 2000)) == "duplicate"
    assert await second.admit(parcel(7, 1000)) == "stale"


async def test_concurrent_admits_of_one_event_admit_it_once(states: StateFactory) -> None:
    """Twelve ledgers (own connections) admitting the same event at once: exactly one new."""
    ledgers = [redis_ledger(states) for _ in range(12)]
    verdicts = await asyncio.gather(*(ledger.admit(parcel(7, 1000)) for ledger in ledgers))
    assert sorted(verdicts) == ["duplicate"] * 11 + ["new"]


async def test_concurrent_handling_of_one_object_lets_one_in(states: StateFactory) -> None:
    """Eight ledgers handling events of one parcel at once: one works, the others are refused."""
    ledgers = [redis_ledger(states) for _ in range(8)]
    inside = asyncio.Event()
    release = asyncio.Event()

    async def handle(ledger: RedisEventLedger, when: int) -> str:
        """Try to work on parcel 7; hold the block until released."""
        try:
            async with ledger.handling(parcel(7, when)) as verdict:
                inside.set()
                await release.wait()
                return verdict
        except webhooks.EventInFlightError:
            return "in flight"

    tasks = [asyncio.create_task(handle(ledger, 1000 + n)) for n, ledger in enumerate(ledgers)]
    await inside.wait()
    await asyncio.sleep(0.05)
    release.set()
    results = await asyncio.gather(*tasks)
    assert sorted(results) == ["in flight"] * 7 + ["new"]


async def test_keys_have_ttls_and_hold_no_secret(
    states: StateFactory, redis_client: aioredis.Redis, namespace: str
) -> None:
    """Every key the ledger writes expires (ttl, or lease for a claim) and names no secret."""
    ledger = redis_ledger(states, ttl=600, lease=30)
    body = json.dumps(
        {"action": "parcel_status_changed", "timestamp": 1000, "parcel": {"id": 7}}
    ).encode()
    event = webhooks.parse_event(body, signature=webhooks.sign(body, SECRET), secret=SECRET)
    assert await ledger.admit(event) == "new"
    assert await ledger.admit(decode({"action": "odd", "note": SECRET})) == "new"
    async with ledger.handling(parcel(8, 1000)):
        keys = sorted(text(k) for k in await redis_client.keys(f"{namespace}:*"))
        ttls = {k: await redis_client.pttl(k) for k in keys}
        values = {k: await redis_client.get(k) for k in keys}
    claim = f"{namespace}:webhooks:{{parcel:8}}:claim"
    assert keys[1:] == [
        f"{namespace}:webhooks:{{parcel:7}}:latest",
        f"{namespace}:webhooks:{{parcel:7}}:seen:parcel_status_changed@1000000000",
        claim,
    ]
    assert keys[0].startswith(f"{namespace}:webhooks:{{event:")
    assert keys[0].endswith("}:seen:content")
    for key, ttl in ttls.items():
        limit = 30_000 if key == claim else 600_000
        assert 0 < ttl <= limit, key
        assert SECRET not in key
        value = values[key]
        assert value is not None
        assert SECRET.encode() not in value
    remaining = sorted(text(k) for k in await redis_client.keys(f"{namespace}:*"))
    assert claim not in remaining
    assert f"{namespace}:webhooks:{{parcel:8}}:latest" in remaining


async def test_failed_handling_is_not_admitted(states: StateFactory) -> None:
    """A block that raises admits nothing: the retry (on another process) is new."""
    first, second = redis_ledger(states), redis_ledger(states)

    async def fail() -> None:
        """Work that fails."""
        async with first.handling(parcel(7, 1000)):
            raise RuntimeError("database is down")

    with pytest.raises(RuntimeError, match="database is down"):
        await fail()
    async with second.handling(parcel(7, 1000)) as verdict:
        assert verdict == "new"
    assert await first.admit(parcel(7, 1000)) == "duplicate"
    assert (first.counts["failed"], second.counts["new"]) == (1, 1)


#: A receiver that claims parcel 7 inside ``handling`` and then hangs there until killed.
DYING_RECEIVER = """
import asyncio, sys
from sendcloud_async import webhooks
from sendcloud_async.redis import RedisEventLedger, RedisState

async def main(url, namespace):
    body = b'{"action": "parcel_status_changed", "timestamp": 1000, "parcel": {"id": 7}}'
    event = webhooks.parse_event(body, signature=webhooks.sign(body, "s"), secret="s")
    async with RedisState.from_url(url, namespace=namespace) as state:
        async with RedisEventLedger(state, lease=1.0).handling(event) as verdict:
            print(verdict, flush=True)
            await asyncio.sleep(60)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_killed_receivers_claim_expires_after_its_lease(
    states: StateFactory, redis_server: RedisServer, namespace: str
) -> None:
    """A receiver SIGKILLed inside ``handling`` blocks its object for ``lease`` seconds only."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        DYING_RECEIVER,
        redis_server.url,
        namespace,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"new\n"
    finally:
        proc.kill()  # SIGKILL: no release, no commit
        await proc.wait()
    alive = redis_ledger(states)
    with pytest.raises(webhooks.EventInFlightError, match="parcel:7"):
        await alive.admit(parcel(7, 1000))
    await asyncio.sleep(1.1)
    assert await alive.admit(parcel(7, 1000)) == "new"


def test_redis_ledger_checks_its_arguments(states: StateFactory) -> None:
    """A state that is not a RedisState, or a bad ttl or lease, fail at construction."""
    from sendcloud_async._errors import InvalidInputError
    from sendcloud_async.redis import RedisEventLedger

    with pytest.raises(InvalidInputError, match="state must be a RedisState, got EventLedger"):
        RedisEventLedger(webhooks.EventLedger())  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="lease must be a positive number of seconds"):
        RedisEventLedger(states(), lease=0)
    with pytest.raises(InvalidInputError, match="ttl must be a positive number of seconds"):
        RedisEventLedger(states(), ttl=-1)


@asynccontextmanager
async def receiver(ledger: webhooks.EventLedger, calls: list[Any]) -> AsyncIterator[str]:
    """An in-process receiver with ``ledger``; yields its URL."""

    async def on_event(event: webhooks.WebhookEvent) -> None:
        """Record the event."""
        calls.append(event)

    app = web.Application()
    app.router.add_post("/hooks", webhooks.aiohttp_handler(SECRET, on_event, ledger=ledger))
    async with serving(app, "/hooks") as url:
        yield url


async def test_unreachable_redis_is_503_and_nothing_is_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With Redis down the receiver answers 503 (Sendcloud retries); the handler is not called."""
    from sendcloud_async.redis import RedisEventLedger, RedisState, StateUnavailableError

    caplog.set_level(logging.WARNING)
    async with RedisState.from_url(f"redis://127.0.0.1:{free_port()}/0") as state:
        ledger = RedisEventLedger(state)
        with pytest.raises(StateUnavailableError, match="Redis is unreachable"):
            await ledger.admit(parcel(7, 1000))
        calls: list[Any] = []
        body = json.dumps(
            {"action": "parcel_status_changed", "timestamp": 1000, "parcel": {"id": 7}}
        ).encode()
        async with (
            receiver(ledger, calls) as url,
            aiohttp.ClientSession() as session,
            session.post(
                url, data=body, headers={"Sendcloud-Signature": webhooks.sign(body, SECRET)}
            ) as resp,
        ):
            assert resp.status == 503
            assert await resp.json() == {"error": "ledger unavailable"}
    assert calls == []
    assert ledger.counts == {}


async def test_size_counts_what_redis_remembers_from_every_process(states: StateFactory) -> None:
    """size() is the deliveries Redis remembers (every process's), never claims, never expired."""
    from sendcloud_async.redis import RedisEventLedger

    first, second = redis_ledger(states), redis_ledger(states)
    assert await first.size() == 0
    for ident in range(1200):  # more keys than one SCAN round trip returns
        assert await first.admit(parcel(ident, 1000)) == "new"
    assert await second.admit(parcel(7, 1000)) == "duplicate"
    assert await second.admit(decode({"action": "odd", "note": 1})) == "new"
    async with second.handling(parcel(5000, 1000)) as verdict:
        assert verdict == "new"
        assert await first.size() == 1201  # a claim is not a remembered delivery
    assert await first.size() == await second.size() == 1202
    brief = RedisEventLedger(states(namespace=f"{states().namespace}-brief"), ttl=0.3)
    for ident in (1, 2, 3):
        assert await brief.admit(parcel(ident, 1000)) == "new"
    assert await brief.size() == 3
    await asyncio.sleep(0.4)
    assert await brief.size() == 0
    assert await first.size() == 1202


async def test_size_counts_only_its_own_namespace(states: StateFactory) -> None:
    """A namespace with glob characters counts its own keys, not those of a look-alike."""
    from sendcloud_async.redis import RedisEventLedger

    base = states().namespace
    globby = RedisEventLedger(states(namespace=f"{base}[*]?"))
    other = RedisEventLedger(states(namespace=f"{base}[x]y"))
    plain = RedisEventLedger(states(namespace=f"{base}-other"))
    assert await globby.admit(parcel(1, 1000)) == "new"
    for ident in (1, 2):
        assert await other.admit(parcel(ident, 1000)) == "new"
    for ident in (1, 2, 3):
        assert await plain.admit(parcel(ident, 1000)) == "new"
    assert [await ledger.size() for ledger in (globby, other, plain)] == [1, 2, 3]


@pytest.mark.parametrize("step", sorted(UNAVAILABLE))
async def test_a_stopped_redis_is_met_alike_by_handling_and_the_receiver(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture, step: str
) -> None:
    """redis-server stopped before the claim, or during the work: handling() and the receiver agree.

    Before the claim: StateUnavailableError, 503, no work. During successful work: no
    error and 200, the same WARNING. During failing work: the work's error (500), the
    same WARNING about the release.
    """
    from sendcloud_async.redis import RedisEventLedger, RedisState

    @asynccontextmanager
    async def ledger() -> AsyncIterator[webhooks.EventLedger]:
        """A ledger over a running redis-server, stopped before the claim for ``claim``."""
        if own_redis.process is None:
            own_redis.start()  # no persistence: an empty Redis again
        async with RedisState.from_url(own_redis.url) as state:
            shared = RedisEventLedger(state)
            if step == "claim":
                own_redis.stop()
            yield shared

    await meet_alike(step, ledger, caplog, during_work=own_redis.stop)


# --------------------------------------------------------------------------- four processes

PARCELS, PER_PARCEL, RECEIVERS, FAIL_EVERY = 50, 20, 4, 7
BASE_MS = 1_764_000_000_000


async def test_four_receiver_processes_share_one_ledger(
    fake: FakeSendcloud,
    redis_server: RedisServer,
    redis_client: aioredis.Redis,
    namespace: str,
    tmp_path: Path,
) -> None:
    """1,000 events for 50 parcels, scattered over 4 receiver processes: the newest wins, once."""
    events = [
        {
            "action": "parcel_status_changed",
            "timestamp": BASE_MS + p * 100_000 + n * 1000,
            "parcel": {"id": p, "status": {"id": n}},
        }
        for p in range(1, PARCELS + 1)
        for n in range(PER_PARCEL)
    ]
    newest = {p: BASE_MS + p * 100_000 + (PER_PARCEL - 1) * 1000 for p in range(1, PARCELS + 1)}
    config = {
        "redis": redis_server.url,
        "namespace": namespace,
        "secret": SECRET,
        "fail_every": FAIL_EVERY,
    }
    logs = [(tmp_path / f"receiver-{n}.log").open("wb") for n in range(RECEIVERS)]
    procs = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.scale._webhook_receiver",
            json.dumps(config),
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )
        for log in logs
    ]
    try:
        urls = []
        for proc in procs:
            assert proc.stdout is not None
            line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().split()
            assert line[:1] == ["ready"], line
            urls.append(f"http://127.0.0.1:{line[1]}/hooks")
        fake.webhook_secret = SECRET
        iid = fake.add_integration(webhook_active=True, webhook_url=urls[0])["id"]
        attempts = await fake.deliver_webhooks(
            iid, events, duplicates=0.3, late=0.1, concurrency=16, seed=4, urls=urls
        )
        outputs = [await asyncio.wait_for(proc.communicate(b"stop\n"), 30) for proc in procs]
    finally:
        for proc in procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        for log in logs:
            log.close()
    counts: list[dict[str, int]] = []
    for n, (proc, (out, _)) in enumerate(zip(procs, outputs, strict=True)):
        assert proc.returncode == 0, (tmp_path / f"receiver-{n}.log").read_text()
        counts.append(json.loads(out.decode().strip().splitlines()[-1]))
    state = {
        int(k): int(v) for k, v in (await redis_client.hgetall(f"{namespace}:test:state")).items()
    }
    handled = [text(k) for k in await redis_client.lrange(f"{namespace}:test:handled", 0, -1)]
    admitted = sum(c.get("new", 0) for c in counts)
    # exactly the newest event per parcel is the state, and each admitted event was handled once
    assert state == newest
    assert len(handled) == len(set(handled)) == admitted
    for p in newest:  # handling order per parcel only moved forward in time
        times = [int(k.split(":")[1]) for k in handled if int(k.split(":")[0]) == p]
        assert times == sorted(times)
    # the load was spread, failures happened and their retries were processed
    assert all(c.get("new", 0) > 0 for c in counts)
    failed = sum(c.get("failed", 0) for c in counts)
    assert failed >= 10
    assert {f"{p}:{t}" for p, t in newest.items() if t // 1000 % FAIL_EVERY == 0} <= set(handled)
    assert sum(sum(c.values()) for c in counts) == len(attempts)
    answered = sum(c.get(v, 0) for c in counts for v in ("new", "duplicate", "stale"))
    assert answered == 1300  # each chain of attempts ended in exactly one 200
    assert len([a for a in attempts if a.attempt == 1]) == 1300
    assert {a.body for a in attempts if a.ok} == {a.body for a in attempts}
