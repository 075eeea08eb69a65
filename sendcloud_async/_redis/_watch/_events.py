"""How the Redis watch says what happens: ``describe_event`` gives each of its events (a
``CoordinatorEvent``, made of ``sendcloud_async.events`` types) its name in the command
line's ``--events`` file, its ``logging`` level and the sentence logged on
``sendcloud_async.redis.watch``."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Final, Literal, TypeAlias

from ..._event_types import (
    AccountFailing,
    AccountRecovered,
    LeaseClaimed,
    LeaseLost,
    LeaseRefused,
    LeaseReleased,
    RedisDown,
    RedisUp,
)

#: Where the coordinator logs its ``CoordinatorEvent``s (a child of ``sendcloud_async``):
#: a program that shows the events itself can keep them from being shown twice.
events_logger: Final = logging.getLogger("sendcloud_async.redis.watch")

#: How a lease came to this worker (``WatchLease.how``, ``LeaseClaimed.how``).
ClaimKind: TypeAlias = Literal["free", "own", "takeover", "adopted"]
#: Why a lease was let go (``LeaseReleased.reason``: ``"stop"``, ``"rebalance"``,
#: ``"stalled"``) or lost (``LeaseLost.reason``: ``"expired"``, ``"gone"``).
LeaseReason: TypeAlias = Literal["stop", "rebalance", "stalled", "expired", "gone"]

#: Every state change a ``RedisWatchCoordinator`` reports to ``on_event``, logs, and
#: publishes to the subscribers of ``sendcloud_async.events``.
CoordinatorEvent: TypeAlias = (
    LeaseClaimed
    | LeaseReleased
    | LeaseLost
    | LeaseRefused
    | RedisDown
    | RedisUp
    | AccountFailing
    | AccountRecovered
)


def _clock(at: datetime) -> str:
    """``at`` as the local wall-clock time, ``HH:MM:SS``."""
    return at.astimezone().strftime("%H:%M:%S")


def describe_event(event: CoordinatorEvent) -> tuple[str, int, str]:
    """``event``'s name, ``logging`` level and sentence: ``("lease_taken_over",
    logging.INFO, "account a: taken over from worker …")``.

    The names: ``lease_claimed``, ``lease_taken_over`` (a claim with a ``previous``),
    ``lease_released``, ``lease_rebalanced``, ``lease_given_up`` (a release for
    ``"rebalance"``, ``"stalled"``), ``lease_lost``, ``lease_refused``, ``redis_down``,
    ``redis_up``, ``account_failing`` and ``account_recovered``. WARNING for a refused
    write, an account given up or failing and Redis down; INFO for the others.
    """
    info, warning = logging.INFO, logging.WARNING
    if isinstance(event, RedisDown):
        return (
            "redis_down",
            warning,
            f"Redis is unreachable since {_clock(event.since)} ({event.error}); this worker "
            "writes nothing and takes no account until it answers "
            f"(it asks again every {event.retry_every:g} s)",
        )
    if isinstance(event, RedisUp):
        return (
            "redis_up",
            info,
            f"Redis answers again after {event.down_for:.1f} s (unreachable since "
            f"{_clock(event.since)}); watching resumes",
        )
    who = f"account {event.account}: "
    if isinstance(event, AccountFailing):
        error = event.detail or event.error
        return (
            "account_failing",
            warning,
            f"{who}failing ({error}); trying again in {event.retry_in:.1f} s",
        )
    if isinstance(event, AccountRecovered):
        n = event.failures  # 0: the watch did not count them
        attempts = f" after {n} failed attempt{'s' if n != 1 else ''}" if n else ""
        since = (
            "" if event.failing_since is None else f" (failing since {_clock(event.failing_since)})"
        )
        return "account_recovered", info, f"{who}works again{attempts}{since}"
    token = f"fencing token {event.token}"
    if isinstance(event, LeaseClaimed):
        if event.how == "adopted":
            return (
                "lease_taken_over",
                info,
                f"{who}taken over from worker {event.previous}, which gave it up because "
                f"its polls failed ({token})",
            )
        if event.previous is not None:
            return (
                "lease_taken_over",
                info,
                f"{who}taken over from worker {event.previous}, whose lease lapsed ({token})",
            )
        if event.how == "own":
            return (
                "lease_claimed",
                info,
                f"{who}claimed; the lease was this worker's already ({token})",
            )
        return "lease_claimed", info, f"{who}claimed ({token})"
    if isinstance(event, LeaseReleased):
        if event.reason == "rebalance":
            return (
                "lease_rebalanced",
                info,
                f"{who}released for another worker (rebalancing; {token})",
            )
        if event.reason == "stalled":
            return (
                "lease_given_up",
                warning,
                f"{who}given up: its polls kept failing; a worker that can poll it "
                f"takes it over ({token})",
            )
        return "lease_released", info, f"{who}released ({token})"
    if isinstance(event, LeaseLost):
        if event.reason == "gone":
            return (
                "lease_lost",
                info,
                f"{who}lease lost: Redis no longer has it as this worker's ({token})",
            )
        return "lease_lost", info, f"{who}lease not renewed in time ({token}); its watch stopped"
    return (
        "lease_refused",
        warning,
        f"{who}taken over by another worker ({token} refused by the fence); nothing was written",
    )
