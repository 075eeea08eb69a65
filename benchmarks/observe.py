"""What observing the request path costs: nobody listening, beside the previous release.

    python -m benchmarks.observe                     # 5 rounds of 2,000 calls per mode (~2 min)
    python -m benchmarks.observe --smoke             # 2 rounds of 200 (seconds; CI)
    python -m benchmarks.observe --baseline REV      # another git revision as the reference
    python -m benchmarks.observe --baseline none     # the current package's modes only

Two measurements, side by side in one run:

* **per call, end to end**: ``client.integrations.get`` against FakeSendcloud, one
  call after the other, with

  - the **previous release**: the package as it was at ``--baseline`` (default: the
    latest release tag, else ``DEFAULT_BASELINE``, the last commit before the
    observability work), extracted from git (``git archive``) into a temporary
    directory and imported from there (``PYTHONPATH``), nobody listening (it has no
    subscribers);
  - the current package, **nobody listening** (the default);
  - both of these again **on the application's session** (an ``aiohttp.ClientSession``
    made with the SDK's settings and lent to the client): the SDK adds its aiohttp
    tracing signals to a borrowed session, in both releases, while the current one
    no longer puts them on the sessions it makes itself. The default pair shows what
    a user sees; this pair, tracing on both sides, the observability work alone;
  - **one subscriber**: one ``events.subscribe`` callback that does nothing;
  - the **OpenTelemetry SDK**: ``sendcloud_async.otel`` reporting to a
    ``TracerProvider`` whose ``BatchSpanProcessor`` hands spans to an exporter that
    drops them, and a ``MeterProvider`` with an in-memory reader (the spans and
    metrics are built, aggregated and exported as in production, minus the network).

  Every mode of every round runs in a fresh process (``python -P``: the working
  directory is not put on the import path, so the previous release's package is
  the one imported; each child reports which it imported, and a wrong one fails the
  run), so that all pay the same start and import costs and none shares another's
  modules. The modes take turns round by round, in a rotating order, so that a busy
  moment of the machine hits each alike. The server is one FakeSendcloud process of
  the current tree for the whole run: every mode talks to the same server code, and a
  child's process CPU time (``time.process_time``, its threads included: the span
  processor's too) is the client's alone. Reported: the median over rounds of the
  mean wall time and CPU time per call, the function calls of a call (Python and
  built-in, counted by ``cProfile`` over ``COUNTED`` more calls after the timed ones:
  a figure no load on the machine moves), their ratios to the previous release, and
  for each pair the ratio of nobody listening to the previous release with its spread
  over the rounds (goal: at most ``GOAL``). CPU time is the steadier figure on a
  shared machine.
* **the request path's own share**: the events of one call (``begin``, an
  attempt's ``sending``/``finished``, ``ended``) without any request, per mode, in
  this process: what the SDK adds to a call, free of the server's and aiohttp's time.

The run fails (exit status 1) if a child fails, imports the wrong package, or the
server did not see exactly the requests the children made. Needs
``opentelemetry-sdk`` (``benchmarks/requirements.txt``) and, for the previous
release, ``git`` and the repository's history (a smoke run without them skips it).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._process import ROOT, ServerProcess

__all__ = ["main"]

#: The reference when the repository has no release tag: the last commit before the
#: observability work (``sendcloud_async.events``, ``otel``, ``CallEnded``, the hub).
DEFAULT_BASELINE = "3c421fd"
#: Nobody listening may cost at most this much more than the previous release.
GOAL = 1.02

NOBODY = "nobody listening"
#: A mode on a session the application made and lent to the client.
BORROWED = ", application's session"
MODES = (NOBODY, "one subscriber", "OpenTelemetry SDK")
#: Calls before the measured ones: one warms the connection, caches and code paths;
#: the second after the mode is set, so its own code is warm too.
WARM_UP = 50
WARM_UP_IN_MODE = 20
#: Calls made under ``cProfile`` after the timed ones, to count the function calls of one.
COUNTED = 100
PUBLIC_KEY = "observe-public-key"
SECRET_KEY = "observe-secret-key"


@contextmanager
def _mode(name: str) -> Iterator[None]:
    if name == NOBODY:
        yield
        return
    if name == "one subscriber":
        from sendcloud_async import events

        with events.subscribe(lambda event: None):
            yield
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from sendcloud_async import otel

    class Dropping(SpanExporter):
        def export(self, spans: Sequence[Any]) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Dropping()))
    reader = InMemoryMetricReader()
    otel.instrument(tracer_provider=tracer_provider, meter_provider=MeterProvider([reader]))
    try:
        yield
    finally:
        otel.uninstrument()
        tracer_provider.shutdown()
        reader.get_metrics_data()


# ------------------------------------------------------------------- the previous release


class BaselineUnavailable(Exception):
    """The previous release cannot be had (no git, no history, an unknown revision)."""


def _git(*args: str, failure: str = "") -> bytes:
    """``git args`` in the repository: its output, or ``BaselineUnavailable`` saying why not."""
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, timeout=60, check=False
        )
    except FileNotFoundError:
        raise BaselineUnavailable("git is not installed") from None
    except subprocess.TimeoutExpired:
        raise BaselineUnavailable(f"git {args[0]} timed out") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise BaselineUnavailable(
            failure or f"git {args[0]}: {message[-1] if message else 'failed'}"
        )
    return done.stdout


def default_baseline() -> str:
    """The latest release tag reachable from HEAD, else ``DEFAULT_BASELINE``."""
    try:
        tag = _git("describe", "--tags", "--abbrev=0").decode().strip()
    except BaselineUnavailable:
        return DEFAULT_BASELINE
    return tag or DEFAULT_BASELINE


def extract_baseline(revision: str, into: Path) -> str:
    """Write ``sendcloud_async`` as it was at ``revision`` under ``into``; its short commit."""
    commit = _git(
        "rev-parse",
        "--verify",
        "--quiet",
        f"{revision}^{{commit}}",
        failure=f"no commit {revision!r} in this repository's history (a shallow clone?)",
    ).decode()
    commit = commit.strip()
    archive = _git("archive", "--format=tar", commit, "sendcloud_async")
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(into, filter="data")
    if not (into / "sendcloud_async" / "__init__.py").is_file():
        raise BaselineUnavailable(f"{revision} has no sendcloud_async package")
    return commit[:7]


# ------------------------------------------------------------------------------ server process


@dataclass(frozen=True)
class ServerConfig:
    public_key: str = PUBLIC_KEY
    secret_key: str = SECRET_KEY


async def _serve(config: ServerConfig) -> None:
    from sendcloud_async.testing import FakeSendcloud

    async with FakeSendcloud(public_key=config.public_key, secret_key=config.secret_key) as fake:
        integration = fake.add_integration()["id"]
        print(fake.port, flush=True)
        loop = asyncio.get_running_loop()
        while True:
            command = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
            if command != "stats":  # EOF or "quit"
                return
            stats = {"integration": integration, "requests": len(fake.requests)}
            print(json.dumps(stats), flush=True)


# ------------------------------------------------------------------- one mode, one process


async def _child_calls(spec: dict[str, Any]) -> dict[str, Any]:
    import aiohttp

    import sendcloud_async as sc

    calls: int = spec["calls"]
    integration = spec["integration"]
    auth = sc.BasicAuth(PUBLIC_KEY, SECRET_KEY)
    session = None
    if spec["borrowed"]:  # the SDK's session settings, but the application's session
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=100, limit_per_host=0),
            cookie_jar=aiohttp.DummyCookieJar(),
        )
    try:
        async with sc.SendcloudClient(
            auth=auth, base_url=spec["base_url"], session=session
        ) as client:
            for _ in range(WARM_UP):
                await client.integrations.get(integration)
            with _mode(spec["mode"]):
                for _ in range(WARM_UP_IN_MODE):
                    await client.integrations.get(integration)
                wall = time.perf_counter()
                cpu = time.process_time()
                for _ in range(calls):
                    await client.integrations.get(integration)
                cpu = time.process_time() - cpu
                wall = time.perf_counter() - wall
                # After the timing: the function calls of a request, which no load moves.
                profile = cProfile.Profile()
                profile.enable()
                for _ in range(COUNTED):
                    await client.integrations.get(integration)
                profile.disable()
    finally:
        if session is not None:
            await session.close()
    return {
        "wall": wall / calls,
        "cpu": cpu / calls,
        "functions": pstats.Stats(profile).total_calls / COUNTED,  # type: ignore[attr-defined]
        "requests": WARM_UP + WARM_UP_IN_MODE + calls + COUNTED,
    }


@dataclass(frozen=True)
class Contender:
    label: str
    mode: str
    #: The directory holding the ``sendcloud_async`` to import.
    root: Path
    #: On a session the application made (the SDK adds aiohttp tracing signals to it).
    borrowed: bool = False


@dataclass(frozen=True)
class Sample:
    wall: float
    cpu: float
    #: Function calls (Python and built-in, ``cProfile``) per request.
    functions: float
    requests: int


def _run_child(contender: Contender, base_url: str, integration: object, calls: int) -> Sample:
    """One mode's calls in a fresh process importing ``contender.root``'s package."""
    spec = {
        "mode": contender.mode,
        "borrowed": contender.borrowed,
        "base_url": base_url,
        "integration": integration,
        "calls": calls,
    }
    env = dict(os.environ)
    paths = [str(contender.root), str(ROOT), env.get("PYTHONPATH", "")]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(filter(None, paths)))
    command = [sys.executable, "-P", "-m", "benchmarks.observe", "--child", json.dumps(spec)]
    done = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{contender.label}: the child exited {done.returncode}: {done.stderr.strip()[-500:]}"
        )
    found: dict[str, Any] = json.loads(lines[-1])
    expected = (contender.root / "sendcloud_async").resolve()
    if Path(found["package"]) != expected:
        raise RuntimeError(
            f"{contender.label}: the child imported {found['package']}, not {expected}"
        )
    return Sample(
        float(found["wall"]), float(found["cpu"]), float(found["functions"]), int(found["requests"])
    )


def measure(contenders: list[Contender], calls: int, rounds: int) -> dict[str, list[Sample]]:
    """Every contender once per round, rotating the order, against one server process."""
    server = ServerProcess(ServerConfig(), module="benchmarks.observe")
    found: dict[str, list[Sample]] = {c.label: [] for c in contenders}
    try:
        integration = server.ask("stats")["integration"]
        for n in range(rounds):
            shift = n % len(contenders)
            for contender in contenders[shift:] + contenders[:shift]:
                sample = _run_child(contender, server.base_url, integration, calls)
                found[contender.label].append(sample)
                print(
                    f"round {n + 1}/{rounds} {contender.label}: "
                    f"{_us(sample.wall)} wall, {_us(sample.cpu)} CPU per call",
                    file=sys.stderr,
                    flush=True,
                )
        served = server.ask("stats")["requests"]
    finally:
        server.stop()
    made = sum(s.requests for samples in found.values() for s in samples)
    if served != made:
        raise RuntimeError(f"the server saw {served} requests, the children made {made}")
    return found


# ------------------------------------------------------------------------------ events alone


def _path_share(calls: int, rounds: int) -> dict[str, float]:
    from sendcloud_async import _observe

    def one_call() -> None:
        # What the transport does: NO_CALL's methods are called too, and do nothing.
        call = _observe.begin("GET", "http://127.0.0.1:1/api/v3/integrations/1", "a.b", "/a/{id}")
        observed = call is not _observe.NO_CALL
        if observed:
            call.account = "basic:key"
        call.sending(1)
        call.finished(1, status=200)
        if observed:
            call.ended(status=200, headers={})

    found: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode in MODES:
            with _mode(mode):
                began = time.perf_counter()
                for _ in range(calls):
                    one_call()
                found[mode].append((time.perf_counter() - began) / calls)
    return {mode: statistics.median(times) for mode, times in found.items()}


# ------------------------------------------------------------------------------ output


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def _ratio(value: float) -> str:
    return f"{value:.3f}×"


def end_to_end_table(found: dict[str, list[Sample]], reference: str) -> str:
    wall = {label: statistics.median(s.wall for s in samples) for label, samples in found.items()}
    cpu = {label: statistics.median(s.cpu for s in samples) for label, samples in found.items()}
    lines = [
        "### Per call, end to end (FakeSendcloud in a process of its own)",
        "",
        f"| mode | wall per call | vs {reference} | client CPU per call | vs {reference} "
        f"| function calls per call | vs {reference} |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label in found:
        calls = statistics.median(s.functions for s in found[label])
        base = statistics.median(s.functions for s in found[reference])
        lines.append(
            f"| {label} | {_us(wall[label])} | {_ratio(wall[label] / wall[reference])} "
            f"| {_us(cpu[label])} | {_ratio(cpu[label] / cpu[reference])} "
            f"| {calls:,.0f} | {_ratio(calls / base)} |"
        )
    return "\n".join(lines)


def verdict(found: dict[str, list[Sample]], ours: str, theirs: str, what: str) -> list[str]:
    """``ours`` against ``theirs``: ratio of the medians, and the spread of the per-round ratios."""
    lines = []
    picks = (("client CPU", _cpu_of), ("wall", _wall_of), ("function calls", _functions_of))
    for name, pick in picks:
        ratio = statistics.median(map(pick, found[ours])) / statistics.median(
            map(pick, found[theirs])
        )
        rounds = sorted(pick(a) / pick(b) for a, b in zip(found[ours], found[theirs], strict=True))
        met = "met" if ratio <= GOAL else "NOT met"
        lines.append(
            f"- {what}, {name}: {_ratio(ratio)} (per round {_ratio(rounds[0])} to "
            f"{_ratio(rounds[-1])}); goal ≤ {_ratio(GOAL)}: {met}"
        )
    return lines


def _cpu_of(sample: Sample) -> float:
    return sample.cpu


def _wall_of(sample: Sample) -> float:
    return sample.wall


def _functions_of(sample: Sample) -> float:
    return sample.functions


def share_table(medians: dict[str, float], unit: Callable[[float], str]) -> str:
    base = medians[NOBODY]
    lines = [
        "### The request path's events alone (no request, this process)",
        "",
        "| mode | per call | added |",
        "|---|---:|---:|",
    ]
    for mode in MODES:
        value = medians[mode]
        added = "" if mode == NOBODY else f"+{unit(value - base)}"
        lines.append(f"| {mode} | {unit(value)} | {added} |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.observe",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, default=2000, help="calls per mode and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="2 rounds of 200 calls")
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help="the git revision to compare with (default: the latest release tag, else "
        f"{DEFAULT_BASELINE}); 'none' to leave it out",
    )
    parser.add_argument("--serve", metavar="CONFIG", help=argparse.SUPPRESS)
    parser.add_argument("--child", metavar="SPEC", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve(ServerConfig(**json.loads(args.serve))))
        return 0
    if args.child:
        result = asyncio.run(_child_calls(json.loads(args.child)))
        import sendcloud_async

        result["package"] = str(Path(sendcloud_async.__file__).resolve().parent)
        print(json.dumps(result), flush=True)
        return 0
    calls, rounds = (200, 2) if args.smoke else (args.calls, args.rounds)
    if calls < 1 or rounds < 1:
        parser.error("--calls and --rounds must be at least 1")
    contenders = [Contender(mode, mode, ROOT) for mode in MODES]
    contenders.insert(1, Contender(NOBODY + BORROWED, NOBODY, ROOT, borrowed=True))
    with tempfile.TemporaryDirectory(prefix="observe-baseline-") as directory:
        baseline = None
        note = "previous release: left out (--baseline none)"
        if args.baseline != "none":
            revision = args.baseline or default_baseline()
            try:
                commit = extract_baseline(revision, Path(directory))
            except BaselineUnavailable as exc:
                if not args.smoke:
                    print(
                        f"error: cannot extract the previous release {revision}: {exc} "
                        "(--baseline none leaves it out)",
                        file=sys.stderr,
                    )
                    return 2
                note = f"previous release: skipped ({exc})"
            else:
                shown = revision if commit.startswith(revision) else f"{revision}, {commit}"
                baseline = f"previous release ({shown})"
                note = f"previous release: {shown}, nobody listening (it has no subscribers)"
                contenders[:0] = [
                    Contender(baseline, NOBODY, Path(directory)),
                    Contender(baseline + BORROWED, NOBODY, Path(directory), borrowed=True),
                ]
        try:
            found = measure(contenders, calls, rounds)
        except RuntimeError as exc:
            print(f"FAILED: {exc}", file=sys.stderr)
            return 1
    share = _path_share(2_000 if args.smoke else 10_000, min(rounds, 5))
    print(
        f"{calls:,} sequential calls of client.integrations.get per mode and round, "
        f"{rounds} rounds taking turns, each mode in a fresh process; medians over rounds; "
        f"{note}\n"
    )
    print(end_to_end_table(found, baseline or NOBODY))
    if baseline is not None:
        print()
        lines = verdict(found, NOBODY, baseline, "Nobody listening / previous release")
        lines += verdict(
            found,
            NOBODY + BORROWED,
            baseline + BORROWED,
            f"The same{BORROWED} (aiohttp's tracing signals on both sides)",
        )
        print("\n".join(lines))
    print()
    print(share_table(share, _us))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
