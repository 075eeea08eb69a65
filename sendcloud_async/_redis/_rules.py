"""The rules every Redis piece shares: the URL and namespace it takes, what an error means.

* **the URL** (``check_redis_url``): read as redis-py reads it, and refused before
  anything is sent when redis-py would misread it;
* **the namespace** (``check_namespace``) every key begins with, and how a key
  prefix becomes a SCAN pattern that matches only itself (``glob_literal``);
* **what a failure is** (``redis_failure``): an outage that ends by itself
  (``StateUnavailableError``), a URL or a Redis someone must change
  (``StateConfigurationError``), or neither; ``describe_failure`` says what went
  wrong for a log line. ``RedisConnection.call`` (``_redis._conn``) applies it to
  every call.
"""

from __future__ import annotations

import asyncio
import re
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

from .._errors import (
    InvalidInputError,
    StateConfigurationError,
    StateUnavailableError,
    missing_extra,
)

try:
    from redis import exceptions as redis_errors
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise missing_extra("redis", "redis", "sendcloud_async.redis") from exc

__all__ = [
    "UNREACHABLE",
    "check_namespace",
    "check_redis_url",
    "describe_failure",
    "glob_literal",
    "redis_failure",
    "redis_said",
]

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


def check_redis_url(url: object) -> str:
    """``url`` if redis-py reads it as written; ``InvalidInputError`` (saying why) if not.

    redis-py takes a database it cannot read (``redis://host:6379/abc``) for database
    0 without a word, and fails on a bad port only when it connects; both are refused
    here, before anything is sent. Every ``from_url`` of the Redis pieces and the
    command line's ``--redis`` check through this function. The message quotes the
    database or the scheme, never the password: a URL with an ``@`` after its host
    (a password with ``/``, ``?`` or ``#`` not percent-encoded) is refused quoting
    nothing of it.
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
    if (
        "@" in parts.path
        or "@" in parts.fragment
        or any("@" in key for key, _ in parse_qsl(parts.query, keep_blank_values=True))
    ):
        # A password with "/", "?" or "#" ends the host part early: what follows
        # (password included) would be read as the database or the query. Quote none of it.
        raise InvalidInputError(
            "the Redis URL has an '@' after its host: percent-encode the password "
            "(a '/', '?', '#' or '@' in it must be written %2F, %3F, %23, %40); "
            "the URL is not shown, it holds the password"
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


def redis_said(exc: BaseException) -> str:
    """What ``exc`` says, on one line and cut short: Redis's own words in a message."""
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
    said = redis_said(exc)
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
        return f"{type(cause).__name__}: {redis_said(cause)}"
    return redis_said(error)
