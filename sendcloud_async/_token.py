"""OAuth2 token logic without I/O: build the token request, read its response.

Both are pure functions, tested against recorded responses; the flow that sends
the request (``_flows.TokenFlow``) does only the I/O around them.

Reading a token response (the README's "OAuth2" section says the same):

* 400/401 with an RFC 6749 body become ``AuthenticationError`` quoting ``error``
  and ``error_description``; any other status of 300 or more becomes the
  ``APIError`` of its status (a 3xx is never success: the token request does not
  follow redirects).
* A 2xx must carry a usable bearer token: JSON with a non-empty ``access_token``
  of visible ASCII characters (no CR, LF, NUL or space: it goes into a header)
  and ``token_type`` bearer (any case; absent means bearer). Anything else, deep
  nesting included, is a ``DecodeError``, which is final: retrying cannot fix it.
* ``expires_in`` (seconds, a number or numeric string) is read leniently: absent,
  not a finite number or not positive means ``default_lifetime``; a lifetime is
  capped at ``MAX_LIFETIME``. The token is refreshed ``leeway`` seconds before
  it expires (the leeway is capped at half the lifetime), on the monotonic clock
  measured from when the request was *sent*.

authlib builds the request: ``prepare_token_request`` the form body and
``ClientAuth`` the ``client_secret_basic`` header, which is handed over wrapped
in ``Secret`` so that it never sits in a plain local of our frames.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import msgspec
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from multidict import CIMultiDictProxy
from yarl import URL

from ._auth import Secret
from ._error_response import build_api_error
from ._errors import AuthenticationError, DecodeError, SendcloudError
from ._models import ErrorObject
from ._oauth2 import OAuth2ClientCredentials
from ._redact import Redactor

__all__ = [
    "MAX_LIFETIME",
    "Token",
    "TokenRequest",
    "build_token_request",
    "read_token_response",
    "token_from_parts",
]

#: The longest lifetime a token is trusted for, whatever ``expires_in`` says (a day).
MAX_LIFETIME: Final = 86_400.0

_USABLE_TOKEN: Final = re.compile(r"[\x21-\x7e]+\Z")


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """A token request ready to send: ``POST url`` with ``body`` and ``headers``.

    ``authorization`` (the client's Basic header) stays wrapped until the moment
    it is written into the request.
    """

    url: URL
    body: bytes
    headers: Mapping[str, str]
    authorization: Secret

    def __repr__(self) -> str:
        return f"TokenRequest(url={str(self.url)!r}, authorization=<redacted>)"


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token: its header value, lifetime, and when (monotonic) to replace it."""

    authorization: Secret
    access_token: Secret
    lifetime: float
    refresh_at: float
    expires_at: float
    scope: str | None = None

    def __repr__(self) -> str:
        return f"Token(lifetime={self.lifetime:g}, access_token=<redacted>)"


def build_token_request(credentials: OAuth2ClientCredentials) -> TokenRequest:
    """The client-credentials token request of ``credentials`` (authlib builds it)."""
    body = prepare_token_request("client_credentials", scope=credentials.scope)
    headers: dict[str, str] = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    url = credentials.token_url
    _, headers, body = ClientAuth(
        credentials.client_id,
        credentials.client_secret.get_secret_value(),
        "client_secret_basic",
    ).prepare("POST", url, headers, body)
    authorization = Secret(headers.pop("Authorization"))
    return TokenRequest(URL(url), body.encode(), headers, authorization)


class _TokenResponse(msgspec.Struct):
    access_token: str
    token_type: str = "Bearer"
    expires_in: float | None = None
    scope: str | None = None


class _OAuthError(msgspec.Struct):
    error: str
    error_description: str | None = None


_TOKEN_DECODER: Final = msgspec.json.Decoder(_TokenResponse, strict=False)
_OAUTH_ERROR_DECODER: Final = msgspec.json.Decoder(_OAuthError)
_DECODE_FAILURES: Final = (msgspec.DecodeError, msgspec.ValidationError, RecursionError)


def lifetime_of(expires_in: float | None, default_lifetime: float) -> float:
    """The seconds a token is used for, from its ``expires_in`` (see the module docstring)."""
    if expires_in is None or not math.isfinite(expires_in) or expires_in <= 0:
        return default_lifetime
    return min(float(expires_in), MAX_LIFETIME)


def token_from_parts(
    access_token: str,
    *,
    lifetime: float,
    remaining: float,
    leeway: float,
    now: float,
    scope: str | None = None,
) -> Token:
    """A ``Token`` that has ``remaining`` of its ``lifetime`` seconds left at ``now``."""
    expires_at = now + remaining
    return Token(
        authorization=Secret(f"Bearer {access_token}"),
        access_token=Secret(access_token),
        lifetime=lifetime,
        refresh_at=expires_at - min(leeway, lifetime / 2),
        expires_at=expires_at,
        scope=scope,
    )


def read_token_response(
    status: int,
    headers: CIMultiDictProxy[str],
    body: bytes,
    *,
    sent_at: float,
    credentials: OAuth2ClientCredentials,
    reason: str | None = None,
    redact: Redactor | None = None,
) -> Token:
    """The token in a token-endpoint response, or the typed error it amounts to.

    ``sent_at`` is the monotonic time the request was sent: lifetimes count from it.
    ``redact`` masks what the request carried (the client's Basic header) wherever an
    error response echoes it.
    """
    url = credentials.token_url
    if status in (400, 401):
        raise _rejected(status, body, headers, reason, url, redact)
    if status >= 300 or status < 200:
        raise build_api_error(
            status,
            body=body,
            method="POST",
            url=url,
            headers=headers,
            reason=reason,
            redact=redact,
        )
    try:
        parsed = _TOKEN_DECODER.decode(body)
    except _DECODE_FAILURES:
        raise DecodeError(
            "the token endpoint answered without a usable access_token",
            method="POST",
            url=url,
            status=status,
        ) from None
    if not _USABLE_TOKEN.match(parsed.access_token):
        raise DecodeError(
            "the token endpoint answered with an unusable token (empty, or characters "
            "that cannot go into a header)",
            method="POST",
            url=url,
            status=status,
        )
    if parsed.token_type.lower() != "bearer":
        raise DecodeError(
            "the token endpoint answered with an unusable token "
            f"(token_type {parsed.token_type[:40]!r}, not bearer)",
            method="POST",
            url=url,
            status=status,
        )
    lifetime = lifetime_of(parsed.expires_in, credentials.default_lifetime)
    return token_from_parts(
        parsed.access_token,
        lifetime=lifetime,
        remaining=lifetime,
        leeway=credentials.leeway,
        now=sent_at,
        scope=parsed.scope,
    )


def _rejected(
    status: int,
    payload: bytes,
    headers: CIMultiDictProxy[str],
    reason: str | None,
    url: str,
    redact: Redactor | None,
) -> SendcloudError:
    try:
        err = _OAUTH_ERROR_DECODER.decode(payload)
    except _DECODE_FAILURES:
        api = build_api_error(
            status,
            body=payload,
            method="POST",
            url=url,
            headers=headers,
            reason=reason,
            redact=redact,
        )
        return AuthenticationError(
            status,
            errors=api.errors,
            method="POST",
            url=url,
            headers=api.headers,
            body=api.body,
            reason="token request rejected",
        )
    return AuthenticationError(
        status,
        errors=[ErrorObject(status=status, code=err.error, detail=err.error_description)],
        method="POST",
        url=url,
        headers=headers,
        reason="token request rejected",
        redact=redact,
    )
