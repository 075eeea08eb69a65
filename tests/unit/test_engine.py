"""``sendcloud_async._engine``: the runner every multi-account and multi-walk job runs on."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import pytest

from sendcloud_async._engine import Backoff, Failed, Recovered, RunEvent, Runner, run_due
from sendcloud_async._errors import (
    APIConnectionError,
    ClientClosedError,
    InvalidInputError,
    SendcloudError,
    StateConfigurationError,
)
from tests._wait import until


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
    assert all(isinstance(e.error, Boom) and e.retrying for e in failed)
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
    """``once``: a failing item is reported as not run again (``retrying=False``, with when
    it would run), and is not run again."""
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
    assert [(e.item, e.retry_in, e.retrying) for e in seen if isinstance(e, Failed)] == [
        ("b", 5.0, False)
    ]


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


async def test_no_run_starts_once_stop_is_set() -> None:
    """``stop`` set as a run ends (in the same turn): no other item starts after it."""
    stop = asyncio.Event()
    started: list[int] = []

    async def run(item: int) -> float:
        started.append(item)
        stop.set()
        return 1.0

    await asyncio.wait_for(run_due(range(3), run, concurrency=1, stop=stop), 1)
    assert started == [0]


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


# -- Runner: items that come and go ------------------------------------------------------------


async def test_an_open_runner_waits_for_items_and_runs_each_added_at_once() -> None:
    """``keep_open``: ``run()`` goes on with no items; an item added runs at once; ``stop()``
    ends it."""
    ran: list[tuple[str, float]] = []
    loop = asyncio.get_running_loop()

    async def run(item: str) -> None:
        ran.append((item, loop.time()))

    runner: Runner[str] = Runner(run, concurrency=2, keep_open=True)
    task = asyncio.create_task(runner.run())
    await asyncio.sleep(0.05)
    assert not task.done()
    added = loop.time()
    runner.add("a")
    await until(lambda: len(ran) == 1, 1.0, every=0.001)
    assert ran[0][0] == "a"
    assert ran[0][1] - added < 0.05
    runner.stop()
    await asyncio.wait_for(task, 1)


async def test_removing_an_item_mid_run_cancels_it_at_once() -> None:
    """``remove`` cancels the item's run in flight and returns when it has ended, within
    50 ms; the other items go on, the removed one never runs again."""
    started: list[str] = []
    ended: dict[str, float] = {}

    async def run(item: str) -> float:
        started.append(item)
        try:
            await asyncio.sleep(10)
        finally:
            ended[item] = time.monotonic()
        return 0.0

    runner: Runner[str] = Runner(run, concurrency=2, keep_open=True)
    task = asyncio.create_task(runner.run())
    runner.add("a")
    runner.add("b")
    await until(lambda: len(started) == 2, 1.0, every=0.001)
    asked = time.monotonic()
    await runner.remove("a")
    assert ended["a"] - asked < 0.05
    assert time.monotonic() - asked < 0.05
    await asyncio.sleep(0.05)
    assert started == ["a", "b"]
    assert "b" not in ended  # still running
    runner.stop()
    await asyncio.wait_for(task, 1)
    assert set(ended) == {"a", "b"}


async def test_discard_cancels_at_once_and_the_runner_awaits_the_end() -> None:
    """``discard`` (from a timer callback, which cannot await) cancels the run now; the run
    ends in the background and ``run()`` awaits it before it returns."""
    ended: list[float] = []

    async def run(item: str) -> float:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.05)  # cleanup that takes a while
            ended.append(time.monotonic())
            raise
        return 0.0

    runner: Runner[str] = Runner(run, concurrency=1, keep_open=True)
    task = asyncio.create_task(runner.run())
    runner.add("a")
    await asyncio.sleep(0.01)
    loop = asyncio.get_running_loop()
    handles: list[asyncio.Task[None] | None] = []
    loop.call_soon(lambda: handles.append(runner.discard("a")))
    await asyncio.sleep(0)
    (run_task,) = handles
    assert run_task is not None
    assert run_task.cancelling()
    runner.stop()
    await asyncio.wait_for(task, 1)
    assert len(ended) == 1  # its cleanup was not cut short by the stop
    assert run_task.done()


async def test_removing_an_item_not_held_does_nothing() -> None:
    """An item never added, or removed already: ``remove``/``discard`` change nothing."""
    ran: list[str] = []

    async def run(item: str) -> float:
        ran.append(item)
        return 0.01

    runner: Runner[str] = Runner(run, concurrency=1, keep_open=True)
    task = asyncio.create_task(runner.run())
    runner.add("a")
    await runner.remove("x")
    assert runner.discard("x") is None
    await until(lambda: len(ran) >= 3, 1.0, every=0.001)
    await runner.remove("a")
    await runner.remove("a")
    count = len(ran)
    await asyncio.sleep(0.05)
    assert len(ran) == count
    runner.stop()
    await asyncio.wait_for(task, 1)


async def test_an_item_added_again_after_remove_starts_fresh() -> None:
    """Removed while backing off: added again, it runs at once (no due time kept) and its
    next failure is the first in a row."""
    events: list[RunEvent[str]] = []
    runs: list[float] = []

    async def run(item: str) -> float:
        runs.append(time.monotonic())
        raise Boom("down")

    runner: Runner[str] = Runner(
        run, concurrency=1, backoff=Backoff(0.02, 10.0), on_event=events.append, keep_open=True
    )
    task = asyncio.create_task(runner.run())
    runner.add("a")
    await until(lambda: len(events) == 3, 1.0, every=0.001)  # the third waits 0.08 s
    assert [e.failures for e in events if isinstance(e, Failed)] == [1, 2, 3]
    await runner.remove("a")
    added = time.monotonic()
    runner.add("a")
    await until(lambda: len(events) == 4, 1.0, every=0.001)
    assert runs[-1] - added < 0.05
    last = events[-1]
    assert isinstance(last, Failed)
    assert (last.failures, last.retry_in) == (1, 0.02)
    runner.stop()
    await asyncio.wait_for(task, 1)
    with pytest.raises(InvalidInputError, match="'a' is given twice"):
        runner.add("a")


async def test_remove_while_committing_lets_the_commit_finish() -> None:
    """A run removed while it writes: the write finishes (as the sinks' writes do through a
    cancel) before ``remove`` returns, and the run ends right after it."""
    committed: list[str] = []
    writing = asyncio.Event()

    async def write(item: str) -> None:
        writing.set()
        await asyncio.sleep(0.05)
        committed.append(item)

    async def run(item: str) -> float:
        pending = asyncio.ensure_future(write(item))
        try:
            await asyncio.shield(pending)
        except asyncio.CancelledError:
            await pending
            raise
        await asyncio.sleep(10)
        return 0.0

    runner: Runner[str] = Runner(run, concurrency=1, keep_open=True)
    task = asyncio.create_task(runner.run())
    runner.add("a")
    await writing.wait()
    asked = time.monotonic()
    await runner.remove("a")
    assert committed == ["a"]
    assert time.monotonic() - asked < 0.1
    runner.stop()
    await asyncio.wait_for(task, 1)


async def test_progress_of_a_run_in_flight_ends_its_failures() -> None:
    """A run that never returns says ``progress``: ``Recovered`` with its failures in a
    row, once; a later failure counts from one again."""
    events: list[RunEvent[str]] = []
    attempts: list[int] = []
    runner: Runner[str]

    async def run(item: str) -> float:
        attempts.append(1)
        if len(attempts) <= 2:
            raise Boom("down")
        runner.progress(item)
        runner.progress(item)  # nothing more to end
        await asyncio.sleep(0.01)
        raise Boom("down again")

    runner = Runner(
        run, concurrency=1, backoff=Backoff(0.01, 1.0), on_event=events.append, keep_open=True
    )
    task = asyncio.create_task(runner.run())
    runner.add("a")
    await until(lambda: len(events) == 4, 1.0, every=0.001)
    runner.stop()
    await asyncio.wait_for(task, 1)
    assert [type(e).__name__ for e in events] == ["Failed", "Failed", "Recovered", "Failed"]
    recovered, again = events[2], events[3]
    assert isinstance(recovered, Recovered)
    assert recovered.failures == 2
    assert isinstance(again, Failed)
    assert again.failures == 1


async def test_a_fatal_error_stops_an_open_runner() -> None:
    """With ``keep_open`` too, an error the backoff does not retry stops ``run()`` (the
    other runs cancelled) and is raised as it is."""
    cancelled: list[str] = []

    async def run(item: str) -> float:
        if item == "bad":
            await asyncio.sleep(0.01)
            raise StateConfigurationError("wrong password")
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(item)
            raise
        return 0.0

    backoff = Backoff(0.01, 1.0, fatal=(StateConfigurationError,))
    runner: Runner[str] = Runner(run, concurrency=2, backoff=backoff, keep_open=True)
    runner.add("good")
    runner.add("bad")
    with pytest.raises(StateConfigurationError, match="wrong password"):
        await asyncio.wait_for(runner.run(), 1)
    assert cancelled == ["good"]


async def test_progress_reports_to_a_coroutine_callback_and_its_error_stops_the_run() -> None:
    """``progress`` is said from plain code: a coroutine ``on_event`` still gets the
    ``Recovered`` (awaited by the runner), and an error it raises stops ``run()``."""
    seen: list[RunEvent[str]] = []
    runner: Runner[str]

    async def report(event: RunEvent[str]) -> None:
        await asyncio.sleep(0)
        seen.append(event)
        if isinstance(event, Recovered):
            raise Boom("the callback broke")

    async def run(item: str) -> float:
        if not seen:
            raise Boom("down")
        runner.progress(item)
        await asyncio.sleep(10)
        return 0.0

    runner = Runner(run, concurrency=1, backoff=Backoff(0.01, 1.0), on_event=report, keep_open=True)
    runner.add("a")
    with pytest.raises(Boom, match="the callback broke"):
        await asyncio.wait_for(runner.run(), 1)
    assert [type(e).__name__ for e in seen] == ["Failed", "Recovered"]


async def test_a_fatal_error_is_raised_even_when_stop_is_asked_at_the_same_time() -> None:
    """A run's fatal error and ``stop()`` in the same turn of the loop: ``run()`` still
    raises the error (the stop does not turn a failure into a clean end)."""
    runner: Runner[str]

    async def run(item: str) -> float:
        await asyncio.sleep(0.01)
        runner.stop()
        raise StateConfigurationError("wrong password")

    backoff = Backoff(0.01, 1.0, fatal=(StateConfigurationError,))
    runner = Runner(run, concurrency=1, backoff=backoff, keep_open=True)
    runner.add("a")
    with pytest.raises(StateConfigurationError, match="wrong password"):
        await asyncio.wait_for(runner.run(), 1)


async def test_a_run_whose_own_timeout_fires_with_the_cancel_is_still_stopped() -> None:
    """The caller's cancel and a run's ``asyncio.timeout`` (aiohttp's timeouts work the
    same way) fall due together: the run is cancelled all the same, not left to turn
    the timeout into a retry and go on forever while ``run_due`` waits for it."""
    loop = asyncio.get_running_loop()
    timeouts: list[asyncio.Timeout] = []
    inside = asyncio.Event()
    give_up = False

    async def run(item: str) -> float:
        while not give_up:  # a poll that retries its timeouts
            deadline = asyncio.timeout(0.5)
            timeouts.append(deadline)
            try:
                async with deadline:
                    inside.set()
                    await asyncio.sleep(10)
            except TimeoutError:
                continue
        return 0.0

    task = asyncio.create_task(run_due(["a"], run, concurrency=1))
    await inside.wait()
    when = timeouts[-1].when()
    assert when is not None
    loop.call_at(when - 0.001, task.cancel)
    # A busy loop: both fall due while it blocks, and run in the same turn.
    loop.call_soon(time.sleep, when - loop.time() + 0.02)
    try:
        done, _ = await asyncio.wait([task], timeout=1.0)
        assert done, "run_due did not end after its cancel"
        assert task.cancelled()
    finally:
        give_up = True
        await asyncio.wait([task], timeout=2.0)


async def test_a_run_ended_by_a_cancel_nobody_here_asked_for_ends_run_due() -> None:
    """A run that awaited a future another party cancelled ends with ``CancelledError``
    although neither the runner nor its caller cancelled anything: ``run_due`` ends (the
    other runs cancelled and awaited) and raises it, instead of waiting for that item
    for ever."""
    loop = asyncio.get_running_loop()
    cancelled: list[str] = []

    async def run(item: str) -> float | None:
        if item == "a":
            shared = loop.create_future()
            loop.call_later(0.01, shared.cancel)  # e.g. a shared fetch its owner gave up
            await shared
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            cancelled.append(item)
            raise
        return None

    task = asyncio.create_task(run_due(["a", "b"], run, concurrency=2))
    done, _ = await asyncio.wait([task], timeout=1.0)
    if not done:
        task.cancel()
        await asyncio.wait([task], timeout=1.0)
    assert done, "run_due waited for ever for a run that had ended"
    assert task.cancelled()
    assert cancelled == ["b"]


# -- Runner: the workers ------------------------------------------------------------------------


async def test_many_items_on_few_workers_keep_due_order() -> None:
    """Twenty items on two workers: the runs start in the order added, the later runs in
    the order they fall due (not the order their first runs ended), and no more than two
    tasks ever run them."""
    loop = asyncio.get_running_loop()
    starts: list[tuple[int, int]] = []
    workers: set[asyncio.Task[object]] = set()
    runs: dict[int, int] = {}

    async def run(item: int) -> float | None:
        task = asyncio.current_task()
        assert task is not None
        workers.add(task)
        runs[item] = runs.get(item, 0) + 1
        starts.append((runs[item], item))
        await asyncio.sleep(0)
        if runs[item] > 1:
            return None
        # Due again at a fixed instant, the later items first, whenever their runs end.
        return max(0.0, began + 0.3 + 0.005 * (19 - item) - loop.time())

    began = loop.time()
    await asyncio.wait_for(run_due(range(20), run, concurrency=2), 3)
    assert [item for n, item in starts if n == 1] == list(range(20))
    assert [item for n, item in starts if n == 2] == list(reversed(range(20)))
    assert len(workers) == 2
    assert loop.time() - began < 1.0


async def test_an_item_added_waits_behind_the_items_due_before_it() -> None:
    """One worker busy: items due again and an item added later run in due order."""
    order: list[str] = []
    runner: Runner[str]
    release = asyncio.Event()

    async def run(item: str) -> float | None:
        order.append(item)
        if item == "busy":
            await release.wait()
            return None
        return 0.001 if item != "late" and order.count(item) == 1 else None

    runner = Runner(run, concurrency=1)
    for item in ("x", "y", "busy"):
        runner.add(item)
    task = asyncio.create_task(runner.run())
    await until(lambda: "busy" in order, 1.0, every=0.001)
    await asyncio.sleep(0.01)  # x and y fall due again while the worker is busy
    runner.add("late")
    release.set()
    await asyncio.wait_for(task, 1)
    assert order == ["x", "y", "busy", "x", "y", "late"]


@pytest.mark.parametrize("swallow", [False, True])
async def test_a_discard_whose_cancel_lands_after_the_run_ended_spares_the_next_run(
    swallow: bool,
) -> None:
    """A run that discards its own item and returns before its cancel lands (or catches
    it and returns): the worker takes that cancel back, and the next item's run, on the
    same worker, is not cancelled, and its own timeouts still work."""
    ended: list[str] = []
    runner: Runner[str]

    async def run(item: str) -> float:
        if item == "a":
            runner.discard("a")
            if swallow:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(10)
            return 0.0
        task = asyncio.current_task()
        assert task is not None
        assert task.cancelling() == 0
        await asyncio.sleep(0.01)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.005):
                await asyncio.sleep(1)
        ended.append(item)
        return 0.0 if len(ended) < 3 else 10.0

    runner = Runner(run, concurrency=1, keep_open=True)
    runner.add("a")
    runner.add("b")
    task = asyncio.create_task(runner.run())
    await until(lambda: len(ended) == 3, 1.0, every=0.001)
    assert not task.done()
    runner.stop()
    await asyncio.wait_for(task, 1)
    assert ended == ["b", "b", "b"]


async def test_a_run_that_gives_its_item_up_on_a_foreign_cancel_spares_the_next_run() -> None:
    """A run ended by a cancel of another party that discards its own item before it
    raises that ``CancelledError``: the runner's cancel, not landed yet, is taken back by
    the worker and does not cancel the next item's run on the same worker."""
    ran: list[str] = []
    cancelled: list[str] = []
    runner: Runner[str]

    async def run(item: str) -> float:
        if item == "a":
            lost = asyncio.get_running_loop().create_future()
            asyncio.get_running_loop().call_later(0.005, lost.cancel)
            try:
                await lost
            except asyncio.CancelledError:
                runner.discard("a")  # gives the item up, then ends as it was told
                raise
        try:
            await asyncio.sleep(0.01)
        except asyncio.CancelledError:
            cancelled.append(item)
            raise
        ran.append(item)
        return 10.0

    runner = Runner(run, concurrency=1, keep_open=True)
    runner.add("a")
    runner.add("b")
    task = asyncio.create_task(runner.run())
    await until(lambda: bool(ran or cancelled) or task.done(), 1.0, every=0.001)
    assert not task.done()
    runner.stop()
    await asyncio.wait_for(task, 1)
    assert (ran, cancelled) == (["b"], [])


async def test_a_caller_cancel_during_a_discard_is_not_swallowed() -> None:
    """``run()`` cancelled while a removed run cleans up: the cleanup finishes, the worker
    takes back only the runner's own cancel and goes on with no other item, and
    ``run()`` ends with ``CancelledError``; the caller of ``remove`` cancelled meanwhile
    gets its ``CancelledError`` once the run has ended."""
    started: list[str] = []
    cleaned: list[str] = []

    async def run(item: str) -> float:
        started.append(item)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.03)  # cleanup that takes a while
            cleaned.append(item)
            raise
        return 0.0

    runner: Runner[str] = Runner(run, concurrency=1, keep_open=True)
    runner.add("a")
    runner.add("b")
    task = asyncio.create_task(runner.run())
    await until(lambda: started == ["a"], 1.0, every=0.001)
    remover = asyncio.create_task(runner.remove("a"))
    await asyncio.sleep(0.005)
    remover.cancel()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)
    assert remover.done()
    assert remover.cancelled()
    assert cleaned == ["a"]
    assert started == ["a"]


async def test_a_cancel_of_a_worker_by_whoever_holds_it_stops_the_run() -> None:
    """The task ``discard`` returns cancelled once more by its holder: that cancel is
    not taken back with the runner's own, and ``run()`` stops with ``CancelledError``."""
    started: list[str] = []

    async def run(item: str) -> float:
        started.append(item)
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(0.01)
            raise
        return 0.0

    runner: Runner[str] = Runner(run, concurrency=1, keep_open=True)
    runner.add("a")
    runner.add("b")
    task = asyncio.create_task(runner.run())
    await until(lambda: started == ["a"], 1.0, every=0.001)
    worker = runner.discard("a")
    assert worker is not None
    worker.cancel()
    done, _ = await asyncio.wait([task], timeout=1.0)
    assert done, "run() went on after its worker was cancelled"
    assert task.cancelled()
    assert started == ["a"]
