"""The retry decision: a pure function of (what happened, attempt) → wait or give up.

The transport calls ``RetryPolicy.decide`` after every failed attempt; it does
no I/O and reads no clock except through its arguments, so every row of the
policy is tested without a server.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final

__all__ = ["RETRYABLE_STATUSES", "RetryPolicy"]

RETRYABLE_STATUSES: Final = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When to retry and how long to wait.

    ``max_retries`` retries after the first attempt (0 disables retries).
    The backoff before retry ``n`` (1-based) is ``min(backoff_max,
    backoff_base * 2**(n-1))`` scaled by a random factor in [0.5, 1.0]
    ("equal jitter"), unless the server sent ``Retry-After``.
    """

    max_retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, retry_number: int, rng: random.Random | None = None) -> float:
        """The jittered exponential wait before retry number ``retry_number`` (1-based)."""
        ceiling = min(self.backoff_max, self.backoff_base * 2.0 ** (retry_number - 1))
        factor: float = (rng or random).uniform(0.5, 1.0)
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
