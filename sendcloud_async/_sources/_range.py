"""An export's range of ``created_at``: ``[since, until)``, and where its walks start and stop.

The listing is ordered by ``created_at``, oldest-first (a cursor lists the logs
strictly after it) or newest-first (strictly before it). A ranged export learns
which from the first two logs of the listing when it begins (``probe_order``) and
records it in its checkpoint. Knowing it, a walk starts at the range's near end
(``start_cursor``: one microsecond before ``since`` oldest-first, so that a log
created exactly at ``since`` is listed; ``until`` newest-first) and ends at the
first log beyond the far end (``in_range``) instead of reading the account to its
end. Not knowing it (fewer than two distinct times at the head of the listing),
every page is read and filtered: the result is the same, only slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Final

from .. import _validate as check
from .._errors import InvalidInputError
from .._pagination import PaginationError
from ._ties import page_order, relist_cursor
from ._watch_state import Order

if TYPE_CHECKING:
    from .._client import SendcloudClient
    from .._models import IntegrationLog

__all__ = ["NEWEST_FIRST", "OLDEST_FIRST", "check_range", "in_range", "probe_order", "start_cursor"]

OLDEST_FIRST: Final = "oldest_first"
NEWEST_FIRST: Final = "newest_first"


def check_range(since: object, until: object) -> tuple[datetime | None, datetime | None]:
    """``since`` and ``until`` checked: aware date-times (the package's one rule), in order.

    ``InvalidInputError`` for a naive date-time, another type, or ``until <= since``.
    """
    start = None if since is None else check.aware_datetime(since, "since")
    end = None if until is None else check.aware_datetime(until, "until")
    if start is not None and end is not None and end <= start:
        raise InvalidInputError(
            f"until ({end.isoformat()}) must be later than since ({start.isoformat()})"
        )
    return start, end


def start_cursor(order: str | None, since: datetime | None, until: datetime | None) -> str | None:
    """The cursor a walk of the range begins with (``None``: the head of the listing)."""
    if order == OLDEST_FIRST and since is not None:
        return relist_cursor(since, OLDEST_FIRST)  # one microsecond before: ``since`` is listed
    if order == NEWEST_FIRST and until is not None:
        return until.isoformat()
    return None


def in_range(
    items: Sequence[IntegrationLog],
    order: str | None,
    since: datetime | None,
    until: datetime | None,
) -> tuple[list[IntegrationLog], bool]:
    """The logs of ``items`` in ``[since, until)``, and whether the walk is past the far end.

    A log without ``created_at`` is in no range.
    """
    kept: list[IntegrationLog] = []
    beyond = False
    for log in items:
        created = log.created_at
        if created is None:
            continue
        if since is not None and created < since:
            beyond = beyond or order == NEWEST_FIRST
        elif until is not None and created >= until:
            beyond = beyond or order == OLDEST_FIRST
        else:
            kept.append(log)
    return kept, beyond


async def probe_order(client: SendcloudClient, integration_id: int | None) -> Order | None:
    """The listing's order, from its first two logs (one request of two logs).

    ``None`` when it cannot tell (fewer than two logs with distinct times at its head).
    """
    pages = client.logs.pages(integration_id=integration_id, page_size=2, read_ahead=0)
    try:
        first = await anext(pages, None)
    finally:
        await pages.aclose()
    if first is None:
        return None
    times = [log.created_at for log in first.items if log.created_at is not None]
    if len(times) < 2 or times[0] == times[1]:
        return None
    try:
        return page_order(times)
    except PaginationError:
        return None
