"""Credentials, and the one seam through which they reach a request.

An ``Auth`` object knows how to produce an ``Authorization`` header value and
whether a 401 is worth one replay with fresh credentials. It never sees the
request itself: ``AuthMiddleware`` (an aiohttp client middleware) applies it,
and only to requests whose origin is the API's origin, on every hop, so a
redirect or a foreign ``Link`` never carries a credential elsewhere.

Secrets are held in ``Secret`` objects whose ``repr``/``str`` never show them.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Final

from aiohttp import hdrs

from ._errors import InvalidInputError, SendcloudError

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

__all__ = ["Auth", "AuthMiddleware", "BasicAuth", "Secret"]


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
            import hmac

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


class Auth:
    """Base of the credential strategies a ``SendcloudClient`` accepts."""

    __slots__ = ()

    #: Whether a 401 may be answered by refreshing the credentials and replaying once.
    refreshable: bool = False

    async def authorization(self, session: aiohttp.ClientSession) -> str:
        """The ``Authorization`` header value for the next request."""
        raise NotImplementedError

    async def invalidate(self, authorization: str) -> bool:
        """Called after a 401 answered a request sent with ``authorization``.

        Returns ``True`` when fresh credentials may exist and one replay is worth it.
        """
        return False

    async def aclose(self) -> None:
        """Release what the strategy holds (nothing, for static credentials)."""


class BasicAuth(Auth):
    """HTTP Basic authentication with a Sendcloud API key pair (public key, secret key)."""

    __slots__ = ("_header", "_public_key")

    def __init__(self, public_key: str, secret_key: str) -> None:
        if not isinstance(public_key, str) or not public_key:
            raise InvalidInputError("BasicAuth needs a non-empty public_key string")
        if not isinstance(secret_key, str) or not secret_key:
            raise InvalidInputError("BasicAuth needs a non-empty secret_key string")
        if ":" in public_key:
            raise InvalidInputError("a Basic auth public_key cannot contain ':'")
        self._public_key: Final = public_key
        token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
        self._header: Final = Secret(f"Basic {token}")

    @property
    def public_key(self) -> str:
        """The public API key (a user name, not a secret; still masked in reprs)."""
        return self._public_key

    async def authorization(self, session: aiohttp.ClientSession) -> str:
        return self._header.get_secret_value()

    def __repr__(self) -> str:
        return f"BasicAuth(public_key={mask(self._public_key)!r}, secret_key=<redacted>)"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BasicAuth):
            return self._header == other._header
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._header)


def origin_of(url: URL) -> tuple[str, str | None, int | None]:
    """(scheme, host, port) with the port made explicit: what "same origin" compares."""
    return (url.scheme, url.host, url.port)


class AuthMiddleware:
    """aiohttp client middleware applying an ``Auth`` to requests for one origin.

    On a 401 from a refreshable strategy it invalidates the credential that was
    used (only if it is still current, so a burst of 401s makes one refresh),
    fetches a fresh one and replays the request once. A second 401 is returned
    to the caller as is.
    """

    __slots__ = ("_auth", "_origin", "_session")

    def __init__(self, auth: Auth, origin: tuple[str, str | None, int | None]) -> None:
        self._auth = auth
        self._origin = origin
        self._session: aiohttp.ClientSession | None = None

    def bind(self, session: aiohttp.ClientSession) -> None:
        """The session token requests go through."""
        self._session = session

    async def __call__(
        self, req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        url = req.url
        if (url.scheme, url.host, url.port) != self._origin:
            # Not the API's origin: only a redirect gets here (next-page links are
            # checked before). Following it would send the session's own headers
            # (aiohttp strips only Authorization) and a 307/308 body there, and take
            # its answer for the API's: refuse, as for a foreign Link.
            raise SendcloudError(
                "refusing to follow a redirect to another origin "
                f"({url.scheme}://{url.host}:{url.port}); no request was sent there"
            )
        session = self._session
        assert session is not None, "AuthMiddleware used before bind()"
        value = await self._auth.authorization(session)
        req.headers[hdrs.AUTHORIZATION] = value
        resp = await handler(req)
        if resp.status != 401 or not self._auth.refreshable:
            return resp
        if not await self._auth.invalidate(value):
            return resp
        resp.release()
        value = await self._auth.authorization(session)
        req.headers[hdrs.AUTHORIZATION] = value
        return await handler(req)
