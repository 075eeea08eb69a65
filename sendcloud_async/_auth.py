"""Credentials: frozen, hashable, picklable values that say who the caller is.

A credentials object holds no token, task, cache or event loop: it can be used
by several clients, in two event loops one after the other, and sent to another
process. What *does* the work with credentials (attach a Basic header, fetch and
refresh an OAuth2 token) is an auth flow (``_flows.py``), one per state backend
and credentials, made by the state backend.

Every credentials value has

* ``identity``: the public part of the account's identity (the kind, and the
  Basic public key or OAuth2 client id): what a rate budget is keyed by
  (``_state.account_key``); it holds no secret;
* ``cache_key``: a digest over everything that makes its tokens or header,
  secret included, so credentials that differ in their secret never share a
  token or a client; equality and hashing use it.

Secrets are held in ``Secret`` objects whose ``repr``/``str`` never show them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Final, NoReturn

from ._errors import InvalidInputError

__all__ = ["Auth", "BasicAuth", "Secret", "digest", "mask"]


class Secret:
    """A string that never shows itself in a ``repr``, ``str`` or f-string."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        """The secret itself. Call it only where the secret goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret):
            return hmac.compare_digest(self._value.encode(), other._value.encode())
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._value)

    def __reduce__(self) -> tuple[object, ...]:
        return (Secret, (self._value,))


def mask(value: str, keep: int = 4) -> str:
    """An identifier shortened for display: the first ``keep`` characters, then ``…``."""
    if len(value) <= keep:
        return "…"
    return value[:keep] + "…"


def digest(*parts: str) -> str:
    """A one-way, versioned digest of ``parts``: what keys and cache keys are made of."""
    return hashlib.sha256("\0".join(("sendcloud-async/1", *parts)).encode()).hexdigest()[:32]


class Auth:
    """Base of the credentials a ``SendcloudClient`` accepts (a frozen value)."""

    __slots__ = ()

    #: The public part of the account's identity: ``(kind, public id)``. No secret.
    identity: tuple[str, str]
    #: A digest over everything, secret included, that makes these credentials.
    cache_key: str

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is type(self):
            assert isinstance(other, Auth)
            return hmac.compare_digest(self.cache_key, other.cache_key)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.cache_key)

    def _init(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)


class BasicAuth(Auth):
    """HTTP Basic authentication with a Sendcloud API key pair (public key, secret key)."""

    __slots__ = ("cache_key", "header", "identity", "public_key", "secret_key")

    public_key: str
    secret_key: Secret
    #: The ``Authorization`` header value, built once.
    header: Secret

    def __init__(self, public_key: str, secret_key: str) -> None:
        if not isinstance(public_key, str) or not public_key:
            raise InvalidInputError("BasicAuth needs a non-empty public_key string")
        if not isinstance(secret_key, str) or not secret_key:
            raise InvalidInputError("BasicAuth needs a non-empty secret_key string")
        if ":" in public_key:
            raise InvalidInputError("a Basic auth public_key cannot contain ':'")
        for name, value in (("public_key", public_key), ("secret_key", secret_key)):
            if any(c in value for c in "\r\n\0"):
                raise InvalidInputError(f"a Basic auth {name} cannot contain CR, LF or NUL")
        token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
        self._init(
            public_key=public_key,
            secret_key=Secret(secret_key),
            header=Secret(f"Basic {token}"),
            identity=("basic", public_key),
            cache_key=digest("basic", public_key, secret_key),
        )

    def __repr__(self) -> str:
        return f"BasicAuth(public_key={mask(self.public_key)!r}, secret_key=<redacted>)"

    def __reduce__(self) -> tuple[Any, ...]:
        return (BasicAuth, (self.public_key, self.secret_key.get_secret_value()))


#: What ``Auth.identity`` kinds exist: a value of each is accepted by every client.
KINDS: Final = ("basic", "oauth2")
