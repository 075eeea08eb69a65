"""Shutdown always finishes: thousands of cancels at random moments, each ends within 2 s.

The long-running pieces (``LogWatcher.run``, the exports) are cancelled at random
moments, from the very first milliseconds on, many of them side by side in one
event loop against a real ``FakeSendcloud``. A cancel that is swallowed (the run
goes on) or that waits for something that never comes shows as a run that has not
ended 2 s after its cancel. The Redis coordinator's share of the cancels is in
``tests/scale/test_shutdown_redis.py`` (it needs a real ``redis-server``).

``sendcloud_async._aio`` holds the two waits these pieces use; its own tests are at
the end, including the Python 3.11 ``asyncio.wait_for`` race they replace.
"""

from __future__ import annotations

import asyncio
import random
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

import sendcloud_async as sc
from sendcloud_async._aio import keep_cancel, sleep_until, stop_task
from sendcloud_async._export import export_logs
from sendcloud_async.testing import FakeSendcloud

#: Every cancelled run must have ended this long after its cancel.
BOUND = 2.0


async def cancel_at_random(
    start: Callable[[int], Awaitable[object]],
    trials: int,
    *,
    side_by_side: int,
    latest: float,
    seed: int,
) -> list[float]:
    """Run ``start(n)`` ``trials`` times, cancel each at a random moment; the stop times.

    A fifth of the cancels come within the first millisecond (before the first
    request is even sent), the rest uniformly up to ``latest`` seconds. Each run
    must end within ``BOUND`` seconds of its cancel; the slowest stops are returned.
    """
    rng = random.Random(seed)
    slots = asyncio.Semaphore(side_by_side)
    stuck: list[int] = []
    stops: list[float] = []

    async def one(n: int) -> None:
        async with slots:
            moment = rng.uniform(0, 0.001) if rng.random() < 0.2 else rng.uniform(0, latest)
            task = asyncio.ensure_future(start(n))
            await asyncio.sleep(moment)
            loop = asyncio.get_running_loop()
            cancelled_at = loop.time()
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=BOUND)
            if not done:
                stuck.append(n)
                task.cancel()  # leave nothing behind for the next test
                await asyncio.wait({task}, timeout=BOUND)
                return
            stops.append(loop.time() - cancelled_at)
            if not task.cancelled():
                # A run may have ended on its own just before the cancel; anything
                # else than a clean end is a failure of its own.
                error = task.exception()
                assert error is None, f"run {n} ended with {error!r}"

    await asyncio.gather(*(one(n) for n in range(trials)))
    assert not stuck, f"{len(stuck)} of {trials} runs ignored their cancel: {stuck[:10]}"
    return sorted(stops)[-3:]


@pytest.mark.alone  # how many polls 40 runs side by side make depends on the machine
async def test_log_watcher_run_always_stops_when_cancelled(fake: FakeSendcloud) -> None:
    """2 good accounts and 1 revoked, short interval and backoff: 3,000 cancels, all end."""
    fake.seed(integrations=2, logs_per_integration=5)
    accounts: dict[str, sc.BasicAuth] = {
        "shop-0": fake.add_account("pk-0", "sk-0"),
        "shop-1": fake.add_account("pk-1", "sk-1"),
        "revoked": sc.BasicAuth("pk-unknown", "sk-unknown"),
    }
    polls = 0

    def count(event: sc.WatchEvent) -> None:
        nonlocal polls
        polls += isinstance(event, sc.AccountPolled | sc.AccountFailed)

    async with sc.AccountPool(base_url=fake.base_url, max_retries=0) as pool:

        async def run(n: int) -> None:
            watcher = sc.LogWatcher(
                pool,
                accounts,
                store=sc.MemoryWatchStore(),
                start="all",
                interval=0.05,
                backoff=0.04,
                max_backoff=0.1,
                concurrency=1 + n % 3,
            )
            await watcher.run(count)

        slowest = await cancel_at_random(run, 3000, side_by_side=40, latest=0.3, seed=20261206)
    assert polls > 3000  # the runs did work before they were cancelled
    assert slowest[-1] < BOUND


async def test_exports_always_stop_when_cancelled(fake: FakeSendcloud, tmp_path: Path) -> None:
    """The account-wide and the per-integration export: 1,200 cancels, all end; resumable."""
    fake.seed(integrations=4, logs_per_integration=300)
    auth = fake.add_account("pk-export", "sk-export")
    async with sc.SendcloudClient(auth=auth, base_url=fake.base_url, max_retries=0) as client:

        async def run(n: int) -> None:
            out = tmp_path / f"export-{n}.jsonl"
            if n % 2:
                await sc.export_logs_per_integration(client, out, page_size=20, concurrency=3)
            else:
                await export_logs(client, out, page_size=20)

        slowest = await cancel_at_random(run, 1200, side_by_side=20, latest=0.25, seed=7)
        assert slowest[-1] < BOUND
        # A cancelled export stays resumable: the last commit is durable and complete.
        every = sorted(r["id"] for r in fake.logs)
        for n in (0, 1, 2, 3):
            out = tmp_path / f"export-{n}.jsonl"
            if n % 2:
                await sc.export_logs_per_integration(
                    client, out, page_size=20, concurrency=3, resume=True
                )
            else:
                await export_logs(client, out, page_size=20, resume=True)
            ids = [
                int(line.split(b'"id":', 1)[1].split(b",", 1)[0])
                for line in out.read_bytes().splitlines()
            ]
            assert sorted(ids) == every


# -- the two waits ------------------------------------------------------------------------


async def test_sleep_until_returns_when_set_or_when_the_delay_passed() -> None:
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await sleep_until(event, 0.05) is False
    assert loop.time() - began >= 0.04
    loop.call_later(0.01, event.set)
    assert await sleep_until(event, 10) is True
    assert await sleep_until(event, None) is True  # already set: at once
    assert len(asyncio.all_tasks()) == 1  # nothing left running behind


async def _wait_for_wait(event: asyncio.Event, delay: float | None) -> bool:
    """The idiom ``sleep_until`` replaced (kept here to show the race test catches it)."""
    try:
        await asyncio.wait_for(event.wait(), delay)
    except TimeoutError:
        return False
    return True


def _cancel_noting(task: asyncio.Future[None], landed: list[bool]) -> None:
    landed.append(task.cancel())


async def swallowed_cancels(wait: Callable[[asyncio.Event, float | None], Awaitable[bool]]) -> int:
    """How many of 1,000 cancels ``wait`` swallows when they land as the event is set.

    The event is set (and, in half of the rounds, the delay ends) in the same loop
    step as the cancel: the waiting task must raise ``CancelledError`` every time.
    """
    swallowed = 0
    loop = asyncio.get_running_loop()
    for n in range(1000):
        event = asyncio.Event()
        delay = 0.002 if n % 2 else 10.0

        async def sleeper(event: asyncio.Event = event, delay: float = delay) -> None:
            await wait(event, delay)

        task = asyncio.ensure_future(sleeper())
        await asyncio.sleep(0)  # it waits now
        landed: list[bool] = []  # task.cancel() said the cancel reached a task still running
        if n % 2:
            loop.call_at(loop.time() + delay, event.set)
            loop.call_at(loop.time() + delay, _cancel_noting, task, landed)
        else:
            event.set()
            landed.append(task.cancel())
        try:
            await task
        except asyncio.CancelledError:
            continue
        # A task that ended on its own before the cancel came (its timer fired first on a
        # busy loop) swallowed nothing.
        await asyncio.sleep(delay if n % 2 else 0)
        swallowed += landed == [True]
    return swallowed


async def test_a_cancel_racing_the_wake_up_is_never_swallowed() -> None:
    assert await swallowed_cancels(sleep_until) == 0


@pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="asyncio.wait_for keeps such cancels from Python 3.12 on"
)
async def test_the_race_test_catches_wait_for_on_python_3_11() -> None:
    assert await swallowed_cancels(_wait_for_wait) > 0


async def test_stop_task_reraises_a_cancel_of_the_caller_after_the_task_ended() -> None:
    ended = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.shield(asyncio.sleep(0.05))
            ended.set()

    inner = asyncio.ensure_future(slow_to_stop())
    await asyncio.sleep(0)
    outer = asyncio.ensure_future(stop_task(inner))
    await asyncio.sleep(0.01)
    outer.cancel()  # the caller is cancelled while it waits for the task to end
    with pytest.raises(asyncio.CancelledError):
        await outer
    assert ended.is_set()
    assert inner.done()


async def test_stop_task_drops_the_tasks_own_error_and_accepts_none() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    task = asyncio.ensure_future(fails())
    await asyncio.sleep(0)
    await stop_task(task)  # its error is retrieved, not raised, not logged as lost
    await stop_task(None)
    assert isinstance(task.exception(), RuntimeError)


async def test_keep_cancel_raises_a_cancel_the_awaited_call_swallowed() -> None:
    async def swallows() -> str:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            return "carried on"
        return "slept"

    plain = asyncio.ensure_future(swallows())
    guarded = asyncio.ensure_future(keep_cancel(swallows()))
    await asyncio.sleep(0.01)
    plain.cancel()
    guarded.cancel()
    assert await plain == "carried on"  # what a swallowing library call does
    with pytest.raises(asyncio.CancelledError):
        await guarded


async def test_keep_cancel_does_not_mistake_a_timeout_for_a_cancel() -> None:
    async def times_out() -> str:
        try:
            async with asyncio.timeout(0.01):
                await asyncio.sleep(10)
        except TimeoutError:
            return "timed out"
        return "slept"

    assert await keep_cancel(times_out()) == "timed out"
    assert await keep_cancel(asyncio.sleep(0, "plain")) == "plain"
