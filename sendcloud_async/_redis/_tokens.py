"""The OAuth2 token cache of one credential set in Redis: the cache of ``RedisState.token_cache``.

Per credential set, every worker that uses the same Redis and namespace shares one
access token, minted by exactly one process: the token and a lock (``SET NX PX``)
are read and taken by one Lua script (``TOKEN_SCRIPTS``, which ``RedisState``
registers and sends in its batched pipelines); ``_flows.TokenFlow`` decides when
to mint.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final, Protocol

import msgspec

from .._flows import CachedToken

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["TOKEN_SCRIPTS", "RedisTokenCache", "TokenHost"]

logger: Final = logging.getLogger("sendcloud_async")

#: KEYS: token, lock. ARGV: owner, lock_ms, leeway_ms. Returns {value or false, pttl, locked}:
#: the token while more than its leeway (capped at half its lifetime) is left; otherwise
#: the lock for ``owner`` is taken if free (locked = 1), or said to be held if ``owner``
#: holds it already (a call tried again after its reply was lost).
_TOKEN_OR_LOCK: Final = """
local value = redis.call('GET', KEYS[1])
local pttl = redis.call('PTTL', KEYS[1])
if value then
  local ok, stored = pcall(cjson.decode, value)
  if ok and type(stored) == 'table' and tonumber(stored.lifetime) then
    local leeway = math.min(tonumber(ARGV[3]), tonumber(stored.lifetime) * 500)
    if pttl > leeway then return {value, pttl, 0} end
  end
end
local got = redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', tonumber(ARGV[2]))
if got or redis.call('GET', KEYS[2]) == ARGV[1] then return {value or false, pttl, 1} end
return {value or false, pttl, 0}
"""

#: KEYS: token. ARGV: access_token. Deletes the token only if it is still that one.
_DISCARD_TOKEN: Final = """
local value = redis.call('GET', KEYS[1])
if value and cjson.decode(value).access_token == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: KEYS: token. ARGV: value, ms.
_PUT_TOKEN: Final = "return redis.call('SET', KEYS[1], ARGV[1], 'PX', tonumber(ARGV[2]))"

#: KEYS: lock. ARGV: owner. Deletes the lock only if the caller still holds it.
_UNLOCK: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

#: The cache's scripts, by the name ``TokenHost._batched`` runs them by.
TOKEN_SCRIPTS: Final[Sequence[tuple[str, str]]] = (
    ("token_or_lock", _TOKEN_OR_LOCK),
    ("put_token", _PUT_TOKEN),
    ("discard_token", _DISCARD_TOKEN),
    ("unlock", _UNLOCK),
)


class _StoredToken(msgspec.Struct):
    access_token: str
    lifetime: float
    scope: str | None = None


_TOKEN_ENCODER: Final = msgspec.json.Encoder()
_TOKEN_DECODER: Final = msgspec.json.Decoder(_StoredToken)


class TokenHost(Protocol):
    """What a token cache reads of the ``RedisState`` it belongs to."""

    @property
    def on_unavailable(self) -> str: ...

    @property
    def lock_ttl(self) -> float: ...

    def _key(self, hashed: str, suffix: str) -> str: ...

    def _batched(
        self, name: str, keys: list[str], args: list[str | int]
    ) -> asyncio.Future[Any]: ...


class RedisTokenCache:
    """The ``TokenCache`` of one OAuth2 credential set in Redis."""

    __slots__ = ("_key", "_lock", "_state", "fallback_local", "lock_ttl")

    def __init__(self, state: TokenHost, key: str) -> None:
        self._state = state
        self._key = state._key(key, "token")
        self._lock = state._key(key, "lock")
        self.fallback_local = state.on_unavailable == "local"
        self.lock_ttl = state.lock_ttl

    async def get_or_lock(self, owner: str, leeway: float) -> tuple[CachedToken | None, bool]:
        value, pttl, locked = await self._state._batched(
            "token_or_lock",
            [self._key, self._lock],
            [owner, int(self.lock_ttl * 1000), int(leeway * 1000)],
        )
        return self._decode(value, int(pttl)), bool(locked)

    @staticmethod
    def _decode(value: bytes | str | None, pttl: int) -> CachedToken | None:
        if not value or pttl <= 0:
            return None
        try:
            stored = _TOKEN_DECODER.decode(value)
        except (msgspec.DecodeError, msgspec.ValidationError):
            logger.warning("ignoring an undecodable OAuth2 token in Redis")
            return None
        return CachedToken(stored.access_token, stored.lifetime, pttl / 1000, stored.scope)

    async def put(self, token: CachedToken) -> None:
        px = int(token.remaining * 1000)
        if px <= 0:
            return
        value = _TOKEN_ENCODER.encode(_StoredToken(token.access_token, token.lifetime, token.scope))
        await self._state._batched("put_token", [self._key], [value.decode(), px])

    async def unlock(self, owner: str) -> None:
        await self._state._batched("unlock", [self._lock], [owner])

    async def discard(self, access_token: str) -> None:
        await self._state._batched("discard_token", [self._key], [access_token])
