"""Parts export throughput: Parquet against JSON Lines, into a directory and into S3 (moto).

    python -m benchmarks.parquet                   # 200,000 logs a run, memory at 1,000,000
    python -m benchmarks.parquet --smoke           # 20,000 and 100,000 logs (seconds)
    python -m benchmarks.parquet --logs 500000 --json benchmarks/_results/parquet.json

Each case runs in a fresh process: ``PartsSink.commit`` of pages of 100 logs (the
export's page size), then ``aclose()``; records a second = logs / wall time of
that loop, which includes encoding, compression, the part files and their
upload. The pages cycle through 50,000 logs made before timing (by
``sendcloud_async.testing.FailurePatterns``, three days, about 700 bytes each as
JSON), so the process holds the same logs at any length. Into a directory each
case runs ``--rounds`` times, alternating, and its median is kept; the ratio is
Parquet's records/s over JSON Lines' of the same run.

Memory: growth = peak RSS over the RSS just before the loop, the sink's own
memory. It must stay flat as the export grows (bounded by the row group, 65,536
logs by default): the directory cases run again at ``--memory-logs`` and the two
lengths are shown side by side. The S3 cases run against a moto server on
127.0.0.1 (``tests/_s3server.py``).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._process import ROOT, _env, _rss

__all__ = ["main"]

CASES = (
    ("jsonl", "none", "dir"),
    ("parquet", "zstd", "dir"),
    ("jsonl", "gzip", "dir"),
    ("jsonl", "none", "s3"),
    ("parquet", "zstd", "s3"),
)
#: What the memory rows compare across lengths.
MEMORY_CASES = (("jsonl", "none", "dir"), ("parquet", "zstd", "dir"))
PAGE = 100
BASE = 50_000


def _child(fmt: str, compression: str, out: str, logs: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from sendcloud_async._parts import PartsSink
    from tests._parts_data import make_logs

    base = make_logs(min(logs, BASE))
    pages = [base[begin : begin + PAGE] for begin in range(0, len(base), PAGE)]

    async def run() -> tuple[float, float]:
        async with PartsSink(out, account="bench", format=fmt, compression=compression) as sink:
            await sink.load()
            gc.collect()
            rss = _rss()
            started = time.perf_counter()
            for n, begin in enumerate(range(0, logs, PAGE)):
                page = pages[n % len(pages)][: logs - begin]
                await sink.commit(page, {"next": begin + len(page)})
        return time.perf_counter() - started, rss

    elapsed, before = asyncio.run(run())
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "seconds": elapsed,
        "records_per_s": logs / elapsed,
        "peak_rss_mib": peak / 2**20,
        "growth_mib": max(0, peak - before) / 2**20,
    }


def _run(case: tuple[str, str, str], out: str, logs: int, env: dict[str, str]) -> dict[str, Any]:
    fmt, compression, where = case
    print(f"{fmt}/{compression} into {where}, {logs:,} logs", file=sys.stderr)
    child = subprocess.run(
        [sys.executable, "-m", "benchmarks.parquet", "--child", fmt, compression, out, str(logs)],
        env=env, cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, Any] = json.loads(child.stdout)
    result.update(format=fmt, compression=compression, where=where, logs=logs)
    return result


def _median(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median records/s (the lower of the two middle ones)."""
    return sorted(runs, key=lambda r: r["records_per_s"])[(len(runs) - 1) // 2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=int, default=200_000)
    parser.add_argument("--memory-logs", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=4, metavar=("FORMAT", "COMPRESSION", "OUT", "LOGS"))
    args = parser.parse_args(argv)
    if args.child:
        fmt, compression, out, logs = args.child
        print(json.dumps(_child(fmt, compression, out, int(logs))))
        return 0
    if args.smoke:
        args.logs, args.memory_logs, args.rounds = 20_000, 100_000, 1
    sys.path.insert(0, str(ROOT))
    import tempfile

    from tests._s3server import running_s3_server

    rounds: dict[tuple[str, str, str], list[dict[str, Any]]] = {case: [] for case in CASES}
    memory = []
    with running_s3_server() as server, tempfile.TemporaryDirectory() as tmp:
        server.create_bucket("bench")
        env = {**_env(), **server.env}
        count = itertools.count()
        for turn in range(args.rounds):
            for case in CASES if turn % 2 == 0 else CASES[::-1]:
                if case[2] == "dir" or turn == 0:
                    n = next(count)
                    out = f"{tmp}/{n}" if case[2] == "dir" else f"s3://bench/{n}"
                    rounds[case].append(_run(case, out, args.logs, env))
        for case in MEMORY_CASES:
            memory.append(_run(case, f"{tmp}/memory-{case[0]}", args.memory_logs, env))
    results = [_median(runs) for runs in rounds.values()]
    jsonl = {r["where"]: r["records_per_s"] for r in results
             if r["format"] == "jsonl" and r["compression"] == "none"}  # fmt: skip
    print(f"Throughput, {args.logs:,} logs (into a directory: median of {args.rounds} rounds)\n")
    print("| format | into | records/s | vs JSON Lines | peak RSS MiB | growth MiB |")
    print("|---|---|---:|---:|---:|---:|")
    for r in results:
        ratio = r["records_per_s"] / jsonl[r["where"]]
        print(
            f"| {r['format']} ({r['compression']}) | {r['where']} | "
            f"{r['records_per_s']:,.0f} | {ratio:.2f}× | {r['peak_rss_mib']:.0f} | "
            f"{r['growth_mib']:.1f} |"
        )
    print(f"\nMemory growth into a directory, {args.logs:,} and {args.memory_logs:,} logs\n")
    print(f"| format | growth MiB at {args.logs:,} | growth MiB at {args.memory_logs:,} |")
    print("|---|---:|---:|")
    for r in memory:
        short = next(x for x in results if (x["format"], x["compression"], x["where"]) ==
                     (r["format"], r["compression"], r["where"]))  # fmt: skip
        print(f"| {r['format']} ({r['compression']}) | {short['growth_mib']:.1f} | "
              f"{r['growth_mib']:.1f} |")  # fmt: skip
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        everything = [run for runs in rounds.values() for run in runs] + memory
        args.json.write_text(json.dumps(everything, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
