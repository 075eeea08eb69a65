"""Verify and decode the webhook events Sendcloud posts to an integration's ``webhook_url``.

Sendcloud signs every request with HMAC-SHA256 of the request body, keyed with
the integration's secret, and sends the hex digest in the ``Sendcloud-Signature``
header. The security decisions, each a fix for a mistake common in other clients:

* **The raw body is hashed, never a re-serialisation.** ``json.dumps(json.loads(b))``
  does not give back ``b`` (key order, spacing, escapes, number formats), so
  hashing parsed-then-dumped JSON rejects genuine events or, worse, tempts
  people into "fixing" verification until it accepts anything. The functions
  here take ``bytes`` only; a ``str`` body raises ``sendcloud_async.InvalidInputError``
  because it means the body was already decoded by something.
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
  more than 5 minutes (``_parse.FUTURE_SKEW``) in the future. The signature covers
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
  ``EventInFlightError``). Where it keeps its entries is a ``LedgerStore``: a
  ``MemoryLedgerStore`` by default, Redis in
  ``sendcloud_async.redis.RedisEventLedger`` (the same ledger shared by several
  processes), or a store of your own. ``await ledger.size()`` counts what the
  store remembers.

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

``aiohttp_handler`` wraps all of this into an ``aiohttp.web`` handler, going
through ``ledger.handling`` like your own code would.

Every bad argument (a ``str`` body, an empty secret, a ``max_age`` that is not a
positive number, something that is not an event given to a ledger, ...) raises
``sendcloud_async.InvalidInputError``, a ``ValueError``.
"""

from __future__ import annotations

from .._public import show_public_module
from ._aiohttp import aiohttp_handler
from ._events import (
    IntegrationConnected,
    IntegrationDeleted,
    IntegrationUpdated,
    Parcel,
    ParcelAddressDivided,
    ParcelCountry,
    ParcelLabel,
    ParcelShipment,
    ParcelStatus,
    ParcelStatusChanged,
    ReturnCreated,
    ReturnData,
    ReturnItem,
    UnknownEvent,
    WebhookEvent,
    WebhookIntegration,
)
from ._ledger import EventInFlightError, EventLedger, Verdict
from ._memory import MemoryLedgerStore
from ._parse import EventTooOldError, parse_event
from ._signature import SIGNATURE_HEADER, InvalidSignatureError, sign, verify_signature
from ._store import LedgerKey, LedgerStore

__all__ = [
    "SIGNATURE_HEADER",
    "EventInFlightError",
    "EventLedger",
    "EventTooOldError",
    "IntegrationConnected",
    "IntegrationDeleted",
    "IntegrationUpdated",
    "InvalidSignatureError",
    "LedgerKey",
    "LedgerStore",
    "MemoryLedgerStore",
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

show_public_module(__name__, globals(), __all__)
