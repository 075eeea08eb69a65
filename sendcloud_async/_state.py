"""Where per-account state lives: rate gates, auth flows, and (optionally) shared tokens.

A ``StateBackend`` hands out, per account, one rate gate and one auth flow:

* ``MemoryState`` (the default): gates and flows live in this process, shared by
  every client of the same account;
* ``sendcloud_async.redis.RedisState``: gates and OAuth2 tokens live in Redis,
  shared by every worker process; the flows in each process get their tokens
  through it.

``StateBackend.flow(credentials)`` returns the same flow for equal credentials
(while any client uses it), so equal credentials share one OAuth2 token by
construction. Flows are held weakly: one goes with the last client using it.

Keys never contain a secret. The gate key (``account_key``) is a digest of the API
origin and the public part of the credentials (``Auth.identity``): two credential
pairs of one account would need the same key to share a budget, which only the
user knows. Token keys are ``Auth.cache_key``, a digest that includes the
secret, so credentials that do not match cannot read a token minted for others.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Final

from ._auth import Auth, digest
from ._errors import StateUnavailableError
from ._flows import AuthFlow, CachedToken, TokenCache, make_flow
from ._ratelimit import MemoryGate, RateGate, RateLimits

if TYPE_CHECKING:
    from yarl import URL

__all__ = [
    "CachedToken",
    "MemoryState",
    "StateBackend",
    "StateUnavailableError",
    "TokenCache",
    "account_key",
    "default_state",
]


class StateBackend:
    """Base of the state backends a ``SendcloudClient`` accepts as ``state=``."""

    __slots__ = ("__weakref__", "_flows")

    def __init__(self) -> None:
        self._flows: weakref.WeakValueDictionary[str, AuthFlow] = weakref.WeakValueDictionary()

    def gate(self, account: str, limits: RateLimits) -> RateGate:
        """The rate gate of ``account`` (one per account: the first caller's limits apply)."""
        raise NotImplementedError

    def token_cache(self, key: str) -> TokenCache | None:
        """A cache shared across processes for the token of credentials ``key``, if any."""
        return None

    def flow(self, credentials: Auth) -> AuthFlow:
        """The auth flow of ``credentials``: the same one for equal credentials."""
        key = credentials.cache_key
        try:
            flows = self._flows
        except AttributeError:  # a subclass that did not call StateBackend.__init__
            flows = self._flows = weakref.WeakValueDictionary()
        flow = flows.get(key)
        if flow is None:
            cache = self.token_cache(key) if credentials.identity[0] == "oauth2" else None
            flow = make_flow(credentials, cache)
            flows[key] = flow
        return flow


class MemoryState(StateBackend):
    """Gates and flows in this process's memory, shared by every client of one account.

    Both are held weakly: one disappears with the last client using it.
    """

    __slots__ = ("_gates",)

    def __init__(self) -> None:
        super().__init__()
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


def account_key(auth: Auth, base_url: URL) -> str:
    """The key of the account behind ``auth`` at ``base_url``: its budget's (no secret in it).

    The one definition of "which account": the API origin and ``auth.identity``.
    """
    kind, public_id = auth.identity
    return digest(kind, f"{base_url.scheme}://{base_url.host}:{base_url.port}", public_id)
