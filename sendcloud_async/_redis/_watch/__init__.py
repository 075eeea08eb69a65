"""Watching across many workers: leases with fencing tokens, shared state, a Redis Streams sink.

Every worker runs the same code against the same Redis. Each account is watched by
one worker at a time: the worker holding the account's **lease** (a key with a TTL,
renewed while it works). Every lease carries a **fencing token**, taken with
``INCR`` on the account's fence counter, so it grows on every claim. Writing a
batch -- the new logs ``XADD``-ed to the stream ``PREFIX:NAME`` and the account's
watch state -- is one Lua script that checks the token and the lease first: a
worker that lost its lease (it was paused, partitioned, or slow) can never write,
even while it still believes it holds the account. Which worker *should* hold an
account is rendezvous hashing over the live workers (``_members``); the leases
decide who does.

The modules: ``_lua`` (the scripts), ``_leases`` (claim, renew, release, give up,
the heartbeat), ``_store`` (``RedisWatchStore``: the fenced commit, the one place a
batch is written), ``_members`` (the live workers and who owns what),
``_coordinator`` (``RedisWatchCoordinator``: one worker's rounds and watches),
``_sources`` (the ready-made ``AccountWatch``es), ``_events`` (how what it reports, public
``sendcloud_async.events`` types, is named, logged and said).
Everything works on plain data: an account name, a fencing token, the watch state
as ``bytes`` and the logs as ``bytes`` (each log's JSON), so that any watch plugs in.

The keys (``NS`` the namespace, ``P`` the stream prefix; braces keep an account's
keys in the slot of its stream, for Redis Cluster) are listed in
docs/redis-watch.md: ``P:NAME`` (the stream), ``NS:watch:{P:NAME}:lease``,
``:fence`` and ``:state`` (per account), ``NS:watch:{P}:workers`` (the live
workers, scored by when their heartbeat ends) and ``NS:watch:{P}:orphans``
(accounts given up because their polls failed). No key holds a secret: an account
is named by its accounts-file name, a worker by ``HOST:PID:RANDOM``.
"""

from __future__ import annotations

from ._coordinator import RedisWatchCoordinator
from ._events import ClaimKind, CoordinatorEvent, LeaseReason, describe_event, events_logger
from ._leases import WatchLease
from ._members import owners, ranking, weight
from ._sources import AccountWatch, Commit, WatchSource, log_watcher_watch, logs_watch, source_watch
from ._store import DEFAULT_STATE_TTL, DEFAULT_STREAM_PREFIX, LeaseLostError, RedisWatchStore

__all__ = [
    "DEFAULT_STATE_TTL",
    "DEFAULT_STREAM_PREFIX",
    "AccountWatch",
    "ClaimKind",
    "Commit",
    "CoordinatorEvent",
    "LeaseLostError",
    "LeaseReason",
    "RedisWatchCoordinator",
    "RedisWatchStore",
    "WatchLease",
    "WatchSource",
    "describe_event",
    "events_logger",
    "log_watcher_watch",
    "logs_watch",
    "owners",
    "ranking",
    "source_watch",
    "weight",
]
