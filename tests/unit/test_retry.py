"""Pure tests for ``sendcloud_async._retry``: every row of the retry decision."""

from __future__ import annotations

import random

import pytest

from sendcloud_async._retry import RETRYABLE_STATUSES, RetryPolicy

POLICY = RetryPolicy()  # max_retries=3, backoff_base=0.5, backoff_max=8.0, max_retry_after=60


def ceiling(policy: RetryPolicy, n: int) -> float:
    """The un-jittered backoff before retry ``n``."""
    return min(policy.backoff_max, policy.backoff_base * 2.0 ** (n - 1))


def test_defaults() -> None:
    """The default policy is three retries, 0.5 s base, 8 s cap, 60 s Retry-After cap."""
    assert (POLICY.max_retries, POLICY.backoff_base, POLICY.backoff_max) == (3, 0.5, 8.0)
    assert POLICY.max_retry_after == 60.0
    assert frozenset({408, 429, 500, 502, 503, 504}) == RETRYABLE_STATUSES


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retryable_status_idempotent_retried(status: int) -> None:
    """Idempotent calls retry every retryable status, within the first backoff bounds."""
    wait = POLICY.decide(attempt=1, idempotent=True, status=status, rng=random.Random(1))
    assert wait is not None
    assert 0.25 <= wait <= 0.5


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 409, 422, 501, 505, 599])
def test_other_statuses_never_retried(status: int) -> None:
    """Client errors and unlisted 5xx are never retried, idempotent or not."""
    assert POLICY.decide(attempt=1, idempotent=True, status=status) is None
    assert POLICY.decide(attempt=1, idempotent=False, status=status) is None


def test_non_idempotent_429_retried() -> None:
    """A 429 means the request was not processed, so even a POST is retried."""
    wait = POLICY.decide(attempt=1, idempotent=False, status=429, rng=random.Random(0))
    assert wait is not None
    assert 0.25 <= wait <= 0.5


def test_non_idempotent_429_honours_retry_after() -> None:
    """A POST's 429 waits the server's Retry-After."""
    assert POLICY.decide(attempt=2, idempotent=False, status=429, retry_after=4.0) == 4.0


@pytest.mark.parametrize("status", [408, 500, 502, 503, 504])
def test_non_idempotent_5xx_and_408_not_retried(status: int) -> None:
    """A 5xx or 408 may have been processed: a non-idempotent call is not repeated."""
    assert POLICY.decide(attempt=1, idempotent=False, status=status) is None
    assert POLICY.decide(attempt=1, idempotent=False, status=status, retry_after=1.0) is None


def test_transport_error_idempotent_retried_even_if_sent() -> None:
    """A transport error on an idempotent call is retried whether or not it was sent."""
    for sent in (True, False):
        wait = POLICY.decide(attempt=1, idempotent=True, sent=sent, rng=random.Random(3))
        assert wait is not None
        assert 0.25 <= wait <= 0.5


def test_transport_error_non_idempotent_sent_not_retried() -> None:
    """A non-idempotent request that may have reached the server is not repeated."""
    assert POLICY.decide(attempt=1, idempotent=False, status=None, sent=True) is None


def test_transport_error_non_idempotent_not_sent_retried() -> None:
    """A non-idempotent request that certainly was not sent (connect failed) is retried."""
    wait = POLICY.decide(attempt=1, idempotent=False, status=None, sent=False, rng=random.Random(4))
    assert wait is not None
    assert 0.25 <= wait <= 0.5


def test_sent_defaults_to_true() -> None:
    """Without `sent`, a transport error is assumed to have reached the server."""
    assert POLICY.decide(attempt=1, idempotent=False) is None


@pytest.mark.parametrize("attempt", [1, 2, 3])
def test_attempts_within_limit_retried(attempt: int) -> None:
    """Attempts 1..max_retries get a wait."""
    assert POLICY.decide(attempt=attempt, idempotent=True, status=503) is not None


@pytest.mark.parametrize("attempt", [4, 5, 100])
def test_attempt_over_limit_gives_up(attempt: int) -> None:
    """Once attempt > max_retries, no more retries (even with Retry-After or unsent)."""
    assert POLICY.decide(attempt=attempt, idempotent=True, status=503) is None
    assert POLICY.decide(attempt=attempt, idempotent=True, status=429, retry_after=1.0) is None
    assert POLICY.decide(attempt=attempt, idempotent=False, sent=False) is None


def test_max_retries_override_zero() -> None:
    """max_retries=0 per call disables retries."""
    assert POLICY.decide(attempt=1, idempotent=True, status=503, max_retries=0) is None
    assert POLICY.decide(attempt=1, idempotent=True, sent=False, max_retries=0) is None


def test_max_retries_override_higher() -> None:
    """A per-call max_retries above the policy's allows more attempts."""
    assert POLICY.decide(attempt=5, idempotent=True, status=503, max_retries=5) is not None
    assert POLICY.decide(attempt=6, idempotent=True, status=503, max_retries=5) is None


def test_policy_max_retries_zero() -> None:
    """A policy built with max_retries=0 never retries."""
    policy = RetryPolicy(max_retries=0)
    assert policy.decide(attempt=1, idempotent=True, status=503) is None
    assert policy.decide(attempt=1, idempotent=True, status=429, retry_after=0.0) is None


@pytest.mark.parametrize("retry_after", [0.0, 1.5, 30.0, 60.0])
def test_retry_after_honoured(retry_after: float) -> None:
    """Retry-After up to max_retry_after is the wait, exactly (no jitter)."""
    assert (
        POLICY.decide(attempt=1, idempotent=True, status=429, retry_after=retry_after)
        == retry_after
    )
    assert (
        POLICY.decide(attempt=1, idempotent=True, status=503, retry_after=retry_after)
        == retry_after
    )


def test_retry_after_above_max_gives_up() -> None:
    """A Retry-After longer than max_retry_after gives up instead of sleeping."""
    assert POLICY.decide(attempt=1, idempotent=True, status=429, retry_after=60.01) is None
    assert POLICY.decide(attempt=1, idempotent=True, status=429, retry_after=3600) is None
    custom = RetryPolicy(max_retry_after=5.0)
    assert custom.decide(attempt=1, idempotent=True, status=429, retry_after=5.0) == 5.0
    assert custom.decide(attempt=1, idempotent=True, status=429, retry_after=5.5) is None


def test_retry_after_ignored_for_non_retryable() -> None:
    """Retry-After on a 400 does not make it retryable."""
    assert POLICY.decide(attempt=1, idempotent=True, status=400, retry_after=1.0) is None


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 10])
def test_backoff_bounds(n: int) -> None:
    """Backoff n lies in [0.5, 1.0] × min(max, base·2^(n-1)) for many seeds."""
    top = ceiling(POLICY, n)
    waits = [POLICY.backoff(n, random.Random(seed)) for seed in range(200)]
    assert all(0.5 * top <= w <= top for w in waits)
    # Jitter really varies the wait, over most of the allowed range.
    assert max(waits) - min(waits) > 0.3 * top


class _Top(random.Random):
    """A generator whose every draw is the top of its range: the un-jittered wait."""

    def uniform(self, a: float, b: float) -> float:
        return b


def test_backoff_ceilings() -> None:
    """The policy's un-jittered schedule doubles from 0.5 s and is capped at 8 s."""
    assert [POLICY.backoff(n, _Top()) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    custom = RetryPolicy(backoff_base=0.1, backoff_max=0.3)
    assert [custom.backoff(n, _Top()) for n in range(1, 5)] == [0.1, 0.2, 0.3, 0.3]


def test_backoff_deterministic_with_seed() -> None:
    """The same seed gives the same wait, equal to the documented formula."""
    expected = 2.0 * random.Random(42).uniform(0.5, 1.0)
    assert POLICY.backoff(3, random.Random(42)) == expected
    assert POLICY.decide(attempt=3, idempotent=True, status=502, rng=random.Random(42)) == expected


def test_backoff_custom_policy() -> None:
    """backoff_base and backoff_max shape the schedule."""
    policy = RetryPolicy(max_retries=10, backoff_base=0.1, backoff_max=0.3)
    for n, top in [(1, 0.1), (2, 0.2), (3, 0.3), (8, 0.3)]:
        wait = policy.decide(attempt=n, idempotent=True, status=500, rng=random.Random(n))
        assert wait is not None
        assert 0.5 * top <= wait <= top


def test_backoff_without_rng_uses_module_random() -> None:
    """Without an rng the wait is still within bounds."""
    for _ in range(50):
        wait = POLICY.backoff(2)
        assert 0.5 <= wait <= 1.0
