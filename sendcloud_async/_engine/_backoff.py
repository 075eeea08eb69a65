"""``Backoff``: what a failure of one item means for the run, as a pure function."""

from __future__ import annotations

from dataclasses import dataclass

from .._retry import capped_backoff

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Retry an item whose run raised one of ``retry`` (and none of ``fatal``), after
    ``base`` seconds doubling per failure in a row, at most ``ceiling``.

    Any other error stops the whole run: it is not the item's (a closed client, a
    state store that refuses its configuration, a bug). Like ``RetryPolicy`` it does
    no I/O and reads no clock, so every row is tested without a server.
    """

    base: float
    ceiling: float
    retry: tuple[type[BaseException], ...] = (Exception,)
    fatal: tuple[type[BaseException], ...] = ()

    def wait(self, failures: int) -> float:
        """Seconds before the next run of an item that failed ``failures`` times in a row."""
        return capped_backoff(failures, self.base, self.ceiling)

    def decide(self, error: BaseException, failures: int) -> float | None:
        """Seconds before the item runs again, or ``None``: ``error`` stops the run."""
        if isinstance(error, self.fatal) or not isinstance(error, self.retry):
            return None
        return self.wait(failures)
