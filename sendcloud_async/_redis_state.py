"""``RedisState``: rate gates and OAuth2 tokens shared by worker processes through Redis.

The public module is ``sendcloud_async.redis`` (its docstring has the key layout
and the behaviour when Redis is unreachable); this module holds the state
backend itself, so that the webhook ledger can build on it without importing the
public module. Every call goes through the state's ``RedisConnection``
(``_redis_conn``), which decides what an outage is; the state adds only its pause
after one (``retry_interval``), during which the gates and the token cache fall
back at once.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import os
import random
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import msgspec

from ._errors import (
    ClientClosedError,
    InvalidInputError,
    StateConfigurationError,
    StateUnavailableError,
)
from ._flows import CachedToken
from ._ratelimit import SAFE_METHODS, GateBlockedError, MemoryGate, RateLimits
from ._redis_conn import (
    NOW_LUA,
    RedisConnection,
    RedisPiece,
    borrow,
    check_namespace,
    redis_failure,
)
from ._state import StateBackend
from ._validate import positive_seconds

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

__all__ = ["RedisState"]

logger: Final = logging.getLogger("sendcloud_async")

_T = TypeVar("_T")

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

#: KEYS: token, lock. ARGV: owner, lock_ms, leeway_ms. Returns {value or false, pttl, locked}:
#: the token while more than its leeway (capped at half its lifetime) is left; otherwise
#: the lock for ``owner`` is taken if free (locked = 1), or said to be held if ``owner``
#: holds it already (a call tried again after its reply was lost).
_TOKEN_OR_LOCK: Final = """
local value = redis.call('GET', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
if value then
  local ok, stored = pcall(cjson.decode, value)
  if ok and type(stored) == 'table' and tonumber(stored.lifetime) then
    local leeway = math.min(tonumber(ARGV[3]), tonumber(stored.lifetime) * 500)
    if pttl > leeway then return {value, pttl, 0} end
  end
end
local got = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', tonumber(ARGV[2]))
if got or redis.call('GET', KEYS[2]) == ARGV[1] then return {value or false, pttl, 1} end
return {value or false, pttl, 0}
"""

#: KEYS: token. ARGV: access_token. Deletes the token only if it is still that one.
_DISCARD_TOKEN: Final = """
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value).access_token == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: KEYS: token. ARGV: value, ms.
_PUT_TOKEN: Final = "return redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))"

#: KEYS: lock. ARGV: owner. Deletes the lock only if the caller still holds it.
_UNLOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def _again(
    exc: StateUnavailableError | StateConfigurationError | ClientClosedError,
) -> BaseException:
    """A fresh copy of ``exc`` for one more waiter (an exception is raised in one place)."""
    if isinstance(exc, StateConfigurationError):
        return StateConfigurationError(str(exc), reason=exc.reason)
    return type(exc)(str(exc))


class _StoredToken(msgspec.Struct):
    access_token: str
    lifetime: float
    scope: str | None = None


#: A script queued for the next pipeline: name, keys, args, and where its result goes.
_Queued = tuple[str, list[str], list[str | int], "asyncio.Future[Any] | None"]

_TOKEN_ENCODER: Final = msgspec.json.Encoder()
_TOKEN_DECODER: Final = msgspec.json.Decoder(_StoredToken)


class RedisState(StateBackend, RedisPiece):
    """Rate gates and OAuth2 tokens shared by every process using the same Redis.

    ``client`` is a ``redis.asyncio.Redis`` or a ``RedisConnection`` (borrowed:
    ``aclose()`` leaves it open; a ``RedisConnection`` shares one pool with the
    watch store); ``RedisState.from_url(url)`` makes one and owns it. Give a
    client of your own short timeouts (``from_url`` uses 2 s) so that an
    unreachable Redis is noticed quickly. ``namespace`` prefixes every key.
    ``lease`` bounds how long a crashed worker's in-flight requests keep
    counting (make it longer than a request can take). ``lock_ttl`` bounds how
    long a crashed worker's token lock blocks the others. ``poll_interval`` is
    how often a request waiting for an unsafe-concurrency slot asks again. See
    the module docstring for ``on_unavailable``, ``local_share`` and
    ``retry_interval``. After ``aclose()`` every call raises ``ClientClosedError``.

    Use one ``RedisState`` per event loop (redis-py's connections belong to one).
    """

    __slots__ = (
        "_connection",
        "_down_since",
        "_down_until",
        "_flusher",
        "_gates",
        "_lease_ids",
        "_outbox",
        "_scripts",
        "_tasks",
        "lease",
        "local_share",
        "lock_ttl",
        "namespace",
        "on_unavailable",
        "poll_interval",
        "retry_interval",
    )

    def __init__(
        self,
        client: aioredis.Redis | RedisConnection,
        *,
        namespace: str = "sendcloud-async",
        on_unavailable: Literal["local", "raise"] = "local",
        local_share: float = 1.0,
        lease: float = 120.0,
        lock_ttl: float = 30.0,
        poll_interval: float = 0.02,
        retry_interval: float = 5.0,
    ) -> None:
        super().__init__()
        connection = borrow(client, "RedisState")
        if on_unavailable not in ("local", "raise"):
            raise InvalidInputError(
                f"on_unavailable must be 'local' or 'raise', not {on_unavailable!r}"
            )
        if (
            isinstance(local_share, bool)
            or not isinstance(local_share, int | float)
            or not 0 < local_share <= 1
        ):
            raise InvalidInputError(f"local_share must be in (0, 1], got {local_share!r}")
        self._connection = connection
        self.namespace = check_namespace(namespace)
        self.on_unavailable = on_unavailable
        self.local_share = float(local_share)
        self.lease = positive_seconds(lease, "lease")
        self.lock_ttl = positive_seconds(lock_ttl, "lock_ttl")
        self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        self.retry_interval = positive_seconds(retry_interval, "retry_interval")
        self._scripts: dict[str, AsyncScript] = {
            name: connection.register_script(text)
            for name, text in (
                ("acquire", _ACQUIRE),
                ("release", _RELEASE),
                ("block", _BLOCK),
                ("token_or_lock", _TOKEN_OR_LOCK),
                ("put_token", _PUT_TOKEN),
                ("discard_token", _DISCARD_TOKEN),
                ("unlock", _UNLOCK),
            )
        }
        self._gates: weakref.WeakValueDictionary[str, _RedisGate] = weakref.WeakValueDictionary()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: Releases and blocks not sent yet: one pipeline per event-loop turn sends them all.
        self._outbox: list[_Queued] = []
        self._flusher: asyncio.Task[None] | None = None
        prefix = f"{os.getpid():x}-{secrets.token_hex(4)}-"
        self._lease_ids = (f"{prefix}{n:x}" for n in itertools.count())
        self._down_until = 0.0
        self._down_since: float | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisState:
        """A ``RedisState`` over a new ``redis.asyncio.Redis`` for ``url``, closed by ``aclose()``.

        Options for ``RedisState`` (``namespace``, ``on_unavailable``, …) are taken
        out of ``options``; the rest configure redis-py's ``BlockingConnectionPool``
        (``max_connections`` 32 and 2-second socket timeouts unless given; see
        ``RedisConnection.from_url``): with thousands of accounts, calls queue for a
        connection rather than open one each.
        """
        return cls._open(url, options)

    @property
    def available(self) -> bool:
        """False while Redis is considered unreachable (for ``retry_interval`` after a failure)."""
        return time.monotonic() >= self._down_until

    # -- StateBackend -----------------------------------------------------------------

    def gate(self, account: str, limits: RateLimits) -> _RedisGate:
        gate = self._gates.get(account)
        if gate is None:
            gate = _RedisGate(self, account, limits)
            self._gates[account] = gate
        return gate

    def token_cache(self, key: str) -> _RedisTokenCache:
        return _RedisTokenCache(self, key)

    # -- plumbing -------------------------------------------------------------------------

    def _key(self, hashed: str, suffix: str) -> str:
        return f"{self.namespace}:{{{hashed}}}:{suffix}"

    def _lease_id(self) -> str:
        return next(self._lease_ids)

    async def _call(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """One call through the connection, unless Redis was unreachable a moment ago.

        After an outage the state does not ask Redis again for ``retry_interval``
        seconds (the gates and the token cache fall back at once meanwhile);
        what an outage is, and every other rule of a call, is the connection's.
        """
        started = time.monotonic()
        if started < self._down_until and not self.closed:
            raise StateUnavailableError(
                f"Redis is unreachable (retrying in {self._down_until - started:.1f} s)"
            )
        try:
            result = await self._connection.call(call)
        except StateUnavailableError as exc:
            self._mark_down(exc.__cause__ or exc)
            raise
        down_since = self._down_since
        if down_since is not None and started >= self._down_until:
            # Only a call that began after the pause proves Redis is back.
            logger.info(
                "Redis answers again after %.1f s; rate budgets and OAuth2 tokens are shared again",
                time.monotonic() - down_since,
            )
            self._down_since = None
        return result

    def _mark_down(self, exc: BaseException) -> None:
        now = time.monotonic()
        self._down_until = now + self.retry_interval
        if self._down_since is None:
            self._down_since = now
            fallback = (
                f"using a per-process rate gate ({self.local_share:g} of the limits) and "
                "per-process OAuth2 tokens"
                if self.on_unavailable == "local"
                else "requests fail with StateUnavailableError"
            )
            logger.warning(
                "Redis is unreachable (%s: %s); %s until it answers (next try in %g s)",
                type(exc).__name__,
                exc,
                fallback,
                self.retry_interval,
            )

    def _send_later(self, name: str, keys: list[str], args: list[str | int]) -> None:
        """Queue a fire-and-forget script (a release, a block) for the next pipeline.

        Failures only mean that a lease or a block expires by itself (after
        ``aclose()`` nothing is sent any more).
        """
        if self.closed:
            return
        self._outbox.append((name, keys, args, None))
        self._ensure_flusher()

    def _batched(self, name: str, keys: list[str], args: list[str | int]) -> asyncio.Future[Any]:
        """Queue a script for the next pipeline; the future gets its result or error."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._outbox.append((name, keys, args, future))
        self._ensure_flusher()
        return future

    def _ensure_flusher(self) -> None:
        if self._flusher is None:
            task = asyncio.get_running_loop().create_task(self._flush())
            self._flusher = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _flush(self) -> None:
        """Send what was queued, in order, one pipeline (one round trip) per batch.

        Every request that asked Redis in the same event-loop turn shares the round
        trip: with many accounts busy at once this is most of the gate's cost saved.
        """
        batch: list[_Queued] = []
        try:
            await asyncio.sleep(0)  # let this turn's callers join the batch
            while self._outbox:
                batch, self._outbox = self._outbox, []
                try:
                    results = await self._call(functools.partial(self._pipeline, batch))
                except (StateUnavailableError, StateConfigurationError, ClientClosedError) as exc:
                    for *_, future in batch:
                        if future is not None and not future.done():
                            future.set_exception(_again(exc))
                    continue
                for (*_, future), result in zip(batch, results, strict=True):
                    if future is None or future.done():
                        continue
                    if isinstance(result, Exception):
                        # one script's error in the pipeline (a NOPERM, say): judged the same way
                        future.set_exception(redis_failure(result) or result)
                    else:
                        future.set_result(result)
                batch = []
        finally:
            self._flusher = None
            for *_, future in (*batch, *self._outbox):
                if future is not None and not future.done():
                    future.cancel()  # the flusher itself was cancelled (loop shutting down)

    async def _pipeline(self, batch: list[_Queued]) -> list[Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            for name, keys, args, _ in batch:
                await self._scripts[name](keys=keys, args=args, client=pipe)
            results: list[Any] = await pipe.execute(raise_on_error=False)
            return results

    # -- lifecycle --------------------------------------------------------------------

    async def aclose(self) -> None:
        """Finish pending releases; close the Redis client if ``from_url`` made it.

        Every call raises ``ClientClosedError`` after (a request through a pool that
        uses this state, too). Idempotent.
        """
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().aclose()

    def __repr__(self) -> str:
        return f"<RedisState namespace={self.namespace!r} available={self.available}>"


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


class _RedisGate:
    """One account's gate in Redis (see ``RedisState``); ``_local`` while Redis is down."""

    __slots__ = ("__weakref__", "_blocked", "_local", "_safe", "_state", "_unsafe", "limits")

    def __init__(self, state: RedisState, account: str, limits: RateLimits) -> None:
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


class _RedisTokenCache:
    """The ``TokenCache`` of one OAuth2 credential set in Redis."""

    __slots__ = ("_key", "_lock", "_state", "fallback_local", "lock_ttl")

    def __init__(self, state: RedisState, key: str) -> None:
        self._state = state
        self._key = state._key(key, "token")
        self._lock = state._key(key, "lock")
        self.fallback_local = state.on_unavailable == "local"
        self.lock_ttl = state.lock_ttl

    async def get_or_lock(self, owner: str, leeway: float) -> tuple[CachedToken | None, bool]:
        value, pttl, locked = await self._state._batched(
            "token_or_lock",
            [self._key, self._lock],
            [owner, int(self.lock_ttl * 1000), int(leeway * 1000)],
        )
        return self._decode(value, int(pttl)), bool(locked)

    @staticmethod
    def _decode(value: bytes | str | None, pttl: int) -> CachedToken | None:
        if not value or pttl <= 0:
            return None
        try:
            stored = _TOKEN_DECODER.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            logger.warning("ignoring an undecodable OAuth2 token in Redis")
            return None
        return CachedToken(stored.access_token, stored.lifetime, pttl / 1000, stored.scope)

    async def put(self, token: CachedToken) -> None:
        px = int(token.remaining * 1000)
        if px <= 0:
            return
        value = _TOKEN_ENCODER.encode(_StoredToken(token.access_token, token.lifetime, token.scope))
        await self._state._batched("put_token", [self._key], [value.decode(), px])

    async def unlock(self, owner: str) -> None:
        await self._state._batched("unlock", [self._lock], [owner])

    async def discard(self, access_token: str) -> None:
        await self._state._batched("discard_token", [self._key], [access_token])
