"""``--html FILE``: the report as one self-contained page.

The page holds everything it shows: the charts are inline SVG drawn here (``_svg``),
the stylesheet and the few lines of script that sort and filter the integrations
table are inline (``_html_assets``), and its Content-Security-Policy (``default-src
'none'``, the style and the script allowed by their SHA-256) lets the browser fetch
nothing at all, so it opens from disk, offline, in any browser. It carries
aggregates only (counts per bucket, top lists, one row per integration), never a
log, so its size depends on the number of integrations and buckets, not on the
number of logs.

Light and dark follow the viewer's setting (``prefers-color-scheme``); print uses
the light palette on A4, without the filter box and the drill-down rows. The
drill-down needs no script either: each integration's name links to its row of
details, which CSS shows while it is the page's target (``:target``). Only the
``MAX_DETAILS`` integrations with the most logs have such a row.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from .._version import __version__
from ._analysis import describe, duration, period_days
from ._html_assets import SCRIPT, STYLE, content_policy
from ._model import IntegrationReport, Ranked, Report
from ._svg import Layer, bar_chart, column_chart, esc, heatmap, meter, resample, sparkline, spread

__all__ = ["MAX_DETAILS", "render_html"]

#: Integrations (the most logs first) with a row of details in the table.
MAX_DETAILS: Final = 250
#: Integrations drawn one by one in the chart over time; the rest are one layer.
_LAYERS: Final = 7
#: Columns at most of the chart over time, of an integration's chart, of a sparkline.
_TIME_CELLS: Final = 200
_DETAIL_CELLS: Final = 90
_SPARK_CELLS: Final = 30

_STATUS: Final = {
    "started": "started failing",
    "stopped": "stopped failing",
    "episode": "started and stopped",
    "ongoing": "failing throughout",
}
_HEADINGS: Final = {
    "started_failing": "Started failing",
    "stopped_failing": "Stopped failing",
    "unusual": "Unusually many logs",
    "rising": "Rising",
    "falling": "Falling",
}


def _when(value: datetime | None, *, seconds: bool = False) -> str:
    if value is None:
        return "–"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def _pct(share: float) -> str:
    return f"{share * 100:.1f}%"


def _trend(item: IntegrationReport) -> tuple[str, str, float]:
    """The trend as shown, its CSS class and its sort value."""
    trend = item.trend
    if trend.direction == "few":
        return "–", "", 0.0
    arrow = {"rising": "↑", "falling": "↓"}.get(trend.direction, "→")
    css = {"rising": "up", "falling": "down"}.get(trend.direction, "")
    if trend.change is None:
        return f"{arrow} new", css, 1e9
    return f"{arrow} {trend.change * 100:+.0f}%", css, trend.change


def _value(text: str, empty: str) -> str:
    return f"<code>{esc(text)}</code>" if text else f'<span class="muted">{esc(empty)}</span>'


def _top_table(items: Sequence[Ranked], *, empty: str, head: str) -> str:
    if not items:
        return '<p class="none">None.</p>'
    rows = []
    for item in items:
        count = f"{item.count:,}"
        title = ""
        if item.error:
            count = f"≈ {count}"
            title = f' title="at most {item.error:,} too many"'
        rows.append(
            f'<tr><td class="v">{_value(item.value, empty)}</td><td class="n"{title}>{count}</td>'
            f'<td class="n">{_pct(item.share)}</td><td>{meter(item.share)}</td></tr>'
        )
    note = (
        '<p class="muted">≈: an estimate (see the notes below).</p>'
        if any(item.error for item in items)
        else ""
    )
    return (
        f'<table class="top"><thead><tr><th>{esc(head)}</th><th class="n">logs</th>'
        f'<th class="n">share</th><th></th></tr></thead><tbody>{"".join(rows)}</tbody></table>'
        + note
    )


def _cards(report: Report) -> str:
    days = period_days(report)
    counted = [i for i in report.integrations if not i.other]
    started = sum(1 for f in report.findings if f.kind == "started_failing")
    stopped = sum(1 for f in report.findings if f.kind == "stopped_failing")
    top_type = report.exception_types[0] if report.exception_types else None
    top_code = report.response_codes[0] if report.response_codes else None
    cards = [
        (f"{report.logs:,}", "exception logs"),
        (
            f"{len(counted):,}",
            "integrations" + (" (and others)" if len(counted) < len(report.integrations) else ""),
        ),
        (f"{days:,.1f} days" if days >= 1 else duration(days * 86_400), "period, UTC"),
        (f"{started} / {stopped}", "started / stopped failing"),
        (
            _pct(top_type.share) if top_type else "–",
            "top exception type: " + ((top_type.value or "(none)") if top_type else "–"),
        ),
        (
            _pct(top_code.share) if top_code else "–",
            "top response code: " + ((top_code.value or "none") if top_code else "–"),
        ),
    ]
    return (
        '<section class="cards">'
        + "".join(f'<div class="card"><b>{esc(v)}</b><span>{esc(k)}</span></div>' for v, k in cards)
        + "</section>"
    )


def _findings(report: Report) -> str:
    if not report.findings:
        return (
            '<p class="none">Nothing stands out: no integration started or stopped failing '
            "in the period, none fails unusually often, none is rising or falling.</p>"
        )
    groups: dict[str, list[str]] = {}
    for finding in report.findings:
        groups.setdefault(finding.kind, []).append(
            f'<li><a href="#i-{esc(finding.integration_id)}">{esc(finding.text)}</a></li>'
            if finding.integration_id is not None
            else f"<li>{esc(finding.text)}</li>"
        )
    return "".join(
        f'<h3 class="{kind}">{esc(_HEADINGS[kind])}</h3><ul class="findings">{"".join(items)}</ul>'
        for kind, items in groups.items()
    )


def _swatch(css: str) -> str:
    return (
        f'<svg class="swatch" viewBox="0 0 10 10" aria-hidden="true" '
        f'xmlns="http://www.w3.org/2000/svg"><rect class="{css}" width="10" height="10"/></svg>'
    )


def _over_time(report: Report) -> str:
    timeline = report.timeline
    if timeline is None or not report.series:
        return '<p class="none">No log has a time.</p>'
    named = [i for i in report.integrations if not i.other][:_LAYERS]
    drawn = {id(i) for i in named}
    rest = [i for i in report.integrations if id(i) not in drawn]
    group = max(-(-len(report.series) // _TIME_CELLS), 1)  # buckets per column (``resample``)
    layers = [
        Layer(f"c{n}", describe(item), resample(item.series, _TIME_CELLS))
        for n, item in enumerate(named)
    ]
    if rest:
        others = [sum(col) for col in zip(*(i.series for i in rest), strict=True)]
        layers.append(
            Layer("c7", f"{len(rest):,} other integrations", resample(others, _TIME_CELLS))
        )
    chart = column_chart(
        layers,
        start=timeline.start.timestamp(),
        seconds=timeline.seconds * group,
        label="Exception logs over time, stacked by integration",
    )
    legend = "".join(f"<li>{_swatch(layer.css)}{esc(layer.label)}</li>" for layer in layers)
    return (
        f'<figure>{chart}<figcaption class="muted">Logs per {esc(_per(timeline.seconds * group))}'
        " (UTC), stacked by integration; hover a column for its numbers.</figcaption>"
        f'<ul class="legend">{legend}</ul></figure>'
    )


def _per(seconds: int) -> str:
    if seconds % 86_400 == 0:
        days = seconds // 86_400
        return "day" if days == 1 else f"{days} days"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return "hour" if hours == 1 else f"{hours} hours"
    minutes = seconds // 60
    return "minute" if minutes == 1 else f"{minutes} minutes"


def _when_charts(report: Report) -> str:
    hours = [sum(report.hour_of_week[day * 24 + hour] for day in range(7)) for hour in range(24)]
    by_hour = bar_chart(
        hours,
        [f"{h:02d}:00" for h in range(24)],
        label="Exception logs by hour of the day, UTC",
        every=3,
    )
    week = heatmap(report.hour_of_week, label="Exception logs by weekday and hour, UTC")
    return (
        '<div class="grid">'
        f"<figure><figcaption>By hour of the day (UTC)</figcaption>{by_hour}</figure>"
        f"<figure><figcaption>By weekday and hour (UTC)</figcaption>{week}</figure>"
        "</div>"
    )


def _errors(report: Report) -> str:
    return (
        '<div class="grid">'
        "<figure><figcaption>Exception types</figcaption>"
        + _top_table(report.exception_types, empty="(none)", head="type")
        + "</figure><figure><figcaption>Response codes</figcaption>"
        + _top_table(report.response_codes, empty="none", head="code")
        + "</figure></div>"
    )


def _row(item: IntegrationReport, detailed: bool) -> str:
    name = describe(item)
    ident = "other" if item.other else str(item.integration_id)
    trend_text, trend_css, trend_value = _trend(item)
    top_type = item.exception_types[0].value if item.exception_types else ""
    short_type = top_type.rpartition(".")[2]
    top_code = item.response_codes[0].value if item.response_codes else ""
    status = _STATUS[item.status] + (", unusual" if item.unusual else "")
    search = " ".join([name, top_type, top_code, status, trend_text]).lower()
    link = f'<a href="#i-{esc(ident)}">{esc(name)}</a>' if detailed else esc(name)
    spark = sparkline(spread(item.series, _SPARK_CELLS), label=f"activity of {name}")
    spark = spark.replace('class="chart"', 'class="spark-box"', 1)
    cells = [
        (link, name.lower(), ""),
        (f"{item.logs:,}", str(item.logs), "n"),
        (_pct(item.share), f"{item.share:.6f}", "n"),
        (f"{item.rate_per_day:,.1f}", f"{item.rate_per_day:.3f}", "n"),
        (_when(item.first_seen), _when(item.first_seen, seconds=True), "t"),
        (_when(item.last_seen), _when(item.last_seen, seconds=True), "t"),
        (f'<span class="{trend_css}">{esc(trend_text)}</span>', f"{trend_value:.6f}", "n"),
        (esc(status), status, ""),
        (
            f'<code title="{esc(top_type)}">{esc(short_type)}</code>'
            if top_type
            else _value("", "(none)"),
            top_type,
            "",
        ),
        (esc(top_code or "none"), top_code, ""),
        (spark, "", ""),
    ]
    tds = "".join(
        f'<td class="{css}" data-v="{esc(value)}">{shown}</td>'
        if css
        else f'<td data-v="{esc(value)}">{shown}</td>'
        for shown, value, css in cells
    )
    return f'<tr class="row" data-s="{esc(search)}">{tds}</tr>'


def _detail(item: IntegrationReport, report: Report) -> str:
    ident = "other" if item.other else str(item.integration_id)
    timeline = report.timeline
    chart = ""
    if timeline is not None and item.series:
        cells = resample(item.series, _DETAIL_CELLS)
        group = -(-len(item.series) // _DETAIL_CELLS)  # buckets per cell, as ``resample`` sums
        seconds = timeline.seconds * max(group, 1)
        chart = column_chart(
            [Layer("c0", describe(item), cells)],
            start=timeline.start.timestamp(),
            seconds=seconds,
            height=160,
            label=f"Exception logs of {describe(item)} over time",
            hover=False,
        )
    trend = item.trend
    facts = [
        f"{item.logs:,} logs ({_pct(item.share)}), {item.rate_per_day:,.1f} a day while failing",
        f"first {_when(item.first_seen, seconds=True)} UTC, last "
        f"{_when(item.last_seen, seconds=True)} UTC",
        f"{_STATUS[item.status]}; trend {trend.direction}: {trend.first_third:,} logs in the "
        f"first third of the period, {trend.last_third:,} in the last "
        f"(slope {trend.slope_per_day:+,.1f} logs a day, per day)",
    ]
    if item.robust_z is not None:
        score = f"{item.robust_z:+.1f}" if abs(item.robust_z) < 100 else f"{item.robust_z:+.0e}"
        facts.append(
            f"robust z-score of its daily rate {score}" + (" — unusual" if item.unusual else "")
        )
    return (
        f'<tr class="more" id="i-{esc(ident)}"><td colspan="11">'
        f"<h3>{esc(describe(item))}</h3>"
        + "".join(f"<p>{esc(fact)}</p>" for fact in facts)
        + chart
        + '<div class="detail"><div><h3>Exception types</h3>'
        + _top_table(item.exception_types, empty="(none)", head="type")
        + "</div><div><h3>Response codes</h3>"
        + _top_table(item.response_codes, empty="none", head="code")
        + "</div></div><h3>Messages (similar ones grouped)</h3>"
        + _top_table(item.messages, empty="(no message)", head="message")
        + "</td></tr>"
    )


def _table(report: Report) -> str:
    heads = [
        ("integration", ""),
        ("logs", "n"),
        ("share", "n"),
        ("a day", "n"),
        ("first seen", ""),
        ("last seen", ""),
        ("trend", "n"),
        ("status", ""),
        ("top exception type", ""),
        ("code", ""),
    ]
    ths = "".join(
        f'<th data-k="{k}"' + (f' class="{css}"' if css else "") + f">{esc(name)}</th>"
        for k, (name, css) in enumerate(heads)
    )
    ths = ths.replace('data-k="1" class="n">', 'data-k="1" class="n" aria-sort="descending">', 1)
    rows = []
    for n, item in enumerate(report.integrations):
        detailed = n < MAX_DETAILS
        rows.append(_row(item, detailed))
        if detailed:
            rows.append(_detail(item, report))
    total = len(report.integrations)
    note = (
        ""
        if total <= MAX_DETAILS
        else f'<p class="muted">Details are shown for the {MAX_DETAILS:,} integrations with the '
        "most logs; --json has every one.</p>"
    )
    return (
        '<div class="tools"><input type="search" id="filter" placeholder="Filter: id, name, '
        'exception, code, status…" aria-label="Filter the integrations">'
        f'<span class="muted"><span id="shown">{total:,}</span> of {total:,} shown; click a '
        "name for its details, a heading to sort</span></div>"
        f'<table id="integrations"><thead><tr>{ths}<th>activity</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{note}"
    )


def _notes(report: Report) -> str:
    counts = (
        "Every count is exact."
        if report.exact
        else "The top lists count in fixed memory (Space-Saving): a value marked ≈ may be "
        "counted too high by at most the amount its hover text says; every value above that "
        "bound is listed. Totals, shares of integrations and the charts are exact."
    )
    untimed = (
        f" {report.logs_without_time:,} logs have no time and are in no chart."
        if report.logs_without_time
        else ""
    )
    return (
        "<footer><p>"
        + esc(counts + untimed)
        + "</p><p>"
        + esc(
            "Messages are grouped by their masked text: numbers, ids, UUIDs, hexadecimal "
            "runs, e-mail and IP addresses, host names of URLs and the values of their query "
            "strings are masked, so the page holds no order number, address or token of a "
            "log. Times are UTC. A period's first and last thirds give each trend; an "
            "integration started (or stopped) failing when, at its own rate, it would have "
            "logged at least ten times in a long silence before its first log (or after its "
            "last)."
        )
        + f"</p><p>Generated {esc(_when(report.generated_at))} UTC by sendcloud-async "
        f"{esc(__version__)} from {esc(report.source)}.</p></footer>"
    )


def render_html(report: Report) -> str:
    """The page of ``report`` (UTF-8 text)."""
    policy = content_policy()
    days = period_days(report)
    period = (
        f"{_when(report.first_seen)} → {_when(report.last_seen)} UTC ({days:,.1f} days)"
        if report.first_seen is not None
        else "no time"
    )
    title = f"What is failing: {report.source}"
    sections = [
        f'<header><h1>What is failing</h1><p class="sub">{report.logs:,} exception logs · '
        f"{esc(period)} · from {esc(report.source)}</p>"
        '<nav><a href="#findings">Findings</a><a href="#time">Over time</a>'
        '<a href="#when">When</a><a href="#errors">Errors</a><a href="#messages">Messages</a>'
        '<a href="#endpoints">Endpoints</a><a href="#table">Integrations</a></nav></header>',
        _cards(report),
        f'<section id="findings"><h2>Findings</h2>{_findings(report)}</section>',
        f'<section id="time"><h2>Logs over time</h2>{_over_time(report)}</section>',
        f'<section id="when"><h2>When in the day and the week</h2>{_when_charts(report)}</section>',
        f'<section id="errors"><h2>Exception types and response codes</h2>{_errors(report)}'
        "</section>",
        '<section id="messages"><h2>Messages, similar ones grouped</h2>'
        + _top_table(report.messages, empty="(no message)", head="message")
        + "</section>",
        '<section id="endpoints"><h2>Endpoints of the failed requests</h2>'
        + _top_table(report.endpoints, empty="(no URL)", head="request")
        + "</section>",
        f'<section id="table"><h2>Integrations</h2>{_table(report)}</section>',
        _notes(report),
    ]
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(policy)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light dark">'
        f'<meta name="generator" content="sendcloud-async {esc(__version__)}">'
        f"<title>{esc(title)}</title><style>{STYLE}</style></head>\n<body>"
        + "\n".join(sections)
        + f"\n<script>{SCRIPT}</script></body></html>\n"
    )
