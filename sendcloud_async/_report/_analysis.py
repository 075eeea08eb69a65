"""The findings read off the report's counts: trends, statuses, unusual rates, and their text.

``ReportBuilder.finish()`` (``_stats``) hands each integration's counts here
(``analyse``, ``findings``). The period is from the first log to the last; an
integration *started failing* when it had no log for a long stretch at the start
of the period (at least a tenth of it, and at least an hour) in which, at the rate
it has had since, it would have had at least ``QUIET_EXPECTED`` logs (the chance of
such a silence by luck is below e⁻¹⁰); *stopped failing* is the same at the end.
Trends compare the first and the last third of the period (``trend``); *unusual* is
a robust z-score of the integrations' daily rates (``robust_scores``).

``describe``, ``duration`` and ``period_days`` say an integration, a silence and a
period the way every output of the report does.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from ._model import Direction, Finding, IntegrationReport, Report, Status, Trend

__all__ = [
    "DAY",
    "QUIET_EXPECTED",
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

#: Seconds in a day: rates are per day.
DAY: Final = 86_400.0
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
        (middle / DAY, count / (seconds / DAY), seconds)
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
    if seconds >= 2 * DAY:
        days = seconds / DAY
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
