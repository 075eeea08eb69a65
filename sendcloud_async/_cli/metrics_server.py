"""The page ``--metrics HOST:PORT`` serves: Prometheus text, ``/healthz`` and ``/readyz``.

Built from ``sendcloud_async.events`` (a process-wide subscription while the
command runs) through the SDK's one table of metrics (``_metrics``), written in
Prometheus' text format 0.0.4 by hand: no extra package is needed.

* ``/metrics``: every metric of ``_metrics.INSTRUMENTS`` seen so far, and
  ``sendcloud_async_info{version="…"} 1``;
* ``/healthz``: 200 while the command's event loop answers (alive);
* ``/readyz``: 200 when the command is doing its job, else 503 and why: an export
  while it runs; a watch once every account has been polled up to date once; a
  Redis watch while it holds at least one account's lease.
"""

from __future__ import annotations

import math
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Final

from aiohttp import web

from .. import events
from .._metrics import INSTRUMENTS, Attributes, Instrument, Measurer
from .._version import __version__
from ..events import Event, LeaseClaimed, LeaseLost, LeaseReleased, PollCompleted
from .metrics import MetricsAddress

__all__ = ["Readiness", "Registry", "serving"]

#: The content type of Prometheus' text exposition format.
CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

_Labels = tuple[tuple[str, str], ...]


class _Histogram:
    __slots__ = ("count", "counts", "sum")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.count = 0
        self.sum = 0.0


def _labels(attributes: Attributes) -> _Labels:
    return tuple(sorted((key.replace(".", "_"), str(value)) for key, value in attributes.items()))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _series(name: str, labels: _Labels, value: float, extra: str = "") -> str:
    parts = [f'{key}="{_escape(text)}"' for key, text in labels]
    if extra:
        parts.append(extra)
    inside = "{" + ",".join(parts) + "}" if parts else ""
    return f"{name}{inside} {_number(value)}"


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Registry:
    """The values of every metric, from the events it is given; ``render()`` is the page."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._measurer = Measurer()
        self._values: dict[Instrument, dict[_Labels, float]] = {}
        self._histograms: dict[Instrument, dict[_Labels, _Histogram]] = {}

    def __call__(self, event: Event) -> None:
        for instrument, value, attributes in self._measurer.measure(event):
            labels = _labels(attributes)
            with self._lock:
                if instrument.kind == "histogram":
                    series = self._histograms.setdefault(instrument, {})
                    histogram = series.get(labels)
                    if histogram is None:
                        histogram = series[labels] = _Histogram(len(instrument.buckets))
                    for n, bound in enumerate(instrument.buckets):
                        if value <= bound:
                            histogram.counts[n] += 1
                    histogram.count += 1
                    histogram.sum += value
                elif instrument.kind == "counter":
                    values = self._values.setdefault(instrument, {})
                    values[labels] = values.get(labels, 0.0) + value
                else:
                    self._values.setdefault(instrument, {})[labels] = value

    def render(self) -> str:
        """The page in Prometheus' text format 0.0.4."""
        lines = [
            "# HELP sendcloud_async_info The SDK's version.",
            "# TYPE sendcloud_async_info gauge",
            _series("sendcloud_async_info", (("version", __version__),), 1),
        ]
        with self._lock:
            for instrument in INSTRUMENTS:
                values = self._values.get(instrument)
                histograms = self._histograms.get(instrument)
                if not values and not histograms:
                    continue
                lines.append(f"# HELP {instrument.prom} {instrument.description}")
                lines.append(f"# TYPE {instrument.prom} {instrument.kind}")
                for labels, value in sorted((values or {}).items()):
                    lines.append(_series(instrument.prom, labels, value))
                for labels, histogram in sorted((histograms or {}).items()):
                    lines.extend(_histogram_lines(instrument, labels, histogram))
        return "\n".join(lines) + "\n"


def _histogram_lines(instrument: Instrument, labels: _Labels, histogram: _Histogram) -> list[str]:
    name = instrument.prom
    lines = [
        _series(f"{name}_bucket", labels, count, f'le="{_number(bound)}"')
        for bound, count in zip(instrument.buckets, histogram.counts, strict=True)
    ]
    lines.append(_series(f"{name}_bucket", labels, histogram.count, 'le="+Inf"'))
    lines.append(_series(f"{name}_sum", labels, histogram.sum))
    lines.append(_series(f"{name}_count", labels, histogram.count))
    return lines


class Readiness:
    """Whether the command does its job: ``ready()`` is ``(yes or no, why)``.

    ``accounts``: a watch is ready once each has been polled up to date once;
    ``leases``: a Redis watch is ready while it holds a lease; neither: ready.
    """

    def __init__(self, *, accounts: Sequence[str] | None = None, leases: bool = False) -> None:
        self._waiting = set(accounts or ())
        self._expected = len(self._waiting)
        self._leases = leases
        self._held: set[str] = set()

    def __call__(self, event: Event) -> None:
        if isinstance(event, PollCompleted):
            self._waiting.discard(event.account)
        elif isinstance(event, LeaseClaimed):
            self._held.add(event.account)
        elif isinstance(event, LeaseReleased | LeaseLost):
            self._held.discard(event.account)

    def ready(self) -> tuple[bool, str]:
        if self._leases:
            if not self._held:
                return False, "not ready: this worker holds no account's lease"
            return True, f"ready: holding {len(self._held)} lease(s)"
        if self._waiting:
            return False, (
                f"not ready: {len(self._waiting)} of {self._expected} account(s) "
                "not polled up to date yet"
            )
        return True, "ready"


def _app(registry: Registry, readiness: Readiness) -> web.Application:
    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=registry.render().encode(), headers={"Content-Type": CONTENT_TYPE})

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(request: web.Request) -> web.Response:
        ok, why = readiness.ready()
        return web.Response(text=why + "\n", status=200 if ok else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


@asynccontextmanager
async def serving(
    address: MetricsAddress,
    *,
    say: Callable[[str, int], None],
    accounts: Sequence[str] | None = None,
    leases: bool = False,
) -> AsyncIterator[None]:
    """Serve the page on ``address`` while the block runs (``say(host, port)`` once bound).

    A port that cannot be had is an ``OSError`` saying so (exit 1, as a port
    ``fake serve`` cannot have), raised before any work starts.
    """
    registry = Registry()
    readiness = Readiness(accounts=accounts, leases=leases)
    with events.subscribe(registry), events.subscribe(readiness):
        runner = web.AppRunner(_app(registry, readiness), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            site = web.TCPSite(runner, address.host, address.port)
            try:
                await site.start()
            except OSError as exc:
                raise OSError(
                    exc.errno, f"--metrics {address}: cannot listen there: {exc.strerror or exc}"
                ) from None
            host, port = runner.addresses[0][:2]
            say(str(host), int(port))
            yield
        finally:
            await runner.cleanup()
