"""Verify and decode the webhook events Sendcloud posts to an integration's ``webhook_url``.

Sendcloud signs every request with HMAC-SHA256 of the request body, keyed with
the integration's secret, and sends the hex digest in the ``Sendcloud-Signature``
header. The security decisions, each a fix for a mistake common in other clients:

* **The raw body is hashed, never a re-serialisation.** ``json.dumps(json.loads(b))``
  does not give back ``b`` (key order, spacing, escapes, number formats), so
  hashing parsed-then-dumped JSON rejects genuine events or, worse, tempts
  people into "fixing" verification until it accepts anything. The functions
  here take ``bytes`` only; a ``str`` body raises ``TypeError`` because it means
  the body was already decoded by something.
* **Constant-time comparison.** The digests are compared with
  ``hmac.compare_digest``, so response timing reveals nothing about how many
  leading characters of a forged signature were right.
* **The secret comes from your configuration, never from the payload.** The
  payload is untrusted until verified; nothing in it is used to verify it.
* **Verify first, decode second.** ``parse_event`` looks at the JSON only after
  the signature matched, so an attacker cannot reach the decoder.
* **Tolerant in form, strict in substance.** The header is accepted with any hex
  case and surrounding whitespace; anything that is not 64 hex characters is
  "malformed". A missing, malformed or wrong signature raises
  ``InvalidSignatureError``; messages never contain the secret, the expected
  digest or the received signature.
* **Rotation.** ``secret`` may be one string or a sequence of them (the new and
  the old secret while a rotation is under way). The body is compared against
  every candidate, each in constant time and without stopping at the first
  match, and the error never says which candidate matched or how many there were.

Late, repeated and out-of-order deliveries (Sendcloud retries a failed delivery
ten times, 5 minutes to an hour apart, about 7¼ hours in all, and says arrival
order may be scattered):

* ``parse_event(..., max_age=seconds)`` raises ``EventTooOldError`` for a
  verified event whose ``timestamp`` is more than ``max_age`` seconds old, or
  more than 5 minutes (``_FUTURE_SKEW``) in the future. The signature covers
  only the body, so this bounds how long a captured request can be replayed.
  ``max_age`` must cover the whole retry schedule: 12 hours (43 200 s) is the
  recommended value; Stripe's 5 minutes would reject every legitimate retry.
  An ``UnknownEvent`` without a usable timestamp has no age and passes.
* ``EventLedger`` remembers what was admitted: ``await ledger.admit(event)`` is
  ``"new"``, ``"duplicate"`` (same action, object and timestamp; for events
  without an object, the same content) or ``"stale"`` (older than an event
  already admitted for the same parcel, integration or return). ``ledger.handling``
  records an event only after the work on it succeeded, and lets only one
  delivery per object be worked on at a time (another one gets
  ``EventInFlightError``). ``sendcloud_async.redis.RedisEventLedger`` is the same
  ledger shared by several processes.

Decoding decisions (the spec is loose in places; every choice is deliberate):

* The event type is chosen by ``action``: ``integration_connected``,
  ``integration_updated`` (the spec files it under the key
  ``IntegrationModified``), ``integration_deleted``, ``parcel_status_changed``
  and ``return_created``. Any other action becomes ``UnknownEvent``, which keeps
  the raw action and the whole decoded JSON object, so new event types never
  turn into errors (Sendcloud would retry them ten times).
* ``timestamp`` is a number on the wire: milliseconds in the integration
  examples (``1525271885993``), "a unix timestamp" for parcels and returns.
  The unit is decided by magnitude: ``abs(value) > 1e11`` means milliseconds,
  anything else seconds. 1e11 seconds is the year 5138 and 1e11 milliseconds
  is March 1973, so every real date since 1973 is read correctly in either
  unit. Integers and floats (fractional seconds) are both accepted, as are
  numeric strings. ``.timestamp`` is an aware UTC ``datetime``;
  ``.timestamp_raw`` keeps the number as sent. A timestamp that is not a
  finite number in the ``datetime`` range is a ``DecodeError``.
* Known events require ``action`` and ``timestamp``. ``UnknownEvent`` requires
  only ``action``; its ``timestamp`` is ``None`` when absent or unusable.
* Integration events use the v2-style field names the webhook actually sends
  (``system``, ``failing_since``, ``last_fetch``, ``last_updated_at``), not the
  names of the v3 ``Integration`` model. Every field is optional, including the
  ``integration`` object itself (a deleted integration may carry little).
* Parcel fields are all optional and typed for what is seen in practice:
  ``house_number`` is ``str | int``, ``weight`` is ``str | float`` (the spec's
  example is ``"2.000"``), ``date_created`` is kept as the string sent (its
  format differs between API versions). ``parcel`` itself is optional because
  the spec requires nothing in that schema.
* ``ReturnCreated.data`` and its ``id`` are required, as in the spec; an
  integral float id (``42.0``) is accepted as ``42``.
* Numbers sent as numeric strings are accepted where the model expects a
  number (msgspec's ``strict=False``). Fields the models do not know are
  ignored; to read one, decode the (verified) body yourself as well.
* Date-time strings without an offset are taken as UTC.
* Anything undecodable after a valid signature (not UTF-8 JSON, not an object,
  no ``action`` string, a field of the wrong type) raises
  ``sendcloud_async.DecodeError`` (the SDK's one decoding error, defined in
  ``sendcloud_async._errors``), never a bare ``msgspec`` or ``ValueError``.

``aiohttp_handler`` wraps all of this into an ``aiohttp.web`` handler.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import math
import re
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, NamedTuple, TypeAlias

import msgspec

from ._errors import DecodeError, SendcloudError, StateUnavailableError
from ._time import as_utc
from ._validate import integration_id, positive_seconds

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "SIGNATURE_HEADER",
    "EventInFlightError",
    "EventLedger",
    "EventTooOldError",
    "IntegrationConnected",
    "IntegrationDeleted",
    "IntegrationUpdated",
    "InvalidSignatureError",
    "Parcel",
    "ParcelAddressDivided",
    "ParcelCountry",
    "ParcelLabel",
    "ParcelShipment",
    "ParcelStatus",
    "ParcelStatusChanged",
    "ReturnCreated",
    "ReturnData",
    "ReturnItem",
    "UnknownEvent",
    "Verdict",
    "WebhookEvent",
    "WebhookIntegration",
    "aiohttp_handler",
    "parse_event",
    "sign",
    "verify_signature",
]

logger: Final = logging.getLogger("sendcloud_async.webhooks")

SIGNATURE_HEADER: Final = "Sendcloud-Signature"
"""The request header that carries the hex HMAC-SHA256 of the body."""

_HEX_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_MS_THRESHOLD: Final = 100_000_000_000  # 1e11: above it a timestamp is in milliseconds
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_DEFAULT_MAX_BODY: Final = 1024 * 1024
#: How far in the future an event's timestamp may be (clock skew) under ``max_age``.
_FUTURE_SKEW: Final = 300.0
#: What a ledger remembers by default: entries per table, and for how long (seconds).
_DEFAULT_MAX_ENTRIES: Final = 100_000
_DEFAULT_TTL: Final = 86_400.0
#: What the receiver asks for in ``Retry-After`` when a delivery is busy elsewhere.
_IN_FLIGHT_RETRY_AFTER: Final = "60"

SignatureProblem: TypeAlias = Literal["missing", "malformed", "mismatch"]

_MESSAGES: Final[dict[str, str]] = {
    "missing": f"missing {SIGNATURE_HEADER} signature",
    "malformed": "malformed signature: expected 64 hexadecimal characters",
    "mismatch": "signature does not match the body and secret",
}


class InvalidSignatureError(SendcloudError):
    """The webhook signature is missing, malformed or does not match the body.

    ``reason`` is ``"missing"``, ``"malformed"`` or ``"mismatch"``. The message
    never contains the secret, the expected digest or the received signature.
    """

    reason: SignatureProblem

    def __init__(self, reason: SignatureProblem) -> None:
        self.reason = reason
        super().__init__(_MESSAGES[reason])

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.reason,))


class EventTooOldError(SendcloudError):
    """A verified event's ``timestamp`` is outside the window ``parse_event(max_age=…)`` allows.

    ``age`` is how old the event is, in seconds (negative: it is in the future,
    by more than the allowed clock skew); ``max_age`` is the limit it broke.
    """

    age: float
    max_age: float

    def __init__(self, age: float, max_age: float) -> None:
        self.age = age
        self.max_age = max_age
        if age < 0:
            message = (
                f"webhook event timestamp is {-age:.1f} s in the future, more than the "
                f"{_FUTURE_SKEW:g} s allowed for clock skew"
            )
        else:
            message = f"webhook event is {age:.1f} s old, more than max_age={max_age:g} s"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.age, self.max_age))


class EventInFlightError(SendcloudError):
    """Another delivery for the same object (or of the same event) is being handled now.

    Raised by ``EventLedger.admit`` and ``EventLedger.handling``; answer with a
    non-2xx status so that Sendcloud delivers it again later (``aiohttp_handler``
    answers 409 with ``Retry-After``). ``scope`` names the object, e.g. ``"parcel:7"``.
    """

    scope: str

    def __init__(self, scope: str) -> None:
        self.scope = scope
        super().__init__(f"another delivery for {scope} is being handled right now")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.scope,))


# --------------------------------------------------------------------------- signing


def _body_bytes(body: object) -> bytes | bytearray | memoryview:
    if isinstance(body, bytes | bytearray | memoryview):
        return body
    if isinstance(body, str):
        raise TypeError(
            "body must be the raw request bytes, got str: the body was already decoded "
            "(or re-serialised from parsed JSON), and its signature is over the exact "
            "bytes received; pass e.g. `await request.read()`"
        )
    raise TypeError(
        f"body must be the raw request bytes, got {type(body).__name__}; the signature "
        "covers the exact bytes received, not parsed or re-serialised JSON"
    )


def _key(secret: object) -> bytes:
    if not isinstance(secret, str):
        raise TypeError(f"secret must be a str, got {type(secret).__name__}")
    if not secret:
        raise ValueError("secret must not be empty")
    return secret.encode("utf-8")


def _keys(secret: object) -> tuple[bytes, ...]:
    """The keys of one secret or of a sequence of them (rotation); never empty."""
    if isinstance(secret, str):
        return (_key(secret),)
    if isinstance(secret, bytes | bytearray | memoryview) or not isinstance(secret, Sequence):
        raise TypeError(f"secret must be a str or a sequence of str, got {type(secret).__name__}")
    if not secret:
        raise ValueError("secret must not be empty: give at least one")
    return tuple(_key(each) for each in secret)


def sign(body: bytes, secret: str) -> str:
    """The ``Sendcloud-Signature`` value for ``body``: hex HMAC-SHA256 keyed with ``secret``."""
    data = _body_bytes(body)
    return hmac.new(_key(secret), data, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str | None, secret: str | Sequence[str]) -> None:
    """Check that ``signature`` is the HMAC-SHA256 of the raw ``body`` under ``secret``.

    ``secret`` is one secret or a sequence of them (during a rotation): any
    match passes. Every candidate is computed and compared in constant time,
    without stopping at a match, and no error says which one matched.

    Returns ``None`` when it matches; raises ``InvalidSignatureError`` when the
    signature is missing (``None`` or blank), malformed (not 64 hex characters
    once stripped) or wrong. Hex case and surrounding whitespace are ignored.
    Raises ``TypeError`` for a non-bytes body (a ``str`` means it was decoded
    or re-serialised) and ``ValueError`` for an empty secret (or none at all).
    """
    data = _body_bytes(body)
    keys = _keys(secret)
    if signature is None:
        raise InvalidSignatureError("missing")
    if not isinstance(signature, str):
        raise TypeError(f"signature must be a str or None, got {type(signature).__name__}")
    candidate = signature.strip().lower()
    if not candidate:
        raise InvalidSignatureError("missing")
    if _HEX_SHA256.fullmatch(candidate) is None:
        raise InvalidSignatureError("malformed")
    received = candidate.encode("ascii")
    matched = False
    for key in keys:
        expected = hmac.new(key, data, hashlib.sha256).hexdigest().encode("ascii")
        matched = hmac.compare_digest(expected, received) or matched
    if not matched:
        raise InvalidSignatureError("mismatch")


# --------------------------------------------------------------------------- models


class WebhookIntegration(msgspec.Struct, kw_only=True):
    """The integration in an integration event, with the webhook's (v2-style) field names.

    These differ from ``sendcloud_async.Integration``: ``system`` is its ``type``,
    ``failing_since`` its ``started_failing_at``, ``last_fetch`` its
    ``last_fetched_at`` and ``last_updated_at`` its ``updated_at``.
    """

    id: int | None = None
    shop_name: str | None = None
    shop_url: str | None = None
    system: str | None = None
    failing_since: datetime | None = None
    last_fetch: datetime | None = None
    last_updated_at: datetime | None = None
    service_point_enabled: bool | None = None
    service_point_carriers: list[str] = msgspec.field(default_factory=list)
    webhook_active: bool | None = None
    webhook_url: str | None = None

    def __post_init__(self) -> None:
        self.failing_since = as_utc(self.failing_since)
        self.last_fetch = as_utc(self.last_fetch)
        self.last_updated_at = as_utc(self.last_updated_at)


class ParcelAddressDivided(msgspec.Struct, kw_only=True):
    """The recipient's street and house number (``house_number`` arrives as string or int)."""

    street: str | None = None
    house_number: str | int | None = None


class ParcelLabel(msgspec.Struct, kw_only=True):
    """Label download URLs."""

    normal_printer: list[str] | None = None
    label_printer: str | None = None


class ParcelStatus(msgspec.Struct, kw_only=True):
    """A parcel status: Sendcloud's id and its description."""

    id: int | None = None
    message: str | None = None


class ParcelCountry(msgspec.Struct, kw_only=True):
    """The recipient's country."""

    iso_2: str | None = None
    iso_3: str | None = None
    name: str | None = None


class ParcelShipment(msgspec.Struct, kw_only=True):
    """The shipping method of a parcel."""

    id: int | None = None
    name: str | None = None


class Parcel(msgspec.Struct, kw_only=True):
    """The parcel in a ``parcel_status_changed`` event; every field is optional.

    ``weight`` is a string in the spec (``"2.000"``) but may be a number;
    ``date_created`` is kept as sent because its format differs between API
    versions. Fields not listed here are ignored.
    """

    id: int | None = None
    name: str | None = None
    company_name: str | None = None
    address: str | None = None
    address_divided: ParcelAddressDivided | None = None
    city: str | None = None
    postal_code: str | None = None
    telephone: str | None = None
    email: str | None = None
    date_created: str | None = None
    tracking_number: str | None = None
    weight: str | float | None = None
    label: ParcelLabel | None = None
    customs_declaration: dict[str, Any] | None = None
    status: ParcelStatus | None = None
    data: dict[str, Any] | list[Any] | None = None
    country: ParcelCountry | None = None
    shipment: ParcelShipment | None = None
    order_number: str | None = None
    shipment_uuid: str | None = None
    external_order_id: str | None = None
    external_shipment_id: str | None = None


class ReturnItem(msgspec.Struct, kw_only=True):
    """One returned item; ``quantity`` is required by the spec."""

    quantity: int
    item_id: str | int | None = None
    description: str | None = None
    sku: str | None = None
    hs_code: str | None = None
    return_reason_id: int | None = None


class ReturnData(msgspec.Struct, kw_only=True):
    """The return in a ``return_created`` event; ``id`` is required by the spec."""

    id: int
    brand_id: int | None = None
    order_number: str | None = None
    return_reason_id: int | None = None
    return_address_id: int | None = None
    paid_return: bool | None = None
    delivery_choice: str | None = None
    refund_type: str | None = None
    items: list[ReturnItem] = msgspec.field(default_factory=list)


class _IntegrationEvent(msgspec.Struct, kw_only=True):
    action: str
    timestamp: datetime
    timestamp_raw: int | float
    integration: WebhookIntegration | None = None


class IntegrationConnected(_IntegrationEvent, kw_only=True):
    """``integration_connected``: the integration was created in Sendcloud."""

    action: str = "integration_connected"


class IntegrationUpdated(_IntegrationEvent, kw_only=True):
    """``integration_updated`` (the spec's ``IntegrationModified``): its settings changed."""

    action: str = "integration_updated"


class IntegrationDeleted(_IntegrationEvent, kw_only=True):
    """``integration_deleted``: the integration was removed from Sendcloud."""

    action: str = "integration_deleted"


class ParcelStatusChanged(msgspec.Struct, kw_only=True):
    """``parcel_status_changed``: a parcel of this integration moved to another status.

    ``carrier_status_change_timestamp`` is when the carrier recorded the change
    (same unit rule as ``timestamp``), ``None`` if not sent.
    """

    action: str = "parcel_status_changed"
    timestamp: datetime
    timestamp_raw: int | float
    carrier_status_change_timestamp: datetime | None = None
    carrier_status_change_timestamp_raw: int | float | None = None
    parcel: Parcel | None = None


class ReturnCreated(msgspec.Struct, kw_only=True):
    """``return_created``: a return was created (API or Return Portal) for a parcel."""

    action: str = "return_created"
    timestamp: datetime
    timestamp_raw: int | float
    data: ReturnData


class UnknownEvent(msgspec.Struct, kw_only=True):
    """An event whose ``action`` this SDK does not know; ``payload`` is the whole JSON object.

    ``timestamp`` is ``None`` when the payload has no usable numeric ``timestamp``.
    """

    action: str
    timestamp: datetime | None = None
    timestamp_raw: int | float | None = None
    payload: dict[str, Any] = msgspec.field(default_factory=dict)


WebhookEvent: TypeAlias = (
    IntegrationConnected
    | IntegrationUpdated
    | IntegrationDeleted
    | ParcelStatusChanged
    | ReturnCreated
    | UnknownEvent
)
"""Everything ``parse_event`` can return."""


# --------------------------------------------------------------------------- decoding


class _Head(msgspec.Struct):
    action: str


class _IntegrationWire(msgspec.Struct):
    timestamp: int | float
    integration: WebhookIntegration | None = None


class _ParcelWire(msgspec.Struct):
    timestamp: int | float
    carrier_status_change_timestamp: int | float | None = None
    parcel: Parcel | None = None


class _ReturnWire(msgspec.Struct):
    timestamp: int | float
    data: ReturnData


# One decoder per type, built once. strict=False accepts numeric strings for numbers.
_HEAD_DECODER: Final = msgspec.json.Decoder(_Head)
_INTEGRATION_DECODER: Final = msgspec.json.Decoder(_IntegrationWire, strict=False)
_PARCEL_DECODER: Final = msgspec.json.Decoder(_ParcelWire, strict=False)
_RETURN_DECODER: Final = msgspec.json.Decoder(_ReturnWire, strict=False)
_OBJECT_DECODER: Final = msgspec.json.Decoder(dict[str, Any])

_INTEGRATION_EVENTS: Final[
    dict[str, type[IntegrationConnected] | type[IntegrationUpdated] | type[IntegrationDeleted]]
] = {
    "integration_connected": IntegrationConnected,
    "integration_updated": IntegrationUpdated,
    "integration_deleted": IntegrationDeleted,
}

_DECODE_FAILURES: Final = (msgspec.DecodeError, UnicodeDecodeError, RecursionError)


def _from_unix(value: int | float) -> datetime:
    """An aware UTC datetime from seconds or (if ``abs(value) > 1e11``) milliseconds."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("timestamp is not a finite number")
    try:
        if abs(value) > _MS_THRESHOLD:
            return _EPOCH + timedelta(milliseconds=value)
        return _EPOCH + timedelta(seconds=value)
    except OverflowError:
        raise ValueError("timestamp is out of range") from None


def _timestamp(value: int | float, field: str) -> datetime:
    try:
        return _from_unix(value)
    except ValueError as exc:
        raise DecodeError(f"webhook {field} {exc}: {value!r}") from None


def _decode_unknown(action: str, body: bytes | bytearray | memoryview) -> UnknownEvent:
    payload = _OBJECT_DECODER.decode(body)
    raw = payload.get("timestamp")
    when: datetime | None = None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        try:
            when = _from_unix(raw)
        except ValueError:
            raw = None
    else:
        raw = None
    return UnknownEvent(action=action, timestamp=when, timestamp_raw=raw, payload=payload)


def _decode(body: bytes | bytearray | memoryview) -> WebhookEvent:
    try:
        action = _HEAD_DECODER.decode(body).action
        if action in _INTEGRATION_EVENTS:
            iw = _INTEGRATION_DECODER.decode(body)
            return _INTEGRATION_EVENTS[action](
                action=action,
                timestamp=_timestamp(iw.timestamp, "timestamp"),
                timestamp_raw=iw.timestamp,
                integration=iw.integration,
            )
        if action == "parcel_status_changed":
            pw = _PARCEL_DECODER.decode(body)
            carrier = pw.carrier_status_change_timestamp
            return ParcelStatusChanged(
                action=action,
                timestamp=_timestamp(pw.timestamp, "timestamp"),
                timestamp_raw=pw.timestamp,
                carrier_status_change_timestamp=(
                    None
                    if carrier is None
                    else _timestamp(carrier, "carrier_status_change_timestamp")
                ),
                carrier_status_change_timestamp_raw=carrier,
                parcel=pw.parcel,
            )
        if action == "return_created":
            rw = _RETURN_DECODER.decode(body)
            return ReturnCreated(
                action=action,
                timestamp=_timestamp(rw.timestamp, "timestamp"),
                timestamp_raw=rw.timestamp,
                data=rw.data,
            )
        return _decode_unknown(action, body)
    except _DECODE_FAILURES as exc:
        raise DecodeError(f"could not decode webhook event: {exc}") from exc


def _check_age(event: WebhookEvent, max_age: float, now: float) -> None:
    """``EventTooOldError`` unless ``now - max_age <= timestamp <= now + _FUTURE_SKEW``.

    Both edges are inclusive. An event without a timestamp has no age and passes.
    """
    if event.timestamp is None:
        return
    age = now - event.timestamp.timestamp()
    if age > max_age or age < -_FUTURE_SKEW:
        raise EventTooOldError(age, max_age)


def _max_age(value: object) -> float | None:
    return None if value is None else positive_seconds(value, "max_age")


def parse_event(
    body: bytes,
    *,
    signature: str | None,
    secret: str | Sequence[str],
    max_age: float | None = None,
) -> WebhookEvent:
    """Verify ``signature`` over the raw ``body``, then decode the event.

    ``secret`` is one secret or a sequence of them (rotation: any may match).
    With ``max_age`` (seconds; 43 200, i.e. 12 hours, covers Sendcloud's whole
    retry schedule) an event whose ``timestamp`` is more than ``max_age``
    seconds old, or more than 5 minutes in the future, raises
    ``EventTooOldError``; an ``UnknownEvent`` without a timestamp passes.

    Raises ``InvalidSignatureError`` if the signature is missing, malformed or
    wrong (the body is not looked at), ``sendcloud_async.DecodeError`` if a
    correctly signed body is not a decodable event, ``EventTooOldError`` as
    above, ``TypeError`` / ``ValueError`` like ``verify_signature``, and
    ``sendcloud_async.InvalidInputError`` (a ``ValueError``) for a ``max_age``
    that is not a positive number.
    """
    limit = _max_age(max_age)
    verify_signature(body, signature, secret)
    event = _decode(body)
    if limit is not None:
        _check_age(event, limit, time.time())
    return event


# --------------------------------------------------------------------------- ledger

Verdict: TypeAlias = Literal["new", "duplicate", "stale"]
"""What ``EventLedger.admit`` says about an event.

* ``"new"``: not seen before and not older than what was admitted for its object;
  it is now recorded (by ``admit``; by ``handling`` once the work succeeded).
* ``"duplicate"``: this delivery was admitted before (same action, object and
  timestamp; for an event without an object, the same content).
* ``"stale"``: older than an event already admitted for the same object.
"""

_Outcome: TypeAlias = Literal["new", "duplicate", "stale", "busy"]

_US: Final = timedelta(microseconds=1)
_CONTENT_ENCODER: Final = msgspec.json.Encoder(order="sorted")


class _EventKey(NamedTuple):
    """Where an event lives in a ledger; holds no secret (ids, actions, hashes)."""

    #: The object: ``parcel:ID``, ``integration:ID``, ``return:ID``, or ``event:SHA256``
    #: for an event without one (then only duplicates are detected).
    scope: str
    #: The delivery within the object: ``ACTION@MICROSECONDS``, or ``content``.
    fingerprint: str
    #: The event time in microseconds since the epoch (``None``: no stale check).
    at: int | None


def _object_scope(event: WebhookEvent) -> str | None:
    match event:
        case ParcelStatusChanged(parcel=Parcel(id=int() as ident)):
            return f"parcel:{ident}"
        case (
            IntegrationConnected(integration=WebhookIntegration(id=int() as ident))
            | IntegrationUpdated(integration=WebhookIntegration(id=int() as ident))
            | IntegrationDeleted(integration=WebhookIntegration(id=int() as ident))
        ):
            return f"integration:{ident}"
        case ReturnCreated(data=ReturnData(id=ident)):
            return f"return:{ident}"
    return None


def _event_key(event: WebhookEvent) -> _EventKey:
    """The one rule for what makes two deliveries the same, and which object an event is about."""
    scope = _object_scope(event)
    if scope is None or event.timestamp is None:
        digest = hashlib.sha256(_CONTENT_ENCODER.encode(event)).hexdigest()
        return _EventKey(f"event:{digest}", "content", None)
    at = (event.timestamp - _EPOCH) // _US
    return _EventKey(scope, f"{event.action}@{at}", at)


class EventLedger:
    """Remembers which webhook events were admitted, to drop duplicates and stale ones.

    ``await ledger.admit(event)`` returns a ``Verdict``: ``"new"`` (recorded
    now), ``"duplicate"`` or ``"stale"``. Parcels, integrations and returns are
    the objects, by id; an event is stale when an event with a later
    ``timestamp`` was already admitted for its object. Events without an object
    (``UnknownEvent``, a parcel event without a parcel id) are only de-duplicated,
    by content.

    ``async with ledger.handling(event) as verdict:`` is the safer form for a
    receiver: the event is recorded only when the block exits without an
    exception, so a failed attempt is processed again when Sendcloud retries.
    While a block runs for an object, another delivery for that object (the
    same event or another) raises ``EventInFlightError`` instead of running
    alongside it: answer it non-2xx and Sendcloud delivers it again later, when
    it is a duplicate (the first attempt succeeded) or new (it failed). So work
    on one parcel never overlaps, and every admitted event is newer than (or
    as new as) the ones admitted for its object before it.

    This ledger lives in the memory of one process: ``max_entries`` bounds each
    of its two tables (deliveries seen, latest time per object; the oldest entry
    is forgotten first) and each entry is forgotten ``ttl`` seconds after it was
    last admitted (default one day). Keep ``ttl`` at least the ``max_age`` given
    to ``parse_event``: an event old enough to have been forgotten is then
    refused by age. For several processes use
    ``sendcloud_async.redis.RedisEventLedger``.

    ``counts`` counts, in this process, the events admitted (``"new"``), the
    ``"duplicate"`` and ``"stale"`` ones, the deliveries refused because another
    was ``"in_flight"``, and the ``handling`` blocks that ``"failed"``.
    """

    def __init__(
        self, *, max_entries: int = _DEFAULT_MAX_ENTRIES, ttl: float = _DEFAULT_TTL
    ) -> None:
        self.max_entries = integration_id(max_entries, "max_entries")
        self.ttl = positive_seconds(ttl, "ttl")
        self.counts: Counter[str] = Counter()
        self._seen: dict[tuple[str, str], float] = {}
        self._latest: dict[str, tuple[int, float]] = {}
        self._claims: dict[str, str] = {}

    @property
    def size(self) -> int:
        """How many admitted deliveries this process remembers (expired ones until purged)."""
        return len(self._seen)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {dict(self.counts)}>"

    # -- public -----------------------------------------------------------------------

    async def admit(self, event: WebhookEvent) -> Verdict:
        """Record ``event`` if it is new; say whether it was new, a duplicate or stale.

        Raises ``EventInFlightError`` while ``handling`` runs for the same object.
        """
        key = _event_key(event)
        outcome = await self._admit(key)
        if outcome == "busy":
            self.counts["in_flight"] += 1
            raise EventInFlightError(key.scope)
        self.counts[outcome] += 1
        return outcome

    @contextlib.asynccontextmanager
    async def handling(self, event: WebhookEvent) -> AsyncIterator[Verdict]:
        """A block for the work on ``event``; the event is admitted only if the block succeeds.

        Yields the ``Verdict``; do the work only for ``"new"``. Raises
        ``EventInFlightError`` on entry while another block runs for the same object.
        """
        claim = await self._claim(event)
        if claim.verdict != "new":
            yield claim.verdict
            return
        try:
            yield claim.verdict
        except BaseException:
            await claim.release()
            raise
        await claim.commit()

    # -- the two steps the receiver uses ------------------------------------------------

    async def _claim(self, event: WebhookEvent) -> _Claim:
        key = _event_key(event)
        token = secrets.token_hex(8)
        outcome = await self._begin(key, token)
        if outcome == "busy":
            self.counts["in_flight"] += 1
            raise EventInFlightError(key.scope)
        if outcome != "new":
            self.counts[outcome] += 1
        return _Claim(self, key, token, outcome)

    # -- storage: in memory here, overridden by the Redis ledger -----------------------

    async def _admit(self, key: _EventKey) -> _Outcome:
        now = time.monotonic()
        outcome = self._check(key, now, None)
        if outcome == "new":
            self._record(key, now)
        return outcome

    async def _begin(self, key: _EventKey, token: str) -> _Outcome:
        outcome = self._check(key, time.monotonic(), token)
        if outcome == "new":
            self._claims[key.scope] = token
        return outcome

    async def _commit(self, key: _EventKey, token: str) -> None:
        if self._claims.get(key.scope) == token:
            del self._claims[key.scope]
        self._record(key, time.monotonic())

    async def _release(self, key: _EventKey, token: str) -> None:
        if self._claims.get(key.scope) == token:
            del self._claims[key.scope]

    def _check(self, key: _EventKey, now: float, token: str | None) -> _Outcome:
        self._purge(now)
        if (key.scope, key.fingerprint) in self._seen:
            return "duplicate"
        latest = self._latest.get(key.scope)
        if key.at is not None and latest is not None and latest[0] > key.at:
            return "stale"
        holder = self._claims.get(key.scope)
        if holder is not None and holder != token:
            return "busy"
        return "new"

    def _record(self, key: _EventKey, now: float) -> None:
        expires = now + self.ttl
        seen = (key.scope, key.fingerprint)
        self._seen.pop(seen, None)
        self._seen[seen] = expires
        if key.at is not None:
            previous = self._latest.pop(key.scope, None)
            at = key.at if previous is None else max(previous[0], key.at)
            self._latest[key.scope] = (at, expires)
        # Both tables are in order of expiry (a refreshed entry moves to the end).
        while len(self._seen) > self.max_entries:
            del self._seen[next(iter(self._seen))]
        while len(self._latest) > self.max_entries:
            del self._latest[next(iter(self._latest))]

    def _purge(self, now: float) -> None:
        seen = self._seen
        while seen:
            first = next(iter(seen))
            if seen[first] > now:
                break
            del seen[first]
        latest = self._latest
        while latest:
            scope = next(iter(latest))
            if latest[scope][1] > now:
                break
            del latest[scope]


class _Claim:
    """An event being worked on: ``commit`` admits it, ``release`` lets a retry have it."""

    __slots__ = ("key", "ledger", "token", "verdict")

    def __init__(self, ledger: EventLedger, key: _EventKey, token: str, verdict: Verdict) -> None:
        self.ledger = ledger
        self.key = key
        self.token = token
        self.verdict: Verdict = verdict

    async def commit(self) -> None:
        await self.ledger._commit(self.key, self.token)
        self.ledger.counts["new"] += 1

    async def release(self) -> None:
        self.ledger.counts["failed"] += 1
        try:
            await self.ledger._release(self.key, self.token)
        except StateUnavailableError as exc:
            # The claim expires by itself (the Redis ledger's lease).
            logger.warning("could not release the claim on %s: %s", self.key.scope, exc)


# --------------------------------------------------------------------------- aiohttp


def aiohttp_handler(
    secret: str | Sequence[str],
    callback: Callable[[WebhookEvent], Awaitable[object]],
    *,
    max_body_size: int = _DEFAULT_MAX_BODY,
    max_age: float | None = None,
    ledger: EventLedger | None = None,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An ``aiohttp.web`` handler that verifies, decodes and hands each event to ``callback``.

    Register it for POST on the path of your ``webhook_url``. ``secret`` is one
    secret or a sequence of them (rotation); ``max_age`` is passed to
    ``parse_event``. It answers:

    * 413 ``{"error": "payload too large"}`` if ``Content-Length`` or the body
      read exceeds ``max_body_size`` bytes (the application's own
      ``client_max_size`` also applies);
    * 401 ``{"error": "invalid signature"}`` if ``Sendcloud-Signature`` is
      missing, malformed or wrong;
    * 400 ``{"error": "invalid payload"}`` if a correctly signed body is not a
      decodable event, and 400 ``{"error": "event too old"}`` if it is outside
      ``max_age``;
    * 200 ``{"status": "ok"}`` after ``await callback(event)`` returned.

    With a ``ledger`` (an ``EventLedger`` or a ``RedisEventLedger``), each event
    goes through ``ledger.handling``: a duplicate or stale event is answered
    200 ``{"status": "duplicate"}`` / ``{"status": "stale"}`` without calling
    ``callback`` (so Sendcloud stops retrying) and counted in ``ledger.counts``;
    a new one is admitted only after ``callback`` returned. A delivery that
    arrives while another for the same object is being handled is answered 409
    ``{"error": "event in progress"}`` with ``Retry-After: 60``, and 503
    ``{"error": "ledger unavailable"}`` if the ledger cannot be reached: both
    make Sendcloud deliver it again later.

    Error bodies never say more than that; the reason is logged on the
    ``sendcloud_async.webhooks`` logger at WARNING, without the secret or the
    signature. An exception from ``callback`` is not caught: aiohttp answers
    500, the event is not admitted, and Sendcloud retries it later.
    """
    from aiohttp import web

    _keys(secret)  # fail at start-up, not on the first event
    if isinstance(max_body_size, bool) or not isinstance(max_body_size, int):
        raise TypeError("max_body_size must be an int")
    if max_body_size < 1:
        raise ValueError("max_body_size must be at least 1")
    limit = _max_age(max_age)
    if ledger is not None and not isinstance(ledger, EventLedger):
        raise TypeError(f"ledger must be an EventLedger or None, got {type(ledger).__name__}")

    def reject(status: int, error: str) -> web.Response:
        return web.json_response({"error": error}, status=status)

    async def handle_sendcloud_webhook(request: web.Request) -> web.StreamResponse:
        length = request.content_length
        if length is not None and length > max_body_size:
            logger.warning(
                "webhook from %s rejected: Content-Length %d exceeds %d bytes",
                request.remote,
                length,
                max_body_size,
            )
            return reject(413, "payload too large")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            logger.warning(
                "webhook from %s rejected: body exceeds the application's client_max_size",
                request.remote,
            )
            return reject(413, "payload too large")
        if len(body) > max_body_size:
            logger.warning(
                "webhook from %s rejected: body of %d bytes exceeds %d bytes",
                request.remote,
                len(body),
                max_body_size,
            )
            return reject(413, "payload too large")
        try:
            signature = request.headers.get(SIGNATURE_HEADER)
            event = parse_event(body, signature=signature, secret=secret, max_age=limit)
        except InvalidSignatureError as exc:
            logger.warning("webhook from %s rejected: %s", request.remote, exc)
            return reject(401, "invalid signature")
        except DecodeError as exc:
            logger.warning("webhook from %s rejected: %s", request.remote, exc)
            return reject(400, "invalid payload")
        except EventTooOldError as exc:
            logger.warning("webhook from %s rejected: %s", request.remote, exc)
            return reject(400, "event too old")
        logger.debug("webhook %s received from %s", event.action, request.remote)
        if ledger is None:
            await callback(event)
            return web.json_response({"status": "ok"})
        try:
            claim = await ledger._claim(event)
        except EventInFlightError as exc:
            logger.info("webhook %s from %s deferred: %s", event.action, request.remote, exc)
            return web.json_response(
                {"error": "event in progress"},
                status=409,
                headers={"Retry-After": _IN_FLIGHT_RETRY_AFTER},
            )
        except StateUnavailableError as exc:
            logger.warning("webhook %s from %s deferred: %s", event.action, request.remote, exc)
            return reject(503, "ledger unavailable")
        if claim.verdict != "new":
            logger.info(
                "webhook %s for %s is %s; answered 200 without calling the handler",
                event.action,
                claim.key.scope,
                claim.verdict,
            )
            return web.json_response({"status": claim.verdict})
        try:
            await callback(event)
        except BaseException:
            await claim.release()
            raise
        try:
            await claim.commit()
        except StateUnavailableError as exc:
            # The work is done: answering an error would make Sendcloud repeat it.
            logger.warning(
                "webhook %s for %s was handled but could not be recorded: %s",
                event.action,
                claim.key.scope,
                exc,
            )
        return web.json_response({"status": "ok"})

    return handle_sendcloud_webhook
