"""OpenTelemetry traces and metrics of the SDK (the ``otel`` extra).

``pip install 'sendcloud-async[otel]'`` brings ``opentelemetry-api``; configure an
OpenTelemetry SDK (tracer and meter providers, exporters) in the application as
usual. The SDK then reports through the global providers by itself: it checks
when a client is created whether OpenTelemetry was imported and a provider set
(the core never imports OpenTelemetry, so nothing is reported -- and nothing
costs -- without it). ``instrument()`` does it explicitly, with providers of its
own if given; ``uninstrument()`` stops it.

What is reported (OpenTelemetry's HTTP semantic conventions):

* one ``INTERNAL`` span per SDK call, named after the operation (``logs.list``),
  with ``url.template``, ``sendcloud.operation``, ``sendcloud.account.identity``
  (the public part of the credentials: ``basic:<public key>`` or
  ``oauth2:<client id>``, never a secret), ``sendcloud.retries`` and the final
  ``http.response.status_code`` / ``error.type``; each scheduled retry is a span
  event ``sendcloud.retry`` (``sendcloud.retry.cause``, ``sendcloud.retry.delay``)
  and each rate-gate wait one ``sendcloud.rate_gate.wait``;
* one ``CLIENT`` child span per HTTP attempt (``GET /integrations/{id}``) with
  ``http.request.method``, ``server.address``, ``server.port``, ``url.full``
  (never with user info), ``url.template``, ``http.response.status_code``,
  ``error.type`` and ``http.request.resend_count`` (on a retry only);
* a ``CLIENT`` span per OAuth2 token request, a child of the call that needed it;
* the metrics of ``sendcloud_async._metrics`` (``http.client.request.duration``
  and the SDK's own: rate-gate waits, retries by cause, token requests, watch
  lag per account, lease takeovers, fence refusals, records exported).

While an attempt runs, HTTP instrumentation is suppressed for it (OpenTelemetry's
``suppress_http_instrumentation`` context key), so that an active
``opentelemetry-instrumentation-aiohttp-client`` does not trace it a second time.
The SDK does not inject trace context into its requests: the Sendcloud API does
not take part in traces.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from ._errors import missing_extra

try:
    from opentelemetry import context as otel_context
    from opentelemetry import metrics, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - the extra is missing
    raise missing_extra("opentelemetry-api", "otel", "sendcloud_async.otel") from exc
try:
    # The key HTTP instrumentations check (opentelemetry-instrumentation's
    # suppress_http_instrumentation() sets it); it lives in the API package.
    from opentelemetry.context import _SUPPRESS_HTTP_INSTRUMENTATION_KEY as _SUPPRESS_HTTP
except ImportError:  # pragma: no cover - an API without it: no instrumentation checks it
    _SUPPRESS_HTTP = None  # type: ignore[assignment]

from . import events
from ._metrics import INSTRUMENTS, Instrument, Measurer, error_type, retry_cause, server_of
from ._version import __version__
from .events import CallEnded, Event, Finished, Sending, TokenFetched, Waiting

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import Span, TracerProvider

__all__ = ["instrument", "instrument_if_configured", "is_instrumented", "uninstrument"]

_SCOPE: Final = "sendcloud_async"
_SCHEMA: Final = "https://opentelemetry.io/schemas/1.26.0"


@dataclass(slots=True)
class _CallSpans:
    """The spans of one call in flight: the call's, its open attempt's, the context token."""

    span: Span
    attempt: Span | None = None
    token: object | None = None
    retries: int = 0


class _Instrumentation:
    """A subscriber to ``sendcloud_async.events`` that reports to OpenTelemetry."""

    def __init__(
        self, tracer_provider: TracerProvider | None, meter_provider: MeterProvider | None
    ) -> None:
        self.tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider, schema_url=_SCHEMA)
        meter = metrics.get_meter(_SCOPE, __version__, meter_provider, schema_url=_SCHEMA)
        self.instruments: dict[str, Any] = {i.name: _make(meter, i) for i in INSTRUMENTS}
        self.measurer = Measurer()
        self.calls: dict[int, _CallSpans] = {}
        self.subscription: events.Subscription | None = None

    # -- events --------------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        kind = type(event)
        if kind is Sending:
            assert isinstance(event, Sending)
            self._sending(event)
        elif kind is Finished:
            assert isinstance(event, Finished)
            self._finished(event)
        elif kind is Waiting:
            assert isinstance(event, Waiting)
            self._waiting(event)
        elif kind is CallEnded:
            assert isinstance(event, CallEnded)
            self._ended(event)
        elif kind is TokenFetched:
            assert isinstance(event, TokenFetched)
            self._token(event)
        for instrument, value, attributes in self.measurer.measure(event):
            _record(self.instruments[instrument.name], instrument, value, attributes)

    def _call(self, event: Sending | Waiting | Finished) -> _CallSpans:
        spans = self.calls.get(event.call)
        if spans is None:
            attributes = {
                "sendcloud.operation": event.operation,
                "url.template": event.template,
            }
            span = self.tracer.start_span(
                event.operation or event.method, kind=SpanKind.INTERNAL, attributes=attributes
            )
            spans = self.calls[event.call] = _CallSpans(span)
        return spans

    def _sending(self, event: Sending) -> None:
        spans = self._call(event)
        host, port, _ = server_of(event.url)
        attributes: dict[str, str | int] = {
            "http.request.method": event.method,
            "server.address": host,
            "server.port": port,
            "url.full": event.url,
            "url.template": event.template,
        }
        if event.attempt > 1:
            attributes["http.request.resend_count"] = event.attempt - 1
        parent = trace.set_span_in_context(spans.span)
        name = f"{event.method} {event.template}" if event.template else event.method
        spans.attempt = self.tracer.start_span(
            name, context=parent, kind=SpanKind.CLIENT, attributes=attributes
        )
        # While the attempt runs: the call's span is current (a token request is its
        # child) and HTTP instrumentation (aiohttp's) leaves this request alone.
        if _SUPPRESS_HTTP is not None:
            parent = otel_context.set_value(_SUPPRESS_HTTP, True, parent)
        spans.token = otel_context.attach(parent)

    def _finished(self, event: Finished) -> None:
        spans = self.calls.get(event.call)
        if spans is None:
            return
        _end_attempt(spans, event.status, event.error)

    def _waiting(self, event: Waiting) -> None:
        spans = self._call(event)
        if event.reason == "retry":
            spans.retries += 1
            spans.span.add_event(
                "sendcloud.retry",
                {
                    "sendcloud.retry.cause": retry_cause(event),
                    "sendcloud.retry.delay": -1.0 if event.seconds is None else event.seconds,
                },
            )
        else:
            spans.span.add_event(
                "sendcloud.rate_gate.wait",
                {"sendcloud.rate_gate.expected": -1.0 if event.seconds is None else event.seconds},
            )

    def _ended(self, event: CallEnded) -> None:
        spans = self.calls.pop(event.call, None)
        if spans is None:  # ended before any attempt (closed client, bad input)
            spans = _CallSpans(
                self.tracer.start_span(
                    event.operation or event.method,
                    kind=SpanKind.INTERNAL,
                    attributes={
                        "sendcloud.operation": event.operation,
                        "url.template": event.template,
                    },
                )
            )
        _end_attempt(spans, None, event.error)  # open only if the call was cancelled in it
        span = spans.span
        span.set_attribute("sendcloud.retries", max(0, event.attempts - 1))
        if event.account:
            span.set_attribute("sendcloud.account.identity", event.account)
        if event.status is not None:
            span.set_attribute("http.response.status_code", event.status)
        if event.error is not None:
            span.set_attribute("error.type", event.error)
            span.set_status(Status(StatusCode.ERROR))
        span.end()

    def _token(self, event: TokenFetched) -> None:
        host, port, path = server_of(event.url)
        attributes: dict[str, str | int] = {
            "http.request.method": "POST",
            "server.address": host,
            "server.port": port,
            "url.full": event.url,
            "url.template": path,
        }
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        error = error_type(event.status, event.error)
        if error is not None:
            attributes["error.type"] = error
        end = time.time_ns()
        span = self.tracer.start_span(
            f"POST {path}",
            kind=SpanKind.CLIENT,
            attributes=attributes,
            start_time=end - int(event.duration * 1e9),
        )
        if error is not None:
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)


def _end_attempt(spans: _CallSpans, status: int | None, error: str | None) -> None:
    """End the open attempt span (if any) with what it got; leave its context."""
    attempt, spans.attempt = spans.attempt, None
    token, spans.token = spans.token, None
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]
    if attempt is None:
        return
    if status is not None:
        attempt.set_attribute("http.response.status_code", status)
    error = error_type(status, error)
    if error is not None:
        attempt.set_attribute("error.type", error)
        attempt.set_status(Status(StatusCode.ERROR))
    attempt.end()


def _make(meter: metrics.Meter, instrument: Instrument) -> Any:
    if instrument.kind == "counter":
        return meter.create_counter(instrument.name, instrument.unit, instrument.description)
    if instrument.kind == "gauge":
        return meter.create_gauge(instrument.name, instrument.unit, instrument.description)
    return meter.create_histogram(
        instrument.name,
        instrument.unit,
        instrument.description,
        explicit_bucket_boundaries_advisory=list(instrument.buckets),
    )


def _record(target: Any, instrument: Instrument, value: float, attributes: dict[str, Any]) -> None:
    if instrument.kind == "counter":
        target.add(value, attributes)
    elif instrument.kind == "gauge":
        target.set(value, attributes)
    else:
        target.record(value, attributes)


#: The providers OpenTelemetry's API hands out when no SDK is configured.
_NO_OP: Final = frozenset(
    {"ProxyTracerProvider", "NoOpTracerProvider", "_ProxyMeterProvider", "NoOpMeterProvider"}
)
_lock: Final = threading.Lock()
_active: _Instrumentation | None = None
#: ``uninstrument()`` was called: clients created later do not turn it back on.
_turned_off = False


def instrument(
    *,
    tracer_provider: TracerProvider | None = None,
    meter_provider: MeterProvider | None = None,
) -> None:
    """Report the SDK's spans and metrics to OpenTelemetry (the global providers by default).

    Called again, it replaces the previous instrumentation (with the providers given now).
    """
    global _active, _turned_off
    with _lock:
        _turned_off = False
        if _active is not None and _active.subscription is not None:
            _active.subscription()
        reporter = _Instrumentation(tracer_provider, meter_provider)
        reporter.subscription = events.subscribe(reporter)
        _active = reporter


def uninstrument() -> None:
    """Stop reporting to OpenTelemetry (spans of calls in flight are not ended).

    Clients created afterwards do not turn it back on; ``instrument()`` does.
    """
    global _active, _turned_off
    with _lock:
        _turned_off = True
        if _active is not None and _active.subscription is not None:
            _active.subscription()
        _active = None


def is_instrumented() -> bool:
    """Whether the SDK reports to OpenTelemetry now."""
    return _active is not None


def _configured() -> bool:
    """Whether the application set a tracer or meter provider (an SDK's, not the no-op)."""
    tracer_provider = type(trace.get_tracer_provider()).__name__
    meter_provider = type(metrics.get_meter_provider()).__name__
    no_op = {
        "ProxyTracerProvider",
        "NoOpTracerProvider",
        "_ProxyMeterProvider",
        "NoOpMeterProvider",
    }
    return tracer_provider not in no_op or meter_provider not in no_op


def instrument_if_configured() -> None:
    """``instrument()`` with the global providers, once, if the application configured one."""
    if _active is None and not _turned_off and _configured():
        instrument()
