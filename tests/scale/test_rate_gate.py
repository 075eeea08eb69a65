"""The in-memory rate gate, without a server: budgets, release-based windows, FIFO, blocks."""

from __future__ import annotations

import asyncio
import time

import pytest

import sendcloud_async as sc
from sendcloud_async._ratelimit import _STEPS, GateBlockedError, MemoryGate
from sendcloud_async.testing import FakeSendcloud


async def _pending(task: asyncio.Task[object], seconds: float = 0.03) -> bool:
    await asyncio.sleep(seconds)
    return not task.done()


def test_rate_limits_defaults_are_sendclouds_published_limits() -> None:
    """1,000 GET and 100 unsafe requests a minute, 15 unsafe at once."""
    limits = sc.RateLimits()
    assert (limits.get, limits.unsafe, limits.unsafe_concurrency, limits.window) == (
        1000,
        100,
        15,
        60.0,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"get": 0},
        {"unsafe": -1},
        {"unsafe_concurrency": 1.5},
        {"get": True},
        {"window": 0},
        {"window": float("inf")},
        {"max_wait": -1},
    ],
)
def test_rate_limits_reject_nonsense(kwargs: dict[str, object]) -> None:
    """Counts are ints of 1 or more, seconds positive and finite: InvalidInputError otherwise."""
    with pytest.raises(sc.InvalidInputError):
        sc.RateLimits(**kwargs)  # type: ignore[arg-type]


def test_rate_limits_scaled_keeps_at_least_one() -> None:
    """``scaled(share)`` shrinks every count, never below 1."""
    small = sc.RateLimits().scaled(0.25)
    assert (small.get, small.unsafe, small.unsafe_concurrency) == (250, 25, 3)
    assert sc.RateLimits(unsafe_concurrency=1).scaled(0.1).unsafe_concurrency == 1


async def test_fast_path_admits_up_to_the_limit_then_queues() -> None:
    """``get`` GETs go at once; the next waits until a slot has cooled down."""
    gate = MemoryGate(sc.RateLimits(get=3, window=0.2))
    leases = [await gate.acquire("GET") for _ in range(3)]
    assert gate.in_flight == (3, 0)
    waiting = asyncio.create_task(gate.acquire("GET"))
    assert await _pending(waiting)  # all three in flight: no slot until one is released
    released = time.monotonic()
    gate.release(leases[0])
    await waiting
    assert time.monotonic() - released >= 0.2 - 0.01


async def test_a_slot_cools_down_from_its_release_not_its_start() -> None:
    """A long request keeps its slot; the window starts when its answer arrived."""
    gate = MemoryGate(sc.RateLimits(get=1, window=0.15))
    lease = await gate.acquire("GET")
    await asyncio.sleep(0.2)  # longer than the window, still in flight
    waiting = asyncio.create_task(gate.acquire("GET"))
    assert await _pending(waiting)
    released = time.monotonic()
    gate.release(lease)
    gate.release(await waiting)
    assert time.monotonic() - released >= 0.15 - 0.01


async def test_safe_and_unsafe_budgets_are_separate() -> None:
    """An exhausted GET budget does not hold a PATCH, and the other way round."""
    gate = MemoryGate(sc.RateLimits(get=1, unsafe=1, window=10))
    await gate.acquire("GET")
    await asyncio.wait_for(gate.acquire("PATCH"), 0.1)
    for method in ("GET", "HEAD", "POST", "DELETE"):
        task = asyncio.create_task(gate.acquire(method))
        assert await _pending(task, 0.01)
        task.cancel()


async def test_unsafe_concurrency_cap_frees_on_release() -> None:
    """The 3rd concurrent unsafe request waits for a release, not for the window."""
    gate = MemoryGate(sc.RateLimits(unsafe=100, unsafe_concurrency=2, window=10))
    first = await gate.acquire("POST")
    await gate.acquire("DELETE")
    third = asyncio.create_task(gate.acquire("PUT"))
    assert await _pending(third)
    gate.release(first)
    await asyncio.wait_for(third, 0.1)
    assert gate.in_flight == (0, 2)


async def test_waiters_are_served_first_in_first_out() -> None:
    """Queued requests get slots in the order they asked."""
    gate = MemoryGate(sc.RateLimits(unsafe=100, unsafe_concurrency=1, window=10))
    lease = await gate.acquire("POST")
    order: list[int] = []

    async def one(n: int) -> None:
        got = await gate.acquire("POST")
        order.append(n)
        await asyncio.sleep(0)
        gate.release(got)

    tasks = [asyncio.create_task(one(n)) for n in range(5)]
    await asyncio.sleep(0.01)
    gate.release(lease)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2, 3, 4]


async def test_a_block_holds_every_request_of_the_account() -> None:
    """``block(s)`` (a 429's Retry-After) holds GETs and unsafe requests alike."""
    gate = MemoryGate(sc.RateLimits())
    gate.block(0.15)
    started = time.monotonic()
    leases = await asyncio.gather(gate.acquire("GET"), gate.acquire("PATCH"))
    assert time.monotonic() - started >= 0.15 - 0.01
    for lease in leases:
        gate.release(lease)
    gate.block(0.01)
    gate.block(0.0)  # a shorter block never shortens a longer one
    assert gate.blocked_until > time.monotonic()


async def test_a_block_longer_than_max_wait_fails_at_once() -> None:
    """Blocked beyond ``max_wait``: RateLimitError with retry_after, nothing queued."""
    gate = MemoryGate(sc.RateLimits(max_wait=1.0))
    gate.block(30)
    started = time.monotonic()
    with pytest.raises(sc.RateLimitError) as caught:
        await gate.acquire("GET")
    assert time.monotonic() - started < 0.1
    assert isinstance(caught.value, GateBlockedError)
    assert caught.value.retry_after is not None
    assert 29 < caught.value.retry_after <= 30
    assert caught.value.status == 429
    assert "not sent" in str(caught.value)
    assert gate.in_flight == (0, 0)


async def test_cancelled_waiters_leave_nothing_behind() -> None:
    """Cancelling queued requests (or one just granted) leaks no slot."""
    gate = MemoryGate(sc.RateLimits(unsafe=100, unsafe_concurrency=1, window=10))
    lease = await gate.acquire("POST")
    cancelled = asyncio.create_task(gate.acquire("POST"))
    granted_then_cancelled = asyncio.create_task(gate.acquire("POST"))
    last = asyncio.create_task(gate.acquire("POST"))
    await asyncio.sleep(0.01)
    cancelled.cancel()
    await asyncio.sleep(0)
    gate.release(lease)  # grants the slot to granted_then_cancelled ...
    granted_then_cancelled.cancel()  # ... which is cancelled before it runs: it gives it back
    with pytest.raises(asyncio.CancelledError):
        await granted_then_cancelled
    gate.release(await asyncio.wait_for(last, 0.1))
    assert gate.in_flight == (0, 0)


async def test_cooling_slots_are_counted_in_bounded_memory() -> None:
    """Releases are grouped into ``window / 200`` steps: a busy lane keeps ~200 numbers."""
    gate = MemoryGate(sc.RateLimits(get=100_000, window=60))
    for _ in range(5000):
        gate.release(await gate.acquire("GET"))
    lane = gate._safe
    assert lane._cooling == 5000
    assert len(lane._times) <= _STEPS + 1


async def test_an_idle_gate_holds_no_queue_and_no_unsafe_lane() -> None:
    """What an account that only GETs keeps: one lane, no queue once nobody waits.

    The unsafe lane is made by the first unsafe request; the queue by the first wait,
    and it goes when the last waiter is served. Budgets are unchanged by either.
    """
    gate = MemoryGate(sc.RateLimits(get=1, unsafe=1, window=0.05))
    gate.release(await gate.acquire("GET"))
    assert gate._unsafe is None
    assert gate._safe._waiters is None
    assert gate.in_flight == (0, 0)
    started = time.monotonic()
    gate.release(await gate.acquire("GET"))  # waits for the first slot to cool down
    assert time.monotonic() - started >= 0.04
    assert gate._safe._waiters is None
    lease = await gate.acquire("POST")
    assert gate.in_flight == (0, 1)
    assert gate._unsafe is not None
    gate.release(lease)
    assert gate.in_flight == (0, 0)
    waiting = asyncio.create_task(gate.acquire("POST"))  # the unsafe budget is spent
    assert await _pending(waiting, 0.01)
    gate.release(await asyncio.wait_for(waiting, 1))
    assert gate._unsafe._waiters is None


async def test_gate_outlives_an_event_loop() -> None:
    """A gate used from a new event loop starts with a clean queue."""

    def in_new_loop() -> None:
        async def main() -> None:
            gate.release(await gate.acquire("GET"))
            waiting = asyncio.create_task(gate.acquire("GET"))
            await asyncio.sleep(0.01)
            waiting.cancel()

        asyncio.run(main())

    gate = MemoryGate(sc.RateLimits(get=1, window=0.05))
    await asyncio.to_thread(in_new_loop)  # leaves a cancelled waiter of a dead loop behind
    await asyncio.sleep(0.06)  # the slot it used has cooled down
    began = time.monotonic()
    lease = await asyncio.wait_for(gate.acquire("GET"), 0.5)
    assert time.monotonic() - began < 0.04  # nothing of the dead loop held it up
    assert gate.in_flight == (1, 0)
    gate.release(lease)
    assert gate.in_flight == (0, 0)


# -- at the ceiling ---------------------------------------------------------------------------


async def test_a_free_budget_goes_at_once_without_spacing() -> None:
    """``limit`` requests asked for together are all admitted within milliseconds."""
    gate = MemoryGate(sc.RateLimits(get=50, window=60))
    started = time.monotonic()
    leases = await asyncio.wait_for(asyncio.gather(*(gate.acquire("GET") for _ in range(50))), 1)
    assert time.monotonic() - started < 0.05
    assert gate.in_flight == (50, 0)
    for lease in leases:
        gate.release(lease)


async def test_a_saturated_lane_runs_at_limit_per_window_plus_hold_time() -> None:
    """More demand than budget: ``limit`` per ``window + hold``, never more in any window."""
    window, limit, hold = 0.2, 8, 0.02
    gate = MemoryGate(sc.RateLimits(get=limit, window=window))
    granted: list[float] = []
    deadline = time.monotonic() + 1.5

    async def walk() -> None:
        while time.monotonic() < deadline:
            lease = await gate.acquire("GET")
            granted.append(time.monotonic())
            await asyncio.sleep(hold)
            gate.release(lease)

    await asyncio.gather(*(walk() for _ in range(limit * 2)))
    # The strict sliding window a server keeps: never more than ``limit`` in ``window``.
    for i, at in enumerate(granted):
        assert sum(1 for other in granted[i:] if other - at < window) <= limit
    # And no slack beyond the hold time (and the window / 200 rounding): the ceiling.
    cycles = (granted[-1] - granted[0]) / (window + hold + window / _STEPS)
    assert len(granted) >= limit * int(cycles) * 0.97


@pytest.mark.alone  # a share of wall-clock time: other tests' load would take it
async def test_sixteen_walks_at_the_ceiling_of_a_strict_server() -> None:
    """16 integration walks, 50 ms a page, 20 GET per 0.5 s: no 429, >= 85 % of the ceiling.

    The ceiling is the gate's own rule: a slot is free again ``window`` after its
    response, so each window of ``limit`` requests costs ``window + latency``. The
    connections are opened before the measured part (and their budget left to
    expire), so a cold start's connects are not counted against the walks.
    """
    window, limit, latency = 0.5, 20, 0.05
    limits = sc.RateLimits(get=limit, window=window)
    async with FakeSendcloud(validate_spec=False) as fake:
        fake.seed(integrations=16, logs_per_integration=40, seed=1)
        async with sc.SendcloudClient(
            auth=fake.basic_auth, base_url=fake.base_url, rate_limit=limits, max_retries=0
        ) as client:
            integrations = await client.integrations.list()
            await asyncio.gather(*(client.integrations.get(i.id) for i in integrations))
            await asyncio.sleep(window * 1.2)  # the warm-up's budget expires
            fake.enforce_rate_limits(limits, latency=latency)
            answered: list[float] = []
            await client.integrations.list()
            answered.append(time.monotonic())

            async def walk(integration_id: int) -> None:
                async for _ in client.logs.pages(integration_id=integration_id, page_size=10):
                    answered.append(time.monotonic())

            await asyncio.gather(*(walk(i.id) for i in integrations))
        assert fake.throttled == 0
    requests = len(answered)
    assert requests == 1 + 16 * 4
    # The budget forces the last request to wait (requests - 1) // limit windows (each
    # ``window`` after a response) after the first.
    forced = (requests - 1) // limit * (window + latency)
    took = max(answered) - min(answered)
    assert forced / took >= 0.85, (forced, took)
