"""``FakeSendcloud.produce``: logs that keep coming, at a rate, until the producer stops."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud, LogProducer
from tests._wait import until


def _content(record: dict[str, Any]) -> tuple[Any, ...]:
    """What a seed decides about a log (not its id or time)."""
    return (
        record["integration_id"],
        record["exception_type"],
        record["exception"],
        record["response_code"],
        record["method"],
        record["full_url"],
    )


async def test_logs_come_at_the_rate_round_robin_and_are_served(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """200 logs/s for ~1 s: about 200 logs, evenly over the integrations, created now,
    in order, and listed by the API like any other log (the spec check is on)."""
    fake.seed(integrations=3, logs_per_integration=2)
    before = datetime.now(UTC)
    began = time.monotonic()
    async with fake.produce(rate=200) as producer:
        assert isinstance(producer, LogProducer)
        await asyncio.sleep(1.0)
    elapsed = time.monotonic() - began
    assert not producer.running
    produced = producer.produced
    assert 0.7 * 200 * elapsed <= produced <= 200 * elapsed + 1, (produced, elapsed)
    counts = producer.by_integration
    assert sum(counts.values()) == produced
    assert sorted(counts) == [1, 2, 3]
    assert max(counts.values()) - min(counts.values()) <= 1
    new = fake.logs[6:]
    assert len(fake.logs) == 6 + produced
    times = [datetime.fromisoformat(r["created_at"]) for r in new]
    assert times == sorted(times)
    assert len(set(times)) == len(times)
    assert before - timedelta(seconds=1) <= times[0]
    assert times[-1] <= datetime.now(UTC)
    listed = [log.id async for log in client.logs.iter(page_size=100)]
    assert listed == [r["id"] for r in fake.logs]
    await asyncio.sleep(0.2)
    assert len(fake.logs) == 6 + produced  # stopped means stopped


async def test_a_watch_from_now_sees_every_produced_log(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """Produced logs are created now: a watch that starts now delivers each of them once."""
    fake.seed(integrations=2, logs_per_integration=50)
    seen: list[int | None] = []
    producer = fake.produce(rate=100, seed=3)
    watch = client.logs.watch(start="now", interval=0.05)
    try:
        async for batch in watch:
            seen += [log.id for log in batch.items]
            if len(seen) >= 40:
                break
    finally:
        await watch.aclose()
        await producer.stop()
    produced_ids = [r["id"] for r in fake.logs[100:]]
    assert seen == produced_ids[: len(seen)]
    assert len(set(seen)) == len(seen)
    assert all(i is not None and i > 100 for i in seen)  # none of the seeded (older) logs


async def _twenty_logs(seed: int) -> list[tuple[Any, ...]]:
    """The first 20 logs a fresh fake produces into integrations 2 and 3 with ``seed``."""
    async with FakeSendcloud() as fake:
        fake.seed(integrations=3, logs_per_integration=0)
        producer = fake.produce(rate=500, integrations=[2, 3], seed=seed)
        await until(lambda: producer.produced >= 20)
        await producer.stop()
        assert {r["integration_id"] for r in fake.logs} == {2, 3}
        return [_content(r) for r in fake.logs[:20]]


async def test_only_the_given_integrations_and_a_seed_repeats_the_contents() -> None:
    """``integrations=`` picks where they go; the same seed gives the same logs."""
    first, again, other = await _twenty_logs(42), await _twenty_logs(42), await _twenty_logs(7)
    assert first == again
    assert first != other
    assert len(set(first)) > 5  # not one log repeated


async def test_keep_drops_the_oldest_logs(fake: FakeSendcloud) -> None:
    """``keep=N``: at most N logs stay, the newest ones."""
    fake.seed(integrations=1, logs_per_integration=30)
    producer = fake.produce(rate=1000, keep=25)
    await until(lambda: producer.produced >= 60)
    await producer.stop()
    assert len(fake.logs) == 25
    assert [r["id"] for r in fake.logs] == list(
        range(30 + producer.produced - 24, 31 + producer.produced)
    )


async def test_closing_the_fake_stops_its_producers_and_stop_is_idempotent() -> None:
    """A producer left running ends with its fake; stopping twice is harmless."""
    async with FakeSendcloud() as fake:
        fake.seed(integrations=1, logs_per_integration=0)
        first = fake.produce(rate=50)
        second = fake.produce(rate=50)
        await first.stop()
        await first.stop()
        assert not first.running
        assert second.running
        assert "stopped" in repr(first)
        assert "running" in repr(second)
    assert not second.running
    count = len(fake.logs)
    await asyncio.sleep(0.1)
    assert len(fake.logs) == count
    await second.stop()


async def test_integrations_that_go_away_are_skipped(fake: FakeSendcloud) -> None:
    """A deleted integration gets no more logs; the others still do."""
    fake.seed(integrations=2, logs_per_integration=0)
    producer = fake.produce(rate=400)
    await asyncio.sleep(0.1)
    del fake.integrations[1]
    mark = len(fake.logs)
    await asyncio.sleep(0.2)
    await producer.stop()
    assert len(fake.logs) > mark
    assert {r["integration_id"] for r in fake.logs[mark + 1 :]} == {2}


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"rate": 0}, ValueError, "rate must be a positive number"),
        ({"rate": -5}, ValueError, "rate must be a positive number"),
        ({"rate": math.nan}, ValueError, "rate must be a positive number"),
        ({"rate": math.inf}, ValueError, "rate must be a positive number"),
        ({"rate": True}, ValueError, "rate must be a positive number"),
        ({"rate": "10"}, ValueError, "rate must be a positive number"),
        ({"rate": 1, "integrations": []}, ValueError, "at least one integration"),
        ({"rate": 1, "integrations": [1, 9]}, ValueError, "no integration with id 9"),
        ({"rate": 1, "keep": 0}, ValueError, "keep must be an int >= 1"),
        ({"rate": 1, "seed": "x"}, TypeError, "seed must be an int"),
    ],
)
async def test_bad_arguments_are_refused_and_nothing_is_produced(
    fake: FakeSendcloud, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Each bad argument raises with its reason before any log is added."""
    fake.seed(integrations=1, logs_per_integration=0)
    with pytest.raises(error, match=message):
        fake.produce(**kwargs)
    await asyncio.sleep(0.05)
    assert fake.logs == []


async def test_a_fake_without_integrations_cannot_produce(fake: FakeSendcloud) -> None:
    """Nothing to spread the logs over: ValueError saying what to do."""
    with pytest.raises(ValueError, match=r"no integrations: seed\(\) or add_integration\(\)"):
        fake.produce(rate=1)
