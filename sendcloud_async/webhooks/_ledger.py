"""``EventLedger``: duplicates and stale events dropped, one delivery per object at a time.

The ledger holds the rules (what an event's object and delivery are, the verdicts,
the counts, ``handling``'s admit-on-success and what to do when the store cannot be
reached); a ``LedgerStore`` holds the entries.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any, Final, Literal, TypeAlias, cast

import msgspec

from .._errors import InvalidInputError, SendcloudError, StateUnavailableError
from ._events import EPOCH, EVENT_TYPES, WebhookEvent, object_scope
from ._memory import DEFAULT_MAX_ENTRIES, MemoryLedgerStore
from ._store import DEFAULT_TTL, OUTCOMES, LedgerKey, LedgerStore, Outcome

#: The logger of everything under ``sendcloud_async.webhooks``.
logger: Final = logging.getLogger("sendcloud_async.webhooks")

Verdict: TypeAlias = Literal["new", "duplicate", "stale"]
"""What ``EventLedger.admit`` says about an event.

* ``"new"``: not seen before and not older than what was admitted for its object;
  it is now recorded (by ``admit``; by ``handling`` once the work succeeded).
* ``"duplicate"``: this delivery was admitted before (same action, object and
  timestamp; for an event without an object, the same content).
* ``"stale"``: older than an event already admitted for the same object.
"""

_US: Final = timedelta(microseconds=1)
_CONTENT_ENCODER: Final = msgspec.json.Encoder(order="sorted")


class EventInFlightError(SendcloudError):
    """Another delivery for the same object (or of the same event) is being handled now.

    Raised by ``EventLedger.admit`` and ``EventLedger.handling``; answer with a
    non-2xx status so that Sendcloud delivers it again later (``aiohttp_handler``
    answers 409 with ``Retry-After``). ``scope`` names the object, e.g. ``"parcel:7"``.
    """

    scope: str

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__(f"another delivery for {scope} is being handled right now")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.scope,))


def event_key(event: object) -> LedgerKey:
    """The one rule for what makes two deliveries the same, and which object an event is about.

    ``InvalidInputError`` if ``event`` is not an event ``parse_event`` returns.
    """
    if not isinstance(event, EVENT_TYPES):
        raise InvalidInputError(
            f"event must be a webhook event from parse_event, got {type(event).__name__}"
        )
    webhook = cast("WebhookEvent", event)
    scope = object_scope(webhook)
    if scope is None or webhook.timestamp is None:
        digest = hashlib.sha256(_CONTENT_ENCODER.encode(webhook)).hexdigest()
        return LedgerKey(f"event:{digest}", "content", None)
    at = (webhook.timestamp - EPOCH) // _US
    return LedgerKey(scope, f"{webhook.action}@{at}", at)


class EventLedger:
    """Remembers which webhook events were admitted, to drop duplicates and stale ones.

    ``await ledger.admit(event)`` returns a ``Verdict``: ``"new"`` (recorded
    now), ``"duplicate"`` or ``"stale"``. Parcels, integrations and returns are
    the objects, by id; an event is stale when an event with a later
    ``timestamp`` was already admitted for its object. Events without an object
    (``UnknownEvent``, a parcel event without a parcel id) are only de-duplicated,
    by content.

    ``async with ledger.handling(event) as verdict:`` is the safer form for a
    receiver: the event is recorded only when the block exits without an
    exception, so a failed attempt is processed again when Sendcloud retries.
    While a block runs for an object, another delivery for that object (the
    same event or another) raises ``EventInFlightError`` instead of running
    alongside it: answer it non-2xx and Sendcloud delivers it again later, when
    it is a duplicate (the first attempt succeeded) or new (it failed). So work
    on one parcel never overlaps, and every admitted event is newer than (or
    as new as) the ones admitted for its object before it.

    Where the entries live is the ``store`` (a ``LedgerStore``). By default it is a
    ``MemoryLedgerStore`` in this process: ``max_entries`` bounds each of its two
    tables (deliveries seen, latest time per object; the oldest entry is forgotten
    first) and each entry is forgotten ``ttl`` seconds after it was last admitted
    (default one day). Keep ``ttl`` at least the ``max_age`` given to
    ``parse_event``: an event old enough to have been forgotten is then refused by
    age. With a ``store`` of your own, ``max_entries`` and ``ttl`` are its business
    and may not be given here. For several processes use
    ``sendcloud_async.redis.RedisEventLedger`` (this ledger over a Redis store).

    ``counts`` counts, in this process, the events admitted (``"new"``), the
    ``"duplicate"`` and ``"stale"`` ones, the deliveries refused because another
    was ``"in_flight"``, and the ``handling`` blocks that ``"failed"``.
    """

    def __init__(
        self,
        store: LedgerStore | None = None,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        ttl: float = DEFAULT_TTL,
    ) -> None:
        if store is None:
            store = MemoryLedgerStore(max_entries=max_entries, ttl=ttl)
        elif not isinstance(store, LedgerStore):
            raise InvalidInputError(
                "store must be a LedgerStore (admit, claim, commit, release and size), "
                f"got {type(store).__name__}"
            )
        elif max_entries != DEFAULT_MAX_ENTRIES or ttl != DEFAULT_TTL:
            raise InvalidInputError(
                "max_entries and ttl configure the in-memory store: with a store of your "
                "own, configure it instead"
            )
        self.store: LedgerStore = store
        self.counts: Counter[str] = Counter()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} store={self.store!r} counts={dict(self.counts)}>"

    async def size(self) -> int:
        """How many admitted deliveries the store remembers now (forgotten ones excluded).

        With several processes sharing a store, theirs are counted too. The Redis
        store walks its keys to count them: a figure for monitoring, not for every request.
        """
        return await self.store.size()

    async def admit(self, event: WebhookEvent) -> Verdict:
        """Record ``event`` if it is new; say whether it was new, a duplicate or stale.

        Raises ``EventInFlightError`` while ``handling`` runs for the same object,
        ``sendcloud_async.StateUnavailableError`` when the store cannot be reached,
        and ``sendcloud_async.InvalidInputError`` for something that is not an event.
        """
        key = event_key(event)
        outcome = self._verdict(key, await self.store.admit(key))
        self.counts[outcome] += 1
        return outcome

    @contextlib.asynccontextmanager
    async def handling(self, event: WebhookEvent) -> AsyncIterator[Verdict]:
        """A block for the work on ``event``; the event is admitted only if the block succeeds.

        Yields the ``Verdict``; do the work only for ``"new"``. On entry, raises
        ``EventInFlightError`` while another block runs for the same object and
        ``sendcloud_async.StateUnavailableError`` when the store cannot be reached
        (nothing is claimed then: answer "later"). A block that raises (or is
        cancelled) admits nothing and lets the next delivery have the object. When
        the block succeeded but the store cannot record the event, the failure is
        logged at WARNING and not raised: the work is done, and an error would make
        Sendcloud deliver the event again and the work run twice.
        """
        key = event_key(event)
        token = secrets.token_hex(8)
        outcome = self._verdict(key, await self.store.claim(key, token))
        if outcome != "new":
            self.counts[outcome] += 1
            yield outcome
            return
        try:
            yield outcome
        except BaseException:
            self.counts["failed"] += 1
            await self._release(key, token)
            raise
        await self._commit(event, key, token)

    def _verdict(self, key: LedgerKey, outcome: Outcome) -> Verdict:
        """The store's answer as a verdict; ``EventInFlightError`` for ``"busy"``."""
        if outcome not in OUTCOMES:
            raise RuntimeError(f"the ledger's store answered {outcome!r}, not a verdict")
        if outcome == "busy":
            self.counts["in_flight"] += 1
            raise EventInFlightError(key.scope)
        return outcome

    async def _commit(self, event: WebhookEvent, key: LedgerKey, token: str) -> None:
        self.counts["new"] += 1
        try:
            await self.store.commit(key, token)
        except StateUnavailableError as exc:
            # The claim expires by itself (a store's lease); the work must not be redone.
            logger.warning(
                "webhook %s for %s was handled but could not be recorded: %s",
                event.action,
                key.scope,
                exc,
            )

    async def _release(self, key: LedgerKey, token: str) -> None:
        try:
            await self.store.release(key, token)
        except StateUnavailableError as exc:
            # The claim expires by itself (a store's lease).
            logger.warning("could not release the claim on %s: %s", key.scope, exc)
