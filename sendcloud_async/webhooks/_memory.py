"""``MemoryLedgerStore``: the ``LedgerStore`` of one process, bounded in entries and time."""

from __future__ import annotations

import time
from typing import Final

from .._validate import integration_id, positive_seconds
from ._store import DEFAULT_TTL, LedgerKey, Outcome

#: How many entries each table of a memory store holds by default.
DEFAULT_MAX_ENTRIES: Final = 100_000


class MemoryLedgerStore:
    """A ``LedgerStore`` in the memory of this process (what ``EventLedger()`` uses).

    ``max_entries`` bounds each of its two tables (deliveries seen, newest time per
    object; the oldest entry is forgotten first) and each entry is forgotten ``ttl``
    seconds after it was last admitted (default one day). Claims live as long as the
    block that holds them: a crashed process takes its claims with it.
    """

    __slots__ = ("_claims", "_latest", "_seen", "max_entries", "ttl")

    def __init__(self, *, max_entries: int = DEFAULT_MAX_ENTRIES, ttl: float = DEFAULT_TTL) -> None:
        self.max_entries = integration_id(max_entries, "max_entries")
        self.ttl = positive_seconds(ttl, "ttl")
        # Both tables are in order of expiry (a refreshed entry moves to the end).
        self._seen: dict[tuple[str, str], float] = {}
        self._latest: dict[str, tuple[int, float]] = {}
        self._claims: dict[str, str] = {}

    def __repr__(self) -> str:
        return f"<MemoryLedgerStore max_entries={self.max_entries} ttl={self.ttl:g}>"

    async def admit(self, key: LedgerKey) -> Outcome:
        now = time.monotonic()
        outcome = self._check(key, now, None)
        if outcome == "new":
            self._record(key, now)
        return outcome

    async def claim(self, key: LedgerKey, token: str) -> Outcome:
        outcome = self._check(key, time.monotonic(), token)
        if outcome == "new":
            self._claims[key.scope] = token
        return outcome

    async def commit(self, key: LedgerKey, token: str) -> None:
        self._drop_claim(key, token)
        self._record(key, time.monotonic())

    async def release(self, key: LedgerKey, token: str) -> None:
        self._drop_claim(key, token)

    async def size(self) -> int:
        self._purge(time.monotonic())
        return len(self._seen)

    def _drop_claim(self, key: LedgerKey, token: str) -> None:
        if self._claims.get(key.scope) == token:
            del self._claims[key.scope]

    def _check(self, key: LedgerKey, now: float, token: str | None) -> Outcome:
        self._purge(now)
        if (key.scope, key.fingerprint) in self._seen:
            return "duplicate"
        latest = self._latest.get(key.scope)
        if key.at is not None and latest is not None and latest[0] > key.at:
            return "stale"
        holder = self._claims.get(key.scope)
        if holder is not None and holder != token:
            return "busy"
        return "new"

    def _record(self, key: LedgerKey, now: float) -> None:
        expires = now + self.ttl
        seen = (key.scope, key.fingerprint)
        self._seen.pop(seen, None)
        self._seen[seen] = expires
        if key.at is not None:
            previous = self._latest.pop(key.scope, None)
            at = key.at if previous is None else max(previous[0], key.at)
            self._latest[key.scope] = (at, expires)
        while len(self._seen) > self.max_entries:
            del self._seen[next(iter(self._seen))]
        while len(self._latest) > self.max_entries:
            del self._latest[next(iter(self._latest))]

    def _purge(self, now: float) -> None:
        seen = self._seen
        while seen:
            first = next(iter(seen))
            if seen[first] > now:
                break
            del seen[first]
        latest = self._latest
        while latest:
            scope = next(iter(latest))
            if latest[scope][1] > now:
                break
            del latest[scope]
