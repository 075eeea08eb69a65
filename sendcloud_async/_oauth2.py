"""``OAuth2ClientCredentials``: the credentials of the client-credentials grant, as a value.

The token logic lives elsewhere: building the token request and reading its
response are pure functions (``_token.py``); the single-flight, refreshing flow
that does the I/O is ``_flows.TokenFlow``, one per state backend and credentials.
"""

from __future__ import annotations

from typing import Any, Final

from yarl import URL

from ._auth import Auth, Secret, digest, mask
from ._errors import InvalidInputError
from ._validate import http_url

__all__ = ["DEFAULT_LEEWAY", "DEFAULT_LIFETIME", "DEFAULT_TOKEN_URL", "OAuth2ClientCredentials"]

DEFAULT_TOKEN_URL: Final = "https://account.sendcloud.com/oauth2/token/"
#: Seconds a token without ``expires_in`` is used for.
DEFAULT_LIFETIME: Final = 300.0
#: Seconds before expiry a token is replaced (capped at half its lifetime).
DEFAULT_LEEWAY: Final = 60.0


class OAuth2ClientCredentials(Auth):
    """OAuth2 client-credentials grant, with the client authenticated by HTTP Basic.

    A frozen value: equal credentials (same client id, secret, token URL and
    scope) are equal and hash alike, and every client of one state backend
    made with equal credentials shares one token.
    """

    __slots__ = (
        "cache_key",
        "client_id",
        "client_secret",
        "default_lifetime",
        "identity",
        "leeway",
        "scope",
        "token_url",
    )

    client_id: str
    client_secret: Secret
    #: Where tokens are requested (https, or http on a loopback host).
    token_url: str
    scope: str | None
    leeway: float
    default_lifetime: float

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        token_url: str | URL = DEFAULT_TOKEN_URL,
        scope: str | None = "api",
        leeway: float = DEFAULT_LEEWAY,
        default_lifetime: float = DEFAULT_LIFETIME,
    ) -> None:
        if not isinstance(client_id, str) or not client_id:
            raise InvalidInputError("OAuth2ClientCredentials needs a non-empty client_id string")
        if not isinstance(client_secret, str) or not client_secret:
            raise InvalidInputError(
                "OAuth2ClientCredentials needs a non-empty client_secret string"
            )
        if scope is not None and not isinstance(scope, str):
            raise InvalidInputError("scope must be a str or None")
        for name, value in (("leeway", leeway), ("default_lifetime", default_lifetime)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
                raise InvalidInputError(f"{name} must be a number of seconds, 0 or more")
            if value == float("inf"):
                raise InvalidInputError(f"{name} must be a finite number of seconds")
        if default_lifetime <= 0:
            raise InvalidInputError("default_lifetime must be more than 0 seconds")
        url = http_url(
            token_url, "token_url", credentials_hint="pass the client id and secret as arguments"
        )
        self._init(
            client_id=client_id,
            client_secret=Secret(client_secret),
            token_url=str(url),
            scope=scope,
            leeway=float(leeway),
            default_lifetime=float(default_lifetime),
            identity=("oauth2", client_id),
            cache_key=digest("token", str(url), client_id, client_secret, scope or ""),
        )

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentials(client_id={mask(self.client_id)!r}, "
            f"client_secret=<redacted>, token_url={self.token_url!r}, scope={self.scope!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (
            _rebuild,
            (
                self.client_id,
                self.client_secret,
                self.token_url,
                self.scope,
                self.leeway,
                self.default_lifetime,
            ),
        )


def _rebuild(
    client_id: str,
    client_secret: Secret,
    token_url: str,
    scope: str | None,
    leeway: float,
    default_lifetime: float,
) -> OAuth2ClientCredentials:
    return OAuth2ClientCredentials(
        client_id,
        client_secret.get_secret_value(),
        token_url=token_url,
        scope=scope,
        leeway=leeway,
        default_lifetime=default_lifetime,
    )
