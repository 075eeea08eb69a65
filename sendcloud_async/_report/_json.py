"""``--json``: a report as JSON, and back.

The JSON is ``msgspec.json.encode`` of ``Report`` (every field, times in ISO 8601
UTC with ``Z``), indented; ``from_json`` decodes it, checking every field's type;
``schema()`` is its JSON Schema (docs/report.md shows the fields).
"""

from __future__ import annotations

from typing import Any

import msgspec

from ._model import Report

__all__ = ["from_json", "schema", "to_json"]

_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(Report)


def to_json(report: Report, *, indent: int = 2) -> str:
    """The report as JSON text (``indent`` 0: one line)."""
    raw = _ENCODER.encode(report)
    if indent:
        raw = msgspec.json.format(raw, indent=indent)
    return raw.decode()


def from_json(data: bytes | str) -> Report:
    """A report ``to_json`` wrote (``msgspec.ValidationError`` if it is not one)."""
    return _DECODER.decode(data)


def schema() -> dict[str, Any]:
    """The JSON Schema of the report."""
    return msgspec.json.schema(Report)
