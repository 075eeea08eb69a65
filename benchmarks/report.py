"""``logs report`` over a large JSON Lines export: records a second and peak RSS.

    python -m benchmarks.report                       # 250,000 and 1,000,000 logs (~2 minutes)
    python -m benchmarks.report --smoke               # 5,000 and 20,000 logs, seconds (CI)
    python -m benchmarks.report --logs 1000000,4000000 --json benchmarks/_results/report.json

For each size the benchmark first writes an export the way ``logs export`` does (JSON
Lines, one ``IntegrationLog`` a line, about 700 bytes each), made by
``sendcloud_async.testing.FailurePatterns``: forty integrations over thirty days, one
starting to fail on day 12, one recovering on day 9, one whose timeouts dominate, one
rising, one falling, the rest steady (mixed exception types, codes and messages with
order numbers, so the masks and the top-k sketches work as on real data). It is not
timed. Then it runs the installed command in a fresh process::

    sendcloud-async -q logs report FILE --json --html PAGE

and measures the wall time (records a second = logs / wall time, the process's start
and the writing of both outputs included) and the process's peak RSS (``wait4``'s
``ru_maxrss``; the export is written by another process, so that the benchmark's own
stays small and the report's process, forked from it, starts small). The same command
over an empty export gives the baseline RSS (the interpreter and the imports): the
growth over it is the report's own memory, which must not grow with the number of logs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import msgspec

from ._process import ROOT, _env

__all__ = ["main"]

SCRIPT = Path(sys.executable).parent / "sendcloud-async"


@dataclass
class Result:
    logs: int
    file_mb: float
    wall_s: float
    records_per_s: float
    peak_rss_mib: float
    over_baseline_mib: float
    page_kb: float


def write_export(path: Path, logs: int) -> int:
    """An export of about ``logs`` logs (the scenario scaled to it); how many it holds."""
    from sendcloud_async.testing import FailurePatterns

    scale = logs / 212_160  # the logs of the scenario at scale 1 (160 a day for most)

    def per_day(n: int) -> int:
        return max(1, round(n * scale))

    patterns = FailurePatterns(datetime(2026, 11, 1, tzinfo=UTC), days=30, seed=1)
    for ident in range(1, 41):
        if ident == 3:
            patterns.steady(ident, per_day=per_day(800), kind="timeout")
        elif ident == 7:
            patterns.failing_from(ident, day=12, per_day=per_day(300), kind="unauthorized")
        elif ident == 12:
            patterns.recovering(ident, until_day=9, per_day=per_day(250), kind="ssl")
        elif ident == 21:
            patterns.rising(ident, from_per_day=per_day(20), to_per_day=per_day(600))
        elif ident == 30:
            patterns.rising(ident, from_per_day=per_day(500), to_per_day=per_day(10))
        else:
            patterns.steady(ident, per_day=per_day(160))
    encoder = msgspec.json.Encoder()
    written = 0
    with path.open("wb") as stream:
        batch = []
        for record in patterns.iter_records():
            written += 1
            record["id"] = written
            batch.append(record)
            if len(batch) == 10_000:
                stream.write(encoder.encode_lines(batch))
                batch = []
        stream.write(encoder.encode_lines(batch))
    return written


def run_report(export: Path, page: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one ``logs report`` process."""
    command = [str(SCRIPT), "-q", "logs", "report", str(export), "--json", "--html", str(page)]
    began = time.perf_counter()
    process = subprocess.Popen(
        command, cwd=ROOT, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - began
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.stderr is not None
    problem = process.stderr.read().decode()
    process.stderr.close()
    if process.returncode != 0:
        raise RuntimeError(f"logs report failed ({process.returncode}): {problem}")
    return wall, usage.ru_maxrss / 1024  # KiB on Linux


def table(results: list[Result], baseline: float) -> str:
    lines = [
        f"Baseline (an empty export): peak RSS {baseline:.1f} MiB.",
        "",
        "| logs | export | wall time | records/s | peak RSS | over the baseline | page |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.logs:,} | {r.file_mb:,.0f} MB | {r.wall_s:.2f} s | {r.records_per_s:,.0f} | "
            f"{r.peak_rss_mib:.1f} MiB | {r.over_baseline_mib:.1f} MiB | {r.page_kb:,.0f} kB |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__)
    parser.add_argument("--logs", default="250000,1000000", help="sizes, comma-separated")
    parser.add_argument("--smoke", action="store_true", help="5,000 and 20,000 logs")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--write", nargs=2, metavar=("PATH", "LOGS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.write is not None:
        print(write_export(Path(args.write[0]), int(args.write[1])))
        return 0
    sizes = [5_000, 20_000] if args.smoke else [int(n) for n in args.logs.split(",")]
    results = []
    with tempfile.TemporaryDirectory(prefix="sendcloud-report-bench-") as scratch:
        where = Path(scratch)
        empty = where / "empty.jsonl"
        empty.write_bytes(b"")
        _, baseline = run_report(empty, where / "empty.html")
        for size in sizes:
            export = where / f"logs-{size}.jsonl"
            print(f"writing an export of {size:,} logs …", file=sys.stderr, flush=True)
            # In a process of its own: this one stays small, so the report's process, forked
            # from it, starts small too (its peak RSS counts what it had when forked).
            written = subprocess.run(
                [sys.executable, "-m", "benchmarks.report", "--write", str(export), str(size)],
                cwd=ROOT,
                env=_env(),
                check=True,
                capture_output=True,
                text=True,
            )
            logs = int(written.stdout)
            page = where / f"report-{size}.html"
            print(f"reporting on {logs:,} logs …", file=sys.stderr, flush=True)
            wall, peak = run_report(export, page)
            results.append(
                Result(
                    logs=logs,
                    file_mb=export.stat().st_size / 1e6,
                    wall_s=round(wall, 3),
                    records_per_s=round(logs / wall, 1),
                    peak_rss_mib=round(peak, 1),
                    over_baseline_mib=round(peak - baseline, 1),
                    page_kb=page.stat().st_size / 1e3,
                )
            )
            export.unlink()
    print(table(results, baseline))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(
            json.dumps(
                {
                    "results": [asdict(r) for r in results],
                    "baseline_rss_mib": round(baseline, 1),
                    "python": platform.python_version(),
                    "machine": platform.platform(),
                    "cpus": os.cpu_count(),
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
