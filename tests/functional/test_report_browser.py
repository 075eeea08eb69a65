"""The report's HTML page in a real headless Chromium (the system's), over the DevTools protocol.

The page of a 200,000-log report is opened from disk: it must load in under 2 s, log no
error, request nothing but itself (DevTools' ``Network.requestWillBeSent``), show its
charts, drill into an integration, sort and filter without a script error, and print on
A4. Screenshots (light and dark) and the PDF go to ``$SENDCLOUD_ARTIFACTS`` (default
``build/artifacts/``) for CI to keep.

Without Chromium these tests are skipped, saying how to get it, unless
``SENDCLOUD_REQUIRE_CHROMIUM=1`` (CI sets it once it installed ``chromium``): then they fail.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from sendcloud_async._cli.logs_report import write_page
from sendcloud_async._report import Report
from tests._chromium import ENV_REQUIRE, Browser, chromium_binary, require_chromium
from tests._report_screens import report_of, write_export

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("SENDCLOUD_ARTIFACTS") or ROOT / "build" / "artifacts")

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def chromium() -> str:
    """The Chromium binary, or skip (fail where it is required) with how to get one."""
    binary = chromium_binary()
    if binary is None:
        reason = (
            "no Chromium to open the report's page in: install Debian's chromium "
            "(apt-get install chromium) or set SENDCLOUD_CHROMIUM to a Chromium binary"
        )
        if require_chromium():
            pytest.fail(f"{reason} ({ENV_REQUIRE} is set)")
        pytest.skip(reason)
    return binary


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Report]:
    """The page of the report of a 212,160-log export (JSON Lines, as logs export writes)."""
    where = tmp_path_factory.mktemp("report")
    export = where / "logs.jsonl"
    assert write_export(export) >= 200_000
    report = report_of(export)
    page = where / "report.html"
    write_page(report, page)
    return page, report


def _saved(name: str, data: bytes) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / name
    path.write_bytes(data)
    return path


async def test_the_page_of_200000_logs_loads_fast_and_fetches_nothing(
    chromium: str, big: tuple[Path, Report]
) -> None:
    """Under 2 s to the end of the load event, no console error, one request: the file."""
    page, report = big
    assert report.logs >= 200_000
    async with Browser(chromium, width=1280, height=900) as browser:
        run = await browser.open(page)
        assert run.errors == []
        others = [
            url for url in run.requests if url != page.as_uri() and not url.startswith("data:")
        ]
        assert others == []
        assert run.requests.count(page.as_uri()) == 1
        _saved(
            "report-page-timing.txt",
            f"{report.logs} logs, {page.stat().st_size} bytes: load event ended after "
            f"{run.load_ms:.0f} ms ({run.wall_ms:.0f} ms from navigate)\n".encode(),
        )
        assert run.load_ms < 2_000, run
        drawn = await browser.evaluate(
            "[...document.querySelectorAll('svg.chart')]"
            ".filter(s => s.getBoundingClientRect().width > 300).length"
        )
        assert drawn >= 3  # over time, by hour, by weekday and hour
        rows = await browser.evaluate("document.querySelectorAll('#integrations tr.row').length")
        assert rows == len(report.integrations) == 40
        text = await browser.evaluate("document.getElementById('findings').innerText")
        assert "#7 started failing at 2026-11-13" in text
        assert "#12 stopped failing after 2026-11-09" in text
        assert "#3 fails unusually often" in text
        assert "#21 is rising" in text
        assert "#30 is falling" in text
        _saved("report-page.png", await browser.screenshot())
        dark = await browser.open(page, dark=True)
        assert dark.errors == []
        background = await browser.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(22, 24, 27)"
        _saved("report-page-dark.png", await browser.screenshot(height=1600))


async def test_drill_sort_and_filter_without_errors(
    chromium: str, big: tuple[Path, Report]
) -> None:
    """A name opens its details (CSS :target); headings sort; the box filters; no error."""
    page, _ = big
    async with Browser(chromium) as browser:
        run = await browser.open(page)
        assert run.errors == []
        hidden = await browser.evaluate("getComputedStyle(document.getElementById('i-7')).display")
        assert hidden == "none"
        await browser.evaluate("document.querySelector('a[href=\"#i-7\"]').click()")
        shown = await browser.evaluate("getComputedStyle(document.getElementById('i-7')).display")
        assert shown == "table-row"
        details = await browser.evaluate("document.getElementById('i-7').innerText")
        assert "started failing" in details
        assert "requests.exceptions.HTTPError" in details
        first = "document.querySelector('#integrations tbody tr.row td').dataset.v"
        assert await browser.evaluate(first) == "#3"  # the most logs first
        await browser.evaluate("document.querySelector('#integrations th[data-k=\"1\"]').click()")
        assert await browser.evaluate(first) != "#3"  # now the fewest first
        order = await browser.evaluate(
            "[...document.querySelectorAll('#integrations > tbody > tr')]"
            ".map(r => r.className).join(' ')"
        )
        assert re.fullmatch(r"(row more ?)+", order.strip() + " ") is not None  # pairs kept
        await browser.evaluate(
            "(() => { const box = document.getElementById('filter'); box.value = 'started';"
            " box.dispatchEvent(new Event('input')); })()"
        )
        visible = await browser.evaluate(
            "[...document.querySelectorAll('#integrations tr.row')].filter(r => !r.hidden)"
            ".map(r => r.cells[0].dataset.v)"
        )
        assert visible == ["#7"]
        assert await browser.evaluate("document.getElementById('shown').textContent") == "1"
        errors = [e for e in browser.events if e.get("method") == "Runtime.exceptionThrown"]
        assert errors == []


async def test_the_page_prints_on_a4(chromium: str, big: tuple[Path, Report]) -> None:
    """Printed: A4 pages (595 × 842 points), without the filter box or the drill-down rows."""
    page, _ = big
    async with Browser(chromium) as browser:
        run = await browser.open(page)
        assert run.errors == []
        pdf = await browser.pdf()
        _saved("report-page.pdf", pdf)
    assert pdf.startswith(b"%PDF")
    boxes = set(re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf))
    assert boxes
    for width, height in boxes:
        assert (round(float(width)), round(float(height))) == (595, 842)
    pages = len(re.findall(rb"/Type\s*/Page\b", pdf))
    assert 2 <= pages <= 12
