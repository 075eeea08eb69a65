"""Many accounts: 1,000 accounts polled at once, in one process and in four through Redis.

    python -m benchmarks.accounts                       # 1,000 accounts, 4 Redis workers
    python -m benchmarks.accounts --accounts 200 --workers 2 --json benchmarks/_results/a.json
    python -m benchmarks.accounts --smoke               # 50 accounts, seconds (CI)

Every account is an OAuth2 client of one ``FakeSendcloud`` that runs in its own
process and enforces per-account limits on a strict sliding window. The limits
keep Sendcloud's shape at a tenth of a second's scale, so a run takes seconds,
not minutes: 10 GET and 3 unsafe requests per 1-second window, at most 2 unsafe
requests at once (``--get``, ``--unsafe``, ``--concurrency``, ``--window``).
Each account's poll asks for more than one window's budget, so a client that
does not pace itself is throttled:

* ``cycles`` times, concurrently: ``GET /integrations``, one page of
  ``GET /integrations/logs`` (25 logs), ``GET /integrations/1`` and a
  ``PATCH /integrations/1``.

Scenarios, each in fresh processes (server, client or workers):

* ``gate on``: one process, one ``AccountPool`` (one session, 100 connections),
  ``rate_limit=RateLimits(...)`` with the server's limits. Token requests must
  equal the accounts and 429s must be 0.
* ``gate off``: the same without the gate (``max_retries=3``), to show what the
  gate saves.
* ``redis``: ``--workers`` processes, each polling every account
  (``cycles / workers`` cycles each) with ``state=RedisState`` on one
  ``redis-server`` started for the run: tokens and budgets shared across
  processes. Token requests must equal the accounts and 429s must be 0.
  Skipped (and said so) when ``redis-server`` or the ``redis`` package is missing.

Measured: wall time; calls per second; each call's latency (p50, p99, max:
from the call to its result, gate waits and retries included); the client
processes' CPU time per account and per call; RSS growth per account (after
the run, over the RSS before the pool was made); the server's token requests
and 429s; and, separately, the cost of the in-memory gate's fast path (an
``acquire`` + ``release`` that does not wait) in nanoseconds.

Exit status 0 only if every scenario that ran met its checks (for ``gate off``
there is none: it shows the 429s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ._process import ROOT, ServerProcess, _cpu, _env, _rss
from .run import machine, source_revision

LOGS_PER_INTEGRATION = 50


@dataclass(frozen=True)
class Config:
    accounts: int
    cycles: int
    get: int
    unsafe: int
    concurrency: int
    window: float
    connections: int = 100


@dataclass
class Result:
    scenario: str
    ok: bool
    checks: list[str] = field(default_factory=list)
    accounts: int = 0
    processes: int = 1
    calls: int = 0
    failed_calls: int = 0
    seconds: float = 0.0
    token_requests: int = 0
    throttled: int = 0
    api_requests: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    cpu_seconds: float = 0.0
    rss_growth: int = 0
    peak_unsafe_concurrency: int = 0
    note: str = ""


def _limits(config: Config) -> Any:
    import sendcloud_async as sc

    return sc.RateLimits(
        get=config.get,
        unsafe=config.unsafe,
        unsafe_concurrency=config.concurrency,
        window=config.window,
    )


# ------------------------------------------------------------------------------ server process


async def _serve(config: Config) -> None:
    from sendcloud_async.testing import FakeSendcloud

    async with FakeSendcloud(validate_spec=False) as fake:
        fake.seed(integrations=2, logs_per_integration=LOGS_PER_INTEGRATION, seed=1)
        fake.enforce_rate_limits(_limits(config))
        for n in range(config.accounts):
            fake.add_oauth_client(f"client-{n}", f"secret-{n}")
        print(fake.port, flush=True)
        loop = asyncio.get_running_loop()
        while True:
            command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if command == "stats":
                stats = {
                    "token_requests": fake.token_requests,
                    "tokens_by_client": fake.token_requests_by_client,
                    "throttled": fake.throttled,
                    "api_requests": sum(1 for r in fake.requests if r.path != "/oauth2/token/"),
                    "peak_unsafe_concurrency": max(
                        fake.peak_unsafe_concurrency.values(), default=0
                    ),
                    "cpu_seconds": _cpu(),
                }
                print(json.dumps(stats), flush=True)
            elif command == "reset":
                fake.clear_requests()
                fake.enforce_rate_limits(_limits(config))
                print("{}", flush=True)
            else:  # EOF or "quit"
                return


class RedisProcess:
    """A throw-away ``redis-server`` on a free loopback port, without persistence."""

    def __init__(self, binary: str) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self._dir = tempfile.TemporaryDirectory(prefix="bench-redis-")
        command = [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", self._dir.name, "--loglevel", "warning",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 5
        while not self._ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("redis-server did not start")
            time.sleep(0.01)

    def _ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._dir.cleanup()


# ------------------------------------------------------------------------------ client process


async def _client(spec: dict[str, Any]) -> dict[str, Any]:
    """Poll every account ``cycles`` times; the measurements as a dict."""
    import sendcloud_async as sc

    config = Config(**spec["config"])
    cycles: int = spec["cycles"]
    gated: bool = spec["gated"]
    redis_url: str | None = spec.get("redis")
    rss_before = _rss()
    state: Any = None
    if redis_url is not None:
        from sendcloud_async.redis import RedisState

        state = RedisState.from_url(redis_url, namespace="bench")
    latencies: list[float] = []
    failures: list[str] = []
    pool = sc.AccountPool(
        base_url=spec["base_url"],
        rate_limit=_limits(config) if gated else None,
        state=state,
        connections=config.connections,
        max_retries=3,
    )
    auths = [
        sc.OAuth2ClientCredentials(f"client-{n}", f"secret-{n}", token_url=spec["token_url"])
        for n in range(config.accounts)
    ]
    clients = [pool.client(auth) for auth in auths]
    rss_clients = _rss()

    async def timed(call: Any) -> None:
        began = time.perf_counter()
        try:
            await call
        except sc.SendcloudError as exc:
            failures.append(type(exc).__name__)
        latencies.append(time.perf_counter() - began)

    async def first_page(client: sc.SendcloudClient) -> None:
        async with contextlib.aclosing(client.logs.pages(page_size=25, read_ahead=0)) as pages:
            async for _ in pages:
                break

    async def poll(client: sc.SendcloudClient) -> None:
        for _ in range(cycles):
            await asyncio.gather(
                timed(client.integrations.list()),
                timed(first_page(client)),
                timed(client.integrations.get(1)),
                timed(client.integrations.update(1, shop_name="polled")),
            )

    if spec.get("barrier"):
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    cpu_before = _cpu()
    started = time.perf_counter()
    async with pool:
        await asyncio.gather(*(poll(c) for c in clients))
        token_requests = sum(c.token_requests for c in clients)
    seconds = time.perf_counter() - started
    cpu = _cpu() - cpu_before
    rss_after = _rss()
    if state is not None:
        await state.aclose()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "latencies": latencies,
        "failures": failures,
        "token_requests": token_requests,
        "rss_before": rss_before,
        "rss_clients": rss_clients,
        "rss_after": rss_after,
    }


async def _gate_cost(rounds: int = 200_000) -> dict[str, float]:
    """Nanoseconds of one acquire + release on the gate's fast path, and of the loop alone."""
    import sendcloud_async as sc
    from sendcloud_async._ratelimit import MemoryGate

    gate = MemoryGate(sc.RateLimits(get=10**9, window=60))

    async def nothing(method: str) -> object:
        return method

    best_gate = best_loop = float("inf")
    for _ in range(3):
        began = time.perf_counter()
        for _ in range(rounds):
            gate.release(await gate.acquire("GET"))
        best_gate = min(best_gate, time.perf_counter() - began)
        began = time.perf_counter()
        for _ in range(rounds):
            await nothing("GET")
        best_loop = min(best_loop, time.perf_counter() - began)
    return {
        "gate_ns": best_gate / rounds * 1e9,
        "loop_ns": best_loop / rounds * 1e9,
        "overhead_ns": (best_gate - best_loop) / rounds * 1e9,
    }


def _run_client(spec: dict[str, Any], barrier: bool = False) -> subprocess.Popen[str]:
    spec = {**spec, "barrier": barrier}
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks.accounts", "--client", json.dumps(spec)],
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


def _collect(process: subprocess.Popen[str], timeout: float = 900) -> dict[str, Any]:
    out, _ = process.communicate(timeout=timeout)
    for line in reversed(out.strip().splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise RuntimeError(f"a client process failed (exit status {process.returncode})")


def _percentile(values: list[float], q: int) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def _result(
    scenario: str,
    config: Config,
    clients: list[dict[str, Any]],
    stats: dict[str, Any],
    checked: bool,
) -> Result:
    latencies = [x for c in clients for x in c["latencies"]]
    failures = [x for c in clients for x in c["failures"]]
    result = Result(
        scenario=scenario,
        ok=True,
        accounts=config.accounts,
        processes=len(clients),
        calls=len(latencies),
        failed_calls=len(failures),
        seconds=max(c["seconds"] for c in clients),
        token_requests=stats["token_requests"],
        throttled=stats["throttled"],
        api_requests=stats["api_requests"],
        p50_ms=_percentile(latencies, 50) * 1000,
        p99_ms=_percentile(latencies, 99) * 1000,
        max_ms=max(latencies, default=0.0) * 1000,
        cpu_seconds=sum(c["cpu_seconds"] for c in clients),
        rss_growth=round(statistics.fmean(c["rss_after"] - c["rss_before"] for c in clients)),
        peak_unsafe_concurrency=stats["peak_unsafe_concurrency"],
    )
    if checked:
        checks = {
            f"token requests == accounts ({result.token_requests} == {config.accounts})": (
                result.token_requests == config.accounts
                and set(stats["tokens_by_client"].values()) == {1}
            ),
            f"429s == 0 ({result.throttled})": result.throttled == 0,
            f"failed calls == 0 ({result.failed_calls})": result.failed_calls == 0,
            f"peak unsafe concurrency <= {config.concurrency} ({result.peak_unsafe_concurrency})": (
                result.peak_unsafe_concurrency <= config.concurrency
            ),
        }
        result.checks = [("ok: " if good else "FAILED: ") + name for name, good in checks.items()]
        result.ok = all(checks.values())
    if failures:
        kinds = sorted(set(failures))
        result.note = f"failed calls: {', '.join(kinds)}"
    return result


def _scenario(name: str, config: Config, *, gated: bool, workers: int, redis: str | None) -> Result:
    print(f"# {name}: {config.accounts} accounts, {workers} process(es) ...", file=sys.stderr)
    server = ServerProcess(config, module="benchmarks.accounts")
    try:
        spec = {
            "config": asdict(config),
            "base_url": server.base_url,
            "token_url": server.token_url,
            "gated": gated,
            "redis": redis,
            "cycles": config.cycles if workers == 1 else max(1, config.cycles // workers),
        }
        processes = [_run_client(spec, barrier=True) for _ in range(workers)]
        for process in processes:  # every process set up before any starts
            assert process.stdout is not None
            line = process.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError(f"a client process did not start: {line!r}")
        for process in processes:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        clients = [_collect(p) for p in processes]
        stats = server.ask("stats")
    finally:
        server.stop()
    result = _result(name, config, clients, stats, checked=gated)
    print(
        f"  {result.seconds:.2f} s, {result.calls:,} calls, {result.throttled:,} 429s, "
        f"{result.token_requests:,} token requests, p50 {result.p50_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms",
        file=sys.stderr,
    )
    return result


def _gate_cost_in_fresh_process() -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.accounts", "--gate-cost"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    cost: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return cost


def _redis_available() -> tuple[str | None, str]:
    binary = shutil.which("redis-server")
    if binary is None:
        return None, "redis-server is not installed (apt-get install redis-server)"
    try:
        import redis  # noqa: F401
    except ImportError:
        return None, "the redis package is not installed (pip install 'sendcloud-async[redis]')"
    return binary, ""


# ------------------------------------------------------------------------------------- output


def _kib(value: float) -> str:
    return f"{value / 1024:,.1f}"


def table(results: list[Result], config: Config, cost: dict[str, float]) -> str:
    lines = [
        f"Limits enforced by the server and used by the gate: {config.get} GET and "
        f"{config.unsafe} unsafe requests per {config.window:g} s window, "
        f"{config.concurrency} unsafe at once, per account. Each account polls "
        f"{config.cycles} cycles of 3 GETs + 1 PATCH (in one process; split across "
        "the worker processes with Redis).",
        "",
        "| scenario | accounts | processes | calls | wall s | token requests | 429s "
        "| failed calls | p50 ms | p99 ms | max ms | client CPU ms / account "
        "| client CPU µs / call | RSS KiB / account | checks |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        per_account_cpu = r.cpu_seconds / r.accounts * 1000 if r.accounts else 0.0
        per_call_cpu = r.cpu_seconds / r.calls * 1e6 if r.calls else 0.0
        rss = r.rss_growth / r.accounts if r.accounts else 0.0
        checks = "—" if not r.checks else ("pass" if r.ok else "**FAIL**")
        lines.append(
            f"| {r.scenario} | {r.accounts:,} | {r.processes} | {r.calls:,} | {r.seconds:.2f} "
            f"| {r.token_requests:,} | {r.throttled:,} | {r.failed_calls:,} | {r.p50_ms:.1f} "
            f"| {r.p99_ms:.1f} | {r.max_ms:.1f} | {per_account_cpu:.2f} | {per_call_cpu:.0f} "
            f"| {_kib(rss)} | {checks} |"
        )
    lines += [
        "",
        f"In-memory gate fast path (acquire + release that does not wait): "
        f"{cost['gate_ns']:.0f} ns, of which {cost['loop_ns']:.0f} ns is awaiting any "
        f"coroutine; overhead {cost['overhead_ns']:.0f} ns per request.",
    ]
    for r in results:
        for check in r.checks:
            lines.append(f"- {r.scenario}: {check}")
        if r.note:
            lines.append(f"- {r.scenario}: {r.note}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.accounts", description=__doc__)
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=4, help="processes sharing Redis (4)")
    parser.add_argument("--cycles", type=int, default=4, help="polls per account (4)")
    parser.add_argument("--get", type=int, default=10, help="GETs per window (10)")
    parser.add_argument("--unsafe", type=int, default=3, help="unsafe requests per window (3)")
    parser.add_argument("--concurrency", type=int, default=2, help="unsafe at once (2)")
    parser.add_argument("--window", type=float, default=1.0, help="seconds (1.0)")
    parser.add_argument("--connections", type=int, default=100, help="pool size (100)")
    parser.add_argument("--smoke", action="store_true", help="50 accounts, 2 workers: seconds")
    parser.add_argument(
        "--scenarios",
        default="gate-on,gate-off,redis",
        help="comma-separated subset of gate-on, gate-off, redis (all)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--client", metavar="SPEC", help=argparse.SUPPRESS)
    parser.add_argument("--gate-cost", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.serve:
        asyncio.run(_serve(Config(**json.loads(args.serve))))
        return 0
    if args.client:
        print(json.dumps(asyncio.run(_client(json.loads(args.client)))), flush=True)
        return 0
    if args.gate_cost:
        print(json.dumps(asyncio.run(_gate_cost())), flush=True)
        return 0

    if args.smoke:
        args.accounts, args.workers = min(args.accounts, 50), min(args.workers, 2)
    config = Config(
        accounts=args.accounts,
        cycles=args.cycles,
        get=args.get,
        unsafe=args.unsafe,
        concurrency=args.concurrency,
        window=args.window,
        connections=args.connections,
    )
    wanted = {name.strip() for name in args.scenarios.split(",") if name.strip()}
    unknown = wanted - {"gate-on", "gate-off", "redis"}
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    began = datetime.now(UTC)
    results = []
    if "gate-on" in wanted:
        results.append(_scenario("gate on", config, gated=True, workers=1, redis=None))
    if "gate-off" in wanted:
        results.append(_scenario("gate off", config, gated=False, workers=1, redis=None))
    skipped = ""
    if "redis" not in wanted:
        skipped = "not asked for (--scenarios)"
    else:
        binary, skipped = _redis_available()
        if binary is not None:
            server = RedisProcess(binary)
            try:
                results.append(
                    _scenario(
                        f"redis, {args.workers} workers",
                        config,
                        gated=True,
                        workers=args.workers,
                        redis=server.url,
                    )
                )
            finally:
                server.stop()
    cost = _gate_cost_in_fresh_process()
    text = table(results, config, cost)
    if skipped:
        text += f"\n- redis scenario skipped: {skipped}"
    info = machine()
    header = (
        f"sendcloud_async {source_revision()}, {info['python']}, {info['cpu']} "
        f"({info['usable_cpus']} usable CPUs), {began:%Y-%m-%d %H:%M} UTC"
    )
    print(header)
    print()
    print(text)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "started": began.isoformat(),
            "machine": info,
            "revision": source_revision(),
            "config": asdict(config),
            "workers": args.workers,
            "results": [asdict(r) for r in results],
            "gate_fast_path": cost,
            "redis_skipped": skipped or None,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
