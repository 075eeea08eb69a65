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
``_pagination``, ``_parts``, ``_redis_watch``, ``webhooks``); a test checks that
this drawing names every subclass of ``SendcloudError`` under its real parent.

``build_api_error`` is the one pure function that turns an error response
(status, headers, raw body) into the right class. It never raises: a body that
is not JSON, or JSON of an unexpected shape, still yields the class that matches
the status, with the raw text kept (shortened) for the message.

Hostile or broken servers are expected, so the builder is bounded and discreet:

* JSON nested too deeply to decode (``RecursionError`` in the decoder) counts as
  "not JSON:API errors": the status's own class, with the raw text.
* Of a raw body only the first ``_SHORTEN_WINDOW`` bytes are looked at (a 50 MB
  HTML page is cut before it is split into words) and ``_MAX_BODY_IN_MESSAGE``
  characters kept.
* ``str(err)`` is a sentence or so: at most ``_MAX_DETAILS_IN_MESSAGE`` characters
  of details and ``_MAX_POINTERS_IN_MESSAGE`` pointers, then how much was left out.
  The error objects themselves stay complete on ``.errors``.
* ``redact=`` (a ``Redactor``) names the exact secret values the request carried;
  wherever the server echoes one (a ``detail``, the raw body, a header, the reason
  phrase) it is replaced by ``**********`` before anything is stored or formatted.
"""

from __future__ import annotations

import base64
import binascii
import importlib
import json
import time
from collections.abc import Iterable, Mapping
from types import ModuleType
from typing import Any, Final
from urllib.parse import quote, quote_plus

import msgspec
from multidict import CIMultiDict, CIMultiDictProxy

from ._models import ErrorObject
from ._time import http_date

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
    "Redactor",
    "ResponseTooLargeError",
    "SendcloudError",
    "ServerError",
    "build_api_error",
    "missing_extra",
    "require_extra",
]

_EMPTY_HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict())
_MAX_BODY_IN_MESSAGE = 200
#: Bytes of a raw (non-JSON:API) error body looked at to build the message.
_SHORTEN_WINDOW = 4096
#: Characters of error details (all objects together) in ``str(err)``.
_MAX_DETAILS_IN_MESSAGE = 300
#: Source pointers named in ``str(err)``.
_MAX_POINTERS_IN_MESSAGE = 3
#: Characters of one code, pointer or reason phrase in ``str(err)``.
_MAX_FIELD_IN_MESSAGE = 100
#: Characters of a ``DecodeError`` message (it may quote what the server sent).
_MAX_DECODE_MESSAGE = 500
#: What a masked secret reads as.
_MASK: Final = "**********"
_ERRORS_DECODER = msgspec.json.Decoder(list[ErrorObject])


def _clip(text: str, limit: int) -> tuple[str, int]:
    """``text`` cut to ``limit`` characters (the last one "…"), and how many were left out."""
    if len(text) <= limit:
        return text, 0
    return text[: limit - 1] + "…", len(text) - (limit - 1)


def _written_forms(value: str) -> set[str]:
    """``value`` and the ways a server may write it back: JSON-escaped, percent-encoded."""
    forms = {value}
    for ascii_only in (True, False):
        forms.add(json.dumps(value, ensure_ascii=ascii_only)[1:-1])
    forms |= {form.replace("/", "\\/") for form in forms}
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: no UTF-8 form to look for
        return forms
    forms.add(msgspec.json.encode(value).decode("utf-8")[1:-1])
    forms.add(quote(value, safe=""))
    forms.add(quote(value))
    forms.add(quote_plus(value, safe=""))
    return {form for form in forms if form}


class Redactor:
    """The exact secret values a request carried, to mask wherever a server echoes them.

    ``Redactor(*values)`` masks each value as given and as a server may write it
    back (JSON-escaped, ``\\/``-escaped, percent-encoded); empty values are ignored.
    ``for_authorization(header_value)`` adds what an ``Authorization`` value holds:
    for ``Basic <b64>`` the base64 part, the decoded ``id:secret`` and the secret;
    for ``Bearer <token>`` the token. Combine with ``|``. The repr names no value.
    """

    __slots__ = ("_bytes", "_texts", "longest")

    _texts: tuple[str, ...]
    _bytes: tuple[bytes, ...]
    #: Characters in the longest form masked (0 for an empty redactor).
    longest: int

    def __init__(self, *values: str) -> None:
        texts: set[str] = set()
        for value in values:
            if not isinstance(value, str):
                raise TypeError(f"a secret to redact must be a str, not {type(value).__name__}")
            if value:
                texts |= _written_forms(value)
        ordered = sorted(texts, key=lambda t: (-len(t), t))  # longest first: "Basic x" before "x"
        raw: set[bytes] = set()
        for text in ordered:
            try:
                raw.add(text.encode("utf-8"))
            except UnicodeEncodeError:  # a lone surrogate cannot be on the wire as UTF-8
                continue
        self._texts = tuple(ordered)
        self._bytes = tuple(sorted(raw, key=lambda b: (-len(b), b)))
        self.longest = len(ordered[0]) if ordered else 0

    @classmethod
    def for_authorization(cls, *header_values: str) -> Redactor:
        """A redactor for ``Authorization`` values as sent, and every secret inside them."""
        values: list[str] = []
        for header in header_values:
            values.append(header)
            scheme, _, credentials = header.strip().partition(" ")
            credentials = credentials.strip()
            if not credentials:
                continue
            values.append(credentials)
            if scheme.lower() != "basic":
                continue
            try:
                decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
            except (binascii.Error, ValueError):
                continue
            values.append(decoded)
            _user, sep, secret = decoded.partition(":")
            if sep and secret:
                values.append(secret)
        return cls(*values)

    @classmethod
    def for_basic(cls, public_key: str, secret_key: str) -> Redactor:
        """A redactor for the Basic header of a key pair (the public key alone is not masked)."""
        token = base64.b64encode(f"{public_key}:{secret_key}".encode()).decode("ascii")
        return cls.for_authorization(f"Basic {token}")

    @classmethod
    def for_bearer(cls, token: str) -> Redactor:
        """A redactor for a bearer token and its header value."""
        return cls.for_authorization(f"Bearer {token}")

    def __or__(self, other: Redactor) -> Redactor:
        if not isinstance(other, Redactor):
            return NotImplemented
        merged = Redactor()
        merged._texts = tuple(sorted({*self._texts, *other._texts}, key=lambda t: (-len(t), t)))
        merged._bytes = tuple(sorted({*self._bytes, *other._bytes}, key=lambda b: (-len(b), b)))
        merged.longest = max(self.longest, other.longest)
        return merged

    def __bool__(self) -> bool:
        return bool(self._texts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Redactor):
            return NotImplemented
        return self._texts == other._texts

    def __hash__(self) -> int:
        return hash(self._texts)

    def __repr__(self) -> str:
        return f"<Redactor masking {len(self._texts)} forms>"

    def mask_text(self, value: str) -> str:
        """``value`` with every secret form replaced by ``**********``."""
        for secret in self._texts:
            if secret in value:
                value = value.replace(secret, _MASK)
        return value

    def mask_bytes(self, value: bytes) -> bytes:
        """``value`` with every secret form (UTF-8) replaced by ``**********``."""
        for secret in self._bytes:
            if secret in value:
                value = value.replace(secret, b"**********")
        return value

    def found_in(self, value: str) -> bool:
        """Whether ``value`` holds a secret form."""
        return any(secret in value for secret in self._texts)

    def mask_errors(self, errors: list[ErrorObject]) -> list[ErrorObject]:
        """``errors`` with every secret masked in every field (``meta`` and ``links`` too)."""
        if not errors or not self:
            return errors
        try:
            raw = msgspec.json.encode(errors)
        except (msgspec.MsgspecError, RecursionError, TypeError, ValueError):
            return [self._error_fields(e) for e in errors]
        masked = self.mask_bytes(raw)
        if masked is raw or masked == raw:
            return errors
        try:
            return _ERRORS_DECODER.decode(masked)
        except (msgspec.MsgspecError, RecursionError, ValueError):
            return [self._error_fields(e) for e in errors]

    def _error_fields(self, error: ErrorObject) -> ErrorObject:
        # The fallback when the objects cannot be re-encoded: mask the string fields and
        # drop the free-form ones (they cannot be checked).
        def clean(value: str | None) -> str | None:
            return None if value is None else self.mask_text(value)

        source = error.source
        if source is not None:
            source = msgspec.structs.replace(
                source,
                pointer=clean(source.pointer),
                parameter=clean(source.parameter),
                header=clean(source.header),
            )
        return msgspec.structs.replace(
            error,
            code=clean(error.code),
            title=clean(error.title),
            detail=clean(error.detail),
            id=clean(error.id),
            source=source,
            links=None,
            meta=None,
        )

    def mask_headers(self, headers: CIMultiDictProxy[str]) -> CIMultiDictProxy[str]:
        """``headers`` with every secret masked in the values (the same object if none is)."""
        if not any(self.found_in(value) for value in headers.values()):
            return headers
        return CIMultiDictProxy(CIMultiDict((k, self.mask_text(v)) for k, v in headers.items()))


def _as_redactor(redact: Redactor | Iterable[str] | None) -> Redactor | None:
    if redact is None or isinstance(redact, Redactor):
        return redact or None
    if isinstance(redact, str):  # one secret, not its characters
        return Redactor(redact) or None
    return Redactor(*redact) or None


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
        redactor = _as_redactor(redact)
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
    and so in ``str(err)``.
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
        redactor = _as_redactor(redact)
        if redactor is not None:
            errors = redactor.mask_errors(errors or [])
            url = redactor.mask_text(url)
            body = None if body is None else redactor.mask_text(body)
            reason = None if reason is None else redactor.mask_text(reason)
            if headers is not None:
                headers = redactor.mask_headers(headers)
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
            piece, chars_left_out = _clip(self.body, _MAX_BODY_IN_MESSAGE)
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
    except (msgspec.MsgspecError, UnicodeDecodeError, ValueError, RecursionError):
        # RecursionError: JSON nested deeper than the decoder goes (a hostile body).
        return None
    if env.errors is None:
        return None
    if isinstance(env.errors, ErrorObject):
        return [env.errors]
    return env.errors


def _shorten(body: bytes, redactor: Redactor | None = None) -> str | None:
    """The start of a raw body as one line for a message; cut before anything else."""
    cut = len(body) > _SHORTEN_WINDOW
    text = body[:_SHORTEN_WINDOW].decode("utf-8", errors="replace")
    if redactor is not None:
        if cut:  # a secret cut in two at the window's end: drop its first part too
            text = text[: max(0, len(text) - redactor.longest + 1)]
        text = redactor.mask_text(text)
    text = " ".join(text.split())
    if redactor is not None:  # a secret that was split by white space
        text = redactor.mask_text(text)
    if not text:
        return None
    if cut or len(text) > _MAX_BODY_IN_MESSAGE:
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
    when = http_date(value)
    if when is None:
        return None
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
    redact: Redactor | Iterable[str] | None = None,
) -> APIError:
    """The exception for an error response. Pure; never raises.

    ``redact`` names the secrets the request carried (see ``Redactor``): they are
    masked wherever the response echoes them.
    """
    if headers is not None and not isinstance(headers, CIMultiDictProxy):
        headers = CIMultiDictProxy(CIMultiDict(headers))
    redactor = _as_redactor(redact)
    errors = decode_error_objects(body)
    raw = None if errors else _shorten(body, redactor)
    kw: dict[str, Any] = {
        "errors": errors,
        "method": method,
        "url": url,
        "headers": headers,
        "body": raw,
        "reason": reason,
        "redact": redactor,
    }
    if status == 429:
        retry_after = parse_retry_after(headers.get("Retry-After") if headers else None)
        return RateLimitError(status, retry_after=retry_after, **kw)
    cls = _STATUS_CLASSES.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else APIError
    return cls(status, **kw)


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


class UnderlyingError(Exception):
    """What a lower layer reported, as plain text, when its exception holds the request.

    aiohttp's response errors carry ``request_info`` (the request's headers,
    ``Authorization`` included): such an exception is never chained; this stands in
    as the ``__cause__`` with its type and message.
    """


def sanitized_cause(exc: BaseException) -> BaseException:
    """``exc`` made safe to chain: no traceback (its frames' locals hold the request), no
    chain of its own, or an ``UnderlyingError`` if the exception itself holds the request."""
    if hasattr(exc, "request_info"):
        return UnderlyingError(f"{type(exc).__module__}.{type(exc).__qualname__}")
    exc.__traceback__ = None
    exc.__cause__ = None
    exc.__context__ = None
    exc.__suppress_context__ = True
    return exc
