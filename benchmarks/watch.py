"""Watching many accounts: the client's cost of one poll cycle with nothing new.

    python -m benchmarks.watch                        # 1,000 and 10,000 accounts
    python -m benchmarks.watch --accounts 200 --cycles 2 --json benchmarks/_results/w.json
    python -m benchmarks.watch --smoke                # 50 accounts, seconds (CI)

A ``FakeSendcloud`` runs in its own process with N Basic accounts (two
integrations, ten logs, shared by every account). The client process makes one
``AccountPool`` (rate gate on, Sendcloud's limits) and one ``LogWatcher`` over
the N accounts with a ``MemoryWatchStore``, ``concurrency=100``:

* a first ``run(once=True)`` (``start="all"``) delivers the ten logs to every
  account and creates the connections and states (not measured);
* then ``--cycles`` more ``run(once=True)``, each with nothing new: per account
  ``GET /integrations`` (health) and one ``GET /integrations/logs`` page.

Measured per cycle: wall time, the client process's CPU time (user + system)
per account, and, once, the RSS growth per account (RSS after the warm-up
cycle over the RSS before the pool was made). The server's CPU is not counted.
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

from ._process import ROOT, _cpu, _env, _rss

__all__ = ["main"]


async def _serve(accounts: int) -> None:
    from sendcloud_async.testing import FakeSendcloud

    async with FakeSendcloud(validate_spec=False) as fake:
        fake.seed(integrations=2, logs_per_integration=5, seed=1)
        for n in range(accounts):
            fake.add_account(f"pk-{n}", f"sk-{n}")
        print(fake.port, flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


@dataclass
class Result:
    accounts: int
    cycles: int
    wall_s: float
    cpu_per_account_us: float
    rss_per_account_kib: float
    requests_per_account: int
    logs_delivered: int
    failures: int


async def _measure(port: int, accounts: int, cycles: int) -> Result:
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
        options: dict[str, Any] = {"store": store, "start": "all", "concurrency": 100}
        await sc.LogWatcher(pool, auths, **options).run(handle, once=True)
        rss_after = _rss()
        walls, cpus = [], []
        for _ in range(cycles):
            watcher = sc.LogWatcher(pool, auths, **options)
            wall, cpu = time.perf_counter(), _cpu()
            await watcher.run(handle, once=True)
            walls.append(time.perf_counter() - wall)
            cpus.append(_cpu() - cpu)
    return Result(
        accounts=accounts,
        cycles=cycles,
        wall_s=statistics.median(walls),
        cpu_per_account_us=statistics.median(cpus) / accounts * 1e6,
        rss_per_account_kib=(rss_after - rss_before) / accounts / 1024,
        requests_per_account=2,
        logs_delivered=delivered,
        failures=failures,
    )


def _one(accounts: int, cycles: int) -> Result:
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
        done = subprocess.run(
            [sys.executable, "-m", "benchmarks.watch", "--client", f"{port},{accounts},{cycles}"],
            cwd=ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            check=True,
        )
        return Result(**json.loads(done.stdout))
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(30)


def table(results: list[Result]) -> str:
    rows = [
        "| accounts | cycle wall time | client CPU / account / cycle | RSS / account |"
        " requests / account / cycle | failures |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r.accounts:,} | {r.wall_s:.2f} s | {r.cpu_per_account_us:,.0f} µs |"
            f" {r.rss_per_account_kib:.1f} KiB | {r.requests_per_account} | {r.failures} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watch", description=__doc__)
    parser.add_argument("--accounts", default="1000,10000", help="sizes, comma-separated")
    parser.add_argument("--cycles", type=int, default=3, help="measured cycles (3)")
    parser.add_argument("--smoke", action="store_true", help="50 accounts, 1 cycle")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        asyncio.run(_serve(args.serve))
        return 0
    if args.client is not None:
        port, accounts, cycles = (int(v) for v in args.client.split(","))
        print(json.dumps(asdict(asyncio.run(_measure(port, accounts, cycles)))))
        return 0
    sizes = [50] if args.smoke else [int(v) for v in args.accounts.split(",")]
    cycles = 1 if args.smoke else args.cycles
    results = []
    for size in sizes:
        print(f"watch: {size:,} accounts ...", file=sys.stderr, flush=True)
        results.append(_one(size, cycles))
    print(table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([asdict(r) for r in results], out, indent=2)
    ok = all(r.failures == 0 and r.logs_delivered == 10 * r.accounts for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
