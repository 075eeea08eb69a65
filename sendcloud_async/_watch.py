"""Watching exception logs: the logs that are new since the last look, exactly once.

The protocol decisions are pure functions (``next_cursor``, ``advance``,
``begin``); ``watch`` is the loop that asks a ``fetch`` coroutine for pages and
sleeps between polls. ``client.logs.watch`` gives it the client's one request
path; nothing here does I/O.

What a ``WatchState`` means
---------------------------

* ``mark`` (with ``mark_ids``) is the high-water mark: every log created before
  ``mark`` has been delivered (or lies before the watch's start), and so have the
  logs created *at* ``mark`` whose ids are in ``mark_ids``. ``None``: nothing yet,
  deliver everything. Only one instant's ids are kept, so the state stays small.
* ``order`` is the listing's direction, detected from the data (``None`` until a
  page, or two pages in a row, show two different ``created_at``).
* ``walk`` exists only during a newest-first catch-up: the walk goes from the
  newest log down to ``mark``. ``pos``/``pos_ids`` say how far it got (the
  oldest instant it has seen, and the ids seen there), ``head``/``head_ids`` the
  newest log it delivered; when the walk reaches ``mark`` (or the listing's
  end), ``head`` becomes the new ``mark``. Oldest-first needs no walk: ``mark``
  itself moves forward page by page.
* ``after`` is a cursor taken from the server's own next-page link, used for the
  next request instead of a cursor built from the state (see below).
* ``low``, ``recent`` and ``scan`` are the lookback window (below). ``low`` is
  where the window's memory begins (``None``: at ``mark``), ``recent`` the ids
  delivered at each instant from ``low`` up to (not including) ``mark``, ``scan``
  how far an oldest-first poll has re-read the window.

Logs that become visible late: the lookback window
---------------------------------------------------

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

How pages are asked for
-----------------------

The cursor is a date-time, so a page boundary can fall inside a group of logs
that share a ``created_at``; a server that pages "strictly after the last
instant" would then skip the rest of the group. The watch therefore builds its
own cursor one microsecond on the near side of the boundary (``mark - 1µs``
oldest-first, ``pos + 1µs`` newest-first), so the boundary's instant is listed
again, and drops the ids it has already seen there. Only when that request
would not move (a whole page of logs at one instant, all seen) does it follow
the server's link. A server whose cursor is inclusive, or that truncates it,
works the same: logs on the far side of the boundary are dropped, never
delivered twice. Logs without ``id`` count as id 0.

Limit (of any date-time cursor, not of the watch): when more logs share one
``created_at`` than fit in a page, the server cannot list the ones beyond the
page; the watch then follows the server's link past that instant.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, NamedTuple, Protocol, cast

import msgspec

from . import _validate as check
from ._defaults import DEFAULT_WATCH_LOOKBACK, DEFAULT_WATCH_START
from ._errors import InvalidInputError
from ._models import AwareDatetime, IntegrationLog
from ._pagination import PaginationError
from ._time import http_date

__all__ = [
    "DEFAULT_LOOKBACK",
    "NEWEST_FIRST",
    "OLDEST_FIRST",
    "STATE_VERSION",
    "Fetch",
    "LateLog",
    "LogBatch",
    "Order",
    "Page",
    "Stamped",
    "Step",
    "Walk",
    "WatchState",
    "advance",
    "begin",
    "check_lookback",
    "close_poll",
    "decode_state",
    "initial_state",
    "next_cursor",
    "open_poll",
    "page_order",
    "watch",
]

Order = Literal["oldest_first", "newest_first"]
OLDEST_FIRST: Final = "oldest_first"
NEWEST_FIRST: Final = "newest_first"
STATE_VERSION: Final = 2
#: Versions ``decode_state`` reads: 1 (before the lookback window) loads with its
#: window starting at its mark.
_READABLE_VERSIONS: Final = (1, 2)
#: How far behind the high-water mark every poll re-reads, unless told otherwise
#: (see docs/watch.md for why this value).
DEFAULT_LOOKBACK: Final = timedelta(seconds=DEFAULT_WATCH_LOOKBACK)
_ORDERS: Final = (OLDEST_FIRST, NEWEST_FIRST)
_START_WORDS: Final = ("now", "all")
_TICK: Final = timedelta(microseconds=1)
#: How much earlier than the ``Date`` of a poll's first page the window may close:
#: the header has a resolution of one second, and the machine that stamps
#: ``created_at`` and the one that writes ``Date`` may disagree a little.
_DATE_SLACK: Final = timedelta(seconds=2)


class Walk(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """A newest-first catch-up in progress (see the module docstring)."""

    head: AwareDatetime | None = None
    head_ids: tuple[int, ...] = ()
    pos: AwareDatetime | None = None
    pos_ids: tuple[int, ...] = ()


class WatchState(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """Where a watch stands: pass it back as ``state`` to continue exactly after it.

    ``msgspec.json.encode(state)`` and ``msgspec.json.decode(raw, type=WatchState)``
    round-trip it; its fields are the SDK's business. ``WatchState.initial(...)``
    makes the state a new watch starts from, so it can be saved before the first
    poll.
    """

    version: int = STATE_VERSION
    integration_id: int | None = None
    order: Order | None = None
    mark: AwareDatetime | None = None
    mark_ids: tuple[int, ...] = ()
    walk: Walk | None = None
    after: str | None = None
    low: AwareDatetime | None = None
    recent: tuple[tuple[AwareDatetime, tuple[int, ...]], ...] = ()
    scan: AwareDatetime | None = None

    @classmethod
    def initial(
        cls,
        start: str | datetime = DEFAULT_WATCH_START,
        *,
        integration_id: int | None = None,
        now: datetime | None = None,
    ) -> WatchState:
        """The state of a watch that has not polled yet (``start`` as in ``logs.watch``)."""
        iid = None if integration_id is None else check.integration_id(integration_id)
        return initial_state(check_start(start), integration_id=iid, now=now)


class LateLog(msgspec.Struct, frozen=True, kw_only=True):
    """A log delivered from the lookback window: ``behind`` seconds older than the mark."""

    id: int | None
    created_at: AwareDatetime
    behind: float


class LogBatch(msgspec.Struct, frozen=True, kw_only=True):
    """New logs (never empty, at most a page) and the state just after them.

    ``late`` lists the logs of ``items`` that became visible behind the high-water
    mark (delivered from the lookback window), with how far behind they were.
    """

    items: list[IntegrationLog]
    state: WatchState
    late: tuple[LateLog, ...] = ()

    @property
    def lateness(self) -> float:
        """Seconds the latest of ``late`` was behind the mark (0.0: none was late)."""
        return max((log.behind for log in self.late), default=0.0)


_STATE_DECODER: Final = msgspec.json.Decoder(WatchState)


# -- arguments -------------------------------------------------------------------


def check_start(start: object) -> str | datetime:
    """``"now"``, ``"all"`` or an aware datetime."""
    if isinstance(start, datetime):
        return check.aware_datetime(start, "start")
    if isinstance(start, str) and start in _START_WORDS:
        return start
    raise InvalidInputError(f"start must be 'now', 'all' or an aware datetime, got {start!r}")


def check_lookback(value: object) -> timedelta:
    """Seconds (int or float, >= 0) or a ``timedelta``; ``InvalidInputError`` otherwise."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise InvalidInputError(
            f"lookback must be seconds or a timedelta, not {type(value).__name__}"
        )
    if not seconds >= 0 or seconds == float("inf"):
        raise InvalidInputError(f"lookback must be finite seconds >= 0, got {value!r}")
    return timedelta(seconds=seconds)


def _check_ids(ids: object, name: str) -> None:
    if not isinstance(ids, tuple) or any(
        isinstance(i, bool) or not isinstance(i, int) for i in ids
    ):
        raise InvalidInputError(f"state is not a valid WatchState: {name} must be ints")


def _check_time(value: object, name: str) -> None:
    if value is not None and (
        not isinstance(value, datetime) or value.tzinfo is None or value.utcoffset() is None
    ):
        raise InvalidInputError(
            f"state is not a valid WatchState: {name} must be an aware datetime"
        )


def check_state(state: WatchState) -> WatchState:
    """A state built in code is checked like one decoded from bytes."""
    bad = "state is not a valid WatchState: "
    if state.version not in _READABLE_VERSIONS:
        raise InvalidInputError(
            f"{bad}version {state.version!r}; this sendcloud-async reads versions "
            f"{' and '.join(map(str, _READABLE_VERSIONS))}"
        )
    if state.order is not None and state.order not in _ORDERS:
        raise InvalidInputError(f"{bad}order must be one of {', '.join(_ORDERS)}")
    if state.integration_id is not None:
        try:
            check.integration_id(state.integration_id)
        except InvalidInputError as exc:
            raise InvalidInputError(bad + str(exc)) from None
    _check_time(state.mark, "mark")
    _check_ids(state.mark_ids, "mark_ids")
    if state.after is not None and (not isinstance(state.after, str) or not state.after):
        raise InvalidInputError(f"{bad}after must be a non-empty str")
    walk = state.walk
    if walk is not None:
        if not isinstance(walk, Walk):
            raise InvalidInputError(f"{bad}walk must be a Walk")
        _check_time(walk.head, "walk.head")
        _check_time(walk.pos, "walk.pos")
        _check_ids(walk.head_ids, "walk.head_ids")
        _check_ids(walk.pos_ids, "walk.pos_ids")
        if state.order == OLDEST_FIRST:
            raise InvalidInputError(f"{bad}an oldest-first watch has no walk")
    _check_time(state.low, "low")
    _check_time(state.scan, "scan")
    if not isinstance(state.recent, tuple) or not all(
        isinstance(entry, tuple) and len(entry) == 2 for entry in state.recent
    ):
        raise InvalidInputError(f"{bad}recent must be pairs of a date-time and ids")
    for at, ids in state.recent:
        _check_time(at, "recent")
        _check_ids(ids, "recent ids")
    if state.version != STATE_VERSION:
        # Saved before the lookback window: its window starts at its mark (or, in
        # the middle of a newest-first walk, at the head the walk will make the mark).
        if state.low is not None or state.recent or state.scan is not None:
            raise InvalidInputError(f"{bad}version 1 has no lookback window")
        known = [t for t in (state.mark, walk.head if walk else None) if t is not None]
        state = msgspec.structs.replace(
            state, version=STATE_VERSION, low=max(known) if known else None
        )
    return state


def decode_state(raw: bytes | str) -> WatchState:
    """A state from its JSON bytes; ``InvalidInputError`` for anything else."""
    try:
        state = _STATE_DECODER.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise InvalidInputError(f"state is not a valid WatchState: {exc}") from None
    return check_state(state)


def initial_state(
    start: str | datetime, *, integration_id: int | None, now: datetime | None = None
) -> WatchState:
    """The state before the first poll.

    ``"all"`` has no mark; ``"now"`` marks the current instant (this machine's
    clock); a datetime marks the microsecond after it, so logs created strictly
    after it are delivered.
    """
    if start == "all":
        mark = None
    elif start == "now":
        mark = datetime.now(UTC) if now is None else now
    else:
        assert isinstance(start, datetime)
        mark = start + _TICK  # created *after* it: nothing at ``start`` itself
    # ``low``: nothing created before the start is delivered, not even from the window.
    return WatchState(integration_id=integration_id, mark=mark, low=mark)


def _scope(integration_id: int | None) -> str:
    return "every integration" if integration_id is None else f"integration {integration_id}"


def begin(
    state: WatchState | bytes | str | None,
    *,
    start: object,
    integration_id: int | None,
    now: datetime | None = None,
) -> WatchState:
    """The state a watch starts from, every argument checked (no I/O)."""
    begin_at = check_start(start)
    if state is None:
        return initial_state(begin_at, integration_id=integration_id, now=now)
    if isinstance(state, bytes | str):
        state = decode_state(state)
    elif isinstance(state, WatchState):
        state = check_state(state)
    else:
        raise InvalidInputError(
            f"state must be a WatchState (or its JSON bytes), not {type(state).__name__}"
        )
    if state.integration_id != integration_id:
        raise InvalidInputError(
            f"state belongs to a watch of {_scope(state.integration_id)}, "
            f"not of {_scope(integration_id)}"
        )
    return state


# -- one page --------------------------------------------------------------------


class Stamped(Protocol):
    """What the watch reads of a log: an ``IntegrationLog``, or its ``LogStamp``."""

    @property
    def id(self) -> int | None: ...

    @property
    def created_at(self) -> datetime | None: ...


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

    ``late``: those of ``items`` that were behind the mark (from the lookback window).
    """

    items: list[IntegrationLog]
    state: WatchState
    more: bool
    late: tuple[LateLog, ...] = ()


def _iso(value: datetime) -> str:
    return value.isoformat()


def next_cursor(state: WatchState) -> str | None:
    """The cursor of the next request of a poll (``None``: the listing's first page)."""
    if state.after is not None:
        return state.after
    if state.order == OLDEST_FIRST:
        if state.scan is not None:
            return _iso(state.scan - _TICK)
        return None if state.mark is None else _iso(state.mark - _TICK)
    if state.order == NEWEST_FIRST and state.walk is not None and state.walk.pos is not None:
        return _iso(state.walk.pos + _TICK)
    return None


def _created(log: Stamped) -> datetime:
    created = log.created_at
    if created is None:
        raise PaginationError(
            f"log {log.id!r} has no created_at; the watch cannot place it in time"
        )
    return created


def _ident(log: Stamped) -> int:
    return 0 if log.id is None else log.id


def _bottom(state: WatchState, lookback: timedelta) -> datetime | None:
    """Where the window begins: no log older than it is delivered (``None``: no mark yet).

    ``mark - lookback``, but never below ``low`` (the watch's start, or where the
    memory of a state saved before the window began).
    """
    if state.mark is None:
        return None
    bottom = state.mark - lookback
    return bottom if state.low is None else max(bottom, state.low)


def _stop(state: WatchState, lookback: timedelta) -> datetime | None:
    """How far down a newest-first walk goes: the window's bottom, or the mark if lower."""
    bottom = _bottom(state, lookback)
    return bottom if bottom is None or state.mark is None else min(bottom, state.mark)


class _Window:
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

    def deliver(self, item: Stamped, t: datetime, i: int, mark: datetime) -> None:
        self.remember(t, i)
        self.late.append(LateLog(id=item.id, created_at=t, behind=(mark - t).total_seconds()))

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


def settle(state: WatchState, window: _Window | None, lookback: timedelta) -> WatchState:
    """``state`` with its window moved up to ``mark - lookback`` and pruned to it."""
    mark = state.mark
    if mark is None:
        return state
    low = _bottom(state, lookback)
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
    bottom = _bottom(state, lookback)
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
            "the watch cannot tell which are new"
        )
    if up:
        return OLDEST_FIRST
    if down:
        return NEWEST_FIRST
    return None


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


def _finish_walk(state: WatchState, lookback: timedelta) -> WatchState:
    walk = state.walk
    if walk is None:
        return state
    mark, mark_ids = _merge_mark(state.mark, state.mark_ids, walk.head, walk.head_ids)
    window = None
    if mark != state.mark and state.mark is not None and lookback:
        window = _Window(state)
        window.keep(state.mark, state.mark_ids)
    ended = msgspec.structs.replace(state, mark=mark, mark_ids=mark_ids, walk=None)
    return settle(ended, window, lookback)


def _oldest_first(
    state: WatchState, items: Sequence[Stamped], times: list[datetime], lookback: timedelta
) -> tuple[list[Stamped], WatchState, tuple[LateLog, ...]]:
    mark = state.mark
    ids = set(state.mark_ids)
    bottom = _bottom(state, lookback)
    scan = state.scan
    window = _Window(state)
    known = window.known
    new: list[Stamped] = []
    for item, t in zip(items, times, strict=True):
        i = item.id
        if i is None:
            i = 0  # as ``_ident``: this loop is an idle poll's whole cost, so inlined
        if mark is None or t > mark:
            window.keep(mark, ids)
            mark, ids, scan = t, {i}, None
        elif t == mark:
            scan = None
            if i in ids:
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
            window.deliver(item, t, i, mark)
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
    bottom = _bottom(state, lookback)
    stop = _stop(state, lookback)
    head, head_ids = walk.head, set(walk.head_ids)
    pos, pos_ids = walk.pos, set(walk.pos_ids)
    window = _Window(state)
    new: list[Stamped] = []
    reached = False
    for item, t in zip(items, times, strict=True):
        i = _ident(item)
        if pos is not None and (t > pos or (t == pos and i in pos_ids)):
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
            window.deliver(item, t, i, mark)
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
    walked = Walk(
        head=head,
        head_ids=tuple(sorted(head_ids)),
        pos=pos,
        pos_ids=tuple(sorted(pos_ids)),
    )
    state = msgspec.structs.replace(state, walk=walked)
    if new:
        remembered = window.merged()
        if head is not None:
            # What the walk delivered further down than a window from its head is never
            # looked up again (the walk goes down; the next window starts at head - lookback).
            floor = head - lookback
            for at in [at for at in remembered if at < floor and (mark is None or at >= mark)]:
                del remembered[at]
        recent = tuple(sorted((at, tuple(sorted(ids))) for at, ids in remembered.items()))
        state = msgspec.structs.replace(state, recent=recent)
    return new, state, reached, tuple(window.late)


def _core(state: WatchState) -> WatchState:
    return msgspec.structs.replace(state, after=None) if state.after is not None else state


def advance(state: WatchState, page: Page, lookback: timedelta = timedelta(0)) -> Step:
    """The new logs on ``page`` (fetched with ``next_cursor(state)``) and the state after it.

    ``lookback``: the window behind the mark the state remembers (0: none).
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
    if page.next_cursor is None:
        raise PaginationError(
            "the server's next-page link has no cursor; the watch cannot go on from it"
        )
    if not moved and page.next_cursor == state.after:
        raise PaginationError(
            f"the server's next-page link repeats the cursor {page.next_cursor!r} "
            "without listing anything new; stopping instead of looping"
        )
    return Step(delivered, msgspec.structs.replace(state, after=page.next_cursor), True, late)


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


# -- the loop ------------------------------------------------------------------------

Fetch = Callable[[str | None], Awaitable[Page]]


async def watch(
    fetch: Fetch,
    state: WatchState,
    *,
    interval: float,
    once: bool,
    lookback: timedelta = timedelta(0),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncGenerator[LogBatch, None]:
    """Poll with ``fetch`` from ``state``: yield each page's new logs, sleep between polls."""
    state = settle(state, None, lookback)  # a smaller window than the state's: pruned now
    while True:
        # Resumed in the middle of a newest-first walk: once it is finished, walk
        # again from the top in the same poll (logs came above its head meanwhile).
        again = state.walk is not None
        state = open_poll(state, lookback)
        first = True
        date: str | None = None
        while True:
            page = await fetch(next_cursor(state))
            if first:
                first, date = False, page.date
            step = advance(state, page, lookback)
            state = step.state
            if not step.more and not again:
                state = close_poll(state, date, lookback)
            if step.items:
                yield LogBatch(items=step.items, state=state, late=step.late)
            if not step.more:
                if again:
                    again = False
                    continue
                break
        if once:
            return
        await sleep(interval)
