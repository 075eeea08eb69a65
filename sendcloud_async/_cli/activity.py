"""What the client is waiting for, told by the request path (``_observe``), in a few words."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Final

from yarl import URL

from .._observe import Event, Finished, Sending, Waiting
from .progress import account_var

__all__ = ["SLOW_ATTEMPT", "Activity"]

#: An attempt without an answer for this long is worth a word on the progress line.
SLOW_ATTEMPT: Final = 1.0
#: A wait whose expected end passed this long ago is forgotten (its call ended otherwise).
_STALE: Final = 5.0


def _path(url: str) -> str:
    try:
        return URL(url).path or url
    except ValueError:
        return url


class Activity:
    """An ``Observer`` of the request path that says what is being waited for.

    ``note()`` is the progress line's note: the wait that ends last (``waiting 41 s
    for the rate limit``, ``retrying in 2.0 s after 503``), else the oldest attempt
    without an answer for ``SLOW_ATTEMPT`` seconds (``waiting 12 s for the answer to
    GET /integrations/logs``), else ``""``. With many accounts it names the account.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._waits: dict[int, tuple[Waiting, str | None]] = {}
        self._attempts: dict[int, tuple[Sending, str | None]] = {}

    def on_event(self, event: Event) -> None:
        """Called by the request path (in the calling task's context)."""
        account = account_var.get()
        if isinstance(event, Waiting):
            self._attempts.pop(event.call, None)
            self._waits[event.call] = (event, account)
        elif isinstance(event, Sending):
            self._waits.pop(event.call, None)
            self._attempts[event.call] = (event, account)
        elif isinstance(event, Finished):
            self._attempts.pop(event.call, None)

    def note(self) -> str:
        """A few words on the longest wait or the slowest attempt; ``""`` if none."""
        now = self._clock()
        best: tuple[float, str] | None = None
        for call, (wait, account) in list(self._waits.items()):
            if wait.seconds is None:
                left = math.inf
            else:
                left = wait.seconds - (now - wait.at)
                if left < -_STALE:
                    del self._waits[call]
                    continue
            if best is None or left > best[0]:
                best = (left, _named(account, _describe_wait(wait, max(0.0, left))))
        if best is not None:
            return best[1]
        oldest = min(self._attempts.values(), key=lambda pair: pair[0].at, default=None)
        if oldest is None:
            return ""
        sending, account = oldest
        age = now - sending.at
        if age < SLOW_ATTEMPT:
            return ""
        retry = f", attempt {sending.attempt}" if sending.attempt > 1 else ""
        text = f"waiting {age:.0f} s for the answer to {sending.method} {_path(sending.url)}{retry}"
        return _named(account, text)


def _describe_wait(wait: Waiting, left: float) -> str:
    if wait.reason == "rate_limit" or wait.status == 429:
        why = " (429)" if wait.status == 429 else ""
        if wait.seconds is None or math.isinf(left):
            return f"waiting for the rate limit{why}"
        return f"waiting {math.ceil(left):.0f} s for the rate limit{why}"
    after = f"after {wait.status}" if wait.status is not None else f"after {wait.error or 'error'}"
    if wait.seconds is None:
        return f"retrying {after}"
    return f"retrying in {left:.1f} s {after}"


def _named(account: str | None, text: str) -> str:
    return f"account {account}: {text}" if account else text
