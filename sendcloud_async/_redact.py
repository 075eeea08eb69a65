"""Keeping the request's secrets out of what the SDK raises.

``Redactor`` names the exact secret values a request carried (the ``Authorization``
value, its base64 part, the decoded ``id:secret``, a token, a client secret) and
masks each of them, as given and as a server may write it back, wherever an error
would show it: a ``detail``, the raw body, a header, the reason phrase, a URL.
``APIError`` and ``DecodeError`` (``_errors``) take one as ``redact=``.

``shown_headers`` is the one rule for the response headers an event shows: the
request's secrets masked, ``Set-Cookie`` left out.

``sanitized_cause`` makes a lower layer's exception safe to chain as the
``__cause__`` of an SDK error: no traceback (its frames' locals hold the request,
or a Redis connection's password), no proxy credentials in the connection key
aiohttp's connection errors carry, and an ``UnderlyingError`` naming its type
instead of an exception that carries the request itself (aiohttp's
``request_info``, with the ``Authorization`` header). Every path that chains a
lower layer's exception (HTTP, the token request, Redis) goes through it.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Iterable, Mapping
from typing import Final
from urllib.parse import quote, quote_plus

import msgspec
from multidict import CIMultiDict, CIMultiDictProxy

from ._models import ErrorObject

__all__ = ["Redactor", "UnderlyingError", "as_redactor", "sanitized_cause", "shown_headers"]

#: What a masked secret reads as.
_MASK: Final = "**********"
_ERRORS_DECODER = msgspec.json.Decoder(list[ErrorObject])


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
        """A redactor for ``Authorization`` values as sent, and every secret inside them.

        Built once per value (a few recent ones are kept): an observed call asks for
        its credential's redactor on every answer.
        """
        if cls is Redactor:
            return _authorization_redactor(header_values)
        return cls._build_for_authorization(header_values)

    @classmethod
    def _build_for_authorization(cls, header_values: tuple[str, ...]) -> Redactor:
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
        # One look over all the values at once (a secret holds no newline); a form
        # across two values only costs the precise pass below.
        if not self.found_in("\n".join(headers.values())):
            return headers
        return CIMultiDictProxy(CIMultiDict((k, self.mask_text(v)) for k, v in headers.items()))


@functools.lru_cache(maxsize=8)
def _authorization_redactor(header_values: tuple[str, ...]) -> Redactor:
    # A redactor is never changed once built (``|`` makes a new one): safe to share.
    return Redactor._build_for_authorization(header_values)


def shown_headers(headers: Mapping[str, str], redactor: Redactor | None) -> CIMultiDictProxy[str]:
    """Response headers as an event shows them: ``Set-Cookie`` left out, and every
    secret of ``redactor`` (the credential the request sent) masked.

    The same object when it is already a ``CIMultiDictProxy`` with nothing to change.
    """
    if not isinstance(headers, CIMultiDictProxy):
        headers = CIMultiDictProxy(CIMultiDict(headers))
    if "Set-Cookie" in headers:
        headers = CIMultiDictProxy(
            CIMultiDict((k, v) for k, v in headers.items() if k.lower() != "set-cookie")
        )
    return headers if redactor is None else redactor.mask_headers(headers)


def as_redactor(redact: Redactor | Iterable[str] | None) -> Redactor | None:
    """``redact`` as a ``Redactor`` (one ``str`` is one secret); ``None`` if it masks nothing."""
    if redact is None or isinstance(redact, Redactor):
        return redact or None
    if isinstance(redact, str):  # one secret, not its characters
        return Redactor(redact) or None
    return Redactor(*redact) or None


class UnderlyingError(Exception):
    """What a lower layer reported, as plain text, when its exception holds the request.

    aiohttp's response errors carry ``request_info`` (the request's headers,
    ``Authorization`` included): such an exception is never chained; this stands in
    as the ``__cause__`` with its type and message.
    """


def sanitized_cause(exc: BaseException) -> BaseException:
    """``exc`` made safe to chain: no traceback (its frames' locals hold the request), no
    chain of its own, no proxy credentials in its connection key, or an ``UnderlyingError``
    if the exception itself holds the request (or a connection key that cannot be cleaned)."""
    if hasattr(exc, "request_info") or not _without_proxy_credentials(exc):
        return UnderlyingError(f"{type(exc).__module__}.{type(exc).__qualname__}")
    exc.__traceback__ = None
    exc.__cause__ = None
    exc.__context__ = None
    exc.__suppress_context__ = True
    return exc


def _without_proxy_credentials(exc: BaseException) -> bool:
    """Take the proxy's credentials out of the connection key aiohttp's connection errors
    (``ClientConnectorError`` and its kind) hold in ``args`` and ``_conn_key``: the proxy
    URL's user info, its ``BasicAuth`` and the hash of its headers. ``False`` if there is
    a key that cannot be cleaned; ``True`` if it was, or if there is none."""
    key = getattr(exc, "_conn_key", None)
    if key is None:
        return True
    try:
        proxy = key.proxy
        clean = key._replace(
            proxy=None if proxy is None else proxy.with_user(None),
            proxy_auth=None,
            proxy_headers_hash=None,
        )
    except (AttributeError, TypeError, ValueError):
        return False
    for name, value in list(vars(exc).items()):
        if value is key:
            setattr(exc, name, clean)
    exc.args = tuple(clean if arg is key else arg for arg in exc.args)
    return True
