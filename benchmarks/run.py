"""Run the bulk-export benchmarks: one server process per scenario, one process per contender run.

    python -m benchmarks.run              # every scenario, default rounds (~8 min on 2 cores)
    python -m benchmarks.run --smoke      # tiny sizes, 1 round: CI's check that contenders work
    python -m benchmarks.run --scenario bulk-200k --rounds 5 --json benchmarks/_results/bulk.json
    python -m benchmarks.run --contender raw_msgspec --contender sdk

For each scenario the runner starts ``benchmarks.server`` (pages pre-rendered
before its port is printed), then runs every available contender once per round
in alternating order (forward, then reversed, …), each in a fresh process. A run
counts only if the contender saw exactly the expected records with every id once
and the server saw exactly one request per page and no rejected request. The
table gives the median over rounds with min and max, and ratios to the
hand-written aiohttp + msgspec loop. Then, unless ``--scenario`` names only
others, the per-integration export scenarios of ``benchmarks.walks`` run
(``walks-latency``, ``ceiling``; once each, the SDK only), so that one run gives
every figure side by side.

Exit status: 0 if every available contender verified its data in every run (and
every ``--require``d contender was available), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from . import generate_client, walks

ROOT = Path(__file__).resolve().parent.parent
BASELINE = "raw_msgspec"
SEED = 1

Kind = Literal["throughput", "requests", "memory", "latency"]


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    kind: Kind
    records: int
    page_size: int
    rounds: int
    smoke_records: int
    delay_ms: float = 0.0
    work_ms: float = 0.0


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "bulk-20k", "Bulk export", "throughput",
        records=20_000, page_size=100, rounds=5, smoke_records=250,
    ),
    Scenario(
        "bulk-200k", "Bulk export", "throughput",
        records=200_000, page_size=100, rounds=3, smoke_records=1_000,
    ),
    Scenario(
        "per-request", "Per-request cost (one record per page)", "requests",
        records=5_000, page_size=1, rounds=3, smoke_records=30,
    ),
    Scenario(
        "memory", "Peak memory of a streaming export", "memory",
        records=1_000_000, page_size=100, rounds=1, smoke_records=2_000,
    ),
    Scenario(
        "latency", "Latency-bound export (server +20 ms per page, consumer awaits 2 ms per page)",
        "latency", records=10_000, page_size=100, rounds=3, smoke_records=300,
        delay_ms=20.0, work_ms=2.0,
    ),
)  # fmt: skip


@dataclass(frozen=True)
class Contender:
    name: str
    label: str
    #: The script in ``contenders/`` (default: ``name``) and its extra arguments.
    module: str = ""
    args: tuple[str, ...] = ()

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", f"benchmarks.contenders.{self.module or self.name}"]


CONTENDERS: tuple[Contender, ...] = (
    Contender("raw_msgspec", "aiohttp + msgspec Structs (hand-written)"),
    Contender("sdk", "sendcloud_async logs.iter()"),
    Contender("raw_json", "aiohttp + json.loads (hand-written)"),
    Contender("httpx_pydantic", "httpx + pydantic v2"),
    Contender("generated_client", "openapi-python-client (httpx + attrs)"),
    # The same two scripts on uvloop's event loop (unavailable without uvloop).
    Contender(
        "raw_msgspec_uvloop",
        "aiohttp + msgspec Structs on uvloop",
        "raw_msgspec",
        ("--loop", "uvloop"),
    ),
    Contender("sdk_uvloop", "sendcloud_async logs.iter() on uvloop", "sdk", ("--loop", "uvloop")),
)


@dataclass
class Availability:
    available: bool
    reason: str = ""
    versions: dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    ok: bool
    seconds: float | None = None
    cpu_seconds: float | None = None
    server_cpu_seconds: float | None = None
    count: int | None = None
    unique: int | None = None
    peak_rss: int | None = None
    start_rss: int | None = None
    requests: int | None = None
    rejected: int | None = None
    error: str | None = None


@dataclass
class Summary:
    contender: str
    label: str
    status: Literal["ok", "failed", "unavailable"]
    reason: str = ""
    runs: list[Run] = field(default_factory=list)
    median_seconds: float | None = None
    min_seconds: float | None = None
    max_seconds: float | None = None
    per_second: float | None = None
    cpu_seconds: float | None = None
    server_cpu_seconds: float | None = None
    ratio: float | None = None
    peak_rss: int | None = None
    rss_growth: int | None = None


# --------------------------------------------------------------------------- processes


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.setdefault("PYTHONHASHSEED", "0")
    return env


def _last_json(text: str) -> dict[str, Any] | None:
    for line in reversed(text.strip().splitlines()):
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def probe(contender: Contender) -> Availability:
    """Import the contender's libraries in a fresh process; report versions or the reason not."""
    command = [*contender.command, "--probe", *contender.args]
    try:
        done = subprocess.run(
            command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120, check=False
        )
    except subprocess.TimeoutExpired:
        return Availability(False, "probe timed out")
    result = _last_json(done.stdout)
    if result is None:
        return Availability(False, f"probe failed: {done.stderr.strip()[-300:]}")
    if "unavailable" in result:
        return Availability(False, str(result["unavailable"]))
    return Availability(True, versions=dict(result.get("versions", {})))


class Server:
    """``benchmarks.server`` in its own process, for one scenario."""

    def __init__(self, records: int, page_size: int, delay_ms: float) -> None:
        # Closed in stop(); the server's stderr is only read if it fails to start.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115
        command = [
            sys.executable, "-m", "benchmarks.server", "--records", str(records),
            "--page-size", str(page_size), "--delay-ms", str(delay_ms), "--seed", str(SEED),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        line: list[str] = []
        assert self.process.stdout is not None
        stdout = self.process.stdout
        reader = threading.Thread(target=lambda: line.append(stdout.readline()), daemon=True)
        reader.start()
        reader.join(timeout=600)
        if not line or not line[0].strip().isdigit():
            self.stop()
            self._stderr.seek(0)
            raise RuntimeError(f"server did not start: {self._stderr.read().decode()[-2000:]}")
        self.port = int(line[0])
        self.origin = f"http://127.0.0.1:{self.port}"
        self.base_url = f"{self.origin}/api/v3"

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.origin}/__stats", timeout=30) as response:
            value: dict[str, Any] = json.load(response)
        return value

    def warm_up(self, page_size: int) -> None:
        """One request outside any measurement, so the server's code paths are warm."""
        request = urllib.request.Request(
            f"{self.base_url}/integrations/logs?page_size={page_size}",
            headers={"Authorization": "Basic d2FybTp1cA=="},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._stderr.close()


def run_contender(contender: Contender, server: Server, scenario: Scenario, records: int) -> Run:
    command = [
        *contender.command, server.base_url, str(scenario.page_size), str(records),
        "--work-ms", str(scenario.work_ms), *contender.args,
    ]  # fmt: skip
    pages = -(-records // scenario.page_size)
    timeout = 60 + records / 1000
    try:
        before = server.stats()
        done = subprocess.run(
            command, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=timeout,
            check=False,
        )  # fmt: skip
        after = server.stats()
    except subprocess.TimeoutExpired:
        return Run(False, error=f"timed out after {timeout:.0f} s")
    except OSError as exc:
        return Run(False, error=f"benchmark server unreachable: {exc}")
    requests = after["requests"] - before["requests"]
    server_cpu = after["cpu_seconds"] - before["cpu_seconds"]
    rejected = after["rejected"] - before["rejected"]
    result = _last_json(done.stdout)
    if result is None:
        return Run(False, error=f"exit {done.returncode}: {done.stderr.strip()[-1500:]}")
    if "error" in result or "unavailable" in result:
        detail = result.get("error") or result.get("unavailable")
        return Run(False, error=f"{detail} {done.stderr.strip()[-800:]}".strip())
    run = Run(
        ok=True,
        seconds=float(result["seconds"]),
        cpu_seconds=float(result["cpu_seconds"]),
        server_cpu_seconds=server_cpu,
        count=int(result["count"]),
        unique=int(result["unique"]),
        peak_rss=int(result["peak_rss"]),
        start_rss=int(result["start_rss"]),
        requests=requests,
        rejected=rejected,
    )
    problems = []
    if run.count != records or run.unique != records:
        problems.append(f"saw {run.count} records, {run.unique} unique ids, expected {records}")
    if requests != pages or rejected:
        problems.append(f"server saw {requests} requests ({rejected} rejected), expected {pages}")
    if problems:
        run.ok = False
        run.error = "; ".join(problems)
    return run


# --------------------------------------------------------------------------- statistics


def summarize(scenario: Scenario, records: int, contender: Contender, runs: list[Run]) -> Summary:
    summary = Summary(contender.name, contender.label, "ok", runs=runs)
    failed = [run for run in runs if not run.ok]
    if failed:
        summary.status = "failed"
        summary.reason = failed[0].error or "failed"
        return summary
    seconds = [run.seconds for run in runs if run.seconds is not None]
    summary.median_seconds = statistics.median(seconds)
    summary.min_seconds = min(seconds)
    summary.max_seconds = max(seconds)
    units = -(-records // scenario.page_size) if scenario.kind == "requests" else records
    summary.per_second = units / summary.median_seconds if summary.median_seconds else None
    summary.cpu_seconds = statistics.median(r.cpu_seconds or 0.0 for r in runs)
    summary.server_cpu_seconds = statistics.median(r.server_cpu_seconds or 0.0 for r in runs)
    peaks = [run.peak_rss for run in runs if run.peak_rss is not None]
    growth = [
        run.peak_rss - run.start_rss
        for run in runs
        if run.peak_rss is not None and run.start_rss is not None
    ]
    summary.peak_rss = int(statistics.median(peaks))
    summary.rss_growth = int(statistics.median(growth))
    return summary


def add_ratios(scenario: Scenario, summaries: list[Summary]) -> None:
    """Time scenarios: baseline time / contender time (1.00 = as fast, 0.30 = 3.3× slower).
    Memory: contender peak RSS / baseline peak RSS (1.00 = as much, 2.00 = twice)."""
    base = next((s for s in summaries if s.contender == BASELINE and s.status == "ok"), None)
    if base is None:
        return
    for summary in summaries:
        if summary.status != "ok":
            continue
        if scenario.kind == "memory":
            if base.peak_rss and summary.peak_rss:
                summary.ratio = summary.peak_rss / base.peak_rss
        elif base.median_seconds and summary.median_seconds:
            summary.ratio = base.median_seconds / summary.median_seconds


# --------------------------------------------------------------------------- machine and versions


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    memory_gib: float | None = None
    try:
        with open("/proc/cpuinfo") as stream:
            for line in stream:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as stream:
            for line in stream:
                if line.startswith("MemTotal:"):
                    memory_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "platform": platform.platform(),
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "usable_cpus": usable,
        "memory_gib": memory_gib,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
    }


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def source_revision() -> str:
    commit = _git("rev-parse", "--short", "HEAD") or "no commit"
    dirty = _git("status", "--porcelain", "--", "sendcloud_async")
    return f"{commit}{' + uncommitted changes' if dirty else ''}"


def versions(availability: dict[str, Availability]) -> dict[str, str]:
    found: dict[str, str] = {}
    for info in availability.values():
        found.update(info.versions)
    with contextlib.suppress(metadata.PackageNotFoundError):
        found["nox"] = metadata.version("nox")
    return dict(sorted(found.items()))


# --------------------------------------------------------------------------- output


def _mib(value: int | None) -> str:
    return "—" if value is None else f"{value / 1024 / 1024:.1f}"


def _num(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _count(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join("-" * (w + 1) + ":" if i else ":" + "-" * (w + 1) for i, w in enumerate(widths))
        + "|"
    )
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def render_scenario(scenario: Scenario, records: int, rounds: int, summaries: list[Summary]) -> str:
    pages = -(-records // scenario.page_size)
    lines = [
        f"### {scenario.name}: {scenario.title}",
        "",
        f"{records:,} records, page_size={scenario.page_size} ({pages:,} requests), "
        f"{rounds} run{'s' if rounds != 1 else ''} per contender, alternating order; "
        "time is the median [min, max].",
    ]
    if scenario.kind == "latency":
        lower = pages * scenario.delay_ms / 1000
        serial = pages * (scenario.delay_ms + scenario.work_ms) / 1000
        lines.append(
            f"Floor: {lower:.2f} s if the next page is fetched while the consumer works, "
            f"{serial:.2f} s if fetching and working alternate."
        )
    lines.append("")
    if scenario.kind == "memory":
        header = ["contender", "peak RSS MiB", "growth MiB", "peak vs baseline", "time s (1 run)"]
    elif scenario.kind == "requests":
        header = ["contender", "time s", "requests/s", "µs/request", "vs baseline"]
    else:
        header = ["contender", "time s", "records/s", "vs baseline", "peak RSS MiB"]
    header += ["client CPU s", "server CPU s"]
    rows: list[list[str]] = []
    notes: list[str] = []
    for s in summaries:
        if s.status != "ok":
            state = "unavailable" if s.status == "unavailable" else "FAILED"
            notes.append(f"- {s.label} — {state}: {s.reason}")
            continue
        time_cell = f"{_num(s.median_seconds)} [{_num(s.min_seconds)}, {_num(s.max_seconds)}]"
        ratio = "—" if s.ratio is None else f"{s.ratio:.2f}×"
        if scenario.kind == "memory":
            row = [_mib(s.peak_rss), _mib(s.rss_growth), ratio, _num(s.median_seconds)]
        elif scenario.kind == "requests":
            per_request = None if not s.per_second else 1e6 / s.per_second
            row = [time_cell, _count(s.per_second), _num(per_request, 0), ratio]
        else:
            row = [time_cell, _count(s.per_second), ratio, _mib(s.peak_rss)]
        rows.append([s.label, *row, _num(s.cpu_seconds, 2), _num(s.server_cpu_seconds, 2)])
    if rows:
        lines.append(_table(header, rows))
    if notes:
        lines.extend(["", *notes])
    return "\n".join(lines)


def render_header(report: dict[str, Any]) -> str:
    m = report["machine"]
    memory = f", {m['memory_gib']} GiB RAM" if m.get("memory_gib") else ""
    lib = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    lines = [
        "## sendcloud-async bulk-export benchmarks" + (" (smoke run)" if report["smoke"] else ""),
        "",
        f"- Machine: {m['cpu']}, {m['usable_cpus']} usable CPUs{memory}; {m['platform']}",
        f"- Python: {m['python']}; server and each contender run in separate processes",
        f"- Libraries: {lib}",
        f"- sendcloud_async source: {report['sdk_source']}",
        f"- Generated client: {report['generated_client']['note']}",
        "- Ratios: time scenarios give baseline time / contender time (higher is faster); "
        "the memory scenario gives contender peak RSS / baseline peak RSS (lower is leaner). "
        "Baseline: the hand-written aiohttp + msgspec loop.",
    ]
    load = m.get("load_average_at_start")
    if load is not None and load > 0.5:
        lines.append(
            f"- Warning: 1-minute load average was {load} before the run started: other "
            "processes shared the CPUs, so times are noisier than usual"
        )
    unavailable = [
        f"{name} ({info['reason']})"
        for name, info in report["contenders"].items()
        if not info["available"]
    ]
    if unavailable:
        lines.append(f"- Unavailable: {'; '.join(unavailable)}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- main


def _names(values: list[str] | None) -> list[str]:
    return [name for value in values or [] for name in value.split(",") if name]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description="Bulk log export benchmarks."
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, 1 round (CI)")
    parser.add_argument(
        "--scenario", action="append", metavar="NAME",
        help="run only these (repeat or comma-separate): "
        + ", ".join([s.name for s in SCENARIOS] + [s.name for s in walks.SCENARIOS]),
    )  # fmt: skip
    parser.add_argument(
        "--contender", action="append", metavar="NAME",
        help=f"run only these: {', '.join(c.name for c in CONTENDERS)}",
    )  # fmt: skip
    parser.add_argument("--rounds", type=int, help="runs per contender (default: per scenario)")
    parser.add_argument("--records", type=int, help="override the record count of every scenario")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    parser.add_argument(
        "--require", action="append", metavar="NAME",
        help="fail (exit 1) if this contender is unavailable, e.g. --require sdk",
    )  # fmt: skip
    parser.add_argument("--spec", type=Path, help="OpenAPI spec for the generated client")
    args = parser.parse_args(argv)
    known_scenarios = {s.name for s in SCENARIOS} | {s.name for s in walks.SCENARIOS}
    known_contenders = {c.name for c in CONTENDERS}
    for name in _names(args.scenario):
        if name not in known_scenarios:
            parser.error(f"unknown scenario {name!r}; choose from {sorted(known_scenarios)}")
    for name in _names(args.contender) + _names(args.require):
        if name not in known_contenders:
            parser.error(f"unknown contender {name!r}; choose from {sorted(known_contenders)}")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    return args


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    load_before = _load_average()
    wanted_scenarios = _names(args.scenario)
    scenarios = [s for s in SCENARIOS if not wanted_scenarios or s.name in wanted_scenarios]
    wanted_contenders = _names(args.contender)
    contenders = [c for c in CONTENDERS if not wanted_contenders or c.name in wanted_contenders]

    generation = generate_client.Generation(False, "not requested")
    if any(c.name == "generated_client" for c in contenders):
        _progress("generating the openapi-python-client contender …")
        generation = generate_client.generate(args.spec)
        _progress(f"  {generation.note}")

    availability: dict[str, Availability] = {}
    for contender in contenders:
        if contender.name == "generated_client" and not generation.ok:
            availability[contender.name] = Availability(False, generation.note)
        else:
            availability[contender.name] = probe(contender)
        info = availability[contender.name]
        _progress(f"  {contender.name}: {'available' if info.available else info.reason}")
    runnable = [c for c in contenders if availability[c.name].available]

    report: dict[str, Any] = {
        "schema": 1,
        "smoke": args.smoke,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {**machine(), "load_average_at_start": load_before},
        "versions": versions(availability),
        "sdk_source": source_revision(),
        "generated_client": asdict(generation),
        "baseline": BASELINE,
        "seed": SEED,
        "contenders": {
            c.name: {"label": c.label, **asdict(availability[c.name])} for c in contenders
        },
        "scenarios": [],
    }
    all_ok = True
    for name in _names(args.require):
        if name in availability and not availability[name].available:
            _progress(f"required contender {name} is unavailable")
            all_ok = False
    sections: list[str] = []
    for scenario in scenarios:
        records = args.records or (scenario.smoke_records if args.smoke else scenario.records)
        rounds = args.rounds or (1 if args.smoke else scenario.rounds)
        _progress(f"{scenario.name}: rendering {records:,} records …")
        server = Server(records, scenario.page_size, scenario.delay_ms)
        runs: dict[str, list[Run]] = {c.name: [] for c in runnable}
        try:
            server.warm_up(scenario.page_size)
            for round_index in range(rounds):
                order = runnable if round_index % 2 == 0 else runnable[::-1]
                for contender in order:
                    run = run_contender(contender, server, scenario, records)
                    runs[contender.name].append(run)
                    shown = f"{run.seconds:.3f} s" if run.ok else f"FAILED: {run.error}"
                    _progress(f"  round {round_index + 1}/{rounds} {contender.name}: {shown}")
            try:
                server_stats = server.stats()
            except OSError as exc:
                server_stats = {"error": str(exc)}
        finally:
            server.stop()
        summaries = []
        for contender in contenders:
            info = availability[contender.name]
            if not info.available:
                summaries.append(
                    Summary(contender.name, contender.label, "unavailable", reason=info.reason)
                )
            else:
                summaries.append(summarize(scenario, records, contender, runs[contender.name]))
        add_ratios(scenario, summaries)
        all_ok = all_ok and all(s.status != "failed" for s in summaries)
        report["scenarios"].append(
            {
                **asdict(scenario),
                "records": records,
                "rounds": rounds,
                "server": server_stats,
                "results": [asdict(s) for s in summaries],
            }
        )
        sections.append(render_scenario(scenario, records, rounds, summaries))
    # The walks scenarios (benchmarks/walks.py): the SDK's export engine only.
    walk_names = [s.name for s in walks.SCENARIOS if s.name in wanted_scenarios] or (
        [] if wanted_scenarios else [s.name for s in walks.SCENARIOS]
    )
    sdk_runs = availability.get("sdk", Availability(False)).available
    if walk_names and sdk_runs and args.records is None:
        report["walks"] = walks.run_scenarios(walk_names, args.smoke, _progress)
        all_ok = all_ok and all(r["ok"] for r in report["walks"])
        sections.extend(walks.render(r) for r in report["walks"])
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    report["machine"]["load_average_at_end"] = _load_average()
    report["ok"] = all_ok
    print(render_header(report))
    for section in sections:
        print()
        print(section)
    print()
    print(f"Wall time {report['wall_seconds']} s; {'all data verified' if all_ok else 'FAILURES'}.")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all_ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
