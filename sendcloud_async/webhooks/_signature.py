"""The ``Sendcloud-Signature`` header: sign, verify, rotation.

The raw body is hashed (never a re-serialisation), digests are compared in constant
time, every candidate secret of a rotation is compared without stopping at a match,
and no message holds the secret, the expected digest or the received signature.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from typing import Any, Final, Literal, TypeAlias

from .._errors import InvalidInputError, SendcloudError

SIGNATURE_HEADER: Final = "Sendcloud-Signature"
"""The request header that carries the hex HMAC-SHA256 of the body."""

_HEX_SHA256: Final = re.compile(r"[0-9a-f]{64}")

SignatureProblem: TypeAlias = Literal["missing", "malformed", "mismatch"]

_MESSAGES: Final[dict[str, str]] = {
    "missing": f"missing {SIGNATURE_HEADER} signature",
    "malformed": "malformed signature: expected 64 hexadecimal characters",
    "mismatch": "signature does not match the body and secret",
}


class InvalidSignatureError(SendcloudError):
    """The webhook signature is missing, malformed or does not match the body.

    ``reason`` is ``"missing"``, ``"malformed"`` or ``"mismatch"``. The message
    never contains the secret, the expected digest or the received signature.
    """

    reason: SignatureProblem

    def __init__(self, reason: SignatureProblem) -> None:
        self.reason = reason
        super().__init__(_MESSAGES[reason])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason,))


def body_bytes(body: object) -> bytes | bytearray | memoryview:
    """``body`` if it is raw bytes; ``InvalidInputError`` saying why anything else is wrong."""
    if isinstance(body, bytes | bytearray | memoryview):
        return body
    if isinstance(body, str):
        raise InvalidInputError(
            "body must be the raw request bytes, got str: the body was already decoded "
            "(or re-serialised from parsed JSON), and its signature is over the exact "
            "bytes received; pass e.g. `await request.read()`"
        )
    raise InvalidInputError(
        f"body must be the raw request bytes, got {type(body).__name__}; the signature "
        "covers the exact bytes received, not parsed or re-serialised JSON"
    )


def _key(secret: object) -> bytes:
    if not isinstance(secret, str):
        raise InvalidInputError(f"secret must be a str, got {type(secret).__name__}")
    if not secret:
        raise InvalidInputError("secret must not be empty")
    return secret.encode("utf-8")


def secret_keys(secret: object) -> tuple[bytes, ...]:
    """The keys of one secret or of a sequence of them (rotation); never empty."""
    if isinstance(secret, str):
        return (_key(secret),)
    if isinstance(secret, bytes | bytearray | memoryview) or not isinstance(secret, Sequence):
        raise InvalidInputError(
            f"secret must be a str or a sequence of str, got {type(secret).__name__}"
        )
    if not secret:
        raise InvalidInputError("secret must not be empty: give at least one")
    return tuple(_key(each) for each in secret)


def sign(body: bytes, secret: str) -> str:
    """The ``Sendcloud-Signature`` value for ``body``: hex HMAC-SHA256 keyed with ``secret``.

    Raises ``sendcloud_async.InvalidInputError`` for a body that is not bytes or a
    secret that is not a non-empty ``str``.
    """
    data = body_bytes(body)
    return hmac.new(_key(secret), data, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str | None, secret: str | Sequence[str]) -> None:
    """Check that ``signature`` is the HMAC-SHA256 of the raw ``body`` under ``secret``.

    ``secret`` is one secret or a sequence of them (during a rotation): any
    match passes. Every candidate is computed and compared in constant time,
    without stopping at a match, and no error says which one matched.

    Returns ``None`` when it matches; raises ``InvalidSignatureError`` when the
    signature is missing (``None`` or blank), malformed (not 64 hex characters
    once stripped) or wrong. Hex case and surrounding whitespace are ignored.
    Raises ``sendcloud_async.InvalidInputError`` (a ``ValueError``) for a body
    that is not bytes (a ``str`` means it was decoded or re-serialised), a
    signature that is neither a ``str`` nor ``None``, and a secret that is empty,
    not a ``str``, or an empty sequence.
    """
    data = body_bytes(body)
    keys = secret_keys(secret)
    if signature is None:
        raise InvalidSignatureError("missing")
    if not isinstance(signature, str):
        raise InvalidInputError(f"signature must be a str or None, got {type(signature).__name__}")
    candidate = signature.strip().lower()
    if not candidate:
        raise InvalidSignatureError("missing")
    if _HEX_SHA256.fullmatch(candidate) is None:
        raise InvalidSignatureError("malformed")
    received = candidate.encode("ascii")
    matched = False
    for key in keys:
        expected = hmac.new(key, data, hashlib.sha256).hexdigest().encode("ascii")
        matched = hmac.compare_digest(expected, received) or matched
    if not matched:
        raise InvalidSignatureError("mismatch")
