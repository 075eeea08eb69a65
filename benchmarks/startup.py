"""How fast the command line answers ``--version`` and ``--help``, beside bare Python.

    python -m benchmarks.startup                 # 21 runs of each, medians
    python -m benchmarks.startup --runs 5        # quicker
    python -m benchmarks.startup --smoke         # 3 runs each, checks the outputs (CI)

Each command runs as its own process (``python -m sendcloud_async ...``, what the
``sendcloud-async`` script runs), one after the other, interleaved round by round
so that a busy moment of the machine hits every command alike. Reported: the median
wall time of each, and its ratio to ``python -c pass`` (the interpreter's own start)
and to ``python -c "import aiohttp"`` (what the command line avoids loading). The
goals: ``--version`` at most 0.10 s, ``logs export --help`` at most 0.15 s.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

from ._process import ROOT, _env

__all__ = ["main"]

#: (label, arguments after the interpreter, goal in seconds or None)
COMMANDS: list[tuple[str, list[str], float | None]] = [
    ("python -c pass", ["-c", "pass"], None),
    ('python -c "import aiohttp"', ["-c", "import aiohttp"], None),
    ("sendcloud-async --version", ["-m", "sendcloud_async", "--version"], 0.10),
    ("sendcloud-async --help", ["-m", "sendcloud_async", "--help"], None),
    (
        "sendcloud-async logs export --help",
        ["-m", "sendcloud_async", "logs", "export", "--help"],
        0.15,
    ),
    (
        "sendcloud-async logs watch --help",
        ["-m", "sendcloud_async", "logs", "watch", "--help"],
        None,
    ),
]


def _once(arguments: list[str]) -> tuple[float, str]:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *arguments], cwd=ROOT, env=_env(), capture_output=True, text=True
    )
    took = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"{arguments} exited {done.returncode}: {done.stderr.strip()}")
    return took, done.stdout


def measure(runs: int) -> list[tuple[str, float, float | None]]:
    """(label, median seconds, goal) of every command, ``runs`` interleaved rounds."""
    times: dict[str, list[float]] = {label: [] for label, _, _ in COMMANDS}
    for _ in range(runs):
        for label, arguments, _ in COMMANDS:
            took, out = _once(arguments)
            times[label].append(took)
            if "--version" in arguments and not out.startswith("sendcloud-async "):
                raise RuntimeError(f"--version printed {out!r}")
            if "--help" in arguments and "usage:" not in out:
                raise RuntimeError(f"{label} printed no usage")
    return [(label, statistics.median(times[label]), goal) for label, _, goal in COMMANDS]


def table(results: list[tuple[str, float, float | None]]) -> str:
    base = results[0][1]
    heavy = results[1][1]
    rows = [
        "| command | median | × python -c pass | × import aiohttp | goal |",
        "|---|---:|---:|---:|---:|",
    ]
    for label, median, goal in results:
        verdict = "" if goal is None else f"≤ {goal:.2f} s {'met' if median <= goal else 'MISSED'}"
        rows.append(
            f"| `{label}` | {median * 1000:.0f} ms | {median / base:.1f}× |"
            f" {median / heavy:.2f}× | {verdict} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.startup", description=__doc__)
    parser.add_argument("--runs", type=int, default=21, help="rounds (21)")
    parser.add_argument("--smoke", action="store_true", help="3 rounds, outputs checked")
    args = parser.parse_args(argv)
    results = measure(3 if args.smoke else args.runs)
    print(table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
