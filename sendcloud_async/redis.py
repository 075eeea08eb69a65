"""Share OAuth2 tokens and rate budgets across worker processes through Redis.

::

    pip install 'sendcloud-async[redis]'

    from sendcloud_async.redis import RedisState

    async with RedisState.from_url("redis://localhost:6379/0") as state:
        async with sc.AccountPool(rate_limit=sc.RateLimits(), state=state) as pool:
            ...

Every worker process that uses the same Redis and ``namespace`` shares, per
account, one rate budget (the algorithm of ``sendcloud_async._ratelimit``, run
atomically by Lua scripts on Redis's clock) and, per OAuth2 credential set, one
access token, minted by exactly one process (``SET NX PX`` lock, see
``sendcloud_async._flows.TokenFlow._shared_fetch``).

Keys (``namespace`` is ``sendcloud-async`` by default; ``{h}`` is a hash, in
braces so that Redis Cluster keeps an account's keys in one slot):

* ``NS:{h}:safe:flight`` — GET leases in flight (sorted set, score = lease end);
  expires ``lease + window`` after the last request;
* ``NS:{h}:safe:cool`` — finished GETs cooling down (score = reusable at);
  expires ``window`` after the last release;
* ``NS:{h}:unsafe:flight``, ``NS:{h}:unsafe:cool`` — the same for POST, PATCH,
  PUT and DELETE;
* ``NS:{h}:blocked`` — when the account's 429 ``Retry-After`` ends (Redis
  time, ms); expires then;
* ``NS:{t}:token`` — the access token (JSON); expires with the token;
* ``NS:{t}:lock`` — who is minting the token; expires after ``lock_ttl``.

No key or value holds a secret except the access token itself, which every
worker needs; it lives only as long as it is valid. Protect the Redis like the
credentials (password or ACL, TLS off loopback), or keep ``state`` for rate
budgets only by using BasicAuth.

**When Redis is unreachable** (refused, timed out, restarting) nothing hangs
and, by default (``on_unavailable="local"``), nothing fails: the process logs
one WARNING and goes on with a per-process gate (``local_share`` of the limits,
e.g. 0.25 with four workers) and with tokens of its own, trying Redis again
every ``retry_interval`` seconds and logging INFO when it answers. With
``on_unavailable="raise"`` calls raise ``StateUnavailableError`` instead (the
transport retries them like a connection failure).

**When Redis refuses how it is reached** — it wants a password the URL does not
give, refuses the one it gives, has no such database, or the URL's user may not
run a command — no retry can help and nothing falls back: every Redis piece
raises ``StateConfigurationError`` (its ``reason`` is ``"authentication"``,
``"database"`` or ``"permission"``). A database that is not a number
(``redis://host/abc``, which redis-py would take for database 0) is refused by
``from_url`` with ``InvalidInputError``. ``_redis._rules.redis_failure`` is the one
place that tells a permanent error from an outage.

**One connection pool for every piece.** Each ``from_url`` makes a pool of its
own. To share one, make a ``RedisConnection`` and hand it to each piece; closing
a piece leaves a connection it was given open::

    async with RedisConnection.from_url("redis://localhost:6379/0") as connection:
        state = RedisState(connection)  # gates, tokens (and RedisEventLedger(state))
        store = RedisWatchStore(connection, lease=10.0)  # watch leases and streams
        ...

Every call of every piece goes through ``RedisConnection.call``: one time limit,
one rule for what "unreachable" is, one retry on a fresh connection after a
Redis restart, and ``ClientClosedError`` after ``aclose()``.

**What the watch reports.** ``RedisWatchCoordinator(on_event=)`` gets every state
change, a ``CoordinatorEvent``: the ``sendcloud_async.events`` types ``LeaseClaimed``,
``LeaseReleased``, ``LeaseLost``, ``LeaseRefused``, ``RedisDown``, ``RedisUp``,
``AccountFailing`` and ``AccountRecovered`` -- the same objects the subscribers of
``sendcloud_async.events`` get. ``describe_event(event)`` gives the name the command
line writes in ``--events``, the ``logging`` level and the sentence the coordinator
logs on ``sendcloud_async.redis.watch``.
"""

from __future__ import annotations

from ._errors import StateConfigurationError, StateUnavailableError
from ._redis._conn import RedisConnection
from ._redis._ledger import RedisEventLedger
from ._redis._state import RedisState
from ._redis._watch import (
    AccountWatch,
    Commit,
    CoordinatorEvent,
    LeaseLostError,
    RedisWatchCoordinator,
    RedisWatchStore,
    WatchLease,
    WatchSource,
    describe_event,
    log_watcher_watch,
    logs_watch,
    source_watch,
)

__all__ = [
    "AccountWatch",
    "Commit",
    "CoordinatorEvent",
    "LeaseLostError",
    "RedisConnection",
    "RedisEventLedger",
    "RedisState",
    "RedisWatchCoordinator",
    "RedisWatchStore",
    "StateConfigurationError",
    "StateUnavailableError",
    "WatchLease",
    "WatchSource",
    "describe_event",
    "log_watcher_watch",
    "logs_watch",
    "source_watch",
]


def _show_public_module() -> None:
    """Public classes say ``sendcloud_async.redis.Name`` in reprs and tracebacks."""
    namespace = globals()
    for name in __all__:
        value = namespace[name]
        if isinstance(value, type) and value.__module__.startswith("sendcloud_async._redis"):
            value.__module__ = __name__


_show_public_module()
