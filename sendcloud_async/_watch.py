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
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Final, Literal, NamedTuple

import msgspec

from . import _validate as check
from ._errors import InvalidInputError
from ._models import AwareDatetime, IntegrationLog
from ._pagination import PaginationError

__all__ = [
    "NEWEST_FIRST",
    "OLDEST_FIRST",
    "STATE_VERSION",
    "Fetch",
    "LogBatch",
    "Order",
    "Page",
    "Step",
    "Walk",
    "WatchState",
    "advance",
    "begin",
    "decode_state",
    "initial_state",
    "next_cursor",
    "page_order",
    "watch",
]

Order = Literal["oldest_first", "newest_first"]
OLDEST_FIRST: Final = "oldest_first"
NEWEST_FIRST: Final = "newest_first"
STATE_VERSION: Final = 1
_ORDERS: Final = (OLDEST_FIRST, NEWEST_FIRST)
_START_WORDS: Final = ("now", "all")
_TICK: Final = timedelta(microseconds=1)


class Walk(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A newest-first catch-up in progress (see the module docstring)."""

    head: AwareDatetime | None = None
    head_ids: tuple[int, ...] = ()
    pos: AwareDatetime | None = None
    pos_ids: tuple[int, ...] = ()


class WatchState(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
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

    @classmethod
    def initial(
        cls,
        start: str | datetime = "now",
        *,
        integration_id: int | None = None,
        now: datetime | None = None,
    ) -> WatchState:
        """The state of a watch that has not polled yet (``start`` as in ``logs.watch``)."""
        iid = None if integration_id is None else check.integration_id(integration_id)
        return initial_state(check_start(start), integration_id=iid, now=now)


class LogBatch(msgspec.Struct, frozen=True, kw_only=True):
    """New logs (never empty, at most a page) and the state just after them."""

    items: list[IntegrationLog]
    state: WatchState


_STATE_DECODER: Final = msgspec.json.Decoder(WatchState)


# -- arguments -------------------------------------------------------------------


def check_start(start: object) -> str | datetime:
    """``"now"``, ``"all"`` or an aware datetime."""
    if isinstance(start, datetime):
        return check.aware_datetime(start, "start")
    if isinstance(start, str) and start in _START_WORDS:
        return start
    raise InvalidInputError(f"start must be 'now', 'all' or an aware datetime, got {start!r}")


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
    if state.version != STATE_VERSION:
        raise InvalidInputError(
            f"{bad}version {state.version!r}; this sendcloud-async reads version {STATE_VERSION}"
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
    return WatchState(integration_id=integration_id, mark=mark)


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


class Page(NamedTuple):
    """What the server answered: the logs, and the cursor of its next-page link.

    ``has_next`` is whether it sent a next-page link; ``next_cursor`` the
    link's cursor (``None`` if it had none).
    """

    items: list[IntegrationLog]
    has_next: bool
    next_cursor: str | None


class Step(NamedTuple):
    """The result of a page: the new logs on it, the state after it, whether the poll goes on."""

    items: list[IntegrationLog]
    state: WatchState
    more: bool


def _iso(value: datetime) -> str:
    return value.isoformat()


def next_cursor(state: WatchState) -> str | None:
    """The cursor of the next request of a poll (``None``: the listing's first page)."""
    if state.after is not None:
        return state.after
    if state.order == OLDEST_FIRST:
        return None if state.mark is None else _iso(state.mark - _TICK)
    if state.order == NEWEST_FIRST and state.walk is not None and state.walk.pos is not None:
        return _iso(state.walk.pos + _TICK)
    return None


def _created(log: IntegrationLog) -> datetime:
    created = log.created_at
    if created is None:
        raise PaginationError(
            f"log {log.id!r} has no created_at; the watch cannot place it in time"
        )
    return created


def _ident(log: IntegrationLog) -> int:
    return 0 if log.id is None else log.id


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


def _finish_walk(state: WatchState) -> WatchState:
    walk = state.walk
    if walk is None:
        return state
    mark, mark_ids = _merge_mark(state.mark, state.mark_ids, walk.head, walk.head_ids)
    return msgspec.structs.replace(state, mark=mark, mark_ids=mark_ids, walk=None)


def _oldest_first(
    state: WatchState, items: Sequence[IntegrationLog]
) -> tuple[list[IntegrationLog], WatchState]:
    mark = state.mark
    ids = set(state.mark_ids)
    new: list[IntegrationLog] = []
    for item in items:
        t, i = _created(item), _ident(item)
        if mark is None or t > mark:
            mark, ids = t, {i}
        elif t < mark or i in ids:
            continue  # delivered before (or before the start)
        else:
            ids.add(i)
        new.append(item)
    if not new:
        return new, state
    return new, msgspec.structs.replace(state, mark=mark, mark_ids=tuple(sorted(ids)))


def _newest_first(
    state: WatchState, items: Sequence[IntegrationLog], *, known: bool
) -> tuple[list[IntegrationLog], WatchState, bool]:
    """(new logs, state, reached the mark). ``known``: the order is known (else tentative)."""
    walk = state.walk or Walk()
    mark, mark_ids = state.mark, set(state.mark_ids)
    head, head_ids = walk.head, set(walk.head_ids)
    pos, pos_ids = walk.pos, set(walk.pos_ids)
    new: list[IntegrationLog] = []
    reached = False
    for item in items:
        t, i = _created(item), _ident(item)
        if pos is not None and (t > pos or (t == pos and i in pos_ids)):
            continue  # seen earlier in this walk
        if known and mark is not None and t < mark:
            reached = True
            break
        if pos is None or t < pos:
            pos, pos_ids = t, {i}
        else:
            pos_ids.add(i)
        if mark is not None and (t < mark or (t == mark and i in mark_ids)):
            continue  # delivered by an earlier poll (or before the start)
        new.append(item)
        if head is None or t > head:
            head, head_ids = t, {i}
        elif t == head:
            head_ids.add(i)
    walked = Walk(
        head=head,
        head_ids=tuple(sorted(head_ids)),
        pos=pos,
        pos_ids=tuple(sorted(pos_ids)),
    )
    return new, msgspec.structs.replace(state, walk=walked), reached


def _core(state: WatchState) -> WatchState:
    return msgspec.structs.replace(state, after=None) if state.after is not None else state


def advance(state: WatchState, page: Page) -> Step:
    """The new logs on ``page`` (fetched with ``next_cursor(state)``) and the state after it."""
    planned = next_cursor(state)
    before = _core(state)
    items = page.items
    times = [_created(item) for item in items]
    order = page_order(times)
    if state.order is None:
        if order is None and state.walk is not None and state.walk.pos is not None and times:
            # A tentative walk (one instant so far): the next page's first log tells.
            order = page_order([state.walk.pos, times[0]])
        if order == OLDEST_FIRST:
            state = _finish_walk(state)
        if order is not None:
            state = msgspec.structs.replace(state, order=order)
    elif order is not None and order != state.order:
        raise PaginationError(
            f"the server listed logs {order.replace('_', '-')} on a page of a listing "
            f"that was {state.order.replace('_', '-')}; the watch cannot tell which are new"
        )
    reached = False
    if state.order == OLDEST_FIRST:
        new, state = _oldest_first(state, items)
    else:
        # Newest-first, or not known yet (every log so far at one instant): walk
        # tentatively, and stop at the mark only once the order is known.
        new, state, reached = _newest_first(state, items, known=state.order == NEWEST_FIRST)
    if reached or not page.has_next:
        return Step(new, _finish_walk(_core(state)), False)
    moved = _core(state) != before
    if state.order is not None and (
        moved or (state.after is None and next_cursor(_core(state)) != planned)
    ):
        return Step(new, _core(state), True)
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
    return Step(new, msgspec.structs.replace(state, after=page.next_cursor), True)


# -- the loop ------------------------------------------------------------------------

Fetch = Callable[[str | None], Awaitable[Page]]


async def watch(
    fetch: Fetch,
    state: WatchState,
    *,
    interval: float,
    once: bool,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> AsyncGenerator[LogBatch, None]:
    """Poll with ``fetch`` from ``state``: yield each page's new logs, sleep between polls."""
    while True:
        # Resumed in the middle of a newest-first walk: once it is finished, walk
        # again from the top in the same poll (logs came above its head meanwhile).
        again = state.walk is not None
        while True:
            step = advance(state, await fetch(next_cursor(state)))
            state = step.state
            if step.items:
                yield LogBatch(items=step.items, state=state)
            if not step.more:
                if again:
                    again = False
                    continue
                break
        if once:
            return
        await sleep(interval)
