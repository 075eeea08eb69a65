"""One account's rate gate in Redis: the gate of ``RedisState.gate``.

Every worker that uses the same Redis and namespace shares, per account, one rate
budget: the algorithm of ``_ratelimit``, run atomically by Lua scripts on Redis's
clock (``GATE_SCRIPTS``, which ``RedisState`` registers and sends in its batched
pipelines). Safe methods (GET) and the others each have a lane (requests in
flight, and finished ones cooling down for a window); a 429's ``Retry-After``
blocks the account. While Redis is unreachable the gate falls back to a per-process
``MemoryGate`` (``local_share`` of the limits), unless the state raises instead.
"""

from __future__ import annotations

import asyncio
import math
import random
from typing import TYPE_CHECKING, Any, Final, Protocol

from .._errors import StateUnavailableError
from .._ratelimit import SAFE_METHODS, GateBlockedError, MemoryGate, RateLimits
from ._conn import NOW_LUA

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["GATE_SCRIPTS", "GateHost", "RedisGate"]

#: The longest pause between two asks for a slot held by requests in flight.
_MAX_POLL: Final = 0.25


#: KEYS: flight, cool, blocked. ARGV: limit, concurrency, window_ms, lease_ms, lease_id, poll_ms.
#: Returns {1, 0} when granted, {0, ms} to wait for budget, {-1, ms} to wait out a block,
#: {2, poll_ms} when the concurrency cap holds it (a release may come any time: poll).
_ACQUIRE: Final = (
    NOW_LUA
    + """
local blocked = tonumber(redis.call('GET', KEYS[3]) or '0')
if blocked > now then return {-1, blocked - now} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local flying = redis.call('ZCARD', KEYS[1])
local cooling = redis.call('ZCARD', KEYS[2])
if flying + cooling >= tonumber(ARGV[1]) then
  -- budget spent: a slot frees when the first cooling one does, or a window after a release
  local wait = tonumber(ARGV[3])
  if cooling > 0 then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    wait = math.min(wait, tonumber(first[2]) - now)
  end
  return {0, math.max(1, wait)}
end
if flying >= tonumber(ARGV[2]) then return {2, tonumber(ARGV[6])} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[5])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) + tonumber(ARGV[3]))
return {1, 0}
"""
)

#: KEYS: flight, cool. ARGV: window_ms, lease_id, only_if_in_flight. The slot cools down
#: from now (a lease that already expired still cools down, unless only_if_in_flight).
_RELEASE: Final = (
    NOW_LUA
    + """
local was_in_flight = redis.call('ZREM', KEYS[1], ARGV[2])
if was_in_flight == 0 and ARGV[3] == '1' then return 0 end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[1]))
return 1
"""
)

#: KEYS: blocked. ARGV: ms. Moves "blocked until" later, never earlier.
_BLOCK: Final = (
    NOW_LUA
    + """
local till = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if till > current then redis.call('SET', KEYS[1], till, 'PX', tonumber(ARGV[1])) end
return till
"""
)

#: The gate's scripts, by the name ``GateHost._batched`` and ``_send_later`` run them by.
GATE_SCRIPTS: Final[Sequence[tuple[str, str]]] = (
    ("acquire", _ACQUIRE),
    ("release", _RELEASE),
    ("block", _BLOCK),
)


class GateHost(Protocol):
    """What a gate reads of the ``RedisState`` it belongs to (at each call: options may change)."""

    @property
    def on_unavailable(self) -> str: ...

    @property
    def local_share(self) -> float: ...

    @property
    def lease(self) -> float: ...

    @property
    def poll_interval(self) -> float: ...

    def _key(self, hashed: str, suffix: str) -> str: ...

    def _lease_id(self) -> str: ...

    def _batched(
        self, name: str, keys: list[str], args: list[str | int]
    ) -> asyncio.Future[Any]: ...

    def _send_later(self, name: str, keys: list[str], args: list[str | int]) -> None: ...


class _RedisLane:
    __slots__ = ("concurrency", "cool", "flight", "limit", "lock")

    def __init__(self, flight: str, cool: str, limit: int, concurrency: int) -> None:
        self.flight = flight
        self.cool = cool
        self.limit = limit
        self.concurrency = concurrency
        #: Requests of this process queue here (FIFO) so that one at a time asks Redis.
        self.lock = asyncio.Lock()


class _Lease:
    __slots__ = ("ident", "lane")

    def __init__(self, lane: _RedisLane, ident: str) -> None:
        self.lane = lane
        self.ident = ident


class _LocalLease:
    __slots__ = ("inner",)

    def __init__(self, inner: object) -> None:
        self.inner = inner


class RedisGate:
    """One account's gate in Redis (see ``RedisState``); ``_local`` while Redis is down."""

    __slots__ = ("__weakref__", "_blocked", "_local", "_safe", "_state", "_unsafe", "limits")

    def __init__(self, state: GateHost, account: str, limits: RateLimits) -> None:
        self._state = state
        self.limits = limits
        key = state._key
        self._blocked = key(account, "blocked")
        self._safe = _RedisLane(
            key(account, "safe:flight"),
            key(account, "safe:cool"),
            limits.get,
            limits.get,  # no cap of its own: the budget caps it
        )
        self._unsafe = _RedisLane(
            key(account, "unsafe:flight"),
            key(account, "unsafe:cool"),
            limits.unsafe,
            limits.unsafe_concurrency,
        )
        self._local = MemoryGate(limits.scaled(state.local_share))

    async def acquire(self, method: str) -> object:
        state = self._state
        lane = self._safe if method in SAFE_METHODS else self._unsafe
        limits = self.limits
        window_ms = int(limits.window * 1000)
        lease_ms = int(state.lease * 1000)
        poll_ms = max(1, int(state.poll_interval * 1000))
        try:
            async with lane.lock:
                ident = state._lease_id()
                keys = [lane.flight, lane.cool, self._blocked]
                args: list[str | int] = [
                    lane.limit,
                    lane.concurrency,
                    window_ms,
                    lease_ms,
                    ident,
                    poll_ms,
                ]
                poll = state.poll_interval
                while True:
                    try:
                        granted, wait_ms = await state._batched("acquire", keys, args)
                    except asyncio.CancelledError:
                        # Redis may have granted the lease before we were cancelled.
                        state._send_later(
                            "release", [lane.flight, lane.cool], [window_ms, ident, 1]
                        )
                        raise
                    if granted == 1:
                        return _Lease(lane, ident)
                    wait = int(wait_ms) / 1000
                    if granted == -1 and wait > limits.max_wait:
                        raise GateBlockedError(method, wait, limits.max_wait)
                    if granted == 2:  # waiting for a request in flight: poll, backing off
                        wait = poll
                        poll = min(poll * 2, _MAX_POLL)
                    # a little jitter so that workers woken together do not ask together
                    await asyncio.sleep(wait + random.uniform(0, 0.002))
        except StateUnavailableError:
            if state.on_unavailable == "raise":
                raise
        return _LocalLease(await self._local.acquire(method))

    def release(self, lease: object) -> None:
        if isinstance(lease, _LocalLease):
            self._local.release(lease.inner)
            return
        assert isinstance(lease, _Lease)
        lane = lease.lane
        window_ms = int(self.limits.window * 1000)
        self._state._send_later("release", [lane.flight, lane.cool], [window_ms, lease.ident, 0])

    def block(self, seconds: float) -> None:
        self._local.block(seconds)
        ms = max(1, math.ceil(seconds * 1000))
        self._state._send_later("block", [self._blocked], [ms])

    def __repr__(self) -> str:
        return f"<RedisGate {self.limits!r}>"
