"""The watch's pure decisions: order detection, cursors, ties, state checks."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import msgspec
import pytest

import sendcloud_async as sc
from sendcloud_async._models import LogStamp
from sendcloud_async._pagination import PaginationError
from sendcloud_async._sources._ties import page_order
from sendcloud_async._sources._watch import watch
from sendcloud_async._sources._watch_pages import Page, advance, next_cursor
from sendcloud_async._sources._watch_state import (
    NEWEST_FIRST,
    OLDEST_FIRST,
    Walk,
    begin,
    decode_state,
)
from sendcloud_async._sources._watch_window import open_poll

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
Loader = Callable[[], list[sc.IntegrationLog]]


def log(ident: int, seconds: float) -> sc.IntegrationLog:
    """A log created ``seconds`` after T0."""
    return sc.IntegrationLog(
        id=ident, base_url="https://shop.example", created_at=T0 + timedelta(seconds=seconds)
    )


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def ids(items: list[sc.IntegrationLog]) -> list[int | None]:
    """The ids of ``items``."""
    return [item.id for item in items]


def test_page_order_detects_both_directions_and_ties() -> None:
    """Ascending, descending, all equal (unknown), and a page that goes both ways."""
    assert page_order([at(1), at(1), at(2)]) == OLDEST_FIRST
    assert page_order([at(3), at(3), at(2)]) == NEWEST_FIRST
    assert page_order([at(3), at(3)]) is None
    assert page_order([]) is None
    with pytest.raises(PaginationError, match="neither oldest-first nor newest-first"):
        page_order([at(1), at(3), at(2)])


def test_next_cursor_lists_the_boundary_instant_again() -> None:
    """Oldest-first asks from 1µs before the mark; newest-first from 1µs after the walk's pos."""
    assert next_cursor(sc.WatchState()) is None
    asc = sc.WatchState(order=OLDEST_FIRST, mark=at(5))
    assert next_cursor(asc) == (at(5) - TICK).isoformat()
    desc = sc.WatchState(order=NEWEST_FIRST, mark=at(1), walk=Walk(pos=at(5)))
    assert next_cursor(desc) == (at(5) + TICK).isoformat()
    assert next_cursor(sc.WatchState(order=NEWEST_FIRST, mark=at(1))) is None
    assert next_cursor(msgspec.structs.replace(asc, after="server-cursor")) == "server-cursor"


def test_oldest_first_skips_ids_seen_at_the_mark() -> None:
    """The boundary instant is listed again: its seen ids are dropped, a late tie delivered."""
    state = sc.WatchState(order=OLDEST_FIRST, mark=at(5), mark_ids=(7, 8))
    step = advance(
        state, Page([log(6, 4), log(7, 5), log(8, 5), log(9, 5), log(10, 6)], False, None)
    )
    assert ids(step.items) == [9, 10]
    assert step.state.mark == at(6)
    assert step.state.mark_ids == (10,)
    assert step.more is False


def test_oldest_first_tie_across_a_page_boundary_is_not_lost() -> None:
    """A group sharing created_at split by a page: the next request re-lists the instant."""
    state = sc.WatchState(order=OLDEST_FIRST)
    first = advance(state, Page([log(1, 1), log(2, 2), log(3, 2)], True, at(2).isoformat()))
    assert ids(first.items) == [1, 2, 3]
    assert first.more is True
    assert next_cursor(first.state) == (at(2) - TICK).isoformat()
    second = advance(first.state, Page([log(2, 2), log(3, 2), log(4, 2)], False, None))
    assert ids(second.items) == [4]
    assert second.state.mark_ids == (2, 3, 4)


def test_a_full_page_at_one_seen_instant_follows_the_server_link() -> None:
    """No progress with a built cursor: the server's own link is followed instead."""
    state = sc.WatchState(order=OLDEST_FIRST, mark=at(2), mark_ids=(2, 3))
    step = advance(state, Page([log(2, 2), log(3, 2)], True, "srv-1"))
    assert step.items == []
    assert step.state.after == "srv-1"
    assert next_cursor(step.state) == "srv-1"
    # Still nothing new on the server's next page: keep following its links.
    again = advance(step.state, Page([log(3, 2)], True, "srv-2"))
    assert again.state.after == "srv-2"
    # Something new: back to cursors built from the state.
    moved = advance(again.state, Page([log(5, 3)], True, "srv-3"))
    assert ids(moved.items) == [5]
    assert moved.state.after is None


def test_a_link_that_repeats_without_progress_stops_the_watch() -> None:
    """A server that sends the same cursor again and nothing new: an error, not a loop."""
    state = sc.WatchState(order=OLDEST_FIRST, mark=at(2), mark_ids=(2,), after="srv-1")
    with pytest.raises(PaginationError, match="repeats the cursor 'srv-1'"):
        advance(state, Page([log(2, 2)], True, "srv-1"))


def test_links_that_loop_without_progress_stop_the_watch() -> None:
    """Two server cursors sent in turn and nothing new: an error on the first one repeated."""
    state = sc.WatchState(order=OLDEST_FIRST, mark=at(2), mark_ids=(2,))
    first = advance(state, Page([log(2, 2)], True, "srv-1"))
    second = advance(first.state, Page([log(2, 2)], True, "srv-2"), followed=first.followed)
    assert (second.state.after, second.followed) == ("srv-2", frozenset({"srv-1", "srv-2"}))
    with pytest.raises(PaginationError, match="repeats the cursor 'srv-1'"):
        advance(second.state, Page([log(2, 2)], True, "srv-1"), followed=second.followed)


async def test_a_poll_on_looping_links_stops_after_the_loop_and_delivers_nothing_twice() -> None:
    """The poll itself carries the cursors it followed: a loop stops it, it does not spin."""
    state = sc.WatchState(order=OLDEST_FIRST, mark=at(2), mark_ids=(2,))
    cursors: list[str | None] = []

    async def fetch(cursor: str | None) -> Page:
        cursors.append(cursor)
        following = "srv-2" if cursor == "srv-1" else "srv-1"
        return Page([log(2, 2)], True, following)

    delivered = []

    async def poll() -> None:
        async for batch in watch(fetch, state, interval=0, once=True):
            delivered.append(batch)

    with pytest.raises(PaginationError, match="repeats the cursor"):
        await poll()
    assert delivered == []
    assert cursors == [(at(2) - TICK).isoformat(), "srv-1", "srv-2"]


def test_a_link_without_a_cursor_stops_the_watch_when_it_must_follow_it() -> None:
    """Nothing moved and the server's link has no cursor: the watch cannot go on."""
    state = sc.WatchState(order=OLDEST_FIRST, mark=at(2), mark_ids=(2,))
    with pytest.raises(PaginationError, match="next-page link has no cursor"):
        advance(state, Page([log(2, 2)], True, None))
    # A page that moved goes on with a cursor of its own: the link's cursor is not needed.
    step = advance(state, Page([log(3, 3)], True, None))
    assert step.more
    assert step.state.after is None
    assert next_cursor(step.state) == (at(3) - TICK).isoformat()


def test_newest_first_walk_stops_at_the_mark_and_moves_it_to_the_head() -> None:
    """A newest-first catch-up walks down; at the old mark the head becomes the new mark."""
    state = sc.WatchState(order=NEWEST_FIRST, mark=at(2), mark_ids=(2,))
    first = advance(state, Page([log(6, 5), log(5, 4)], True, "c"))
    assert ids(first.items) == [6, 5]
    # No window: the walk remembers what it delivered down to its head only.
    assert first.state.walk == Walk(head=at(5), head_ids=(6,), pos=at(4), pos_ids=(5,), floor=at(5))
    assert first.state.mark == at(2)
    second = advance(first.state, Page([log(5, 4), log(4, 3), log(3, 2), log(2, 2)], True, "d"))
    assert ids(second.items) == [4, 3]
    assert second.more is True
    third = advance(second.state, Page([log(3, 2), log(2, 2), log(1, 1)], True, "e"))
    assert third.items == []
    assert third.more is False
    assert third.state.walk is None
    assert (third.state.mark, third.state.mark_ids) == (at(5), (6,))


def test_newest_first_late_tie_at_the_mark_merges_ids() -> None:
    """A log created at the mark's instant after the last poll: delivered, ids merged."""
    state = sc.WatchState(order=NEWEST_FIRST, mark=at(2), mark_ids=(2,))
    step = advance(state, Page([log(9, 2), log(2, 2), log(1, 1)], True, "c"))
    assert ids(step.items) == [9]
    assert (step.state.mark, step.state.mark_ids, step.more) == (at(2), (2, 9), False)


def test_order_is_detected_across_pages_of_one_instant() -> None:
    """Pages that each hold one instant: the next page's first log tells the direction."""
    state = sc.WatchState()
    first = advance(state, Page([log(1, 1), log(2, 1)], True, "srv"))
    assert first.state.order is None
    assert first.state.after == "srv"
    up = advance(first.state, Page([log(3, 2)], False, None))
    assert up.state.order == OLDEST_FIRST
    assert ids(up.items) == [3]
    assert (up.state.mark, up.state.mark_ids) == (at(2), (3,))
    down = advance(first.state, Page([log(0, 0)], False, None))
    assert down.state.order == NEWEST_FIRST
    assert (down.state.mark, down.state.mark_ids) == (at(1), (1, 2))


def test_oldest_first_start_now_skips_the_old_first_page() -> None:
    """start=now on an oldest-first listing: the first page only tells the order."""
    state = sc.WatchState(mark=at(100))
    step = advance(state, Page([log(1, 1), log(2, 2)], True, "srv"))
    assert step.items == []
    assert step.state.order == OLDEST_FIRST
    assert step.state.after is None
    assert next_cursor(step.state) == (at(100) - TICK).isoformat()


def test_a_page_against_the_known_order_is_refused() -> None:
    """A listing that was oldest-first and serves a newest-first page: a clear error."""
    state = sc.WatchState(order=OLDEST_FIRST, mark=at(1))
    with pytest.raises(PaginationError, match="newest-first on a page of a listing that was"):
        advance(state, Page([log(3, 3), log(2, 2)], False, None))


def test_a_log_without_created_at_is_refused() -> None:
    """The watch places logs in time: one without created_at is an error."""
    bare = sc.IntegrationLog(id=4, base_url="https://shop.example")
    with pytest.raises(PaginationError, match="log 4 has no created_at"):
        advance(sc.WatchState(), Page([bare], False, None))


def test_state_round_trips_through_msgspec_json() -> None:
    """encode / decode(type=WatchState) gives back an equal state, offsets kept."""
    cet = timezone(timedelta(hours=1))
    state = sc.WatchState(
        integration_id=3,
        order=NEWEST_FIRST,
        mark=datetime(2024, 1, 1, 10, tzinfo=cet),
        mark_ids=(1, 2),
        walk=Walk(head=at(9), head_ids=(5,), pos=at(4), pos_ids=(4,)),
        after="2024-01-01T10:00:00+01:00",
    )
    raw = msgspec.json.encode(state)
    assert msgspec.json.decode(raw, type=sc.WatchState) == state
    assert decode_state(raw) == state


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"not json", "state is not a valid WatchState: JSON is malformed"),
        (b'{"version": 3}', "state is not a valid WatchState: version 3; this sendcloud-async"),
        (
            b'{"order": "sideways"}',
            "state is not a valid WatchState: Invalid enum value 'sideways'",
        ),
        (
            b'{"mark": "2024-01-01T00:00:00"}',
            "state is not a valid WatchState: Expected `datetime`",
        ),
        (b'{"colour": 1}', "state is not a valid WatchState: Object contains unknown field"),
        (b'{"integration_id": 0}', "state is not a valid WatchState: integration_id must be 1"),
    ],
)
def test_bad_state_bytes_are_refused_with_a_clear_error(raw: bytes, message: str) -> None:
    """Every kind of damaged state: InvalidInputError naming the problem."""
    with pytest.raises(sc.InvalidInputError) as info:
        begin(raw, start="now", integration_id=None)
    assert str(info.value).startswith(message)


def test_begin_checks_start_and_the_state_scope() -> None:
    """start words, naive datetimes, foreign states and wrong types are refused."""
    with pytest.raises(sc.InvalidInputError, match="start must be 'now', 'all' or an aware"):
        begin(None, start="yesterday", integration_id=None)
    with pytest.raises(sc.InvalidInputError, match="start must be an aware datetime"):
        begin(None, start=datetime(2024, 1, 1), integration_id=None)
    with pytest.raises(
        sc.InvalidInputError, match="state belongs to a watch of integration 3, not of every"
    ):
        begin(sc.WatchState(integration_id=3), start="now", integration_id=None)
    with pytest.raises(sc.InvalidInputError, match="state must be a WatchState"):
        begin(42, start="now", integration_id=None)  # type: ignore[arg-type]
    with pytest.raises(sc.InvalidInputError, match=r"walk\.pos must be an aware datetime"):
        begin(sc.WatchState(walk=Walk(pos=datetime(2024, 1, 1))), start="now", integration_id=None)


def test_initial_states() -> None:
    """all: no mark; now: the given instant; a datetime: the microsecond after it.

    The lookback window never reaches below the start (``low``).
    """
    assert sc.WatchState.initial("all") == sc.WatchState()
    assert sc.WatchState.initial("now", now=T0).mark == T0
    assert sc.WatchState.initial("now", now=T0).low == T0
    assert sc.WatchState.initial(at(3), integration_id=2) == sc.WatchState(
        integration_id=2, mark=at(3) + TICK, low=at(3) + TICK
    )
    before = datetime.now(UTC)
    mark = begin(None, start="now", integration_id=None).mark
    assert mark is not None
    assert before <= mark <= datetime.now(UTC)


def stamped(logs: list[sc.IntegrationLog], calls: list[int]) -> tuple[list[LogStamp], Loader]:
    """``logs`` as a watch reads a page first: their stamps, and a loader that counts calls."""

    def load() -> list[sc.IntegrationLog]:
        calls.append(1)
        return logs

    return [LogStamp(id=item.id, created_at=item.created_at) for item in logs], load


def test_an_idle_poll_over_its_window_decodes_no_log_in_full() -> None:
    """A page of stamps that re-reads the window (every log delivered) never asks for the logs.

    The state stays the very same object: nothing is rebuilt per idle poll.
    """
    window = timedelta(seconds=30)
    calls: list[int] = []
    logs = [log(1, 1), log(2, 5), log(3, 9)]
    items, load = stamped(logs, calls)
    first = advance(sc.WatchState(), Page(items, False, None, load), window)
    assert first.items == logs  # the delivered items are the logs themselves
    assert calls == [1]
    assert first.state.recent == ((at(1), (1,)), (at(5), (2,)))
    state = open_poll(first.state, window)
    calls.clear()
    idle = advance(state, Page(items, False, None, load), window)
    assert idle.items == []
    assert idle.late == ()
    assert calls == []
    assert idle.state == first.state
    again = advance(open_poll(idle.state, window), Page(items, False, None, load), window)
    assert again.state == idle.state
    assert calls == []


def test_a_new_log_among_known_ones_is_decoded_in_full_once() -> None:
    """Stamps decide what is new; only those logs are taken from the full page, in order."""
    window = timedelta(seconds=30)
    state = open_poll(
        sc.WatchState(
            order=OLDEST_FIRST, mark=at(9), mark_ids=(3,), low=at(0), recent=((at(1), (1,)),)
        ),
        window,
    )
    calls: list[int] = []
    late, known, newer = log(7, 4), [log(1, 1), log(3, 9)], log(8, 12)
    items, load = stamped([known[0], late, known[1], newer], calls)
    step = advance(state, Page(items, False, None, load), window)
    assert step.items == [late, newer]
    assert [entry.id for entry in step.late] == [7]
    assert step.late[0].behind == 5.0
    assert calls == [1]
    assert step.state.mark == at(12)
    assert step.state.recent == ((at(1), (1,)), (at(4), (7,)), (at(9), (3,)))


def test_a_newest_first_page_of_stamps_delivers_the_full_logs() -> None:
    """The newest-first walk reads stamps too and hands out the logs in full."""
    calls: list[int] = []
    state = sc.WatchState(order=NEWEST_FIRST, mark=at(2), mark_ids=(2,), low=at(2))
    page = [log(5, 6), log(4, 4), log(2, 2)]
    items, load = stamped(page, calls)
    step = advance(state, Page(items, False, None, load), timedelta(seconds=30))
    assert step.items == page[:2]
    assert calls == [1]
    assert step.state.mark == at(6)
    assert step.state.walk is None
