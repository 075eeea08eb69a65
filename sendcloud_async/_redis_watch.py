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
  the fence refused); expires ``state_ttl`` after the last claim or write;
* ``NS:watch:{P}:workers`` -- sorted set of live workers (score: when their
  heartbeat ends, Redis ms); expires ``lease`` after the last heartbeat.

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
from datetime import datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

import msgspec

from ._aio import keep_cancel, sleep_until, stop_task
from ._errors import (
    ClientClosedError,
    InvalidInputError,
    SendcloudError,
    StateUnavailableError,
)
from ._redis_state import NOW_LUA as _NOW
from ._redis_state import UNREACHABLE as _UNREACHABLE
from ._validate import account_name, positive_int, positive_seconds, required_page_size
from ._watch import DEFAULT_LOOKBACK, WatchState, check_lookback, check_start
from ._watchers import (
    AccountState,
    Handler,
    LogWatcher,
    MemoryWatchStore,
    decode_account_state,
)

try:
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "sendcloud_async.redis needs the redis package: pip install 'sendcloud-async[redis]'"
    ) from exc

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from ._auth import Auth
    from ._client import SendcloudClient
    from ._models import IntegrationLog
    from ._pool import AccountPool

__all__ = [
    "AccountWatch",
    "Commit",
    "LeaseEvent",
    "LeaseLostError",
    "RedisWatchCoordinator",
    "RedisWatchStore",
    "WatchLease",
    "WatchSource",
    "log_watcher_watch",
    "logs_watch",
    "source_watch",
]

logger: Final = logging.getLogger("sendcloud_async")

_T = TypeVar("_T")

#: A watch source: given an account name and its saved state (``None``: never watched),
#: yields ``(new_state, logs)`` batches, each log as its JSON bytes, in delivery order.
WatchSource = Callable[[str, bytes | None], AsyncIterator[tuple[bytes, Sequence[bytes]]]]
#: Writes one batch through the fence: ``await commit(new_state, logs)``. Raises
#: ``LeaseLostError`` when the fence refuses it; retries while Redis is unreachable.
Commit = Callable[[bytes, Sequence[bytes]], Awaitable[None]]
#: Runs the watch of one account: ``await watch(name, state, commit)``, from ``state``
#: (the bytes written last, ``None``: never watched), calling ``commit`` for every
#: batch, until cancelled. ``source_watch``, ``logs_watch`` and ``log_watcher_watch``
#: make one.
AccountWatch = Callable[[str, bytes | None, Commit], Awaitable[None]]

DEFAULT_STREAM_PREFIX: Final = "sendcloud-async:logs"
#: How long an account's state and fence counter outlive its last claim or write.
DEFAULT_STATE_TTL: Final = 30 * 24 * 3600.0
_PREFIX: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
#: The longest one round trip may take before Redis counts as unreachable.
_CALL_TIMEOUT: Final = 10.0


#: KEYS: workers. ARGV: worker, ttl_ms. Returns {live workers (this one included), ms until the
#: soonest other worker's heartbeat ends (-1: no other)}.
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
return {redis.call('ZCARD', KEYS[1]), soonest}
"""
)

#: KEYS: workers. ARGV: worker.
_LEAVE: Final = "return redis.call('ZREM', KEYS[1], ARGV[1])"

#: KEYS: lease, fence, state. ARGV: worker, lease_ms, state_ttl_ms.
#: Returns {token, state or false, seq, 0} when the lease is now the worker's, or
#: {0, false, 0, pttl} when another worker holds it for pttl more ms. A lease this
#: worker already held gets a new token too: writes still on their way from its
#: earlier watch of the account are refused.
_CLAIM: Final = """
local current = redis.call('GET', KEYS[1])
if current then
  local space = string.find(current, ' ', 1, true)
  if not space or string.sub(current, 1, space - 1) ~= ARGV[1] then
    return {0, false, 0, redis.call('PTTL', KEYS[1])}
  end
end
local token = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. token, 'PX', tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]))
local saved = redis.call('HMGET', KEYS[3], 'state', 'seq')
if saved[1] or saved[2] then redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[3])) end
return {token, saved[1] or false, tonumber(saved[2] or '0'), 0}
"""

#: KEYS: lease. ARGV: worker, token, lease_ms. 1 if renewed, 0 if the lease is gone.
_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  return redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
end
return 0
"""

#: KEYS: lease. ARGV: worker, token. Deletes the lease only if it is still this one.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] .. ' ' .. ARGV[2] then
  return redis.call('DEL', KEYS[1])
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
    that a retried write is not applied twice.
    """

    account: str
    token: int
    state: bytes | None
    seq: int


@dataclass(frozen=True, slots=True)
class LeaseEvent:
    """What happened to one of this worker's leases, for logs and status lines.

    ``kind``: ``"claimed"``, ``"released"`` (rebalancing or a clean stop),
    ``"lost"`` (not renewed in time, or taken over) or ``"refused"`` (a write the
    fence refused).
    """

    kind: Literal["claimed", "released", "lost", "refused"]
    account: str
    token: int


def _default_worker_id() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:60] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


class RedisWatchStore:
    """The Redis side of a watch shared by many workers: leases, fences, states, streams.

    ``client`` is a ``redis.asyncio.Redis`` (borrowed; ``from_url`` makes one and
    ``aclose()`` closes it). ``stream_prefix`` names the streams (``PREFIX:NAME``)
    and, with ``namespace``, every other key. ``lease`` is how long a lease lasts
    after its last renewal. ``stream_maxlen`` (entries) or ``stream_max_age``
    (seconds) trims each stream on every write (approximately, ``~``: Redis trims
    whole nodes); ``stream_ttl`` lets a stream expire that long after its last write.
    ``state_ttl`` is how long an account's state outlives its last claim or write
    (an account watched again after that starts afresh).

    Every method raises ``StateUnavailableError`` when Redis cannot be reached.
    """

    __slots__ = (
        "_client",
        "_closed",
        "_owns_client",
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
        client: aioredis.Redis,
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
        if not isinstance(client, aioredis.Redis):
            raise InvalidInputError(
                f"client must be a redis.asyncio.Redis, not {type(client).__name__}"
            )
        if client.connection_pool.connection_kwargs.get("decode_responses"):
            raise InvalidInputError("client must return bytes: make it without decode_responses")
        if not isinstance(stream_prefix, str) or not _PREFIX.fullmatch(stream_prefix):
            raise InvalidInputError(
                "stream_prefix must be 1 to 100 letters, digits, '.', '_', ':' or '-' "
                f"(starting with a letter or digit), got {stream_prefix!r}"
            )
        if not isinstance(namespace, str) or not namespace or "{" in namespace:
            raise InvalidInputError("namespace must be a non-empty string without '{'")
        if stream_maxlen is not None and stream_max_age is not None:
            raise InvalidInputError("give stream_maxlen or stream_max_age, not both")
        if worker_id is not None and (
            not isinstance(worker_id, str) or not re.fullmatch(r"[A-Za-z0-9._:-]{1,100}", worker_id)
        ):
            raise InvalidInputError(
                "worker_id must be 1 to 100 letters, digits, '.', '_', ':' or '-'"
            )
        self._client = client
        self._owns_client = False
        self._closed = False
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
            name: client.register_script(text) for name, text in _SCRIPTS.items()
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisWatchStore:
        """A store over a new ``redis.asyncio.Redis`` for ``url``, closed by ``aclose()``.

        Options of the store are taken out of ``options``; the rest go to redis-py
        (2-second socket timeouts unless given).
        """
        own = {
            name: options.pop(name)
            for name in (
                "stream_prefix",
                "namespace",
                "lease",
                "stream_maxlen",
                "stream_max_age",
                "stream_ttl",
                "state_ttl",
                "worker_id",
            )
            if name in options
        }
        options.setdefault("socket_timeout", 2.0)
        options.setdefault("socket_connect_timeout", 2.0)
        store = cls(aioredis.Redis.from_url(url, **options), **own)
        store._owns_client = True
        return store

    @property
    def client(self) -> aioredis.Redis:
        """The redis-py client."""
        return self._client

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

    # -- operations -----------------------------------------------------------------

    async def _call(self, call: Callable[[], Awaitable[_T]]) -> _T:
        """``call()``; ``StateUnavailableError`` if Redis cannot be reached.

        A connection error is tried once more on fresh connections: after a Redis
        restart every idle pooled connection is dead, and saying so is not an
        outage. Every operation here may be repeated safely (see ``commit``).
        """
        if self._closed:
            raise ClientClosedError("the RedisWatchStore is closed")
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(_CALL_TIMEOUT):
                    return await keep_cancel(call())
            except redis_errors.ConnectionError as exc:
                if attempt == 1:
                    await self._client.connection_pool.disconnect(inuse_connections=False)
                    continue
                raise StateUnavailableError(
                    f"Redis is unreachable: {type(exc).__name__}: {exc}"
                ) from exc
            except _UNREACHABLE as exc:
                raise StateUnavailableError(
                    f"Redis is unreachable: {type(exc).__name__}: {exc}"
                ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    async def _many(self, calls: Sequence[tuple[str, list[str], list[Any]]]) -> list[Any]:
        """Run scripts in one pipeline (one round trip); their results in order."""
        if not calls:
            return []

        async def run() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                for name, keys, args in calls:
                    await self._scripts[name](keys=keys, args=args, client=pipe)
                results: list[Any] = await pipe.execute()
                return results

        return await self._call(run)

    async def heartbeat(self) -> int:
        """Say this worker is alive for ``lease`` more seconds; the number of live workers."""
        (result,) = await self._many(
            [("heartbeat", [self.workers_key], [self.worker_id, _ms(self.lease)])]
        )
        return int(result[0])

    async def leave(self) -> None:
        """Take this worker out of the live workers (a clean stop)."""
        await self._many([("leave", [self.workers_key], [self.worker_id])])

    async def claim(self, accounts: Sequence[str]) -> tuple[list[WatchLease], dict[str, float]]:
        """Take the leases of ``accounts`` that are free (or already this worker's).

        Every lease taken gets a new fencing token, even one this worker held:
        a write still on its way from an earlier watch is refused. Returns the
        leases now held, and for each account held by another worker how many
        seconds its lease has left.
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
        for name, (token, state, seq, pttl) in zip(names, results, strict=True):
            if int(token) > 0:
                held.append(WatchLease(name, int(token), state, int(seq)))
            else:
                others[name] = max(0, int(pttl)) / 1000
        return held, others

    async def probe(self, accounts: Sequence[str]) -> dict[str, float]:
        """Seconds left on each account's lease (0 for a free account), without claiming."""
        names = [account_name(a) for a in accounts]
        if not names:
            return {}

        async def run() -> list[Any]:
            async with self._client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.pttl(self.key(name, "lease"))
                results: list[Any] = await pipe.execute()
                return results

        return {
            name: max(0, int(pttl)) / 1000
            for name, pttl in zip(names, await self._call(run), strict=True)
        }

    async def renew(self, leases: Sequence[WatchLease]) -> tuple[int, set[str], float | None]:
        """Renew ``leases`` and the heartbeat in one round trip.

        Returns the number of live workers, the accounts whose lease is gone
        (expired or taken over), and the seconds until the soonest heartbeat of
        another worker ends (``None``: no other worker).
        """
        calls: list[tuple[str, list[str], list[Any]]] = [
            ("heartbeat", [self.workers_key], [self.worker_id, _ms(self.lease)])
        ]
        calls += [
            (
                "renew",
                [self.key(lease.account, "lease")],
                [self.worker_id, lease.token, _ms(self.lease)],
            )
            for lease in leases
        ]
        (live, soonest), *renewed = await self._many(calls)
        lost = {lease.account for lease, ok in zip(leases, renewed, strict=True) if not int(ok)}
        return int(live), lost, None if int(soonest) < 0 else int(soonest) / 1000

    async def release(self, leases: Sequence[WatchLease]) -> None:
        """Give ``leases`` up (only those still this worker's); their accounts are free at once."""
        await self._many(
            [
                ("release", [self.key(lease.account, "lease")], [self.worker_id, lease.token])
                for lease in leases
            ]
        )

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
        state, seq = await self._call(lambda: self._client.hmget(key, ["state", "seq"]))
        if isinstance(state, str):  # a client made with decode_responses=True
            state = state.encode()
        return state, int(seq or 0)

    # -- lifecycle --------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the Redis client if ``from_url`` made it; the store is unusable after."""
        self._closed = True
        if self._owns_client:
            self._owns_client = False
            await self._client.aclose()
            await self._client.connection_pool.disconnect()

    async def __aenter__(self) -> RedisWatchStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

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
    failures: int = 0
    retry_at: float = 0.0
    #: Ends the watch at ``deadline`` unless a renewal moves it (see ``_arm``).
    timer: asyncio.TimerHandle | None = None


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

    A lease whose renewal has not been confirmed for ``0.9 * lease`` seconds counts
    as lost here too: its watch is cancelled before Redis lets another worker take it.
    When Redis cannot be reached, the worker logs one WARNING, retries (writes every
    ``retry_interval`` seconds, the rest every tick), lets its leases lapse (so it
    writes nothing without the fence), and takes accounts again when Redis answers.
    ``on_event`` gets a ``LeaseEvent`` for every claim, release, loss and refusal.
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
        on_event: Callable[[LeaseEvent], None] | None = None,
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
        self._failed_at = 0.0

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

    def stop(self) -> None:
        """Ask ``run()`` to stop: watches end, leases are released, ``run()`` returns."""
        self._stopping.set()

    def _emit(
        self, kind: Literal["claimed", "released", "lost", "refused"], lease: WatchLease
    ) -> None:
        if self.on_event is not None:
            self.on_event(LeaseEvent(kind, lease.account, lease.token))

    async def run(self) -> None:
        """Run until ``stop()``; then end every watch, release the leases and leave."""
        try:
            while not self._stopping.is_set():
                wait = await self._tick()
                await sleep_until(self._stopping, wait)
        finally:
            await self._shutdown()

    async def _tick(self) -> float:
        """One round: renew + heartbeat, drop what is lost, rebalance; the wait until the next."""
        sent = time.monotonic()
        wait = self.tick
        try:
            live, lost, soonest = await self.store.renew([h.lease for h in self._held.values()])
            self.live_workers = live
            for name in lost:
                await self._drop(name, "lost")
            for held in self._held.values():
                self._arm(held, sent + self.store.lease * 0.9)
            if not self._joined:
                # First round: only say we are here, so that workers starting together
                # see each other before any of them takes accounts.
                self._joined = True
                self._answering(sent)
                return wait
            if soonest is not None:  # another worker's heartbeat ends: its accounts free up
                wait = min(wait, soonest + 0.01)
            surplus = len(self._held) - self.share
            if surplus > 0:
                await self._give_up(random.sample(sorted(self._held), surplus))
            elif surplus < 0:
                wait = min(wait, await self._take(-surplus))
            self._answering(sent)
        except StateUnavailableError as exc:
            self._unreachable(exc)
        now = time.monotonic()
        for name in [n for n, h in self._held.items() if now > h.deadline]:
            await self._drop(name, "lost")
        self._restart_ended(now)
        return wait

    async def _take(self, wanted: int) -> float:
        """Claim up to ``wanted`` free accounts; the wait until the next tick.

        Workers racing for the same free accounts lose some claims: the loser looks
        again at once (a few rounds), rather than a tick later.
        """
        soonest = self.tick
        for _ in range(4):
            candidates = [a for a in self.accounts if a not in self._held]
            random.shuffle(candidates)
            left = await self.store.probe(candidates)
            free = [a for a in candidates if left[a] == 0]
            # A lease that lapses before the next tick: come back just after it does.
            soonest = min([self.tick, *(s + 0.01 for s in left.values() if s > 0)])
            if not free:
                break
            sent = time.monotonic()
            leases, _ = await self.store.claim(free[:wanted])
            for lease in leases:
                self._start(lease, sent)
            wanted -= len(leases)
            if wanted <= 0 or len(leases) == min(len(free), wanted + len(leases)):
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
        logger.info(
            "account %s: lease not renewed in time (fencing token %d)", name, held.lease.token
        )
        self._emit("lost", held.lease)

    def _start(self, lease: WatchLease, renewed: float) -> None:
        held = _Held(lease, 0.0, lease.state, lease.seq)
        self._arm(held, renewed + self.store.lease * 0.9)
        self._held[lease.account] = held
        self.claims += 1
        held.task = self._spawn(held)
        logger.info("watching account %s (fencing token %d)", lease.account, lease.token)
        self._emit("claimed", lease)

    def _spawn(self, held: _Held) -> asyncio.Task[None]:
        return asyncio.get_running_loop().create_task(
            self._watch(held), name=f"watch {held.lease.account}"
        )

    async def _watch(self, held: _Held) -> None:
        """Watch one account; every batch goes through the fence."""
        lease = held.lease

        async def commit(state: bytes, logs: Sequence[bytes]) -> None:
            while True:
                if time.monotonic() > held.deadline:
                    raise _Overdue  # the lease may have lapsed: the tick drops the account
                try:
                    held.seq = await self.store.commit(
                        (lease.account, lease.token, held.seq), state, list(logs)
                    )
                    held.state = state
                    held.failures = 0
                    return
                except StateUnavailableError as exc:
                    self._unreachable(exc)
                    await asyncio.sleep(self.retry_interval)

        try:
            await self.watch(lease.account, held.state, commit)
        except _Overdue:
            pass
        except LeaseLostError as exc:
            self.refused += 1
            logger.warning("%s", exc)
            if self._held.get(lease.account) is held:
                del self._held[lease.account]
                if held.timer is not None:
                    held.timer.cancel()
            self._emit("refused", lease)

    def _restart_ended(self, now: float) -> None:
        """Watches that ended (the source stopped or failed) start again, with backoff."""
        for name, held in self._held.items():
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
            if exc is not None:
                logger.warning(
                    "account %s: the watch failed (%s: %s); trying again in %.1f s",
                    name,
                    type(exc).__name__,
                    exc,
                    delay,
                )

    async def _drop(self, name: str, kind: Literal["lost", "released"]) -> None:
        held = self._held.pop(name, None)
        if held is None:
            return
        if held.timer is not None:
            held.timer.cancel()
        task, held.task = held.task, None
        await stop_task(task)
        if kind == "lost":
            logger.info("account %s: lease lost (fencing token %d)", name, held.lease.token)
        self._emit(kind, held.lease)

    async def _give_up(self, names: Sequence[str]) -> None:
        """Stop watching ``names``, then release their leases (another worker takes them)."""
        leases = [self._held[name].lease for name in names]
        for name in names:
            await self._drop(name, "released")
        await self.store.release(leases)

    def _unreachable(self, exc: BaseException) -> None:
        self._failed_at = time.monotonic()
        if self._down_since is None:
            self._down_since = time.monotonic()
            logger.warning(
                "Redis is unreachable (%s); this worker writes nothing and takes no account "
                "until it answers (it asks again every %g s)",
                exc,
                self.tick,
            )

    def _answering(self, started: float) -> None:
        # Only a round that began after the last failure proves that Redis is back.
        if self._down_since is not None and started > self._failed_at:
            logger.info(
                "Redis answers again after %.1f s; watching resumes",
                time.monotonic() - self._down_since,
            )
            self._down_since = None

    async def _shutdown(self) -> None:
        held = list(self._held.values())
        for h in held:
            await self._drop(h.lease.account, "released")
        with contextlib.suppress(StateUnavailableError):  # else the leases lapse by themselves
            await self.store.release([h.lease for h in held])
            await self.store.leave()

    def __repr__(self) -> str:
        return (
            f"<RedisWatchCoordinator worker={self.store.worker_id!r} "
            f"holds={len(self._held)}/{len(self.accounts)}>"
        )


class _Overdue(Exception):
    """The lease was not renewed in time: the batch in hand is not written."""


_ENCODE: Final = msgspec.json.Encoder().encode


def source_watch(source: WatchSource) -> AccountWatch:
    """An ``AccountWatch`` that commits every batch ``source`` yields, in order."""

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
    start: str | datetime = "now",
    interval: float = 60.0,
    page_size: int = 100,
    lookback: float | timedelta = DEFAULT_LOOKBACK,
) -> AccountWatch:
    """An ``AccountWatch`` over ``client(name).logs.watch(...)``; states are ``WatchState`` JSON.

    ``client`` gives the ``SendcloudClient`` of an account (e.g.
    ``pool.client(auths[name])``), ``integration_id`` the integration it watches
    (``None``: all of them). ``start`` applies to an account never written before:
    its starting state is written first, before the first poll, so that a worker
    dying early does not move the start of the next one. Arguments are checked now.
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
        batches = client(account).logs.watch(
            state, integration_id=iid, interval=every, page_size=size, lookback=window
        )
        async with contextlib.aclosing(batches):
            async for batch in batches:
                await commit(_ENCODE(batch.state), [_ENCODE(log) for log in batch.items])

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
    interval: float = 60.0,
    **options: Any,
) -> AccountWatch:
    """An ``AccountWatch`` that runs ``LogWatcher.poll`` every ``interval`` seconds.

    The account's ``AccountState`` (log watch and failing integrations) is what
    Redis keeps: ``LogWatcher``'s store is the fence, so each batch of logs and the
    state after it are written together, exactly once. ``handler`` gets the
    ``LogWatcher`` events (``NewLogs``, ``IntegrationFailing``,
    ``IntegrationRecovered``) of the accounts this worker holds; ``options`` go to
    ``LogWatcher`` (``start``, ``page_size``, ``health``, ``integrations``) and are
    checked now.
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
            await asyncio.sleep(every)

    return watch
