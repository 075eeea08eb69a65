"""Observability over a real FakeSendcloud: public events, OpenTelemetry spans and metrics.

The OpenTelemetry SDK's in-memory span exporter and metric reader receive what
``sendcloud_async.otel`` reports; ``sendcloud_async.events`` subscribers and
``capture_responses()`` see the same calls. Faults come from the fake's fault
injection (real 503s and 429s over a real socket).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import sendcloud_async as sc
from sendcloud_async import events, otel
from sendcloud_async._cli.metrics_server import Registry
from sendcloud_async._export import LogExport
from sendcloud_async._observe import NO_CALL, begin, listening, observing, publish
from sendcloud_async.testing import FakeSendcloud, Fault, RetryEvent
from tests.functional.test_secrets_sweep import CASES, Case, echo, leaks, make_auth

__all__ = ["echo"]  # the echoing server's fixture, used by the sweep below

ROOT = Path(__file__).resolve().parents[2]


class Telemetry:
    """An OpenTelemetry SDK with in-memory exporters, reported to by the SDK."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def spans(self, kind: SpanKind | None = None) -> list[ReadableSpan]:
        found = list(self.exporter.get_finished_spans())
        return [s for s in found if kind is None or s.kind == kind]

    def points(self, name: str) -> list[Any]:
        """Every data point of the metric ``name`` (all scopes)."""
        data = self.reader.get_metrics_data()
        found: list[Any] = []
        if data is None:
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend(metric.data.data_points)
        return found

    def labels(self) -> list[dict[str, Any]]:
        """The attributes of every data point of every metric."""
        data = self.reader.get_metrics_data()
        if data is None:
            return []
        return [
            dict(point.attributes or {})
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            for point in metric.data.data_points
        ]


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    """The SDK reports to a fresh in-memory OpenTelemetry SDK during the test."""
    found = Telemetry()
    otel.instrument(tracer_provider=found.tracer_provider, meter_provider=found.meter_provider)
    try:
        yield found
    finally:
        otel.uninstrument()


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


# -- OpenTelemetry --------------------------------------------------------------------------


async def test_a_call_retried_twice_is_one_call_span_with_three_attempt_spans(
    fake: FakeSendcloud,
    client: sc.SendcloudClient,
    retries: list[RetryEvent],
    telemetry: Telemetry,
) -> None:
    """Two 503s then a 200: one INTERNAL span, three CLIENT children (resend 0, 1, 2)."""
    iid = fake.add_integration()["id"]
    fake.inject("GET", "/integrations/{id}", Fault.status(503), Fault.status(503))
    await client.integrations.get(iid)
    assert len(retries) == 2
    (call,) = telemetry.spans(SpanKind.INTERNAL)
    attempts = sorted(telemetry.spans(SpanKind.CLIENT), key=lambda s: s.start_time or 0)
    assert call.name == "integrations.get"
    assert _attrs(call)["url.template"] == "/integrations/{id}"
    assert _attrs(call)["sendcloud.retries"] == 2
    assert _attrs(call)["sendcloud.account.identity"] == f"basic:{fake.public_key}"
    assert _attrs(call)["http.response.status_code"] == 200
    assert [e.name for e in call.events] == ["sendcloud.retry", "sendcloud.retry"]
    assert len(attempts) == 3
    for span in attempts:
        assert span.parent is not None
        assert span.parent.span_id == call.context.span_id
        assert span.name == "GET /integrations/{id}"
        attributes = _attrs(span)
        assert attributes["http.request.method"] == "GET"
        assert attributes["server.address"] == "127.0.0.1"
        assert attributes["url.full"] == f"{fake.base_url}/integrations/{iid}"
    assert [_attrs(s).get("http.request.resend_count", 0) for s in attempts] == [0, 1, 2]
    assert "http.request.resend_count" not in _attrs(attempts[0])
    assert [_attrs(s)["http.response.status_code"] for s in attempts] == [503, 503, 200]
    assert [_attrs(s).get("error.type") for s in attempts] == ["503", "503", None]
    durations = telemetry.points("http.client.request.duration")
    assert all(isinstance(p, HistogramDataPoint) for p in durations)
    assert sum(p.count for p in durations) == 3
    by_status = {p.attributes["http.response.status_code"]: p.count for p in durations}
    assert by_status == {503: 2, 200: 1}
    assert list(durations[0].explicit_bounds) == [
        0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
    ]  # fmt: skip
    (retried,) = telemetry.points("sendcloud.client.retries")
    assert retried.value == 2
    assert retried.attributes["sendcloud.retry.cause"] == "503"


async def test_rate_gate_waits_are_measured_and_shown_on_the_call_span(
    fake: FakeSendcloud, telemetry: Telemetry
) -> None:
    """Three GETs through a gate of 2 per 0.3 s: the third waits; the histogram has it."""
    iid = fake.add_integration()["id"]
    async with sc.SendcloudClient(
        auth=fake.basic_auth,
        base_url=fake.base_url,
        rate_limit=sc.RateLimits(get=2, window=0.3),
        state=sc.MemoryState(),
    ) as client:
        for _ in range(3):
            await client.integrations.get(iid)
    (waits,) = telemetry.points("sendcloud.client.rate_gate.wait.duration")
    assert waits.count == 1
    assert 0.05 < waits.sum < 1.0
    assert waits.attributes == {"url.template": "/integrations/{id}"}
    calls = sorted(telemetry.spans(SpanKind.INTERNAL), key=lambda s: s.start_time or 0)
    assert [[e.name for e in c.events] for c in calls] == [[], [], ["sendcloud.rate_gate.wait"]]
    waited, attempt = calls[2], None
    for span in telemetry.spans(SpanKind.CLIENT):
        if span.parent is not None and span.parent.span_id == waited.context.span_id:
            attempt = span
    assert attempt is not None
    assert attempt.start_time is not None
    assert waited.start_time is not None
    # the attempt starts past the gate: its span leaves the wait out
    assert (attempt.start_time - waited.start_time) / 1e9 > 0.05


async def test_a_failed_call_span_says_why(
    fake: FakeSendcloud, client: sc.SendcloudClient, telemetry: Telemetry
) -> None:
    """A 404 (not retried): the call span and its one attempt are errors with error.type."""
    with pytest.raises(sc.NotFoundError):
        await client.integrations.get(424242)
    (call,) = telemetry.spans(SpanKind.INTERNAL)
    (attempt,) = telemetry.spans(SpanKind.CLIENT)
    assert call.status.status_code == trace.StatusCode.ERROR
    assert _attrs(call)["error.type"] == "NotFoundError"
    assert _attrs(call)["sendcloud.retries"] == 0
    assert _attrs(attempt)["error.type"] == "404"
    assert attempt.status.status_code == trace.StatusCode.ERROR


async def test_an_oauth2_call_shows_its_token_request(
    fake: FakeSendcloud, telemetry: Telemetry
) -> None:
    """The token request is a CLIENT span under the call that needed it, and is counted."""
    fake.add_integration()
    async with sc.SendcloudClient(
        auth=fake.oauth2_credentials, base_url=fake.base_url, timeout=10.0
    ) as client:
        await client.integrations.list()
    (call,) = telemetry.spans(SpanKind.INTERNAL)
    clients = telemetry.spans(SpanKind.CLIENT)
    (token,) = [s for s in clients if s.name.startswith("POST ")]
    (attempt,) = [s for s in clients if s.name.startswith("GET ")]
    assert token.parent is not None
    assert token.parent.span_id == call.context.span_id
    assert _attrs(token)["http.response.status_code"] == 200
    assert _attrs(token)["url.full"] == str(fake.token_url)
    assert _attrs(call)["sendcloud.account.identity"] == f"oauth2:{fake.client_id}"
    assert token.start_time is not None
    assert attempt.start_time is not None
    assert token.end_time is not None
    assert token.start_time <= token.end_time
    (requests,) = telemetry.points("sendcloud.client.token.requests")
    assert requests.value == 1
    assert requests.attributes == {"http.response.status_code": 200}


async def test_a_watch_of_three_accounts_publishes_lag_per_account(
    fake: FakeSendcloud, telemetry: Telemetry
) -> None:
    """sendcloud.watch.lag has one point per account; logs are counted per account."""
    fake.seed(integrations=2, logs_per_integration=4)
    accounts = {f"shop-{n}": fake.add_account(f"pk-{n}", f"sk-{n}") for n in range(3)}
    async with sc.AccountPool(base_url=fake.base_url) as pool:
        watcher = sc.LogWatcher(pool, accounts, store=sc.MemoryWatchStore(), start="all")
        await watcher.run(once=True)
    lag = {
        p.attributes["sendcloud.account"]: p.value for p in telemetry.points("sendcloud.watch.lag")
    }
    assert set(lag) == set(accounts)
    newest = max(datetime.fromisoformat(log["created_at"]) for log in fake.logs)
    behind = datetime.now(UTC).timestamp() - newest.timestamp()
    assert all(behind - 60 < value <= behind + 1 for value in lag.values()), (lag, behind)
    logs = {
        p.attributes["sendcloud.account"]: p.value for p in telemetry.points("sendcloud.watch.logs")
    }
    assert logs == dict.fromkeys(accounts, len(fake.logs))
    failing = telemetry.points("sendcloud.watch.account.failing")
    assert {p.attributes["sendcloud.account"]: p.value for p in failing} == dict.fromkeys(
        accounts, 0
    )


async def test_an_export_counts_its_records_and_pages(
    fake: FakeSendcloud, client: sc.SendcloudClient, telemetry: Telemetry, tmp_path: Path
) -> None:
    """Records and pages committed, from PageCommitted events."""
    fake.seed(integrations=1, logs_per_integration=7)
    seen: list[events.Event] = []
    out = tmp_path / "out.jsonl"
    with (
        events.subscribe(seen.append),
        LogExport(out, base_url=str(client.base_url), page_size=3) as job,
    ):
        stats = await job.run(client)
    pages = [e for e in seen if isinstance(e, events.PageCommitted)]
    assert [p.records for p in pages] == [3, 2, 2]  # each page lists one log again
    assert pages[-1].total_records == stats.records == 7
    assert pages[-1].path == str(tmp_path / "out.jsonl")
    (records,) = telemetry.points("sendcloud.export.records")
    (committed,) = telemetry.points("sendcloud.export.pages")
    assert (records.value, committed.value) == (7, 3)


async def test_a_cancelled_call_ends_its_spans_and_leaves_no_context(
    fake: FakeSendcloud, client: sc.SendcloudClient, telemetry: Telemetry
) -> None:
    """Cancelled mid-attempt: both spans end (CancelledError) and no context stays attached."""
    iid = fake.add_integration()["id"]
    fake.inject("GET", "/integrations/{id}", Fault.delay(5))
    before = otel_context.get_current()
    task = asyncio.create_task(client.integrations.get(iid))
    while not fake.requests:  # noqa: ASYNC110 - the fake has no event for it
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (call,) = telemetry.spans(SpanKind.INTERNAL)
    (attempt,) = telemetry.spans(SpanKind.CLIENT)
    assert _attrs(call)["error.type"] == "CancelledError"
    assert _attrs(attempt)["error.type"] == "CancelledError"
    assert otel_context.get_current() == before
    assert otel.is_instrumented()


async def test_aiohttp_instrumentation_never_traces_an_attempt_twice(
    fake: FakeSendcloud, client: sc.SendcloudClient, telemetry: Telemetry
) -> None:
    """With aiohttp's client instrumentation on, an SDK attempt is one span, not two."""
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor

    instrumentor = AioHttpClientInstrumentor()
    instrumentor.instrument(tracer_provider=telemetry.tracer_provider)
    try:
        fake.add_integration()
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as own:
            await own.integrations.list()
        sdk_clients = telemetry.spans(SpanKind.CLIENT)
        assert len(sdk_clients) == 1
        assert sdk_clients[0].instrumentation_scope is not None
        assert sdk_clients[0].instrumentation_scope.name == "sendcloud_async"
        # The instrumentation does work (so the check above can fail): a plain request is traced.
        async with aiohttp.ClientSession() as session, session.get(fake.base_url + "/x") as r:
            await r.read()
        scopes = [
            s.instrumentation_scope.name
            for s in telemetry.spans(SpanKind.CLIENT)
            if s.instrumentation_scope is not None
        ]
        assert scopes.count("sendcloud_async") == 1
        assert len(scopes) == 2
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize("case", CASES, ids=[f"{c.auth}-{c.mode}" for c in CASES])
async def test_no_secret_in_any_span_attribute_or_metric_label(
    echo: str, telemetry: Telemetry, case: Case
) -> None:
    """Against a server that echoes credentials: spans, events, metrics, the page: no secret."""
    registry = Registry()
    seen: list[events.Event] = []
    with events.subscribe(registry), events.subscribe(seen.append):
        async with sc.SendcloudClient(
            auth=make_auth(case.auth, echo, case.mode),
            base_url=f"{echo}/{case.mode}/api/v3",
            timeout=0.5,
            max_retries=1,
        ) as client:
            with events.capture_responses() as responses, pytest.raises(sc.SendcloudError):
                await client.integrations.get(7)
    texts: dict[str, str] = {}
    for n, span in enumerate(telemetry.spans()):
        texts[f"span {n} name"] = span.name
        texts[f"span {n} attributes"] = repr(_attrs(span))
        for m, happened in enumerate(span.events):
            texts[f"span {n} event {m}"] = f"{happened.name} {dict(happened.attributes or {})!r}"
    for n, labels in enumerate(telemetry.labels()):
        texts[f"metric point {n}"] = repr(labels)
    for n, event in enumerate(seen):
        texts[f"event {n}"] = repr(event)
    for n, info in enumerate(responses):
        texts[f"response {n}"] = repr(info)
    texts["prometheus page"] = registry.render()
    assert telemetry.spans(), "nothing was reported: the sweep would prove nothing"
    assert leaks(texts) == []


# -- public events and response metadata ----------------------------------------------------


async def test_subscribers_get_every_event_of_a_call_and_can_leave(
    fake: FakeSendcloud, client: sc.SendcloudClient, retries: list[RetryEvent]
) -> None:
    """Sending, Finished (with duration), Waiting (a retry's cause) and CallEnded, in order."""
    iid = fake.add_integration()["id"]
    fake.inject("GET", "/integrations/{id}", Fault.status(503))
    seen: list[events.Event] = []

    def broken(event: events.Event) -> None:
        raise RuntimeError("a subscriber's bug")

    unsubscribe = events.subscribe(seen.append)
    with events.subscribe(broken):
        await client.integrations.get(iid)
    unsubscribe()
    unsubscribe()  # a second call does nothing
    assert [type(e).__name__ for e in seen] == [
        "Sending",
        "Finished",
        "Waiting",
        "Sending",
        "Finished",
        "CallEnded",
    ]
    wait = seen[2]
    assert isinstance(wait, events.Waiting)
    assert (wait.reason, wait.status, wait.operation) == ("retry", 503, "integrations.get")
    finished = [e for e in seen if isinstance(e, events.Finished)]
    assert [f.status for f in finished] == [503, 200]
    assert all(f.duration > 0 for f in finished)
    ended = seen[-1]
    assert isinstance(ended, events.CallEnded)
    assert (ended.attempts, ended.status, ended.error) == (2, 200, None)
    assert ended.account == f"basic:{fake.public_key}"
    count = len(seen)
    await client.integrations.get(iid)
    assert len(seen) == count
    assert begin("GET", "http://x/") is NO_CALL  # nobody listens: nothing is built


@pytest.mark.parametrize(
    ("wrong", "kind"), [(42, "int"), (None, "NoneType"), ("print", "str"), ([], "list")]
)
def test_subscribe_refuses_what_cannot_be_called(wrong: object, kind: str) -> None:
    """A one-line InvalidInputError naming the type; nothing subscribed, nothing called."""
    with pytest.raises(sc.InvalidInputError) as raised:
        events.subscribe(wrong)  # type: ignore[arg-type]
    assert str(raised.value) == f"callback must be a callable, not {kind}"
    assert isinstance(raised.value, ValueError)
    assert events._hub.callbacks == ()  # nothing subscribed
    assert not listening()
    assert begin("GET", "http://x/") is NO_CALL  # publishing builds nothing, calls nothing
    publish(events.PollCompleted("acme", 1))  # reaches no one
    # Beside a real subscriber: the refused one is not among those an event reaches.
    seen: list[events.Event] = []
    with events.subscribe(seen.append):
        with pytest.raises(sc.InvalidInputError):
            events.subscribe(wrong)  # type: ignore[arg-type]
        assert list(events._hub.callbacks) == [seen.append]
        publish(events.PollCompleted("acme", 2))
    assert seen == [events.PollCompleted("acme", 2)]
    assert events._hub.callbacks == ()
    assert not listening()


async def test_capture_responses_keeps_status_headers_attempts_and_rate_limits(
    fake: FakeSendcloud, client: sc.SendcloudClient, retries: list[RetryEvent]
) -> None:
    """Each call's ResponseInfo, the block's only; an outer observer keeps its events."""
    iid = fake.add_integration()["id"]
    fake.inject("GET", "/integrations/{id}", Fault.status(429, headers={"Retry-After": "0"}))
    outer: list[events.Event] = []

    class Outer:
        def on_event(self, event: events.Event) -> None:
            outer.append(event)

    limited = {
        "Retry-After": "3600",  # above the retry cap: the call ends with this answer
        "RateLimit-Limit": "100",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "42",
        "Request-Id": "req-final",
    }
    with observing(Outer()), events.capture_responses() as seen:
        await client.integrations.get(iid)
        with pytest.raises(sc.NotFoundError):
            await client.integrations.get(iid + 1000)
        fake.inject("GET", "/integrations/{id}", Fault.status(429, headers=limited))
        with pytest.raises(sc.RateLimitError):
            await client.integrations.get(iid)
    await client.integrations.get(iid)  # after the block: not captured
    assert len(seen) == 3
    first, second, third = seen
    assert (first.status, first.attempts, first.error) == (200, 2, None)
    assert first.operation == "integrations.get"
    assert first.headers["content-type"].startswith("application/json")  # any case
    assert first.rate_limit is None  # the 200 carried no rate-limit header
    assert first.elapsed > 0
    assert (second.status, second.error, second.attempts) == (404, "NotFoundError", 1)
    assert (third.status, third.error, third.attempts) == (429, "RateLimitError", 1)
    assert third.rate_limit == events.RateLimitInfo(100, 0, 42.0)
    assert third.request_id == "req-final"
    assert seen.last is third
    assert [e.status for e in outer if isinstance(e, events.CallEnded)] == [200, 404, 429]
    with events.capture_responses() as empty, pytest.raises(LookupError, match="no call"):
        _ = empty.last


# -- the core does not need OpenTelemetry ---------------------------------------------------

_NO_OTEL = """
import asyncio, sys
import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud

async def main():
    async with FakeSendcloud() as fake:
        fake.add_integration()
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            await client.integrations.list()

asyncio.run(main())
print(sorted(m for m in sys.modules if m.split(".")[0] == "opentelemetry"))
"""

_AUTO = """
import asyncio, json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud

exporter = InMemorySpanExporter()
provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(exporter))
trace.set_tracer_provider(provider)

async def main():
    async with FakeSendcloud() as fake:
        fake.add_integration()
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            await client.integrations.list()

asyncio.run(main())
print(json.dumps(sorted(s.name for s in exporter.get_finished_spans())))
"""


def _python(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def test_the_core_never_imports_opentelemetry() -> None:
    """A client's calls, start to end, load no OpenTelemetry module."""
    assert _python(_NO_OTEL) == "[]"


def test_a_configured_sdk_is_reported_to_without_any_call() -> None:
    """An application that set a tracer provider gets the SDK's spans, nothing else to do."""
    names = json.loads(_python(_AUTO))
    assert names == ["GET /integrations", "integrations.list"]


def test_events_and_otel_export_every_listed_name() -> None:
    """sendcloud_async.events and .otel export the names users call (tests/unit/api_names.py)."""
    from tests.unit.api_names import EVENT_NAMES, OTEL_NAMES

    assert sorted(EVENT_NAMES - set(events.__all__)) == []
    assert sorted(OTEL_NAMES - set(otel.__all__)) == []
    assert events.__all__ == sorted(events.__all__)
    assert otel.__all__ == sorted(otel.__all__)
