"""The per-account rate gate: Sendcloud's published limits, kept on the client side.

Sendcloud allows each account 1,000 GET and 100 unsafe (POST, PATCH, PUT,
DELETE) requests a minute, and at most 15 unsafe requests at once; past that it
answers 429. A ``SendcloudClient`` created with ``rate_limit=RateLimits()``
sends every attempt (retries included) through its account's gate:

* **Two lanes per account**, one for safe methods (GET, HEAD, OPTIONS) and one
  for unsafe ones. A lane admits a request while fewer than ``limit`` of its
  requests are in flight or finished less than ``window`` seconds ago. A slot
  is counted from the moment it is taken until ``window`` seconds after its
  response arrived, so however latency varies, no ``window``-long interval on
  the server's clock sees more than ``limit`` requests: the server received
  each request before the client saw its answer. (A token bucket that allows a
  full minute's burst lets up to twice the limit through in one minute; one
  that does not wastes most of the budget.)
* **A concurrency cap** on the unsafe lane (15 in flight).
* **One "blocked until" time per account.** When any request of the account
  gets a 429 with ``Retry-After``, every request of the account waits until
  then instead of each finding out on its own. A block longer than
  ``max_wait`` makes waiting requests fail at once with ``RateLimitError``
  rather than sleep for an hour.
* **Full speed, no spacing.** A lane never spaces requests out: while it has
  a free slot, requests go at once, so walks that together want more than the
  budget run the account at its ceiling. A saturated lane admits ``limit``
  requests per ``window`` plus the time each request holds its slot (its
  latency, and up to ``window / 200`` of rounding): the least a client can wait
  without knowing when, between sending and the answer, the server counted the
  request. At 150 ms a request that is 99.7 % of the ceiling for a one-minute
  window (97.5 % for a 6-second one).
* **FIFO and O(1).** The fast path (budget left, nobody waiting) is a clock read
  and a few integer operations; waiters queue in order and one timer per lane
  wakes the head. Release times are rounded up to ``window / 200`` (0.3 s for
  a minute) and counted per step, so a lane holds at most ~200 numbers however
  busy it is.

This module holds the value type (``RateLimits``), the protocol every backend's
gate follows (``RateGate``), and the in-memory gate. The Redis gate lives in
``sendcloud_async.redis``.
"""

from __future__ import annotations

import asyncio
import bisect
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Final, Protocol

from . import _observe
from ._errors import InvalidInputError, RateLimitError
from ._validate import positive_seconds

__all__ = ["SAFE_METHODS", "GateBlockedError", "MemoryGate", "RateGate", "RateLimits"]

#: Methods counted against the GET budget; every other method is "unsafe".
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
_INF: Final = math.inf
#: Release times are rounded up to ``window / _STEPS``.
_STEPS: Final = 200


def _positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidInputError(f"{name} must be an int of 1 or more, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class RateLimits:
    """How many requests one account may make: Sendcloud's published limits by default.

    At most ``get`` safe (GET) and ``unsafe`` POST/PATCH/PUT/DELETE requests per
    ``window`` seconds, and at most ``unsafe_concurrency`` unsafe requests at
    once. A shorter ``window`` with smaller counts scales the same shape down
    (tests, benchmarks). While a 429's ``Retry-After`` blocks the account, a
    request waits it out if it ends within ``max_wait`` seconds and otherwise
    raises ``RateLimitError`` at once, without being sent.
    """

    get: int = 1000
    unsafe: int = 100
    unsafe_concurrency: int = 15
    window: float = 60.0
    max_wait: float = 60.0

    def __post_init__(self) -> None:
        _positive_int("get", self.get)
        _positive_int("unsafe", self.unsafe)
        _positive_int("unsafe_concurrency", self.unsafe_concurrency)
        object.__setattr__(self, "window", positive_seconds(self.window, "window"))
        object.__setattr__(self, "max_wait", positive_seconds(self.max_wait, "max_wait"))

    def scaled(self, share: float) -> RateLimits:
        """These limits times ``share`` (0 < share <= 1), each count at least 1."""
        return RateLimits(
            get=max(1, int(self.get * share)),
            unsafe=max(1, int(self.unsafe * share)),
            unsafe_concurrency=max(1, int(self.unsafe_concurrency * share)),
            window=self.window,
            max_wait=self.max_wait,
        )


class RateGate(Protocol):
    """What the transport asks of an account's gate, for every attempt it sends.

    ``acquire`` waits until the request may go and returns a lease;
    ``release(lease)`` is called once the attempt is over (answered or failed);
    ``block(seconds)`` after a 429 with ``Retry-After``.
    """

    async def acquire(self, method: str) -> object: ...

    def release(self, lease: object) -> None: ...

    def block(self, seconds: float) -> None: ...


class GateBlockedError(RateLimitError):
    """A request the gate refused to send: its account is blocked for longer than ``max_wait``."""

    def __init__(self, method: str, retry_after: float, max_wait: float) -> None:
        self._max_wait = max_wait
        super().__init__(429, retry_after=retry_after, method=method, reason="Too Many Requests")

    def _message(self) -> str:
        return (
            f"not sent: an earlier 429 of this account asked to wait "
            f"{self.retry_after or 0:.0f} s more, above the rate gate's max_wait of "
            f"{self._max_wait:g} s ({self.method} request). Retry after "
            f"{self.retry_after or 0:.0f} seconds"
        )


class _Lane:
    """One budget of one account: a count per window, optionally a concurrency cap."""

    __slots__ = (
        "_concurrency",
        "_cooling",
        "_counts",
        "_edge",
        "_gate",
        "_limit",
        "_loop",
        "_step",
        "_timer",
        "_timer_at",
        "_times",
        "_waiters",
        "_window",
        "in_flight",
    )

    def __init__(self, gate: MemoryGate, limit: int, concurrency: float, window: float) -> None:
        self._gate = gate
        self._limit = limit
        self._concurrency = concurrency
        self._window = window
        self._step = window / _STEPS
        self.in_flight = 0
        #: Slots released but not yet reusable: ``_counts[i]`` of them free at ``_times[i]``
        #: (ascending; at most ``_STEPS`` entries, so lists: an empty deque costs 760 bytes,
        #: and an idle account's lanes are most of what it holds).
        self._cooling = 0
        self._times: list[float] = []
        self._counts: list[int] = []
        #: Releases up to this time still fall into the last entry of ``_times``.
        self._edge = -_INF
        #: Requests queued for a slot; ``None`` while nobody waits.
        self._waiters: deque[asyncio.Future[None]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def room(self, now: float) -> float:
        """0 if a request may start now, else the seconds until one may (inf: until a release)."""
        blocked = self._gate.blocked_until
        if blocked > now:
            return blocked - now
        times = self._times
        if times and times[0] <= now:
            self._expire(now)
        in_flight = self.in_flight
        if in_flight >= self._concurrency:
            return _INF
        if in_flight + self._cooling < self._limit:
            return 0.0
        return times[0] - now if times else _INF

    def _expire(self, now: float) -> None:
        times, counts = self._times, self._counts
        done = bisect.bisect_right(times, now)
        self._cooling -= sum(counts[:done])
        del times[:done], counts[:done]

    def try_take(self) -> bool:
        """Take a slot now if one is free and nobody is queued before us (the fast path)."""
        if self._waiters:
            return False
        now = time.monotonic()
        if self._gate.blocked_until > now:
            return False
        times = self._times
        if times and times[0] <= now:
            self._expire(now)
        in_flight = self.in_flight
        if in_flight >= self._concurrency or in_flight + self._cooling >= self._limit:
            return False
        self.in_flight = in_flight + 1
        return True

    async def take(self) -> None:
        """Queue for a slot (FIFO)."""
        loop = asyncio.get_running_loop()
        waiters = self._waiters
        if loop is not self._loop:  # first use, or a new event loop: forget the old one's
            self._loop = loop
            waiters = None
            self._timer = None
        if waiters is None:
            waiters = self._waiters = deque()
        waiter = loop.create_future()
        waiters.append(waiter)
        if len(waiters) == 1:
            self._dispatch()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back()  # granted just as the caller was cancelled
            raise

    def release(self) -> None:
        """An attempt is over: its slot cools down for ``window`` seconds."""
        self.in_flight -= 1
        self._cooling += 1
        now = time.monotonic()
        if now <= self._edge:  # same step as the last release: count it there
            self._counts[-1] += 1
        else:
            step, window = self._step, self._window
            free_at = math.ceil((now + window) / step) * step
            self._times.append(free_at)
            self._counts.append(1)
            self._edge = free_at - window
        if self._waiters:
            self._dispatch()

    def _give_back(self) -> None:
        self.in_flight -= 1
        if self._waiters:
            self._dispatch()

    def _dispatch(self) -> None:
        waiters = self._waiters
        now = time.monotonic()
        while waiters:
            waiter = waiters[0]
            if waiter.done():  # cancelled while queued
                waiters.popleft()
                continue
            wait = self.room(now)
            if wait:
                if wait != _INF:
                    self._arm(now + wait)
                return
            waiters.popleft()
            self.in_flight += 1
            waiter.set_result(None)
        self._waiters = None  # nobody waits: the queue goes until the next wait
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _arm(self, at: float) -> None:
        timer = self._timer
        if timer is not None:
            if self._timer_at <= at:
                return
            timer.cancel()
        loop = self._loop
        assert loop is not None
        self._timer_at = at
        self._timer = loop.call_later(max(0.0, at - time.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._dispatch()


class MemoryGate:
    """The in-process gate of one account (see the module docstring).

    Every client of the account in this process shares it (``MemoryState``
    hands out one per account). It is not thread-safe: use it from one event
    loop at a time.
    """

    __slots__ = ("__weakref__", "_safe", "_unsafe", "blocked_until", "limits")

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits
        #: ``time.monotonic()`` before which no request of the account is sent.
        self.blocked_until = 0.0
        self._safe = _Lane(self, limits.get, _INF, limits.window)
        #: Made by the account's first unsafe request (a watch never makes one).
        self._unsafe: _Lane | None = None

    def take_now(self, method: str) -> object | None:
        """``acquire``'s lease if a request with ``method`` may go at once (the fast path,
        without a coroutine), else ``None``: then ``acquire`` waits for it."""
        lane = self._lane(method)
        return lane if lane.try_take() else None

    async def acquire(self, method: str) -> object:
        """Wait until a request with ``method`` may be sent; the lease is its lane."""
        lane = self._lane(method)
        if lane.try_take():
            return lane
        wait = self.blocked_until - time.monotonic()
        if wait > self.limits.max_wait:
            raise GateBlockedError(method, wait, self.limits.max_wait)
        room = lane.room(time.monotonic())
        _observe.current_call().waiting("rate_limit", None if room == _INF else room)
        await lane.take()
        return lane

    def _lane(self, method: str) -> _Lane:
        """The lane of a request with ``method``: the safe one, or the unsafe one."""
        return self._safe if method in SAFE_METHODS else self._unsafe_lane()

    def _unsafe_lane(self) -> _Lane:
        lane = self._unsafe
        if lane is None:
            limits = self.limits
            lane = self._unsafe = _Lane(
                self, limits.unsafe, limits.unsafe_concurrency, limits.window
            )
        return lane

    def release(self, lease: object) -> None:
        """The attempt holding ``lease`` is over (answered or failed)."""
        assert isinstance(lease, _Lane)
        lease.release()

    def block(self, seconds: float) -> None:
        """Hold every request of the account for ``seconds`` (a 429's ``Retry-After``)."""
        until = time.monotonic() + seconds
        if until > self.blocked_until:
            self.blocked_until = until

    @property
    def in_flight(self) -> tuple[int, int]:
        """(safe, unsafe) requests in flight now."""
        unsafe = self._unsafe
        return self._safe.in_flight, 0 if unsafe is None else unsafe.in_flight

    def __repr__(self) -> str:
        return f"<MemoryGate {self.limits!r} in_flight={self.in_flight}>"
