"""Where a watch stands: ``WatchState``, its checks and decoding, and where a watch begins.

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
  newest log it delivered, ``floor`` down to where it remembers what it delivered;
  when the walk reaches ``mark`` (or the listing's end), ``head`` becomes the new
  ``mark`` and the window behind it begins no lower than ``floor``. Oldest-first
  needs no walk: ``mark`` itself moves forward page by page.
* ``after`` is a cursor taken from the server's own next-page link, used for the
  next request instead of a cursor built from the state (``_watch_pages``).
* ``low``, ``recent`` and ``scan`` are the lookback window (``_watch_window``). ``low`` is
  where the window's memory begins (``None``: at ``mark``), ``recent`` the ids
  delivered at each instant from ``low`` up to (not including) ``mark``, ``scan``
  how far an oldest-first poll has re-read the window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final, Literal

import msgspec

from .. import _validate as check
from .._defaults import DEFAULT_WATCH_LOOKBACK, DEFAULT_WATCH_START
from .._errors import InvalidInputError
from .._models import AwareDatetime, IntegrationLog

__all__ = [
    "DEFAULT_LOOKBACK",
    "NEWEST_FIRST",
    "OLDEST_FIRST",
    "STATE_VERSION",
    "TICK",
    "LateLog",
    "LogBatch",
    "Order",
    "Walk",
    "WatchState",
    "begin",
    "check_lookback",
    "check_start",
    "check_state",
    "decode_state",
    "initial_state",
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
#: The cursor's resolution: a cursor one microsecond on the near side of an instant
#: lists that instant again.
TICK: Final = timedelta(microseconds=1)


class Walk(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True, gc=False):
    """A newest-first catch-up in progress (see the module docstring)."""

    head: AwareDatetime | None = None
    head_ids: tuple[int, ...] = ()
    pos: AwareDatetime | None = None
    pos_ids: tuple[int, ...] = ()
    #: Down to where the walk remembers every log it delivered (``recent``): the
    #: window it leaves behind never reaches below it. ``None`` with a ``head``: a
    #: state saved before the walk kept it, read as ``head`` (nothing below is known).
    floor: AwareDatetime | None = None


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

    (``logs.watch`` never yields an empty one; the SDK's own drivers, which save the
    state a poll ends with, also get batches without ``items`` that carry only it.)

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
        _check_time(walk.floor, "walk.floor")
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
        mark = start + TICK  # created *after* it: nothing at ``start`` itself
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
