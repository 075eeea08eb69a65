"""Ties at page boundaries: how a walk of a date-time cursor loses no log and repeats none.

The log listings page by a date-time cursor, and a server may list "strictly
after" (oldest-first) or "strictly before" (newest-first) it. A page boundary can
fall inside a group of logs that share a ``created_at``: following the server's
link would then skip the rest of the group. The watch and the exports therefore
build their own cursor one microsecond on the near side of the boundary's instant
(``relist_cursor``), so that the instant is listed again, and drop the logs listed
before: those at the boundary's instant whose ids were delivered there, and those
on the near side of it (``listed_before``; a server whose cursor is inclusive, or
that truncates it, lists some). They follow the server's link only when a request
of their own would repeat itself (a whole page at one instant, all delivered) or
cannot be built (the listing's order is not known yet: every log so far at one
instant). A log without ``id`` counts as id 0.

Limit (of any date-time cursor): when more logs share one ``created_at`` than fit
in a page, the server cannot list the ones beyond the page; the walk then follows
the server's link past that instant.

The watch keeps its boundary in its ``WatchState`` (``_watch_pages``); an export
keeps one ``Boundary`` per walk in its checkpoint (``past_boundary``, ``next_request``).
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import NamedTuple, Protocol, TypeVar

import msgspec

from .._models import AwareDatetime
from .._pagination import PaginationError
from ._watch_state import NEWEST_FIRST, OLDEST_FIRST, TICK, Order

__all__ = [
    "Boundary",
    "Stamped",
    "follow_link",
    "listed_before",
    "log_id",
    "next_request",
    "page_order",
    "past_boundary",
    "relist_cursor",
]


class Stamped(Protocol):
    """What paging reads of a log: an ``IntegrationLog``, or its ``LogStamp``."""

    @property
    def id(self) -> int | None: ...

    @property
    def created_at(self) -> datetime | None: ...


_L = TypeVar("_L", bound=Stamped)


class Boundary(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Where a walk's last page ended: its last log's ``created_at`` and the ids delivered then.

    ``order``: the listing's (``"oldest_first"``/``"newest_first"``), ``None`` while
    every log the walk listed was at ``at``.
    """

    at: AwareDatetime
    ids: tuple[int, ...] = ()
    order: Order | None = None


def relist_cursor(at: datetime, order: Order | str) -> str:
    """The cursor that lists ``at`` again: one microsecond on the near side of it."""
    return (at - TICK if order == OLDEST_FIRST else at + TICK).isoformat()


def listed_before(
    created: datetime, ident: int, at: datetime, ids: Collection[int], order: Order | str
) -> bool:
    """Whether a log (``created``, id ``ident``) was listed before a boundary at ``at``.

    True when it is at ``at`` and one of ``ids``, or on the near side of ``at``.
    """
    if created == at:
        return ident in ids
    return created < at if order == OLDEST_FIRST else created > at


def page_order(times: Sequence[datetime]) -> Order | None:
    """The direction of ``times``; ``None`` if all equal (or fewer than two).

    Raises ``PaginationError`` if they go both ways.
    """
    up = down = False
    for a, b in itertools.pairwise(times):
        if b > a:
            up = True
        elif b < a:
            down = True
    if up and down:
        raise PaginationError(
            "the server listed logs neither oldest-first nor newest-first by created_at; "
            "cannot tell which are new"
        )
    if up:
        return OLDEST_FIRST
    if down:
        return NEWEST_FIRST
    return None


def log_id(log: Stamped) -> int:
    """A log's id as paging counts it (none: 0)."""
    return 0 if log.id is None else log.id


def _direction(
    boundary: Boundary | None, times: list[datetime], order: Order | None
) -> Order | None:
    """The listing's order: as known, else as the page (or the page after the boundary) goes."""
    known = order or (None if boundary is None else boundary.order)
    seen = page_order(times)
    if known is not None and seen is not None and seen != known:
        raise PaginationError(
            f"the server listed logs {seen.replace('_', '-')} on a page of a listing "
            f"that was {known.replace('_', '-')}; the export cannot tell which are new"
        )
    if known is None and seen is None and boundary is not None and times:
        # Every log so far at one instant, fetched with the server's link: the
        # page is on the far side of the boundary, which tells the direction.
        first = times[0]
        if first != boundary.at:
            seen = OLDEST_FIRST if first > boundary.at else NEWEST_FIRST
    return known or seen


def past_boundary(
    boundary: Boundary | None, items: Sequence[_L], order: Order | None
) -> tuple[list[_L], Boundary | None]:
    """The logs of ``items`` not listed before ``boundary``, and the boundary after the page.

    ``boundary``: where the walk stood (``None``: nowhere yet, or a checkpoint that
    did not record it: nothing is dropped). ``order``: the listing's, if known. A
    log without ``created_at`` cannot be placed: it is kept and moves nothing.
    Raises ``PaginationError`` for a page whose order is not the listing's.
    """
    times = [log.created_at for log in items if log.created_at is not None]
    direction = _direction(boundary, times, order)
    kept: list[_L] = []
    at = None if boundary is None else boundary.at
    ids: set[int] = set() if boundary is None else set(boundary.ids)
    last = at
    for log in items:
        created = log.created_at
        if created is None:
            kept.append(log)
            continue
        ident = log_id(log)
        if at is not None:
            if direction is None:  # every log at one instant so far
                if created == at and ident in ids:
                    continue
            elif listed_before(created, ident, at, ids, direction):
                continue
        kept.append(log)
        if last is None or created != last:
            last, ids = created, set()
        ids.add(ident)
    if last is None:
        return kept, boundary
    if (
        boundary is not None
        and last == boundary.at
        and direction == boundary.order
        and ids == set(boundary.ids)
    ):
        return kept, boundary
    return kept, Boundary(at=last, ids=tuple(sorted(ids)), order=direction)


class Request(NamedTuple):
    """A walk's next request: its cursor, and the server's cursors followed since the walk moved."""

    cursor: str
    followed: frozenset[str]


def next_request(
    before: Boundary | None,
    after: Boundary | None,
    cursor: str | None,
    server_cursor: str,
    followed: frozenset[str] = frozenset(),
) -> Request:
    """The request after a page fetched with ``cursor`` that took the walk ``before`` to ``after``.

    A cursor of its own (``relist_cursor``) once the walk moved and its order is known;
    else the server's (``follow_link``).
    """
    moved = after is not None and (
        before is None or after.at != before.at or after.ids != before.ids
    )
    if moved and after is not None and after.order is not None:
        return Request(relist_cursor(after.at, after.order), frozenset())
    return follow_link(server_cursor, cursor, moved, followed)


def follow_link(
    server_cursor: str | None,
    cursor: str | None,
    moved: bool,
    followed: frozenset[str] = frozenset(),
) -> Request:
    """Follow the server's next-page link after a page fetched with ``cursor``.

    ``moved``: the page took the walk somewhere new; ``followed``: the server's
    cursors followed since it last moved. A link without a cursor, or one followed
    again without the walk moving (the very request again, or a loop through several
    links), raises ``PaginationError`` instead of looping.
    """
    if server_cursor is None:
        raise PaginationError("the server's next-page link has no cursor; the walk cannot go on")
    if moved:
        followed = frozenset()
    if (server_cursor == cursor and not moved) or server_cursor in followed:
        raise PaginationError(
            f"the server's next-page link repeats the cursor {server_cursor!r} "
            "without listing anything new; stopping instead of looping"
        )
    return Request(server_cursor, followed | {server_cursor})
