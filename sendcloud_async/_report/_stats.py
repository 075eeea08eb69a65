"""The report in one pass over the logs, in memory bounded whatever their number.

``ReportBuilder.add_many(rows)`` takes the logs in any order, batch by batch;
``finish()`` computes the report. What is kept while the logs stream by:

* per integration (at most ``MAX_INTEGRATIONS`` one by one; the logs of any
  further integration are counted together, as ``other integrations``): its
  count, first and last ``created_at``, its counts per time bucket (a timeline of
  at most ``MAX_BUCKETS`` buckets shared by all, see ``_sketch``), and the top
  ``INTEGRATION_TOP`` exception types, response codes and masked messages;
* for every log together: the counts per bucket and per hour of the week, and the
  top exception types, masked messages (``_masks``), response codes and
  endpoints, each a Space-Saving sketch of fixed capacity (``GLOBAL_TOP``).

So the memory is at most ``MAX_INTEGRATIONS × (MAX_BUCKETS + 3 × INTEGRATION_TOP)``
counters plus the global sketches, however many logs there are.

``finish()`` then reads the findings off those counts: each integration's trend,
status and robust score, and what stands out (``_analysis``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from itertools import islice
from typing import Final

from ._analysis import DAY, analyse, findings, trend
from ._masks import Masker
from ._model import IntegrationReport, LogLike, Ranked, Report, Timeline
from ._sketch import WIDTHS, TopK, next_width

__all__ = [
    "GLOBAL_TOP",
    "INTEGRATION_SHOWN",
    "INTEGRATION_TOP",
    "MAX_BUCKETS",
    "MAX_INTEGRATIONS",
    "ReportBuilder",
]

#: Time buckets at most, per integration and in all (``_sketch``: widths from a minute up).
MAX_BUCKETS: Final = 400
#: Integrations counted one by one; the logs of any further one count as "other integrations".
MAX_INTEGRATIONS: Final = 1_000
#: Counters of each top list of every log together.
GLOBAL_TOP: Final = {"exception_types": 64, "messages": 256, "response_codes": 64, "endpoints": 256}
#: Counters of each top list of one integration, and the entries a report shows of each.
INTEGRATION_TOP: Final = 16
INTEGRATION_SHOWN: Final = 8
#: Logs counted at a time (``add_many``).
_BATCH: Final = 4_096
#: 1970-01-01 was a Thursday: hours to add so that hour 0 of the week is Monday 00:00.
_WEEK_SHIFT: Final = 3 * 24


class _Tally:
    """One integration's counts."""

    __slots__ = ("buckets", "codes", "first", "last", "logs", "messages", "types")

    def __init__(self) -> None:
        self.logs = 0
        self.first = math.inf
        self.last = -math.inf
        self.buckets: dict[int, int] = {}
        self.types = TopK(INTEGRATION_TOP)
        self.codes = TopK(INTEGRATION_TOP)
        self.messages = TopK(INTEGRATION_TOP)


class ReportBuilder:
    """Feed it logs (``add_many``) in any order, then ``finish()`` for the ``Report``.

    ``names``: integration id → shop name, shown beside the ids (an account's
    integrations; an export file has none). ``integration_id``: count only that
    integration's logs.
    """

    def __init__(
        self,
        *,
        source: str,
        names: Mapping[int, str] | None = None,
        integration_id: int | None = None,
    ) -> None:
        self.source = source
        self.names = dict(names or {})
        self.only = integration_id
        self.logs = 0
        self.logs_without_time = 0
        self._tallies: dict[int | None, _Tally] = {}
        self._other = _Tally()
        self._width = WIDTHS[0]
        self._low = 0
        self._high = -1
        self._buckets: dict[int, int] = {}
        self._week = [0] * 168
        self._types = TopK(GLOBAL_TOP["exception_types"])
        self._messages = TopK(GLOBAL_TOP["messages"])
        self._codes = TopK(GLOBAL_TOP["response_codes"])
        self._endpoints = TopK(GLOBAL_TOP["endpoints"])
        self._masker = Masker()
        # The batch being collected (``add_many``): at most ``_BATCH`` logs' fields.
        self._owners: list[_Tally] = []
        self._kinds: list[str | None] = []
        self._codes_seen: list[int | None] = []
        self._texts: list[str | None] = []
        self._places: list[tuple[str | None, str]] = []
        self._stamps: list[float] = []
        self._stamped: list[_Tally] = []

    # -- the pass over the logs -----------------------------------------------------------

    def add(self, row: LogLike) -> None:
        """Count one log."""
        self.add_many((row,))

    def add_many(self, rows: Iterable[LogLike]) -> None:
        """Count these logs.

        Each log's fields are collected at once; every ``_BATCH`` logs (whatever the
        batches they were handed in) C-level ``Counter``s tally each distinct key of the
        batch once, with its weight. So the same logs in the same order give the same
        report, however they were split (an export's blocks, an account's pages).
        """
        iterator = iter(rows)
        while chunk := list(islice(iterator, _BATCH - len(self._owners))):
            self._collect(chunk)
            if len(self._owners) >= _BATCH:
                self._flush()

    def _collect(self, rows: list[LogLike]) -> None:
        """What each figure needs of each log; first and last seen at once."""
        tallies = self._tallies
        only = self.only
        owners, kinds, codes, texts, places = (
            self._owners,
            self._kinds,
            self._codes_seen,
            self._texts,
            self._places,
        )
        stamps, stamped = self._stamps, self._stamped
        before = len(owners)
        timed = len(stamps)
        for row in rows:
            ident = row.integration_id
            if only is not None and ident != only:
                continue
            tally = tallies.get(ident)
            if tally is None:
                tally = self._tally(ident)
            owners.append(tally)
            kinds.append(row.exception_type)
            codes.append(row.response_code)
            texts.append(row.exception)
            places.append((row.method, row.full_url or row.base_url))
            created = row.created_at
            if created is None:
                continue
            if created.tzinfo is None:
                created = created.replace(tzinfo=UTC)
            when = created.timestamp()
            if when < tally.first:
                tally.first = when
            if when > tally.last:
                tally.last = when
            stamps.append(when)
            stamped.append(tally)
        added = len(owners) - before
        self.logs += added
        self.logs_without_time += added - (len(stamps) - timed)

    def _flush(self) -> None:
        """Tally the collected batch, then forget it."""
        owners = self._owners
        if not owners:
            return
        for tally, n in Counter(owners).items():
            tally.logs += n
        for (tally, kind), n in Counter(zip(owners, self._kinds, strict=True)).items():
            key = kind or ""
            tally.types.add(key, n)
            self._types.add(key, n)
        for (tally, code), n in Counter(zip(owners, self._codes_seen, strict=True)).items():
            key = "" if code is None else str(code)
            tally.codes.add(key, n)
            self._codes.add(key, n)
        mask = self._masker.message
        masked = [mask(text) for text in self._texts]
        for (tally, text), n in Counter(zip(owners, masked, strict=True)).items():
            tally.messages.add(text, n)
            self._messages.add(text, n)
        place_of = self._masker.endpoint
        for (method, url), n in Counter(self._places).items():
            self._endpoints.add(place_of(method, url), n)
        if self._stamps:
            self._count_times(self._stamps, self._stamped)
        for batch in (
            owners,
            self._kinds,
            self._codes_seen,
            self._texts,
            self._places,
            self._stamps,
            self._stamped,
        ):
            batch.clear()

    def _count_times(self, stamps: list[float], owners: list[_Tally]) -> None:
        week = self._week
        for hour, n in Counter([int(when // 3600) for when in stamps]).items():
            week[(hour + _WEEK_SHIFT) % 168] += n
        # Widen the timeline first (it may merge buckets), then count at its final width.
        self._reach(int(min(stamps) // self._width))
        self._reach(int(max(stamps) // self._width))
        width = self._width
        buckets = [int(when // width) for when in stamps]
        counts = self._buckets
        for bucket, n in Counter(buckets).items():
            counts[bucket] = counts.get(bucket, 0) + n
        for (tally, bucket), n in Counter(zip(owners, buckets, strict=True)).items():
            series = tally.buckets
            series[bucket] = series.get(bucket, 0) + n

    def _tally(self, ident: int | None) -> _Tally:
        if len(self._tallies) >= MAX_INTEGRATIONS:
            return self._other
        tally = self._tallies[ident] = _Tally()
        return tally

    def _reach(self, bucket: int) -> None:
        """Widen the timeline to hold ``bucket`` (of the current width), merging buckets
        while it spans more than ``MAX_BUCKETS``."""
        if self._high < self._low:  # the first log with a time
            self._low = self._high = bucket
            return
        if self._low <= bucket <= self._high:
            return
        low, high = min(self._low, bucket), max(self._high, bucket)
        width = self._width
        factor = 1
        while high - low + 1 > MAX_BUCKETS:
            wider = next_width(width)
            step = wider // width
            factor *= step
            low, high, width = low // step, high // step, wider
        if factor > 1:
            self._width = width
            self._buckets = _merge(self._buckets, factor)
            for tally in (*self._tallies.values(), self._other):
                tally.buckets = _merge(tally.buckets, factor)
        self._low, self._high = low, high

    # -- the result ------------------------------------------------------------------------

    def finish(self, *, now: datetime | None = None, top: int = 10) -> Report:
        """The report of every log added so far; ``top``: entries of each top list."""
        self._flush()
        tallies = [(ident, tally) for ident, tally in self._tallies.items() if tally.logs]
        if self._other.logs:
            tallies.append((None, self._other))
        timed = [tally for _, tally in tallies if tally.last >= tally.first]
        first = min((t.first for t in timed), default=None)
        last = max((t.last for t in timed), default=None)
        timeline = None
        if first is not None and self._high >= self._low:
            timeline = Timeline(
                start=datetime.fromtimestamp(self._low * self._width, UTC),
                seconds=self._width,
                count=self._high - self._low + 1,
            )
        period = (first, last) if first is not None and last is not None else None
        integrations = [
            self._integration(ident, tally, tally is self._other, period, top)
            for ident, tally in tallies
        ]
        integrations = analyse(integrations, period)
        integrations.sort(key=lambda i: (i.other, -i.logs, i.integration_id or 0))
        sketches = (self._types, self._messages, self._codes, self._endpoints)
        return Report(
            generated_at=(now or datetime.now(UTC)).astimezone(UTC),
            source=self.source,
            logs=self.logs,
            logs_without_time=self.logs_without_time,
            first_seen=_utc(first),
            last_seen=_utc(last),
            timeline=timeline,
            series=self._series(self._buckets),
            hour_of_week=list(self._week),
            integrations=integrations,
            exception_types=_ranked(self._types, self.logs, top),
            messages=_ranked(self._messages, self.logs, top),
            response_codes=_ranked(self._codes, self.logs, top),
            endpoints=_ranked(self._endpoints, self.logs, top),
            findings=findings(integrations, period),
            exact=not any(s.evicted for s in sketches)
            and not any(s.evicted for _, t in tallies for s in (t.types, t.codes, t.messages)),
        )

    def _series(self, buckets: Mapping[int, int]) -> list[int]:
        if self._high < self._low:
            return []
        return [buckets.get(b, 0) for b in range(self._low, self._high + 1)]

    def _integration(
        self,
        ident: int | None,
        tally: _Tally,
        other: bool,
        period: tuple[float, float] | None,
        top: int,
    ) -> IntegrationReport:
        series = self._series(tally.buckets)
        timed = tally.last >= tally.first
        span = (tally.last - tally.first) if timed else 0.0
        return IntegrationReport(
            integration_id=None if other else ident,
            name=None if other or ident is None else self.names.get(ident),
            other=other,
            logs=tally.logs,
            share=tally.logs / self.logs if self.logs else 0.0,
            first_seen=_utc(tally.first) if timed else None,
            last_seen=_utc(tally.last) if timed else None,
            rate_per_day=tally.logs / max(span / DAY, 1.0),
            trend=trend(series, self._low * self._width, self._width, period),
            status="ongoing",
            unusual=False,
            robust_z=None,
            series=series,
            exception_types=_ranked(tally.types, tally.logs, min(top, INTEGRATION_SHOWN)),
            response_codes=_ranked(tally.codes, tally.logs, min(top, INTEGRATION_SHOWN)),
            messages=_ranked(tally.messages, tally.logs, min(top, INTEGRATION_SHOWN)),
        )


def _merge(buckets: dict[int, int], factor: int) -> dict[int, int]:
    merged: dict[int, int] = {}
    for bucket, count in buckets.items():
        key = bucket // factor
        merged[key] = merged.get(key, 0) + count
    return merged


def _utc(timestamp: float | None) -> datetime | None:
    if timestamp is None or not math.isfinite(timestamp):
        return None
    return datetime.fromtimestamp(timestamp, UTC)


def _ranked(sketch: TopK, total: int, n: int) -> list[Ranked]:
    return [
        Ranked(value=key, count=count, share=count / total if total else 0.0, error=error)
        for key, count, error in sketch.top(n)
    ]
