"""Pure tests of the retry policy as the README's table states it, and of the testing switch."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sendcloud_async._client import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT
from sendcloud_async._retry import RetryEvent, RetryPolicy, instant_retries, retry_testing

POLICY = RetryPolicy()

# (failure, status, sent, retried when idempotent, retried for POST /integrations/{id}/logs)
TABLE = [
    ("connection refused / connect or pool-wait timeout", None, False, True, True),
    ("connection dropped, body truncated, read timeout", None, True, True, False),
    ("408 Request Timeout", 408, True, True, False),
    ("429 Too Many Requests", 429, True, True, True),
    ("500 Internal Server Error", 500, True, True, False),
    ("502 Bad Gateway", 502, True, True, False),
    ("503 Service Unavailable", 503, True, True, False),
    ("504 Gateway Timeout", 504, True, True, False),
    ("400 Bad Request", 400, True, False, False),
    ("401 Unauthorized", 401, True, False, False),
    ("403 Forbidden", 403, True, False, False),
    ("404 Not Found", 404, True, False, False),
    ("409 Conflict", 409, True, False, False),
    ("422 Unprocessable Entity", 422, True, False, False),
    ("501 Not Implemented", 501, True, False, False),
    ("505 HTTP Version Not Supported", 505, True, False, False),
]


@pytest.mark.parametrize(
    ("failure", "status", "sent", "idempotent_retried", "post_retried"),
    TABLE,
    ids=[row[0] for row in TABLE],
)
def test_policy_table(
    failure: str, status: int | None, sent: bool, idempotent_retried: bool, post_retried: bool
) -> None:
    """Each row of the documented table: retried or not, for idempotent calls and for POST logs."""
    for idempotent, expected in ((True, idempotent_retried), (False, post_retried)):
        wait = POLICY.decide(attempt=1, idempotent=idempotent, status=status, sent=sent)
        assert (wait is not None) is expected, (failure, idempotent)


def test_documented_defaults() -> None:
    """Defaults: 30 s per attempt, 3 retries, 0.5 s base, 8 s cap, Retry-After cap 60 s."""
    assert DEFAULT_TIMEOUT == 30.0
    assert DEFAULT_MAX_RETRIES == 3 == POLICY.max_retries
    assert (POLICY.backoff_base, POLICY.backoff_max, POLICY.max_retry_after) == (0.5, 8.0, 60.0)


def test_retry_after_beats_backoff_for_every_retryable_status() -> None:
    """A Retry-After within the cap is the wait, for 429 and for the other retryable statuses."""
    for status in (408, 429, 500, 502, 503, 504):
        assert POLICY.decide(attempt=2, idempotent=True, status=status, retry_after=7.5) == 7.5


def test_retry_after_cap_gives_up_even_for_post_429() -> None:
    """Above the cap even a POST's 429 is not waited for: the caller gets RateLimitError."""
    assert POLICY.decide(attempt=1, idempotent=False, status=429, retry_after=60.0) == 60.0
    assert POLICY.decide(attempt=1, idempotent=False, status=429, retry_after=61.0) is None


def test_policy_rng_makes_jitter_reproducible() -> None:
    """An rng on the policy makes every wait reproducible; a per-call rng wins over it."""
    one = RetryPolicy(rng=random.Random(5))
    two = RetryPolicy(rng=random.Random(5))
    waits_one = [one.decide(attempt=n, idempotent=True, status=503) for n in (1, 2, 3)]
    waits_two = [two.decide(attempt=n, idempotent=True, status=503) for n in (1, 2, 3)]
    assert waits_one == waits_two
    expected = 0.5 * random.Random(9).uniform(0.5, 1.0)
    assert one.decide(attempt=1, idempotent=True, status=503, rng=random.Random(9)) == expected


@given(
    attempt=st.integers(min_value=1, max_value=50),
    base=st.floats(min_value=0.001, max_value=10),
    cap=st.floats(min_value=0.001, max_value=100),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_backoff_always_within_equal_jitter_bounds(
    attempt: int, base: float, cap: float, seed: int
) -> None:
    """For any schedule the wait lies in [0.5, 1] × min(cap, base·2^(n-1)), never above the cap."""
    policy = RetryPolicy(max_retries=100, backoff_base=base, backoff_max=cap)
    wait = policy.decide(attempt=attempt, idempotent=True, status=None, rng=random.Random(seed))
    assert wait is not None
    ceiling = min(cap, base * 2.0 ** (attempt - 1))
    assert 0.5 * ceiling <= wait <= ceiling <= cap


def test_instant_retries_switch_and_records() -> None:
    """instant_retries() turns the switch on, yields a fresh list and restores on exit."""
    assert retry_testing.instant is False
    assert retry_testing.events is None
    with instant_retries() as outer:
        assert retry_testing.instant is True
        assert retry_testing.events is outer
        with instant_retries() as inner:
            assert retry_testing.events is inner
        assert retry_testing.events is outer
        assert retry_testing.instant is True
    assert retry_testing.instant is False
    assert retry_testing.events is None


def test_instant_retries_restores_after_an_error() -> None:
    """The switch is turned off again even if the block raises."""
    with pytest.raises(RuntimeError), instant_retries():
        raise RuntimeError("boom")
    assert retry_testing.instant is False


def test_retry_event_is_a_frozen_value() -> None:
    """RetryEvent compares by value and cannot be changed."""
    event = RetryEvent("GET", "http://127.0.0.1/api/v3/integrations", 1, "status 503", 0.3)
    assert event == RetryEvent("GET", "http://127.0.0.1/api/v3/integrations", 1, "status 503", 0.3)
    with pytest.raises(AttributeError):
        event.wait = 0.0  # type: ignore[misc]
