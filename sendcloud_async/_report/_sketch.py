"""Fixed-memory summaries of a stream: the heaviest keys, and counts over time.

``TopK`` is Space-Saving (Metwally, Agrawal and El Abbadi, *Efficient Computation of
Frequent and Top-k Elements in Data Streams*, 2005): ``capacity`` counters, whatever
the number of distinct keys. While no more than ``capacity`` distinct keys were
seen every count is exact. After that, a new key takes the place of the key with
the smallest count ``m`` and starts at ``m + weight``, remembering ``m`` as its
possible overcount (``error``). Then:

* a key's true count lies in ``[count - error, count]``;
* every key whose true count exceeds ``total / capacity`` is kept;
* the smallest count is at most ``total / capacity``.

The minimum is found through a heap of ``(count, key)`` entries refreshed lazily
(counts only grow, so a stale entry is never above its key's count): an increment
of a key already counted is one dictionary update.

``Timeline`` counts per time bucket in at most ``capacity`` buckets. It starts with
one-minute buckets; when the logs seen span more buckets than that, it merges them
into the next width of ``WIDTHS`` (each a multiple of the one before, aligned on the
Unix epoch, so a merged bucket is always the union of whole smaller ones): one
minute, 5 and 15 minutes, half an hour, an hour, 2, 6 and 12 hours, a day, then
doubling. The width thus depends only on the span of the logs, not on their order.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from typing import Final

__all__ = ["WIDTHS", "TopK", "next_width"]

#: The bucket widths (seconds) a timeline goes through, narrowest first; after a day,
#: each is twice the one before.
WIDTHS: Final = (60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400)


def next_width(width: int) -> int:
    """The bucket width that follows ``width`` (a multiple of it)."""
    for candidate in WIDTHS:
        if candidate > width:
            return candidate
    return width * 2


class TopK:
    """The heaviest keys of a stream in ``capacity`` counters (Space-Saving)."""

    __slots__ = ("_counts", "_errors", "_heap", "capacity", "evicted", "total")

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self.total = 0
        #: Whether a key was ever replaced: the counts are then bounds, not exact.
        self.evicted = False
        self._counts: dict[str, int] = {}
        self._errors: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def add(self, key: str, weight: int = 1) -> None:
        """Count ``key`` ``weight`` more times."""
        self.total += weight
        counts = self._counts
        count = counts.get(key)
        if count is not None:
            counts[key] = count + weight
            return
        heap = self._heap
        if len(counts) < self.capacity:
            counts[key] = weight
            heapq.heappush(heap, (weight, key))
            return
        # Refresh stale entries until the top one is current: it is then the minimum.
        while True:
            stale, smallest = heap[0]
            current = counts[smallest]
            if current == stale:
                break
            heapq.heapreplace(heap, (current, smallest))
        del counts[smallest]
        self._errors.pop(smallest, None)
        self.evicted = True
        counts[key] = stale + weight
        self._errors[key] = stale
        heapq.heapreplace(heap, (stale + weight, key))

    def __len__(self) -> int:
        return len(self._counts)

    def __iter__(self) -> Iterator[str]:
        return iter(self._counts)

    def count(self, key: str) -> int:
        """The count of ``key`` (0 if it is not kept)."""
        return self._counts.get(key, 0)

    def error(self, key: str) -> int:
        """How much ``count(key)`` may exceed the true count."""
        return self._errors.get(key, 0)

    def top(self, n: int | None = None) -> list[tuple[str, int, int]]:
        """``(key, count, error)`` of the ``n`` heaviest keys, heaviest first (ties: by key)."""
        ranked = sorted(self._counts.items(), key=lambda item: (-item[1], item[0]))
        if n is not None:
            ranked = ranked[:n]
        return [(key, count, self._errors.get(key, 0)) for key, count in ranked]
