"""The manifest: the committed state and the committed parts, in one object.

``account=NAME/_manifest.json`` is written whole and replaced atomically (files:
temporary file, ``fsync``, ``os.replace``; object stores: one PUT, conditional on
the version read, see ``_store``). It is written only after every part it lists
is durable, so whatever instant a writer dies at, the manifest names complete
parts and the state after exactly their logs; a part not listed is left over
from a killed writer and is removed (or rewritten, under its deterministic name)
by the next one.
"""

from __future__ import annotations

from typing import Final

import msgspec

from .._errors import ExportInputError

__all__ = [
    "MANIFEST_VERSION",
    "NULL",
    "Manifest",
    "PartEntry",
    "decode_manifest",
    "encode_manifest",
]

MANIFEST_VERSION: Final = 1
NULL: Final = msgspec.Raw(b"null")


class PartEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One committed part."""

    key: str
    date: str
    records: int
    bytes: int


class Manifest(msgspec.Struct, kw_only=True):
    """What is committed for one account."""

    version: int = MANIFEST_VERSION
    account: str
    format: str
    compression: str
    #: The source's state after the last committed log, as its JSON (``null`` before any).
    state: msgspec.Raw = NULL
    #: The next part group's sequence number.
    next_seq: int = 0
    #: Logs in all the committed parts.
    records: int = 0
    parts: list[PartEntry] = msgspec.field(default_factory=list)
    #: Who wrote it last (host, process, a random token): informational.
    writer: str = ""


_ENCODER: Final = msgspec.json.Encoder()
_DECODER: Final = msgspec.json.Decoder(Manifest)


def encode_manifest(manifest: Manifest) -> bytes:
    return _ENCODER.encode(manifest)


def decode_manifest(data: bytes, where: str) -> Manifest:
    """The manifest in ``data`` (read from ``where``); ``ExportInputError`` if it is not one."""
    try:
        manifest = _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise ExportInputError(f"{where} is not a parts manifest: {exc}") from None
    if manifest.version != MANIFEST_VERSION:
        raise ExportInputError(
            f"{where} is a version {manifest.version} manifest; this version reads "
            f"version {MANIFEST_VERSION}"
        )
    return manifest
