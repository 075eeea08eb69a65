"""Draw ``docs/img/observability-dashboard.svg``: what ``--metrics`` shows during a real run.

Regenerate it from the repository's root with::

    python docs/observability_picture.py

(``--seconds`` changes the length of the run, ``--out`` where the picture goes.)

It starts a ``FakeSendcloud`` on 127.0.0.1 with four accounts (``shop-1`` …
``shop-4``, the accounts of ``sendcloud-async fake serve``) that keeps adding
logs, and some chaos: a few requests answered 503 or 429 (``Retry-After: 1``),
a few held back 0.4 s. It runs ``python -m sendcloud_async logs watch --accounts
… --interval 1 --metrics 127.0.0.1:0`` against it as a real process, scrapes
``/metrics`` every half second for 30 seconds, and draws four panels as a
dashboard would: requests a second by status, request duration p50/p95 (from
the histogram's buckets), retries and rate-gate waits a second, and the watch's
lag per account. The SVG is self-contained (no font, script or image is fetched).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import re
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import aiohttp

from sendcloud_async._cli.fake_serve import accounts_toml, fake_accounts
from sendcloud_async._report._svg import esc

__all__ = ["Dashboard", "Line", "Panel", "Scrape", "dashboard_panels", "parse", "render", "run"]

OUT: Final = Path(__file__).parent / "img" / "observability-dashboard.svg"
ACCOUNTS: Final = 4
LOGS_PER_SECOND: Final = 12.0
#: Chaos of the fake: the share of API requests answered with each fault.
CHAOS: Final = {"status_503": 0.04, "status_429": 0.02, "delay": 0.02}
#: Seconds of a ``delay`` fault, and the ``Retry-After`` of a chaos 429 or 503.
DELAY: Final = 0.25
RETRY_AFTER: Final = "1"
#: Seconds between scrapes, and the window of the rates and quantiles (as ``rate(…[5s])``).
SCRAPE_EVERY: Final = 0.5
WINDOW: Final = 5.0
_BOUND: Final = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")
_SAMPLE: Final = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL: Final = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')

Labels = frozenset[tuple[str, str]]


# -- reading the page ---------------------------------------------------------------------


def parse(text: str) -> dict[tuple[str, Labels], float]:
    """The samples of a Prometheus text page (0.0.4): ``(name, labels) -> value``."""
    samples: dict[tuple[str, Labels], float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if match is None:
            raise ValueError(f"not a Prometheus sample line: {line!r}")
        name, labels, value = match.groups()
        pairs = frozenset(
            (key, raw.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
            for key, raw in _LABEL.findall(labels or "")
        )
        samples[(name, pairs)] = float(value)
    return samples


@dataclass(frozen=True, slots=True)
class Scrape:
    """One scrape: seconds since the first, and its samples."""

    at: float
    samples: dict[tuple[str, Labels], float]

    def summed(self, name: str, by: str, **where: str) -> dict[str, float]:
        """The samples called ``name`` summed by the value of label ``by`` (``""`` if absent),
        keeping those whose labels match ``where``."""
        out: dict[str, float] = {}
        for (sample, labels), value in self.samples.items():
            if sample != name:
                continue
            found = dict(labels)
            if any(found.get(key) != wanted for key, wanted in where.items()):
                continue
            key = found.get(by, "")
            out[key] = out.get(key, 0.0) + value
        return out


# -- turning scrapes into series ------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One series of a panel: its legend and its points ``(seconds, value)``."""

    label: str
    points: Sequence[tuple[float, float]]


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel: its title, the unit of its y axis, its lines."""

    title: str
    unit: str
    lines: Sequence[Line]


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Four panels (drawn 2 × 2, row by row), a title and a caption under it."""

    title: str
    caption: str
    panels: Sequence[Panel]


def _behind(scrapes: Sequence[Scrape], index: int) -> Scrape:
    """The scrape about ``WINDOW`` seconds before ``scrapes[index]`` (the first, early on)."""
    now = scrapes[index].at
    for earlier in reversed(scrapes[:index]):
        if now - earlier.at >= WINDOW - 1e-6:
            return earlier
    return scrapes[0]


def _full(scrapes: Sequence[Scrape]) -> range:
    """The indexes of the scrapes that have a whole window behind them (as a dashboard's
    ``rate(…[5s])``, nothing is drawn before)."""
    first = next(
        (i for i, s in enumerate(scrapes) if s.at - scrapes[0].at >= WINDOW - 1e-6), len(scrapes)
    )
    return range(first, len(scrapes))


def _rates(
    scrapes: Sequence[Scrape], name: str, by: str, rename: Callable[[str], str] = str
) -> list[Line]:
    """Per-second increase of counter ``name`` over the window, a line per value of ``by``."""
    keys: set[str] = set()
    for scrape in scrapes:
        keys.update(scrape.summed(name, by))
    lines = []
    for key in sorted(keys):
        points = []
        for index in _full(scrapes):
            before, now = _behind(scrapes, index), scrapes[index]
            span = now.at - before.at
            grown = now.summed(name, by).get(key, 0.0) - before.summed(name, by).get(key, 0.0)
            points.append((now.at, max(grown, 0.0) / span if span > 0 else 0.0))
        lines.append(Line(rename(key), points))
    return lines


def _quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """``histogram_quantile``: ``buckets`` are ``(upper bound, cumulative count)``, sorted."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bound: its bound, as Prometheus does
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 0.0)
        lower, below = bound, count
    return lower  # pragma: no cover - the last bucket holds every count


def _quantiles(scrapes: Sequence[Scrape], name: str, qs: Sequence[float]) -> list[Line]:
    """Quantiles (ms) over the window of histogram ``name``, all its series summed."""
    lines: list[list[tuple[float, float]]] = [[] for _ in qs]
    for index in _full(scrapes):
        before, now = _behind(scrapes, index), scrapes[index]
        old = before.summed(f"{name}_bucket", "le")
        new = now.summed(f"{name}_bucket", "le")
        buckets = sorted((float(le), new[le] - old.get(le, 0.0)) for le in new)
        for line, q in zip(lines, qs, strict=True):
            value = _quantile(q, buckets)
            if value is not None:
                line.append((now.at, value * 1000))
    return [Line(f"p{round(q * 100)}", points) for q, points in zip(qs, lines, strict=True)]


def _gauges(scrapes: Sequence[Scrape], name: str, by: str) -> list[Line]:
    keys: set[str] = set()
    for scrape in scrapes:
        keys.update(scrape.summed(name, by))
    return [
        Line(key, [(s.at, s.summed(name, by)[key]) for s in scrapes if key in s.summed(name, by)])
        for key in sorted(keys)
    ]


def dashboard_panels(scrapes: Sequence[Scrape]) -> list[Panel]:
    """The four panels of a run's scrapes."""
    duration = "http_client_request_duration_seconds"
    requests = _rates(
        scrapes,
        f"{duration}_count",
        "http_response_status_code",
        lambda status: status or "no answer",
    )
    retries = _rates(
        scrapes, "sendcloud_client_retries_total", "sendcloud_retry_cause", "retry: {}".format
    )
    # One line even when no request waited: a gate that never closed shows as 0.
    waited = _rates(scrapes, "sendcloud_client_rate_gate_wait_seconds_count", "")
    waits = [
        Line(
            "rate-gate waits",
            waited[0].points if waited else [(scrapes[i].at, 0.0) for i in _full(scrapes)],
        )
    ]
    return [
        Panel("Requests a second, by status", "req/s", requests),
        Panel("Request duration (p50, p95)", "ms", _quantiles(scrapes, duration, (0.5, 0.95))),
        Panel("Retries and rate-gate waits a second", "/s", [*retries, *waits]),
        Panel(
            "Watch lag per account",
            "s",
            _gauges(scrapes, "sendcloud_watch_lag_seconds", "sendcloud_account"),
        ),
    ]


# -- drawing ----------------------------------------------------------------------------------

WIDTH: Final = 960
PANEL_W: Final = 460
PANEL_H: Final = 250
GAP: Final = 13
HEAD: Final = 54
#: Series colours: dark enough to read on white, apart from each other.
COLOURS: Final = (
    "#1f6fb2",
    "#d9480f",
    "#2b8a3e",
    "#7048e8",
    "#c2255c",
    "#0c8599",
    "#8f6f00",
    "#495057",
)
_FONT: Final = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif"


def _f(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _axis_top(high: float) -> tuple[float, float]:
    """A round top for a y axis of values up to ``high``, and its step (1, 2 or 5 × 10ⁿ)."""
    if high <= 0:
        return 1.0, 0.25
    raw = high / 4
    power = 10 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1, 2, 5, 10) if f * power >= raw)
    return step * math.ceil(high / step - 1e-9), step


def _label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step))) if step < 1 else 0
    return f"{value:,.{decimals}f}"


def _panel(panel: Panel, x: float, y: float, start: float, end: float) -> str:
    left, right = x + 50, x + PANEL_W - 12
    top, bottom = y + 34, y + PANEL_H - 46
    high = max((v for line in panel.lines for _, v in line.points), default=0.0)
    ceiling, step = _axis_top(high)
    span = max(end - start, 1e-9)
    parts = [
        f'<g class="panel"><rect x="{_f(x)}" y="{_f(y)}" width="{PANEL_W}" height="{PANEL_H}" '
        'rx="4" fill="#ffffff" stroke="#d0d4d9"/>',
        f'<text x="{_f(x + 12)}" y="{_f(y + 21)}" font-size="14" font-weight="600" '
        f'fill="#1d2125">{esc(panel.title)}<tspan font-weight="400" fill="#5c636a"> '
        f"({esc(panel.unit)})</tspan></text>",
    ]
    ticks = round(ceiling / step)
    for i in range(ticks + 1):
        value = i * step
        ty = bottom - (bottom - top) * value / ceiling
        parts.append(
            f'<path d="M{_f(left)} {_f(ty)}H{_f(right)}" stroke="#e9ecef"/>'
            f'<text x="{_f(left - 6)}" y="{_f(ty + 3.5)}" font-size="10" fill="#5c636a" '
            f'text-anchor="end">{_label(value, step)}</text>'
        )
    second = 5.0 if span > 12 else 1.0
    tick = math.ceil(start / second - 1e-9) * second
    while tick <= end + 1e-9:
        tx = left + (right - left) * (tick - start) / span
        parts.append(
            f'<path d="M{_f(tx)} {_f(bottom)}v4" stroke="#868e96"/>'
            f'<text x="{_f(tx)}" y="{_f(bottom + 15)}" font-size="10" fill="#5c636a" '
            f'text-anchor="middle">{tick:.0f} s</text>'
        )
        tick += second
    parts.append(f'<path d="M{_f(left)} {_f(bottom)}H{_f(right)}" stroke="#868e96"/>')
    legend_x = left
    for index, line in enumerate(panel.lines):
        colour = COLOURS[index % len(COLOURS)]
        if line.points:
            d = "L".join(
                f"{_f(left + (right - left) * (t - start) / span)} "
                f"{_f(bottom - (bottom - top) * v / ceiling)}"
                for t, v in line.points
            )
            parts.append(
                f'<path d="M{d}" fill="none" stroke="{colour}" stroke-width="1.8" '
                'stroke-linejoin="round"><title>'
                f"{esc(line.label)}</title></path>"
            )
        latest = f" {line.points[-1][1]:,.2f}" if line.points else " no data"
        text = f"{line.label}{latest}"
        parts.append(
            f'<path d="M{_f(legend_x)} {_f(bottom + 32)}h14" stroke="{colour}" stroke-width="3"/>'
            f'<text x="{_f(legend_x + 18)}" y="{_f(bottom + 35.5)}" font-size="11" '
            f'fill="#1d2125">{esc(text)}</text>'
        )
        legend_x += 26 + 6.2 * len(text)
    if not panel.lines:
        parts.append(
            f'<text x="{_f((left + right) / 2)}" y="{_f((top + bottom) / 2)}" font-size="12" '
            'fill="#868e96" text-anchor="middle">no data</text>'
        )
    parts.append("</g>")
    return "".join(parts)


def render(dashboard: Dashboard) -> str:
    """The dashboard as one self-contained SVG document."""
    if len(dashboard.panels) != 4:
        raise ValueError(f"a dashboard has 4 panels, got {len(dashboard.panels)}")
    times = [t for panel in dashboard.panels for line in panel.lines for t, _ in line.points]
    start, end = (min(times), max(times)) if times else (0.0, 1.0)
    captions = dashboard.caption.splitlines()
    head = HEAD + 15 * (len(captions) - 1)
    height = head + 2 * PANEL_H + 2 * GAP
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n',
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-label="{esc(dashboard.title)}" '
        f'style="{_FONT}">',
        f"<title>{esc(dashboard.title)}</title>",
        f'<rect width="{WIDTH}" height="{height}" fill="#f4f5f7"/>',
        f'<text x="{GAP}" y="24" font-size="17" font-weight="700" fill="#1d2125">'
        f"{esc(dashboard.title)}</text>",
    ]
    parts.extend(
        f'<text x="{GAP}" y="{43 + 15 * i}" font-size="11.5" fill="#5c636a">{esc(text)}</text>'
        for i, text in enumerate(captions)
    )
    for index, panel in enumerate(dashboard.panels):
        row, column = divmod(index, 2)
        x = GAP + column * (PANEL_W + GAP + 1)
        y = head + row * (PANEL_H + GAP)
        parts.append(_panel(panel, x, y, start, end))
    parts.append("</svg>\n")
    return "".join(parts)


# -- the run ----------------------------------------------------------------------------------


async def _scrape(session: aiohttp.ClientSession, url: str) -> str:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.text()


async def run(seconds: float) -> tuple[list[Scrape], str]:
    """Watch a chaotic fake for ``seconds``, scraping ``/metrics``; the scrapes and a caption."""
    from sendcloud_async.testing import FakeSendcloud

    fake = FakeSendcloud(validate_spec=False)
    await fake.start()
    try:
        fake.seed(integrations=ACCOUNTS, logs_per_integration=0)
        accounts = fake_accounts(ACCOUNTS, 0, "basic")
        for account in accounts:
            fake.add_account(account.key, account.secret)
        producer = fake.produce(LOGS_PER_SECOND, seed=0)
        fake.chaos(7, CHAOS, delay=DELAY, retry_after=RETRY_AFTER)
        with tempfile.TemporaryDirectory() as tmp:
            toml = Path(tmp) / "accounts.toml"
            toml.write_text(
                accounts_toml(accounts, base_url=fake.base_url, token_url=None, header="fake")
            )
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "sendcloud_async",
                "logs",
                "watch",
                "--accounts",
                str(toml),
                "--out-dir",
                str(Path(tmp) / "watch"),
                "--interval",
                "1",
                "--metrics",
                "127.0.0.1:0",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            assert proc.stderr is not None
            try:
                port = await _port(proc.stderr)
                # Keep reading its stderr so that it never blocks on a full pipe.
                drain = asyncio.create_task(_drain(proc.stderr))
                scrapes = await _scrapes(f"http://127.0.0.1:{port}/metrics", seconds)
            finally:
                if proc.returncode is None:
                    proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(proc.wait(), 30)
            await drain
            if proc.returncode != 0:
                raise RuntimeError(f"the watch exited {proc.returncode}")
        await producer.stop()
        faults = fake.fault_counts
    finally:
        await fake.close()
    shown = ", ".join(f"{count} {name}" for name, count in sorted(faults.items()))
    caption = (
        f"logs watch --accounts ({ACCOUNTS} accounts, --interval 1) against FakeSendcloud adding "
        f"{LOGS_PER_SECOND:g} logs/s with chaos ({shown or 'no faults drawn'}).\n"
        f"/metrics scraped every {SCRAPE_EVERY:g} s, rates and quantiles over {WINDOW:g} s; "
        "x: seconds since the first scrape; legends: the last value"
    )
    return scrapes, caption


async def _port(stderr: asyncio.StreamReader) -> int:
    """The port of the metrics page, from the line the watch logs at start."""
    seen: list[str] = []
    async with asyncio.timeout(60):
        while True:
            line = (await stderr.readline()).decode()
            if not line:
                raise RuntimeError(f"the watch ended before serving its metrics: {seen}")
            seen.append(line)
            found = _BOUND.search(line)
            if found:
                return int(found.group(1))


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65_536):
        pass


async def _scrapes(url: str, seconds: float) -> list[Scrape]:
    scrapes: list[Scrape] = []
    async with aiohttp.ClientSession() as session:
        first = time.monotonic()
        while (now := time.monotonic()) - first <= seconds:
            scrapes.append(Scrape(now - first, parse(await _scrape(session, url))))
            await asyncio.sleep(max(0.0, first + len(scrapes) * SCRAPE_EVERY - time.monotonic()))
    return scrapes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--seconds",
        type=float,
        default=30.0,
        help="seconds of scraping (30; the first 5 only fill the window)",
    )
    parser.add_argument("--out", type=Path, default=OUT, help=f"the SVG to write ({OUT})")
    args = parser.parse_args(argv)
    scrapes, caption = asyncio.run(run(args.seconds))
    svg = render(
        Dashboard("sendcloud-async: logs watch --metrics", caption, dashboard_panels(scrapes))
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(svg, encoding="utf-8")
    print(f"wrote {args.out} ({len(svg.encode()):,} bytes, {len(scrapes)} scrapes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
