"""The lookback window closes by the server's clock: ``close_poll`` and the loop's use of it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import msgspec
import pytest

import sendcloud_async as sc
from sendcloud_async._sources._watch import watch
from sendcloud_async._sources._watch_pages import Page, next_cursor
from sendcloud_async._sources._watch_state import OLDEST_FIRST
from sendcloud_async._sources._watch_window import close_poll, open_poll, settle

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)
LOOKBACK = timedelta(seconds=30)


def at(seconds: float) -> datetime:
    """T0 plus ``seconds``."""
    return T0 + timedelta(seconds=seconds)


def http_date(seconds: float) -> str:
    """T0 plus ``seconds`` as an HTTP ``Date`` header (``Wed, 01 May 2024 12:00:00 GMT``)."""
    return format_datetime(at(seconds), usegmt=True)


def log(ident: int, seconds: float) -> sc.IntegrationLog:
    return sc.IntegrationLog(id=ident, base_url="https://shop.example", created_at=at(seconds))


def windowed() -> sc.WatchState:
    """An oldest-first state whose window (70 s to 100 s) holds logs 7 and 8."""
    return sc.WatchState(
        order=OLDEST_FIRST,
        mark=at(100),
        mark_ids=(9,),
        low=at(70),
        recent=((at(80), (7,)), (at(95), (8,))),
    )


def test_a_date_past_the_window_closes_it_at_the_mark() -> None:
    """An idle account: the next poll is the request of ``lookback=0``, the state as small."""
    state = windowed()
    closed = close_poll(state, http_date(100 + 30 + 2 + 60), LOOKBACK)
    assert (closed.low, closed.recent, closed.scan) == (at(100), (), None)
    assert (closed.mark, closed.mark_ids) == (state.mark, state.mark_ids)
    assert open_poll(closed, LOOKBACK) is closed  # nothing to re-read
    without = settle(state, None, timedelta(0))
    assert next_cursor(open_poll(closed, LOOKBACK)) == next_cursor(without)
    assert next_cursor(open_poll(state, LOOKBACK)) == (at(70) - TICK).isoformat()
    # Closed stays closed, without rebuilding anything.
    assert close_poll(closed, http_date(1_000), LOOKBACK) is closed


def test_a_date_inside_the_window_raises_its_bottom_by_lookback_and_the_slack() -> None:
    """``Date`` 120 s: nothing created before 120 - 30 - 2 = 88 s can still appear."""
    closed = close_poll(windowed(), http_date(120), LOOKBACK)
    assert closed.low == at(88)
    assert closed.recent == ((at(95), (8,)),)  # 80 s is forgotten, 95 s remembered
    assert next_cursor(open_poll(closed, LOOKBACK)) == (at(88) - TICK).isoformat()


def test_an_early_date_never_lowers_the_window() -> None:
    state = windowed()
    assert close_poll(state, http_date(50), LOOKBACK) is state
    assert close_poll(state, http_date(102), LOOKBACK) is state  # 70 s: where it is


@pytest.mark.parametrize(
    "date",
    [None, "", "soon", "Sun, 32 Nov 2024 25:00:00 GMT", "1714564920"],
    ids=["missing", "empty", "a-word", "out-of-range", "seconds"],
)
def test_a_missing_or_unreadable_date_keeps_the_whole_window(date: str | None) -> None:
    state = windowed()
    assert close_poll(state, date, LOOKBACK) is state


def test_no_window_or_no_mark_has_nothing_to_close() -> None:
    state = windowed()
    assert close_poll(state, http_date(1_000), timedelta(0)) is state
    fresh = sc.WatchState()
    assert close_poll(fresh, http_date(1_000), LOOKBACK) is fresh


@pytest.mark.parametrize(
    "date",
    [
        "Wed, 01 May 2024 12:02:00 -0000",
        "Wed, 01 May 2024 14:02:00 +0200",
        "Wednesday, 01-May-24 12:02:00 GMT",
    ],
    ids=["no-zone", "offset", "rfc850"],
)
def test_a_date_without_a_zone_or_in_an_old_form_is_read_by_the_one_rule(date: str) -> None:
    """No zone (``-0000``) is UTC, as every date-time without an offset is (``_time``)."""
    assert close_poll(windowed(), date, LOOKBACK).low == at(88)


async def test_the_loop_closes_with_the_first_pages_date_when_the_poll_ends() -> None:
    """A batch in the middle of a poll keeps the window; the poll's last one carries it closed.

    The second page's later ``Date`` is not used: the poll's first request came first.
    """
    pages = [
        Page([log(10, 101)], True, None, date=http_date(120)),
        Page([log(11, 102)], False, None, date=http_date(500)),
    ]
    cursors: list[str | None] = []

    async def fetch(cursor: str | None) -> Page:
        cursors.append(cursor)
        return pages[len(cursors) - 1]

    batches = [
        b async for b in watch(fetch, windowed(), interval=0.0, once=True, lookback=LOOKBACK)
    ]
    assert [[log.id for log in b.items] for b in batches] == [[10], [11]]
    assert cursors[0] == (at(70) - TICK).isoformat()  # the poll re-read its window
    assert batches[0].state.low == at(71)  # mid-poll: the window behind the mark only
    assert batches[1].state.low == at(88)  # 120 - 30 - 2: the first page's Date
    # Forgotten below 88 s (log 7 at 80 s); the marks passed are remembered.
    assert batches[1].state.recent == ((at(95), (8,)), (at(100), (9,)), (at(101), (10,)))


async def test_an_idle_poll_closes_the_window_for_the_next_one() -> None:
    """A running watch: the poll after an idle one whose Date is past the window asks from
    the mark, as ``lookback=0`` does."""
    cursors: list[str | None] = []

    class Stop(Exception):
        pass

    async def fetch(cursor: str | None) -> Page:
        cursors.append(cursor)
        if len(cursors) == 4:
            raise Stop
        return Page([log(9, 100)], False, None, date=http_date(100 + 3600 * len(cursors)))

    async def sleep(_: float) -> None:
        return None

    async def drain() -> None:
        async for batch in watch(
            fetch, windowed(), interval=60.0, once=False, lookback=LOOKBACK, sleep=sleep
        ):
            raise AssertionError(f"nothing is new, got {batch.items}")

    with pytest.raises(Stop):
        await drain()
    mark = (at(100) - TICK).isoformat()
    assert cursors == [(at(70) - TICK).isoformat(), mark, mark, mark]


def test_a_closed_state_round_trips_and_an_older_state_still_loads() -> None:
    """No new field: a closed state is a version-2 state, JSON in and out."""
    closed = close_poll(windowed(), http_date(120), LOOKBACK)
    raw = msgspec.json.encode(closed)
    assert msgspec.json.decode(raw)["version"] == 2
    assert msgspec.json.decode(raw, type=sc.WatchState) == closed


def test_a_state_saved_in_the_middle_of_a_poll_begins_a_whole_poll() -> None:
    """Oldest-first, saved mid-scan (or following the server's link): the next poll reads
    the window from its bottom, so a log that became visible in the part already read is
    not passed over (a driver that keeps only batch states resumes from it every poll)."""
    state = windowed()
    for saved in (
        msgspec.structs.replace(state, scan=at(90)),
        msgspec.structs.replace(state, scan=at(90), after="server-cursor"),
        msgspec.structs.replace(state, after="server-cursor"),
    ):
        begun = open_poll(saved, LOOKBACK)
        assert (begun.scan, begun.after) == (at(70), None)
        assert next_cursor(begun) == (at(70) - TICK).isoformat()
    closed = close_poll(state, http_date(1_000), LOOKBACK)
    begun = open_poll(msgspec.structs.replace(closed, after="server-cursor"), LOOKBACK)
    assert (begun.scan, begun.after) == (None, None)
    assert next_cursor(begun) == (at(100) - TICK).isoformat()


async def test_a_late_log_below_where_a_saved_poll_stopped_is_delivered() -> None:
    """Log 6 (85 s) became visible after a poll had read the window past it and saved a
    batch's state there: resuming from that state delivers it, once."""
    saved = msgspec.structs.replace(windowed(), scan=at(90))
    cursors: list[str | None] = []

    async def fetch(cursor: str | None) -> Page:
        cursors.append(cursor)
        return Page([log(7, 80), log(6, 85), log(8, 95), log(9, 100)], False, None)

    batches = [b async for b in watch(fetch, saved, interval=0.0, once=True, lookback=LOOKBACK)]
    assert cursors == [(at(70) - TICK).isoformat()]
    assert [[log.id for log in b.items] for b in batches] == [[6]]
    assert [(late.id, late.behind) for late in batches[0].late] == [(6, 15.0)]
