"""What an ``EventLedger`` asks of the place where it keeps what was admitted.

``EventLedger`` decides what an event's object and delivery are (a ``LedgerKey``),
counts, and runs ``handling``; a ``LedgerStore`` only answers four atomic steps and
a size. ``MemoryLedgerStore`` (one process) and the Redis store behind
``sendcloud_async.redis.RedisEventLedger`` (many processes) implement it; so can a
store of your own, given to ``EventLedger(store)``.
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple, Protocol, TypeAlias, runtime_checkable

#: How long a store remembers an admitted delivery by default (seconds): one day.
DEFAULT_TTL: Final = 86_400.0

Outcome: TypeAlias = Literal["new", "duplicate", "stale", "busy"]
"""A store's answer: a ``Verdict``, or ``"busy"`` (another claim holds the object)."""

OUTCOMES: Final[frozenset[str]] = frozenset({"new", "duplicate", "stale", "busy"})


class LedgerKey(NamedTuple):
    """Where an event lives in a ledger; holds no secret (ids, actions, times, hashes).

    ``EventLedger`` makes it (the one rule for what makes two deliveries the same);
    a store only keeps it.
    """

    #: The object: ``parcel:ID``, ``integration:ID``, ``return:ID``, or ``event:SHA256``
    #: for an event without one (then only duplicates are detected).
    scope: str
    #: The delivery within the object: ``ACTION@MICROSECONDS``, or ``content``.
    fingerprint: str
    #: The event time in microseconds since the epoch (``None``: no stale check).
    at: int | None


@runtime_checkable
class LedgerStore(Protocol):
    """Where an ``EventLedger`` keeps admitted deliveries, each object's newest time, and claims.

    Each step must be atomic with respect to every other user of the same store
    (other tasks, other processes). The answers are:

    * ``"duplicate"``: ``(key.scope, key.fingerprint)`` was recorded and not yet forgotten;
    * ``"stale"``: ``key.at`` is older than the newest time recorded for ``key.scope``
      (only when ``key.at`` is not ``None``);
    * ``"busy"``: another token holds a claim on ``key.scope``;
    * ``"new"``: none of these.

    A store that cannot be reached raises ``sendcloud_async.StateUnavailableError``:
    the ledger and the aiohttp handler turn it into "try again later" (503).
    """

    async def admit(self, key: LedgerKey) -> Outcome:
        """Check ``key``; if ``"new"``, record it at once."""
        ...

    async def claim(self, key: LedgerKey, token: str) -> Outcome:
        """Check ``key`` (a claim by ``token`` itself is not busy); if ``"new"``, claim its scope.

        A claim must not outlive a crashed holder for ever: expire it (a lease), or
        say in your store's documentation why it cannot be left behind.
        """
        ...

    async def commit(self, key: LedgerKey, token: str) -> None:
        """Record ``key`` and drop ``token``'s claim on its scope."""
        ...

    async def release(self, key: LedgerKey, token: str) -> None:
        """Drop ``token``'s claim on ``key.scope`` without recording anything."""
        ...

    async def size(self) -> int:
        """How many admitted deliveries the store remembers now (forgotten ones excluded)."""
        ...
