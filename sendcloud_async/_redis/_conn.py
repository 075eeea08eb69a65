"""``RedisConnection``: one Redis connection pool, and the rules every Redis call follows.

Every Redis piece of the SDK -- ``RedisState`` (rate gates, OAuth2 tokens),
``RedisWatchStore`` (leases, fences, streams), the webhook ledger (through its
``RedisState``) and ``logs tail`` (through its ``RedisWatchStore``) -- reaches Redis
through a ``RedisConnection``, which decides, once for all of them:

* **the client**: ``RedisConnection.from_url`` makes a ``redis.asyncio.Redis``
  with the SDK's defaults (a ``BlockingConnectionPool`` of 32 connections, 2-second
  socket and connect timeouts, calls that queue for a free connection) and closes
  it in ``aclose()``; ``RedisConnection(client)`` borrows one and never closes it;
* **one call** (``call``): every round trip is bounded (10 s); a full connection
  pool is waited for (up to 5 s), not taken for an outage; a connection error is
  tried once more, on fresh connections (after a Redis restart every idle pooled
  connection is dead, and saying so is not an outage); what any other error
  means is ``redis_failure``'s decision (``_redis._rules``); a cancel that
  redis-py swallowed is raised (``keep_cancel``);
* **scripts** (``register_script``) and **SCAN** (``scan``: one step per call,
  under the same rules, a prefix matched literally);
* **the rules** of ``_redis._rules``, in one place for every piece: the URL
  (``check_redis_url``), the namespace (``check_namespace``), how a key prefix
  becomes a SCAN pattern (``glob_literal``), and what an error means;
* **the lifecycle**: owned or borrowed client, ``aclose()``, and
  ``ClientClosedError`` for every call after it.

A piece holds a handle of its own over the connection it is given (``borrow``):
closing the piece closes its handle -- and the client only if the piece made it
(its ``from_url``) -- so a connection shared by several pieces stays open until
whoever made it closes it, and a piece used after its ``aclose()`` says so
(``ClientClosedError``), whoever owns the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar

from .._aio import keep_cancel
from .._errors import (
    ClientClosedError,
    InvalidInputError,
    StateUnavailableError,
    missing_extra,
)
from .._lifecycle import Facade, Lifecycle
from .._redact import sanitized_cause
from ._rules import check_redis_url, glob_literal, redis_failure, redis_said

try:
    import redis.asyncio as aioredis
    from redis import exceptions as redis_errors
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("redis", "redis", "sendcloud_async.redis") from exc

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = [
    "CALL_TIMEOUT",
    "DEFAULT_MAX_CONNECTIONS",
    "NOW_LUA",
    "RedisConnection",
    "RedisPiece",
    "borrow",
]

_T = TypeVar("_T")

#: The longest one call (a round trip, or a pipeline's) may take before Redis counts as
#: unreachable: a bound even for a client made without ``socket_timeout``.
CALL_TIMEOUT: Final = 10.0
#: How long a call waits for a free connection of a full (non-blocking) redis-py pool
#: before Redis counts as unreachable.
POOL_WAIT: Final = 5.0
#: Connections of the pool ``from_url`` makes, unless told otherwise.
DEFAULT_MAX_CONNECTIONS: Final = 32
#: Socket and connect timeouts of a client ``from_url`` makes, unless told otherwise: an
#: unreachable Redis is noticed quickly.
DEFAULT_SOCKET_TIMEOUT: Final = 2.0
#: Keys asked for per SCAN step, unless told otherwise.
SCAN_COUNT: Final = 1000


#: Redis's own clock, in milliseconds, so that workers on different machines agree (a
#: Lua prologue every script that needs "now" starts with).
NOW_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""


def _make_client(url: str, options: dict[str, Any]) -> aioredis.Redis:
    """A ``redis.asyncio.Redis`` for ``url`` with the SDK's defaults (see ``from_url``)."""
    options.setdefault("socket_timeout", DEFAULT_SOCKET_TIMEOUT)
    options.setdefault("socket_connect_timeout", DEFAULT_SOCKET_TIMEOUT)
    options.setdefault("max_connections", DEFAULT_MAX_CONNECTIONS)
    # Waiting for a free connection is queueing, not an outage: no limit of its own there
    # (an unreachable Redis shows as a connect or socket timeout instead).
    options.setdefault("timeout", None)
    pool = aioredis.BlockingConnectionPool.from_url(check_redis_url(url), **options)
    return aioredis.Redis(connection_pool=pool)


# -- the owner ------------------------------------------------------------------------------


class RedisConnection(Lifecycle):
    """One Redis connection pool that every Redis piece of a process can share.

    ``RedisConnection.from_url(url, **options)`` makes a ``redis.asyncio.Redis``
    with the SDK's defaults and closes it in ``aclose()``;
    ``RedisConnection(client)`` borrows yours and never closes it. Hand it to
    ``RedisState`` and ``RedisWatchStore`` (and so to the ``RedisEventLedger`` of
    that ``RedisState``) instead of a URL or a client: the rate gates, the OAuth2
    tokens, the watch leases and the webhook ledger then use one pool. Closing a
    piece never closes a connection it was given; close the connection yourself,
    after the pieces.

    Every call of every piece goes through ``call``, under one set of rules: a
    round trip longer than 10 s, or a connection refused, reset or timed out,
    is ``StateUnavailableError`` (an outage: try again later); credentials,
    a database or a user's permission that Redis refuses are
    ``StateConfigurationError`` (no retry helps); a full pool is waited for, not
    taken for an outage, and a dead pooled connection (after a Redis restart) is
    replaced by one more try on fresh connections. After ``aclose()`` every call
    raises ``ClientClosedError``.

    Use one per event loop (redis-py's connections belong to one).
    """

    __slots__ = ("_client", "_closed", "_name", "_owns_client", "_root")

    kind = "RedisConnection"

    def __init__(self, client: aioredis.Redis) -> None:
        if not isinstance(client, aioredis.Redis):
            raise InvalidInputError(
                f"client must be a redis.asyncio.Redis, not {type(client).__name__}"
            )
        super().__init__()
        self._client = client
        self._owns_client = False
        #: What it is called in "is closed" messages: the piece it serves, if any.
        self._name = self.kind
        #: The connection this one is a handle of (``None``: it is the connection itself).
        self._root: RedisConnection | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisConnection:
        """A connection over a new ``redis.asyncio.Redis`` for ``url``, closed by ``aclose()``.

        ``options`` configure redis-py's ``BlockingConnectionPool``:
        ``max_connections`` 32 and 2-second socket and connect timeouts unless given;
        a call waits for a free connection rather than open one more (with
        thousands of accounts, calls queue). A URL redis-py would misread (a
        database that is not a number, a bad port) is an ``InvalidInputError``.
        """
        connection = cls(_make_client(url, options))
        connection._owns_client = True
        return connection

    @property
    def client(self) -> aioredis.Redis:
        """The redis-py client."""
        return self._client

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` was called (on this handle, or on the connection it shares)."""
        return self._closed or (self._root is not None and self._root._closed)

    def check_open(self) -> None:
        """Raise ``ClientClosedError`` (naming the piece it serves) if it is closed."""
        if self.closed:
            raise self._closed_error()

    def _closed_error(self) -> ClientClosedError:
        if self._closed or self._root is None:
            return ClientClosedError(f"this {self._name} is closed; create a new one to use it")
        return ClientClosedError(
            f"the RedisConnection of this {self._name} is closed; create a new one to use it"
        )

    # -- calls ---------------------------------------------------------------------------

    async def call(self, command: Callable[[], Awaitable[_T]]) -> _T:
        """``await command()`` -- one round trip (or one pipeline) -- under the rules above.

        ``StateUnavailableError`` if Redis cannot be reached, ``StateConfigurationError``
        if it refuses the URL's credentials, database or user, ``ClientClosedError``
        after ``aclose()``; any other error propagates as it is. ``command`` may run
        twice (a dead pooled connection is tried again on a fresh one): make it safe
        to repeat.
        """
        retried = False
        pool_deadline: float | None = None
        pause = 0.001
        while True:
            self.check_open()  # before every try: a retry or a wait may outlive aclose()
            try:
                async with asyncio.timeout(CALL_TIMEOUT) as deadline:
                    return await keep_cancel(command())
            except redis_errors.MaxConnectionsError as exc:
                # A full pool that does not queue (a client made without a blocking
                # pool): this is queueing, not an outage -- ask again, for a while.
                now = time.monotonic()
                pool_deadline = now + POOL_WAIT if pool_deadline is None else pool_deadline
                if now > pool_deadline:
                    raise StateUnavailableError(
                        f"Redis is unreachable: no free connection in the pool for "
                        f"{POOL_WAIT:g} s (MaxConnectionsError: {redis_said(exc)})"
                    ) from sanitized_cause(exc)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)
            except Exception as exc:
                if self.closed:  # closed while the call was on its way
                    raise self._closed_error() from sanitized_cause(exc)
                if isinstance(exc, TimeoutError) and deadline.expired():
                    raise StateUnavailableError(
                        f"Redis is unreachable: no answer within {CALL_TIMEOUT:g} s"
                    ) from sanitized_cause(exc)
                failure = redis_failure(exc)
                if failure is None:
                    raise
                if (
                    retried
                    or not isinstance(failure, StateUnavailableError)
                    or not isinstance(exc, redis_errors.ConnectionError)
                ):
                    # redis-py's frames hold the connection's password: never chained
                    raise failure from sanitized_cause(exc)
                # After a Redis restart every idle pooled connection is dead: drop them
                # and try once more on fresh ones before calling it an outage.
                retried = True
                with contextlib.suppress(redis_errors.RedisError, OSError):
                    await self._client.connection_pool.disconnect(inuse_connections=False)

    def register_script(self, script: str) -> AsyncScript:
        """``script`` (Lua) registered with the client: run it inside ``call``."""
        return self._client.register_script(script)

    async def scan(
        self,
        prefix: str,
        pattern: str = "*",
        *,
        key_type: str | None = None,
        count: int = SCAN_COUNT,
    ) -> AsyncIterator[list[str]]:
        """The keys that begin with ``prefix`` and go on as ``pattern`` says, a batch a step.

        ``prefix`` is matched literally (a namespace with ``*`` or ``[`` in it
        matches only itself); ``pattern`` is a Redis glob for the rest. ``key_type``
        keeps the keys of one Redis type (``"stream"``). Each ``SCAN`` step is one
        ``call`` (``count`` keys asked for), so an outage in the middle raises
        ``StateUnavailableError`` like any call. Keys that exist for the whole scan
        are yielded at least once (``SCAN`` may yield one twice); keys are ``str``.
        """
        match = glob_literal(prefix) + pattern
        client = self._client
        cursor = 0
        while True:
            step = functools.partial(client.scan, cursor, match=match, count=count, _type=key_type)
            following, keys = await self.call(step)
            yield [key.decode() if isinstance(key, bytes) else str(key) for key in keys]
            cursor = int(following)
            if cursor == 0:
                return

    # -- lifecycle ----------------------------------------------------------------------

    async def _close(self) -> None:
        """Close the redis-py client if ``from_url`` made it (``aclose()``, once).

        Every call raises ``ClientClosedError`` after, on every handle of this connection.
        """
        if self._owns_client:
            self._owns_client = False
            await self._client.aclose()
            await self._client.connection_pool.disconnect()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        owner = "owned" if self._owns_client else "borrowed"
        return f"<RedisConnection{state} {owner} client>"


def borrow(source: object, piece: str) -> RedisConnection:
    """A handle of ``piece``'s own over ``source`` (a ``RedisConnection`` or a redis-py client).

    The handle shares ``source``'s client and pool; closing it closes neither, and
    it counts as closed once ``source`` is. ``InvalidInputError`` for anything else.
    """
    if isinstance(source, RedisConnection):
        root = source._root or source
        handle = RedisConnection(root._client)
        handle._root = root
    elif isinstance(source, aioredis.Redis):
        handle = RedisConnection(source)
    else:
        raise InvalidInputError(
            "client must be a redis.asyncio.Redis or a sendcloud_async.redis.RedisConnection, "
            f"not {type(source).__name__}"
        )
    handle._name = piece
    return handle


def _own_options(piece: type[object]) -> frozenset[str]:
    """The keyword-only parameters of ``piece``'s constructor: the options that are its own."""
    return frozenset(
        name
        for name, parameter in inspect.signature(piece).parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    )


class RedisPiece(Facade):
    """What every Redis piece of the SDK shares: a connection handle of its own, and its lifecycle.

    A piece sets ``_connection`` (``borrow(client, ...)``) in its constructor and
    reaches Redis only through it.
    """

    __slots__ = ()

    _connection: RedisConnection

    @classmethod
    def _open(cls, url: str, options: dict[str, Any]) -> Self:
        """The piece over a new client for ``url`` that it owns (its ``from_url``).

        The options its constructor takes as keywords are its own; the rest
        configure redis-py (see ``RedisConnection.from_url``).
        """
        own = _own_options(cls)
        mine = {name: options.pop(name) for name in list(options) if name in own}
        make: Callable[..., Self] = cls
        piece = make(_make_client(url, options), **mine)
        piece._connection._owns_client = True
        return piece

    @property
    def connection(self) -> RedisConnection:
        """The ``RedisConnection`` every call of this piece goes through (its own handle)."""
        return self._connection

    @property
    def client(self) -> aioredis.Redis:
        """The redis-py client."""
        return self._connection.client

    def _lifecycle(self) -> RedisConnection:
        # Closing the piece closes its handle: its redis-py client too if ``from_url``
        # made it (never a borrowed one); a closed RedisConnection given to it counts.
        return self._connection
