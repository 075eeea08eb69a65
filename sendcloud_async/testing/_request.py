"""How the fake reads a request: the journal entry and the credentials it carries.

``RecordedRequest`` is what ``fake.requests`` holds. ``read_authorization`` reads an
``Authorization`` header once, for every part of the fake that needs it (signing
in, telling accounts apart, the token endpoint's client, the ``revoke_token``
fault, the spec check's bearer scheme): one reading of ``Basic`` and ``Bearer``,
so that no two parts can disagree about what a header means.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

import msgspec

__all__ = ["Authorization", "RecordedRequest", "read_authorization"]


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it.

    ``path`` is decoded and relative to the API base (``/integrations/5``); for a
    request outside it (the token endpoint) it is the whole path. ``raw_path`` is
    the request target exactly as sent. ``query`` holds the raw query's values
    decoded with ``unquote`` (a ``+`` stays a ``+``). ``headers`` are a copy as
    received, Authorization included; ``header()`` looks one up in any case.
    """

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    auth_scheme: str | None

    @property
    def json(self) -> Any:
        """The body decoded as JSON (``None`` for an empty body)."""
        if not self.body:
            return None
        return msgspec.json.decode(self.body)

    def header(self, name: str) -> str | None:
        """The value of header ``name``, matched case-insensitively."""
        value = self.headers.get(name)
        if value is not None:
            return value
        lowered = name.lower()
        for key, val in self.headers.items():
            if key.lower() == lowered:
                return val
        return None


@dataclass(frozen=True, slots=True)
class Authorization:
    """An ``Authorization`` header, read: its scheme and what follows it.

    ``scheme`` is lower-cased (``""`` when there is no header); ``credentials``
    is the rest, stripped (not shown in ``repr``: it is a secret); ``present``
    says whether the request had a non-empty header at all.
    """

    scheme: str
    credentials: str
    present: bool = True

    def __repr__(self) -> str:
        return f"Authorization(scheme={self.scheme!r}, present={self.present})"

    @property
    def known_scheme(self) -> str | None:
        """``"basic"`` or ``"bearer"``; ``None`` for no header or another scheme."""
        return self.scheme if self.scheme in ("basic", "bearer") else None

    @property
    def basic(self) -> bytes | None:
        """The ``user:password`` bytes of Basic credentials; ``None`` if not Basic or
        not valid base64."""
        if self.scheme != "basic":
            return None
        try:
            return base64.b64decode(self.credentials, validate=True)
        except (binascii.Error, ValueError):
            return None

    @property
    def basic_pair(self) -> tuple[bytes, bytes | None] | None:
        """Basic credentials split at the first colon: ``(user, password)``, the
        password ``None`` when there is no colon; ``None`` if not Basic or not base64."""
        decoded = self.basic
        if decoded is None:
            return None
        user, colon, password = decoded.partition(b":")
        return user, password if colon else None

    @property
    def bearer(self) -> str | None:
        """The token of ``Bearer`` credentials; ``None`` if not Bearer or empty."""
        if self.scheme != "bearer" or not self.credentials:
            return None
        return self.credentials


def read_authorization(value: str | None) -> Authorization:
    """``value`` (an ``Authorization`` header, or ``None``) read once for the whole fake."""
    if not value:
        return Authorization("", "", present=False)
    scheme, _, credentials = value.partition(" ")
    return Authorization(scheme.lower(), credentials.strip())
