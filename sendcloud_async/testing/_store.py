"""The in-memory state behind ``FakeSendcloud``, and its deterministic seeding.

Records are plain dicts shaped exactly like the spec's response schemas
(``integration-response-model``, ``integration-log``), with date-times kept as
ISO 8601 strings, so that the server can encode them as they are and a test can
compare them with what a client decoded.

Invariants the server relies on:

* ``logs`` is sorted ascending by ``created_at`` (records that share an instant
  in the order they were stored). By default no two records share an instant,
  so "strictly after the cursor" paging never skips or repeats one; with
  ``unique_log_times = False`` they may, and a page boundary inside such a group
  skips the rest of it, as any listing paged by a date-time cursor does.
* ``log_order`` is how the listing serves them: ``"oldest_first"`` (records
  strictly after the cursor, ascending) or ``"newest_first"`` (strictly before
  it, descending). Either way the next page's cursor is the last record's
  ``created_at``, and each page is read from the live list, so logs stored
  while a client walks the pages show up as they would on a real server.
* A log may be *committed late* (``visible_after``, ``commit_delay``): it gets
  its id and ``created_at`` when it is added, but the listing shows it only from
  a later moment, as a row written in a database transaction becomes visible when
  the transaction commits. Until then it waits in ``hidden`` (``publish()`` moves
  the due ones into ``logs``; every listing calls it first).
* Integration timestamps are UTC and written with ``Z`` (as the spec's examples);
  log timestamps keep the offset they were given (seeded ones use ``+01:00``).

Nothing here does I/O.
"""

from __future__ import annotations

import heapq
import random
import time
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any, Final

__all__ = [
    "FEEDBACK_TYPES",
    "INTEGRATION_FIELDS",
    "LANGUAGES",
    "LOG_FIELDS",
    "SEED_LOGS_START",
    "STATUS_CATEGORIES",
    "Record",
    "Store",
    "format_utc",
    "parse_aware",
]

Record = dict[str, Any]

LANGUAGES: Final = ("en-us", "en-gb", "fr-fr", "de-de", "nl-nl", "es-es", "it-it")
STATUS_CATEGORIES: Final = ("READY_TO_SEND", "IN_TRANSIT", "DELIVERED", "CANCEL")
FEEDBACK_TYPES: Final = ("eager", "delayed", "none")

#: The fields of ``integration-response-model``, in the spec's order.
INTEGRATION_FIELDS: Final = (
    "id",
    "shop_name",
    "shop_url",
    "type",
    "started_failing_at",
    "last_fetched_at",
    "created_at",
    "updated_at",
    "service_point_enabled",
    "service_point_carriers",
    "webhook_active",
    "webhook_url",
    "feedback_type",
)

#: The fields of ``integration-log``, in the spec's order.
LOG_FIELDS: Final = (
    "id",
    "integration_id",
    "base_url",
    "full_url",
    "method",
    "response_code",
    "response",
    "request",
    "created_at",
    "exception_type",
    "exception",
    "protected",
    "additional_data",
)

CET: Final = timezone(timedelta(hours=1))
#: The ``created_at`` of the first seeded log record.
SEED_LOGS_START: Final = datetime(2023, 3, 1, 0, 0, 0, tzinfo=CET)
_INTEGRATIONS_START: Final = datetime(2023, 1, 2, 9, 0, 0, tzinfo=UTC)


def format_utc(value: datetime) -> str:
    """An aware datetime as UTC ISO 8601 with a ``Z`` (the spec's integration style)."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_aware(value: str) -> datetime | None:
    """An ISO 8601 date-time with a UTC offset, or ``None`` if ``value`` is not one."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        return None
    return parsed


def _created_key(record: Mapping[str, Any]) -> datetime:
    value = record.get("created_at")
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        parsed = parse_aware(value)
        if parsed is not None:
            return parsed
    raise ValueError(f"log record {record.get('id')!r} has no aware created_at: {value!r}")


def _timestamp_field(value: object, name: str) -> str | None:
    """A date-time field given as ``None``, an aware ``datetime`` or an ISO string."""
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"{name} must be an aware datetime")
        return value.isoformat()
    if isinstance(value, str):
        if parse_aware(value) is None:
            raise ValueError(f"{name} must be an ISO 8601 date-time with an offset: {value!r}")
        return value
    raise TypeError(f"{name} must be a datetime or a str, not {type(value).__name__}")


class Store:
    """Integrations, exception logs, shop order statuses and status mappings."""

    def __init__(self) -> None:
        self.integrations: dict[int, Record] = {}
        self.logs: list[Record] = []
        self.shop_order_statuses: dict[int, list[Record]] = {}
        self.status_mappings: dict[int, list[Record]] = {}
        self._next_log_id = 1
        #: ``"oldest_first"`` or ``"newest_first"``: the order the listing serves.
        self.log_order = "oldest_first"
        #: Whether a created_at that is taken is refused (``add_log``) or moved (POST).
        self.unique_log_times = True
        #: Logs added but not committed yet: (visible from, monotonic; order added; record).
        self.hidden: list[tuple[float, int, Record]] = []
        #: ``(low, high)`` seconds: every log added without ``visible_after`` becomes
        #: visible after a random delay in that range (``None``: at once).
        self.commit_delay: tuple[float, float] | None = None
        self.commit_rng = random.Random(0)
        self._added = 0

    # -- whole state -------------------------------------------------------

    def clear(self) -> None:
        """Forget everything (in place: references to the containers stay valid)."""
        self.integrations.clear()
        self.logs.clear()
        self.hidden.clear()
        self.shop_order_statuses.clear()
        self.status_mappings.clear()
        self._next_log_id = 1

    def seed(self, *, integrations: int, logs_per_integration: int, seed: int) -> None:
        """Replace the state with generated data that depends only on the arguments."""
        for name, value in (
            ("integrations", integrations),
            ("logs_per_integration", logs_per_integration),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an int >= 0, got {value!r}")
        self.clear()
        rng = random.Random(seed)
        for n in range(1, integrations + 1):
            self.integrations[n] = _seed_integration(rng, n)
            statuses, mapping = _seed_statuses(rng)
            self.shop_order_statuses[n] = statuses
            self.status_mappings[n] = mapping
        owners = [n for n in self.integrations for _ in range(logs_per_integration)]
        rng.shuffle(owners)
        when = SEED_LOGS_START
        for index, owner in enumerate(owners):
            if index:
                when += timedelta(seconds=rng.randint(1, 6))
            record = _seed_log(rng, self._next_log_id, self.integrations[owner], when)
            self.logs.append(record)
            self._next_log_id += 1

    # -- integrations ------------------------------------------------------

    def add_integration(self, fields: Mapping[str, Any]) -> Record:
        """Store an integration; unknown field names raise ``TypeError``."""
        unknown = sorted(set(fields) - set(INTEGRATION_FIELDS))
        if unknown:
            raise TypeError(f"not fields of an integration: {', '.join(unknown)}")
        ident = fields.get("id")
        if ident is None:
            ident = max(self.integrations, default=0) + 1
        elif isinstance(ident, bool) or not isinstance(ident, int) or ident < 1:
            raise ValueError(f"id must be an int >= 1, got {ident!r}")
        elif ident in self.integrations:
            raise ValueError(f"an integration with id {ident} already exists")
        now = format_utc(datetime.now(UTC))
        record: Record = {
            "id": ident,
            "shop_name": f"Shop {ident}",
            "shop_url": f"https://shop-{ident}.example.com/",
            "type": "api",
            "started_failing_at": None,
            "last_fetched_at": None,
            "created_at": now,
            "updated_at": now,
            "service_point_enabled": False,
            "service_point_carriers": [],
            "webhook_active": False,
            "webhook_url": None,
            "feedback_type": "eager",
        }
        for key, value in fields.items():
            if key in ("started_failing_at", "last_fetched_at", "created_at", "updated_at"):
                value = _timestamp_field(value, key)
                if isinstance(value, str):
                    parsed = parse_aware(value)
                    assert parsed is not None
                    value = format_utc(parsed)
            record[key] = value
        record["id"] = ident
        self.integrations[ident] = record
        return record

    def sorted_integrations(self, fields: Iterable[tuple[str, bool]]) -> list[Record]:
        """The integrations ordered by ``(field, descending)`` keys, most significant first.

        Nulls sort last ascending and first descending (as PostgreSQL does); ties
        fall back on ``id``.
        """
        records = sorted(self.integrations.values(), key=lambda r: r["id"])
        for field, descending in reversed(list(fields)):
            present = [r for r in records if r.get(field) is not None]
            missing = [r for r in records if r.get(field) is None]
            present.sort(key=partial(_field_value, field), reverse=descending)
            records = missing + present if descending else present + missing
        return records

    def delete_integration(self, ident: int) -> None:
        """Remove an integration with its statuses and mapping; its logs stay."""
        del self.integrations[ident]
        self.shop_order_statuses.pop(ident, None)
        self.status_mappings.pop(ident, None)

    # -- logs --------------------------------------------------------------

    def add_log(
        self, integration_id: int, fields: Mapping[str, Any], visible_after: float | None = None
    ) -> Record:
        """Store a log record; ``created_at`` defaults to one second after the last one.

        ``visible_after`` (seconds) commits it late: the listing shows it only from
        then on (``None``: as ``commit_delay`` says, at once by default).
        """
        unknown = sorted(set(fields) - set(LOG_FIELDS) - {"integration_id"})
        if unknown:
            raise TypeError(f"not fields of an integration log: {', '.join(unknown)}")
        if "integration_id" in fields:
            raise TypeError("pass integration_id positionally, not as a field")
        integration = self.integrations.get(integration_id)
        if integration is None:
            raise ValueError(f"no integration with id {integration_id!r}")
        ident = fields.get("id")
        if ident is not None and any(r.get("id") == ident for r in self._every_log()):
            raise ValueError(f"a log with id {ident!r} already exists")
        created = _timestamp_field(fields.get("created_at"), "created_at")
        if created is None:
            created = self.next_created_at(None).isoformat()
        elif self.unique_log_times and self.has_log_at(_created_key({"created_at": created})):
            raise ValueError(f"a log created at {created} already exists; created_at is unique")
        base_url = str(integration.get("shop_url") or "https://example.com").rstrip("/")
        record: Record = {
            "id": 0,
            "integration_id": integration_id,
            "base_url": base_url,
            "full_url": None,
            "method": "",
            "response_code": None,
            "response": None,
            "request": None,
            "created_at": created,
            "exception_type": None,
            "exception": None,
            "protected": False,
            "additional_data": "",
        }
        record.update(fields)
        record["created_at"] = created
        record["integration_id"] = integration_id
        return self.insert_log(record, visible_after)

    def insert_log(self, record: Record, visible_after: float | None = None) -> Record:
        """Give ``record`` an id (unless it has one) and insert it in ``created_at`` order.

        It is listed at once, or after ``visible_after`` seconds (or the random
        ``commit_delay``): then it waits in ``hidden`` until ``publish()``.
        """
        ident = record.get("id")
        if not isinstance(ident, int) or isinstance(ident, bool) or ident < 1:
            record["id"] = ident = self._next_log_id
        self._next_log_id = max(self._next_log_id, ident + 1)
        delay = visible_after
        if delay is None and self.commit_delay is not None:
            delay = self.commit_rng.uniform(*self.commit_delay)
        if delay is not None and delay > 0:
            self._added += 1
            heapq.heappush(self.hidden, (time.monotonic() + delay, self._added, record))
            return record
        insort(self.logs, record, key=_created_key)
        return record

    def publish(self) -> None:
        """Make the logs whose commit is due visible to the listing."""
        now = time.monotonic()
        while self.hidden and self.hidden[0][0] <= now:
            _, _, record = heapq.heappop(self.hidden)
            insort(self.logs, record, key=_created_key)

    def _every_log(self) -> Iterable[Record]:
        yield from self.logs
        for _, _, record in self.hidden:
            yield record

    def has_log_at(self, when: datetime) -> bool:
        """Whether a log record (committed or not) was created at exactly this instant."""
        i = bisect_right(self.logs, when, key=_created_key)
        if i > 0 and _created_key(self.logs[i - 1]) == when:
            return True
        return any(_created_key(record) == when for _, _, record in self.hidden)

    def next_created_at(self, wanted: datetime | None) -> datetime:
        """A ``created_at`` no other record has.

        ``None`` means "the next one": now (in ``+01:00``) or, if the newest
        record is not older than now, one second after it. A wanted instant that
        is taken is moved forward by microseconds until it is free.
        """
        if wanted is None:
            wanted = datetime.now(CET)
            newest = [_created_key(self.logs[-1])] if self.logs else []
            newest += [_created_key(record) for _, _, record in self.hidden]
            if newest:
                last = max(newest)
                if wanted <= last:
                    wanted = last + timedelta(seconds=1)
            return wanted
        while self.unique_log_times and self.has_log_at(wanted):
            wanted += timedelta(microseconds=1)
        return wanted

    def logs_page(
        self, *, after: datetime | None, integration_id: int | None, size: int
    ) -> tuple[list[Record], bool]:
        """Up to ``size`` records beyond the cursor ``after``, and whether more follow.

        Oldest-first: created strictly after it, ascending; newest-first: strictly
        before it, descending (``None``: from the start of the listing).
        """
        self.publish()
        logs = self.logs
        if self.log_order == "newest_first":
            end = len(logs) if after is None else bisect_left(logs, after, key=_created_key)
            page: list[Record] = []
            for i in range(end - 1, -1, -1):
                record = logs[i]
                if integration_id is None or record.get("integration_id") == integration_id:
                    if len(page) == size:
                        return page, True
                    page.append(record)
            return page, False
        start = 0 if after is None else bisect_right(logs, after, key=_created_key)
        if integration_id is None:
            return logs[start : start + size], start + size < len(logs)
        page = []
        for i in range(start, len(logs)):
            record = logs[i]
            if record.get("integration_id") == integration_id:
                if len(page) == size:
                    return page, True
                page.append(record)
        return page, False

    # -- shop order statuses -----------------------------------------------

    def replace_statuses(self, integration_id: int, statuses: list[Record]) -> None:
        """Make ``statuses`` the available ones; the others get a ``deleted_at``."""
        now = format_utc(datetime.now(UTC))
        current = self.shop_order_statuses.setdefault(integration_id, [])
        by_id = {s["external_id"]: s for s in current}
        wanted = {s["external_id"] for s in statuses}
        for status in current:
            if status["external_id"] not in wanted and status.get("deleted_at") is None:
                status["deleted_at"] = now
        for new in statuses:
            translations = [
                {"status": t["status"], "language": t["language"]} for t in new["translations"]
            ]
            existing = by_id.get(new["external_id"])
            if existing is None:
                current.append(
                    {
                        "external_id": new["external_id"],
                        "deleted_at": None,
                        "translations": translations,
                    }
                )
            else:
                existing["translations"] = translations
                existing["deleted_at"] = None

    def visible_statuses(
        self, integration_id: int, *, language: str | None, show_deleted: bool
    ) -> list[Record]:
        """The statuses as the GET endpoint shows them, ``status`` translated."""
        out: list[Record] = []
        for stored in self.shop_order_statuses.get(integration_id, ()):
            if stored.get("deleted_at") is not None and not show_deleted:
                continue
            translations = list(stored.get("translations") or ())
            out.append(
                {
                    "external_id": stored["external_id"],
                    "status": _translate(translations, language),
                    "deleted_at": stored.get("deleted_at"),
                    "translations": translations,
                }
            )
        return out

    def mapping(self, integration_id: int) -> list[Record]:
        """All four categories with their ``external_id`` (or ``None``) and ``is_valid``."""
        stored = {
            m.get("status_category"): m.get("external_id")
            for m in self.status_mappings.get(integration_id, ())
        }
        live = {
            s["external_id"]
            for s in self.shop_order_statuses.get(integration_id, ())
            if s.get("deleted_at") is None
        }
        out: list[Record] = []
        for category in STATUS_CATEGORIES:
            external_id = stored.get(category)
            out.append(
                {
                    "status_category": category,
                    "external_id": external_id,
                    "is_valid": external_id is None or external_id in live,
                }
            )
        return out

    def set_mapping(self, integration_id: int, mapping: list[Record]) -> None:
        """Store a mapping (already checked to hold each category once)."""
        self.status_mappings[integration_id] = [
            {"status_category": m["status_category"], "external_id": m["external_id"]}
            for m in mapping
        ]


def _field_value(field: str, record: Record) -> Any:
    """``record[field]``, a date-time string parsed so that offsets compare correctly."""
    value = record[field]
    if isinstance(value, str):
        parsed = parse_aware(value)
        if parsed is not None:
            return parsed
    return value


def _translate(translations: list[Record], language: str | None) -> str | None:
    """The status in ``language``, else in en-gb, else in the alphabetically first language."""
    by_language = {t.get("language"): t.get("status") for t in translations}
    for candidate in (language, "en-gb"):
        if candidate is not None and candidate in by_language:
            return by_language[candidate]
    if not by_language:
        return None
    first = min((lang for lang in by_language if isinstance(lang, str)), default=None)
    return by_language.get(first)


# -- seeding ---------------------------------------------------------------

_SYSTEMS: Final = (
    "api",
    "shopify",
    "woocommerce",
    "prestashop_v2",
    "magento_2",
    "lightspeed",
    "wix",
    "bigcommerce",
)
_ADJECTIVES: Final = ("Happy", "Green", "Urban", "Tiny", "Nordic", "Golden", "Rapid", "Cosy")
_NOUNS: Final = ("Socks", "Bikes", "Plants", "Coffee", "Books", "Lamps", "Tea", "Toys")
_CARRIERS: Final = ("ups", "dhl", "dpd", "postnl", "gls", "bpost", "colissimo")
_HTML_ERROR: Final = (
    "<!doctype html>\n<html>\n <head>\n <title>{title}</title>\n </head>\n"
    " <body><h1>{title}</h1></body>\n</html>\n"
)
_PATHS: Final = (
    "/order-note.json",
    "/admin/api/2023-01/orders.json",
    "/wp-json/wc/v3/orders",
    "/api/orders/{n}",
    "/rest/V1/shipment/track",
    "/webservice/dispatcher.php?url=orders",
)
_STATUS_NAMES: Final = (
    ("1", {"en-gb": "Awaiting payment", "nl-nl": "Wacht op betaling", "de-de": "Zahlung offen"}),
    ("2", {"en-gb": "Payment accepted", "nl-nl": "Betaling aanvaard", "fr-fr": "Paiement accepté"}),
    ("3", {"en-gb": "Processing", "nl-nl": "In behandeling", "de-de": "In Bearbeitung"}),
    ("4", {"en-gb": "Shipped", "nl-nl": "Verzonden", "de-de": "Versandt", "es-es": "Enviado"}),
    ("5", {"en-gb": "Delivered", "nl-nl": "Bezorgd", "de-de": "Geliefert"}),
    ("6", {"en-gb": "Cancelled", "nl-nl": "Geannuleerd", "de-de": "Abgesagt"}),
    ("7", {"en-gb": "Refunded", "fr-fr": "Remboursé", "it-it": "Rimborsato"}),
    ("17-B", {"nl-nl": "Klaar voor verzending", "de-de": "Versandbereit"}),
)


def _seed_integration(rng: random.Random, ident: int) -> Record:
    created = _INTEGRATIONS_START + timedelta(
        days=rng.randint(0, 50), seconds=rng.randint(0, 86_399)
    )
    updated = created + timedelta(days=rng.randint(0, 20), seconds=rng.randint(1, 86_399))
    fetched = updated + timedelta(minutes=rng.randint(1, 600)) if rng.random() < 0.8 else None
    failing = None
    if fetched is not None and rng.random() < 0.3:
        failing = fetched + timedelta(seconds=rng.randint(60, 3_600))
    slug = f"{rng.choice(_ADJECTIVES)}-{rng.choice(_NOUNS)}".lower()
    service_points = rng.random() < 0.5
    webhook = rng.random() < 0.5
    return {
        "id": ident,
        "shop_name": f"{slug.replace('-', ' ').title()} #{ident}",
        "shop_url": f"https://www.{slug}-{ident}.example.com/",
        "type": rng.choice(_SYSTEMS),
        "started_failing_at": format_utc(failing) if failing else None,
        "last_fetched_at": format_utc(fetched) if fetched else None,
        "created_at": format_utc(created),
        "updated_at": format_utc(updated),
        "service_point_enabled": service_points,
        "service_point_carriers": sorted(rng.sample(_CARRIERS, rng.randint(1, 3)))
        if service_points
        else [],
        "webhook_active": webhook,
        "webhook_url": f"https://www.{slug}-{ident}.example.com/api/webhooks/sendcloud"
        if webhook or rng.random() < 0.3
        else None,
        "feedback_type": rng.choice(FEEDBACK_TYPES),
    }


def _seed_statuses(rng: random.Random) -> tuple[list[Record], list[Record]]:
    statuses: list[Record] = []
    for external_id, names in _STATUS_NAMES:
        statuses.append(
            {
                "external_id": external_id,
                "deleted_at": None,
                "translations": [
                    {"status": status, "language": language} for language, status in names.items()
                ],
            }
        )
    deleted = rng.choice(statuses[:-1])
    deleted["deleted_at"] = format_utc(
        _INTEGRATIONS_START + timedelta(days=rng.randint(30, 60), seconds=rng.randint(0, 86_399))
    )
    mapping: list[Record] = [
        {"status_category": "READY_TO_SEND", "external_id": rng.choice(("2", "3", "17-B"))},
        {"status_category": "IN_TRANSIT", "external_id": "4"},
        {"status_category": "DELIVERED", "external_id": rng.choice(("5", None))},
        {"status_category": "CANCEL", "external_id": deleted["external_id"]},
    ]
    return statuses, mapping


_HEADER_SETS: Final = (
    {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "max-age=3600"},
    {"Content-Type": "application/json", "Connection": "keep-alive"},
    {"Content-Type": "application/json", "Retry-After": "30", "X-RateLimit-Remaining": "0"},
    {"Server": "nginx", "Content-Type": "text/html"},
)


def _seed_log(rng: random.Random, ident: int, integration: Record, when: datetime) -> Record:
    base_url = str(integration["shop_url"]).rstrip("/")
    path = rng.choice(_PATHS).replace("{n}", str(rng.randint(1000, 99999)))
    method = rng.choice(("GET", "GET", "POST", "PUT", "PATCH"))
    kind = rng.randrange(7)
    response: Record | None
    code: int | None
    if kind == 0:
        code, etype, exc = 495, "requests.exceptions.SSLError", "An SSL error occurred"
        response = {
            "headers": dict(_HEADER_SETS[0]),
            "body": _HTML_ERROR.format(title="SSL Certificate Error"),
        }
    elif kind == 1:
        code, etype = 404, "requests.exceptions.HTTPError"
        exc = f"404 Client Error: Not Found for url: {base_url}{path}"
        response = {
            "headers": dict(_HEADER_SETS[1]),
            "body": {"errors": [{"code": "not_found", "message": "Order not found"}]},
        }
    elif kind == 2:
        code, etype = 401, "requests.exceptions.HTTPError"
        exc = "API credentials are no longer valid"
        response = {"headers": dict(_HEADER_SETS[1]), "body": {"error": "invalid_token"}}
    elif kind == 3:
        code = rng.choice((500, 502, 503))
        etype = "requests.exceptions.HTTPError"
        exc = f"{code} Server Error for url: {base_url}{path}"
        response = {
            "headers": dict(_HEADER_SETS[3]),
            "body": _HTML_ERROR.format(title=f"{code} Server Error"),
        }
    elif kind == 4:
        code, etype = 429, "requests.exceptions.HTTPError"
        exc = "429 Client Error: Too Many Requests"
        response = {"headers": dict(_HEADER_SETS[2]), "body": None}
    elif kind == 5:
        code, etype = None, "requests.exceptions.ReadTimeout"
        exc = f"HTTPSConnectionPool(host='{base_url[8:]}', port=443): Read timed out."
        response = None
    else:
        code, etype = 422, None
        exc = "The shop rejected the shipment update"
        response = {
            "headers": None,
            "body": {"message": "Validation failed", "fields": {"tracking_number": "invalid"}},
        }
    payload: dict[str, Any] | str | None
    if method == "GET":
        payload = None
    elif rng.random() < 0.7:
        payload = {"order_note": {"note": rng.choice(("Success", "Shipped", "Label created"))}}
    else:
        payload = f"<order><id>{rng.randint(1000, 99999)}</id><state>shipped</state></order>"
    request_headers: dict[str, Any] | str
    if rng.random() < 0.1:
        request_headers = "Content-Type: application/xml\r\nAccept: */*"
    else:
        request_headers = {"Content-Type": "application/json", "User-Agent": "Sendcloud/3.0"}
    protected = rng.random() < 0.05
    additional: dict[str, Any] | str = ""
    if rng.random() < 0.2:
        additional = {"order_id": str(rng.randint(1000, 99999)), "attempt": rng.randint(1, 5)}
    return {
        "id": ident,
        "integration_id": integration["id"],
        "base_url": base_url,
        "full_url": None if rng.random() < 0.05 else f"{base_url}{path}",
        "method": method,
        "response_code": code,
        "response": response,
        "request": {"headers": request_headers, "payload": "***" if protected else payload},
        "created_at": when.isoformat(),
        "exception_type": etype,
        "exception": exc,
        "protected": protected,
        "additional_data": additional,
    }
