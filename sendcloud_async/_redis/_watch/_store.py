"""``RedisWatchStore``: the one place where a batch is committed, through the fence."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from ..._defaults import DEFAULT_WATCH_LEASE
from ..._errors import InvalidInputError, SendcloudError
from ..._validate import account_name, positive_int, positive_seconds
from ._leases import LeaseStore, WatchLease, ms

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.asyncio.client import Pipeline

    from .._conn import RedisConnection

DEFAULT_STREAM_PREFIX: Final = "sendcloud-async:logs"
#: How long an account's state and fence counter outlive its last claim or write.
DEFAULT_STATE_TTL: Final = 30 * 24 * 3600.0


class LeaseLostError(SendcloudError):
    """A write refused by the fence: this worker no longer holds the account's lease.

    Nothing of the batch was written; the worker that holds the lease now watches
    the account from the last state that was written.
    """


class RedisWatchStore(LeaseStore):
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

    __slots__ = ("stream_max_age", "stream_maxlen", "stream_ttl")

    def __init__(
        self,
        client: aioredis.Redis | RedisConnection,
        *,
        stream_prefix: str = DEFAULT_STREAM_PREFIX,
        namespace: str = "sendcloud-async",
        lease: float = DEFAULT_WATCH_LEASE,
        stream_maxlen: int | None = None,
        stream_max_age: float | None = None,
        stream_ttl: float | None = None,
        state_ttl: float = DEFAULT_STATE_TTL,
        worker_id: str | None = None,
    ) -> None:
        super().__init__(
            client,
            stream_prefix=stream_prefix,
            namespace=namespace,
            lease=lease,
            state_ttl=state_ttl,
            worker_id=worker_id,
        )
        if stream_maxlen is not None and stream_max_age is not None:
            raise InvalidInputError("give stream_maxlen or stream_max_age, not both")
        self.stream_maxlen = (
            None if stream_maxlen is None else positive_int(stream_maxlen, "stream_maxlen")
        )
        self.stream_max_age = (
            None if stream_max_age is None else positive_seconds(stream_max_age, "stream_max_age")
        )
        self.stream_ttl = None if stream_ttl is None else positive_seconds(stream_ttl, "stream_ttl")

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisWatchStore:
        """A store over a new ``redis.asyncio.Redis`` for ``url``, closed by ``aclose()``.

        Options of the store are taken out of ``options``; the rest configure
        redis-py as ``RedisConnection.from_url`` says (2-second socket timeouts and
        a pool of 32 connections unless given). A URL redis-py would misread (a
        database that is not a number, a bad port) is an ``InvalidInputError``.
        """
        return cls._open(url, options)

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
            trim, trim_arg = "MINID", ms(self.stream_max_age)
        else:
            trim, trim_arg = "", 0
        ttl = 0 if self.stream_ttl is None else ms(self.stream_ttl)
        args = [self.worker_id, token, seq, state, ms(self.state_ttl), trim, trim_arg, ttl, *logs]
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

    async def read_many(self, accounts: Sequence[str]) -> dict[str, bytes | None]:
        """The state last written for each of ``accounts`` (``None``: none), in one round trip."""
        names = [account_name(a) for a in accounts]
        if not names:
            return {}

        async def fill(pipe: Pipeline) -> None:
            for name in names:
                pipe.hget(self.key(name, "state"), "state")

        found = await self._pipeline(fill)
        return {
            name: state.encode() if isinstance(state, str) else state
            for name, state in zip(names, found, strict=True)
        }

    def __repr__(self) -> str:
        return (
            f"<RedisWatchStore prefix={self.stream_prefix!r} namespace={self.namespace!r} "
            f"worker={self.worker_id!r}>"
        )
