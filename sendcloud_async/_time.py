"""The one rule for date-times that arrive without an offset.

RFC 3339 requires an offset, but the server (and webhook payloads) sometimes omit
it; a lenient reader should not fail a whole page on that. Such a date-time is
read as UTC, here and nowhere else: models, the log decoder's fallback and the
webhook decoders all call ``as_utc``. An HTTP-date (a ``Date`` or ``Retry-After``
header) is read by ``http_date``, with the same rule.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import overload

__all__ = ["as_utc", "http_date"]


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """``value`` unchanged if it carries an offset; a naive one is taken as UTC."""
    if value is not None and (value.tzinfo is None or value.utcoffset() is None):
        return value.replace(tzinfo=UTC)
    return value


def http_date(value: str | None) -> datetime | None:
    """An HTTP-date (RFC 9110: ``Sun, 06 Nov 1994 08:49:37 GMT`` or an obsolete form)
    as an aware datetime; ``None`` if ``value`` is missing or not one."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return None if when is None else as_utc(when)
