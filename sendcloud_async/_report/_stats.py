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

``finish()`` then reads the findings off those counts (``analyse``): the period is
from the first log to the last; an integration *started failing* when it had no
log for a long stretch at the start of the period (at least a tenth of it, and at
least an hour) in which, at the rate it has had since, it would have had at least
``QUIET_EXPECTED`` logs (the chance of such a silence by luck is below e⁻¹⁰);
*stopped failing* is the same at the end. Trends compare the first and the last
third of the period (``Trend``); *unusual* is a robust z-score of the integrations'
daily rates (``IntegrationReport``).
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Final

from ._masks import Masker
from ._model import (
    Direction,
    Finding,
    IntegrationReport,
    LogLike,
    Ranked,
    Report,
    Status,
    Timeline,
    Trend,
)
from ._sketch import WIDTHS, TopK, next_width

__all__ = [
    "GLOBAL_TOP",
    "INTEGRATION_SHOWN",
    "INTEGRATION_TOP",
    "MAX_BUCKETS",
    "MAX_INTEGRATIONS",
    "QUIET_EXPECTED",
    "ReportBuilder",
    "analyse",
    "describe",
    "direction",
    "duration",
    "findings",
    "period_days",
    "robust_scores",
    "status",
    "trend",
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
#: Logs an integration would have had in a silence for the silence to be a finding.
QUIET_EXPECTED: Final = 10.0
#: A silence must also be this share of the period, and ``_MIN_QUIET`` seconds, at least.
_QUIET_SHARE: Final = 0.1
_MIN_QUIET: Final = 3600.0
#: Findings about an integration need this many of its logs.
_MIN_LOGS: Final = 5
#: The robust z-score from which an integration's rate is unusual, and the rate's floor
#: as a multiple of the median rate.
_UNUSUAL_Z: Final = 3.5
_UNUSUAL_RATIO: Final = 2.0
#: Integrations needed for "unusual" to mean something.
_UNUSUAL_PEERS: Final = 4
_DAY: Final = 86_400.0
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
            rate_per_day=tally.logs / max(span / _DAY, 1.0),
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


# -- the analysis ------------------------------------------------------------------------------


def _overlaps(
    series: list[int], start: float, width: int, low: float, high: float
) -> Iterable[tuple[float, float, float]]:
    """``(middle, seconds, count)`` of each bucket clipped to ``[low, high]``."""
    for index, count in enumerate(series):
        begin = max(start + index * width, low)
        end = min(start + (index + 1) * width, high)
        if end > begin or (end == begin and count):
            yield (begin + end) / 2, max(end - begin, 1.0), float(count)


def _between(
    series: list[int],
    start: float,
    width: int,
    low: float,
    high: float,
    period: tuple[float, float],
) -> float:
    """Logs of ``series`` in ``[low, high]``, a bucket's count spread evenly over its
    part inside the period."""
    total = 0.0
    first, last = period
    for index, count in enumerate(series):
        if not count:
            continue
        begin = max(start + index * width, first)
        end = min(start + (index + 1) * width, last)
        if end <= begin:  # the whole period is one instant inside this bucket
            total += count if low <= begin <= high else 0
            continue
        inside = min(end, high) - max(begin, low)
        if inside > 0:
            total += count * inside / (end - begin)
    return total


def trend(series: list[int], start: float, width: int, period: tuple[float, float] | None) -> Trend:
    """How ``series`` (buckets of ``width`` seconds from ``start``) moved over ``period``."""
    if period is None or period[1] <= period[0]:
        return Trend(direction="few", first_third=0, last_third=0, change=None, slope_per_day=0.0)
    low, high = period
    third = (high - low) / 3
    first = round(_between(series, start, width, low, low + third, period))
    last = round(_between(series, start, width, high - third, high, period))
    change = last / first - 1 if first else None
    return Trend(
        direction=direction(first, last),
        first_third=first,
        last_third=last,
        change=change,
        slope_per_day=_slope(series, start, width, period),
    )


def direction(first: int, last: int) -> Direction:
    """``rising``/``falling`` when ``last`` differs from ``first`` by half or more, beyond
    three standard deviations of the difference of two Poisson counts."""
    both = first + last
    if both < 10:
        return "few"
    z = (last - first) / math.sqrt(both)
    if z >= 3 and last >= 1.5 * first:
        return "rising"
    if z <= -3 and last * 1.5 <= first:
        return "falling"
    return "steady"


def _slope(series: list[int], start: float, width: int, period: tuple[float, float]) -> float:
    """Weighted least-squares slope of the daily rate over time (logs a day, per day)."""
    points = [
        (middle / _DAY, count / (seconds / _DAY), seconds)
        for middle, seconds, count in _overlaps(series, start, width, *period)
    ]
    weight = sum(w for _, _, w in points)
    if len(points) < 2 or weight <= 0:
        return 0.0
    mean_x = sum(x * w for x, _, w in points) / weight
    mean_y = sum(y * w for _, y, w in points) / weight
    var = sum(w * (x - mean_x) ** 2 for x, _, w in points)
    if var <= 0:
        return 0.0
    return sum(w * (x - mean_x) * (y - mean_y) for x, y, w in points) / var


def status(
    logs: int, first: float, last: float, period: tuple[float, float]
) -> tuple[Status, float, float, float, float]:
    """An integration's status over ``period``, with the silences before its first log and
    after its last and the logs it would have had in each at its rate."""
    low, high = period
    span = high - low
    before = first - low
    after = high - last
    expected_before = logs / max(high - first, _MIN_QUIET) * before
    expected_after = logs / max(last - low, _MIN_QUIET) * after
    floor = max(span * _QUIET_SHARE, _MIN_QUIET)
    started = logs >= _MIN_LOGS and before >= floor and expected_before >= QUIET_EXPECTED
    stopped = logs >= _MIN_LOGS and after >= floor and expected_after >= QUIET_EXPECTED
    state: Status = (
        "episode"
        if started and stopped
        else "started"
        if started
        else "stopped"
        if stopped
        else "ongoing"
    )
    return state, before, expected_before, after, expected_after


def robust_scores(values: list[float]) -> list[float] | None:
    """Iglewicz and Hoaglin's modified z-score of each value (``0.6745 (x - median) / MAD``;
    with a MAD of 0, ``(x - median) / (1.2533 × mean absolute deviation)``); ``None`` when
    the values do not spread at all."""
    if not values:
        return None
    middle = statistics.median(values)
    deviations = [abs(v - middle) for v in values]
    mad = statistics.median(deviations)
    if mad > 0:
        return [0.6745 * (v - middle) / mad for v in values]
    mean_ad = sum(deviations) / len(deviations)
    if mean_ad > 0:
        return [(v - middle) / (1.253314 * mean_ad) for v in values]
    return None


def analyse(
    integrations: list[IntegrationReport], period: tuple[float, float] | None
) -> list[IntegrationReport]:
    """The integrations with their status, robust score and unusual flag set."""
    peers = [i for i in integrations if not i.other and i.last_seen is not None]
    scores = None
    median_rate = 0.0
    if len(peers) >= _UNUSUAL_PEERS:
        scores = robust_scores([math.log1p(i.rate_per_day) for i in peers])
        median_rate = statistics.median(i.rate_per_day for i in peers)
    score_of = {id(i): s for i, s in zip(peers, scores or [], strict=False)}
    for item in integrations:
        if period is not None and item.first_seen and item.last_seen and not item.other:
            item.status = status(
                item.logs, item.first_seen.timestamp(), item.last_seen.timestamp(), period
            )[0]
        score = score_of.get(id(item))
        if score is not None:
            item.robust_z = round(score, 3)
            item.unusual = score >= _UNUSUAL_Z and item.rate_per_day >= _UNUSUAL_RATIO * median_rate
    return integrations


def describe(item: IntegrationReport) -> str:
    """How a report names an integration: ``#12 Nordic Coffee``, ``#12``, or what the row is."""
    if item.other:
        return "(other integrations)"
    if item.integration_id is None:
        return "(no integration)"
    return f"#{item.integration_id}" + (f" {item.name}" if item.name else "")


def duration(seconds: float) -> str:
    """``3.5 days``, ``14 hours``, ``35 minutes``: a silence's length for people."""
    if seconds >= 2 * _DAY:
        days = seconds / _DAY
        return f"{days:.0f} days" if days >= 10 else f"{days:.1f} days"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.0f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.0f} minutes"
    return f"{seconds:.0f} seconds"


def _day(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def findings(
    integrations: list[IntegrationReport], period: tuple[float, float] | None
) -> list[Finding]:
    """What the report found, most telling first: integrations that started failing (by
    date), that stopped failing, whose rate is unusual, that rise, that fall."""
    if period is None:
        return []
    started: list[Finding] = []
    stopped: list[Finding] = []
    unusual: list[Finding] = []
    moving: list[Finding] = []
    peers = [i.rate_per_day for i in integrations if not i.other and i.last_seen is not None]
    median_rate = statistics.median(peers) if peers else 0.0
    for item in integrations:
        if item.other or item.first_seen is None or item.last_seen is None:
            continue
        name = describe(item)
        _, before, expected_before, after, expected_after = status(
            item.logs, item.first_seen.timestamp(), item.last_seen.timestamp(), period
        )
        if item.status in ("started", "episode"):
            since = item.logs if item.status == "started" else None
            text = (
                f"{name} started failing at {_day(item.first_seen)}: "
                + (f"{since:,} logs since, " if since is not None else f"{item.logs:,} logs, ")
                + f"none in the {duration(before)} before"
            )
            started.append(
                Finding(
                    kind="started_failing",
                    integration_id=item.integration_id,
                    text=text,
                    at=item.first_seen,
                    logs=item.logs,
                    quiet_seconds=before,
                    expected=round(expected_before, 1),
                )
            )
        if item.status in ("stopped", "episode"):
            stopped.append(
                Finding(
                    kind="stopped_failing",
                    integration_id=item.integration_id,
                    text=f"{name} stopped failing after {_day(item.last_seen)}: no log in the "
                    f"{duration(after)} since (it had {item.logs:,})",
                    at=item.last_seen,
                    logs=item.logs,
                    quiet_seconds=after,
                    expected=round(expected_after, 1),
                )
            )
        if item.unusual:
            ratio = item.rate_per_day / median_rate if median_rate else math.inf
            unusual.append(
                Finding(
                    kind="unusual",
                    integration_id=item.integration_id,
                    text=f"{name} fails unusually often: {item.rate_per_day:,.0f} logs a day, "
                    f"{ratio:,.0f}× the median integration ({median_rate:,.1f} a day)",
                    logs=item.logs,
                    value=round(item.rate_per_day, 3),
                )
            )
        trend_ = item.trend
        if trend_.direction in ("rising", "falling") and item.status not in ("started", "stopped"):
            change = "new in the last third" if trend_.change is None else f"{trend_.change:+.0%}"
            moving.append(
                Finding(
                    kind=trend_.direction,
                    integration_id=item.integration_id,
                    text=f"{name} is {trend_.direction} ({change}): {trend_.last_third:,} logs "
                    f"in the last third of the period, {trend_.first_third:,} in the first",
                    logs=item.logs,
                    value=None if trend_.change is None else round(trend_.change, 4),
                )
            )
    started.sort(key=lambda f: f.at or datetime.min.replace(tzinfo=UTC))
    stopped.sort(key=lambda f: f.at or datetime.min.replace(tzinfo=UTC))
    unusual.sort(key=lambda f: -(f.value or 0.0))
    moving.sort(key=lambda f: (f.kind != "rising", -abs(f.value or math.inf)))
    return started + stopped + unusual + moving


def period_days(report: Report) -> float:
    """The report's period in days (0 without one)."""
    if report.first_seen is None or report.last_seen is None:
        return 0.0
    return (report.last_seen - report.first_seen) / timedelta(days=1)
