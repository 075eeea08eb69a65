"""Where per-account state lives: rate gates, and (optionally) shared OAuth2 tokens.

A ``StateBackend`` hands out one rate gate per account and, if it can share
them between processes, one token cache per OAuth2 credential set:

* ``MemoryState`` (the default): gates live in this process, shared by every
  client of the same account; tokens stay in each ``OAuth2ClientCredentials``.
* ``sendcloud_async.redis.RedisState``: gates and tokens live in Redis, shared
  by every worker process.

Keys never contain a secret. The gate key is a hash of the API origin and the
public part of the credentials (Basic public key or OAuth2 client id): two
credential pairs of one account would need the same key to share a budget,
which only the user knows. The token key is a hash that includes the client
secret, so credentials that do not match cannot read a token minted for
others.

``fetch_shared`` is the cross-process single flight for tokens: the
in-process single flight of ``OAuth2ClientCredentials`` stays in front of it,
so one process asks the shared cache once however many coroutines wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from authlib.oauth2.rfc6749 import OAuth2Token

from ._auth import Auth, BasicAuth
from ._errors import SendcloudError
from ._ratelimit import MemoryGate, RateGate, RateLimits

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

    from ._oauth2 import OAuth2ClientCredentials, _Token

__all__ = [
    "CachedToken",
    "MemoryState",
    "StateBackend",
    "StateUnavailableError",
    "TokenCache",
    "account_key",
    "default_state",
    "fetch_shared",
    "token_key",
]

logger: Final = logging.getLogger("sendcloud_async")

_MAX_POLL: Final = 0.5


class StateUnavailableError(SendcloudError):
    """The shared state backend (Redis) could not be reached, and it was told to raise."""


class StateBackend:
    """Base of the state backends a ``SendcloudClient`` accepts as ``state=``."""

    __slots__ = ()

    def gate(self, account: str, limits: RateLimits) -> RateGate:
        """The rate gate of ``account`` (one per account: the first caller's limits apply)."""
        raise NotImplementedError

    def token_cache(self, key: str) -> TokenCache | None:
        """A cache shared across processes for the token of credentials ``key``, if any."""
        return None


class MemoryState(StateBackend):
    """Gates in this process's memory: every client of one account shares its gate.

    Gates are held weakly: one disappears with the last client using it.
    """

    __slots__ = ("_gates",)

    def __init__(self) -> None:
        self._gates: weakref.WeakValueDictionary[str, MemoryGate] = weakref.WeakValueDictionary()

    def gate(self, account: str, limits: RateLimits) -> MemoryGate:
        gate = self._gates.get(account)
        if gate is None:
            gate = MemoryGate(limits)
            self._gates[account] = gate
        return gate

    def __len__(self) -> int:
        return len(self._gates)

    def __repr__(self) -> str:
        return f"<MemoryState accounts={len(self._gates)}>"


_DEFAULT: Final = MemoryState()


def default_state() -> MemoryState:
    """The process-wide ``MemoryState`` clients use when given no ``state``."""
    return _DEFAULT


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(("sendcloud-async/1", *parts)).encode()).hexdigest()[:32]


def account_key(auth: Auth, base_url: URL) -> str:
    """The gate key of the account behind ``auth`` at ``base_url`` (no secret in it)."""
    from ._oauth2 import OAuth2ClientCredentials

    origin = f"{base_url.scheme}://{base_url.host}:{base_url.port}"
    if isinstance(auth, BasicAuth):
        return _digest("basic", origin, auth.public_key)
    if isinstance(auth, OAuth2ClientCredentials):
        return _digest("oauth2", origin, auth.client_id)
    return _digest("object", origin, f"{id(auth):x}")


def token_key(auth: OAuth2ClientCredentials) -> str:
    """The token-cache key of ``auth``: a hash over everything that makes its tokens."""
    return _digest(
        "token",
        auth.token_url,
        auth.client_id,
        auth._client_secret.get_secret_value(),
        auth._scope or "",
    )


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A token as a shared cache holds it: ``remaining`` seconds of its ``lifetime`` are left."""

    access_token: str
    lifetime: float
    remaining: float
    scope: str | None = None


class TokenCache(Protocol):
    """A token shared across processes, with a lock so that one process mints it.

    Every method raises ``StateUnavailableError`` when the backend cannot be
    reached; ``fallback_local`` says whether the caller should then fetch a
    token of its own (``True``) or fail.
    """

    fallback_local: bool
    lock_ttl: float

    async def get_or_lock(self, owner: str, leeway: float) -> tuple[CachedToken | None, bool]:
        """Atomically: the cached token if more than its leeway is left (capped at half
        its lifetime), else take the lock for ``owner`` if it is free. Returns
        ``(token or None, whether the lock was taken)``."""
        ...

    async def put(self, token: CachedToken) -> None: ...

    async def unlock(self, owner: str) -> None: ...

    async def discard(self, access_token: str) -> None: ...


def _leeway(auth: OAuth2ClientCredentials, lifetime: float) -> float:
    return min(auth._leeway, lifetime / 2)


def _usable(auth: OAuth2ClientCredentials, cached: CachedToken | None) -> bool:
    return cached is not None and cached.remaining > _leeway(auth, cached.lifetime)


def _local_token(auth: OAuth2ClientCredentials, cached: CachedToken) -> _Token:
    from ._oauth2 import _Token

    data: dict[str, object] = {
        "access_token": cached.access_token,
        "token_type": "Bearer",
        "expires_in": int(cached.lifetime),
    }
    if cached.scope is not None:
        data["scope"] = cached.scope
    refresh_at = time.monotonic() + cached.remaining - _leeway(auth, cached.lifetime)
    return _Token(
        OAuth2Token(data),
        f"Bearer {cached.access_token}",
        refresh_at=refresh_at,
        expires_in=cached.lifetime,
    )


def _to_cached(auth: OAuth2ClientCredentials, token: _Token) -> CachedToken:
    lifetime = token.expires_in
    remaining = token.refresh_at + _leeway(auth, lifetime) - time.monotonic()
    scope = token.token.get("scope")
    return CachedToken(
        access_token=str(token.token["access_token"]),
        lifetime=lifetime,
        remaining=remaining,
        scope=scope if isinstance(scope, str) else None,
    )


async def fetch_shared(
    auth: OAuth2ClientCredentials, session: aiohttp.ClientSession, cache: TokenCache
) -> _Token:
    """A token from ``cache``, or minted by exactly one process of all sharing it.

    The cache's token is used while more than the leeway of its lifetime is
    left. Otherwise, in the same atomic step, the process takes the lock if it
    is free (``SET NX`` with a TTL, so a crashed holder cannot block the others
    for longer than ``lock_ttl``), asks the token endpoint and writes the token
    with its remaining lifetime as TTL; the others ask again with a growing
    pause (20 ms up to 0.5 s) and take the lock themselves if it expires.
    Whoever waits longer than twice ``lock_ttl`` fetches a token of its own.
    When the backend is unreachable the process fetches its own token (or
    raises ``StateUnavailableError`` if the backend was told to).
    """
    try:
        owner = secrets.token_hex(8)
        pause = 0.02
        deadline = time.monotonic() + 2 * cache.lock_ttl
        while True:
            cached, locked = await cache.get_or_lock(owner, auth._leeway)
            if cached is not None and _usable(auth, cached):
                return _local_token(auth, cached)
            if locked:  # nobody holds a usable token: this process mints it
                try:
                    token = await auth._fetch(session)
                    try:
                        await cache.put(_to_cached(auth, token))
                    except StateUnavailableError:
                        if not cache.fallback_local:
                            raise
                    return token
                finally:
                    with contextlib.suppress(StateUnavailableError):  # it expires by itself
                        await cache.unlock(owner)
            if time.monotonic() > deadline:
                logger.warning(
                    "no shared OAuth2 token appeared within %.0f s; fetching one for this process",
                    2 * cache.lock_ttl,
                )
                return await auth._fetch(session)
            await asyncio.sleep(pause)
            pause = min(pause * 1.5, _MAX_POLL)
    except StateUnavailableError as exc:
        if not cache.fallback_local:
            exc.from_token_endpoint = True  # type: ignore[attr-defined]  # not sent: retryable
            raise
        return await auth._fetch(session)
