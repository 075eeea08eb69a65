"""From an error response to the exception: ``build_api_error``.

``build_api_error`` is the one pure function that turns an error response
(status, headers, raw body) into the right class of ``_errors``. It never raises:
a body that is not JSON, or JSON of an unexpected shape, still yields the class
that matches the status, with the raw text kept (shortened) for the message.

Hostile or broken servers are expected, so the builder is bounded and discreet:

* JSON nested too deeply to decode (``RecursionError`` in the decoder) counts as
  "not JSON:API errors": the status's own class, with the raw text.
* Of a raw body only the first ``_SHORTEN_WINDOW`` bytes are looked at (a 50 MB
  HTML page is cut before it is split into words) and ``MAX_BODY_IN_MESSAGE``
  characters kept. How ``str(err)`` itself stays short is ``APIError``'s own rule.
* ``redact=`` (a ``Redactor``) names the exact secret values the request carried;
  wherever the server echoes one (a ``detail``, the raw body, a header, the reason
  phrase) it is replaced by ``**********`` before anything is stored or formatted.

``decode_error_objects`` reads the JSON:API error objects of a body and
``parse_retry_after`` a ``Retry-After`` value (seconds or an HTTP-date).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import msgspec
from multidict import CIMultiDict, CIMultiDictProxy

from ._errors import (
    MAX_BODY_IN_MESSAGE,
    APIError,
    AuthenticationError,
    BadRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
)
from ._models import ErrorObject
from ._redact import Redactor, as_redactor
from ._time import http_date

__all__ = ["build_api_error", "decode_error_objects", "parse_retry_after"]

#: Bytes of a raw (non-JSON:API) error body looked at to build the message.
_SHORTEN_WINDOW = 4096

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
    if cut or len(text) > MAX_BODY_IN_MESSAGE:
        text = text[: MAX_BODY_IN_MESSAGE - 1] + "…"
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
    redactor = as_redactor(redact)
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
