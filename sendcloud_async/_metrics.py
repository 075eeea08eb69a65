"""The SDK's metrics: which exist, and what each event adds to them -- the one table.

Two sinks read it: OpenTelemetry's meters (``otel``: instruments named as below)
and the command line's Prometheus page (``--metrics``: ``prom`` names, attribute
dots as underscores). ``Measurer`` turns one ``sendcloud_async.events`` event into
measurements; it keeps the little state a measurement needs (when a rate-gate
wait began, which leases are held). Attributes never hold a secret: methods,
hosts, status codes, path templates, error class names and account names.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from typing import Final, Literal, TypeAlias

from yarl import URL

from ._event_types import (
    AccountFailing,
    AccountRecovered,
    BatchDelivered,
    CallEnded,
    Event,
    Finished,
    LatenessSeen,
    LeaseClaimed,
    LeaseLost,
    LeaseRefused,
    LeaseReleased,
    PageCommitted,
    PollCompleted,
    Sending,
    TokenFetched,
    Waiting,
)

__all__ = [
    "HTTP_DURATION_BUCKETS",
    "INSTRUMENTS",
    "Attributes",
    "Instrument",
    "Measurement",
    "Measurer",
    "error_type",
    "server_of",
]

Kind = Literal["counter", "histogram", "gauge"]
Attributes: TypeAlias = dict[str, str | int]


@dataclass(frozen=True, slots=True)
class Instrument:
    """One metric: its OpenTelemetry name, kind, unit and meaning, and its Prometheus name."""

    name: str
    kind: Kind
    unit: str
    description: str
    prom: str
    #: A histogram's bucket boundaries.
    buckets: tuple[float, ...] = ()


#: OpenTelemetry's recommended boundaries for ``http.client.request.duration`` (seconds).
HTTP_DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)
_WAIT_BUCKETS: Final = (0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

HTTP_DURATION: Final = Instrument(
    "http.client.request.duration",
    "histogram",
    "s",
    "Duration of HTTP client requests (each attempt, and each OAuth2 token request).",
    "http_client_request_duration_seconds",
    HTTP_DURATION_BUCKETS,
)
GATE_WAIT: Final = Instrument(
    "sendcloud.client.rate_gate.wait.duration",
    "histogram",
    "s",
    "Time requests waited for the account's rate gate before an attempt.",
    "sendcloud_client_rate_gate_wait_seconds",
    _WAIT_BUCKETS,
)
RETRIES: Final = Instrument(
    "sendcloud.client.retries",
    "counter",
    "{retry}",
    "Retries scheduled, by cause (the failed attempt's status, or its error class).",
    "sendcloud_client_retries_total",
)
TOKEN_REQUESTS: Final = Instrument(
    "sendcloud.client.token.requests",
    "counter",
    "{request}",
    "OAuth2 token requests sent, by the status or error they ended with.",
    "sendcloud_client_token_requests_total",
)
WATCH_LAG: Final = Instrument(
    "sendcloud.watch.lag",
    "gauge",
    "s",
    "How long after its creation the newest log of an account's last batch was delivered.",
    "sendcloud_watch_lag_seconds",
)
WATCH_LOGS: Final = Instrument(
    "sendcloud.watch.logs",
    "counter",
    "{log}",
    "New logs delivered by the watch, per account.",
    "sendcloud_watch_logs_total",
)
WATCH_LATE: Final = Instrument(
    "sendcloud.watch.late_logs",
    "counter",
    "{log}",
    "Logs that became visible behind the account's high-water mark.",
    "sendcloud_watch_late_logs_total",
)
ACCOUNT_FAILURES: Final = Instrument(
    "sendcloud.watch.account.failures",
    "counter",
    "{failure}",
    "Polls of an account that failed after the client's own retries.",
    "sendcloud_watch_account_failures_total",
)
ACCOUNT_FAILING: Final = Instrument(
    "sendcloud.watch.account.failing",
    "gauge",
    "1",
    "1 while an account's watch is failing, 0 once it polls again.",
    "sendcloud_watch_account_failing",
)
LEASES: Final = Instrument(
    "sendcloud.watch.leases",
    "gauge",
    "{lease}",
    "Account leases this worker holds (Redis watch).",
    "sendcloud_watch_leases",
)
TAKEOVERS: Final = Instrument(
    "sendcloud.watch.lease.takeovers",
    "counter",
    "{lease}",
    "Leases this worker took over from another worker (lapsed or given up).",
    "sendcloud_watch_lease_takeovers_total",
)
LEASE_LOSSES: Final = Instrument(
    "sendcloud.watch.lease.losses",
    "counter",
    "{lease}",
    "Leases this worker lost (not renewed in time, or gone from Redis).",
    "sendcloud_watch_lease_losses_total",
)
FENCE_REFUSALS: Final = Instrument(
    "sendcloud.watch.fence.refusals",
    "counter",
    "{write}",
    "Writes the fence refused: another worker held the lease; nothing was written.",
    "sendcloud_watch_fence_refusals_total",
)
EXPORT_RECORDS: Final = Instrument(
    "sendcloud.export.records",
    "counter",
    "{record}",
    "Records exported (on disk, checkpoint past them).",
    "sendcloud_export_records_total",
)
EXPORT_PAGES: Final = Instrument(
    "sendcloud.export.pages",
    "counter",
    "{page}",
    "Export pages committed.",
    "sendcloud_export_pages_total",
)

INSTRUMENTS: Final = (
    HTTP_DURATION,
    GATE_WAIT,
    RETRIES,
    TOKEN_REQUESTS,
    WATCH_LAG,
    WATCH_LOGS,
    WATCH_LATE,
    ACCOUNT_FAILURES,
    ACCOUNT_FAILING,
    LEASES,
    TAKEOVERS,
    LEASE_LOSSES,
    FENCE_REFUSALS,
    EXPORT_RECORDS,
    EXPORT_PAGES,
)

#: One measurement: add to a counter, record in a histogram, or set a gauge.
Measurement: TypeAlias = tuple[Instrument, float, Attributes]


@lru_cache(maxsize=256)
def server_of(url: str) -> tuple[str, int, str]:
    """``(server.address, server.port, url.path)`` of ``url`` (empty host if it does not parse)."""
    try:
        parsed = URL(url)
    except ValueError:
        return "", 0, ""
    return parsed.host or "", parsed.port or 0, parsed.path


def _http_attributes(
    method: str, url: str, template: str, status: int | None, error: str | None
) -> Attributes:
    host, port, path = server_of(url)
    attributes: Attributes = {
        "http.request.method": method,
        "server.address": host,
        "server.port": port,
        "url.template": template or path,
    }
    if status is not None:
        attributes["http.response.status_code"] = status
    failure = error_type(status, error)
    if failure is not None:
        attributes["error.type"] = failure
    return attributes


def error_type(status: int | None, error: str | None) -> str | None:
    """OpenTelemetry's ``error.type`` of an HTTP request: the status (as text) of an
    error answer, else the class name of the error; ``None`` for a success."""
    if status is not None and status >= 400:
        return str(status)
    return error


def retry_cause(event: Waiting) -> str:
    """Why a retry was scheduled: the failed attempt's status, or its error's class name."""
    if event.status is not None:
        return str(event.status)
    return event.error or "error"


class Measurer:
    """Turns events into measurements (thread-safe: clients may run in several threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._gate_since: dict[int, float] = {}
        self._held: set[str] = set()

    def measure(self, event: Event) -> Iterator[Measurement]:
        """The measurements ``event`` makes (none for most events of a call)."""
        kind = type(event)
        if kind is Finished:
            assert isinstance(event, Finished)
            attributes = _http_attributes(
                event.method, event.url, event.template, event.status, event.error
            )
            yield HTTP_DURATION, event.duration, attributes
        elif kind is Waiting:
            assert isinstance(event, Waiting)
            if event.reason == "rate_limit":
                with self._lock:
                    self._gate_since.setdefault(event.call, event.at)
            else:
                cause = retry_cause(event)
                yield RETRIES, 1, {"sendcloud.retry.cause": cause, "url.template": event.template}
        elif kind is Sending or kind is CallEnded:
            assert isinstance(event, Sending | CallEnded)
            with self._lock:
                since = self._gate_since.pop(event.call, None)
            if since is not None and isinstance(event, Sending):
                yield GATE_WAIT, max(0.0, event.at - since), {"url.template": event.template}
        elif kind is TokenFetched:
            assert isinstance(event, TokenFetched)
            attributes = _http_attributes("POST", event.url, "", event.status, event.error)
            yield HTTP_DURATION, event.duration, attributes
            outcome: Attributes = (
                {"error.type": event.error}
                if event.error is not None
                else {"http.response.status_code": event.status or 0}
            )
            yield TOKEN_REQUESTS, 1, outcome
        else:
            yield from self._other(event)

    def _other(self, event: Event) -> Iterator[Measurement]:
        if isinstance(event, BatchDelivered):
            account: Attributes = {"sendcloud.account": event.account}
            yield WATCH_LOGS, event.count, account
            if event.lag is not None:
                yield WATCH_LAG, event.lag, account
        elif isinstance(event, LatenessSeen):
            yield WATCH_LATE, event.count, {"sendcloud.account": event.account}
        elif isinstance(event, PollCompleted | AccountRecovered):
            yield ACCOUNT_FAILING, 0, {"sendcloud.account": event.account}
        elif isinstance(event, AccountFailing):
            account = {"sendcloud.account": event.account}
            yield ACCOUNT_FAILURES, 1, {**account, "error.type": event.error}
            yield ACCOUNT_FAILING, 1, account
        elif isinstance(event, LeaseClaimed):
            with self._lock:
                self._held.add(event.account)
                held = len(self._held)
            if event.how in ("takeover", "adopted"):
                yield TAKEOVERS, 1, {"sendcloud.lease.how": event.how}
            yield LEASES, held, {}
        elif isinstance(event, LeaseReleased | LeaseLost):
            with self._lock:
                self._held.discard(event.account)
                held = len(self._held)
            if isinstance(event, LeaseLost):
                yield LEASE_LOSSES, 1, {"sendcloud.lease.reason": event.reason}
            yield LEASES, held, {}
        elif isinstance(event, LeaseRefused):
            yield FENCE_REFUSALS, 1, {}
        elif isinstance(event, PageCommitted):
            yield EXPORT_RECORDS, event.records, {}
            yield EXPORT_PAGES, 1, {}
