"""The lookback window: logs that become visible late, behind the high-water mark.

A log whose ``created_at`` is stamped when the work starts but that the listing
shows only once its transaction commits can appear *behind* the mark after the
watch has passed it. Every poll therefore re-reads the window ``[mark - lookback,
mark]`` too (it starts its listing at ``low`` instead of ``mark``; on a quiet
account that is the same single request) and delivers any log in it whose id is
not in ``recent``. A page is read as stamps first (``Page.logs``: ``id`` and
``created_at`` only) and decoded in full only if a log on it is delivered, so an
idle poll re-reads its window for little more than the bytes. ``recent`` is
pruned to the window as the mark moves, so the state holds the ids of one
window's logs, never of every log seen. A log with ``created_at`` below ``low``
is never delivered: it became visible more than
``lookback`` after the newest log the watch had already delivered (it is
*missed*). ``low`` never goes below the watch's start (``start="now"``) or below
where a state without this memory began (a state saved by a release before it
starts its window at its mark), so a log the watch never promised is never
delivered as late. A log delivered behind the mark is reported in the batch's
``late`` with how far behind it was.

The window also closes by the server's clock. The promise is about a log that
becomes visible at most ``lookback`` after its ``created_at``; such a log, if the
``Date`` of a poll's first page is more than ``lookback`` + ``_DATE_SLACK`` past its
``created_at``, was visible to every request of that poll, so that poll delivered it
(or it lay below that poll's window). A poll that ends therefore raises ``low`` to the
``Date`` of its first page minus ``lookback`` and ``_DATE_SLACK`` (the header's
one-second resolution, and the server's own clocks disagreeing a little), never
above ``mark`` (``close_poll``). On an account with no log in the last ``lookback``
seconds the window is then empty and a poll is the one request of ``lookback=0``.
Only the first page's ``Date`` counts (every request of the poll came after it),
and only at the end of the poll: a batch in the middle of a poll keeps the window
of the poll before, so a resume finishes the poll with it. Without a readable
``Date`` the window stays ``mark - lookback``.

Limit (oldest-first): ``settle`` raises ``low`` to ``mark - lookback`` as a poll moves
the mark. A log that poll read before it was visible, and then passed by more than
``lookback``, lies below every later window: there the promise holds for a log visible
within ``lookback`` less the duration of the poll that passed it (docs/watch.md). A
newest-first walk reads the window last, from the walk's head down, so it has no such
limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Final

import msgspec

from .._time import http_date
from ._watch_state import OLDEST_FIRST, LateLog, WatchState

__all__ = ["Window", "close_poll", "open_poll", "settle", "window_bottom"]

#: How much earlier than the ``Date`` of a poll's first page the window may close:
#: the header has a resolution of one second, and the machine that stamps
#: ``created_at`` and the one that writes ``Date`` may disagree a little.
_DATE_SLACK: Final = timedelta(seconds=2)


def window_bottom(state: WatchState, lookback: timedelta) -> datetime | None:
    """Where the window begins: no log older than it is delivered (``None``: no mark yet).

    ``mark - lookback``, but never below ``low`` (the watch's start, or where the
    memory of a state saved before the window began).
    """
    if state.mark is None:
        return None
    bottom = state.mark - lookback
    return bottom if state.low is None else max(bottom, state.low)


class Window:
    """The ids delivered in the window, by instant, while a page is being read.

    The state's ``recent`` is read as it is (one dict over its tuples): a page that
    only re-reads logs already delivered builds no set. Ids added while the page
    is read go to ``added``, made on the first.
    """

    __slots__ = ("_added", "known", "late")

    def __init__(self, state: WatchState) -> None:
        #: The state's ``recent``, by instant (read only).
        self.known: dict[datetime, tuple[int, ...]] = dict(state.recent)
        self._added: dict[datetime, set[int]] | None = None
        self.late: list[LateLog] = []

    @property
    def changed(self) -> bool:
        """Whether an id was added (else the window is the state's ``recent``)."""
        return self._added is not None

    def seen(self, t: datetime, i: int) -> bool:
        ids = self.known.get(t)
        if ids is not None and i in ids:
            return True
        added = self._added
        return added is not None and t in added and i in added[t]

    def _at(self, t: datetime) -> set[int]:
        added = self._added
        if added is None:
            added = self._added = {}
        ids = added.get(t)
        if ids is None:
            ids = added[t] = set()
        return ids

    def remember(self, t: datetime, i: int) -> None:
        self._at(t).add(i)

    def deliver(self, log_id: int | None, t: datetime, i: int, mark: datetime) -> None:
        """Log ``log_id`` (``i`` as the window counts it) delivered ``mark - t`` late."""
        self.remember(t, i)
        self.late.append(LateLog(id=log_id, created_at=t, behind=(mark - t).total_seconds()))

    def keep(self, at: datetime | None, ids: Sequence[int] | set[int]) -> None:
        """The ids of a mark that is passed stay remembered (the window may cover it)."""
        if at is not None and ids:
            self._at(at).update(ids)

    def merged(self) -> dict[datetime, set[int]]:
        """Every instant's ids: the state's and those added."""
        merged = {at: set(ids) for at, ids in self.known.items()}
        for at, ids in (self._added or {}).items():
            merged.setdefault(at, set()).update(ids)
        return merged


def settle(state: WatchState, window: Window | None, lookback: timedelta) -> WatchState:
    """``state`` with its window moved up to ``mark - lookback`` and pruned to it."""
    mark = state.mark
    if mark is None:
        return state
    low = window_bottom(state, lookback)
    assert low is not None
    # Mid-walk, the logs delivered above the mark are remembered too (the walk
    # moves the mark up to them when it ends); afterwards ``mark_ids`` has the mark.
    walking = state.walk is not None
    scan = state.scan
    if scan is not None:
        scan = None if scan >= mark else max(scan, low)
    if window is None or not window.changed:
        if (
            low == state.low
            and scan == state.scan
            and all(ids and low <= at and (at < mark or walking) for at, ids in state.recent)
        ):
            return state  # already this window, pruned (an idle poll): nothing to rebuild
        pairs: Iterable[tuple[datetime, tuple[int, ...]]] = state.recent
    else:
        pairs = ((at, tuple(sorted(ids))) for at, ids in window.merged().items())
    recent = tuple(
        sorted((at, ids) for at, ids in pairs if low <= at and (at < mark or walking) and ids)
    )
    if (low, recent, scan) == (state.low, state.recent, state.scan):
        return state
    return msgspec.structs.replace(state, low=low, recent=recent, scan=scan)


def open_poll(state: WatchState, lookback: timedelta) -> WatchState:
    """The state a poll begins from: an oldest-first poll re-reads the window first.

    A state saved in the middle of an oldest-first poll (``scan`` or ``after`` set)
    begins a whole poll too, not the rest of that one: the rest would pass over a log
    that became visible in the part of the window already read, and a driver that
    keeps only its batches' states (``LogWatcher``) would resume from that state at
    every idle poll. What it re-reads was delivered: ``recent`` and ``mark_ids`` drop it.
    """
    if state.order != OLDEST_FIRST:
        return state
    bottom = window_bottom(state, lookback)
    mark = state.mark
    scan = None if bottom is None or mark is None or bottom >= mark else bottom
    if scan == state.scan and state.after is None:
        return state
    return msgspec.structs.replace(state, scan=scan, after=None)


def close_poll(state: WatchState, date: str | None, lookback: timedelta) -> WatchState:
    """The state at the end of a poll whose first page the server dated ``date``.

    The window closes below ``date - lookback - _DATE_SLACK`` (see the module
    docstring), never above the mark; ``date`` missing or unreadable: unchanged.
    """
    mark = state.mark
    low = state.low
    if not lookback or date is None or mark is None or (low is not None and low >= mark):
        return state  # no window, or it is closed already (an idle account): nothing to read
    served = http_date(date)
    if served is None:
        return state
    floor = min(served - lookback - _DATE_SLACK, mark)
    if low is not None and floor <= low:
        return state
    return settle(msgspec.structs.replace(state, low=floor), None, lookback)
