"""Charts as inline SVG, drawn here in Python: no script draws them, nothing is fetched.

Each function returns one ``<svg>`` element as text. Colours are CSS classes
(``c0``…``c7`` for series, ``h1``…``h5`` for heat) that the page's stylesheet maps
to its light, dark and print palettes, so a chart has no ``style`` attribute (the
page's Content-Security-Policy allows none). A series of bars is one ``<path>``
(one sub-path per bar): a chart's size grows with its buckets, never with the
logs. Hover texts are ``<title>`` elements, which every browser shows natively.
Every text is escaped.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = [
    "Layer",
    "column_chart",
    "esc",
    "heatmap",
    "meter",
    "nice_step",
    "resample",
    "sparkline",
    "spread",
    "time_ticks",
]

_FONT: Final = 11
_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Month names, so that labels do not depend on the locale.
_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)
#: Tick steps of a time axis (seconds), smallest first.
_TIME_STEPS: Final = (
    60,
    300,
    900,
    1800,
    3600,
    7200,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86_400,
    2 * 86_400,
    7 * 86_400,
    14 * 86_400,
    28 * 86_400,
    91 * 86_400,
    182 * 86_400,
    364 * 86_400,
)


def esc(text: object) -> str:
    """``text`` escaped for HTML and SVG text and attribute values."""
    return html.escape(str(text), quote=True)


def _n(value: float) -> str:
    """A coordinate, short: ``12``, ``12.5``."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def nice_step(high: float, ticks: int = 4) -> float:
    """A step of 1, 2 or 5 × 10ⁿ that divides ``[0, high]`` into at most ``ticks`` parts."""
    if high <= 0:
        return 1.0
    raw = high / ticks
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * power >= raw:
            return max(float(factor * power), 1.0)
    return float(10 * power)  # pragma: no cover - the loop always returns


def resample(values: Sequence[int], cells: int) -> list[int]:
    """``values`` summed into at most ``cells`` consecutive groups of equal length (the
    last may be shorter): a long series drawn small keeps its total."""
    if cells <= 0 or not values:
        return []
    if len(values) <= cells:
        return list(values)
    size = math.ceil(len(values) / cells)
    return [sum(values[i : i + size]) for i in range(0, len(values), size)]


def spread(values: Sequence[int], cells: int) -> list[float]:
    """``values`` in exactly ``cells`` equal parts (a value straddling two parts is shared
    by them in proportion): a sparkline of any length without a short last part."""
    if cells <= 0 or not values:
        return []
    size = len(values) / cells
    out = [0.0] * cells
    for index, value in enumerate(values):
        if not value:
            continue
        begin, end = index / size, (index + 1) / size
        cell = int(begin)
        while begin < end and cell < cells:
            part = min(end, cell + 1) - begin
            out[cell] += value * part * size
            begin = cell + 1
            cell += 1
    return out


def time_ticks(start: float, end: float, most: int = 7) -> list[tuple[float, str]]:
    """Round instants between ``start`` and ``end`` (epoch seconds, UTC) to label an axis."""
    span = max(end - start, 1.0)
    step = next((s for s in _TIME_STEPS if span / s <= most), _TIME_STEPS[-1])
    first = math.ceil(start / step) * step
    ticks = []
    when = first
    while when <= end:
        moment = datetime.fromtimestamp(when, UTC)
        if step >= 86_400 or (moment.hour == 0 and moment.minute == 0):
            label = f"{_MONTHS[moment.month - 1]} {moment.day}"
        else:
            label = f"{moment:%H:%M}"
        ticks.append((float(when), label))
        when += step
    return ticks


@dataclass(frozen=True)
class Layer:
    """One series of a stacked chart: its colour class, its name and its counts."""

    css: str
    label: str
    values: Sequence[int]


def _frame(width: int, height: int, label: str, body: str) -> str:
    return (
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">{body}</svg>'
    )


def _y_axis(top: float, bottom: float, left: float, right: float, high: float) -> tuple[str, float]:
    """Grid lines and labels of a count axis; returns them and the axis maximum."""
    step = nice_step(high)
    ceiling = max(step * math.ceil(high / step), step)
    parts = []
    value = 0.0
    while value <= ceiling + 1e-9:
        y = bottom - (bottom - top) * value / ceiling
        parts.append(f'<path class="grid" d="M{_n(left)} {_n(y)}H{_n(right)}"/>')
        parts.append(
            f'<text class="tick" x="{_n(left - 4)}" y="{_n(y + 3.5)}" text-anchor="end">'
            f"{value:,.0f}</text>"
        )
        value += step
    return "".join(parts), ceiling


def column_chart(
    layers: Sequence[Layer],
    *,
    start: float,
    seconds: int,
    width: int = 960,
    height: int = 240,
    label: str,
    unit: str = "logs",
    hover: bool = True,
) -> str:
    """Stacked columns over time: bucket ``i`` covers ``start + i × seconds`` (epoch, UTC).

    With ``hover``, a transparent column over each bucket carries the hover text: its
    time, its total and its three largest layers.
    """
    count = max((len(layer.values) for layer in layers), default=0)
    left, right, top, bottom = 56.0, width - 8.0, 8.0, height - 22.0
    totals = [
        sum(layer.values[i] for layer in layers if i < len(layer.values)) for i in range(count)
    ]
    grid, ceiling = _y_axis(top, bottom, left, right, max(totals, default=0))
    parts = [grid]
    if count:
        step = (right - left) / count
        gap = step * 0.12 if step >= 3 else 0.0
        base = [0.0] * count
        for layer in layers:
            path = []
            for i, value in enumerate(layer.values):
                if value <= 0:
                    continue
                height_ = (bottom - top) * value / ceiling
                y = bottom - base[i] - height_
                base[i] += height_
                path.append(
                    f"M{_n(left + i * step + gap / 2)} {_n(y)}h{_n(step - gap)}v{_n(height_)}"
                    f"h{_n(gap - step)}z"
                )
            if path:
                parts.append(f'<path class="{layer.css}" d="{"".join(path)}"/>')
        end = start + count * seconds
        for when, text in time_ticks(start, end):
            x = left + (when - start) / seconds * step
            parts.append(f'<path class="axis" d="M{_n(x)} {_n(bottom)}v4"/>')
            parts.append(
                f'<text class="tick" x="{_n(x)}" y="{_n(bottom + 15)}" text-anchor="middle">'
                f"{esc(text)}</text>"
            )
        hits = []
        for i, total in enumerate(totals):
            if not total or not hover:
                continue
            begin = datetime.fromtimestamp(start + i * seconds, UTC)
            finish = begin + timedelta(seconds=seconds)
            ranked = sorted(
                ((layer.values[i], layer.label) for layer in layers if i < len(layer.values)),
                reverse=True,
            )[:3]
            detail = ", ".join(f"{name} {value:,}" for value, name in ranked if value)
            hits.append(
                f'<rect class="hit" x="{_n(left + i * step)}" y="{_n(top)}" width="{_n(step)}" '
                f'height="{_n(bottom - top)}"><title>{begin:%Y-%m-%d %H:%M}–{finish:%H:%M} UTC: '
                f"{total:,} {unit} ({esc(detail)})</title></rect>"
            )
        parts.extend(hits)
    parts.append(f'<path class="axis" d="M{_n(left)} {_n(bottom)}H{_n(right)}"/>')
    return _frame(width, height, label, "".join(parts))


def bar_chart(
    values: Sequence[int],
    labels: Sequence[str],
    *,
    width: int = 460,
    height: int = 180,
    label: str,
    every: int = 1,
    unit: str = "logs",
) -> str:
    """Columns of one series with a label under every ``every``-th column."""
    left, right, top, bottom = 48.0, width - 6.0, 8.0, height - 22.0
    grid, ceiling = _y_axis(top, bottom, left, right, max(values, default=0))
    parts = [grid]
    if values:
        step = (right - left) / len(values)
        gap = step * 0.2
        path = []
        hover = []
        for i, value in enumerate(values):
            x = left + i * step
            if value > 0:
                height_ = (bottom - top) * value / ceiling
                path.append(
                    f"M{_n(x + gap / 2)} {_n(bottom - height_)}h{_n(step - gap)}"
                    f"v{_n(height_)}h{_n(gap - step)}z"
                )
            hover.append(
                f'<rect class="hit" x="{_n(x)}" y="{_n(top)}" width="{_n(step)}" '
                f'height="{_n(bottom - top)}"><title>{esc(labels[i])}: {value:,} {unit}'
                "</title></rect>"
            )
            if i % every == 0:
                parts.append(
                    f'<text class="tick" x="{_n(x + step / 2)}" y="{_n(bottom + 15)}" '
                    f'text-anchor="middle">{esc(labels[i])}</text>'
                )
        if path:
            parts.append(f'<path class="c0" d="{"".join(path)}"/>')
        parts.extend(hover)
    parts.append(f'<path class="axis" d="M{_n(left)} {_n(bottom)}H{_n(right)}"/>')
    return _frame(width, height, label, "".join(parts))


def heatmap(hour_of_week: Sequence[int], *, width: int = 460, label: str) -> str:
    """Logs per weekday (rows, Monday first) and hour (columns), UTC: five shades of one
    colour by fifths of the busiest hour; an hour without logs is left blank."""
    left, top, cell = 34.0, 6.0, (width - 40.0) / 24
    height = int(top + 7 * cell + 20)
    high = max(hour_of_week, default=0)
    shades: dict[int, list[str]] = {}
    hover = []
    for index, value in enumerate(hour_of_week[:168]):
        day, hour = divmod(index, 24)
        x, y = left + hour * cell, top + day * cell
        if value > 0 and high > 0:
            shade = min(5, 1 + int(5 * value / (high + 1)))
            shades.setdefault(shade, []).append(
                f"M{_n(x + 0.5)} {_n(y + 0.5)}h{_n(cell - 1)}v{_n(cell - 1)}h{_n(1 - cell)}z"
            )
        hover.append(
            f'<rect class="hit" x="{_n(x)}" y="{_n(y)}" width="{_n(cell)}" height="{_n(cell)}">'
            f"<title>{_WEEKDAYS[day]} {hour:02d}:00–{hour:02d}:59 UTC: {value:,} logs</title>"
            "</rect>"
        )
    parts = [
        f'<rect class="well" x="{_n(left)}" y="{_n(top)}" width="{_n(24 * cell)}" '
        f'height="{_n(7 * cell)}"/>'
    ]
    parts.extend(
        f'<path class="h{shade}" d="{"".join(d)}"/>' for shade, d in sorted(shades.items())
    )
    for day, name in enumerate(_WEEKDAYS):
        parts.append(
            f'<text class="tick" x="{_n(left - 4)}" y="{_n(top + day * cell + cell / 2 + 3.5)}" '
            f'text-anchor="end">{name}</text>'
        )
    for hour in range(0, 24, 3):
        parts.append(
            f'<text class="tick" x="{_n(left + hour * cell + cell / 2)}" '
            f'y="{_n(top + 7 * cell + 14)}" text-anchor="middle">{hour:02d}</text>'
        )
    parts.extend(hover)
    return _frame(width, height, label, "".join(parts))


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 22, label: str) -> str:
    """A small area of ``values`` (already resampled to fit), scaled to its own maximum."""
    high = max(values, default=0)
    if not values or high <= 0:
        return _frame(width, height, label, "")
    step = width / len(values)
    steps = []
    for i, value in enumerate(values):
        y = _n(height - 1 - (height - 2) * value / high)
        steps.append(f"{_n(i * step)} {y}H{_n((i + 1) * step)}")
    body = f'<path class="spark" d="M0 {height}L{"L".join(steps)}V{height}z"/>'
    return _frame(width, height, label, body)


def meter(share: float) -> str:
    """A bar of ``share`` (0..1) of its width, for a row of a top list (its track is the
    element's background)."""
    filled = max(0.0, min(1.0, share)) * 100
    return (
        '<svg class="meter" viewBox="0 0 100 1" preserveAspectRatio="none" aria-hidden="true" '
        f'xmlns="http://www.w3.org/2000/svg"><path class="c0" d="M0 0h{_n(filled)}v1H0z"/></svg>'
    )
