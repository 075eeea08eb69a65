"""The one rule for date-times that arrive without an offset.

RFC 3339 requires an offset, but the server (and webhook payloads) sometimes omit
it; a lenient reader should not fail a whole page on that. Such a date-time is
read as UTC, here and nowhere else: models, the log decoder's fallback and the
webhook decoders all call ``as_utc``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload

__all__ = ["as_utc"]


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """``value`` unchanged if it carries an offset; a naive one is taken as UTC."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        return value.replace(tzinfo=UTC)
    return value
