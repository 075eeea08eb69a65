"""The Parquet schema of an exported log, pinned: column names, order and types.

The columns are the CSV export's (``CSV_COLUMNS``: the spec's ``integration-log``
fields in its order, ``response`` and ``request`` each split in two), typed:

* ``id``, ``integration_id``: ``int64``; ``response_code``: ``int32``;
* ``created_at``: ``timestamp[us, tz=UTC]`` (the server's offset is converted);
* ``protected``: ``bool``; ``base_url``, ``full_url``, ``method``,
  ``exception_type``, ``exception``: ``string``;
* ``response_headers``, ``response_body``, ``request_headers``,
  ``request_payload``, ``additional_data``: ``string`` holding the value's JSON
  text, whatever its type (an object, or a string: ``"text"`` with its quotes),
  so a value is kept exactly (DuckDB: ``json_extract_string(response_body, '$')``
  gives a string body's text, ``response_body::JSON`` an object's members);
  null is null.
* with several accounts, ``account``: ``string`` last (the Hive folder
  ``account=NAME`` says it too).

A null is null in every column. The schema never depends on the data: an empty
or all-null column keeps its type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timezone
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Final

import msgspec

from .._models import IntegrationLog
from .._records import CSV_COLUMNS

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "ACCOUNT_COLUMN",
    "DICTIONARY_COLUMNS",
    "JSON_COLUMNS",
    "STATISTICS_COLUMNS",
    "arrow_schema",
    "arrow_table",
]

ACCOUNT_COLUMN: Final = "account"

#: The columns that hold JSON text (see the module docstring).
JSON_COLUMNS: Final = (
    "response_headers",
    "response_body",
    "request_headers",
    "request_payload",
    "additional_data",
)

_ENCODER: Final = msgspec.json.Encoder()
#: The most bytes one Arrow ``string`` array holds (32-bit offsets).
_MAX_STRING_DATA: Final = 2**31 - 1

#: Columns worth a dictionary: few distinct values in an export (a dictionary of
#: unique values, ids or bodies, costs time and makes the file larger).
DICTIONARY_COLUMNS: Final = (
    "integration_id",
    "base_url",
    "method",
    "response_code",
    "response_headers",
    "request_headers",
    "exception_type",
    "protected",
    "additional_data",
    ACCOUNT_COLUMN,
)
#: Columns with min/max statistics: those a reader filters on (row groups skipped
#: by id, date, shop, status). Min/max of JSON text or long messages helps nobody.
STATISTICS_COLUMNS: Final = (
    "id",
    "integration_id",
    "base_url",
    "method",
    "response_code",
    "created_at",
    "exception_type",
    "protected",
    ACCOUNT_COLUMN,
)


def _types(pa: Any) -> dict[str, Any]:
    types = {name: pa.string() for name in CSV_COLUMNS}
    types.update(
        id=pa.int64(),
        integration_id=pa.int64(),
        response_code=pa.int32(),
        created_at=pa.timestamp("us", tz="UTC"),
        protected=pa.bool_(),
    )
    return types


def arrow_schema(pa: Any, *, account_column: bool) -> pa.Schema:
    """The schema (``pa`` is the pyarrow module, imported by the caller)."""
    types = _types(pa)
    fields = [pa.field(name, types[name], nullable=name != "protected") for name in CSV_COLUMNS]
    if account_column:
        fields.append(pa.field(ACCOUNT_COLUMN, pa.string(), nullable=False))
    return pa.schema(fields)


def _lines(pa: Any, pc: Any, values: list[Any]) -> Any:
    """``values`` as a string array of their JSON texts, ``None`` as null.

    One ``encode_lines`` call for the whole column, split at its newlines by Arrow:
    compact JSON has no raw newline (one in a string is ``\\n``), and ``null`` is the
    text of ``None`` only (the string ``"null"`` keeps its quotes).
    """
    data = _ENCODER.encode_lines(values)
    if len(data) > _MAX_STRING_DATA and len(values) > 1:  # past 32-bit offsets: in halves
        half = len(values) // 2
        del data
        return pa.chunked_array(
            _chunks(_lines(pa, pc, values[:half])) + _chunks(_lines(pa, pc, values[half:])),
            pa.string(),
        )
    whole = pa.LargeStringArray.from_buffers(
        1, pa.array([0, len(data)], pa.int64()).buffers()[1], pa.py_buffer(data)
    )
    texts = pc.split_pattern(whole, "\n").values.slice(0, len(values)).cast(pa.string())
    if None in values:
        texts = pc.if_else(pc.equal(texts, "null"), pa.scalar(None, pa.string()), texts)
    return texts


def _chunks(array: Any) -> list[Any]:
    return list(array.chunks) if hasattr(array, "chunks") else [array]


def _fixed_minutes(zone: object) -> bool:
    """Whether ``zone`` is a fixed offset of whole minutes (what JSON writes exactly)."""
    if not isinstance(zone, timezone):
        return False
    offset = zone.utcoffset(None)
    return offset.seconds % 60 == 0 and offset.microseconds == 0


def _timestamps(pa: Any, pc: Any, values: list[Any], kind: Any) -> Any:
    """Aware datetimes as ``timestamp[us, UTC]``, through their ISO 8601 text.

    Arrow parses ``2026-11-01T10:00:00.5+01:00`` in C++, several times faster than
    converting each ``datetime`` object; other zones (``zoneinfo``, an offset with
    seconds) and naive values take pyarrow's own conversion.
    """
    zones = set(map(attrgetter("tzinfo"), filter(None, values)))
    if not all(_fixed_minutes(zone) for zone in zones):
        return pa.array(values, kind)
    quoted = _lines(pa, pc, values)
    return pc.utf8_slice_codeunits(quoted, 1, -1).cast(kind)


_Column = Callable[[Sequence[IntegrationLog]], list[Any]]

#: Each column's values, by a list comprehension naming its attribute: twice as fast
#: as ``operator.attrgetter`` (the interpreter specializes a literal attribute).
_VALUES: Final[dict[str, _Column]] = {
    "id": lambda items: [log.id for log in items],
    "integration_id": lambda items: [log.integration_id for log in items],
    "base_url": lambda items: [log.base_url for log in items],
    "full_url": lambda items: [log.full_url for log in items],
    "method": lambda items: [log.method for log in items],
    "response_code": lambda items: [log.response_code for log in items],
    "response_headers": lambda items: [
        None if (r := log.response) is None else r.headers for log in items
    ],
    "response_body": lambda items: [
        None if (r := log.response) is None else r.body for log in items
    ],
    "request_headers": lambda items: [
        None if (r := log.request) is None else r.headers for log in items
    ],
    "request_payload": lambda items: [
        None if (r := log.request) is None else r.payload for log in items
    ],
    "created_at": lambda items: [log.created_at for log in items],
    "exception_type": lambda items: [log.exception_type for log in items],
    "exception": lambda items: [log.exception for log in items],
    "protected": lambda items: [log.protected for log in items],
    "additional_data": lambda items: [log.additional_data for log in items],
}


def arrow_table(
    pa: Any, pc: Any, schema: pa.Schema, items: Sequence[IntegrationLog], account: str | None
) -> pa.Table:
    """``items`` as a table of ``schema`` (with ``account`` in every row if it has the column).

    ``pa`` and ``pc`` are pyarrow and ``pyarrow.compute``.
    """
    arrays = []
    for field in schema:
        name = field.name
        if name == ACCOUNT_COLUMN:
            arrays.append(pa.array([account] * len(items), field.type))
        elif name in JSON_COLUMNS:
            arrays.append(_lines(pa, pc, _VALUES[name](items)))
        elif name == "created_at":
            arrays.append(_timestamps(pa, pc, _VALUES[name](items), field.type))
        else:
            arrays.append(pa.array(_VALUES[name](items), field.type))
    return pa.Table.from_arrays(arrays, schema=schema)
