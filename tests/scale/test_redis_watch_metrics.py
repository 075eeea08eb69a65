"""The Redis watch's lease events and metrics against a real redis-server.

Two workers share eight accounts; one dies without a word. The survivor's
takeovers reach ``sendcloud_async.events`` subscribers as ``LeaseClaimed``
(``how="takeover"``, naming the dead worker), OpenTelemetry's
``sendcloud.watch.lease.takeovers`` counter and the ``--metrics`` page alike.
"""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, NumberDataPoint
from prometheus_client.parser import text_string_to_metric_families

from sendcloud_async import events, otel
from sendcloud_async._cli.metrics_server import Readiness, Registry

from .test_redis_watch import StoreFactory, _Workers, stores

__all__ = ["stores"]  # the fixture that makes a worker's store


def _sum(reader: InMemoryMetricReader, name: str) -> float:
    data = reader.get_metrics_data()
    assert data is not None
    total = 0.0
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    total += sum(
                        p.value for p in metric.data.data_points if isinstance(p, NumberDataPoint)
                    )
    return total


async def test_a_dead_workers_leases_taken_over_are_counted(stores: StoreFactory) -> None:
    """Four takeovers from the dead worker: events, the OTel counter and the page agree."""
    accounts = [f"acct-{n}" for n in range(8)]
    reader = InMemoryMetricReader()
    otel.instrument(meter_provider=MeterProvider(metric_readers=[reader]))
    seen: list[events.Event] = []
    registry = Registry()
    workers = _Workers(stores, accounts, lease=0.4)
    try:
        with events.subscribe(seen.append), events.subscribe(registry):
            survivor = workers.start(worker_id="survivor-1")
            doomed = workers.start(worker_id="doomed-1")
            await workers.settle(lambda: len(survivor.held) == len(doomed.held) == 4)
            assert _sum(reader, "sendcloud.watch.lease.takeovers") == 0
            lost = set(doomed.held)
            workers.kill(doomed)
            await workers.settle(lambda: len(survivor.held) == 8)
            ready = Readiness(leases=True)
            for event in seen:
                ready(event)
    finally:
        await workers.aclose()
        otel.uninstrument()
    taken = [e for e in seen if isinstance(e, events.LeaseClaimed) and e.how == "takeover"]
    assert {e.account for e in taken} == lost
    assert {e.previous for e in taken} == {"doomed-1"}
    assert _sum(reader, "sendcloud.watch.lease.takeovers") == 4
    families = {f.name: f for f in text_string_to_metric_families(registry.render())}
    (takeovers,) = families["sendcloud_watch_lease_takeovers"].samples
    assert (takeovers.labels, takeovers.value) == ({"sendcloud_lease_how": "takeover"}, 4)
    assert ready.ready()[0] is True
