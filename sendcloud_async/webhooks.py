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

import hashlib
import hmac
import logging
import math
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import msgspec

from ._errors import DecodeError, SendcloudError

if TYPE_CHECKING:
    from aiohttp import web

__all__ = [
    "SIGNATURE_HEADER",
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


def sign(body: bytes, secret: str) -> str:
    """The ``Sendcloud-Signature`` value for ``body``: hex HMAC-SHA256 keyed with ``secret``."""
    data = _body_bytes(body)
    return hmac.new(_key(secret), data, hashlib.sha256).hexdigest()


def verify_signature(body: bytes, signature: str | None, secret: str) -> None:
    """Check that ``signature`` is the HMAC-SHA256 of the raw ``body`` under ``secret``.

    Returns ``None`` when it matches; raises ``InvalidSignatureError`` when the
    signature is missing (``None`` or blank), malformed (not 64 hex characters
    once stripped) or wrong. Hex case and surrounding whitespace are ignored.
    Raises ``TypeError`` for a non-bytes body (a ``str`` means it was decoded
    or re-serialised) and ``ValueError`` for an empty secret.
    """
    data = _body_bytes(body)
    key = _key(secret)
    if signature is None:
        raise InvalidSignatureError("missing")
    if not isinstance(signature, str):
        raise TypeError(f"signature must be a str or None, got {type(signature).__name__}")
    candidate = signature.strip().lower()
    if not candidate:
        raise InvalidSignatureError("missing")
    if _HEX_SHA256.fullmatch(candidate) is None:
        raise InvalidSignatureError("malformed")
    expected = hmac.new(key, data, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode("ascii"), candidate.encode("ascii")):
        raise InvalidSignatureError("mismatch")


# --------------------------------------------------------------------------- models


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


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
        self.failing_since = _aware(self.failing_since)
        self.last_fetch = _aware(self.last_fetch)
        self.last_updated_at = _aware(self.last_updated_at)


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


def parse_event(body: bytes, *, signature: str | None, secret: str) -> WebhookEvent:
    """Verify ``signature`` over the raw ``body``, then decode the event.

    Raises ``InvalidSignatureError`` if the signature is missing, malformed or
    wrong (the body is not looked at), ``sendcloud_async.DecodeError`` if a
    correctly signed body is not a decodable event, and ``TypeError`` /
    ``ValueError`` like ``verify_signature``.
    """
    verify_signature(body, signature, secret)
    return _decode(body)


# --------------------------------------------------------------------------- aiohttp


def aiohttp_handler(
    secret: str,
    callback: Callable[[WebhookEvent], Awaitable[object]],
    *,
    max_body_size: int = _DEFAULT_MAX_BODY,
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """An ``aiohttp.web`` handler that verifies, decodes and hands each event to ``callback``.

    Register it for POST on the path of your ``webhook_url``. It answers:

    * 413 ``{"error": "payload too large"}`` if ``Content-Length`` or the body
      read exceeds ``max_body_size`` bytes (the application's own
      ``client_max_size`` also applies);
    * 401 ``{"error": "invalid signature"}`` if ``Sendcloud-Signature`` is
      missing, malformed or wrong;
    * 400 ``{"error": "invalid payload"}`` if a correctly signed body is not a
      decodable event;
    * 200 ``{"status": "ok"}`` after ``await callback(event)`` returned.

    Error bodies never say more than that; the reason is logged on the
    ``sendcloud_async.webhooks`` logger at WARNING, without the secret or the
    signature. An exception from ``callback`` is not caught: aiohttp answers
    500 and Sendcloud retries the event later, so callbacks should be idempotent.
    """
    from aiohttp import web

    _key(secret)  # fail at start-up, not on the first event
    if isinstance(max_body_size, bool) or not isinstance(max_body_size, int):
        raise TypeError("max_body_size must be an int")
    if max_body_size < 1:
        raise ValueError("max_body_size must be at least 1")

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
            event = parse_event(body, signature=signature, secret=secret)
        except InvalidSignatureError as exc:
            logger.warning("webhook from %s rejected: %s", request.remote, exc)
            return reject(401, "invalid signature")
        except DecodeError as exc:
            logger.warning("webhook from %s rejected: %s", request.remote, exc)
            return reject(400, "invalid payload")
        logger.debug("webhook %s received from %s", event.action, request.remote)
        await callback(event)
        return web.json_response({"status": "ok"})

    return handle_sendcloud_webhook
