"""Auth flows: what puts credentials on a request, one flow per (state backend, credentials).

Credentials are values (``_auth.py``); a flow is the live part that goes with
them in one process: the Basic header as it is (``StaticFlow``), or an OAuth2
token fetched, cached and refreshed (``TokenFlow``). The state backend makes the
flows (``StateBackend.flow``), so every client of one backend that was given
equal credentials uses one flow, and so one token, by construction.

``TokenFlow`` (the README's "OAuth2" section says the same for users):

* **Single flight.** However many coroutines need a token at once, one token
  request is in flight; the others await the same task. The fetch runs in its
  own task, so a waiter that is cancelled does not cancel it for the others. A
  failed fetch fails every waiter with the same error and leaves nothing
  behind: the next call starts a fresh fetch. A fetch started in an event loop
  that is gone is never awaited from another one.
* **Bounded**: a fetch takes at most the attempt timeout of the call that
  started it (whatever the session's own default), and the flow's last client
  closing cancels it.
* **Proactive refresh** on the monotonic clock (``_token.read_token_response``).
* **401 on an API call**: ``invalidate`` drops the token only if it is still
  the one that was used (compare-and-invalidate), so a burst of 401s makes one
  refresh; the request is replayed once with the new token.
* **Shared across processes** when the backend has a ``TokenCache`` (Redis):
  one process of all that share it mints the token (see ``_shared_fetch``).

"Not sent" is a type: every failure that happens before the API request could
be written (the token endpoint failed, no connection could be made, the attempt
timed out while waiting for a token or a pooled connection) is raised to the
transport as ``NotSent``, which carries the public error. ``NotSent`` never
leaves the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

import aiohttp
from aiohttp import hdrs

from . import _observe
from ._auth import Auth, BasicAuth, Secret
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ClientClosedError,
    SendcloudError,
    StateUnavailableError,
)
from ._oauth2 import OAuth2ClientCredentials
from ._redact import Redactor, sanitized_cause
from ._retry import RETRYABLE_STATUSES
from ._token import Token, build_token_request, read_token_response, token_from_parts

if TYPE_CHECKING:
    from ._body import BodyLimit

__all__ = [
    "AuthFlow",
    "CachedToken",
    "NotSent",
    "StaticFlow",
    "TokenCache",
    "TokenFlow",
    "make_flow",
]

logger: Final = logging.getLogger("sendcloud_async")

_MAX_POLL: Final = 0.5


class NotSent(Exception):
    """The API request was certainly not sent; ``error`` says why.

    ``final`` errors (a rejected or undecodable token response) are not retried.
    """

    def __init__(self, error: SendcloudError, *, final: bool = False) -> None:
        super().__init__(error)
        self.error = error
        self.final = final


class AuthFlow:
    """Produces the ``Authorization`` value for the next request of one account."""

    __slots__ = ("__weakref__", "_users")

    #: Whether a 401 may be answered by refreshing the credentials and replaying once.
    refreshable: bool = False
    credentials: Auth

    def __init__(self) -> None:
        self._users = 0

    @property
    def token_requests(self) -> int:
        """How many token requests this flow has sent (0 for static credentials)."""
        return 0

    async def authorization(
        self,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - passed on to the token request
        limit: BodyLimit,
    ) -> Secret:
        """The ``Authorization`` value; raises ``NotSent`` if it cannot be had."""
        raise NotImplementedError

    async def invalidate(self, authorization: Secret) -> bool:
        """After a 401 to a request sent with ``authorization``: is one replay worth it?"""
        return False

    def at_hand(self) -> Secret | None:
        """The ``Authorization`` value if it never needs a wait (static credentials)."""
        return None

    def attach(self) -> None:
        """A client starts using this flow."""
        self._users += 1

    def detach(self) -> None:
        """A client using this flow closed; the last one ends any fetch in flight."""
        self._users = max(0, self._users - 1)
        if self._users == 0:
            self._stop()

    def _stop(self) -> None:
        """End whatever runs in the background (nothing, for static credentials)."""


class StaticFlow(AuthFlow):
    """Basic credentials: the same header on every request."""

    __slots__ = ("_header", "credentials")

    def __init__(self, credentials: BasicAuth) -> None:
        super().__init__()
        self.credentials = credentials
        self._header = credentials.header

    def at_hand(self) -> Secret:
        return self._header

    async def authorization(
        self,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
        limit: BodyLimit,
    ) -> Secret:
        return self._header


@dataclass(frozen=True, slots=True)
class CachedToken:
    """A token as a shared cache holds it: ``remaining`` seconds of its ``lifetime`` are left."""

    access_token: str
    lifetime: float
    remaining: float
    scope: str | None = None

    def __repr__(self) -> str:
        return f"CachedToken(lifetime={self.lifetime:g}, remaining={self.remaining:g})"


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


class TokenFlow(AuthFlow):
    """OAuth2 client credentials: one token, fetched in a single flight, refreshed ahead."""

    __slots__ = ("_cache", "_inflight", "_token", "_token_requests", "credentials")

    refreshable = True
    credentials: OAuth2ClientCredentials

    def __init__(self, credentials: OAuth2ClientCredentials, cache: TokenCache | None) -> None:
        super().__init__()
        self.credentials = credentials
        self._cache = cache
        self._token: Token | None = None
        self._inflight: asyncio.Task[Token] | None = None
        self._token_requests = 0

    @property
    def token_requests(self) -> int:
        return self._token_requests

    async def authorization(
        self,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
        limit: BodyLimit,
    ) -> Secret:
        token = self._token
        if token is not None and time.monotonic() < token.refresh_at:
            return token.authorization
        return (await self._refresh(session, timeout, limit)).authorization

    async def invalidate(self, authorization: Secret) -> bool:
        token = self._token
        if token is not None and token.authorization == authorization:
            self._token = None
        cache = self._cache
        if cache is not None:
            with contextlib.suppress(StateUnavailableError):
                bare = authorization.get_secret_value().removeprefix("Bearer ")
                await cache.discard(bare)
        return True

    def clear(self) -> None:
        """Forget the cached token; the next request fetches a new one."""
        self._token = None

    def _stop(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()

    async def _refresh(
        self,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
        limit: BodyLimit,
    ) -> Token:
        loop = asyncio.get_running_loop()
        task = self._inflight
        if task is not None and task.get_loop() is not loop:
            task = None  # started in an event loop that is gone: never await it here
        if task is None:
            fetch = (
                self._fetch(session, timeout, limit)
                if self._cache is None
                else self._shared_fetch(session, timeout, limit, self._cache)
            )
            task = loop.create_task(fetch)
            self._inflight = task
            task.add_done_callback(self._fetch_done)
        try:
            # shield: a cancelled waiter must not cancel the fetch the others wait for.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and (current is None or not current.cancelling()):
                failure = ClientClosedError("the client was closed while it waited for a token")
                raise NotSent(failure, final=True) from None
            raise

    def _fetch_done(self, task: asyncio.Task[Token]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            exc = task.exception()  # marks it retrieved even if every waiter went away
            if exc is None:
                self._token = task.result()

    async def _fetch(
        self,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
        limit: BodyLimit,
    ) -> Token:
        """One token request; raises ``NotSent`` with the public error on failure."""
        request = build_token_request(self.credentials)
        url = str(request.url)
        self._token_requests += 1
        failure: SendcloudError | None = None
        sent_at = time.monotonic()
        try:
            async with session.request(
                "POST",
                request.url,
                data=request.body,
                headers=request.headers,
                middlewares=(_Attach(request.authorization),),
                raise_for_status=False,
                allow_redirects=False,
                timeout=timeout,
            ) as resp:
                payload = await limit.read(resp, method="POST", url=url)
                status, headers, reason = resp.status, resp.headers, resp.reason
        except TimeoutError:
            failure = APITimeoutError("the token request timed out", method="POST", url=url)
        except aiohttp.ClientError as exc:
            failure = APIConnectionError(
                f"the token request failed: {type(exc).__name__}", method="POST", url=url
            )
            failure.__cause__ = sanitized_cause(exc)
        except SendcloudError as exc:  # the response was too large
            failure = exc
        _observe.token_fetched(url, failure or status, sent_at)
        if failure is not None:
            raise NotSent(failure, final=not isinstance(failure, APIConnectionError))
        logger.debug("POST %s -> %d in %.1f ms", url, status, (time.monotonic() - sent_at) * 1000)
        try:
            token = read_token_response(
                status,
                headers,
                payload,
                sent_at=sent_at,
                credentials=self.credentials,
                reason=reason,
                redact=_redactor(request.authorization, self.credentials),
            )
        except SendcloudError as exc:
            failure = exc
        if failure is not None:
            # Its traceback's frames hold the response body, which may echo what was sent.
            failure.__traceback__ = None
            # 5xx and 408/429 from the token endpoint go through the retry policy.
            raise NotSent(failure, final=not _transient_status(failure))
        logger.debug("obtained an OAuth2 token valid for %.0f s", token.lifetime)
        return token

    async def _shared_fetch(
        self,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
        limit: BodyLimit,
        cache: TokenCache,
    ) -> Token:
        """A token from ``cache``, or minted by exactly one process of all sharing it.

        The cache's token is used while more than the leeway of its lifetime is
        left. Otherwise, in the same atomic step, the process takes the lock if it
        is free (``SET NX`` with a TTL, so a crashed holder cannot block the others
        for longer than ``lock_ttl``), asks the token endpoint and writes the token
        with its remaining lifetime as TTL; the others ask again with a growing
        pause (20 ms up to 0.5 s) and take the lock themselves if it expires.
        Whoever waits longer than twice ``lock_ttl`` fetches a token of its own.
        When the backend is unreachable the process fetches its own token (or
        fails with ``StateUnavailableError`` if the backend was told to).
        """
        leeway = self.credentials.leeway
        try:
            owner = secrets.token_hex(8)
            pause = 0.02
            deadline = time.monotonic() + 2 * cache.lock_ttl
            while True:
                cached, locked = await cache.get_or_lock(owner, leeway)
                if cached is not None and cached.remaining > min(leeway, cached.lifetime / 2):
                    return token_from_parts(
                        cached.access_token,
                        lifetime=cached.lifetime,
                        remaining=cached.remaining,
                        leeway=leeway,
                        now=time.monotonic(),
                        scope=cached.scope,
                    )
                if locked:  # nobody holds a usable token: this process mints it
                    try:
                        token = await self._fetch(session, timeout, limit)
                        try:
                            await cache.put(_to_cached(token))
                        except StateUnavailableError:
                            if not cache.fallback_local:
                                raise
                        return token
                    finally:
                        with contextlib.suppress(StateUnavailableError):  # it expires anyway
                            await cache.unlock(owner)
                if time.monotonic() > deadline:
                    logger.warning(
                        "no shared OAuth2 token appeared within %.0f s; "
                        "fetching one for this process",
                        2 * cache.lock_ttl,
                    )
                    return await self._fetch(session, timeout, limit)
                await asyncio.sleep(pause)
                pause = min(pause * 1.5, _MAX_POLL)
        except StateUnavailableError as exc:
            if not cache.fallback_local:
                raise NotSent(exc) from None  # not sent: the policy may retry it
        return await self._fetch(session, timeout, limit)


def _redactor(authorization: Secret, credentials: OAuth2ClientCredentials) -> Redactor:
    """What a token-endpoint error must mask: the client's Basic header and its secret."""
    return Redactor.for_authorization(authorization.get_secret_value()) | Redactor(
        credentials.client_secret.get_secret_value()
    )


def _transient_status(error: SendcloudError) -> bool:
    return isinstance(error, APIError) and error.status in RETRYABLE_STATUSES


def _to_cached(token: Token) -> CachedToken:
    return CachedToken(
        access_token=token.access_token.get_secret_value(),
        lifetime=token.lifetime,
        remaining=token.expires_at - time.monotonic(),
        scope=token.scope,
    )


class _Attach:
    """A one-request aiohttp middleware that writes a wrapped header value as it is sent."""

    __slots__ = ("_value",)

    def __init__(self, value: Secret) -> None:
        self._value = value

    async def __call__(
        self, req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        req.headers[hdrs.AUTHORIZATION] = self._value.get_secret_value()
        return await handler(req)


def make_flow(credentials: Auth, cache: TokenCache | None) -> AuthFlow:
    """The flow for ``credentials`` (``cache``: a cross-process token cache, for OAuth2)."""
    if isinstance(credentials, BasicAuth):
        return StaticFlow(credentials)
    if isinstance(credentials, OAuth2ClientCredentials):
        return TokenFlow(credentials, cache)
    raise TypeError(f"no auth flow for {type(credentials).__name__}")
