"""The retry decision: a pure function of (what happened, attempt) → wait or give up.

The transport calls ``RetryPolicy.decide`` after every failed attempt; it does
no I/O and reads no clock except through its arguments, so every row of the
policy is tested without a server.

The policy, as the README's "Retries, timeouts and errors" table states it:

* retried: transport errors (connection refused or dropped, timeouts, truncated
  bodies) and the statuses 408, 429, 500, 502, 503 and 504, up to
  ``max_retries`` times after the first attempt;
* a non-idempotent request (``POST /integrations/{id}/logs``) is retried only
  when the server certainly did not process it: a 429, or a connection that
  failed before the request was sent (``sent=False``);
* the wait is the server's ``Retry-After`` when it sent one (never more than
  ``max_retry_after``: above it the caller gets the error at once), otherwise
  capped exponential backoff with "equal jitter".

``retry_testing`` is the switch behind ``sendcloud_async.testing.instant_retries``:
while it is on the transport still asks the policy how long to wait and records
the answer, but does not sleep.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

__all__ = [
    "IDEMPOTENT_METHODS",
    "RETRYABLE_STATUSES",
    "RetryEvent",
    "RetryPolicy",
    "capped_backoff",
    "instant_retries",
    "is_idempotent",
    "retry_testing",
]

RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})

#: Methods whose repetition has the effect of one request (RFC 9110 section 9.2.2), and
#: PATCH: every PATCH the API offers sets fields to given values, so repeating it is
#: harmless. POST is not, unless its caller says so (the two POSTs that replace a
#: whole set do: ``shop_order_statuses.replace`` and ``set_mapping``).
IDEMPOTENT_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"})


def is_idempotent(method: str) -> bool:
    """Whether a request with ``method`` may be repeated after it may have been sent."""
    return method.upper() in IDEMPOTENT_METHODS


def capped_backoff(attempt: int, base: float, ceiling: float) -> float:
    """The wait before try ``attempt`` (1-based) after failures: ``base``, doubling, at most
    ``ceiling`` (the one backoff curve of retries, failing accounts and restarted watches)."""
    return float(min(ceiling, base * 2.0 ** min(attempt - 1, 60)))


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to retry and how long to wait.

    ``max_retries`` retries after the first attempt (0 disables retries).
    The backoff before retry ``n`` (1-based) is ``min(backoff_max,
    backoff_base * 2**(n-1))`` scaled by a random factor in [0.5, 1.0]
    ("equal jitter"), unless the server sent ``Retry-After``. ``rng`` makes
    the jitter reproducible (the module's ``random`` when ``None``).
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    rng: random.Random | None = None

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """The jittered exponential wait before retry number ``retry_number`` (1-based)."""
        ceiling = capped_backoff(retry_number, self.backoff_base, self.backoff_max)
        factor: float = (rng or self.rng or random).uniform(0.5, 1.0)
        return ceiling * factor

    def decide(
        self,
        *,
        attempt: int,
        idempotent: bool,
        status: int | None = None,
        retry_after: float | None = None,
        sent: bool = True,
        max_retries: int | None = None,
        rng: random.Random | None = None,
    ) -> float | None:
        """Seconds to wait before the next attempt, or ``None`` to give up.

        ``attempt`` counts attempts made so far (1 after the first). ``status`` is
        the HTTP status of the failed attempt, or ``None`` for a transport error;
        ``sent`` tells whether the request may have reached the server (``False``
        only when the connection failed before anything was written).
        """
        limit = self.max_retries if max_retries is None else max_retries
        if attempt > limit:
            return None
        if status is None:
            # Transport error: safe to repeat only if idempotent or certainly not sent.
            if not idempotent and sent:
                return None
            return self.backoff(attempt, rng)
        if status not in RETRYABLE_STATUSES:
            return None
        if not idempotent and status != 429:
            # A 5xx or 408 may have been processed: never repeat a non-idempotent call.
            return None
        if retry_after is not None:
            if retry_after > self.max_retry_after:
                return None
            return retry_after
        return self.backoff(attempt, rng)


@dataclass(frozen=True, slots=True)
class RetryEvent:
    """One retry the transport decided on, as recorded by ``instant_retries()``.

    ``attempt`` is the attempt that failed (1 for the first), ``reason`` what
    went wrong (``"status 503"``, ``"timeout"``, ``"ServerDisconnectedError"``)
    and ``wait`` the seconds the policy chose (slept unless retries are instant).
    """

    method: str
    url: str
    attempt: int
    reason: str
    wait: float


class _RetryTesting:
    """Process-wide testing switch (like stamina's ``set_testing``)."""

    __slots__ = ("events", "instant")

    def __init__(self) -> None:
        self.instant = False
        self.events: list[RetryEvent] | None = None


retry_testing: Final = _RetryTesting()


@contextmanager
def instant_retries() -> Iterator[list[RetryEvent]]:
    """Make every client's retries instant while the block runs; yield the retries made.

    Inside the block the retry policy is applied as usual (the same decisions,
    the same number of attempts, the same waits computed and logged) but the
    transport does not sleep before retrying. Each retry is appended to the
    yielded list as a ``RetryEvent``, so a test can assert how long the SDK
    *would* have waited. The switch is process-wide; blocks nest.
    """
    previous = (retry_testing.instant, retry_testing.events)
    events: list[RetryEvent] = []
    retry_testing.instant = True
    retry_testing.events = events
    try:
        yield events
    finally:
        retry_testing.instant, retry_testing.events = previous
