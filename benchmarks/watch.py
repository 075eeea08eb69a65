"""Watching many accounts: the client's cost of one poll cycle with nothing new.

    python -m benchmarks.watch                        # 1,000 and 10,000 accounts
    python -m benchmarks.watch --accounts 200 --cycles 2 --json benchmarks/_results/w.json
    python -m benchmarks.watch --smoke                # 50 accounts, seconds (CI)
    python -m benchmarks.watch --lookback 30,0        # the lookback window's cost, side by side
    python -m benchmarks.watch --gc-freeze            # every client frozen after its warm-up
    python -m benchmarks.watch --accounts 100000 --lookback 30 --no-baseline --cycles 1
    python -m benchmarks.watch --accounts 500 --lookback 30 --cycles 3 --instructions

A ``FakeSendcloud`` runs in its own process with N Basic accounts (two
integrations, ten logs, shared by every account, created on 2023-03-01: every
account is idle for far longer than any window). The client process makes one
``AccountPool`` (rate gate on, Sendcloud's limits) and one ``LogWatcher`` over
the N accounts with a ``MemoryWatchStore``, ``concurrency=100``:

* a first ``run(once=True)`` (``start="all"``) delivers the ten logs to every
  account and creates the connections and states (not measured);
* then ``--cycles`` more ``run(once=True)`` of the same watcher, each with nothing
  new: per account ``GET /integrations`` (health) and one ``GET /integrations/logs``
  page. One watcher for the whole run, as a long-running poller has: it loads and
  checks each account's stored state once, at its first poll (until 2026-12-07 each
  measured cycle made a new ``LogWatcher``, so every poll also reloaded its state).

Measured per cycle: wall time, the client process's CPU time (user + system)
per account, the requests the server received per account, and, once, the RSS
growth per account (RSS after the last cycle over the RSS before the credentials
and the pool were made). The server's CPU is not counted. Each size has one client
per ``--lookback`` value (the watch's default window and none, by default) and
contender, each in its own process, against one server: they warm up one after
the other, then their measured cycles alternate (client A's first cycle, client
B's first, ...), so every ratio is of figures taken side by side, under the same
load. Figures are the median cycle.

Beside each SDK run, a *hand-written* client makes the same requests for the same
accounts (unless ``--no-baseline``): the code of the ``raw_msgspec`` contender
(``contenders/raw_msgspec.py``: ``fetch``, its Structs and decoders) on one
``aiohttp.ClientSession``, with the account's ``Authorization`` header,
``concurrency`` workers, each body decoded by a ``msgspec.json.Decoder`` into
Structs. Its warm-up lists each account's logs once and takes the newest
``created_at``; every measured cycle then asks, per account, for
``GET /integrations`` and the very logs page an idle watch asks for (``cursor`` one
microsecond below ``newest - lookback``, or below ``newest`` once the newest log is
more than ``lookback`` + 2 s old, as the seeded logs of 2023 are: the watch's window
is then closed; ``page_size`` 100). It does what it takes to fetch and decode,
nothing a watch does with the page (no state, no store, no rate gate, no retries):
the SDK's CPU over its CPU is the price of everything the SDK adds to an idle poll.

For the memory of many accounts, run one size alone with one window and no
baseline (``--accounts 100000 --lookback 30 --no-baseline --cycles 1``): the
RSS figure is the growth over the whole run (taken after the last cycle, so the
states, gates and connections of every account are in it), per account.

``--instructions`` runs every client under Valgrind's callgrind (``_callgrind``) and
counts the instructions each executes during each measured cycle (the median cycle
is shown): the same comparison with a figure that neither the machine's load nor
the other processes move. Its clients run some 50 times slower, so count a
few hundred accounts; the table then shows instructions, not times.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sendcloud_async._defaults import DEFAULT_WATCH_LOOKBACK

from . import _callgrind
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


SDK = "sdk"
HAND_WRITTEN = "hand-written"
CONCURRENCY = 100
PAGE_SIZE = 100


@dataclass
class Result:
    accounts: int
    contender: str
    lookback_s: float
    cycles: int
    wall_s: float
    cpu_per_account_us: float
    rss_per_account_kib: float
    requests_per_account: float
    logs_delivered: int
    failures: int
    #: Instructions executed per account and cycle (``--instructions``; 0: not counted).
    instructions_per_account: float = 0.0


async def _measure(port: int, accounts: int, lookback: float, freeze: bool) -> Result:
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
            "concurrency": CONCURRENCY,
            "lookback": lookback,
        }
        watcher = sc.LogWatcher(pool, auths, **options)
        await watcher.run(handle, once=True)

        async def cycle() -> None:
            await watcher.run(handle, once=True)

        await _cycles(cycle, freeze)
        rss_after = _rss()
    return _result(accounts, SDK, lookback, rss_after - rss_before, delivered, failures)


def _result(
    accounts: int, contender: str, lookback: float, rss: int, delivered: int, failures: int
) -> Result:
    """What a client reports at the end (the parent adds the cycles' figures)."""
    return Result(
        accounts=accounts,
        contender=contender,
        lookback_s=lookback,
        cycles=0,
        wall_s=0.0,
        cpu_per_account_us=0.0,
        rss_per_account_kib=rss / accounts / 1024,
        requests_per_account=0,  # counted by the server
        logs_delivered=delivered,
        failures=failures,
    )


async def _cycles(cycle: Callable[[], Awaitable[None]], freeze: bool) -> None:
    """Warmed up: one cycle per ``cycle`` line read, its wall and CPU seconds printed.

    ``freeze`` (``--gc-freeze``): what exists after the warm-up is moved out of the
    garbage collector's reach (``gc.freeze()``), as a program watching many accounts
    may do; every client of a run alike.

    The parent alternates the clients of a size cycle by cycle, so their figures are
    taken side by side, under the same load; any other line ends the client.
    """
    if freeze:
        gc.collect()
        gc.freeze()
    print("warm", flush=True)
    loop = asyncio.get_running_loop()
    while (await loop.run_in_executor(None, sys.stdin.readline)).strip() == "cycle":
        wall, cpu = time.perf_counter(), _cpu()
        await cycle()
        print(json.dumps([time.perf_counter() - wall, _cpu() - cpu]), flush=True)


# -- the hand-written client: ``contenders/raw_msgspec.py``'s GET and msgspec Structs -----


async def _each(names: Iterable[str], work: Callable[[str], Awaitable[None]]) -> None:
    """``work(name)`` for every name, ``CONCURRENCY`` at a time (as the watcher runs them)."""
    todo = iter(names)

    async def worker() -> None:
        for name in todo:
            await work(name)

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))


async def _measure_raw(port: int, accounts: int, lookback: float, freeze: bool) -> Result:
    import aiohttp

    from .contenders._common import basic_authorization
    from .contenders.raw_msgspec import DECODER, INTEGRATIONS, fetch

    rss_before = _rss()
    base = f"http://127.0.0.1:{port}/api/v3"
    integrations, logs = f"{base}/integrations", f"{base}/integrations/logs"
    headers = {
        f"acct-{n}": {
            "Accept": "application/json",
            "Authorization": basic_authorization(f"pk-{n}", f"sk-{n}"),
        }
        for n in range(accounts)
    }
    cursors: dict[str, str] = {}
    failures = 0
    delivered = 0
    back = timedelta(seconds=lookback)
    tick = timedelta(microseconds=1)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def warm(name: str) -> None:
            nonlocal delivered, failures
            await poll(name)
            try:
                _, body = await fetch(session, logs, {"page_size": PAGE_SIZE}, headers[name])
            except RuntimeError:
                failures += 1
                return
            found = DECODER.decode(body).data
            delivered += len(found)
            newest = max(log.created_at for log in found if log.created_at is not None)
            # The page an idle watch asks for: from its window's bottom, which is the
            # newest log itself once the server's clock is lookback + 2 s past it.
            idle = newest < datetime.now(UTC) - back - timedelta(seconds=2)
            cursors[name] = (newest - (tick if idle else back + tick)).isoformat()

        async def poll(name: str) -> None:
            nonlocal failures
            mine = headers[name]
            try:
                _, body = await fetch(session, integrations, None, mine)
                INTEGRATIONS.decode(body)
                cursor = cursors.get(name)
                if cursor is not None:
                    params = {"cursor": cursor, "page_size": PAGE_SIZE}
                    _, body = await fetch(session, logs, params, mine)
                    DECODER.decode(body)
            except RuntimeError:
                failures += 1

        await _each(headers, warm)

        async def cycle() -> None:
            await _each(headers, poll)

        await _cycles(cycle, freeze)
        rss_after = _rss()
    return _result(accounts, HAND_WRITTEN, lookback, rss_after - rss_before, delivered, failures)


def _size(
    accounts: int,
    cycles: int,
    clients: list[tuple[float, str]],
    freeze: bool,
    count: bool = False,
) -> list[Result]:
    """Every client of one size against one server, their cycles alternated.

    ``count``: each client runs under callgrind, counting its measured cycles only.
    """
    server = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.watch", "--serve", str(accounts)],
        cwd=ROOT,
        env=_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    running: list[subprocess.Popen[str]] = []
    outs: list[Path] = []
    counts = Path(tempfile.mkdtemp(prefix="watch-instructions-")) if count else None
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        # Each client in its own process, so that its RSS and CPU are its own.
        for lookback, contender in clients:
            spec = f"{port},{accounts},{lookback},{contender},{int(freeze)}"
            print(
                f"watch: {accounts:,} accounts, {contender}, lookback {lookback:g} s",
                file=sys.stderr,
            )
            prefix: list[str] = []
            if counts is not None:
                outs.append(counts / f"client-{len(outs)}.out")
                prefix = _callgrind.command(outs[-1])
            client = subprocess.Popen(
                [*prefix, sys.executable, "-m", "benchmarks.watch", "--client", spec],
                cwd=ROOT,
                env=_env(),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            running.append(client)
            if _ask(client, None) != "warm":  # warmed up one at a time: the server is shared
                raise RuntimeError("the benchmark client failed while warming up")
        _server_requests(server)  # the warm-ups', forgotten
        figures: list[list[tuple[float, float, int]]] = [[] for _ in running]
        # Counted, a client's cycles run back to back, after one more that is not
        # counted: a count does not move with the load, and under Valgrind a client
        # left idle while the others ran (seconds a cycle) finds its connections
        # closed (aiohttp keeps an idle one 15 s).
        turns = [
            (client, mine)
            for _ in range(cycles)
            for client, mine in zip(running, figures, strict=True)
        ]
        if count:
            turns.sort(key=lambda turn: running.index(turn[0]))
        for client, mine in turns:
            if count:
                if not mine:  # one cycle more, not counted: the connections open again
                    _ask(client, "cycle")
                    _server_requests(server)
                _callgrind.counting(client.pid, True)
            wall, cpu = json.loads(_ask(client, "cycle"))
            if count:
                _callgrind.counting(client.pid, False)
                _callgrind.dump(client.pid)
            mine.append((wall, cpu, _server_requests(server)))
        results = []
        for n, (client, mine) in enumerate(zip(running, figures, strict=True)):
            result = Result(**json.loads(_ask(client, "done")))
            if counts is not None:
                client.wait(300)  # callgrind writes its counts when the process ends
                counted = _callgrind.instructions(outs[n])
                if len(counted) != cycles:
                    raise RuntimeError(f"callgrind wrote {len(counted)} counts for {cycles} cycles")
                result.instructions_per_account = statistics.median(counted) / accounts
            result.cycles = cycles
            result.wall_s = statistics.median(f[0] for f in mine)
            result.cpu_per_account_us = statistics.median(f[1] for f in mine) / accounts * 1e6
            result.requests_per_account = round(sum(f[2] for f in mine) / accounts / cycles, 2)
            results.append(result)
        return results
    finally:
        for client in running:
            if client.poll() is None:
                client.kill()
            client.wait(30)
        assert server.stdin is not None
        server.stdin.close()
        server.wait(30)
        if counts is not None:
            shutil.rmtree(counts, ignore_errors=True)


def _ask(client: subprocess.Popen[str], line: str | None) -> str:
    """Send ``line`` (if any) to a client and read its answer."""
    assert client.stdin is not None
    assert client.stdout is not None
    if line is not None:
        client.stdin.write(line + "\n")
        client.stdin.flush()
    answer = client.stdout.readline()
    if not answer:
        raise RuntimeError(f"the benchmark client failed ({client.wait(30)})")
    return answer.strip()


def _server_requests(server: subprocess.Popen[str]) -> int:
    """The requests the server received since it was last asked (it then forgets them)."""
    assert server.stdin is not None
    assert server.stdout is not None
    server.stdin.write("count\n")
    server.stdin.flush()
    return int(server.stdout.readline())


def instructions_table(results: list[Result]) -> str:
    """``--instructions``: what each client executed per account and cycle, side by side."""
    rows = [
        "| accounts | client | lookback | instructions / account / cycle |"
        " per request | vs hand-written | requests / account / cycle | failures |",
        "|---:|:---|---:|---:|---:|---:|---:|---:|",
    ]
    found = {(r.accounts, r.contender, r.lookback_s): r for r in results}
    for r in results:
        raw = found.get((r.accounts, HAND_WRITTEN, r.lookback_s))
        count = r.instructions_per_account
        versus = "" if raw is None else f"{count / raw.instructions_per_account:.2f}×"
        per_request = f"{count / r.requests_per_account:,.0f}" if r.requests_per_account else ""
        rows.append(
            f"| {r.accounts:,} | {r.contender} | {r.lookback_s:g} s | {count:,.0f} |"
            f" {per_request} | {versus} | {r.requests_per_account:g} | {r.failures} |"
        )
    return "\n".join(rows)


def table(results: list[Result]) -> str:
    rows = [
        "| accounts | client | lookback | cycle wall time | client CPU / account / cycle |"
        " CPU / request | CPU vs no window | CPU vs hand-written | RSS / account |"
        " requests / account / cycle | failures |",
        "|---:|:---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    found = {(r.accounts, r.contender, r.lookback_s): r for r in results}
    for r in results:
        zero = found.get((r.accounts, r.contender, 0.0))
        raw = found.get((r.accounts, HAND_WRITTEN, r.lookback_s))
        window = "" if zero is None else f"{r.cpu_per_account_us / zero.cpu_per_account_us:.2f}×"
        versus = "" if raw is None else f"{r.cpu_per_account_us / raw.cpu_per_account_us:.2f}×"
        per_request = (
            f"{r.cpu_per_account_us / r.requests_per_account:,.0f} µs"
            if r.requests_per_account
            else ""
        )
        rows.append(
            f"| {r.accounts:,} | {r.contender} | {r.lookback_s:g} s | {r.wall_s:.2f} s |"
            f" {r.cpu_per_account_us:,.0f} µs | {per_request} | {window} | {versus} |"
            f" {r.rss_per_account_kib:.1f} KiB | {r.requests_per_account:g} | {r.failures} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.watch", description=__doc__)
    parser.add_argument("--accounts", default="1000,10000", help="sizes, comma-separated")
    parser.add_argument("--cycles", type=int, default=5, help="measured cycles per client (5)")
    parser.add_argument("--smoke", action="store_true", help="50 accounts, 1 cycle")
    parser.add_argument(
        "--lookback",
        default=f"{DEFAULT_WATCH_LOOKBACK:g},0",
        help="lookback windows to compare, seconds, comma-separated (the default and 0)",
    )
    parser.add_argument(
        "--no-baseline",
        action="store_true",
        help="leave out the hand-written aiohttp + msgspec client",
    )
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() in every client after its warm-up (docs/watch.md)",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count each client's instructions under Valgrind's callgrind (slow: few accounts)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        asyncio.run(_serve(args.serve))
        return 0
    if args.client is not None:
        port, accounts, window, contender, freeze = args.client.split(",")
        measure = _measure if contender == SDK else _measure_raw
        measured = measure(int(port), int(accounts), float(window), freeze == "1")
        print(json.dumps(asdict(asyncio.run(measured))))
        return 0
    if args.instructions and (why := _callgrind.missing()) is not None:
        parser.error(f"--instructions: {why}")
    sizes = [50] if args.smoke else [int(v) for v in args.accounts.split(",")]
    cycles = 1 if args.smoke else args.cycles
    windows = [float(v) for v in args.lookback.split(",")]
    contenders = [SDK] if args.no_baseline else [SDK, HAND_WRITTEN]
    results = []
    for size in sizes:
        clients = [(w, c) for w in windows for c in contenders]
        results += _size(size, cycles, clients, args.gc_freeze, args.instructions)
    print(instructions_table(results) if args.instructions else table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump([asdict(r) for r in results], out, indent=2)
    ok = all(r.failures == 0 and r.logs_delivered == 10 * r.accounts for r in results)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
