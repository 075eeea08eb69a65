"""The one request path: every API call goes through ``Transport.request``.

It owns (or borrows) the aiohttp session, applies auth through the
``AuthMiddleware``, sends, retries according to ``RetryPolicy``, maps error
statuses to exceptions and returns the body bytes for the caller to decode
with a decoder built once per type.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeVar

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
)
from ._retry import RetryPolicy
from ._version import __version__

__all__ = ["Response", "Transport", "TransportConfig"]

logger: Final = logging.getLogger("sendcloud_async")

_T = TypeVar("_T")

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

    def decode(self, decoder: msgspec.json.Decoder[_T]) -> _T:
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

    __slots__ = ("_auth", "_closed", "_config", "_middlewares", "_owns_session", "_session")

    def __init__(
        self,
        config: TransportConfig,
        auth: Auth,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self._config = config
        self._auth = auth
        self._session = session
        self._owns_session = session is None
        self._closed = False
        middleware = AuthMiddleware(auth, config.origin)
        if session is not None:
            middleware.bind(session)
        self._middlewares: tuple[AuthMiddleware, ...] = (middleware,)

    @property
    def config(self) -> TransportConfig:
        return self._config

    @property
    def closed(self) -> bool:
        return self._closed

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use (inside the running loop)."""
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
        """Close the session if this transport created it; never a borrowed one."""
        if self._closed:
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
        policy = self._config.retry
        headers = _GET_HEADERS if body is None else _JSON_HEADERS
        timeout = timeout or self._config.timeout
        attempt = 0
        debug = logger.isEnabledFor(logging.DEBUG)
        while True:
            attempt += 1
            started = time.monotonic()
            error: Exception
            sent = True
            retry_after: float | None = None
            status: int | None = None
            idempotent_attempt = idempotent
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
            except SendcloudError as exc:
                # Raised by the auth middleware while fetching a token: the API request
                # itself was never sent, so any call may be retried per policy.
                if not getattr(exc, "from_token_endpoint", False):
                    raise
                error = exc
                sent = False
                idempotent_attempt = True
                status = exc.status if isinstance(exc, APIError) else None
                if isinstance(exc, RateLimitError):
                    retry_after = exc.retry_after
            except TimeoutError as exc:
                sent = not isinstance(exc, aiohttp.ConnectionTimeoutError)
                error = APITimeoutError(
                    f"the request timed out after {attempt} attempt(s)",
                    method=method,
                    url=display_url(url),
                )
                error.__cause__ = exc
                self._log_failure(method, url, attempt, started, exc)
            except aiohttp.ClientConnectorError as exc:
                sent = False
                error = APIConnectionError(
                    f"could not connect to {exc.host}:{exc.port} ({exc.os_error or exc})",
                    method=method,
                    url=display_url(url),
                )
                error.__cause__ = exc
                self._log_failure(method, url, attempt, started, exc)
            except aiohttp.ClientError as exc:
                error = APIConnectionError(
                    f"the connection failed: {type(exc).__name__}: {exc}",
                    method=method,
                    url=display_url(url),
                )
                error.__cause__ = exc
                self._log_failure(method, url, attempt, started, exc)
            except RuntimeError as exc:
                if session.closed:
                    raise ClientClosedError(
                        "the aiohttp session was closed while a request was in flight"
                    ) from exc
                raise
            wait = policy.decide(
                attempt=attempt,
                idempotent=idempotent_attempt,
                status=status if isinstance(error, APIError) else None,
                retry_after=retry_after,
                sent=sent,
                max_retries=max_retries,
            )
            if wait is None:
                raise error
            logger.warning(
                "%s %s failed (%s); retry %d in %.2f s",
                method,
                display_url(url),
                _reason(error),
                attempt,
                wait,
            )
            await asyncio.sleep(wait)

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


def _reason(error: Exception) -> str:
    if isinstance(error, APIError):
        return f"status {error.status}"
    if isinstance(error, APITimeoutError):
        return "timeout"
    return type(error.__cause__ or error).__name__


def encode_json(value: Any) -> bytes:
    """JSON-encode a request body (Structs, dicts, datetimes) with msgspec."""
    return msgspec.json.encode(value)


def query_string(params: Mapping[str, str]) -> str:
    """Already-encoded ``key=value`` pairs joined by ``&``."""
    return "&".join(f"{k}={v}" for k, v in params.items())
