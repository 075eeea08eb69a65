"""A report of 200,000+ logs with every kind of finding, for the browser test and the docs.

``big_scenario()`` is thirty days of forty integrations: most fail steadily, one starts
failing on day 12, one recovers on day 9, one's timeouts dominate, one rises and one
falls. ``write_export(path)`` writes its logs as ``logs export`` would (JSON Lines).

Run as a module, it writes the documentation's pictures of the report::

    python -m tests._report_screens docs/

``docs/report-page.png`` (the page in a headless Chromium, see ``tests._chromium``) and
``docs/report-terminal.txt`` (the terminal table, as text).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from sendcloud_async._cli.report_table import Look, render_table
from sendcloud_async._report import Report, ReportBuilder, open_source
from sendcloud_async.testing import FailurePatterns

__all__ = ["NAMES", "big_scenario", "report_of", "write_export"]

START = datetime(2026, 11, 1, tzinfo=UTC)
_SHOPS = ("Nordic Coffee", "Happy Socks", "Urban Bikes", "Green Plants", "Tiny Lamps",
          "Golden Tea", "Rapid Books", "Cosy Toys")  # fmt: skip
#: Shop names, as an account's integrations would have them.
NAMES = {n: f"{_SHOPS[n % len(_SHOPS)]} {n}" for n in range(1, 41)}


def big_scenario() -> FailurePatterns:
    """Thirty days, forty integrations, 212,160 logs."""
    patterns = FailurePatterns(START, days=30, seed=2026)
    for ident in range(1, 41):
        if ident == 3:
            patterns.steady(ident, per_day=800, kind="timeout")
        elif ident == 7:
            patterns.failing_from(ident, day=12, per_day=300, kind="unauthorized")
        elif ident == 12:
            patterns.recovering(ident, until_day=9, per_day=250, kind="ssl")
        elif ident == 21:
            patterns.rising(ident, from_per_day=20, to_per_day=600)
        elif ident == 30:
            patterns.rising(ident, from_per_day=500, to_per_day=10, kind="server_error")
        else:
            patterns.steady(ident, per_day=160)
    return patterns


def write_export(path: Path, patterns: FailurePatterns | None = None) -> int:
    """The scenario's logs as a JSON Lines export at ``path``; how many were written."""
    encoder = msgspec.json.Encoder()
    written = 0
    with path.open("wb") as stream:
        batch = []
        for record in (patterns or big_scenario()).iter_records():
            written += 1
            record["id"] = written
            batch.append(record)
            if len(batch) == 10_000:
                stream.write(encoder.encode_lines(batch))
                batch = []
        stream.write(encoder.encode_lines(batch))
    return written


def report_of(path: Path, *, names: dict[int, str] | None = None) -> Report:
    """The report of an export, with shop names as an account's report would have."""
    source, reader = open_source(str(path))
    builder = ReportBuilder(source=path.name, names=names)
    for batch in reader.read(source):
        builder.add_many(batch)
    return builder.finish()


def main() -> None:
    from sendcloud_async._report import render_html

    from ._chromium import browser

    parser = argparse.ArgumentParser(prog="python -m tests._report_screens", description=__doc__)
    parser.add_argument("out", type=Path, help="the directory of the pictures (docs/)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        export = Path(scratch) / "logs.jsonl"
        write_export(export)
        report = report_of(export, names=NAMES)
        page = Path(scratch) / "report.html"
        page.write_text(render_html(report), encoding="utf-8")
        (args.out / "report-terminal.txt").write_text(
            render_table(report, Look(unicode=True)) + "\n", encoding="utf-8"
        )

        async def shoot() -> None:
            async with browser(width=1200, height=900) as chromium:
                run = await chromium.open(page)
                assert not run.errors, run.errors
                (args.out / "report-page.png").write_bytes(await chromium.screenshot(height=1650))

        asyncio.run(shoot())
    print(f"wrote {args.out / 'report-page.png'} and {args.out / 'report-terminal.txt'}")


if __name__ == "__main__":
    main()
