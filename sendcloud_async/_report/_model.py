"""What a report holds (``Report``), and the slice of a log it is computed from (``LogRow``).

Every type is a ``msgspec.Struct``: ``--json`` is ``msgspec.json.encode(report)``,
and ``msgspec.json.decode(raw, type=Report)`` reads it back. Times are UTC.
The JSON's shape is documented in docs/report.md; ``version`` changes when a field
changes meaning or goes away (added fields do not change it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal, Protocol

import msgspec

__all__ = [
    "REPORT_VERSION",
    "Direction",
    "Finding",
    "FindingKind",
    "IntegrationReport",
    "LogLike",
    "LogRow",
    "Ranked",
    "Report",
    "Status",
    "Timeline",
    "Trend",
]

REPORT_VERSION: Final = 1

Direction = Literal["rising", "falling", "steady", "few"]
Status = Literal["ongoing", "started", "stopped", "episode"]
FindingKind = Literal["started_failing", "stopped_failing", "unusual", "rising", "falling"]


class LogLike(Protocol):
    """What a report reads of a log: a ``LogRow`` or the SDK's ``IntegrationLog``."""

    @property
    def base_url(self) -> str: ...
    @property
    def integration_id(self) -> int | None: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def response_code(self) -> int | None: ...
    @property
    def exception_type(self) -> str | None: ...
    @property
    def exception(self) -> str | None: ...
    @property
    def method(self) -> str | None: ...
    @property
    def full_url(self) -> str | None: ...


class LogRow(msgspec.Struct, kw_only=True, gc=False):
    """The fields of an exception log a report reads (a line of an export decodes into it:
    the other fields are skipped without being built)."""

    base_url: str
    integration_id: int | None = None
    created_at: datetime | None = None
    response_code: int | None = None
    exception_type: str | None = None
    exception: str | None = None
    method: str | None = None
    full_url: str | None = None


class Ranked(msgspec.Struct, kw_only=True):
    """One entry of a top list: a value, how many logs have it and their share.

    ``error``: the count may exceed the true count by at most this much (0: exact;
    see ``Report.exact``). ``value`` ``""`` means the logs had none (no exception
    type, no response code, no URL).
    """

    value: str
    count: int
    share: float
    error: int = 0


class Trend(msgspec.Struct, kw_only=True):
    """How an integration's logs moved over the report's period.

    ``first_third`` and ``last_third`` count its logs in the first and the last third
    of the period; ``change`` is ``last / first - 1`` (``None`` when the first third
    has none); ``slope_per_day`` is the least-squares slope of its daily rate (logs a
    day, per day). ``direction`` is ``rising`` or ``falling`` when the two thirds
    differ by at least half and the difference is beyond chance (more than three
    standard deviations of two Poisson counts), ``few`` when the two thirds hold
    fewer than 10 logs, else ``steady``.
    """

    direction: Direction
    first_third: int
    last_third: int
    change: float | None
    slope_per_day: float


class Timeline(msgspec.Struct, kw_only=True):
    """The time buckets every ``series`` counts in: ``count`` buckets of ``seconds``
    from ``start`` (UTC, aligned on the Unix epoch)."""

    start: datetime
    seconds: int
    count: int


class IntegrationReport(msgspec.Struct, kw_only=True):
    """One integration's logs in the report.

    ``integration_id`` is ``None`` for logs that name none, and for the row that
    gathers the integrations beyond the ones counted one by one (``other``).
    ``status``: ``started`` (it had no log in a long stretch at the start of the
    period in which, at its rate, it would have had many), ``stopped`` (the same at
    the end), ``episode`` (both), else ``ongoing``. ``unusual``: its daily rate is far
    above the other integrations' (``robust_z``, a median/MAD score of the logarithm
    of the rates, at least 3.5, and at least twice the median rate).
    """

    integration_id: int | None
    name: str | None = None
    other: bool = False
    logs: int
    share: float
    first_seen: datetime | None
    last_seen: datetime | None
    rate_per_day: float
    trend: Trend
    status: Status
    unusual: bool
    robust_z: float | None
    series: list[int]
    exception_types: list[Ranked]
    response_codes: list[Ranked]
    messages: list[Ranked]


class Finding(msgspec.Struct, kw_only=True):
    """Something the report found, in one sentence (``text``), and its numbers.

    ``at``: when it started failing (``started_failing``) or its last log
    (``stopped_failing``); ``quiet_seconds``: how long it was without a log before
    (or after) that; ``expected``: how many logs it would have had in that time at
    its rate; ``value``: the rate a day (``unusual``) or the change (``rising``,
    ``falling``).
    """

    kind: FindingKind
    integration_id: int | None
    text: str
    at: datetime | None = None
    logs: int = 0
    quiet_seconds: float | None = None
    expected: float | None = None
    value: float | None = None


class Report(msgspec.Struct, kw_only=True):
    """What is failing: the summary of a stream of exception logs (see docs/report.md)."""

    version: int = REPORT_VERSION
    generated_at: datetime
    source: str
    logs: int
    #: Logs without a ``created_at``: counted, but in no time bucket.
    logs_without_time: int = 0
    first_seen: datetime | None
    last_seen: datetime | None
    timeline: Timeline | None
    #: Logs per bucket of ``timeline``, every integration together.
    series: list[int]
    #: Logs per hour of the week, UTC: index 0 is Monday 00:00–01:00, 167 Sunday 23:00.
    hour_of_week: list[int]
    integrations: list[IntegrationReport]
    exception_types: list[Ranked]
    messages: list[Ranked]
    response_codes: list[Ranked]
    endpoints: list[Ranked]
    findings: list[Finding]
    #: Whether every count of the top lists is exact (no key was ever evicted).
    exact: bool
