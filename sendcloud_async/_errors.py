"""The exceptions the SDK raises on purpose.

::

    SendcloudError                      base of everything the SDK raises on purpose
    ├── APIError                        the server answered with an error status
    │   ├── BadRequestError             400
    │   ├── AuthenticationError         401 (also a rejected OAuth2 token request)
    │   ├── PermissionDeniedError       403
    │   ├── NotFoundError               404
    │   ├── RateLimitError              429   .retry_after: float | None
    │   │   └── GateBlockedError        the rate gate would wait longer than allowed
    │   └── ServerError                 5xx
    ├── APIConnectionError              could not talk to the server
    │   └── APITimeoutError             the request timed out (also a builtin TimeoutError)
    ├── DecodeError                     a response the SDK could not decode
    │   └── ResponseTooLargeError       a body over the client's ``max_response_size``
    ├── PaginationError                 a listing that cannot be followed (a looping link)
    ├── InvalidInputError               a bad argument, caught before sending (also a ValueError)
    ├── ClientClosedError               the client was used after ``aclose()`` (also a RuntimeError)
    ├── MissingExtraError               an optional extra is not installed (also an ImportError)
    ├── ExportError                     an export that cannot go on (output, checkpoint)
    │   ├── ExportInputError            ... because of its arguments (also a ValueError)
    │   │   └── ExportInUseError        ... because another writer holds its output
    │   └── SecondWriterError           another writer took an export's parts over
    ├── StateUnavailableError           Redis cannot be reached now (an outage: retried)
    ├── StateConfigurationError         Redis refuses how it is reached (no retry helps)
    ├── LeaseLostError                  a Redis watch lease another worker took over
    ├── InvalidSignatureError           a webhook body whose signature does not match
    ├── EventTooOldError                a webhook event older than ``max_age``
    └── EventInFlightError              a webhook event another delivery is handling now

The classes outside this module live where they are raised (``_ratelimit``,
``_pagination``, ``_redis._watch``, ``webhooks``); a test checks that this drawing
names every subclass of ``SendcloudError`` under its real parent.

``str(err)`` is a sentence or so, however much the server sent: at most
``_MAX_DETAILS_IN_MESSAGE`` characters of details and ``_MAX_POINTERS_IN_MESSAGE``
pointers, then how much was left out; the error objects themselves stay complete
on ``.errors``. ``redact=`` (a ``Redactor``, ``_redact``) masks the request's
secrets before anything is stored or formatted. ``build_api_error``
(``_error_response``) turns an error response into the right class.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy

from ._models import ErrorObject
from ._redact import Redactor, as_redactor, shown_headers

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ClientClosedError",
    "DecodeError",
    "ExportError",
    "ExportInUseError",
    "ExportInputError",
    "InvalidInputError",
    "MissingExtraError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseTooLargeError",
    "SecondWriterError",
    "SendcloudError",
    "ServerError",
    "StateConfigurationError",
    "StateUnavailableError",
    "missing_extra",
    "require_extra",
]

_EMPTY_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
#: Characters of a raw (non-JSON:API) error body kept for the message.
MAX_BODY_IN_MESSAGE = 200
#: Characters of error details (all objects together) in ``str(err)``.
_MAX_DETAILS_IN_MESSAGE = 300
#: Source pointers named in ``str(err)``.
_MAX_POINTERS_IN_MESSAGE = 3
#: Characters of one code, pointer or reason phrase in ``str(err)``.
_MAX_FIELD_IN_MESSAGE = 100
#: Characters of a ``DecodeError`` message (it may quote what the server sent).
_MAX_DECODE_MESSAGE = 500


def _clip(text: str, limit: int) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters (the last one "…"), and how many were left out."""
    if len(text) <= limit:
        return text, 0
    return text[: limit - 1] + "…", len(text) - (limit - 1)


class SendcloudError(Exception):
    """Base of every exception the SDK raises on purpose."""


class InvalidInputError(SendcloudError, ValueError):
    """An argument the API would reject; raised before anything is sent."""


class ClientClosedError(SendcloudError, RuntimeError):
    """The client (or the session it was given) is closed."""


class MissingExtraError(SendcloudError, ImportError):
    """An optional dependency is not installed; the message names the ``pip install``."""


def missing_extra(package: str, extra: str, what: str) -> MissingExtraError:
    """The one message for a missing optional extra: what needs it, and the ``pip install``."""
    return MissingExtraError(
        f"{what} needs the optional dependency {package}: pip install 'sendcloud-async[{extra}]'"
    )


def require_extra(module: str, extra: str, what: str) -> ModuleType:
    """Import ``module``, or raise ``MissingExtraError`` naming the extra that brings it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise missing_extra(module.split(".")[0], extra, what) from None


class ExportError(SendcloudError):
    """The export cannot go on (raised while running: exit status 1 in the CLI)."""


class ExportInputError(ExportError, ValueError):
    """The export cannot start: a bad argument, output path or checkpoint.

    Raised by ``LogExport.open()``, before any request is sent.
    """


class ExportInUseError(ExportInputError):
    """Another writer holds the output (its lock): wait for it or stop it.

    The many-worker export (``logs export --redis``) waits for it instead of failing:
    a worker that was paused past its lease still holds the lock until it finds out.
    """


class SecondWriterError(ExportError):
    """Another writer holds (or took over) this export's manifest.

    Raised by an export into parts (a directory, ``s3://``, ``gs://``, ``az://``):
    the writer that meets it commits nothing more.
    """


class DecodeError(SendcloudError):
    """A response body the SDK could not decode into the expected type."""

    def __init__(
        self,
        message: str,
        *,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
        redact: Redactor | Iterable[str] | None = None,
    ) -> None:
        # The message may quote what the server sent (a token_type, a field): keep it
        # short and free of the request's secrets.
        redactor = as_redactor(redact)
        if redactor is not None:
            message = redactor.mask_text(message)
            url = None if url is None else redactor.mask_text(url)
        message, left_out = _clip(message, _MAX_DECODE_MESSAGE)
        if left_out:
            message += f" ({left_out:,} characters left out)"
        self.method = method
        self.url = url
        self.status = status
        where = f" ({method} {url})" if method and url else ""
        super().__init__(f"{message}{where}")


class ResponseTooLargeError(DecodeError):
    """A response body larger than the client's ``max_response_size`` (decompressed bytes)."""

    limit: int

    def __init__(
        self,
        limit: int,
        *,
        method: str | None = None,
        url: str | None = None,
        status: int | None = None,
    ) -> None:
        self.limit = limit
        super().__init__(
            f"the response body is larger than the limit of {limit:,} bytes (max_response_size)",
            method=method,
            url=url,
            status=status,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_too_large, (self.limit, self.method, self.url, self.status))


def _rebuild_too_large(
    limit: int, method: str | None, url: str | None, status: int | None
) -> ResponseTooLargeError:
    return ResponseTooLargeError(limit, method=method, url=url, status=status)


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

    ``redact`` (a ``Redactor``, or the secret strings themselves) masks the
    request's secrets in ``errors``, ``body``, ``headers``, ``reason``, ``url``
    and so in ``str(err)``. ``headers`` never holds ``Set-Cookie`` (a session the
    server set is not the caller's to keep in an error): ``_redact.shown_headers``.
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
        redact: Redactor | Iterable[str] | None = None,
    ) -> None:
        redactor = as_redactor(redact)
        if redactor is not None:
            errors = redactor.mask_errors(errors or [])
            url = redactor.mask_text(url)
            body = None if body is None else redactor.mask_text(body)
            reason = None if reason is None else redactor.mask_text(reason)
        if headers is not None:  # the one rule for shown headers: no Set-Cookie, secrets masked
            headers = shown_headers(headers, redactor)
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
        # A sentence or so, however many error objects or characters the server sent:
        # what is left out is counted, and stays complete on ``errors``.
        reason = _clip(self.reason, _MAX_FIELD_IN_MESSAGE)[0] if self.reason else None
        head = f"{self.status} {reason}" if reason else str(self.status)
        code = self.code
        parts = [f"Sendcloud answered {head}"]
        if code:
            parts.append(f" ({_clip(code, _MAX_FIELD_IN_MESSAGE)[0]})")
        shown: list[str] = []
        budget = _MAX_DETAILS_IN_MESSAGE
        chars_left_out = errors_left_out = 0
        pointers: list[str] = []
        pointers_left_out = 0
        for e in self.errors:
            detail = e.detail or e.title
            if detail:
                if budget < 20 and shown:
                    errors_left_out += 1
                else:
                    piece, cut = _clip(detail, max(budget, 20))
                    shown.append(piece)
                    chars_left_out += cut
                    budget -= len(piece) + 2
            pointer = e.source.pointer if e.source else None
            if pointer:
                if len(pointers) < _MAX_POINTERS_IN_MESSAGE:
                    pointers.append(_clip(pointer, _MAX_FIELD_IN_MESSAGE)[0])
                else:
                    pointers_left_out += 1
        if shown:
            parts.append(": " + "; ".join(shown))
        elif self.body:
            piece, chars_left_out = _clip(self.body, MAX_BODY_IN_MESSAGE)
            parts.append(f": {piece}")
        left_out = []
        if errors_left_out:
            plural = "s" if errors_left_out > 1 else ""
            left_out.append(f"{errors_left_out:,} more error{plural}")
        if chars_left_out:
            left_out.append(f"{chars_left_out:,} characters")
        if left_out:
            whole = "; the full error objects are on .errors" if shown else ""
            parts.append(f" ({' and '.join(left_out)} left out{whole})")
        if pointers:
            more = f" and {pointers_left_out:,} more" if pointers_left_out else ""
            parts.append(f" [at {', '.join(pointers)}{more}]")
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


class StateUnavailableError(SendcloudError):
    """The shared state backend (Redis) could not be reached, and it was told to raise."""


class StateConfigurationError(SendcloudError):
    """The shared state backend (Redis) refused how it is reached: no retry can help.

    ``reason`` says what to fix: ``"authentication"`` (Redis wants a password the
    URL does not give, or refused the one it gives), ``"database"`` (the URL's
    database does not exist on the server) or ``"permission"`` (the URL's user may
    not run a command the SDK needs). Unlike ``StateUnavailableError``, an outage
    that is waited out, this ends what met it. The message names no secret.
    """

    def __init__(self, message: str, *, reason: str = "authentication") -> None:
        super().__init__(message)
        self.reason = reason

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_state_configuration, (str(self), self.reason))


def _rebuild_state_configuration(message: str, reason: str) -> StateConfigurationError:
    return StateConfigurationError(message, reason=reason)
