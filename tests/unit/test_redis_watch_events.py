"""What the Redis watch reports: ``sendcloud_async.events`` types, named, leveled and said
by one function (``describe_event``)."""

from __future__ import annotations

import logging
import typing
from datetime import UTC, datetime

import pytest

import sendcloud_async.redis
from sendcloud_async import events
from sendcloud_async.redis import CoordinatorEvent, describe_event

AT = datetime(2026, 12, 7, 2, 30, 5, tzinfo=UTC)
CLOCK = AT.astimezone().strftime("%H:%M:%S")  # the sentences say local wall-clock time
INFO, WARNING = logging.INFO, logging.WARNING
TOKEN = "fencing token 3"

CASES: list[tuple[CoordinatorEvent, str, int, str]] = [
    (events.LeaseClaimed("a", 3, "free"), "lease_claimed", INFO, f"account a: claimed ({TOKEN})"),
    (
        events.LeaseClaimed("a", 3, "own"),
        "lease_claimed",
        INFO,
        f"account a: claimed; the lease was this worker's already ({TOKEN})",
    ),
    (
        events.LeaseClaimed("a", 3, "takeover", "w1"),
        "lease_taken_over",
        INFO,
        f"account a: taken over from worker w1, whose lease lapsed ({TOKEN})",
    ),
    (
        events.LeaseClaimed("a", 3, "adopted", "w2"),
        "lease_taken_over",
        INFO,
        f"account a: taken over from worker w2, which gave it up because its polls failed "
        f"({TOKEN})",
    ),
    (
        events.LeaseReleased("a", 3, "stop"),
        "lease_released",
        INFO,
        f"account a: released ({TOKEN})",
    ),
    (
        events.LeaseReleased("a", 3, "rebalance"),
        "lease_rebalanced",
        INFO,
        f"account a: released for another worker (rebalancing; {TOKEN})",
    ),
    (
        events.LeaseReleased("a", 3, "stalled"),
        "lease_given_up",
        WARNING,
        f"account a: given up: its polls kept failing; a worker that can poll it takes it over "
        f"({TOKEN})",
    ),
    (
        events.LeaseLost("a", 3, "expired"),
        "lease_lost",
        INFO,
        f"account a: lease not renewed in time ({TOKEN}); its watch stopped",
    ),
    (
        events.LeaseLost("a", 3, "gone"),
        "lease_lost",
        INFO,
        f"account a: lease lost: Redis no longer has it as this worker's ({TOKEN})",
    ),
    (
        events.LeaseRefused("a", 3),
        "lease_refused",
        WARNING,
        f"account a: taken over by another worker ({TOKEN} refused by the fence); nothing was "
        "written",
    ),
    (
        events.RedisDown(AT, "ConnectionError: Error 111 connecting to 127.0.0.1:6379.", 0.25),
        "redis_down",
        WARNING,
        f"Redis is unreachable since {CLOCK} (ConnectionError: Error 111 connecting to "
        "127.0.0.1:6379.); this worker writes nothing and takes no account until it answers "
        "(it asks again every 0.25 s)",
    ),
    (
        events.RedisUp(AT, 3.25),
        "redis_up",
        INFO,
        f"Redis answers again after 3.2 s (unreachable since {CLOCK}); watching resumes",
    ),
    (
        events.AccountFailing("a", "ServerError", 1, 1.5, "ServerError: 500 from the API", AT),
        "account_failing",
        WARNING,
        "account a: failing (ServerError: 500 from the API); trying again in 1.5 s",
    ),
    (
        events.AccountRecovered("a", AT, 1),
        "account_recovered",
        INFO,
        f"account a: works again after 1 failed attempt (failing since {CLOCK})",
    ),
    (
        events.AccountRecovered("a", AT, 3),
        "account_recovered",
        INFO,
        f"account a: works again after 3 failed attempts (failing since {CLOCK})",
    ),
]


@pytest.mark.parametrize(
    ("event", "name", "level", "sentence"), CASES, ids=[f"{c[1]}-{i}" for i, c in enumerate(CASES)]
)
def test_each_event_has_its_name_level_and_sentence(
    event: CoordinatorEvent, name: str, level: int, sentence: str
) -> None:
    """The ``--events`` name, the log level and the sentence logged, word for word."""
    assert describe_event(event) == (name, level, sentence)


def test_an_event_of_another_watch_is_said_with_what_it_carries() -> None:
    """A ``LogWatcher``'s failing event (no ``detail``, no ``since``) and a recovery that did
    not count: the sentence says what is known, nothing made up."""
    failing = events.AccountFailing("a", "ServerError", 2, 0.5)
    assert describe_event(failing)[2] == "account a: failing (ServerError); trying again in 0.5 s"
    recovered = events.AccountRecovered("a")
    assert describe_event(recovered) == (
        "account_recovered",
        INFO,
        "account a: works again",
    )


def test_the_coordinator_reports_the_public_event_types_only() -> None:
    """``CoordinatorEvent`` is the union of ``sendcloud_async.events`` classes, every one of
    them an ``events.Event``; the old private classes are gone from ``sendcloud_async.redis``."""
    kinds = set(typing.get_args(CoordinatorEvent))
    assert kinds == {
        events.LeaseClaimed,
        events.LeaseReleased,
        events.LeaseLost,
        events.LeaseRefused,
        events.RedisDown,
        events.RedisUp,
        events.AccountFailing,
        events.AccountRecovered,
    }
    assert kinds <= set(typing.get_args(events.Event))
    assert {type(case[0]) for case in CASES} == kinds
    for gone in ("LeaseEvent", "RedisDown", "RedisUp", "AccountFailing", "AccountRecovered"):
        assert not hasattr(sendcloud_async.redis, gone), gone


def test_a_failing_event_names_the_class_and_the_error_on_one_line() -> None:
    """``error``: the class (a metric label); ``detail``: its text, on one line, cut short."""
    from sendcloud_async._event_types import account_failing

    event = account_failing("a", RuntimeError("boom\n  at   line 2 " + "x" * 400), 2, 1.0, AT)
    assert (event.account, event.error, event.failures, event.retry_in, event.since) == (
        "a",
        "RuntimeError",
        2,
        1.0,
        AT,
    )
    assert event.detail.startswith("RuntimeError: boom at line 2 xxx")
    assert "\n" not in event.detail
    assert len(event.detail) == 300
    assert event.detail.endswith("…")
