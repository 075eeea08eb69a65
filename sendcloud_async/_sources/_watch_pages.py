"""One page of a poll: the new logs on it, the state after it, and the next request.

How pages are asked for
-----------------------

The cursor is a date-time, so a page boundary can fall inside a group of logs
that share a ``created_at``; a server that pages "strictly after the last
instant" would then skip the rest of the group. The watch therefore builds its
own cursor one microsecond on the near side of the boundary (``mark - 1µs``
oldest-first, ``pos + 1µs`` newest-first: ``_ties.relist_cursor``, the rule the
exports page by too), so the boundary's instant is listed again, and drops the
ids it has already seen there (``_ties.listed_before``). Only when that request
would not move (a whole page of logs at one instant, all seen) does it follow
the server's link. A server whose cursor is inclusive, or that truncates it,
works the same: logs on the far side of the boundary are dropped, never
delivered twice. Logs without ``id`` count as id 0.

Limit (of any date-time cursor, not of the watch): when more logs share one
``created_at`` than fit in a page, the server cannot list the ones beyond the
page; the watch then follows the server's link past that instant.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple, cast

import msgspec

from .._models import IntegrationLog
from .._pagination import PaginationError
from ._ties import Stamped, follow_link, listed_before, log_id, page_order, relist_cursor
from ._watch_state import NEWEST_FIRST, OLDEST_FIRST, LateLog, Walk, WatchState
from ._watch_window import Window, settle, window_bottom

__all__ = ["Page", "Step", "advance", "next_cursor"]


class Page(NamedTuple):
    """What the server answered: the logs, and the cursor of its next-page link.

    ``has_next`` is whether it sent a next-page link; ``next_cursor`` the
    link's cursor (``None`` if it had none). ``logs``: the page's logs in full,
    decoded when called, when ``items`` are only their stamps (``LogStamp``, in
    the same order): the watch then decodes a page only if it delivers from it.
    ``date``: the response's ``Date`` header as sent (``None``: none), read only
    when a poll ends (``close_poll``).
    """

    items: Sequence[Stamped]
    has_next: bool
    next_cursor: str | None
    logs: Callable[[], list[IntegrationLog]] | None = None
    date: str | None = None


class Step(NamedTuple):
    """The result of a page: the new logs on it, the state after it, whether the poll goes on.

    ``late``: those of ``items`` that were behind the mark (from the lookback window);
    ``followed``: the server's cursors followed since the poll last moved (pass them to
    the next ``advance`` of the poll).
    """

    items: list[IntegrationLog]
    state: WatchState
    more: bool
    late: tuple[LateLog, ...] = ()
    followed: frozenset[str] = frozenset()


def next_cursor(state: WatchState) -> str | None:
    """The cursor of the next request of a poll (``None``: the listing's first page)."""
    if state.after is not None:
        return state.after
    if state.order == OLDEST_FIRST:
        if state.scan is not None:
            return relist_cursor(state.scan, OLDEST_FIRST)
        return None if state.mark is None else relist_cursor(state.mark, OLDEST_FIRST)
    if state.order == NEWEST_FIRST and state.walk is not None and state.walk.pos is not None:
        return relist_cursor(state.walk.pos, NEWEST_FIRST)
    return None


def _created(log: Stamped) -> datetime:
    created = log.created_at
    if created is None:
        raise PaginationError(
            f"log {log.id!r} has no created_at; the watch cannot place it in time"
        )
    return created


def _stop(state: WatchState, lookback: timedelta) -> datetime | None:
    """How far down a newest-first walk goes: the window's bottom, or the mark if lower."""
    bottom = window_bottom(state, lookback)
    return bottom if bottom is None or state.mark is None else min(bottom, state.mark)


def _merge_mark(
    mark: datetime | None, mark_ids: tuple[int, ...], head: datetime | None, head_ids: Sequence[int]
) -> tuple[datetime | None, tuple[int, ...]]:
    """The high-water mark after delivering up to ``head``."""
    if head is None:
        return mark, mark_ids
    if mark is None or head > mark:
        return head, tuple(sorted(set(head_ids)))
    if head == mark:
        return mark, tuple(sorted(set(mark_ids) | set(head_ids)))
    return mark, mark_ids


def _walk_floor(walk: Walk) -> datetime | None:
    """Down to where ``walk`` remembers the logs it delivered (``None``: it delivered none).

    A walk saved before it kept its floor remembers for sure only its head.
    """
    return walk.head if walk.floor is None else walk.floor


def _finish_walk(state: WatchState, lookback: timedelta) -> WatchState:
    walk = state.walk
    if walk is None:
        return state
    mark, mark_ids = _merge_mark(state.mark, state.mark_ids, walk.head, walk.head_ids)
    window = None
    if mark != state.mark and state.mark is not None and lookback:
        window = Window(state)
        window.keep(state.mark, state.mark_ids)
    low = state.low
    floor = _walk_floor(walk)
    if floor is not None and (low is None or floor > low):
        # The window never reaches below what the walk remembers: the logs it delivered
        # there (under a smaller lookback) would be delivered again.
        low = floor
    ended = msgspec.structs.replace(state, mark=mark, mark_ids=mark_ids, walk=None, low=low)
    return settle(ended, window, lookback)


def _oldest_first(
    state: WatchState, items: Sequence[Stamped], times: list[datetime], lookback: timedelta
) -> tuple[list[Stamped], WatchState, tuple[LateLog, ...]]:
    mark = state.mark
    ids = set(state.mark_ids)
    bottom = window_bottom(state, lookback)
    scan = state.scan
    window = Window(state)
    known = window.known
    new: list[Stamped] = []
    for item, t in zip(items, times, strict=True):
        i = item.id
        if i is None:
            i = 0  # as ``log_id``: this loop is an idle poll's whole cost, so inlined
        if mark is None or t > mark:
            window.keep(mark, ids)
            mark, ids, scan = t, {i}, None
        elif t == mark:
            scan = None
            if i in ids:  # as ``listed_before`` at the mark: inlined, an idle poll's cost
                continue  # delivered before
            ids.add(i)
        else:
            if scan is not None and t > scan:
                scan = t
            if bottom is None or t < bottom:
                continue  # older than the window (before the start)
            delivered = known.get(t)
            if (delivered is not None and i in delivered) or window.seen(t, i):
                continue  # delivered before
            window.deliver(item.id, t, i, mark)
        new.append(item)
    if (
        not new
        and mark == state.mark
        and len(ids) == len(state.mark_ids)
        and not window.changed
        and bottom == state.low
    ):
        # Nothing delivered and the mark stayed (an idle poll re-reading its window):
        # only how far the window was read changes.
        if scan is not None and mark is not None:
            scan = None if scan >= mark else scan if bottom is None else max(scan, bottom)
        if scan == state.scan:
            return new, state, ()
        return new, msgspec.structs.replace(state, scan=scan), ()
    moved = msgspec.structs.replace(state, mark=mark, mark_ids=tuple(sorted(ids)), scan=scan)
    if not new and moved == state:
        return new, state, ()
    return new, settle(moved, window, lookback), tuple(window.late)


def _newest_first(
    state: WatchState,
    items: Sequence[Stamped],
    times: list[datetime],
    *,
    known: bool,
    lookback: timedelta,
) -> tuple[list[Stamped], WatchState, bool, tuple[LateLog, ...]]:
    """(new logs, state, reached the window's bottom, late logs).

    ``known``: the order is known (else tentative).
    """
    walk = state.walk or Walk()
    mark, mark_ids = state.mark, set(state.mark_ids)
    bottom = window_bottom(state, lookback)
    stop = _stop(state, lookback)
    head, head_ids = walk.head, set(walk.head_ids)
    pos, pos_ids = walk.pos, set(walk.pos_ids)
    window = Window(state)
    new: list[Stamped] = []
    reached = False
    for item, t in zip(items, times, strict=True):
        i = log_id(item)
        if pos is not None and listed_before(t, i, pos, pos_ids, NEWEST_FIRST):
            continue  # seen earlier in this walk
        if known and stop is not None and t < stop:
            reached = True
            break
        if pos is None or t < pos:
            pos, pos_ids = t, {i}
        else:
            pos_ids.add(i)
        if mark is not None and t < mark:
            if bottom is None or t < bottom or window.seen(t, i):
                continue  # delivered by an earlier poll (or older than the window)
            window.deliver(item.id, t, i, mark)
            new.append(item)
            continue
        if mark is not None and t == mark and i in mark_ids:
            continue  # delivered by an earlier poll (or before the start)
        new.append(item)
        if head is None or t > head:
            head, head_ids = t, {i}
        elif t == head:
            head_ids.add(i)
        if t >= head - lookback:  # the window will cover it once the walk moves the mark
            window.remember(t, i)
    floor = _walk_floor(walk)
    if head is not None:
        # What the walk delivered further down than a window from its head is never
        # looked up again (the walk goes down; the next window starts at head - lookback),
        # so it is forgotten: the walk's memory is complete only down to its floor, which
        # a larger lookback (a resumed walk) never lowers.
        below = head - lookback
        floor = below if floor is None else max(floor, below)
    walked = Walk(
        head=head,
        head_ids=tuple(sorted(head_ids)),
        pos=pos,
        pos_ids=tuple(sorted(pos_ids)),
        floor=floor,
    )
    state = msgspec.structs.replace(state, walk=walked)
    if new:
        remembered = window.merged()
        if floor is not None:
            for at in [at for at in remembered if at < floor and (mark is None or at >= mark)]:
                del remembered[at]
        recent = tuple(sorted((at, tuple(sorted(ids))) for at, ids in remembered.items()))
        state = msgspec.structs.replace(state, recent=recent)
    return new, state, reached, tuple(window.late)


def _core(state: WatchState) -> WatchState:
    return msgspec.structs.replace(state, after=None) if state.after is not None else state


def advance(
    state: WatchState,
    page: Page,
    lookback: timedelta = timedelta(0),
    followed: frozenset[str] = frozenset(),
) -> Step:
    """The new logs on ``page`` (fetched with ``next_cursor(state)``) and the state after it.

    ``lookback``: the window behind the mark the state remembers (0: none);
    ``followed``: the previous page's ``Step.followed`` in the same poll.
    """
    start = state
    before = _core(state)
    items = page.items
    stamps = [item.created_at for item in items]
    if None in stamps:
        _created(items[stamps.index(None)])  # raises: the watch cannot place it
    times = cast("list[datetime]", stamps)
    order = page_order(times)
    if state.order is None:
        if order is None and state.walk is not None and state.walk.pos is not None and times:
            # A tentative walk (one instant so far): the next page's first log tells.
            order = page_order([state.walk.pos, times[0]])
        if order == OLDEST_FIRST:
            state = _finish_walk(state, lookback)
        if order is not None:
            state = msgspec.structs.replace(state, order=order)
    elif order is not None and order != state.order:
        raise PaginationError(
            f"the server listed logs {order.replace('_', '-')} on a page of a listing "
            f"that was {state.order.replace('_', '-')}; the watch cannot tell which are new"
        )
    reached = False
    if state.order == OLDEST_FIRST:
        new, state, late = _oldest_first(state, items, times, lookback)
    else:
        # Newest-first, or not known yet (every log so far at one instant): walk
        # tentatively, and stop at the window's bottom only once the order is known.
        new, state, reached, late = _newest_first(
            state, items, times, known=state.order == NEWEST_FIRST, lookback=lookback
        )
    delivered = _in_full(page, new)
    if reached or not page.has_next:
        ended = _finish_walk(_core(state), lookback)
        if ended.scan is not None:
            ended = msgspec.structs.replace(ended, scan=None)  # the poll is over
        return Step(delivered, ended, False, late)
    moved = _core(state) != before
    if state.order is not None and (
        moved or (state.after is None and next_cursor(_core(state)) != next_cursor(start))
    ):
        return Step(delivered, _core(state), True, late)
    # Follow the server's link: the order is not known yet (no cursor can be built),
    # or nothing moved and a cursor built from the state would repeat the request.
    # Once on the server's links, stay on them until something moves.
    link = follow_link(page.next_cursor, next_cursor(start), moved, followed)
    after = msgspec.structs.replace(state, after=link.cursor)
    return Step(delivered, after, True, late, link.followed)


def _in_full(page: Page, new: list[Stamped]) -> list[IntegrationLog]:
    """The logs of ``new`` in full: decoded now, and only now, if ``page`` has stamps."""
    if page.logs is None:
        return cast("list[IntegrationLog]", new)  # the page's items are the logs
    if not new:
        return []
    logs = page.logs()
    assert len(logs) == len(page.items)  # both read from one body
    where = {id(item): n for n, item in enumerate(page.items)}
    return [logs[where[id(item)]] for item in new]
