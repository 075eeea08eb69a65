"""The exceptions the SDK raises on purpose.

::

    SendcloudError                      base of everything the SDK raises on purpose
    ├── APIError                        the server answered with an error status
    │   ├── BadRequestError             400
    │   ├── AuthenticationError         401 (also a rejected OAuth2 token request)
    │   ├── PermissionDeniedError       403
    │   ├── NotFoundError               404
    │   ├── RateLimitError              429   .retry_after: float | None
    │   └── ServerError                 5xx
    ├── APIConnectionError              could not talk to the server
    │   └── APITimeoutError             the request timed out (also a builtin TimeoutError)
    ├── DecodeError                     a response the SDK could not decode
    ├── InvalidInputError               a bad argument, caught before sending (also a ValueError)
    └── ClientClosedError               the client was used after ``aclose()`` (also a RuntimeError)

``build_api_error`` is the one pure function that turns an error response
(status, headers, raw body) into the right class. It never raises: a body that
is not JSON, or JSON of an unexpected shape, still yields the class that matches
the status, with the raw text kept (shortened) for the message.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any

import msgspec
from multidict import CIMultiDict, CIMultiDictProxy

from ._models import ErrorObject

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "DecodeError",
    "InvalidInputError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "SendcloudError",
    "ServerError",
    "build_api_error",
]

_EMPTY_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
_MAX_BODY_IN_MESSAGE = 200


class SendcloudError(Exception):
    """Base of every exception the SDK raises on purpose."""


class InvalidInputError(SendcloudError, ValueError):
    """An argument the API would reject; raised before anything is sent."""


class ClientClosedError(SendcloudError, RuntimeError):
    """The client (or the session it was given) is closed."""


class DecodeError(SendcloudError):
    """A response body the SDK could not decode into the expected type."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        where = f" ({method} {url})" if method and url else ""
        super().__init__(f"{message}{where}")


class APIConnectionError(SendcloudError):
    """The SDK could not talk to the server (DNS, refused, reset, TLS, ...)."""

    def __init__(self, message: str, *, method: str | None = None, url: str | None = None) -> None:
        self.method = method
        self.url = url
        where = f" while calling {method} {url}" if method and url else ""
        super().__init__(f"{message}{where}")


class APITimeoutError(APIConnectionError, TimeoutError):
    """The request did not complete within its timeout."""


class APIError(SendcloudError):
    """The server answered with an error status.

    ``errors`` holds the JSON:API error objects of the body (empty when the body
    had none, e.g. an HTML page from a proxy); ``body`` keeps the raw text,
    shortened, when the body could not be read as JSON:API errors.
    """

    status: int
    errors: list[ErrorObject]
    method: str
    url: str
    headers: CIMultiDictProxy[str]
    body: str | None

    def __init__(
        self,
        status: int,
        *,
        errors: list[ErrorObject] | None = None,
        method: str = "",
        url: str = "",
        headers: CIMultiDictProxy[str] | None = None,
        body: str | None = None,
        reason: str | None = None,
    ) -> None:
        self.status = status
        self.errors = errors or []
        self.method = method
        self.url = url
        self.headers = headers if headers is not None else _EMPTY_HEADERS
        self.body = body
        self.reason = reason
        super().__init__(self._message())

    @property
    def code(self) -> str | None:
        """The ``code`` of the first error object, if any."""
        for err in self.errors:
            if err.code:
                return err.code
        return None

    @property
    def detail(self) -> str | None:
        """The ``detail`` (or ``title``) of the first error object that has one."""
        for err in self.errors:
            if err.detail or err.title:
                return err.detail or err.title
        return None

    def _message(self) -> str:
        head = f"{self.status} {self.reason}" if self.reason else str(self.status)
        code = self.code
        parts = [f"Sendcloud answered {head}"]
        if code:
            parts.append(f" ({code})")
        details = [d for e in self.errors if (d := e.detail or e.title)]
        pointers = [e.source.pointer for e in self.errors if e.source and e.source.pointer]
        if details:
            parts.append(": " + "; ".join(details))
        elif self.body:
            parts.append(f": {self.body}")
        if pointers:
            parts.append(f" [at {', '.join(pointers)}]")
        if self.method and self.url:
            parts.append(f" for {self.method} {self.url}")
        hint = self._hint()
        if hint:
            parts.append(f". {hint}")
        return "".join(parts)

    def _hint(self) -> str:
        return ""

    def __reduce__(self) -> tuple[Any, ...]:
        # Keep the error picklable (multiprocessing, task queues).
        return (
            _rebuild_api_error,
            (
                type(self),
                self.status,
                self.errors,
                self.method,
                self.url,
                dict(self.headers),
                self.body,
                self.reason,
            ),
        )


def _rebuild_api_error(
    cls: type[APIError],
    status: int,
    errors: list[ErrorObject],
    method: str,
    url: str,
    headers: dict[str, str],
    body: str | None,
    reason: str | None,
) -> APIError:
    return cls(
        status,
        errors=errors,
        method=method,
        url=url,
        headers=CIMultiDictProxy(CIMultiDict(headers)),
        body=body,
        reason=reason,
    )


class BadRequestError(APIError):
    """400: the server rejected the request's content."""


class AuthenticationError(APIError):
    """401: the credentials were missing, wrong or expired (or the token endpoint refused them)."""

    def _hint(self) -> str:
        return "Check the API credentials the client was created with"


class PermissionDeniedError(APIError):
    """403: the credentials are valid but may not do this."""


class NotFoundError(APIError):
    """404: no such resource (or not visible to these credentials)."""


class RateLimitError(APIError):
    """429: too many requests. ``retry_after`` is the server's wait in seconds, if it gave one."""

    retry_after: float | None

    def __init__(self, status: int = 429, *, retry_after: float | None = None, **kw: Any) -> None:
        self.retry_after = retry_after
        super().__init__(status, **kw)

    def _hint(self) -> str:
        if self.retry_after is not None:
            return f"Retry after {self.retry_after:g} seconds"
        return "Slow down and retry later"

    def __reduce__(self) -> tuple[Any, ...]:
        args = super().__reduce__()[1]
        return (_rebuild_rate_limit, (args, self.retry_after))


def _rebuild_rate_limit(args: tuple[Any, ...], retry_after: float | None) -> RateLimitError:
    _cls, status, errors, method, url, headers, body, reason = args
    return RateLimitError(
        status,
        retry_after=retry_after,
        errors=errors,
        method=method,
        url=url,
        headers=CIMultiDictProxy(CIMultiDict(headers)),
        body=body,
        reason=reason,
    )


class ServerError(APIError):
    """5xx: Sendcloud (or a proxy in front of it) failed."""


_STATUS_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
}


class _ErrorEnvelope(msgspec.Struct):
    # The spec types `errors` as "array or object": accept both.
    errors: list[ErrorObject] | ErrorObject | None = None


# strict=False lets the string statuses of some examples ("400") decode as int.
_ENVELOPE_DECODER = msgspec.json.Decoder(_ErrorEnvelope, strict=False)


def decode_error_objects(body: bytes) -> list[ErrorObject] | None:
    """The JSON:API error objects of ``body``; ``None`` if it holds none we can read."""
    if not body:
        return None
    try:
        env = _ENVELOPE_DECODER.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, ValueError):
        return None
    if env.errors is None:
        return None
    if isinstance(env.errors, ErrorObject):
        return [env.errors]
    return env.errors


def _shorten(body: bytes) -> str | None:
    text = body.decode("utf-8", errors="replace").strip()
    if not text:
        return None
    text = " ".join(text.split())
    if len(text) > _MAX_BODY_IN_MESSAGE:
        text = text[: _MAX_BODY_IN_MESSAGE - 1] + "…"
    return text


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or an HTTP-date)."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if seconds != seconds or seconds in (float("inf"), float("-inf")):  # NaN / inf
            return None
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:  # pragma: no cover - defensive, older Pythons
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def build_api_error(
    status: int,
    *,
    body: bytes,
    method: str,
    url: str,
    headers: CIMultiDictProxy[str] | Mapping[str, str] | None = None,
    reason: str | None = None,
) -> APIError:
    """The exception for an error response. Pure; never raises."""
    if headers is not None and not isinstance(headers, CIMultiDictProxy):
        headers = CIMultiDictProxy(CIMultiDict(headers))
    errors = decode_error_objects(body)
    raw = None if errors else _shorten(body)
    kw: dict[str, Any] = {
        "errors": errors,
        "method": method,
        "url": url,
        "headers": headers,
        "body": raw,
        "reason": reason,
    }
    if status == 429:
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        return RateLimitError(status, retry_after=retry_after, **kw)
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(status, **kw)
