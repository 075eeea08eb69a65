"""``sendcloud_async._engine``: the runner every multi-account and multi-walk job runs on."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from sendcloud_async._engine import Backoff, Failed, Recovered, RunEvent, run_due
from sendcloud_async._errors import (
    APIConnectionError,
    ClientClosedError,
    InvalidInputError,
    SendcloudError,
    StateConfigurationError,
)


class Boom(Exception):
    """A failure of one item."""


# -- Backoff: a pure function -----------------------------------------------------------------


def test_backoff_doubles_up_to_the_ceiling() -> None:
    """base, doubling per failure in a row, never above the ceiling."""
    policy = Backoff(1.0, 10.0)
    assert [policy.wait(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert policy.wait(10_000) == 10.0  # no overflow however long it failed


def test_backoff_decides_which_errors_are_the_items() -> None:
    """``retry`` errors wait; ``fatal`` ones and anything else stop the run."""
    policy = Backoff(
        0.5, 8.0, retry=(SendcloudError,), fatal=(ClientClosedError, StateConfigurationError)
    )
    assert policy.decide(APIConnectionError("refused"), 3) == 2.0
    assert policy.decide(ClientClosedError("closed"), 1) is None
    assert policy.decide(StateConfigurationError("bad password"), 1) is None
    assert policy.decide(ValueError("a bug"), 1) is None


# -- run_due ------------------------------------------------------------------------------------


async def test_every_item_runs_once_in_order_with_once() -> None:
    """``once``: each item one time, in the order given; what a run returns is ignored."""
    ran: list[str] = []

    async def run(item: str) -> float:
        ran.append(item)
        return 0.0

    await asyncio.wait_for(run_due(["a", "b", "c"], run, concurrency=1, once=True), 2)
    assert ran == ["a", "b", "c"]


async def test_an_item_runs_again_when_due_until_it_is_done() -> None:
    """A run returns the seconds until the next one; ``None`` ends the item."""
    times: dict[str, list[float]] = {"fast": [], "slow": []}
    loop = asyncio.get_running_loop()

    async def run(item: str) -> float | None:
        times[item].append(loop.time())
        if len(times[item]) == 3:
            return None
        return 0.02 if item == "fast" else 0.1

    started = loop.time()
    await asyncio.wait_for(run_due(["slow", "fast"], run, concurrency=2), 3)
    assert len(times["fast"]) == len(times["slow"]) == 3
    gaps = [b - a for a, b in zip(times["slow"], times["slow"][1:], strict=False)]
    assert all(gap >= 0.095 for gap in gaps)
    assert times["fast"][-1] < times["slow"][1]  # the fast one did not wait for the slow one
    assert loop.time() - started < 1.0


@pytest.mark.parametrize("concurrency", [1, 3, 7])
async def test_no_more_than_concurrency_run_at_once(concurrency: int) -> None:
    """At most ``concurrency`` runs are in flight, and the bound is reached."""
    in_flight = peak = 0
    rng = random.Random(concurrency)

    async def run(item: int) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(rng.uniform(0.001, 0.01))
        in_flight -= 1

    await asyncio.wait_for(run_due(range(20), run, concurrency=concurrency), 5)
    assert peak == concurrency
    assert in_flight == 0


async def test_a_failing_item_backs_off_while_the_others_go_on() -> None:
    """Failures report ``Failed`` with the backoff sequence; the others are not held up;
    the first success after failures reports ``Recovered``."""
    seen: list[RunEvent[str]] = []
    runs = {"good": 0, "bad": 0}

    async def run(item: str) -> float | None:
        runs[item] += 1
        if item == "bad":
            if runs["bad"] <= 4:
                raise Boom(f"failure {runs['bad']}")
            return None
        return None if runs["good"] == 10 else 0.001

    await asyncio.wait_for(
        run_due(
            ["bad", "good"],
            run,
            concurrency=1,
            backoff=Backoff(0.01, 0.03),
            on_event=seen.append,
        ),
        3,
    )
    failed = [e for e in seen if isinstance(e, Failed)]
    assert [(e.item, e.failures, e.retry_in) for e in failed] == [
        ("bad", 1, 0.01),
        ("bad", 2, 0.02),
        ("bad", 3, 0.03),
        ("bad", 4, 0.03),
    ]
    assert all(isinstance(e.error, Boom) for e in failed)
    assert seen[-1] == Recovered("bad", 4)
    assert runs == {"good": 10, "bad": 5}


async def test_failures_kept_by_the_caller_carry_over() -> None:
    """A ``failures`` mapping carries the count over to the next run_due (and is cleared
    by a success)."""
    kept: dict[str, int] = {}
    seen: list[RunEvent[str]] = []

    async def fail(item: str) -> None:
        raise Boom(item)

    policy = Backoff(1.0, 60.0)
    for _ in range(3):
        await run_due(
            ["a"],
            fail,
            concurrency=1,
            backoff=policy,
            once=True,
            failures=kept,
            on_event=seen.append,
        )
    assert [e.retry_in for e in seen if isinstance(e, Failed)] == [1.0, 2.0, 4.0]

    async def work(item: str) -> None:
        return None

    await run_due(["a"], work, concurrency=1, failures=kept, on_event=seen.append)
    assert kept == {}
    assert seen[-1] == Recovered("a", 3)


async def test_once_reports_a_failure_without_retrying_it() -> None:
    """``once``: a failing item is reported (with when it would run again), not run again."""
    seen: list[RunEvent[str]] = []
    runs: list[str] = []

    async def run(item: str) -> float:
        runs.append(item)
        if item == "b":
            raise Boom("b")
        return 0.0

    await asyncio.wait_for(
        run_due(
            ["a", "b", "c"],
            run,
            concurrency=2,
            backoff=Backoff(5.0, 5.0),
            once=True,
            on_event=seen.append,
        ),
        2,
    )
    assert sorted(runs) == ["a", "b", "c"]
    assert [(e.item, e.retry_in) for e in seen if isinstance(e, Failed)] == [("b", 5.0)]


@pytest.mark.parametrize("backoff", [None, Backoff(0.01, 0.01, retry=(Boom,))])
async def test_an_error_the_backoff_does_not_retry_stops_the_run_unwrapped(
    backoff: Backoff | None,
) -> None:
    """Not the item's error (or no backoff at all): the others are cancelled and awaited,
    and the error is raised as it is (not in an ExceptionGroup)."""
    ended: list[str] = []

    async def run(item: str) -> None:
        try:
            if item == "bad":
                await asyncio.sleep(0.02)
                raise KeyError("not an item's failure")
            await asyncio.sleep(10)
        finally:
            ended.append(item)

    with pytest.raises(KeyError, match="not an item's failure"):
        await asyncio.wait_for(
            run_due(["slow-1", "bad", "slow-2"], run, concurrency=3, backoff=backoff), 2
        )
    assert sorted(ended) == ["bad", "slow-1", "slow-2"]


async def test_an_error_of_the_event_callback_stops_the_run() -> None:
    """``on_event`` raising stops the run like a fatal error; async callbacks are awaited."""
    reported: list[str] = []

    async def on_event(event: RunEvent[str]) -> None:
        await asyncio.sleep(0)
        reported.append(event.item)
        raise RuntimeError("the handler broke")

    async def fail(item: str) -> None:
        raise Boom(item)

    with pytest.raises(RuntimeError, match="the handler broke"):
        await asyncio.wait_for(
            run_due(["a"], fail, concurrency=1, backoff=Backoff(1.0, 1.0), on_event=on_event), 2
        )
    assert reported == ["a"]


async def test_stop_cancels_the_runs_in_flight_and_returns() -> None:
    """``stop`` set: the runs in flight are cancelled and awaited; ``run_due`` returns."""
    stop = asyncio.Event()
    cancelled: list[int] = []

    async def run(item: int) -> float:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(item)
            raise
        return 1.0

    task = asyncio.create_task(run_due(range(5), run, concurrency=3, stop=stop))
    await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 1)
    assert sorted(cancelled) == [0, 1, 2]


async def _cancelled_at_random(rng: random.Random) -> set[int]:
    """One run_due cancelled at a random moment; the items still running after it ended."""
    live: set[int] = set()

    async def run(item: int) -> float:
        live.add(item)
        try:
            await asyncio.sleep(rng.uniform(0, 0.004))
            # A commit that finishes even through a cancel, as the sinks' writes do.
            write = asyncio.ensure_future(asyncio.sleep(0.002))
            try:
                await asyncio.shield(write)
            except asyncio.CancelledError:
                await write
                raise
        finally:
            live.discard(item)
        return rng.uniform(0, 0.004)

    task = asyncio.create_task(
        run_due(range(6), run, concurrency=rng.randint(1, 4), backoff=Backoff(0.001, 0.002))
    )
    await asyncio.sleep(rng.uniform(0, 0.02))
    task.cancel()
    began = time.monotonic()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert time.monotonic() - began < 0.5
    return live


async def test_a_cancel_at_any_moment_ends_the_run_within_a_bound() -> None:
    """Cancelled at random moments (while idle, while runs are in flight, while a run
    finishes a write it must not leave half done), ``run_due`` always ends promptly
    with ``CancelledError`` and leaves no run behind."""
    rng = random.Random(7)
    for _ in range(40):
        assert await _cancelled_at_random(rng) == set()


async def test_bad_arguments_are_refused_before_anything_runs() -> None:
    """A concurrency below 1 (or not an int) and an item given twice: ``InvalidInputError``."""
    ran: list[str] = []

    async def run(item: str) -> None:
        ran.append(item)

    for bad in (0, -1, True, 1.5):
        with pytest.raises(InvalidInputError, match="concurrency must be an int of 1 or more"):
            await run_due(["a"], run, concurrency=bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="'a' is given twice"):
        await run_due(["a", "b", "a"], run, concurrency=2)
    assert ran == []


async def test_no_items_returns_at_once() -> None:
    """Nothing to run: ``run_due`` returns without waiting."""

    async def run(item: str) -> None:
        raise AssertionError("never run")

    await asyncio.wait_for(run_due([], run, concurrency=4), 0.5)
