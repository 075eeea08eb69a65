"""What the Redis watch reports: leases (``LeaseEvent``), Redis going
down and up, accounts failing and recovering (together ``CoordinatorEvent``)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final, Literal, TypeAlias

from .. import _observe, events

#: Where the coordinator logs its ``CoordinatorEvent``s (a child of ``sendcloud_async``):
#: a program that shows the events itself can keep them from being shown twice.
events_logger: Final = logging.getLogger("sendcloud_async.redis.watch")


#: How a lease came to this worker (``WatchLease.how``).
ClaimKind: TypeAlias = Literal["free", "own", "takeover", "adopted"]
#: Why a lease event happened (``LeaseEvent.reason``): a ``ClaimKind`` for a claim;
#: ``"stop"``, ``"rebalance"`` or ``"stalled"`` for a release; ``"expired"`` or
#: ``"gone"`` for a loss; ``"fence"`` for a refusal.
LeaseReason: TypeAlias = Literal[
    "free",
    "own",
    "takeover",
    "adopted",
    "stop",
    "rebalance",
    "stalled",
    "expired",
    "gone",
    "fence",
]
#: Characters of an error kept in an event.
_ERROR_CHARS: Final = 300


def _clock(at: datetime) -> str:
    """``at`` as the local wall-clock time, ``HH:MM:SS``."""
    return at.astimezone().strftime("%H:%M:%S")


def error_text(exc: BaseException) -> str:
    """``exc`` as one line of at most ``_ERROR_CHARS`` characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class LeaseEvent:
    """What happened to one of this worker's leases.

    ``kind`` and ``reason``:

    * ``"claimed"``: ``"free"`` (nobody held it, or its holder released it),
      ``"own"`` (the lease was this worker's already: a claim whose reply was lost),
      ``"takeover"`` (the lease of worker ``previous`` lapsed: it died, stalled or
      lost Redis) or ``"adopted"`` (``previous`` gave it up because its polls failed);
    * ``"released"``: ``"stop"`` (a clean stop), ``"rebalance"`` (the account now
      belongs to another live worker, e.g. one that joined) or ``"stalled"`` (its
      polls kept failing for ``stall_after``: a worker that can poll it takes it over);
    * ``"lost"``: ``"expired"`` (not renewed in time here) or ``"gone"`` (Redis no
      longer has it as this worker's);
    * ``"refused"``: ``"fence"`` (a write the fence refused; nothing was written).

    ``name`` is the event's name in the command line's ``--events`` file
    (``lease_claimed``, ``lease_taken_over``, ``lease_released``,
    ``lease_rebalanced``, ``lease_given_up``, ``lease_lost``, ``lease_refused``);
    ``str(event)`` is the sentence the coordinator logs at ``level``.
    """

    kind: Literal["claimed", "released", "lost", "refused"]
    account: str
    token: int
    reason: LeaseReason | None = None
    previous: str | None = None

    @property
    def name(self) -> str:
        """The event's name: ``lease_`` and what happened."""
        if self.kind == "claimed":
            return "lease_taken_over" if self.previous is not None else "lease_claimed"
        if self.kind == "released":
            return {"rebalance": "lease_rebalanced", "stalled": "lease_given_up"}.get(
                self.reason or "", "lease_released"
            )
        return f"lease_{self.kind}"

    @property
    def level(self) -> int:
        """The ``logging`` level the coordinator logs it at."""
        if self.kind == "refused" or self.reason == "stalled":
            return logging.WARNING
        return logging.INFO

    def __str__(self) -> str:
        who = f"account {self.account}: "
        token = f"fencing token {self.token}"
        if self.kind == "claimed":
            if self.reason == "adopted":
                return (
                    f"{who}taken over from worker {self.previous}, which gave it up because "
                    f"its polls failed ({token})"
                )
            if self.previous is not None:
                return f"{who}taken over from worker {self.previous}, whose lease lapsed ({token})"
            if self.reason == "own":
                return f"{who}claimed; the lease was this worker's already ({token})"
            return f"{who}claimed ({token})"
        if self.kind == "released":
            if self.reason == "rebalance":
                return f"{who}released for another worker (rebalancing; {token})"
            if self.reason == "stalled":
                return (
                    f"{who}given up: its polls kept failing; a worker that can poll it "
                    f"takes it over ({token})"
                )
            return f"{who}released ({token})"
        if self.kind == "lost":
            if self.reason == "gone":
                return f"{who}lease lost: Redis no longer has it as this worker's ({token})"
            return f"{who}lease not renewed in time ({token}); its watch stopped"
        return (
            f"{who}taken over by another worker ({token} refused by the fence); nothing was written"
        )


@dataclass(frozen=True, slots=True)
class RedisDown:
    """Redis stopped answering (refused, reset, timed out) at ``since``.

    The worker writes nothing and takes no account until ``RedisUp``; its leases
    lapse meanwhile. ``error`` is what the first failed call met.
    """

    since: datetime
    error: str
    retry_every: float

    name: ClassVar[str] = "redis_down"
    level: ClassVar[int] = logging.WARNING

    def __str__(self) -> str:
        return (
            f"Redis is unreachable since {_clock(self.since)} ({self.error}); this worker "
            "writes nothing and takes no account until it answers "
            f"(it asks again every {self.retry_every:g} s)"
        )


@dataclass(frozen=True, slots=True)
class RedisUp:
    """Redis answers again: it was unreachable from ``since`` for ``down_for`` seconds."""

    since: datetime
    down_for: float

    name: ClassVar[str] = "redis_up"
    level: ClassVar[int] = logging.INFO

    def __str__(self) -> str:
        return (
            f"Redis answers again after {self.down_for:.1f} s (unreachable since "
            f"{_clock(self.since)}); watching resumes"
        )


@dataclass(frozen=True, slots=True)
class AccountFailing:
    """The watch of a held account failed (after the client's own retries) at ``since``.

    Emitted once per failing stretch; it is tried again in ``retry_in`` seconds
    (with backoff), and given up (``LeaseEvent`` ``"released"``, ``"stalled"``) if
    it goes on failing for ``stall_after``.
    """

    account: str
    since: datetime
    error: str
    retry_in: float

    name: ClassVar[str] = "account_failing"
    level: ClassVar[int] = logging.WARNING

    def __str__(self) -> str:
        return (
            f"account {self.account}: failing ({self.error}); trying again in {self.retry_in:.1f} s"
        )


@dataclass(frozen=True, slots=True)
class AccountRecovered:
    """A failing account's watch works again (a poll or a write succeeded)."""

    account: str
    failing_since: datetime
    failures: int

    name: ClassVar[str] = "account_recovered"
    level: ClassVar[int] = logging.INFO

    def __str__(self) -> str:
        return (
            f"account {self.account}: works again after {self.failures} failed "
            f"attempt{'s' if self.failures != 1 else ''} (failing since "
            f"{_clock(self.failing_since)})"
        )


#: Every state change a ``RedisWatchCoordinator`` reports to ``on_event`` (and logs).
CoordinatorEvent: TypeAlias = LeaseEvent | RedisDown | RedisUp | AccountFailing | AccountRecovered


def relay(event: CoordinatorEvent) -> None:
    """A Redis watch coordinator's event, as the public event it amounts to (if any)."""
    if not _observe.listening():
        return
    public: events.Event | None = None
    if isinstance(event, LeaseEvent):
        reason = event.reason or ""
        if event.kind == "claimed":
            public = events.LeaseClaimed(event.account, event.token, reason, event.previous)
        elif event.kind == "released":
            public = events.LeaseReleased(event.account, event.token, reason)
        elif event.kind == "lost":
            public = events.LeaseLost(event.account, event.token, reason)
        else:
            public = events.LeaseRefused(event.account, event.token)
    elif isinstance(event, AccountFailing):
        public = events.AccountFailing(
            event.account, event.error.split(":", 1)[0], 0, event.retry_in
        )
    elif isinstance(event, AccountRecovered):
        public = events.AccountRecovered(event.account)
    if public is not None:
        _observe.publish(public)
