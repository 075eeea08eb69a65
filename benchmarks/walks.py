"""Walks side by side: per-integration export against a slow server, and at the rate ceiling.

    python -m benchmarks.walks                       # both scenarios (~2 minutes)
    python -m benchmarks.walks --smoke               # tiny sizes (seconds)
    python -m benchmarks.walks --scenario ceiling --json benchmarks/_results/walks.json

``benchmarks.run`` runs these scenarios too, after the bulk-export ones, so that
one run gives every figure side by side.

A ``FakeSendcloud`` runs in its own process, seeded with the scenario's
integrations and logs (``fake.seed``: logs interleaved across integrations),
with ``enforce_rate_limits(limits, latency=…)``: every request waits ``latency``
seconds on the server after it was counted, and the server answers 429 past the
limits on a strict sliding window. Each export runs in a fresh client process
with the SDK's export engine writing a JSON Lines file with its checkpoint (the
code path of ``sendcloud-async logs export``), its rate gate set to the server's
limits, and is timed from just before the first request to the end of the last
page on disk.

Scenarios:

* ``walks-latency``: 150 ms a request, 8 integrations × 5,000 logs, page_size
  100, a budget far above what is used. The account-wide export (one chain of
  400 pages) against ``--per-integration`` with 8 walks at once. The floor of
  each is its chain length × 150 ms: 60 s for the account-wide chain, 50 pages +
  the integrations listing = 7.65 s per integration.
* ``ceiling``: 150 ms a request, 16 integrations × 3,100 logs, 16 walks at once,
  Sendcloud's GET budget at a tenth of the window: 100 GET per 6 s (1,000 a
  minute). 16 walks could do 107 requests/s; the budget allows 16.7. The budget
  forces the last of P requests to wait ``(P - 1) // 100`` windows after the
  first: that time over the time the run took (first answer to last answer) is
  the fraction of the ceiling reached. Requests the server answered 429 are
  counted (and must be 0).

Exit status 0 only if every export verified (every log once, as many as the
server holds) and the ceiling scenario saw no 429.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._process import ROOT, ServerProcess, _cpu, _env

PAGE_SIZE = 100
#: A budget no scenario comes near: the latency scenario measures latency only.
UNLIMITED_GET = 1_000_000


@dataclass(frozen=True)
class WalkScenario:
    name: str
    title: str
    integrations: int
    logs_per_integration: int
    latency: float
    get: int
    window: float
    #: (label, mode, walks at once) of each export measured.
    runs: tuple[tuple[str, str, int], ...]


SCENARIOS: tuple[WalkScenario, ...] = (
    WalkScenario(
        "walks-latency",
        "Latency-bound export: account-wide vs per-integration",
        integrations=8, logs_per_integration=5_000, latency=0.150,
        get=UNLIMITED_GET, window=60.0,
        runs=(
            ("account-wide export (one chain)", "account", 1),
            ("--per-integration, 8 at once", "per-integration", 8),
        ),
    ),
    WalkScenario(
        "ceiling",
        "At the rate ceiling: 16 walks wanting more than the budget",
        integrations=16, logs_per_integration=3_100, latency=0.150,
        get=100, window=6.0,
        runs=(("--per-integration, 16 at once", "per-integration", 16),),
    ),
)  # fmt: skip

SMOKE: dict[str, dict[str, Any]] = {
    "walks-latency": {"logs_per_integration": 300, "latency": 0.02},
    "ceiling": {"logs_per_integration": 200, "latency": 0.02, "get": 10, "window": 0.5},
}


def scenario_for(scenario: WalkScenario, smoke: bool) -> WalkScenario:
    """The scenario, shrunk for ``--smoke``."""
    if not smoke:
        return scenario
    fields = {**asdict(scenario), **SMOKE[scenario.name]}
    fields["runs"] = scenario.runs
    return WalkScenario(**fields)


def _limits(get: int, window: float) -> Any:
    import sendcloud_async as sc

    return sc.RateLimits(get=get, window=window)


# ------------------------------------------------------------------------------ server process


async def _serve(scenario: WalkScenario) -> None:
    from sendcloud_async.testing import FakeSendcloud

    async with FakeSendcloud(validate_spec=False) as fake:
        fake.seed(
            integrations=scenario.integrations,
            logs_per_integration=scenario.logs_per_integration,
            seed=1,
        )
        limits = _limits(scenario.get, scenario.window)
        fake.enforce_rate_limits(limits, latency=scenario.latency)
        print(fake.port, flush=True)
        loop = asyncio.get_running_loop()
        while True:
            command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if command == "stats":
                stats = {
                    "throttled": fake.throttled,
                    "requests": len(fake.requests),
                    "logs": len(fake.logs),
                    "cpu_seconds": _cpu(),
                }
                print(json.dumps(stats), flush=True)
            elif command == "reset":  # counters and windows start again from zero
                fake.clear_requests()
                fake.enforce_rate_limits(limits, latency=scenario.latency)
                print("{}", flush=True)
            else:  # EOF or "quit"
                return


# ------------------------------------------------------------------------------ client process


async def _client(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp
    import msgspec

    import sendcloud_async as sc
    from sendcloud_async._export import LogExport
    from sendcloud_async._export_walks import PerIntegrationExport

    answered: list[float] = []

    async def on_end(*_: Any) -> None:
        answered.append(time.monotonic())

    trace = aiohttp.TraceConfig()
    trace.on_request_end.append(on_end)
    out = Path(spec["out"])
    limits = _limits(spec["get"], spec["window"])
    job: LogExport
    if spec["mode"] == "account":
        job = LogExport(out, base_url=spec["base_url"], page_size=PAGE_SIZE)
    else:
        job = PerIntegrationExport(
            out, base_url=spec["base_url"], page_size=PAGE_SIZE, concurrency=spec["walks"]
        )
    auth = sc.BasicAuth("fake-public-key", "fake-secret-key")
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        sc.SendcloudClient(
            auth=auth, base_url=spec["base_url"], rate_limit=limits, session=session
        ) as client,
    ):
        with job:
            cpu = time.process_time()
            started = time.monotonic()
            stats = await job.run(client)
            seconds = time.monotonic() - started
            cpu = time.process_time() - cpu
    data = await asyncio.to_thread(out.read_bytes)
    ids = [msgspec.json.decode(line)["id"] for line in data.splitlines()]
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "records": stats.records,
        "unique": len(set(ids)),
        "lines": len(ids),
        "requests": len(answered),
        "first_answer": min(answered) - started if answered else None,
        "answered_span": max(answered) - min(answered) if answered else None,
    }


def run_export(
    server: ServerProcess, scenario: WalkScenario, mode: str, walks: int, directory: Path
) -> dict[str, Any]:
    """One export in a fresh process; the result line plus the server's counters."""
    server.ask("reset")
    spec = {
        "base_url": server.base_url,
        "out": str(directory / f"{scenario.name}-{mode}-{walks}.jsonl"),
        "mode": mode,
        "walks": walks,
        "get": scenario.get,
        "window": scenario.window,
    }
    before = server.ask("stats")
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.walks", "--client", json.dumps(spec)],
        cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    after = server.ask("stats")
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"ok": False, "error": done.stderr.strip()[-1500:]}
    result: dict[str, Any] = json.loads(lines[-1])
    result["throttled"] = after["throttled"] - before["throttled"]
    result["server_cpu_seconds"] = after["cpu_seconds"] - before["cpu_seconds"]
    expected = after["logs"]
    problems = []
    if not result["records"] == result["unique"] == result["lines"] == expected:
        problems.append(
            f"{result['lines']} lines, {result['unique']} unique ids, "
            f"{result['records']} records; the server holds {expected}"
        )
    result["ok"] = not problems
    if problems:
        result["error"] = "; ".join(problems)
    return result


# ------------------------------------------------------------------------------ the scenarios


def measure(scenario: WalkScenario, progress: Any = None) -> dict[str, Any]:
    """Every export of ``scenario`` against one server process; the report of the scenario."""
    # The same process protocol as the many-accounts benchmark's: port, stats, reset, quit.
    server = ServerProcess(scenario, module="benchmarks.walks", startup=300)
    results = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-walks-") as tmp:
            for label, mode, walks in scenario.runs:
                result = run_export(server, scenario, mode, walks, Path(tmp))
                result.update(label=label, mode=mode, walks=walks)
                results.append(result)
                if progress is not None:
                    shown = (
                        f"{result['seconds']:.2f} s"
                        if result["ok"]
                        else f"FAILED: {result['error']}"
                    )
                    progress(f"  {scenario.name} {label}: {shown}")
    finally:
        server.stop()
    report: dict[str, Any] = {**asdict(scenario), "results": results}
    ok = all(r["ok"] for r in results)
    if ok and scenario.name == "walks-latency":
        sequential, parallel = results[0], results[1]
        report["speedup"] = sequential["seconds"] / parallel["seconds"]
    if ok and scenario.name == "ceiling":
        result = results[0]
        requests = result["requests"]
        forced = (requests - 1) // scenario.get * scenario.window
        result["forced_seconds"] = forced
        result["ceiling_fraction"] = forced / result["answered_span"]
        if result["throttled"]:
            ok = False
            result["error"] = f"{result['throttled']} requests were answered 429"
    report["ok"] = ok
    return report


def render(report: dict[str, Any]) -> str:
    """The scenario's section of the results (Markdown)."""
    total = report["integrations"] * report["logs_per_integration"]
    lines = [
        f"### {report['name']}: {report['title']}",
        "",
        f"{total:,} logs in {report['integrations']} integrations, page_size={PAGE_SIZE}, "
        f"{report['latency'] * 1000:.0f} ms a request on the server; "
        + (
            f"budget {report['get']} GET per {report['window']:g} s "
            f"(ceiling {report['get'] / report['window'] * PAGE_SIZE:,.0f} logs/s)."
            if report["get"] < UNLIMITED_GET
            else "no rate limit in reach."
        ),
        "",
        "| export | time s | records/s | requests | 429s | client CPU s | server CPU s |",
        "|:--|--:|--:|--:|--:|--:|--:|",
    ]
    for r in report["results"]:
        if not r["ok"] and "seconds" not in r:
            lines.append(f"| {r['label']} | FAILED: {r['error']} | | | | | |")
            continue
        lines.append(
            f"| {r['label']} | {r['seconds']:.2f} | {r['records'] / r['seconds']:,.0f} | "
            f"{r['requests']:,} | {r['throttled']} | {r['cpu_seconds']:.2f} | "
            f"{r['server_cpu_seconds']:.2f} |"
        )
    lines.append("")
    if "speedup" in report:
        lines.append(
            f"Per-integration vs account-wide: **{report['speedup']:.2f}×** the records/s."
        )
    for r in report["results"]:
        if "ceiling_fraction" in r:
            lines.append(
                f"The budget forces {r['forced_seconds']:.1f} s between the first and the last "
                f"of {r['requests']} requests; they took {r['answered_span']:.2f} s: "
                f"**{r['ceiling_fraction'] * 100:.1f} % of the ceiling**, "
                f"{r['throttled']} × 429."
            )
    for r in report["results"]:
        if not r["ok"]:
            lines.append(f"- {r['label']} — FAILED: {r.get('error')}")
    return "\n".join(lines)


def run_scenarios(
    names: list[str] | None, smoke: bool, progress: Any = None
) -> list[dict[str, Any]]:
    """Measure the named scenarios (all by default)."""
    chosen = [s for s in SCENARIOS if not names or s.name in names]
    return [measure(scenario_for(s, smoke), progress) for s in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.walks", description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes (seconds)")
    parser.add_argument(
        "--scenario", action="append", choices=[s.name for s in SCENARIOS], help="only these"
    )
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        fields = json.loads(args.serve)
        fields["runs"] = tuple(tuple(run) for run in fields["runs"])
        asyncio.run(_serve(WalkScenario(**fields)))
        return 0
    if args.client:
        print(json.dumps(asyncio.run(_client(json.loads(args.client)))), flush=True)
        return 0

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    reports = run_scenarios(args.scenario, args.smoke, say)
    for report in reports:
        print()
        print(render(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "scenarios": reports}
        args.json.write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if all(r["ok"] for r in reports) else 1


if __name__ == "__main__":
    raise SystemExit(main())
