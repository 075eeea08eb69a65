"""OAuth2 client credentials: one token per credentials object, refreshed without stampedes.

How it works (the README's "OAuth2" section says the same for users):

* **Single flight.** However many coroutines need a token at once, one token
  request is in flight; the others await the same task. The fetch runs in its
  own task, so a waiter that is cancelled does not cancel it for the others. A
  failed fetch fails every waiter with the same error and leaves nothing
  behind: the next call starts a fresh fetch.
* **Proactive refresh** on the monotonic clock: a token is replaced once
  ``expires_in - leeway`` seconds have passed since its request was sent (the
  leeway is capped at half the lifetime, so short-lived tokens still get
  used). A token without ``expires_in`` is used for ``default_lifetime``
  seconds (300 by default), never forever.
* **401 on an API call**: ``invalidate`` drops the token only if it is still
  the current one (compare-and-invalidate), so a burst of 401s makes one
  refresh; the request is replayed once with the new token.
* **Token endpoint failures**: 400/401 with an RFC 6749 error become
  ``AuthenticationError`` quoting ``error`` and ``error_description`` (not
  retried); 5xx and connection errors go through the client's retry policy; a
  200 without a usable token is a ``DecodeError``.
* **Security**: the token URL must be https unless its host is loopback; the
  client secret and tokens live in ``Secret`` objects and never reach a repr,
  str, log line or exception. The bearer token is only attached to requests
  for the client's ``base_url`` origin (see ``AuthMiddleware``).

authlib does what it is good at here: ``prepare_token_request`` builds the
form body, ``ClientAuth`` applies ``client_secret_basic`` and ``OAuth2Token``
holds the token response. aiohttp does the I/O.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, Final

import aiohttp
import msgspec
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749 import OAuth2Token
from authlib.oauth2.rfc6749.parameters import prepare_token_request
from yarl import URL

from ._auth import Auth, Secret, mask
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    DecodeError,
    InvalidInputError,
    SendcloudError,
    build_api_error,
)
from ._models import ErrorObject
from ._state import StateUnavailableError, TokenCache, fetch_shared
from ._validate import http_url

__all__ = ["DEFAULT_TOKEN_URL", "OAuth2ClientCredentials"]

logger: Final = logging.getLogger("sendcloud_async")

DEFAULT_TOKEN_URL: Final = "https://account.sendcloud.com/oauth2/token/"
DEFAULT_LIFETIME: Final = 300.0
DEFAULT_LEEWAY: Final = 60.0


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


class _Token:
    __slots__ = ("authorization", "expires_in", "refresh_at", "token")

    def __init__(
        self, token: OAuth2Token, authorization: str, refresh_at: float, expires_in: float
    ) -> None:
        self.token = token
        self.authorization = authorization
        self.refresh_at = refresh_at
        self.expires_in = expires_in


class OAuth2ClientCredentials(Auth):
    """OAuth2 client-credentials grant, with the client authenticated by HTTP Basic.

    One object may be shared by several clients (of the same account) in one
    event loop: they share its token.
    """

    __slots__ = (
        "_client_id",
        "_client_secret",
        "_default_lifetime",
        "_inflight",
        "_leeway",
        "_scope",
        "_shared",
        "_token",
        "_token_requests",
        "_token_url",
    )

    refreshable = True

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        token_url: str = DEFAULT_TOKEN_URL,
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
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidInputError(f"{name} must be a number of seconds, 0 or more")
        if default_lifetime <= 0:
            raise InvalidInputError("default_lifetime must be more than 0 seconds")
        self._token_url = _check_token_url(token_url)
        self._client_id = client_id
        self._client_secret = Secret(client_secret)
        self._scope = scope
        self._leeway = float(leeway)
        self._default_lifetime = float(default_lifetime)
        self._token: _Token | None = None
        self._inflight: asyncio.Task[_Token] | None = None
        self._token_requests = 0
        #: A token cache shared with other processes (``state=RedisState(...)``), if any.
        self._shared: TokenCache | None = None

    @property
    def client_id(self) -> str:
        """The OAuth2 client id (not a secret; still masked in reprs)."""
        return self._client_id

    @property
    def token_url(self) -> str:
        """Where tokens are requested."""
        return str(self._token_url)

    @property
    def token_requests(self) -> int:
        """How many token requests this object has sent (for monitoring and tests)."""
        return self._token_requests

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentials(client_id={mask(self._client_id)!r}, "
            f"client_secret=<redacted>, token_url={str(self._token_url)!r}, scope={self._scope!r})"
        )

    async def authorization(self, session: aiohttp.ClientSession) -> str:
        token = self._token
        if token is not None and time.monotonic() < token.refresh_at:
            return token.authorization
        return (await self._refresh(session)).authorization

    async def invalidate(self, authorization: str) -> bool:
        token = self._token
        if token is not None and token.authorization == authorization:
            self._token = None
        shared = self._shared
        if shared is not None:
            with contextlib.suppress(StateUnavailableError):
                await shared.discard(authorization.removeprefix("Bearer "))
        return True

    def share_tokens(self, cache: TokenCache) -> None:
        """Get tokens through ``cache``, shared with other processes (see ``_state.py``).

        Done by ``SendcloudClient(state=...)``; one credentials object uses one cache.
        """
        if self._shared is not None and self._shared is not cache:
            raise InvalidInputError(
                "this OAuth2ClientCredentials already shares its token through another "
                "state backend; create one credentials object per backend"
            )
        self._shared = cache

    def clear(self) -> None:
        """Forget the cached token; the next request fetches a new one."""
        self._token = None

    async def _refresh(self, session: aiohttp.ClientSession) -> _Token:
        task = self._inflight
        if task is None:
            shared = self._shared
            fetch = self._fetch(session) if shared is None else fetch_shared(self, session, shared)
            task = asyncio.get_running_loop().create_task(fetch)
            self._inflight = task
            task.add_done_callback(self._fetch_done)
        # shield: a cancelled waiter must not cancel the fetch the others wait for.
        return await asyncio.shield(task)

    def _fetch_done(self, task: asyncio.Task[_Token]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            exc = task.exception()  # marks it retrieved even if every waiter went away
            if exc is None:
                self._token = task.result()

    async def _fetch(self, session: aiohttp.ClientSession) -> _Token:
        body = prepare_token_request("client_credentials", scope=self._scope)
        headers: dict[str, str] = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        client_auth = ClientAuth(
            self._client_id, self._client_secret.get_secret_value(), "client_secret_basic"
        )
        url = str(self._token_url)
        _, headers, body = client_auth.prepare("POST", url, headers, body)
        del client_auth
        self._token_requests += 1
        sent_at = time.monotonic()
        try:
            async with session.request(
                "POST",
                self._token_url,
                data=body.encode(),
                headers=headers,
                middlewares=(),
                raise_for_status=False,
                allow_redirects=False,
            ) as resp:
                payload = await resp.read()
                status = resp.status
                resp_headers = resp.headers
                reason = resp.reason
        except TimeoutError as exc:
            raise _mark(
                APITimeoutError("the token request timed out", method="POST", url=url)
            ) from exc
        except aiohttp.ClientError as exc:
            raise _mark(
                APIConnectionError(
                    f"the token request failed: {type(exc).__name__}", method="POST", url=url
                )
            ) from exc
        logger.debug("POST %s -> %d in %.1f ms", url, status, (time.monotonic() - sent_at) * 1000)
        if status in (400, 401):
            raise _mark(self._rejected(status, payload, resp_headers, reason, url))
        if status >= 300:
            raise _mark(
                build_api_error(
                    status,
                    body=payload,
                    method="POST",
                    url=url,
                    headers=resp_headers,
                    reason=reason,
                )
            )
        try:
            parsed = _TOKEN_DECODER.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _mark(
                DecodeError(
                    "the token endpoint answered without a usable access_token",
                    method="POST",
                    url=url,
                    status=status,
                )
            ) from exc
        if not parsed.access_token or parsed.token_type.lower() != "bearer":
            raise _mark(
                DecodeError(
                    f"the token endpoint answered with an unusable token "
                    f"(token_type {parsed.token_type!r})",
                    method="POST",
                    url=url,
                    status=status,
                )
            )
        lifetime = parsed.expires_in
        if lifetime is None or lifetime <= 0:
            lifetime = self._default_lifetime
        leeway = min(self._leeway, lifetime / 2)
        data: dict[str, Any] = {
            "access_token": parsed.access_token,
            "token_type": "Bearer",
            "expires_in": int(lifetime),
        }
        if parsed.scope is not None:
            data["scope"] = parsed.scope
        logger.debug("obtained an OAuth2 token valid for %.0f s", lifetime)
        return _Token(
            OAuth2Token(data),
            f"Bearer {parsed.access_token}",
            refresh_at=sent_at + lifetime - leeway,
            expires_in=lifetime,
        )

    def _rejected(
        self,
        status: int,
        payload: bytes,
        headers: Any,
        reason: str | None,
        url: str,
    ) -> AuthenticationError:
        try:
            err = _OAUTH_ERROR_DECODER.decode(payload)
        except (msgspec.DecodeError, msgspec.ValidationError):
            api = build_api_error(
                status, body=payload, method="POST", url=url, headers=headers, reason=reason
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
        )

    def __reduce__(self) -> tuple[Any, ...]:
        raise TypeError("OAuth2ClientCredentials cannot be pickled (it holds a live token cache)")


def _mark(error: SendcloudError) -> SendcloudError:
    """Tag an error as coming from the token endpoint: the API request itself was not sent."""
    error.from_token_endpoint = True  # type: ignore[attr-defined]
    return error


def _check_token_url(value: str) -> URL:
    return http_url(
        value, "token_url", credentials_hint="pass the client id and secret as arguments"
    )
