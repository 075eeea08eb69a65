"""``RedisState``: rate gates and OAuth2 tokens shared by worker processes through Redis.

The public module is ``sendcloud_async.redis`` (its docstring has the key layout
and the behaviour when Redis is unreachable); this module holds the state
backend itself, so that the webhook ledger can build on it without importing the
public module. Its gates are ``_redis._gate`` and its token caches
``_redis._tokens``; the state sends their scripts, batched into one pipeline per
event-loop turn. Every call goes through the state's ``RedisConnection``
(``_redis._conn``), which decides what an outage is; the state adds only its pause
after one (``retry_interval``), during which the gates and the token cache fall
back at once.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import secrets
import time
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from .._errors import (
    ClientClosedError,
    InvalidInputError,
    StateConfigurationError,
    StateUnavailableError,
)
from .._ratelimit import RateLimits
from .._state import StateBackend
from .._validate import positive_seconds
from ._conn import RedisConnection, RedisPiece, borrow
from ._gate import GATE_SCRIPTS, RedisGate
from ._rules import check_namespace, redis_failure
from ._tokens import TOKEN_SCRIPTS, RedisTokenCache

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.commands.core import AsyncScript

__all__ = ["RedisState"]

logger: Final = logging.getLogger("sendcloud_async")

_T = TypeVar("_T")


def _again(
    exc: StateUnavailableError | StateConfigurationError | ClientClosedError,
) -> BaseException:
    """A fresh copy of ``exc`` for one more waiter (an exception is raised in one place)."""
    if isinstance(exc, StateConfigurationError):
        return StateConfigurationError(str(exc), reason=exc.reason)
    return type(exc)(str(exc))


#: A script queued for the next pipeline: name, keys, args, and where its result goes.
_Queued = tuple[str, list[str], list[str | int], "asyncio.Future[Any] | None"]


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
            name: connection.register_script(text) for name, text in (*GATE_SCRIPTS, *TOKEN_SCRIPTS)
        }
        self._gates: weakref.WeakValueDictionary[str, RedisGate] = weakref.WeakValueDictionary()
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

    def gate(self, account: str, limits: RateLimits) -> RedisGate:
        gate = self._gates.get(account)
        if gate is None:
            gate = RedisGate(self, account, limits)
            self._gates[account] = gate
        return gate

    def token_cache(self, key: str) -> RedisTokenCache:
        return RedisTokenCache(self, key)

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
