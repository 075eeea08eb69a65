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
  means is ``redis_failure``'s decision; a cancel that redis-py swallowed is
  raised (``keep_cancel``);
* **scripts** (``register_script``) and **SCAN** (``scan``: one step per call,
  under the same rules, a prefix matched literally);
* **the namespace rule** (``check_namespace``) and how a key prefix becomes a
  SCAN pattern (``glob_literal``);
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
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Self, TypeVar
from urllib.parse import parse_qsl, unquote, urlsplit

from ._aio import keep_cancel
from ._errors import (
    ClientClosedError,
    InvalidInputError,
    StateConfigurationError,
    StateUnavailableError,
    missing_extra,
)
from ._lifecycle import Facade, Lifecycle

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
    "check_namespace",
    "check_redis_url",
    "describe_failure",
    "glob_literal",
    "redis_failure",
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

#: Errors that mean "Redis cannot be reached now": the connection was refused, reset or
#: timed out (``redis_failure`` says which errors are permanent first: redis-py's
#: ``AuthenticationError`` is a ``ConnectionError`` too).
UNREACHABLE: Final = (
    redis_errors.ConnectionError,
    redis_errors.TimeoutError,
    OSError,
    asyncio.TimeoutError,
)
#: Errors of a Redis that answers but cannot serve now, and will again without anyone
#: changing the configuration: out of memory, a read-only replica during a failover, a
#: cluster that is re-sharding or has lost a master.
_BUSY: Final = (
    redis_errors.OutOfMemoryError,
    redis_errors.ReadOnlyError,
    redis_errors.TryAgainError,
    redis_errors.ClusterDownError,
)
_SCHEMES: Final = ("redis", "rediss", "unix")
_DB: Final = re.compile(r"[0-9]{1,9}")
#: Characters of Redis's own words kept in a message (a NOAUTH reply runs long).
_SAID: Final = 160
#: What a SCAN pattern must escape to match a character itself.
_GLOB_SPECIAL: Final = re.compile(r"([\\*?\[\]^])")

#: Redis's own clock, in milliseconds, so that workers on different machines agree (a
#: Lua prologue every script that needs "now" starts with).
NOW_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""


# -- the rules ------------------------------------------------------------------------------


def check_redis_url(url: object) -> str:
    """``url`` if redis-py reads it as written; ``InvalidInputError`` (saying why) if not.

    redis-py takes a database it cannot read (``redis://host:6379/abc``) for database
    0 without a word, and fails on a bad port only when it connects; both are refused
    here, before anything is sent. Every ``from_url`` of the Redis pieces and the
    command line's ``--redis`` check through this function. The message quotes the
    database or the scheme, never the password.
    """
    if not isinstance(url, str) or not url.strip():
        raise InvalidInputError("the Redis URL must be a non-empty string")
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise InvalidInputError(
            "the Redis URL must start with redis://, rediss:// or unix://, "
            f"not {scheme + '://' if scheme else 'no scheme'}"
        )
    try:
        parts.port  # noqa: B018  (urlsplit reads the port only when asked)
    except ValueError:
        raise InvalidInputError("the Redis URL's port must be a number from 0 to 65535") from None
    named: list[str] = []
    if scheme != "unix" and parts.path.strip("/"):
        named.append(unquote(parts.path).strip("/"))
    named += [value for key, value in parse_qsl(parts.query, keep_blank_values=True) if key == "db"]
    for db in named:
        if not _DB.fullmatch(db):
            shown = db if len(db) <= 40 else db[:39] + "…"
            raise InvalidInputError(
                "the Redis URL's database must be a number (redis://HOST:PORT/0, /1, …), "
                f"got {shown!r}"
            )
    return url


def check_namespace(namespace: object) -> str:
    """``namespace`` if it can begin every key of a Redis piece; ``InvalidInputError`` if not.

    Non-empty, and without ``{`` (keys put their hash tag in braces after it, and a
    brace of the namespace would move every key to the namespace's slot).
    """
    if not isinstance(namespace, str) or not namespace or "{" in namespace:
        raise InvalidInputError("namespace must be a non-empty string without '{'")
    return namespace


def glob_literal(text: str) -> str:
    """``text`` as a Redis glob pattern that matches only itself (``*``, ``?``, ``[``… escaped)."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def _said(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= _SAID else text[: _SAID - 1] + "…"


def redis_failure(exc: BaseException) -> StateUnavailableError | StateConfigurationError | None:
    """What a redis-py error means, for every Redis piece of the SDK (the one place that decides).

    * ``StateConfigurationError``: no retry can help, someone must change the URL or
      Redis -- the credentials are missing or refused (``NOAUTH``, ``WRONGPASS``, a
      password Redis has none for, a username a Redis older than 6 does not take),
      the database does not exist, or the user may not run a command (``NOPERM``);
    * ``StateUnavailableError``: an outage that ends by itself, retried by the caller
      -- the connection was refused, reset or timed out, Redis is loading its data,
      out of memory, a read-only replica, or a cluster in the middle of a change;
    * ``None``: anything else (a bug of the caller), which propagates as it is.

    The messages hold Redis's own words (no secret: Redis never repeats a password).
    """
    if isinstance(exc, StateUnavailableError | StateConfigurationError):
        return exc
    said = _said(exc)
    lowered = said.lower()
    if isinstance(exc, redis_errors.AuthenticationWrongNumberOfArgsError):
        return StateConfigurationError(
            "Redis refused the URL's username: a Redis older than 6 takes a password only "
            "(redis://:PASSWORD@HOST:PORT/DB)",
            reason="authentication",
        )
    if isinstance(exc, redis_errors.AuthenticationError | redis_errors.AuthorizationError) or (
        isinstance(exc, redis_errors.ResponseError)
        and lowered.startswith(("noauth", "wrongpass", "invalid password"))
    ):
        if "without any password configured" in lowered or "no password is set" in lowered:
            message = (
                "the Redis URL gives a password, but Redis has none set for that user: "
                f"drop it from the URL, or set one in Redis (Redis said: {said})"
            )
        elif "must be called with the client already authenticated" in lowered or (
            "authentication required" in lowered
        ):
            message = (
                "Redis wants a password and the URL gives none: use "
                "redis://:PASSWORD@HOST:PORT/DB (or redis://USER:PASSWORD@… for an ACL user)"
            )
        else:
            message = f"Redis refused the URL's username or password (Redis said: {said})"
        return StateConfigurationError(message, reason="authentication")
    if isinstance(exc, redis_errors.NoPermissionError):
        return StateConfigurationError(
            "the Redis user of the URL may not run a command the SDK needs: allow it in "
            f"Redis's ACL, or use another user (Redis said: {said})",
            reason="permission",
        )
    if isinstance(exc, redis_errors.ResponseError) and "db index" in lowered:
        return StateConfigurationError(
            "the Redis URL names a database the server does not have: use a number below "
            f"its `databases` setting (16 unless configured) (Redis said: {said})",
            reason="database",
        )
    if isinstance(exc, UNREACHABLE):
        return StateUnavailableError(f"Redis is unreachable: {type(exc).__name__}: {said}")
    if isinstance(exc, _BUSY):
        return StateUnavailableError(
            f"Redis cannot serve requests now: {type(exc).__name__}: {said}"
        )
    return None


def describe_failure(error: BaseException) -> str:
    """What went wrong, without the "Redis is unreachable" that a message around it says.

    ``StateUnavailableError``'s text begins with what it is; a log line that says
    so itself quotes only the cause (``ConnectionError: Error 111 connecting …``).
    """
    cause = error.__cause__
    if isinstance(error, StateUnavailableError) and cause is not None:
        return f"{type(cause).__name__}: {_said(cause)}"
    return _said(error)


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
                        f"{POOL_WAIT:g} s (MaxConnectionsError: {_said(exc)})"
                    ) from exc
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.05)
            except Exception as exc:
                if self.closed:  # closed while the call was on its way
                    raise self._closed_error() from exc
                if isinstance(exc, TimeoutError) and deadline.expired():
                    raise StateUnavailableError(
                        f"Redis is unreachable: no answer within {CALL_TIMEOUT:g} s"
                    ) from exc
                failure = redis_failure(exc)
                if failure is None:
                    raise
                if (
                    retried
                    or not isinstance(failure, StateUnavailableError)
                    or not isinstance(exc, redis_errors.ConnectionError)
                ):
                    raise failure from exc
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
