"""The ``Sendcloud-Signature`` header: sign, verify, rotation.

The raw body is hashed (never a re-serialisation), digests are compared in constant
time, every candidate secret of a rotation is compared without stopping at a match,
and no message holds the secret, the expected digest or the received signature.

Nor does any frame of what is raised: error trackers record the local variables of
every frame of a traceback, and anyone can make ``InvalidSignatureError`` happen by
posting a forged webhook. The checks (``signature_error``) return the error instead
of raising it, so the frames that held the keys and the expected digest are gone,
and the public functions drop ``secret`` before they raise.
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


def _checked(
    body: object, secret: object
) -> tuple[bytes | bytearray | memoryview, tuple[bytes, ...]] | InvalidInputError:
    """The body and the keys, or the refusal of one of them (returned without a traceback:
    its frames hold the secret)."""
    try:
        return body_bytes(body), secret_keys(secret)
    except InvalidInputError as exc:
        return exc.with_traceback(None)


def _matches(
    keys: tuple[bytes, ...], data: bytes | bytearray | memoryview, received: bytes
) -> bool:
    """Whether ``received`` is the digest of ``data`` under any of ``keys``: every key is
    compared, in constant time. Only a bool comes out of this frame."""
    matched = False
    for key in keys:
        expected = hmac.new(key, data, hashlib.sha256).hexdigest().encode("ascii")
        matched = hmac.compare_digest(expected, received) or matched
    return matched


def signature_error(
    body: object, signature: object, secret: object
) -> InvalidSignatureError | InvalidInputError | None:
    """What ``verify_signature`` raises for these arguments, or ``None`` if they pass.

    Returned, not raised: the caller raises it from a frame that no longer holds
    ``secret`` (``del`` it first), and none of the frames that held the keys or the
    expected digest is in the traceback.
    """
    checked = _checked(body, secret)
    if isinstance(checked, InvalidInputError):
        return checked
    data, keys = checked
    if signature is None:
        return InvalidSignatureError("missing")
    if not isinstance(signature, str):
        return InvalidInputError(f"signature must be a str or None, got {type(signature).__name__}")
    candidate = signature.strip().lower()
    if not candidate:
        return InvalidSignatureError("missing")
    if _HEX_SHA256.fullmatch(candidate) is None:
        return InvalidSignatureError("malformed")
    if not _matches(keys, data, candidate.encode("ascii")):
        return InvalidSignatureError("mismatch")
    return None


def sign(body: bytes, secret: str) -> str:
    """The ``Sendcloud-Signature`` value for ``body``: hex HMAC-SHA256 keyed with ``secret``.

    Raises ``sendcloud_async.InvalidInputError`` for a body that is not bytes or a
    secret that is not a non-empty ``str``.
    """
    if isinstance(secret, str):
        checked = _checked(body, secret)
        if not isinstance(checked, InvalidInputError):
            data, (key,) = checked
            return hmac.new(key, data, hashlib.sha256).hexdigest()
        error = checked
    else:  # one secret, not a rotation's sequence
        error = InvalidInputError(f"secret must be a str, got {type(secret).__name__}")
    del secret  # the raising frame holds no secret
    raise error


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
    not a ``str``, or an empty sequence. No frame of what it raises holds the
    secret, a key or the expected digest.
    """
    error = signature_error(body, signature, secret)
    del secret  # the raising frame holds no secret (error trackers record frame locals)
    if error is not None:
        raise error
