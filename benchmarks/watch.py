"""Watching many accounts: the client's cost of one poll cycle with nothing new.

    python -m benchmarks.watch                        # 1,000 and 10,000 accounts
    python -m benchmarks.watch --accounts 200 --cycles 2 --json benchmarks/_results/w.json
    python -m benchmarks.watch --smoke                # 50 accounts, seconds (CI)
    python -m benchmarks.watch --lookback 30,0        # the lookback window's cost, side by side

A ``FakeSendcloud`` runs in its own process with N Basic accounts (two
integrations, ten logs, shared by every account). The client process makes one
``AccountPool`` (rate gate on, Sendcloud's limits) and one ``LogWatcher`` over
the N accounts with a ``MemoryWatchStore``, ``concurrency=100``:

* a first ``run(once=True)`` (``start="all"``) delivers the ten logs to every
  account and creates the connections and states (not measured);
* then ``--cycles`` more ``run(once=True)``, each with nothing new: per account
  ``GET /integrations`` (health) and one ``GET /integrations/logs`` page.

Measured per cycle: wall time, the client process's CPU time (user + system)
per account, the requests the server received per account, and, once, the RSS
growth per account (RSS after the warm-up cycle over the RSS before the pool was
made). The server's CPU is not counted. Each size runs once per ``--lookback``
value (the watch's default window and none, by default), one after the other in
the same run, so the window's cost is a ratio of figures taken side by side.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

from sendcloud_async._watch import DEFAULT_LOOKBACK

from ._process import ROOT, _cpu, _env, _rss

__all__ = ["main"]


async def _serve(accounts: int) -> None:
    from sendcloud_async.testing import FakeSendcloud

    async with FakeSendcloud(validate_spec=False) as fake:
        fake.seed(integrations=2, logs_per_integration=5, seed=1)
        for n in range(accounts):
            fake.add_account(f"pk-{n}", f"sk-{n}")
        print(fake.port, flush=True)
        loop = asyncio.get_running_loop()
        # One line in: the requests received since the last line, then forget them.
        while await loop.run_in_executor(None, sys.stdin.readline):
            print(len(fake.requests), flush=True)
            fake.clear_requests()


@dataclass
class Result:
    accounts: int
    lookback_s: float
    cycles: int
    wall_s: float
    cpu_per_account_us: float
    rss_per_account_kib: float
    requests_per_account: float
    logs_delivered: int
    failures: int


async def _measure(port: int, accounts: int, cycles: int, lookback: float) -> Result:
    import sendcloud_async as sc

    rss_before = _rss()
    auths = {f"acct-{n}": sc.BasicAuth(f"pk-{n}", f"sk-{n}") for n in range(accounts)}
    delivered = 0
    failures = 0

    def handle(event: sc.WatchEvent) -> None:
        nonlocal delivered, failures
        if isinstance(event, sc.NewLogs):
            delivered += len(event.items)
        elif isinstance(event, sc.AccountFailed):
            failures += 1

    store = sc.MemoryWatchStore()
    base_url = f"http://127.0.0.1:{port}/api/v3"
    async with sc.AccountPool(base_url=base_url, rate_limit=sc.RateLimits()) as pool:
        options: dict[str, Any] = {
            "store": store,
            "start": "all",
            "concurrency": 100,
            "lookback": lookback,
        }
        await sc.LogWatcher(pool, auths, **options).run(handle, once=True)
        rss_after = _rss()
        # Warmed up: the parent has the server forget the warm-up's requests.
        print("warm", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        walls, cpus = [], []
        for _ in range(cycles):
            watcher = sc.LogWatcher(pool, auths, **options)
            wall, cpu = time.perf_counter(), _cpu()
            await watcher.run(handle, once=True)
            walls.append(time.perf_counter() - wall)
            cpus.append(_cpu() - cpu)
    return Result(
        accounts=accounts,
        lookback_s=lookback,
        cycles=cycles,
        wall_s=statistics.median(walls),
        cpu_per_account_us=statistics.median(cpus) / accounts * 1e6,
        rss_per_account_kib=(rss_after - rss_before) / accounts / 1024,
        requests_per_account=0,  # counted by the server
        logs_delivered=delivered,
        failures=failures,
    )


def _one(accounts: int, cycles: int, lookback: float) -> Result:
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.watch", "--serve", str(accounts)],
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        # The client in its own process too, so that its RSS and CPU are its own.
        spec = f"{port},{accounts},{cycles},{lookback}"
        client = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.watch", "--client", spec],
            cwd=ROOT,
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert client.stdin is not None
        assert client.stdout is not None
        assert client.stdout.readline().strip() == "warm"
        _server_requests(server)  # the warm-up's, forgotten
        client.stdin.write("go\n")
        client.stdin.flush()
        out, _ = client.communicate(timeout=3600)
        if client.returncode:
            raise RuntimeError(f"the benchmark client failed ({client.returncode})")
        result = Result(**json.loads(out))
        quiet = _server_requests(server)
        result.requests_per_account = round(quiet / accounts / cycles, 2)
        return result
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(30)


def _server_requests(server: subprocess.Popen[str]) -> int:
    """The requests the server received since it was last asked (it then forgets them)."""
    assert server.stdin is not None
    assert server.stdout is not None
    server.stdin.write("count\n")
    server.stdin.flush()
    return int(server.stdout.readline())


def table(results: list[Result]) -> str:
    rows = [
        "| accounts | lookback | cycle wall time | client CPU / account / cycle |"
        " CPU vs no window | RSS / account | requests / account / cycle | failures |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    base = {r.accounts: r for r in results if r.lookback_s == 0}
    for r in results:
        zero = base.get(r.accounts)
        ratio = "" if zero is None else f"{r.cpu_per_account_us / zero.cpu_per_account_us:.2f}×"
        rows.append(
            f"| {r.accounts:,} | {r.lookback_s:g} s | {r.wall_s:.2f} s |"
            f" {r.cpu_per_account_us:,.0f} µs | {ratio} | {r.rss_per_account_kib:.1f} KiB |"
            f" {r.requests_per_account:g} | {r.failures} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watch", description=__doc__)
    parser.add_argument("--accounts", default="1000,10000", help="sizes, comma-separated")
    parser.add_argument("--cycles", type=int, default=3, help="measured cycles (3)")
    parser.add_argument("--smoke", action="store_true", help="50 accounts, 1 cycle")
    parser.add_argument(
        "--lookback",
        default=f"{DEFAULT_LOOKBACK.total_seconds():g},0",
        help="lookback windows to compare, seconds, comma-separated (the default and 0)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        asyncio.run(_serve(args.serve))
        return 0
    if args.client is not None:
        port, accounts, cycles, window = args.client.split(",")
        measured = _measure(int(port), int(accounts), int(cycles), float(window))
        print(json.dumps(asdict(asyncio.run(measured))))
        return 0
    sizes = [50] if args.smoke else [int(v) for v in args.accounts.split(",")]
    cycles = 1 if args.smoke else args.cycles
    windows = [float(v) for v in args.lookback.split(",")]
    results = []
    for size in sizes:
        for window in windows:
            print(f"watch: {size:,} accounts, lookback {window:g} s ...", file=sys.stderr)
            results.append(_one(size, cycles, window))
    print(table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([asdict(r) for r in results], out, indent=2)
    ok = all(r.failures == 0 and r.logs_delivered == 10 * r.accounts for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
