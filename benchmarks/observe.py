"""What observing the request path costs: nobody listening, beside an OpenTelemetry SDK.

    python -m benchmarks.observe                 # 5 rounds of 1,000 calls per mode
    python -m benchmarks.observe --smoke         # 2 rounds of 200 (seconds; CI)

Two measurements, side by side in one run:

* **per call, end to end**: ``client.integrations.get`` against an in-process
  FakeSendcloud, one call after the other, in three modes: nobody listening
  (the default), one ``events.subscribe`` callback that does nothing, and
  ``sendcloud_async.otel`` reporting to an OpenTelemetry SDK (a ``TracerProvider``
  whose ``BatchSpanProcessor`` hands spans to an exporter that drops them, and a
  ``MeterProvider`` with an in-memory reader: the spans and metrics are built,
  aggregated and exported as in production, minus the network). The modes take turns
  round by round, so that a busy moment of the machine hits each alike; reported:
  the median over rounds of the mean time per call, and its difference to nobody
  listening.
* **the request path's own share**: the events of one call (``begin``, an
  attempt's ``sending``/``finished``, ``ended``) without any request, per mode:
  what the SDK adds to a call, free of the server's and aiohttp's time.

Needs ``opentelemetry-sdk`` (``benchmarks/requirements.txt``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = ["main"]

MODES = ("nobody listening", "one subscriber", "OpenTelemetry SDK")


@contextmanager
def _mode(name: str) -> Iterator[None]:
    from sendcloud_async import events, otel

    if name == "nobody listening":
        yield
        return
    if name == "one subscriber":
        with events.subscribe(lambda event: None):
            yield
        return
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

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


async def _calls(calls: int, rounds: int) -> dict[str, list[float]]:
    import sendcloud_async as sc
    from sendcloud_async.testing import FakeSendcloud

    found: dict[str, list[float]] = {mode: [] for mode in MODES}
    async with FakeSendcloud() as fake:
        iid = fake.add_integration()["id"]
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            for _ in range(50):  # warm up: connections, caches
                await client.integrations.get(iid)
            for n in range(rounds):
                for mode in MODES[n % 3 :] + MODES[: n % 3]:
                    with _mode(mode):
                        began = time.perf_counter()
                        for _ in range(calls):
                            await client.integrations.get(iid)
                        found[mode].append((time.perf_counter() - began) / calls)
                    print(f"round {n + 1}/{rounds} {mode}: done", file=sys.stderr)
    return found


def _path_share(calls: int, rounds: int) -> dict[str, float]:
    from sendcloud_async import _observe

    def one_call() -> None:
        call = _observe.begin("GET", "http://127.0.0.1:1/api/v3/integrations/1", "a.b", "/a/{id}")
        if call is _observe.NO_CALL:
            return
        call.account = "basic:key"
        call.sending(1)
        call.finished(1, status=200)
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


def _table(title: str, medians: dict[str, float], unit: Callable[[float], str]) -> str:
    base = medians[MODES[0]]
    lines = [f"### {title}", "", "| mode | per call | added |", "|---|---:|---:|"]
    for mode in MODES:
        value = medians[mode]
        added = "" if mode == MODES[0] else f"+{unit(value - base)}"
        lines.append(f"| {mode} | {unit(value)} | {added} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.observe", description=__doc__)
    parser.add_argument("--calls", type=int, default=1000, help="calls per mode and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="2 rounds of 200 calls")
    args = parser.parse_args(argv)
    calls, rounds = (200, 2) if args.smoke else (args.calls, args.rounds)
    timed = asyncio.run(_calls(calls, rounds))
    medians = {mode: statistics.median(times) for mode, times in timed.items()}
    share = _path_share(calls * 10, rounds)
    print(f"{calls:,} sequential calls per mode and round, {rounds} rounds, medians\n")
    print(_table("Per call, end to end (FakeSendcloud in process)", medians, _us))
    print()
    print(_table("The request path's events alone (no request)", share, _us))
    return 0


def _us(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


if __name__ == "__main__":
    raise SystemExit(main())
