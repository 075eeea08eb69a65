"""The one rule for ties at page boundaries (``_sources._ties``), as the exports use it
page by page."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from sendcloud_async._pagination import PaginationError
from sendcloud_async._sources._ties import Boundary, next_request, past_boundary, relist_cursor
from sendcloud_async._sources._watch_state import NEWEST_FIRST as NEWEST
from sendcloud_async._sources._watch_state import OLDEST_FIRST as OLDEST
from sendcloud_async._sources._watch_state import Order

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class Log:
    id: int | None
    created_at: datetime | None


def s(n: float) -> datetime:
    return T0 + timedelta(seconds=n)


def test_the_cursor_lists_the_boundary_instant_again() -> None:
    assert relist_cursor(s(1), OLDEST) == (s(1) - TICK).isoformat()
    assert relist_cursor(s(1), NEWEST) == (s(1) + TICK).isoformat()


def test_the_logs_delivered_at_the_boundary_are_dropped_and_the_rest_kept() -> None:
    before = Boundary(at=s(1), ids=(1, 2), order=OLDEST)
    page = [Log(1, s(1)), Log(2, s(1)), Log(3, s(1)), Log(4, s(2))]
    kept, after = past_boundary(before, page, None)
    assert [log.id for log in kept] == [3, 4]
    assert after == Boundary(at=s(2), ids=(4,), order=OLDEST)


def test_ids_at_one_instant_add_up_across_pages() -> None:
    before = Boundary(at=s(1), ids=(1,), order=NEWEST)
    kept, after = past_boundary(before, [Log(1, s(1)), Log(2, s(1))], None)
    assert [log.id for log in kept] == [2]
    assert after == Boundary(at=s(1), ids=(1, 2), order=NEWEST)


@pytest.mark.parametrize(("order", "near"), [(OLDEST, -1), (NEWEST, 1)])
def test_logs_on_the_near_side_of_the_boundary_are_dropped(order: Order, near: int) -> None:
    """An inclusive (or truncating) server lists logs before the boundary again."""
    before = Boundary(at=s(5), ids=(7,), order=order)
    far = -near
    page = [Log(6, s(5 + near)), Log(7, s(5)), Log(8, s(5)), Log(9, s(5 + far))]
    kept, after = past_boundary(before, page, None)
    assert [log.id for log in kept] == [8, 9]
    assert after == Boundary(at=s(5 + far), ids=(9,), order=order)


def test_without_a_boundary_nothing_is_dropped_and_the_order_is_learned() -> None:
    """A first page, or the first page after a first-version checkpoint."""
    kept, after = past_boundary(None, [Log(1, s(1)), Log(None, s(2)), Log(3, s(2))], None)
    assert [log.id for log in kept] == [1, None, 3]
    assert after == Boundary(at=s(2), ids=(0, 3), order=OLDEST)


def test_a_page_at_one_instant_leaves_the_order_unknown_until_the_next() -> None:
    kept, after = past_boundary(None, [Log(1, s(1)), Log(2, s(1))], None)
    assert after == Boundary(at=s(1), ids=(1, 2))
    # The next page (the server's link): on the far side, which tells the direction.
    kept, after = past_boundary(after, [Log(2, s(1)), Log(0, s(0))], None)
    assert [log.id for log in kept] == [0]
    assert after == Boundary(at=s(0), ids=(0,), order=NEWEST)


def test_a_log_without_created_at_is_kept_and_moves_nothing() -> None:
    before = Boundary(at=s(1), ids=(1,), order=OLDEST)
    kept, after = past_boundary(before, [Log(1, s(1)), Log(5, None)], None)
    assert [log.id for log in kept] == [5]
    assert after is before


def test_a_page_against_the_listing_order_is_refused() -> None:
    before = Boundary(at=s(1), ids=(1,), order=OLDEST)
    with pytest.raises(PaginationError, match="newest-first on a page of a listing that was"):
        past_boundary(before, [Log(3, s(3)), Log(2, s(2))], None)
    with pytest.raises(PaginationError, match="neither oldest-first nor newest-first"):
        past_boundary(None, [Log(1, s(1)), Log(3, s(3)), Log(2, s(2))], None)


def test_the_boundary_is_written_only_with_what_is_known() -> None:
    assert msgspec.json.encode(Boundary(at=s(1))) == b'{"at":"2026-03-01T12:00:01Z"}'
    raw = b'{"at":"2026-03-01T12:00:01+00:00","ids":[4],"order":"newest_first"}'
    assert msgspec.json.decode(raw, type=Boundary) == Boundary(at=s(1), ids=(4,), order=NEWEST)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"at":"2026-03-01T12:00:01","ids":[]}', type=Boundary)


def test_a_walk_that_moved_asks_for_the_boundary_again() -> None:
    before = Boundary(at=s(1), ids=(1,), order=OLDEST)
    after = Boundary(at=s(2), ids=(2,), order=OLDEST)
    request = next_request(before, after, "c", "s2", frozenset({"s1"}))
    assert request.cursor == relist_cursor(s(2), OLDEST)
    assert request.followed == frozenset()


def test_a_walk_that_did_not_move_follows_the_server_once() -> None:
    """A whole page at one instant, all delivered: the server's link, then on."""
    same = Boundary(at=s(1), ids=(1, 2, 3), order=OLDEST)
    request = next_request(same, same, relist_cursor(s(1), OLDEST), "s1")
    assert request.cursor == "s1"
    # The server's link again without anything new: stopped, not looped.
    with pytest.raises(PaginationError, match=r"repeats the cursor 's1' without listing"):
        next_request(same, same, "s1", "s1", request.followed)
    # Nor through a cycle of two of its links.
    request = next_request(same, same, "s1", "s2", request.followed)
    with pytest.raises(PaginationError, match="repeats the cursor 's1'"):
        next_request(same, same, "s2", "s1", request.followed)


def test_a_walk_whose_order_is_unknown_follows_the_server() -> None:
    after = Boundary(at=s(1), ids=(1, 2))
    assert next_request(None, after, None, "s1") == ("s1", frozenset({"s1"}))
