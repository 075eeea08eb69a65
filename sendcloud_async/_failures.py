"""What a failed attempt amounts to: one ``Failure``, and the words that explain it.

``failure_of`` maps every exception an attempt can raise, ``status_failure``
every answer other than 2xx; the retry policy reads the ``Failure`` (was it
sent? final? a ``Retry-After``?). ``reason`` is the short text logs and the
observer's events give for a failure, ``explain`` the note an exception carries
when it was not retried.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp.http_exceptions import ContentEncodingError

from ._error_response import build_api_error, parse_retry_after
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ClientClosedError,
    DecodeError,
    RateLimitError,
    SendcloudError,
)
from ._flows import NotSent
from ._redact import Redactor, UnderlyingError, sanitized_cause
from ._retry import RETRYABLE_STATUSES, RetryPolicy

if TYPE_CHECKING:
    from ._request import Request

__all__ = ["Failure", "explain", "failure_of", "reason", "status_failure"]


@dataclass(slots=True)
class Failure:
    """A failed attempt, as the retry policy sees it."""

    error: SendcloudError
    sent: bool = True
    status: int | None = None
    retry_after: float | None = None
    final: bool = False
    shared: bool = False  # one error object raised to every caller awaiting a token


def failure_of(exc: Exception, request: Request) -> Failure:
    """What an exception raised by one attempt amounts to: the one mapping of them all."""
    method, shown = request.op.method, request.shown
    if isinstance(exc, NotSent):
        error = exc.error
        return Failure(
            error,
            sent=False,
            status=error.status if isinstance(error, APIError) else None,
            retry_after=error.retry_after if isinstance(error, RateLimitError) else None,
            final=exc.final,
            shared=True,
        )
    if isinstance(exc, TimeoutError):
        message = f"the request timed out after {request.attempt} attempt(s)"
        return Failure(
            _connection_error(APITimeoutError, message, method, shown, exc),
            sent=request.sent and not isinstance(exc, aiohttp.ConnectionTimeoutError),
        )
    if isinstance(exc, _FATAL_CLIENT_ERRORS):
        # Retrying cannot help: a certificate the system does not trust, a bad URL.
        message = f"the connection failed: {type(exc).__name__}: {exc}"
        return Failure(
            _connection_error(APIConnectionError, message, method, shown, exc), final=True
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        message = f"could not connect to {exc.host}:{exc.port} ({exc.os_error or exc})"
        return Failure(
            _connection_error(APIConnectionError, message, method, shown, exc), sent=False
        )
    if isinstance(exc, aiohttp.ClientPayloadError) and isinstance(
        exc.__cause__, ContentEncodingError
    ):
        # The body arrived but does not inflate: a retry gets the same bytes.
        message = "could not decode the response: its Content-Encoding does not match its body"
        return Failure(DecodeError(message, method=method, url=shown), final=True)
    if isinstance(exc, aiohttp.ClientError):  # dropped, reset, cut short
        message = f"the connection failed: {type(exc).__name__}: {_plain(exc)}"
        return Failure(
            _connection_error(APIConnectionError, message, method, shown, exc), sent=request.sent
        )
    if isinstance(exc, RuntimeError):  # the session was closed under the request
        message = "the aiohttp session was closed while a request was in flight"
        return Failure(ClientClosedError(message), final=True)
    # A ValueError from aiohttp refusing to build the request: not retryable.
    message = f"the request could not be built: {type(exc).__name__}"
    return Failure(SendcloudError(message), final=True)


def status_failure(
    method: str,
    shown: str,
    status: int,
    resp: aiohttp.ClientResponse,
    payload: bytes,
    redact: Redactor | None,
) -> Failure:
    """What an answer other than 2xx amounts to (a 3xx included: never success)."""
    error = build_api_error(
        status,
        body=payload,
        method=method,
        url=shown,
        headers=resp.headers,
        reason=resp.reason,
        redact=redact,
    )
    retry_after: float | None = None
    if isinstance(error, RateLimitError):
        retry_after = error.retry_after
    elif status in RETRYABLE_STATUSES:
        # RFC 9110: Retry-After also applies to 503 (and is honoured on any retryable
        # status that carries it).
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    return Failure(error, status=status, retry_after=retry_after)


def _connection_error(
    cls: type[APIConnectionError], message: str, method: str, shown: str, exc: BaseException
) -> APIConnectionError:
    error = cls(message, method=method, url=shown)
    error.__cause__ = sanitized_cause(exc)
    return error


def _plain(exc: BaseException) -> str:
    """``exc``'s message, unless it is one that prints its request (headers included)."""
    return "" if hasattr(exc, "request_info") else str(exc)[:300]


def explain(error: Exception, attempt: int, retry_after: float | None, policy: RetryPolicy) -> None:
    """Say on the exception why it was not retried (shown by tracebacks)."""
    if retry_after is not None and retry_after > policy.max_retry_after:
        error.add_note(
            f"Not retried: Retry-After ({retry_after:g} s) is above the SDK's "
            f"{policy.max_retry_after:g} s cap; retry later yourself."
        )
    elif attempt > 1:
        error.add_note(f"Gave up after {attempt} attempts.")


def reason(error: Exception) -> str:
    if isinstance(error, RateLimitError) and error.retry_after is not None:
        return f"status 429, Retry-After {error.retry_after:g} s"
    if isinstance(error, APIError):
        return f"status {error.status}"
    if isinstance(error, APITimeoutError):
        return "timeout"
    cause = error.__cause__
    if isinstance(cause, UnderlyingError):
        return str(cause).rsplit(".", 1)[-1]
    return type(cause or error).__name__


# Client errors a retry cannot fix (also ClientConnectorErrors, so listed before them).
_FATAL_CLIENT_ERRORS: Final = (
    aiohttp.ClientConnectorCertificateError,
    aiohttp.InvalidURL,
    aiohttp.TooManyRedirects,
)
