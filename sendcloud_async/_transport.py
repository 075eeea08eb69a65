"""The one request path: every API call goes through ``Transport.request``.

It owns (or borrows) the aiohttp session, applies auth through the
``AuthMiddleware``, sends, retries according to ``RetryPolicy``, maps error
statuses to exceptions and returns the body bytes for the caller to decode
with a decoder built once per type.

Resilience, in short (the README's "Retries, timeouts and errors" has the table):

* Each attempt is bounded by the client's ``timeout`` (an aiohttp ``total``
  timeout: waiting for a pooled connection, connecting, sending and reading the
  whole body all count). A call makes at most ``1 + max_retries`` attempts.
* Whether a failed attempt may have reached the server (``sent``) decides if a
  non-idempotent request may be repeated. It is ``False`` only when the
  connection could not be made: ``ClientConnectorError``, aiohttp's
  ``ConnectionTimeoutError``, or the total timeout firing while the request was
  still waiting for a connection (in ``BaseConnector.connect``) or for an OAuth2
  token. aiohttp itself resends a GET or DELETE once, at once, when a connection
  drops before the response starts; it never does so for POST or PATCH.
* Cancelling the calling task at any point (waiting for a connection, sending,
  reading, sleeping before a retry) leaves nothing behind: ``async with`` on the
  response releases or closes the connection, and nothing runs in the background.
* Logging (logger ``sendcloud_async``): DEBUG per attempt (method, URL, status or
  error, elapsed, attempt), INFO per retry of a 429 and WARNING per other retry
  (reason and wait). URLs are shown without user info; no header is ever logged.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import aiohttp
import msgspec
from multidict import CIMultiDictProxy
from yarl import URL

from ._auth import Auth, AuthMiddleware, origin_of
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ClientClosedError,
    DecodeError,
    RateLimitError,
    SendcloudError,
    build_api_error,
    parse_retry_after,
)
from ._retry import RETRYABLE_STATUSES, RetryEvent, RetryPolicy, retry_testing
from ._version import __version__

if TYPE_CHECKING:
    from ._ratelimit import RateGate

__all__ = ["Response", "Transport", "TransportConfig"]

logger: Final = logging.getLogger("sendcloud_async")

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)


class _Decoder(Protocol[_T_co]):
    """A msgspec decoder, or anything with the same ``decode``."""

    def decode(self, buf: bytes, /) -> _T_co: ...


USER_AGENT: Final = f"sendcloud-async/{__version__} aiohttp/{aiohttp.__version__}"
_GET_HEADERS: Final = {"Accept": "application/json", "User-Agent": USER_AGENT}
_JSON_HEADERS: Final = {**_GET_HEADERS, "Content-Type": "application/json"}


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Client configuration, normalised and validated once."""

    base_url: URL
    timeout: aiohttp.ClientTimeout
    retry: RetryPolicy

    @property
    def base(self) -> str:
        """``base_url`` as an encoded string without a trailing slash, to append paths to."""
        return str(self.base_url)

    @property
    def origin(self) -> tuple[str, str | None, int | None]:
        return origin_of(self.base_url)


class Response:
    """A fully read response: nothing stays open once the caller has it."""

    __slots__ = ("body", "headers", "method", "status", "url")

    def __init__(
        self, method: str, url: URL, status: int, headers: CIMultiDictProxy[str], body: bytes
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body

    def decode(self, decoder: _Decoder[_T]) -> _T:
        """The body decoded by ``decoder``; ``DecodeError`` if it does not fit."""
        try:
            return decoder.decode(self.body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise DecodeError(
                f"could not decode the {self.status} response: {exc}",
                method=self.method,
                url=display_url(self.url),
                status=self.status,
            ) from exc


def display_url(url: URL) -> str:
    """The URL as shown in errors and logs: never with user info."""
    if url.user is not None or url.password is not None:
        url = url.with_user(None)
    return str(url)


class Transport:
    """Sends requests for one client."""

    __slots__ = (
        "_auth",
        "_closed",
        "_config",
        "_gate",
        "_middlewares",
        "_owns_session",
        "_root",
        "_session",
    )

    def __init__(
        self,
        config: TransportConfig,
        auth: Auth,
        session: aiohttp.ClientSession | None = None,
        *,
        gate: RateGate | None = None,
    ) -> None:
        self._config = config
        self._auth = auth
        #: The account's rate gate (``SendcloudClient(rate_limit=...)``); None: no gate.
        self._gate = gate
        self._session = session
        self._owns_session = session is None
        self._closed = False
        middleware = AuthMiddleware(auth, config.origin)
        if session is not None:
            middleware.bind(session)
        self._middlewares: tuple[AuthMiddleware, ...] = (middleware,)
        #: The transport owning the session; ``self`` unless made by ``derive``.
        self._root = self

    def derive(self, config: TransportConfig) -> Transport:
        """A transport with another config that shares this one's session, auth and lifecycle."""
        root = self._root
        derived = object.__new__(Transport)
        derived._config = config
        derived._auth = root._auth
        derived._middlewares = root._middlewares
        derived._session = None
        derived._owns_session = False
        derived._closed = False
        derived._root = root
        derived._gate = root._gate
        return derived

    @property
    def config(self) -> TransportConfig:
        return self._config

    @property
    def closed(self) -> bool:
        return self._root._closed

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use (inside the running loop)."""
        if self._root is not self:
            return self._root.session()
        if self._closed:
            raise ClientClosedError(
                "this SendcloudClient is closed; create a new one to make more requests"
            )
        session = self._session
        if session is None:
            session = aiohttp.ClientSession(
                timeout=self._config.timeout,
                cookie_jar=aiohttp.DummyCookieJar(),
                connector=aiohttp.TCPConnector(limit=100, limit_per_host=0),
            )
            self._session = session
            self._middlewares[0].bind(session)
        elif session.closed:
            raise ClientClosedError(
                "the aiohttp.ClientSession given to this SendcloudClient is closed"
            )
        return session

    async def aclose(self) -> None:
        """Close the session if this transport created it; never a borrowed one.

        A derived transport owns nothing: closing it does nothing.
        """
        if self._closed or self._root is not self:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def request(
        self,
        method: str,
        url: URL,
        *,
        body: bytes | None = None,
        idempotent: bool = True,
        timeout: aiohttp.ClientTimeout | None = None,  # noqa: ASYNC109
        max_retries: int | None = None,
    ) -> Response:
        """Send ``method url`` (retrying per policy) and return the read response.

        Raises an ``APIError`` subclass for an error status, ``APIConnectionError``
        or ``APITimeoutError`` when the server could not be reached in time.
        """
        session = self.session()
        gate = self._gate
        policy = self._config.retry
        headers = _GET_HEADERS if body is None else _JSON_HEADERS
        timeout = timeout or self._config.timeout
        attempt = 0
        debug = logger.isEnabledFor(logging.DEBUG)
        started = 0.0
        while True:
            attempt += 1
            if debug:
                started = time.monotonic()
            error: Exception
            sent = True
            retry_after: float | None = None
            status: int | None = None
            idempotent_attempt = idempotent
            exc_shared: Exception | None = None
            if gate is not None:  # wait for the account's budget; outside the attempt's timeout
                lease = await gate.acquire(method)
            try:
                async with session.request(
                    method,
                    url,
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    middlewares=self._middlewares,
                    raise_for_status=False,
                ) as resp:
                    payload = await resp.read()
                    status = resp.status
                    if debug:
                        logger.debug(
                            "%s %s -> %d in %.1f ms (attempt %d)",
                            method,
                            display_url(url),
                            status,
                            (time.monotonic() - started) * 1000,
                            attempt,
                        )
                    if status < 400:
                        return Response(method, resp.url, status, resp.headers, payload)
                    error = build_api_error(
                        status,
                        body=payload,
                        method=method,
                        url=display_url(url),
                        headers=resp.headers,
                        reason=resp.reason,
                    )
                    if isinstance(error, RateLimitError):
                        retry_after = error.retry_after
                        if gate is not None and retry_after is not None:
                            gate.block(retry_after)  # every request of the account waits
                    elif status in RETRYABLE_STATUSES:
                        # RFC 9110: Retry-After also applies to 503 (and is honoured on any
                        # retryable status that carries it).
                        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            except SendcloudError as exc:
                # Raised by the auth middleware while fetching a token: the API request
                # itself was never sent, so any call may be retried per policy.
                if not getattr(exc, "from_token_endpoint", False):
                    raise
                error = exc_shared = exc  # one object for every caller awaiting the token
                sent = False
                idempotent_attempt = True
                status = exc.status if isinstance(exc, APIError) else None
                if isinstance(exc, RateLimitError):
                    retry_after = exc.retry_after
            except TimeoutError as exc:
                sent = not _before_sending(exc)
                error = APITimeoutError(
                    f"the request timed out after {attempt} attempt(s)",
                    method=method,
                    url=display_url(url),
                )
                error.__cause__ = exc
                if debug:
                    self._log_failure(method, url, attempt, started, exc)
            except _FATAL_CLIENT_ERRORS as exc:
                # Retrying cannot help: a certificate the system does not trust, a bad URL.
                raise APIConnectionError(
                    f"the connection failed: {type(exc).__name__}: {exc}",
                    method=method,
                    url=display_url(url),
                ) from exc
            except aiohttp.ClientConnectorError as exc:
                sent = False
                error = APIConnectionError(
                    f"could not connect to {exc.host}:{exc.port} ({exc.os_error or exc})",
                    method=method,
                    url=display_url(url),
                )
                error.__cause__ = exc
                if debug:
                    self._log_failure(method, url, attempt, started, exc)
            except aiohttp.ClientError as exc:
                error = APIConnectionError(
                    f"the connection failed: {type(exc).__name__}: {exc}",
                    method=method,
                    url=display_url(url),
                )
                error.__cause__ = exc
                if debug:
                    self._log_failure(method, url, attempt, started, exc)
            except RuntimeError as exc:
                if session.closed:
                    raise ClientClosedError(
                        "the aiohttp session was closed while a request was in flight"
                    ) from exc
                raise
            finally:
                if gate is not None:
                    gate.release(lease)
            wait = policy.decide(
                attempt=attempt,
                idempotent=idempotent_attempt,
                status=status if isinstance(error, APIError) else None,
                retry_after=retry_after,
                sent=sent,
                max_retries=max_retries,
            )
            if wait is None:
                if error is not exc_shared:
                    _explain(error, attempt, retry_after, policy)
                raise error
            self._before_retry(method, url, attempt, error, wait, max_retries)
            await asyncio.sleep(0 if retry_testing.instant else wait)

    def _before_retry(
        self,
        method: str,
        url: URL,
        attempt: int,
        error: Exception,
        wait: float,
        max_retries: int | None,
    ) -> None:
        """Log (and, under ``instant_retries``, record) a retry about to happen."""
        reason = _reason(error)
        level = logging.INFO if isinstance(error, RateLimitError) else logging.WARNING
        if logger.isEnabledFor(level):
            limit = self._config.retry.max_retries if max_retries is None else max_retries
            logger.log(
                level,
                "%s %s failed (%s); retrying in %.2f s (retry %d of %d)",
                method,
                display_url(url),
                reason,
                wait,
                attempt,
                limit,
            )
        events = retry_testing.events
        if events is not None:
            events.append(RetryEvent(method, display_url(url), attempt, reason, wait))

    def _log_failure(
        self, method: str, url: URL, attempt: int, started: float, exc: BaseException
    ) -> None:
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s %s -> %s after %.1f ms (attempt %d)",
                method,
                display_url(url),
                type(exc).__name__,
                (time.monotonic() - started) * 1000,
                attempt,
            )


def _explain(
    error: Exception, attempt: int, retry_after: float | None, policy: RetryPolicy
) -> None:
    """Say on the exception why it was not retried (shown by tracebacks)."""
    if retry_after is not None and retry_after > policy.max_retry_after:
        error.add_note(
            f"Not retried: Retry-After ({retry_after:g} s) is above the SDK's "
            f"{policy.max_retry_after:g} s cap; retry later yourself."
        )
    elif attempt > 1:
        error.add_note(f"Gave up after {attempt} attempts.")


def _reason(error: Exception) -> str:
    if isinstance(error, RateLimitError) and error.retry_after is not None:
        return f"status 429, Retry-After {error.retry_after:g} s"
    if isinstance(error, APIError):
        return f"status {error.status}"
    if isinstance(error, APITimeoutError):
        return "timeout"
    return type(error.__cause__ or error).__name__


# Client errors a retry cannot fix (also ClientConnectorErrors, so listed before them).
_FATAL_CLIENT_ERRORS: Final = (
    aiohttp.ClientConnectorCertificateError,
    aiohttp.InvalidURL,
    aiohttp.TooManyRedirects,
)

# Where the total timeout may fire before a byte of the request was written: waiting for
# a pooled connection or connecting (aiohttp's ``BaseConnector.connect``), or waiting for
# credentials in the auth middleware (an OAuth2 token fetch).
_CONNECT_CODE: Final = aiohttp.BaseConnector.connect.__code__
_AUTH_MIDDLEWARE_CODE: Final = AuthMiddleware.__call__.__code__


def _before_sending(exc: TimeoutError) -> bool:
    """Whether a timeout certainly fired before the request was sent.

    aiohttp raises ``ConnectionTimeoutError`` when its ``connect``/``sock_connect``
    timeouts fire. When the ``total`` timeout fires instead it raises a plain
    ``TimeoutError`` from the ``CancelledError`` that interrupted the request; the
    frames that error went through tell where the request was. Anything not
    recognised counts as sent, which is the safe answer.
    """
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return True
    cancelled = exc.__cause__ or exc.__context__
    tb = cancelled.__traceback__ if cancelled is not None else None
    in_auth = False
    while tb is not None:
        code = tb.tb_frame.f_code
        if code is _CONNECT_CODE:
            return True
        if in_auth and code.co_name == "authorization":
            return True  # the auth middleware was still waiting for credentials
        in_auth = code is _AUTH_MIDDLEWARE_CODE
        tb = tb.tb_next
    return False


def encode_json(value: Any) -> bytes:
    """JSON-encode a request body (Structs, dicts, datetimes) with msgspec."""
    return msgspec.json.encode(value)
