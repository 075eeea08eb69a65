"""The dashboard picture of docs/observability.md: the committed SVG, and the code that draws it.

The picture is redrawn from a real run by ``python docs/observability_picture.py``;
here the committed file is checked as it stands (well-formed XML, four panels with
their titles, self-contained, small), and the drawing and the reading of a
Prometheus page are checked on fixed inputs, fast.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "docs" / "observability_picture.py"
PICTURE = ROOT / "docs" / "img" / "observability-dashboard.svg"
SVG = "{http://www.w3.org/2000/svg}"
TITLES = [
    "Requests a second, by status",
    "Request duration (p50, p95)",
    "Retries and rate-gate waits a second",
    "Watch lag per account",
]


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("observability_picture", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


picture = _script()


def _panels(root: ET.Element) -> list[ET.Element]:
    return [g for g in root.iter(f"{SVG}g") if g.get("class") == "panel"]


def _title(panel: ET.Element) -> str:
    first = panel.find(f"{SVG}text")
    assert first is not None
    return first.text or ""


def test_the_committed_picture_is_a_self_contained_svg_of_four_titled_panels() -> None:
    raw = PICTURE.read_bytes()
    assert len(raw) < 60_000
    root = ET.fromstring(raw)
    assert root.tag == f"{SVG}svg"
    panels = _panels(root)
    assert [_title(p) for p in panels] == TITLES
    for panel in panels:
        lines = [p for p in panel.iter(f"{SVG}path") if p.get("fill") == "none"]
        assert lines, f"{_title(panel)}: no series drawn"
    text = raw.decode()
    for outside in ("<script", "href=", "@import", "url("):
        assert outside not in text
    markdown = (ROOT / "docs" / "observability.md").read_text(encoding="utf-8")
    assert "](img/observability-dashboard.svg)" in markdown


def _fixed() -> object:
    series = [picture.Line("200", [(5.0, 6.0), (6.0, 7.5), (7.0, 7.0)])]
    return picture.Dashboard(
        "A <fixed> run",
        "first line\nsecond line",
        [
            picture.Panel(TITLES[0], "req/s", series),
            picture.Panel(TITLES[1], "ms", [picture.Line("p50", [(5.0, 2.5), (7.0, 3.0)])]),
            picture.Panel(TITLES[2], "/s", [picture.Line("retry: 503", [(5.0, 0.0)])]),
            picture.Panel(TITLES[3], "s", []),
        ],
    )


def test_render_draws_each_panel_with_its_title_axes_and_legend() -> None:
    svg = picture.render(_fixed())
    root = ET.fromstring(svg.encode())
    assert root.findtext(f"{SVG}title") == "A <fixed> run"
    panels = _panels(root)
    assert [_title(p) for p in panels] == TITLES
    texts = ["".join(t.itertext()) for t in panels[0].iter(f"{SVG}text")]
    assert "200 7.00" in texts  # the legend holds the last value
    assert {"0", "2", "4", "6", "8"} <= set(texts)  # a round y axis above the highest value
    assert {"5 s", "6 s", "7 s"} <= set(texts)  # the time axis, a tick a second
    assert "no data" in ["".join(t.itertext()) for t in panels[3].iter(f"{SVG}text")]
    captions = [t.text for t in root.findall(f"{SVG}text")]
    assert "first line" in captions
    assert "second line" in captions


def test_render_refuses_a_dashboard_without_four_panels() -> None:
    with pytest.raises(ValueError, match="a dashboard has 4 panels, got 1"):
        picture.render(picture.Dashboard("t", "c", [picture.Panel("one", "s", [])]))


PAGE_1 = """\
# HELP http_client_request_duration_seconds Duration.
# TYPE http_client_request_duration_seconds histogram
http_client_request_duration_seconds_bucket{http_response_status_code="200",le="0.005"} 10
http_client_request_duration_seconds_bucket{http_response_status_code="200",le="0.01"} 10
http_client_request_duration_seconds_bucket{http_response_status_code="200",le="+Inf"} 10
http_client_request_duration_seconds_count{http_response_status_code="200"} 10
sendcloud_watch_lag_seconds{sendcloud_account="shop \\"1\\""} 0.5
"""
PAGE_2 = """\
http_client_request_duration_seconds_bucket{http_response_status_code="200",le="0.005"} 20
http_client_request_duration_seconds_bucket{http_response_status_code="200",le="0.01"} 30
http_client_request_duration_seconds_bucket{http_response_status_code="200",le="+Inf"} 30
http_client_request_duration_seconds_count{http_response_status_code="200"} 30
http_client_request_duration_seconds_count{http_response_status_code="503"} 5
sendcloud_client_retries_total{sendcloud_retry_cause="503"} 5
sendcloud_watch_lag_seconds{sendcloud_account="shop \\"1\\""} 0.25
"""


def test_the_panels_of_two_scrapes_are_rates_quantiles_and_gauges() -> None:
    scrapes = [
        picture.Scrape(0.0, picture.parse(PAGE_1)),
        picture.Scrape(5.0, picture.parse(PAGE_2)),
    ]
    requests, duration, retries, lag = picture.dashboard_panels(scrapes)
    assert [(line.label, list(line.points)) for line in requests.lines] == [
        ("200", [(5.0, 4.0)]),  # 20 more in 5 s
        ("503", [(5.0, 1.0)]),
    ]
    # 20 new requests: 10 up to 5 ms, 10 from 5 to 10 ms; p50 is 5 ms, p95 9.5 ms.
    p50, p95 = duration.lines
    assert p50.points == [(5.0, pytest.approx(5.0))]
    assert p95.points == [(5.0, pytest.approx(9.5))]
    assert [(line.label, list(line.points)) for line in retries.lines] == [
        ("retry: 503", [(5.0, 1.0)]),
        ("rate-gate waits", [(5.0, 0.0)]),  # no request waited: a flat 0, not a missing line
    ]
    assert [(line.label, list(line.points)) for line in lag.lines] == [
        ('shop "1"', [(0.0, 0.5), (5.0, 0.25)])
    ]


def test_a_page_line_that_is_not_a_sample_is_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("not a Prometheus sample line: '{broken'")):
        picture.parse("ok_metric 1\n{broken\n")
