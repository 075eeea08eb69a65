"""``RedisEventLedger``: the webhook ``EventLedger`` over a Redis store, shared by processes.

::

    from sendcloud_async import webhooks
    from sendcloud_async.redis import RedisEventLedger, RedisState

    state = RedisState.from_url("redis://localhost:6379/0")
    ledger = RedisEventLedger(state)
    handler = webhooks.aiohttp_handler(secret, on_event, ledger=ledger)
    app.router.add_post("/sendcloud/webhook", handler)

``RedisEventLedger`` is ``webhooks.EventLedger`` with a ``RedisLedgerStore``: the
same verdicts and ``handling`` (the ledger decides what an event's object and
delivery are, ``webhooks._ledger.event_key``); the store answers each step of the
``webhooks.LedgerStore`` protocol with one Lua script run atomically by Redis, so
two processes can never both admit the same delivery, both work on the same object
at once, or admit an event older than one already admitted.

Keys (``NS`` is the ``RedisState``'s namespace; ``{scope}`` is the object,
``parcel:ID``, ``integration:ID``, ``return:ID`` or ``event:SHA256``, in braces
so that Redis Cluster keeps an object's keys in one slot):

* ``NS:webhooks:{scope}:latest`` — the newest admitted event time (µs since the
  epoch); expires ``ttl`` after the last admission for the object;
* ``NS:webhooks:{scope}:seen:FINGERPRINT`` — one admitted delivery
  (``ACTION@µs``, or ``content``); expires ``ttl`` after it was admitted;
* ``NS:webhooks:{scope}:claim`` — the process working on the object right now
  (a random token); expires after ``lease`` seconds, so a receiver that died
  mid-event does not block the object's retries for longer.

Keys hold ids, actions, times and hashes, never a secret or a payload. The
connection handling is the ``RedisState``'s ``RedisConnection`` (``_redis._conn``):
its pool and timeouts, ``StateUnavailableError`` when Redis cannot be reached
(the receiver answers 503 and Sendcloud retries), ``ClientClosedError`` once the
``RedisState`` is closed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, cast

from .._errors import InvalidInputError
from .._validate import positive_seconds
from ..webhooks import EventLedger, LedgerKey
from ..webhooks._store import DEFAULT_TTL, Outcome

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

    from ._state import RedisState

__all__ = ["RedisEventLedger", "RedisLedgerStore"]

#: How long a claim outlives a receiver that died while handling an event, by default.
DEFAULT_LEASE: Final = 60.0

#: KEYS: latest, seen, claim. ARGV: op, at (µs, or '' for no stale check), ttl_ms,
#: lease_ms, token. op 'admit' checks and records; 'begin' checks and claims the object
#: for ``token``; 'commit' records and drops the claim; 'release' only drops the claim.
#: Returns 'new', 'duplicate', 'stale', 'busy' (claimed by another token) or 'ok'.
_LEDGER: Final = """
local op, at, ttl, lease, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if op == 'admit' or op == 'begin' then
  if redis.call('EXISTS', KEYS[2]) == 1 then return 'duplicate' end
  if at ~= '' then
    local latest = redis.call('GET', KEYS[1])
    if latest and tonumber(latest) > tonumber(at) then return 'stale' end
  end
  local holder = redis.call('GET', KEYS[3])
  if holder and holder ~= token then return 'busy' end
  if op == 'begin' then
    redis.call('SET', KEYS[3], token, 'PX', lease)
    return 'new'
  end
else
  if redis.call('GET', KEYS[3]) == token then redis.call('DEL', KEYS[3]) end
  if op == 'release' then return 'ok' end
end
redis.call('SET', KEYS[2], '1', 'PX', ttl)
if at ~= '' then
  local latest = redis.call('GET', KEYS[1])
  if latest and tonumber(latest) > tonumber(at) then
    redis.call('PEXPIRE', KEYS[1], ttl)
  else
    redis.call('SET', KEYS[1], at, 'PX', ttl)
  end
end
if op == 'admit' then return 'new' end
return 'ok'
"""


class RedisLedgerStore:
    """A ``webhooks.LedgerStore`` in Redis, shared by every process using the same namespace.

    ``state`` is borrowed (close it yourself); every call goes through its
    ``RedisConnection`` (the pool, time-outs and "unreachable" rule of every
    Redis piece), and raises ``ClientClosedError`` once ``state`` is closed.
    ``ttl`` is how long an admitted delivery and an object's newest time are
    remembered (default one day; keep it at least ``parse_event``'s
    ``max_age``); ``lease`` bounds how long a receiver that died while handling
    an event keeps its object claimed (make it longer than a handler can take;
    default 60 s). Redis's memory limits bound its size.
    """

    __slots__ = ("_connection", "_prefix", "_script", "_state", "lease", "ttl")

    def __init__(
        self, state: RedisState, *, ttl: float = DEFAULT_TTL, lease: float = DEFAULT_LEASE
    ) -> None:
        from ._state import RedisState

        if not isinstance(state, RedisState):
            raise InvalidInputError(f"state must be a RedisState, got {type(state).__name__}")
        self.ttl = positive_seconds(ttl, "ttl")
        self.lease = positive_seconds(lease, "lease")
        self._state = state
        self._connection = state.connection
        self._prefix = f"{state.namespace}:webhooks"
        self._script: AsyncScript = self._connection.register_script(_LEDGER)

    def __repr__(self) -> str:
        return (
            f"<RedisLedgerStore namespace={self._state.namespace!r} "
            f"ttl={self.ttl:g} lease={self.lease:g}>"
        )

    async def admit(self, key: LedgerKey) -> Outcome:
        return await self._outcome("admit", key)

    async def claim(self, key: LedgerKey, token: str) -> Outcome:
        return await self._outcome("begin", key, token)

    async def commit(self, key: LedgerKey, token: str) -> None:
        await self._run("commit", key, token)

    async def release(self, key: LedgerKey, token: str) -> None:
        await self._run("release", key, token)

    async def size(self) -> int:
        """The admitted deliveries Redis remembers: its ``NS:webhooks:{…}:seen:*`` keys.

        Walks the keyspace with ``SCAN`` (expired keys are not returned), one round
        trip per thousand keys: a figure for monitoring, not for every request.
        """
        found: set[str] = set()  # SCAN may return a key twice
        async for keys in self._connection.scan(self._prefix, ":{*}:seen:*"):
            found.update(keys)
        return len(found)

    def _keys_of(self, key: LedgerKey) -> list[str]:
        base = f"{self._prefix}:{{{key.scope}}}"
        return [f"{base}:latest", f"{base}:seen:{key.fingerprint}", f"{base}:claim"]

    async def _run(self, op: str, key: LedgerKey, token: str = "") -> str:
        keys = self._keys_of(key)
        args: list[str | int] = [
            op,
            "" if key.at is None else key.at,
            max(1, int(self.ttl * 1000)),
            max(1, int(self.lease * 1000)),
            token,
        ]

        async def call() -> object:
            return await self._script(keys=keys, args=args)

        result = await self._connection.call(call)
        return result.decode() if isinstance(result, bytes) else str(result)

    async def _outcome(self, op: str, key: LedgerKey, token: str = "") -> Outcome:
        # The script answers one of the four (the ledger checks every store's answer).
        return cast("Outcome", await self._run(op, key, token))


class RedisEventLedger(EventLedger):
    """An ``EventLedger`` over a ``RedisLedgerStore``: shared by every process using ``state``.

    ``state`` is borrowed (close it yourself). ``ttl`` is how long an admitted
    delivery and an object's newest time are remembered (default one day; keep
    it at least ``parse_event``'s ``max_age``); ``lease`` bounds how long a
    receiver that died while handling an event keeps its object claimed (make
    it longer than a handler can take; default 60 s). Redis's memory limits
    bound its size; ``await ledger.size()`` counts the deliveries Redis
    remembers, from every process. ``counts`` counts this process's verdicts.
    """

    def __init__(
        self, state: RedisState, *, ttl: float = DEFAULT_TTL, lease: float = DEFAULT_LEASE
    ) -> None:
        super().__init__(RedisLedgerStore(state, ttl=ttl, lease=lease))
