"""Watching across many workers: leases with fencing tokens, shared state, a Redis Streams sink.

Every worker runs the same code against the same Redis. Each account is watched by
one worker at a time: the worker holding the account's **lease** (a key with a TTL,
renewed while it works). Every lease carries a **fencing token**, taken with
``INCR`` on the account's fence counter, so it grows on every claim. Writing a
batch -- the new logs ``XADD``-ed to the stream ``PREFIX:NAME`` and the account's
watch state -- is one Lua script that checks the token and the lease first: a
worker that lost its lease (it was paused, partitioned, or slow) can never write,
even while it still believes it holds the account.

``RedisWatchStore`` holds the Redis side (keys, scripts, one call per operation);
``RedisWatchCoordinator`` runs the lease loop of one worker and one watch task per
account it holds. Both work on plain data: an account name, a fencing token, the
watch state as ``bytes`` and the logs as ``bytes`` (each log's JSON), so that any
watch plugs in (``AccountWatch``): ``logs_watch`` runs ``client.logs.watch`` (the
state is ``sc.WatchState`` JSON), ``log_watcher_watch`` runs ``sc.LogWatcher`` with
the fence as its ``WatchStore`` (the state is its ``AccountState`` JSON), and
``source_watch`` adapts any async iterator of ``(state, logs)`` batches.

Keys (``NS`` is the namespace, ``sendcloud-async`` by default; ``P`` the stream
prefix, ``sendcloud-async:logs`` by default; braces keep an account's keys in the
slot of its stream, for Redis Cluster):

* ``P:NAME`` -- the stream of the account's new logs (field ``log``); lives as
  long as its consumers need it: bounded by ``stream_maxlen`` / ``stream_max_age``
  trimming, optionally expiring ``stream_ttl`` after the last write;
* ``NS:watch:{P:NAME}:lease`` -- ``"WORKER TOKEN"`` of the holder; expires
  ``lease`` seconds after the last renewal;
* ``NS:watch:{P:NAME}:fence`` -- the last fencing token; expires ``state_ttl``
  after the last claim or write;
* ``NS:watch:{P:NAME}:state`` -- hash: ``state`` (the watch state), ``seq`` (writes
  so far), ``token`` and ``at`` (Redis ms) of the last write, ``refused`` (writes
  the fence refused), ``holder`` (the worker that claimed it last, until it
  releases it) and ``stalled`` (set when that worker gave it up because its polls
  failed); expires ``state_ttl`` after the last claim or write;
* ``NS:watch:{P}:workers`` -- sorted set of live workers (score: when their
  heartbeat ends, Redis ms); expires ``lease`` after the last heartbeat;
* ``NS:watch:{P}:orphans`` -- sorted set of accounts given up by a worker whose
  polls of them failed (score: until when a healthy worker holds them beyond its
  share, Redis ms); expires with its last entry.

No key holds a secret: an account is named by its accounts-file name (letters,
digits, ``.``, ``_``, ``-``), a worker by ``HOST:PID:RANDOM``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
import re
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Final, Literal, Protocol, TypeAlias

import msgspec

from ._aio import sleep_until, stop_task
from ._defaults import DEFAULT_PAGE_SIZE, DEFAULT_WATCH_INTERVAL, DEFAULT_WATCH_START
from ._errors import (
    InvalidInputError,
    SendcloudError,
    StateConfigurationError,
    StateUnavailableError,
)
from ._redis_conn import NOW_LUA as _NOW
from ._redis_conn import (
    RedisConnection,
    RedisPiece,
    borrow,
    check_namespace,
    describe_failure,
)
from ._validate import account_name, positive_int, positive_seconds, required_page_size
from ._watch import DEFAULT_LOOKBACK, WatchState, check_lookback, check_start
from ._watchers import (
    AccountState,
    Handler,
    LogWatcher,
    MemoryWatchStore,
    decode_account_state,
)

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

    from ._auth import Auth
    from ._client import SendcloudClient
    from ._models import IntegrationLog
    from ._pool import AccountPool

__all__ = [
    "AccountFailing",
    "AccountRecovered",
    "AccountWatch",
    "Commit",
    "CoordinatorEvent",
    "LeaseEvent",
    "LeaseLostError",
    "RedisDown",
    "RedisUp",
    "RedisWatchCoordinator",
    "RedisWatchStore",
    "WatchLease",
    "WatchSource",
    "log_watcher_watch",
    "logs_watch",
    "source_watch",
]

logger: Final = logging.getLogger("sendcloud_async")
#: Where the coordinator logs its ``CoordinatorEvent``s (a child of ``sendcloud_async``):
#: a program that shows the events itself can keep them from being shown twice.
events_logger: Final = logging.getLogger("sendcloud_async.redis.watch")

#: A watch source: given an account name and its saved state (``None``: never watched),
#: yields ``(new_state, logs)`` batches, each log as its JSON bytes, in delivery order.
WatchSource = Callable[[str, bytes | None], AsyncIterator[tuple[bytes, Sequence[bytes]]]]


class Commit(Protocol):
    """What a watch is handed to write its batches and to say that its polls work.

    ``await commit(new_state, logs)`` writes one batch through the fence: it raises
    ``LeaseLostError`` when the fence refuses it and retries while Redis is
    unreachable. ``commit.polled()`` says that a poll succeeded, new logs or not:
    the progress by which the coordinator tells a working account from one whose
    polls keep failing (a written batch counts as progress too).
    """

    async def __call__(self, state: bytes, logs: Sequence[bytes], /) -> None:
        """Write ``logs`` and then ``state``, atomically, if this worker still holds the lease."""

    def polled(self) -> None:
        """Say that a poll of the account succeeded (even one that found nothing new)."""


#: Runs the watch of one account: ``await watch(name, state, commit)``, from ``state``
#: (the bytes written last, ``None``: never watched), calling ``commit`` for every
#: batch, until cancelled. ``source_watch``, ``logs_watch`` and ``log_watcher_watch``
#: make one.
AccountWatch = Callable[[str, bytes | None, Commit], Awaitable[None]]

DEFAULT_STREAM_PREFIX: Final = "sendcloud-async:logs"
#: How long an account's state and fence counter outlive its last claim or write.
DEFAULT_STATE_TTL: Final = 30 * 24 * 3600.0
_PREFIX: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")


#: KEYS: workers, orphans. ARGV: worker, ttl_ms. Returns {live workers (this one included),
#: ms until the soonest other worker's heartbeat ends (-1: no other), {account, ms left, ...}
#: of the orphans (the first 1,000)}.
_HEARTBEAT: Final = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
local soonest = -1
local first = redis.call('ZRANGE', KEYS[1], 0, 1, 'WITHSCORES')
for i = 1, #first, 2 do
  if first[i] ~= ARGV[1] then soonest = tonumber(first[i + 1]) - now; break end
end
local orphans = {}
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  local left = redis.call('ZRANGE', KEYS[2], 0, 999, 'WITHSCORES')
  for i = 1, #left, 2 do
    orphans[#orphans + 1] = left[i]
    orphans[#orphans + 1] = tonumber(left[i + 1]) - now
  end
end
return {redis.call('ZCARD', KEYS[1]), soonest, orphans}
"""
)

#: KEYS: orphans. ARGV: account, ms. The account is an orphan for ms more.
_ORPHAN: Final = (
    _NOW
    + """
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]))
end
return 1
"""
)

#: KEYS: workers. ARGV: worker.
_LEAVE: Final = "return redis.call('ZREM', KEYS[1], ARGV[1])"

#: KEYS: lease, fence, state. ARGV: worker, lease_ms, state_ttl_ms.
#: Returns {token, state or false, seq, 0, how, previous or false} when the lease is now
#: the worker's, or {0, false, 0, pttl, '', false} when another worker holds it for pttl
#: more ms. ``how``: 'free', 'own' (the lease was this worker's already: a claim whose
#: reply was lost, or a claim again), 'takeover' (``previous`` held it and its lease
#: lapsed) or 'adopted' (``previous`` gave it up because its polls failed). A lease this
#: worker already held gets a new token too: writes still on their way from its earlier
#: watch of the account are refused.
_CLAIM: Final = """
local current = redis.call('GET', KEYS[1])
local how = 'free'
if current then
  local space = string.find(current, ' ', 1, true)
  if not space or string.sub(current, 1, space - 1) ~= ARGV[1] then
    return {0, false, 0, redis.call('PTTL', KEYS[1]), '', false}
  end
  how = 'own'
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
local saved = redis.call('HMGET', KEYS[3], 'state', 'seq', 'holder', 'stalled')
local previous = false
if how == 'free' and saved[3] and saved[3] ~= ARGV[1] then
  previous = saved[3]
  if saved[4] then how = 'adopted' else how = 'takeover' end
end
redis.call('HSET', KEYS[3], 'holder', ARGV[1])
redis.call('HDEL', KEYS[3], 'stalled')
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[3]))
return {token, saved[1] or false, tonumber(saved[2] or '0'), 0, how, previous}
"""

#: KEYS: lease. ARGV: worker, token, lease_ms. 1 if renewed, 0 if the lease is gone.
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return 0
"""

#: KEYS: lease, state. ARGV: worker, token, stalled ('1': given up because its polls
#: failed), state_ttl_ms. Deletes the lease only if it is still this one; the next claim
#: then says 'free' (or 'adopted' after a give-up) rather than 'takeover'.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  redis.call('DEL', KEYS[1])
  if ARGV[3] == '1' then
    redis.call('HSET', KEYS[2], 'stalled', '1')
    redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[4]))
  else
    redis.call('HDEL', KEYS[2], 'holder', 'stalled')
  end
  return 1
end
return 0
"""

#: KEYS: lease, fence, state, stream. ARGV: worker, token, seq (the last write this
#: worker saw), state, state_ttl_ms, trim ('', 'MAXLEN' or 'MINID'), trim_arg
#: (entries, or max age in ms), stream_ttl_ms (0: none), log... .
#: Returns {1, seq} when written, {2, seq} when this very write was applied before (a
#: retry after a lost reply), {0, reason} when refused. ``#!lua`` makes Redis check
#: memory before the script runs, so a write is all or nothing.
_COMMIT: Final = (
    "#!lua\n"
    + _NOW
    + """
local holder = ARGV[1] .. ' ' .. ARGV[2]
if redis.call('GET', KEYS[2]) ~= ARGV[2] or redis.call('GET', KEYS[1]) ~= holder then
  redis.call('HINCRBY', KEYS[3], 'refused', 1)
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[5]))
  return {0, 'fence'}
end
local seq = tonumber(redis.call('HGET', KEYS[3], 'seq') or '0')
local expected = tonumber(ARGV[3])
local last = redis.call('HMGET', KEYS[3], 'token', 'state')
if seq == expected + 1 and last[1] == ARGV[2] and last[2] == ARGV[4] then
  return {2, seq}
end
if seq ~= expected then return {0, 'seq'} end
local kind = redis.call('TYPE', KEYS[4])['ok']
if kind ~= 'stream' and kind ~= 'none' then return {0, 'type'} end
local trim = ARGV[6]
local minid = tostring(now - tonumber(ARGV[7])) .. '-0'
for i = 9, #ARGV do
  if trim == 'MAXLEN' then
    redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[7], '*', 'log', ARGV[i])
  elseif trim == 'MINID' then
    redis.call('XADD', KEYS[4], 'MINID', '~', minid, '*', 'log', ARGV[i])
  else
    redis.call('XADD', KEYS[4], '*', 'log', ARGV[i])
  end
end
if #ARGV >= 9 and tonumber(ARGV[8]) > 0 then
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[8]))
end
redis.call('HSET', KEYS[3], 'state', ARGV[4], 'seq', expected + 1, 'token', ARGV[2], 'at', now)
redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[5]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[5]))
return {1, expected + 1}
"""
)

_SCRIPTS: Final = {
    "heartbeat": _HEARTBEAT,
    "orphan": _ORPHAN,
    "leave": _LEAVE,
    "claim": _CLAIM,
    "renew": _RENEW,
    "release": _RELEASE,
    "commit": _COMMIT,
}


class LeaseLostError(SendcloudError):
    """A write refused by the fence: this worker no longer holds the account's lease.

    Nothing of the batch was written; the worker that holds the lease now watches
    the account from the last state that was written.
    """


@dataclass(frozen=True, slots=True)
class WatchLease:
    """An account this worker holds: its fencing token and the state written last.

    ``state`` is ``None`` when the account was never written (the watch starts
    fresh); ``seq`` counts the writes made so far (any worker), the store's check
    that a retried write is not applied twice. ``how`` and ``previous`` say whose
    it was: ``"free"``, ``"own"`` (already this worker's: a claim whose reply was
    lost), ``"takeover"`` (the lease of worker ``previous`` lapsed) or
    ``"adopted"`` (``previous`` gave it up because its polls failed).
    """

    account: str
    token: int
    state: bytes | None
    seq: int
    how: ClaimKind = "free"
    previous: str | None = None


#: How a lease came to this worker (``WatchLease.how``).
ClaimKind: TypeAlias = Literal["free", "own", "takeover", "adopted"]
#: Why a lease event happened (``LeaseEvent.reason``): a ``ClaimKind`` for a claim;
#: ``"stop"``, ``"rebalance"`` or ``"stalled"`` for a release; ``"expired"`` or
#: ``"gone"`` for a loss; ``"fence"`` for a refusal.
LeaseReason: TypeAlias = Literal[
    "free",
    "own",
    "takeover",
    "adopted",
    "stop",
    "rebalance",
    "stalled",
    "expired",
    "gone",
    "fence",
]
#: Characters of an error kept in an event.
_ERROR_CHARS: Final = 300


def _clock(at: datetime) -> str:
    """``at`` as the local wall-clock time, ``HH:MM:SS``."""
    return at.astimezone().strftime("%H:%M:%S")


def _error_text(exc: BaseException) -> str:
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class LeaseEvent:
    """What happened to one of this worker's leases.

    ``kind`` and ``reason``:

    * ``"claimed"``: ``"free"`` (nobody held it, or its holder released it),
      ``"own"`` (the lease was this worker's already: a claim whose reply was lost),
      ``"takeover"`` (the lease of worker ``previous`` lapsed: it died, stalled or
      lost Redis) or ``"adopted"`` (``previous`` gave it up because its polls failed);
    * ``"released"``: ``"stop"`` (a clean stop), ``"rebalance"`` (this worker's
      surplus, for a worker that joined) or ``"stalled"`` (its polls kept failing
      for ``stall_after``: a worker that can poll it takes it over);
    * ``"lost"``: ``"expired"`` (not renewed in time here) or ``"gone"`` (Redis no
      longer has it as this worker's);
    * ``"refused"``: ``"fence"`` (a write the fence refused; nothing was written).

    ``name`` is the event's name in the command line's ``--events`` file
    (``lease_claimed``, ``lease_taken_over``, ``lease_released``,
    ``lease_rebalanced``, ``lease_given_up``, ``lease_lost``, ``lease_refused``);
    ``str(event)`` is the sentence the coordinator logs at ``level``.
    """

    kind: Literal["claimed", "released", "lost", "refused"]
    account: str
    token: int
    reason: LeaseReason | None = None
    previous: str | None = None

    @property
    def name(self) -> str:
        """The event's name: ``lease_`` and what happened."""
        if self.kind == "claimed":
            return "lease_taken_over" if self.previous is not None else "lease_claimed"
        if self.kind == "released":
            return {"rebalance": "lease_rebalanced", "stalled": "lease_given_up"}.get(
                self.reason or "", "lease_released"
            )
        return f"lease_{self.kind}"

    @property
    def level(self) -> int:
        """The ``logging`` level the coordinator logs it at."""
        if self.kind == "refused" or self.reason == "stalled":
            return logging.WARNING
        return logging.INFO

    def __str__(self) -> str:
        who = f"account {self.account}: "
        token = f"fencing token {self.token}"
        if self.kind == "claimed":
            if self.reason == "adopted":
                return (
                    f"{who}taken over from worker {self.previous}, which gave it up because "
                    f"its polls failed ({token})"
                )
            if self.previous is not None:
                return f"{who}taken over from worker {self.previous}, whose lease lapsed ({token})"
            if self.reason == "own":
                return f"{who}claimed; the lease was this worker's already ({token})"
            return f"{who}claimed ({token})"
        if self.kind == "released":
            if self.reason == "rebalance":
                return f"{who}released for another worker (rebalancing; {token})"
            if self.reason == "stalled":
                return (
                    f"{who}given up: its polls kept failing; a worker that can poll it "
                    f"takes it over ({token})"
                )
            return f"{who}released ({token})"
        if self.kind == "lost":
            if self.reason == "gone":
                return f"{who}lease lost: Redis no longer has it as this worker's ({token})"
            return f"{who}lease not renewed in time ({token}); its watch stopped"
        return (
            f"{who}taken over by another worker ({token} refused by the fence); nothing was written"
        )


@dataclass(frozen=True, slots=True)
class RedisDown:
    """Redis stopped answering (refused, reset, timed out) at ``since``.

    The worker writes nothing and takes no account until ``RedisUp``; its leases
    lapse meanwhile. ``error`` is what the first failed call met.
    """

    since: datetime
    error: str
    retry_every: float

    name: ClassVar[str] = "redis_down"
    level: ClassVar[int] = logging.WARNING

    def __str__(self) -> str:
        return (
            f"Redis is unreachable since {_clock(self.since)} ({self.error}); this worker "
            "writes nothing and takes no account until it answers "
            f"(it asks again every {self.retry_every:g} s)"
        )


@dataclass(frozen=True, slots=True)
class RedisUp:
    """Redis answers again: it was unreachable from ``since`` for ``down_for`` seconds."""

    since: datetime
    down_for: float

    name: ClassVar[str] = "redis_up"
    level: ClassVar[int] = logging.INFO

    def __str__(self) -> str:
        return (
            f"Redis answers again after {self.down_for:.1f} s (unreachable since "
            f"{_clock(self.since)}); watching resumes"
        )


@dataclass(frozen=True, slots=True)
class AccountFailing:
    """The watch of a held account failed (after the client's own retries) at ``since``.

    Emitted once per failing stretch; it is tried again in ``retry_in`` seconds
    (with backoff), and given up (``LeaseEvent`` ``"released"``, ``"stalled"``) if
    it goes on failing for ``stall_after``.
    """

    account: str
    since: datetime
    error: str
    retry_in: float

    name: ClassVar[str] = "account_failing"
    level: ClassVar[int] = logging.WARNING

    def __str__(self) -> str:
        return (
            f"account {self.account}: failing ({self.error}); trying again in {self.retry_in:.1f} s"
        )


@dataclass(frozen=True, slots=True)
class AccountRecovered:
    """A failing account's watch works again (a poll or a write succeeded)."""

    account: str
    failing_since: datetime
    failures: int

    name: ClassVar[str] = "account_recovered"
    level: ClassVar[int] = logging.INFO

    def __str__(self) -> str:
        return (
            f"account {self.account}: works again after {self.failures} failed "
            f"attempt{'s' if self.failures != 1 else ''} (failing since "
            f"{_clock(self.failing_since)})"
        )


#: Every state change a ``RedisWatchCoordinator`` reports to ``on_event`` (and logs).
CoordinatorEvent: TypeAlias = LeaseEvent | RedisDown | RedisUp | AccountFailing | AccountRecovered


def _default_worker_id() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:60] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _claim_kind(value: object) -> ClaimKind:
    text = value.decode() if isinstance(value, bytes) else str(value)
    if text == "own":
        return "own"
    if text == "takeover":
        return "takeover"
    if text == "adopted":
        return "adopted"
    return "free"


class RedisWatchStore(RedisPiece):
    """The Redis side of a watch shared by many workers: leases, fences, states, streams.

    ``client`` is a ``redis.asyncio.Redis`` or a ``RedisConnection`` (borrowed: a
    ``RedisConnection`` shares one pool with the pool's ``RedisState``;
    ``from_url`` makes a client and ``aclose()`` closes it). ``stream_prefix``
    names the streams (``PREFIX:NAME``) and, with ``namespace``, every other key.
    ``lease`` is how long a lease lasts after its last renewal. ``stream_maxlen``
    (entries) or ``stream_max_age`` (seconds) trims each stream on every write
    (approximately, ``~``: Redis trims whole nodes); ``stream_ttl`` lets a stream
    expire that long after its last write. ``state_ttl`` is how long an
    account's state outlives its last claim or write (an account watched again
    after that starts afresh).

    Every method raises ``StateUnavailableError`` when Redis cannot be reached (an
    outage: try again later), ``StateConfigurationError`` when Redis refuses the
    URL's credentials, database or user (no retry helps), and ``ClientClosedError``
    after ``aclose()`` (the rules of ``RedisConnection.call``).
    """

    __slots__ = (
        "_connection",
        "_scripts",
        "lease",
        "namespace",
        "state_ttl",
        "stream_max_age",
        "stream_maxlen",
        "stream_prefix",
        "stream_ttl",
        "worker_id",
    )

    def __init__(
        self,
        client: aioredis.Redis | RedisConnection,
        *,
        stream_prefix: str = DEFAULT_STREAM_PREFIX,
        namespace: str = "sendcloud-async",
        lease: float = 30.0,
        stream_maxlen: int | None = None,
        stream_max_age: float | None = None,
        stream_ttl: float | None = None,
        state_ttl: float = DEFAULT_STATE_TTL,
        worker_id: str | None = None,
    ) -> None:
        connection = borrow(client, "RedisWatchStore")
        if connection.client.connection_pool.connection_kwargs.get("decode_responses"):
            raise InvalidInputError("client must return bytes: make it without decode_responses")
        if not isinstance(stream_prefix, str) or not _PREFIX.fullmatch(stream_prefix):
            raise InvalidInputError(
                "stream_prefix must be 1 to 100 letters, digits, '.', '_', ':' or '-' "
                f"(starting with a letter or digit), got {stream_prefix!r}"
            )
        check_namespace(namespace)
        if stream_maxlen is not None and stream_max_age is not None:
            raise InvalidInputError("give stream_maxlen or stream_max_age, not both")
        if worker_id is not None and (
            not isinstance(worker_id, str) or not re.fullmatch(r"[A-Za-z0-9._:-]{1,100}", worker_id)
        ):
            raise InvalidInputError(
                "worker_id must be 1 to 100 letters, digits, '.', '_', ':' or '-'"
            )
        self._connection = connection
        self.stream_prefix = stream_prefix
        self.namespace = namespace
        self.lease = positive_seconds(lease, "lease")
        self.stream_maxlen = (
            None if stream_maxlen is None else positive_int(stream_maxlen, "stream_maxlen")
        )
        self.stream_max_age = (
            None if stream_max_age is None else positive_seconds(stream_max_age, "stream_max_age")
        )
        self.stream_ttl = None if stream_ttl is None else positive_seconds(stream_ttl, "stream_ttl")
        self.state_ttl = positive_seconds(state_ttl, "state_ttl")
        if self.state_ttl < self.lease:
            raise InvalidInputError("state_ttl must be at least as long as the lease")
        #: Who this worker is in lease values and the workers set (no secret).
        self.worker_id = worker_id or _default_worker_id()
        self._scripts: dict[str, AsyncScript] = {
            name: connection.register_script(text) for name, text in _SCRIPTS.items()
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisWatchStore:
        """A store over a new ``redis.asyncio.Redis`` for ``url``, closed by ``aclose()``.

        Options of the store are taken out of ``options``; the rest configure
        redis-py as ``RedisConnection.from_url`` says (2-second socket timeouts and
        a pool of 32 connections unless given). A URL redis-py would misread (a
        database that is not a number, a bad port) is an ``InvalidInputError``.
        """
        return cls._open(url, options)

    # -- keys ---------------------------------------------------------------------

    def stream_key(self, account: str) -> str:
        """The stream of ``account``'s logs: ``PREFIX:NAME``."""
        return f"{self.stream_prefix}:{account_name(account)}"

    def key(self, account: str, suffix: Literal["lease", "fence", "state"]) -> str:
        """One of ``account``'s keys: ``NS:watch:{PREFIX:NAME}:SUFFIX``."""
        return f"{self.namespace}:watch:{{{self.stream_key(account)}}}:{suffix}"

    @property
    def workers_key(self) -> str:
        """The sorted set of live workers: ``NS:watch:{PREFIX}:workers``."""
        return f"{self.namespace}:watch:{{{self.stream_prefix}}}:workers"

    @property
    def orphans_key(self) -> str:
        """The sorted set of accounts given up as failing: ``NS:watch:{PREFIX}:orphans``."""
        return f"{self.namespace}:watch:{{{self.stream_prefix}}}:orphans"

    # -- operations -----------------------------------------------------------------

    async def _many(self, calls: Sequence[tuple[str, list[str], list[Any]]]) -> list[Any]:
        """Run scripts in one pipeline (one round trip); their results in order.

        Every operation here may be repeated safely (see ``commit``): the
        connection tries a call once more on a fresh connection after a dead one.
        """
        if not calls:
            return []

        async def run() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for name, keys, args in calls:
                    await self._scripts[name](keys=keys, args=args, client=pipe)
                results: list[Any] = await pipe.execute()
                return results

        return await self._connection.call(run)

    async def check(self) -> None:
        """Ask Redis once (``PING``), on a connection made with the URL's credentials and database.

        ``StateConfigurationError`` if Redis refuses them, ``StateUnavailableError``
        if it cannot be reached: a worker can tell a wrong URL from an outage
        before it starts.
        """
        await self._connection.call(self.client.ping)

    def _heartbeat_call(self) -> tuple[str, list[str], list[Any]]:
        keys = [self.workers_key, self.orphans_key]
        return ("heartbeat", keys, [self.worker_id, _ms(self.lease)])

    async def heartbeat(self) -> int:
        """Say this worker is alive for ``lease`` more seconds; the number of live workers."""
        (result,) = await self._many([self._heartbeat_call()])
        return int(result[0])

    async def leave(self) -> None:
        """Take this worker out of the live workers (a clean stop)."""
        await self._many([("leave", [self.workers_key], [self.worker_id])])

    async def claim(self, accounts: Sequence[str]) -> tuple[list[WatchLease], dict[str, float]]:
        """Take the leases of ``accounts`` that are free (or already this worker's).

        Every lease taken gets a new fencing token, even one this worker held:
        a write still on its way from an earlier watch is refused. Returns the
        leases now held (``WatchLease.how`` says whose they were), and for each
        account held by another worker how many seconds its lease has left.
        """
        names = [account_name(a) for a in accounts]
        results = await self._many(
            [
                (
                    "claim",
                    [self.key(n, "lease"), self.key(n, "fence"), self.key(n, "state")],
                    [self.worker_id, _ms(self.lease), _ms(self.state_ttl)],
                )
                for n in names
            ]
        )
        held: list[WatchLease] = []
        others: dict[str, float] = {}
        for name, (token, state, seq, pttl, how, previous) in zip(names, results, strict=True):
            if int(token) > 0:
                before = previous.decode() if isinstance(previous, bytes) else previous or None
                held.append(WatchLease(name, int(token), state, int(seq), _claim_kind(how), before))
            else:
                others[name] = max(0, int(pttl)) / 1000
        return held, others

    async def _leases(self, accounts: Sequence[str]) -> dict[str, tuple[float, bool]]:
        """Per account: seconds left on its lease (0: free), and whether it is this worker's."""
        names = [account_name(a) for a in accounts]
        if not names:
            return {}
        mine = f"{self.worker_id} ".encode()

        async def run() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    key = self.key(name, "lease")
                    pipe.get(key)
                    pipe.pttl(key)
                results: list[Any] = await pipe.execute()
                return results

        results = await self._connection.call(run)
        return {
            name: (max(0, int(pttl)) / 1000, isinstance(value, bytes) and value.startswith(mine))
            for name, value, pttl in zip(names, results[::2], results[1::2], strict=True)
        }

    async def probe(self, accounts: Sequence[str]) -> dict[str, float]:
        """Seconds left on each account's lease (0 for a free account), without claiming."""
        names = [account_name(a) for a in accounts]
        if not names:
            return {}

        async def run() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.pttl(self.key(name, "lease"))
                results: list[Any] = await pipe.execute()
                return results

        return {
            name: max(0, int(pttl)) / 1000
            for name, pttl in zip(names, await self._connection.call(run), strict=True)
        }

    async def renew(self, leases: Sequence[WatchLease]) -> tuple[int, set[str], float | None]:
        """Renew ``leases`` and the heartbeat in one round trip.

        Returns the number of live workers, the accounts whose lease is gone
        (expired or taken over), and the seconds until the soonest heartbeat of
        another worker ends (``None``: no other worker).
        """
        live, lost, soonest, _ = await self._renew(leases)
        return live, lost, soonest

    async def _renew(
        self, leases: Sequence[WatchLease]
    ) -> tuple[int, set[str], float | None, dict[str, float]]:
        """``renew``, and the orphans: accounts given up as failing, with seconds left."""
        calls: list[tuple[str, list[str], list[Any]]] = [self._heartbeat_call()]
        calls += [
            (
                "renew",
                [self.key(lease.account, "lease")],
                [self.worker_id, lease.token, _ms(self.lease)],
            )
            for lease in leases
        ]
        (live, soonest, flat), *renewed = await self._many(calls)
        lost = {lease.account for lease, ok in zip(leases, renewed, strict=True) if not int(ok)}
        orphans = {
            (name.decode() if isinstance(name, bytes) else str(name)): max(0, int(ms)) / 1000
            for name, ms in zip(flat[::2], flat[1::2], strict=True)
        }
        return int(live), lost, None if int(soonest) < 0 else int(soonest) / 1000, orphans

    def _release_call(self, lease: WatchLease, stalled: bool) -> tuple[str, list[str], list[Any]]:
        keys = [self.key(lease.account, "lease"), self.key(lease.account, "state")]
        args = [self.worker_id, lease.token, "1" if stalled else "", _ms(self.state_ttl)]
        return ("release", keys, args)

    async def release(self, leases: Sequence[WatchLease]) -> None:
        """Give ``leases`` up (only those still this worker's); their accounts are free at once."""
        await self._many([self._release_call(lease, False) for lease in leases])

    async def give_up(self, leases: Sequence[WatchLease], cooldown: float) -> None:
        """Release ``leases`` because this worker's polls of them fail: they become orphans.

        For ``cooldown`` seconds a healthy worker takes an orphan even beyond its
        share; its claim says ``"adopted"``, with this worker as ``previous``.
        """
        ms = _ms(positive_seconds(cooldown, "cooldown"))
        calls = [self._release_call(lease, True) for lease in leases]
        calls += [("orphan", [self.orphans_key], [lease.account, ms]) for lease in leases]
        await self._many(calls)

    async def commit(
        self, lease: WatchLease | tuple[str, int, int], state: bytes, logs: Sequence[bytes]
    ) -> int:
        """Write one batch atomically: ``logs`` to the stream, then ``state``; the new seq.

        ``lease`` is the ``WatchLease`` (or ``(account, token, seq)``) of the last
        write this worker made or read. The script checks the fencing token and the
        lease first and writes nothing if either is no longer this worker's:
        ``LeaseLostError``. Retrying after ``StateUnavailableError`` with the same
        arguments is safe: a write Redis applied before the reply was lost is not
        applied twice.
        """
        if isinstance(lease, WatchLease):
            account, token, seq = lease.account, lease.token, lease.seq
        else:
            account, token, seq = lease
        if not isinstance(state, bytes) or not all(isinstance(log, bytes) for log in logs):
            raise InvalidInputError("state and every log must be bytes (JSON)")
        if self.stream_maxlen is not None:
            trim, trim_arg = "MAXLEN", self.stream_maxlen
        elif self.stream_max_age is not None:
            trim, trim_arg = "MINID", _ms(self.stream_max_age)
        else:
            trim, trim_arg = "", 0
        args: list[Any] = [
            self.worker_id,
            token,
            seq,
            state,
            _ms(self.state_ttl),
            trim,
            trim_arg,
            0 if self.stream_ttl is None else _ms(self.stream_ttl),
            *logs,
        ]
        keys = [
            self.key(account, "lease"),
            self.key(account, "fence"),
            self.key(account, "state"),
            self.stream_key(account),
        ]
        (result,) = await self._many([("commit", keys, args)])
        status, value = int(result[0]), result[1]
        if status == 0:
            reason = value.decode() if isinstance(value, bytes) else str(value)
            if reason == "type":
                raise InvalidInputError(
                    f"the key {self.stream_key(account)} exists and is not a stream"
                )
            raise LeaseLostError(
                f"account {account}: the write was refused, this worker no longer holds "
                f"the lease of fencing token {token} ({reason} check); nothing was written"
            )
        return int(value)

    async def read(self, account: str) -> tuple[bytes | None, int]:
        """The state last written for ``account`` and its seq (``(None, 0)`` if none)."""
        key = self.key(account, "state")
        client = self.client
        state, seq = await self._connection.call(lambda: client.hmget(key, ["state", "seq"]))
        if isinstance(state, str):  # a client made with decode_responses=True
            state = state.encode()
        return state, int(seq or 0)

    def __repr__(self) -> str:
        return (
            f"<RedisWatchStore prefix={self.stream_prefix!r} namespace={self.namespace!r} "
            f"worker={self.worker_id!r}>"
        )


@dataclass(slots=True)
class _Held:
    lease: WatchLease
    #: When this worker must consider the lease gone (monotonic), from the last renewal.
    deadline: float
    #: The state and seq written last (what a restarted watch continues from).
    state: bytes | None = None
    seq: int = 0
    task: asyncio.Task[None] | None = None
    #: Watch ends in a row (for the backoff of its restarts).
    failures: int = 0
    retry_at: float = 0.0
    #: Ends the watch at ``deadline`` unless a renewal moves it (see ``_arm``).
    timer: asyncio.TimerHandle | None = None
    #: When the account last made progress here (monotonic): claimed, polled or written.
    ok_at: float = 0.0
    #: Failed watches since then, and when the first of them failed (monotonic, and UTC).
    failed: int = 0
    failing_since: float | None = None
    failing_at: datetime | None = None
    #: Until then (monotonic) it is held beyond the share: another worker gave it up.
    adopted_until: float = 0.0


class RedisWatchCoordinator:
    """One worker's share of a watch: takes accounts, watches them, renews, rebalances.

    ``accounts`` are the names every worker is given (the same list everywhere).
    The worker takes free accounts up to ``ceil(len(accounts) / live workers)``
    (and ``max_accounts``), renews its leases and its heartbeat every ``lease / 4``
    seconds, gives up its surplus when workers join, takes expired leases over when
    workers die (it wakes up when a heartbeat or a lease runs out), and releases
    everything on a clean stop. For each account it holds it runs ``watch(name,
    state, commit)`` from the state written last; ``commit`` writes a batch through
    the fence (``RedisWatchStore.commit``). A batch the fence refuses is dropped
    with the account (its new holder fetches it again from the last written
    state); a watch that fails is started again with backoff.

    **Progress, not only presence.** A lease proves that the worker reaches Redis,
    not that it reaches Sendcloud. An account whose watch failed at least twice in
    a row, with no poll or write succeeding for ``stall_after`` seconds (default
    ``2 × lease``), is given up (``LeaseEvent`` ``released``/``stalled``) and
    listed as an orphan for ``stall_cooldown`` seconds (default ``10 × lease``): a
    healthy worker (none of its own accounts failing) takes it at its next round
    even beyond its share, and keeps it for that long. The worker that gave it up
    does not claim it again for one ``lease`` (unless nobody else took it by
    then), nor adopts orphans itself until one of its polls succeeds. A worker cut
    off from Sendcloud thus hands its accounts over within about ``stall_after``
    after its first failed poll, plus one round (``lease / 4``): see
    docs/redis-watch.md for the whole bound. Polls count through
    ``Commit.polled()`` (the ready-made watches call it) and every written batch.

    A lease whose renewal has not been confirmed for ``0.9 * lease`` seconds counts
    as lost here too: its watch is cancelled before Redis lets another worker take it.
    When Redis cannot be reached, the worker reports ``RedisDown`` (a WARNING),
    retries (writes every ``retry_interval`` seconds, the rest every tick), lets its
    leases lapse (so it writes nothing without the fence), and takes accounts again
    when Redis answers (``RedisUp``). When Redis refuses the URL's credentials,
    database or user, ``run()`` releases what it can and raises
    ``StateConfigurationError``: no retry helps.

    ``on_event`` gets every state change (``CoordinatorEvent``): ``LeaseEvent``
    for each claim, takeover, release, rebalance, give-up, loss and refusal,
    ``RedisDown`` / ``RedisUp``, ``AccountFailing`` / ``AccountRecovered``; each
    is also logged, at its ``level``, on the logger ``sendcloud_async.redis.watch``.
    An exception ``on_event`` raises is logged, and the worker goes on.
    ``run()`` returns after ``stop()``.
    """

    def __init__(
        self,
        store: RedisWatchStore,
        accounts: Sequence[str],
        watch: AccountWatch,
        *,
        max_accounts: int | None = None,
        retry_interval: float | None = None,
        stall_after: float | None = None,
        stall_cooldown: float | None = None,
        on_event: Callable[[CoordinatorEvent], None] | None = None,
    ) -> None:
        names = [account_name(a) for a in accounts]
        if not names:
            raise InvalidInputError("accounts must name at least one account")
        if len({n.lower() for n in names}) != len(names):
            raise InvalidInputError("accounts must not name an account twice")
        self.store = store
        self.accounts: tuple[str, ...] = tuple(names)
        self.watch = watch
        self.max_accounts = (
            None if max_accounts is None else positive_int(max_accounts, "max_accounts")
        )
        #: Seconds between two rounds of renewals, heartbeat and rebalancing.
        self.tick = store.lease / 4
        self.retry_interval = (
            self.tick
            if retry_interval is None
            else positive_seconds(retry_interval, "retry_interval")
        )
        #: Seconds without a successful poll (and two failed watches) before an account
        #: is given up for a healthy worker.
        self.stall_after = (
            2 * store.lease if stall_after is None else positive_seconds(stall_after, "stall_after")
        )
        #: Seconds an account given up that way stays with the healthy worker that took it.
        self.stall_cooldown = (
            10 * store.lease
            if stall_cooldown is None
            else positive_seconds(stall_cooldown, "stall_cooldown")
        )
        self.on_event = on_event
        #: Live workers seen at the last heartbeat (this one included).
        self.live_workers = 0
        #: Writes the fence refused, and leases taken, by this worker so far.
        self.refused = 0
        self.claims = 0
        self._held: dict[str, _Held] = {}
        self._joined = False
        self._stopping = asyncio.Event()
        self._down_since: float | None = None
        self._down_at: datetime | None = None
        self._failed_at = 0.0
        #: Accounts this worker gave up as failing: not claimed again before then (monotonic),
        #: and not adopted by it (beyond its share) while they are orphans.
        self._avoid: dict[str, float] = {}
        self._orphaned: dict[str, float] = {}
        #: Accounts other workers gave up as failing, as of the last round: until when.
        self._orphans: dict[str, float] = {}
        #: Accounts whose claim got no reply: Redis may have made them this worker's.
        self._unanswered: set[str] = set()
        #: When an account of this worker last made progress, and when it last gave one up.
        self._progress_at = 0.0
        self._stalled_at = -math.inf
        #: A configuration error met by a watch: ``run()`` stops and raises it.
        self._fatal: StateConfigurationError | None = None

    @property
    def held(self) -> dict[str, int]:
        """The accounts this worker holds now, with their fencing tokens.

        A lease whose renewal is overdue here is left out even before the next tick
        drops it: it may have lapsed in Redis.
        """
        now = time.monotonic()
        return {name: h.lease.token for name, h in self._held.items() if now <= h.deadline}

    @property
    def share(self) -> int:
        """How many accounts this worker may hold with the live workers it knows of."""
        share = math.ceil(len(self.accounts) / max(1, self.live_workers))
        return share if self.max_accounts is None else min(share, self.max_accounts)

    @property
    def healthy(self) -> bool:
        """Whether this worker may take orphans: none of its accounts is failing now,
        and it made progress since it last gave an account up."""
        if any(h.failing_since is not None for h in self._held.values()):
            return False
        return self._stalled_at <= self._progress_at

    def stop(self) -> None:
        """Ask ``run()`` to stop: watches end, leases are released, ``run()`` returns."""
        self._stopping.set()

    def _publish(self, event: CoordinatorEvent) -> None:
        """Log ``event`` (its sentence, at its level) and hand it to ``on_event``.

        An error of ``on_event`` is logged and goes no further: reporting must not
        stop the leases, the renewals and the fence that keep the watch exactly once.
        """
        events_logger.log(event.level, "%s", event)
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception as exc:
                logger.error(
                    "on_event raised %s for %s; the watch goes on", _error_text(exc), event.name
                )

    def _lease_event(
        self,
        kind: Literal["claimed", "released", "lost", "refused"],
        lease: WatchLease,
        reason: LeaseReason,
    ) -> None:
        previous = lease.previous if kind == "claimed" else None
        self._publish(LeaseEvent(kind, lease.account, lease.token, reason, previous))

    async def run(self) -> None:
        """Run until ``stop()``; then end every watch, release the leases and leave.

        Raises ``StateConfigurationError`` (after releasing what it can) when Redis
        refuses the URL's credentials, database or user.
        """
        try:
            while not self._stopping.is_set():
                wait = await self._tick()
                await sleep_until(self._stopping, wait)
        finally:
            await self._shutdown()
        if self._fatal is not None:
            raise self._fatal

    async def _tick(self) -> float:
        """One round: renew + heartbeat, drop what is lost, rebalance; the wait until the next."""
        sent = time.monotonic()
        wait = self.tick
        try:
            live, lost, soonest, orphans = await self.store._renew(
                [h.lease for h in self._held.values()]
            )
            self._answering(sent)
            self.live_workers = live
            self._orphans = {name: sent + left for name, left in orphans.items()}
            for name in lost:
                await self._drop(name, "lost", "gone")
            for held in self._held.values():
                self._arm(held, sent + self.store.lease * 0.9)
            if not self._joined:
                # First round: only say we are here, so that workers starting together
                # see each other before any of them takes accounts.
                self._joined = True
                return wait
            if soonest is not None:  # another worker's heartbeat ends: its accounts free up
                wait = min(wait, soonest + 0.01)
            await self._give_up_stalled()
            now = time.monotonic()
            counted = sorted(n for n, h in self._held.items() if h.adopted_until <= now)
            surplus = len(counted) - self.share
            if surplus > 0:
                await self._give_up(random.sample(counted, surplus))
            else:
                wait = min(wait, await self._take(-surplus))
        except StateUnavailableError as exc:
            self._unreachable(exc)
        now = time.monotonic()
        for name in [n for n, h in self._held.items() if now > h.deadline]:
            await self._drop(name, "lost", "expired")
        self._restart_ended(now)
        return wait

    def _claimable(self, name: str, now: float) -> bool:
        return name not in self._held and self._avoid.get(name, 0.0) <= now

    async def _take(self, wanted: int) -> float:
        """Claim up to ``wanted`` free accounts (and orphans); the wait until the next tick.

        Orphans (accounts another worker gave up as failing) are taken beyond the
        share; a lease of this worker's whose claim got no reply is taken back at
        once. Workers racing for the same free accounts lose some claims: the loser
        looks again at once (a few rounds), rather than a tick later.
        """
        soonest = self.tick
        now = time.monotonic()
        self._avoid = {n: until for n, until in self._avoid.items() if until > now}
        self._orphaned = {n: until for n, until in self._orphaned.items() if until > now}
        adoptable = (
            {n for n, until in self._orphans.items() if until > now and n not in self._orphaned}
            if self.healthy
            else set[str]()
        )
        room = math.inf if self.max_accounts is None else self.max_accounts - len(self._held)
        for _ in range(4):
            candidates = [a for a in self.accounts if self._claimable(a, now)]
            if wanted <= 0:
                candidates = [a for a in candidates if a in adoptable or a in self._unanswered]
            if not candidates or room <= 0:
                break
            random.shuffle(candidates)
            left = await self.store._leases(candidates)
            # A lease that lapses before the next tick: come back just after it does.
            soonest = min([self.tick, *(s + 0.01 for s, mine in left.values() if s > 0)])
            own = [a for a in candidates if left[a][1] and a in self._unanswered]
            self._unanswered.difference_update(a for a in candidates if not left[a][1])
            free = [a for a in candidates if left[a][0] == 0]
            orphans = [a for a in free if a in adoptable]
            others = [a for a in free if a not in adoptable]
            chosen = (own + orphans + others[: max(0, wanted)])[: int(min(room, len(candidates)))]
            if not chosen:
                break
            sent = time.monotonic()
            self._unanswered.update(chosen)  # until the reply comes: Redis may grant them
            leases, _ = await self.store.claim(chosen)
            self._unanswered.difference_update(chosen)
            for lease in leases:
                self._start(lease, sent)
            wanted -= sum(1 for lease in leases if lease.how != "adopted")
            room -= len(leases)
            if wanted <= 0 or len(leases) == len(chosen):
                break
        return soonest

    def _arm(self, held: _Held, deadline: float) -> None:
        """Move ``held``'s deadline; its watch is cancelled when the deadline passes.

        A timer, not the next tick, so that a late tick (a busy or paused process)
        never lets a watch run on a lease that may have lapsed in Redis.
        """
        held.deadline = deadline
        if held.timer is not None:
            held.timer.cancel()
        held.timer = asyncio.get_running_loop().call_at(deadline, self._expire, held)

    def _expire(self, held: _Held) -> None:
        name = held.lease.account
        if self._held.get(name) is not held or time.monotonic() < held.deadline:
            return
        del self._held[name]
        if held.task is not None:
            held.task.cancel()
        self._lease_event("lost", held.lease, "expired")

    def _start(self, lease: WatchLease, renewed: float) -> None:
        held = _Held(lease, 0.0, lease.state, lease.seq, ok_at=renewed)
        if lease.how == "adopted":
            held.adopted_until = self._orphans.get(lease.account, 0.0)
        self._arm(held, renewed + self.store.lease * 0.9)
        self._held[lease.account] = held
        self.claims += 1
        held.task = self._spawn(held)
        self._lease_event("claimed", lease, lease.how)

    def _spawn(self, held: _Held) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(
            self._watch(held), name=f"watch {held.lease.account}"
        )

    def _progress(self, held: _Held) -> None:
        """The account made progress (a poll or a write succeeded): it is not failing."""
        if self._held.get(held.lease.account) is not held:
            return
        now = time.monotonic()
        held.ok_at = self._progress_at = now
        held.failures = 0
        if held.failing_since is not None and held.failing_at is not None:
            self._publish(AccountRecovered(held.lease.account, held.failing_at, held.failed))
        held.failed = 0
        held.failing_since = held.failing_at = None

    async def _watch(self, held: _Held) -> None:
        """Watch one account; every batch goes through the fence."""
        lease = held.lease
        try:
            await self.watch(lease.account, held.state, _Committer(self, held))
        except _Overdue:
            pass
        except LeaseLostError:
            self.refused += 1
            if self._held.get(lease.account) is held:
                del self._held[lease.account]
                if held.timer is not None:
                    held.timer.cancel()
            self._lease_event("refused", lease, "fence")

    def _restart_ended(self, now: float) -> None:
        """Watches that ended (the source stopped or failed) start again, with backoff."""
        for name, held in list(self._held.items()):
            task = held.task
            if task is None:
                if now >= held.retry_at:
                    held.task = self._spawn(held)
                continue
            if not task.done():
                continue
            held.task = None
            held.failures += 1
            delay = min(60.0, self.tick * 2 ** min(held.failures, 8))
            held.retry_at = now + delay
            exc = None if task.cancelled() else task.exception()
            if isinstance(exc, StateConfigurationError):
                self._fatal = exc
                self._stopping.set()
                return
            if exc is None:
                continue
            held.failed += 1
            if held.failing_since is None:
                held.failing_since, held.failing_at = now, datetime.now(UTC)
                self._publish(AccountFailing(name, held.failing_at, _error_text(exc), delay))
            else:
                logger.warning(
                    "account %s: failed again (%s); trying again in %.1f s",
                    name,
                    _error_text(exc),
                    delay,
                )

    async def _drop(
        self, name: str, kind: Literal["lost", "released"], reason: LeaseReason
    ) -> None:
        held = self._held.pop(name, None)
        if held is None:
            return
        if held.timer is not None:
            held.timer.cancel()
        task, held.task = held.task, None
        await stop_task(task)
        self._lease_event(kind, held.lease, reason)

    async def _give_up(self, names: Sequence[str]) -> None:
        """Stop watching ``names``, then release their leases (another worker takes them)."""
        leases = [self._held[name].lease for name in names]
        for name in names:
            await self._drop(name, "released", "rebalance")
        await self.store.release(leases)

    async def _give_up_stalled(self) -> None:
        """Give up the accounts whose polls keep failing here: a healthy worker adopts them."""
        now = time.monotonic()
        stalled = [
            name
            for name, held in self._held.items()
            if held.failed >= 2 and now - held.ok_at >= self.stall_after
        ]
        if not stalled:
            return
        leases = [self._held[name].lease for name in stalled]
        self._stalled_at = now
        for name in stalled:
            # Not claimed again for a lease, unless nobody else took it by then.
            self._avoid[name] = now + self.store.lease
            self._orphaned[name] = now + self.stall_cooldown
            await self._drop(name, "released", "stalled")
        await self.store.give_up(leases, self.stall_cooldown)

    def _unreachable(self, exc: BaseException) -> None:
        self._failed_at = time.monotonic()
        if self._down_since is None:
            self._down_since = self._failed_at
            self._down_at = datetime.now(UTC)
            self._publish(RedisDown(self._down_at, describe_failure(exc), self.tick))

    def _answering(self, started: float) -> None:
        # Only a round that began after the last failure proves that Redis is back.
        if self._down_since is not None and started > self._failed_at:
            down_for = time.monotonic() - self._down_since
            since = self._down_at or datetime.now(UTC)
            self._down_since = self._down_at = None
            self._publish(RedisUp(since, down_for))

    async def _shutdown(self) -> None:
        held = list(self._held.values())
        for h in held:
            await self._drop(h.lease.account, "released", "stop")
        # Else the leases lapse by themselves.
        with contextlib.suppress(StateUnavailableError, StateConfigurationError):
            await self.store.release([h.lease for h in held])
            await self.store.leave()

    def __repr__(self) -> str:
        return (
            f"<RedisWatchCoordinator worker={self.store.worker_id!r} "
            f"holds={len(self._held)}/{len(self.accounts)}>"
        )


class _Committer:
    """The ``Commit`` of one held account: fenced writes, and polls reported as progress."""

    __slots__ = ("_coordinator", "_held")

    def __init__(self, coordinator: RedisWatchCoordinator, held: _Held) -> None:
        self._coordinator = coordinator
        self._held = held

    async def __call__(self, state: bytes, logs: Sequence[bytes], /) -> None:
        coordinator, held = self._coordinator, self._held
        lease = held.lease
        while True:
            if time.monotonic() > held.deadline:
                raise _Overdue  # the lease may have lapsed: the tick drops the account
            try:
                held.seq = await coordinator.store.commit(
                    (lease.account, lease.token, held.seq), state, list(logs)
                )
            except StateUnavailableError as exc:
                coordinator._unreachable(exc)
                await asyncio.sleep(coordinator.retry_interval)
                continue
            held.state = state
            coordinator._progress(held)
            return

    def polled(self) -> None:
        self._coordinator._progress(self._held)


def _polled(commit: Commit) -> None:
    """``commit.polled()``, if ``commit`` has it (a plain function handed by a test does not)."""
    polled = getattr(commit, "polled", None)
    if callable(polled):
        polled()


class _Overdue(Exception):
    """The lease was not renewed in time: the batch in hand is not written."""


_ENCODE: Final = msgspec.json.Encoder().encode


def source_watch(source: WatchSource) -> AccountWatch:
    """An ``AccountWatch`` that commits every batch ``source`` yields, in order.

    Every batch written counts as progress; a source that yields nothing for long
    stretches and fails now and then counts its failures as in a row.
    """

    async def watch(account: str, state: bytes | None, commit: Commit) -> None:
        batches = source(account, state)
        try:
            async for new_state, logs in batches:
                await commit(new_state, logs)
        finally:
            aclose = getattr(batches, "aclose", None)
            if aclose is not None:
                await aclose()

    return watch


def logs_watch(
    client: Callable[[str], SendcloudClient],
    *,
    integration_id: Callable[[str], int | None] = lambda name: None,
    start: str | datetime = DEFAULT_WATCH_START,
    interval: float = DEFAULT_WATCH_INTERVAL,
    page_size: int = DEFAULT_PAGE_SIZE,
    lookback: float | timedelta = DEFAULT_LOOKBACK,
) -> AccountWatch:
    """An ``AccountWatch`` over ``client(name).logs.watch(...)``; states are ``WatchState`` JSON.

    ``client`` gives the ``SendcloudClient`` of an account (e.g.
    ``pool.client(auths[name])``), ``integration_id`` the integration it watches
    (``None``: all of them). ``start`` applies to an account never written before:
    its starting state is written first, before the first poll, so that a worker
    dying early does not move the start of the next one. Each poll runs until the
    watch is caught up (``once=True``), then ``commit.polled()`` says it worked and
    the next one comes ``interval`` seconds later. Arguments are checked now.
    """
    begin_at = check_start(start)
    every = positive_seconds(interval, "interval")
    size = required_page_size(page_size)
    window = check_lookback(lookback)

    async def watch(account: str, state: bytes | None, commit: Commit) -> None:
        iid = integration_id(account)
        if state is None:
            state = _ENCODE(WatchState.initial(begin_at, integration_id=iid))
            await commit(state, [])
        current: WatchState | bytes = state
        while True:
            batches = client(account).logs.watch(
                current, integration_id=iid, page_size=size, once=True, lookback=window
            )
            async with contextlib.aclosing(batches):
                async for batch in batches:
                    await commit(_ENCODE(batch.state), [_ENCODE(log) for log in batch.items])
                    current = batch.state
            _polled(commit)
            await asyncio.sleep(every)

    return watch


class _FencedWatchStore:
    """The ``WatchStore`` of one held account: ``save`` is the fenced commit."""

    def __init__(self, account: str, state: bytes | None, commit: Commit) -> None:
        self._account = account
        self._state = state
        self._commit = commit

    async def load(self, account: str) -> AccountState | None:
        if self._state is None:
            return None
        return decode_account_state(self._state, f"the Redis state of account {account}")

    async def save(self, account: str, state: AccountState, logs: Sequence[IntegrationLog]) -> None:
        raw = _ENCODE(state)
        await self._commit(raw, [_ENCODE(log) for log in logs])
        self._state = raw


def log_watcher_watch(
    pool: AccountPool,
    accounts: Mapping[str, Auth],
    *,
    handler: Handler | None = None,
    interval: float = DEFAULT_WATCH_INTERVAL,
    **options: Any,
) -> AccountWatch:
    """An ``AccountWatch`` that runs ``LogWatcher.poll`` every ``interval`` seconds.

    The account's ``AccountState`` (log watch and failing integrations) is what
    Redis keeps: ``LogWatcher``'s store is the fence, so each batch of logs and the
    state after it are written together, exactly once. ``handler`` gets the
    ``LogWatcher`` events (``NewLogs``, ``IntegrationFailing``,
    ``IntegrationRecovered``) of the accounts this worker holds; ``options`` go to
    ``LogWatcher`` (``start``, ``page_size``, ``health``, ``integrations``) and are
    checked now. Every poll that succeeds is reported with ``commit.polled()``.
    """
    every = positive_seconds(interval, "interval")
    names = dict(accounts)
    for name in names:
        account_name(name)
    LogWatcher(pool, names, store=MemoryWatchStore(), interval=every, **options)  # checks

    async def watch(account: str, state: bytes | None, commit: Commit) -> None:
        store = _FencedWatchStore(account, state, commit)
        watcher = LogWatcher(pool, names, store=store, interval=every, **options)
        while True:
            await watcher.poll(account, handler)
            _polled(commit)
            await asyncio.sleep(every)

    return watch
