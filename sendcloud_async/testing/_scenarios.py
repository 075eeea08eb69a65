"""Exception logs with known failure patterns, to test what a report finds in them.

::

    from datetime import UTC, datetime
    from sendcloud_async.testing import FailurePatterns, FakeSendcloud

    patterns = FailurePatterns(start=datetime(2024, 3, 1, tzinfo=UTC), days=30, seed=1)
    patterns.steady(1, per_day=20)                           # fails all month, evenly
    patterns.failing_from(2, day=10, per_day=40)             # nothing before day 10, then 40 a day
    patterns.recovering(3, until_day=12, per_day=30)         # 30 a day until day 12, then nothing
    patterns.steady(4, per_day=200, kind="timeout")          # one exception type dominates
    patterns.rising(5, from_per_day=5, to_per_day=60)        # worse every day
    async with FakeSendcloud() as fake:
        patterns.apply(fake)                                 # the integrations and their logs

Each pattern puts an exact number of logs on each day (``per_day``, at random
instants of the day, from ``seed``), so a test knows every count: day ``d`` is
``start + d days`` to ``start + d + 1 days``, for ``d`` in ``0 .. days - 1``.
``kind`` chooses what fails (a key of ``KINDS``: exception type, response code and
message); left out, each log is one of them at random. ``records()`` gives the
logs as the fake stores them (the spec's fields, oldest first, ids from 1), for
writing an export file without a server; ``iter_records()`` the same one pattern
after the other, without holding them all.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Self

if TYPE_CHECKING:
    from ._server import FakeSendcloud

__all__ = ["KINDS", "FailureKind", "FailurePatterns"]

Record = dict[str, Any]


@dataclass(frozen=True)
class FailureKind:
    """What a log of one kind of failure holds: its exception type, response code and
    message (``{url}``, ``{host}``, ``{path}``, ``{order}`` and ``{code}`` are filled in)."""

    exception_type: str | None
    response_codes: tuple[int | None, ...]
    message: str


#: The kinds of failure a pattern's logs are made of.
KINDS: Final = {
    "timeout": FailureKind(
        "requests.exceptions.ReadTimeout",
        (None,),
        "HTTPSConnectionPool(host='{host}', port=443): Read timed out. (read timeout=30)",
    ),
    "not_found": FailureKind(
        "requests.exceptions.HTTPError", (404,), "404 Client Error: Not Found for url: {url}"
    ),
    "unauthorized": FailureKind(
        "requests.exceptions.HTTPError", (401,), "401 Client Error: Unauthorized for url: {url}"
    ),
    "server_error": FailureKind(
        "requests.exceptions.HTTPError",
        (500, 502, 503),
        "{code} Server Error: Internal Server Error for url: {url}",
    ),
    "rate_limited": FailureKind(
        "requests.exceptions.HTTPError",
        (429,),
        "429 Client Error: Too Many Requests for url: {url}",
    ),
    "ssl": FailureKind(
        "requests.exceptions.SSLError",
        (None,),
        "HTTPSConnectionPool(host='{host}', port=443): Max retries exceeded with url: {path} "
        "(Caused by SSLError(CertificateError(\"hostname '{host}' doesn't match\")))",
    ),
    "rejected": FailureKind(
        None, (422,), "The shop rejected the shipment update of order {order}: tracking invalid"
    ),
}

_PATHS: Final = (
    "/api/orders/{order}",
    "/admin/api/2024-01/orders/{order}.json",
    "/wp-json/wc/v3/orders/{order}",
    "/rest/V1/shipment/track",
)
_DAY: Final = timedelta(days=1)


@dataclass(frozen=True)
class _Pattern:
    integration_id: int
    #: Logs on each day, ``days`` long.
    per_day: tuple[int, ...]
    kind: str | None


class FailurePatterns:
    """Logs of integrations that fail in known ways, over ``days`` days from ``start``."""

    #: The kinds of failure (``kind=``): exception type, response codes and message.
    KINDS: Final = KINDS

    def __init__(self, start: datetime, days: int = 30, *, seed: int = 0) -> None:
        if start.tzinfo is None or start.utcoffset() is None:
            raise ValueError("start must be an aware datetime")
        if isinstance(days, bool) or not isinstance(days, int) or days < 1:
            raise ValueError(f"days must be an int >= 1, got {days!r}")
        self.start = start
        self.days = days
        self.seed = seed
        self._patterns: list[_Pattern] = []

    # -- the patterns --------------------------------------------------------------------------

    def _add(self, integration_id: int, per_day: list[int], kind: str | None) -> Self:
        if isinstance(integration_id, bool) or not isinstance(integration_id, int):
            raise TypeError("integration_id must be an int")
        if integration_id < 1:
            raise ValueError(f"integration_id must be >= 1, got {integration_id}")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r} (known: {', '.join(KINDS)})")
        if any(n < 0 for n in per_day):
            raise ValueError("logs a day must be >= 0")
        self._patterns.append(_Pattern(integration_id, tuple(per_day), kind))
        return self

    def _day(self, day: int, name: str) -> int:
        if isinstance(day, bool) or not isinstance(day, int) or not 0 <= day <= self.days:
            raise ValueError(f"{name} must be an int from 0 to {self.days}, got {day!r}")
        return day

    def steady(self, integration_id: int, *, per_day: int, kind: str | None = None) -> Self:
        """``per_day`` logs every day of the period."""
        return self._add(integration_id, [per_day] * self.days, kind)

    def failing_from(
        self, integration_id: int, day: int, *, per_day: int, kind: str | None = None
    ) -> Self:
        """No log before ``day``; ``per_day`` logs on that day and every day after it."""
        first = self._day(day, "day")
        return self._add(
            integration_id, [0 if d < first else per_day for d in range(self.days)], kind
        )

    def recovering(
        self, integration_id: int, until_day: int, *, per_day: int, kind: str | None = None
    ) -> Self:
        """``per_day`` logs every day before ``until_day``; none from then on."""
        end = self._day(until_day, "until_day")
        return self._add(
            integration_id, [per_day if d < end else 0 for d in range(self.days)], kind
        )

    def rising(
        self,
        integration_id: int,
        *,
        from_per_day: int,
        to_per_day: int,
        kind: str | None = None,
    ) -> Self:
        """Logs a day going in a straight line from ``from_per_day`` on the first day to
        ``to_per_day`` on the last (falling, if ``to_per_day`` is the smaller)."""
        last = max(self.days - 1, 1)
        per_day = [
            round(from_per_day + (to_per_day - from_per_day) * d / last) for d in range(self.days)
        ]
        return self._add(integration_id, per_day, kind)

    # -- the logs --------------------------------------------------------------------------------

    @property
    def integration_ids(self) -> list[int]:
        """The integrations the patterns name, in the order first named."""
        return list(dict.fromkeys(p.integration_id for p in self._patterns))

    def count(self, integration_id: int | None = None, *, day: int | None = None) -> int:
        """How many logs the patterns make (of one integration, on one day)."""
        return sum(
            n
            for p in self._patterns
            if integration_id is None or p.integration_id == integration_id
            for d, n in enumerate(p.per_day)
            if day is None or d == day
        )

    def iter_records(self) -> Iterator[Record]:
        """Every log as the fake stores it (without ``id``), pattern after pattern, each
        pattern's oldest first."""
        rng = random.Random(self.seed)
        for pattern in self._patterns:
            host = f"www.shop-{pattern.integration_id}.example.com"
            for day, n in enumerate(pattern.per_day):
                begin = self.start + day * _DAY
                offsets = sorted(rng.randrange(86_400_000_000) for _ in range(n))
                for offset in offsets:
                    when = begin + timedelta(microseconds=offset)
                    yield _record(rng, pattern, host, when)

    def records(self) -> list[Record]:
        """Every log, oldest first, with ids from 1 (two logs never share an instant)."""
        items = sorted(self.iter_records(), key=lambda r: datetime.fromisoformat(r["created_at"]))
        seen: set[str] = set()
        for ident, item in enumerate(items, 1):
            when = item["created_at"]
            while when in seen:  # a microsecond later: created_at is unique on the fake
                when = (datetime.fromisoformat(when) + timedelta(microseconds=1)).isoformat()
            seen.add(when)
            item["created_at"] = when
            item["id"] = ident
        return items

    def apply(self, fake: FakeSendcloud) -> int:
        """Add the logs to ``fake`` (and the integrations it does not have, named
        ``Shop N``); returns how many logs were added."""
        for ident in self.integration_ids:
            if ident not in fake.integrations:
                fake.add_integration(
                    id=ident,
                    shop_name=f"Shop {ident}",
                    shop_url=f"https://www.shop-{ident}.example.com/",
                )
        added = 0
        for record in self.records():
            record.pop("id")
            ident = record.pop("integration_id")
            fake.add_log(ident, **record)
            added += 1
        return added


_NAMES: Final = tuple(KINDS)


def _record(rng: random.Random, pattern: _Pattern, host: str, when: datetime) -> Record:
    name = pattern.kind if pattern.kind is not None else rng.choice(_NAMES)
    kind = KINDS[name]
    code = rng.choice(kind.response_codes)
    order = str(rng.randint(10_000, 999_999))
    path = rng.choice(_PATHS).format(order=order)
    url = f"https://{host}{path}"
    method = rng.choice(("GET", "POST", "PUT"))
    response: Record | None = None
    if code is not None:
        response = {
            "headers": {"Content-Type": "application/json", "Server": "nginx"},
            "body": {"errors": [{"code": name, "detail": f"{code} for order {order}"}]},
        }
    return {
        "integration_id": pattern.integration_id,
        "base_url": f"https://{host}",
        "full_url": url,
        "method": method,
        "response_code": code,
        "response": response,
        "request": {
            "headers": {"Content-Type": "application/json", "User-Agent": "Sendcloud/3.0"},
            "payload": None if method == "GET" else {"order_note": {"note": "Shipped"}},
        },
        "created_at": when.isoformat(),
        "exception_type": kind.exception_type,
        "exception": kind.message.format(url=url, host=host, path=path, order=order, code=code),
        "protected": False,
        "additional_data": "",
    }
