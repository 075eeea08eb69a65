"""The report's outputs without a browser: the terminal table, the HTML page and the JSON."""

from __future__ import annotations

import base64
import hashlib
import io
import re
from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from sendcloud_async._cli.report_table import WIDTH, Look, look_for, render_table, sparkline
from sendcloud_async._report import LogRow, Report, ReportBuilder, render_html, schema, to_json

T0 = datetime(2024, 3, 1, tzinfo=UTC)
HOSTILE = '<script>alert("x")</script>\x1b[31m"><img src=x onerror=alert(1)>'


def build(logs_per_day: int, *, integrations: int = 12, names: bool = True) -> Report:
    """Thirty days of logs: one integration starts failing on day 10, one stops on day 18."""
    builder = ReportBuilder(
        source="test rows",
        names={i: (HOSTILE if i == 2 else f"Shop {i}") for i in range(1, integrations + 1)}
        if names
        else None,
    )
    rows = []
    for day in range(30):
        for ident in range(1, integrations + 1):
            if (ident == 3 and day < 10) or (ident == 4 and day >= 18):
                continue
            count = logs_per_day * (5 if ident == 5 else 1)
            for n in range(count):
                when = T0 + timedelta(days=day, seconds=(n * 86_400) // count + ident)
                rows.append(
                    LogRow(
                        base_url="https://shop.example.com",
                        integration_id=ident,
                        created_at=when,
                        response_code=(404, 500, None)[n % 3],
                        exception_type=("requests.exceptions.ReadTimeout", None)[n % 2],
                        exception=HOSTILE if n % 7 == 0 else f"Order {n} failed on line {day}",
                        method="GET",
                        full_url=f"https://shop.example.com/orders/{n}?token=s3cr3t{n}",
                    )
                )
    builder.add_many(rows)
    return builder.finish(now=T0 + timedelta(days=31))


@pytest.fixture(scope="module")
def report() -> Report:
    return build(8)


# -- the terminal ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "look",
    [Look(unicode=True), Look(unicode=False), Look(unicode=True, colour=True)],
    ids=["unicode", "ascii", "colour"],
)
def test_the_table_fits_80_columns(report: Report, look: Look) -> None:
    """Every line is at most 80 columns wide; ASCII when asked; no control character from a log."""
    text = render_table(report, look)
    visible = re.sub(r"\x1b\[[0-9;]*m", "", text)
    assert max(len(line) for line in visible.splitlines()) <= WIDTH
    assert '\x1b[31m"><img' not in text  # the log's escape sequence never reaches the terminal
    assert "#3 Shop 3" in visible
    assert "started failing" in visible
    assert "stopped failing" in visible
    if not look.unicode:
        assert visible.isascii()
    assert ("\x1b[" in text) == look.colour


def test_the_table_reads_without_colour(report: Report) -> None:
    """Trends are arrows and signed percentages, the findings are sentences."""
    text = render_table(report, Look(unicode=False))
    lines = text.splitlines()
    row3 = next(line for line in lines if line.startswith("#3 "))
    assert "^ new" in row3
    row4 = next(line for line in lines if line.startswith("#4 "))
    assert "v -100%" in row4
    assert "FINDINGS" in lines
    assert any("#3 Shop 3 started failing at 2024-03-11" in line for line in lines)
    assert any("#5 Shop 5 fails unusually often" in line for line in lines)


def test_sparklines_show_silence_as_blank() -> None:
    """No logs is a blank; some logs never look like none."""
    assert sparkline([0, 0, 0, 0], 4, Look()) == "    "
    assert sparkline([0, 0, 1, 100], 4, Look()) == "  ▁█"
    assert sparkline([0, 0, 1, 100], 4, Look(unicode=False)) == "  .%"


class _Stream(io.StringIO):
    def __init__(self, tty: bool, encoding: str) -> None:
        super().__init__()
        self._tty = tty
        self._encoding = encoding

    def isatty(self) -> bool:
        return self._tty

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding


@pytest.mark.parametrize(
    ("tty", "encoding", "env", "unicode", "colour"),
    [
        (True, "utf-8", {}, True, True),
        (True, "utf-8", {"NO_COLOR": "1"}, True, False),
        (True, "utf-8", {"TERM": "dumb"}, True, False),
        (False, "utf-8", {}, True, False),
        (False, "ascii", {}, False, False),
        (True, "latin-1", {}, False, True),
    ],
)
def test_look_for_a_stream(
    tty: bool, encoding: str, env: dict[str, str], unicode: bool, colour: bool
) -> None:
    """Colour only on a terminal without NO_COLOR or TERM=dumb; Unicode where it encodes."""
    look = look_for(_Stream(tty, encoding), env)
    assert (look.unicode, look.colour) == (unicode, colour)


def test_an_empty_report_says_so() -> None:
    """No logs: one sentence."""
    empty = ReportBuilder(source="empty.jsonl").finish(now=T0)
    assert render_table(empty) == "No exception logs in empty.jsonl."


# -- the page --------------------------------------------------------------------------------------


def _digest(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def test_the_page_fetches_nothing_and_allows_nothing_else(report: Report) -> None:
    """No URL to load, and a CSP of default-src 'none' with the inline style and script
    allowed by their hashes only."""
    page = render_html(report)
    assert not re.search(r"""\s(src|href)=["']?(https?:|//)""", page, re.I)
    assert "@import" not in page
    assert "url(" not in page
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page)
    assert policy is not None
    style = re.search(r"<style>(.*?)</style>", page, re.S)
    script = re.search(r"<script>(.*?)</script>", page, re.S)
    assert style is not None
    assert script is not None
    assert policy.group(1).startswith("default-src &#x27;none&#x27;")
    assert _digest(style.group(1)) in policy.group(1)
    assert _digest(script.group(1)) in policy.group(1)
    assert ' style="' not in page  # the policy allows no style attribute
    assert "@page{size:A4" in page
    assert "prefers-color-scheme:dark" in page


def test_the_page_escapes_what_the_logs_hold(report: Report) -> None:
    """A shop name or message holding markup is shown as text, never run."""
    page = render_html(report)
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert "&lt;script&gt;alert" in page
    assert "s3cr3t" not in page  # query values are masked


def test_the_page_has_a_row_and_details_per_integration(report: Report) -> None:
    """Every integration has a sortable row; its name links to its row of details."""
    page = render_html(report)
    for item in report.integrations:
        assert f'href="#i-{item.integration_id}"' in page
        assert f'<tr class="more" id="i-{item.integration_id}"' in page
    assert page.count('<tr class="row"') == len(report.integrations)
    assert "Started failing" in page
    assert "Stopped failing" in page


def test_the_page_does_not_grow_with_the_logs() -> None:
    """Ten times the logs, the same integrations and days: a page of about the same size."""
    small = len(render_html(build(4)).encode())
    large = len(render_html(build(40)).encode())
    assert large < small * 1.15, (small, large)


def test_the_json_is_the_documented_schema(report: Report) -> None:
    """--json holds the Report's fields, and its schema says what each one is."""
    data = msgspec.json.decode(to_json(report))
    assert set(data) == set(Report.__struct_fields__)
    assert data["version"] == 1
    assert data["generated_at"].endswith("Z")
    properties = schema()["$defs"]["Report"]["properties"]
    assert set(properties) == set(data)
    first = data["integrations"][0]
    assert {"integration_id", "logs", "share", "trend", "status", "unusual", "series"} <= set(first)
    assert len(first["series"]) == data["timeline"]["count"]
