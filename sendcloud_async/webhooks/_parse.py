"""``parse_event``: verify, then decode the body into an event, then check its age.

The event type is chosen by ``action``; timestamps are seconds or milliseconds,
decided by magnitude (``abs(value) > 1e11`` is milliseconds); anything undecodable
after a valid signature is a ``sendcloud_async.DecodeError``. The package docstring
(``sendcloud_async.webhooks``) gives every decoding decision and the reason for it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

import msgspec

from .._errors import DecodeError, SendcloudError
from .._validate import positive_seconds
from ._events import (
    EPOCH,
    IntegrationConnected,
    IntegrationDeleted,
    IntegrationUpdated,
    Parcel,
    ParcelStatusChanged,
    ReturnCreated,
    ReturnData,
    UnknownEvent,
    WebhookEvent,
    WebhookIntegration,
)
from ._signature import signature_error

_MS_THRESHOLD: Final = 100_000_000_000  # 1e11: above it a timestamp is in milliseconds
#: How far in the future an event's timestamp may be (clock skew) under ``max_age``.
FUTURE_SKEW: Final = 300.0


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
                f"{FUTURE_SKEW:g} s allowed for clock skew"
            )
        else:
            message = f"webhook event is {age:.1f} s old, more than max_age={max_age:g} s"
        super().__init__(message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.age, self.max_age))


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
            return EPOCH + timedelta(milliseconds=value)
        return EPOCH + timedelta(seconds=value)
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


def decode_event(body: bytes | bytearray | memoryview) -> WebhookEvent:
    """The event in a (verified) body; ``DecodeError`` if it is not a decodable event."""
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


def check_age(event: WebhookEvent, max_age: float, now: float) -> None:
    """``EventTooOldError`` unless ``now - max_age <= timestamp <= now + FUTURE_SKEW``.

    Both edges are inclusive. An event without a timestamp has no age and passes.
    """
    if event.timestamp is None:
        return
    age = now - event.timestamp.timestamp()
    if age > max_age or age < -FUTURE_SKEW:
        raise EventTooOldError(age, max_age)


def max_age_limit(value: object) -> float | None:
    """``None`` (no limit) or a positive number of seconds; ``InvalidInputError`` otherwise."""
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
    above, and ``sendcloud_async.InvalidInputError`` (a ``ValueError``) for a
    bad argument: a body, signature or secret ``verify_signature`` refuses, or a
    ``max_age`` that is not a positive number.
    """
    error = signature_error(body, signature, secret)
    del secret  # no frame of what is raised holds it (error trackers record frame locals)
    limit = max_age_limit(max_age)
    if error is not None:
        raise error
    event = decode_event(body)
    if limit is not None:
        check_age(event, limit, time.time())
    return event
