"""How an export writes logs: JSON Lines and CSV (the one column list, the one cell rule).

A compressed file (``file_encoding``) holds each commit as one complete gzip member
(or Zstandard frame): a file of several members is one valid stream (``gzip -d``,
``zstd -d``, ``gzip.open`` read it whole), and a commit always ends at a member's end.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Final

import msgspec

from ._errors import require_extra
from ._models import IntegrationLog

__all__ = ["CSV_COLUMNS", "csv_header", "encode_csv", "encode_jsonl", "file_encoding"]

Encode = Callable[[Sequence[IntegrationLog]], bytes]

#: The CSV columns: the spec's ``integration-log`` fields in the spec's order,
#: with ``response`` and ``request`` each split into two columns.
CSV_COLUMNS: Final = (
    "id",
    "integration_id",
    "base_url",
    "full_url",
    "method",
    "response_code",
    "response_headers",
    "response_body",
    "request_headers",
    "request_payload",
    "created_at",
    "exception_type",
    "exception",
    "protected",
    "additional_data",
)

_ENCODER: Final = msgspec.json.Encoder()


def encode_jsonl(items: Sequence[IntegrationLog]) -> bytes:
    """One JSON object per log, each followed by ``\\n``.

    Every top-level field of ``IntegrationLog`` is present (``null`` when the
    server sent none); inside ``request`` and ``response`` a null member is left
    out. Date-times keep the server's UTC offset (``Z`` for UTC).
    """
    if not items:
        return b""
    return _ENCODER.encode_lines(items)


def _text(value: Any) -> str:
    """A CSV cell: ``""`` for null, a string as is, anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text: str = _ENCODER.encode(value).decode()
    if isinstance(value, datetime):
        return text[1:-1]  # the JSON string's contents: the same form as in JSON Lines
    return text


def _row(log: IntegrationLog) -> list[str]:
    response = log.response
    request = log.request
    return [
        _text(log.id),
        _text(log.integration_id),
        log.base_url,
        _text(log.full_url),
        _text(log.method),
        _text(log.response_code),
        "" if response is None else _text(response.headers),
        "" if response is None else _text(response.body),
        "" if request is None else _text(request.headers),
        "" if request is None else _text(request.payload),
        _text(log.created_at),
        _text(log.exception_type),
        _text(log.exception),
        _text(log.protected),
        _text(log.additional_data),
    ]


def csv_header() -> bytes:
    """The CSV header row (``CSV_COLUMNS``), ``\\r\\n``-terminated."""
    return (",".join(CSV_COLUMNS) + "\r\n").encode()


def encode_csv(items: Sequence[IntegrationLog]) -> bytes:
    """CSV rows (RFC 4180: ``\\r\\n``, fields quoted when needed), UTF-8, no header.

    Flattening: ``response`` becomes ``response_headers`` and ``response_body``,
    ``request`` becomes ``request_headers`` and ``request_payload``. A JSON
    object (or array) is written as compact JSON text, a string as it is, null
    as an empty cell, booleans as ``true``/``false``, date-times as ISO 8601
    with their offset. So an empty cell means null *or* an empty string
    (``additional_data`` is often ``""``).
    """
    if not items:
        return b""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(_row(log) for log in items)
    return buffer.getvalue().encode()


def file_encoding(fmt: str, compression: str) -> tuple[Encode, bytes]:
    """How a file of ``fmt`` (``jsonl``, ``csv``) compressed with ``compression`` (``none``,
    ``gzip``, ``zstd``) is written: the encoder of a commit's logs, and the file's header."""
    encode: Encode = encode_csv if fmt == "csv" else encode_jsonl
    header = csv_header() if fmt == "csv" else b""
    if compression == "none":
        return encode, header
    pack: Callable[[bytes], bytes]
    if compression == "gzip":

        def pack(data: bytes) -> bytes:
            return gzip.compress(data, compresslevel=6, mtime=0)

    else:
        pack = require_extra("zstandard", "zstd", "a .zst export").ZstdCompressor(level=3).compress

    def encode_packed(items: Sequence[IntegrationLog]) -> bytes:
        return pack(encode(items))

    return encode_packed, pack(header) if header else b""
