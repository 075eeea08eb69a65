"""Pure tests for ``sendcloud_async.webhooks``: signatures and event decoding."""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import pickle
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sendcloud_async as sc
import sendcloud_async._time
from sendcloud_async import webhooks
from sendcloud_async._errors import DecodeError, InvalidInputError, SendcloudError
from sendcloud_async.webhooks import _events as webhook_events
from sendcloud_async.webhooks._parse import check_age, decode_event
from tests._ledger_stores import ScriptedStore
from tests._log_secrets import everything_shown

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "webhooks"

SPEC_BODY = b'{"key": "value"}'
SPEC_SECRET = "secretkey"
SPEC_SIGNATURE = "1eed4b3d41f4653ac64fd56f1bf1cbfd349e4482cbc11dff7134bd93e5da4b0a"
SECRET = "whsec-test-0123456789"


def fixture_body(name: str) -> bytes:
    """The raw bytes of a webhook fixture file."""
    return (FIXTURES / f"{name}.json").read_bytes()


def parse(body: bytes, secret: str = SECRET) -> webhooks.WebhookEvent:
    """Sign ``body`` correctly and parse it."""
    return webhooks.parse_event(body, signature=webhooks.sign(body, secret), secret=secret)


def encode(obj: Any) -> bytes:
    """Compact JSON bytes of ``obj``."""
    return json.dumps(obj).encode()


# --------------------------------------------------------------------------- signatures


def test_sign_matches_spec_vector() -> None:
    """``sign`` reproduces the known vector from the spec."""
    assert webhooks.sign(SPEC_BODY, SPEC_SECRET) == SPEC_SIGNATURE


def test_verify_accepts_spec_vector() -> None:
    """The spec's body, secret and signature verify."""
    webhooks.verify_signature(SPEC_BODY, SPEC_SIGNATURE, SPEC_SECRET)


def test_spec_python_snippet_produces_the_same_bytes() -> None:
    """The spec's ``json.dumps`` example hashes exactly the bytes of the vector."""
    assert json.dumps({"key": "value"}).encode() == SPEC_BODY


def test_verify_accepts_uppercase_hex() -> None:
    """Hex case does not matter."""
    webhooks.verify_signature(SPEC_BODY, SPEC_SIGNATURE.upper(), SPEC_SECRET)


def test_verify_accepts_mixed_case_hex() -> None:
    """Mixed-case hex verifies too."""
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(SPEC_SIGNATURE))
    webhooks.verify_signature(SPEC_BODY, mixed, SPEC_SECRET)


@pytest.mark.parametrize("padding", [" ", "\t", "\n", "\r\n", "  \t "])
def test_verify_ignores_surrounding_whitespace(padding: str) -> None:
    """Whitespace around the signature is stripped."""
    webhooks.verify_signature(SPEC_BODY, f"{padding}{SPEC_SIGNATURE}{padding}", SPEC_SECRET)


@pytest.mark.parametrize("body_type", [bytearray, memoryview])
def test_verify_accepts_bytes_like_bodies(body_type: type[Any]) -> None:
    """bytearray and memoryview bodies are hashed like bytes."""
    webhooks.verify_signature(body_type(SPEC_BODY), SPEC_SIGNATURE, SPEC_SECRET)


def test_verify_rejects_tampered_body() -> None:
    """A changed body no longer matches."""
    with pytest.raises(webhooks.InvalidSignatureError) as info:
        webhooks.verify_signature(b'{"key": "valuf"}', SPEC_SIGNATURE, SPEC_SECRET)
    assert info.value.reason == "mismatch"


def test_verify_rejects_reserialised_json() -> None:
    """The same JSON with other spacing is a different body: re-serialising breaks it."""
    reserialised = json.dumps(json.loads(SPEC_BODY), separators=(",", ":")).encode()
    with pytest.raises(webhooks.InvalidSignatureError):
        webhooks.verify_signature(reserialised, SPEC_SIGNATURE, SPEC_SECRET)


def test_verify_rejects_wrong_secret() -> None:
    """A signature made with another secret does not match."""
    with pytest.raises(webhooks.InvalidSignatureError) as info:
        webhooks.verify_signature(SPEC_BODY, SPEC_SIGNATURE, "secretkey2")
    assert info.value.reason == "mismatch"


@pytest.mark.parametrize("signature", [None, "", "   ", "\n"])
def test_verify_rejects_missing_signature(signature: str | None) -> None:
    """No header, or a blank one, is a missing signature."""
    with pytest.raises(webhooks.InvalidSignatureError) as info:
        webhooks.verify_signature(SPEC_BODY, signature, SPEC_SECRET)
    assert info.value.reason == "missing"


@pytest.mark.parametrize(
    "signature",
    [
        SPEC_SIGNATURE[:-1],
        SPEC_SIGNATURE + "0",
        SPEC_SIGNATURE[:-1] + "g",
        "sha256=" + SPEC_SIGNATURE,
        SPEC_SIGNATURE[:32] + " " + SPEC_SIGNATURE[32:],
        SPEC_SIGNATURE + "\n" + SPEC_SIGNATURE,
        "１" * 64,  # fullwidth digits are not hex
        "not-a-signature",
        "0x" + SPEC_SIGNATURE[2:],
    ],
)
def test_verify_rejects_malformed_signature(signature: str) -> None:
    """Anything but 64 hex characters (after stripping) is malformed."""
    with pytest.raises(webhooks.InvalidSignatureError) as info:
        webhooks.verify_signature(SPEC_BODY, signature, SPEC_SECRET)
    assert info.value.reason == "malformed"
    assert "malformed" in str(info.value)


def test_verify_rejects_str_body_with_explanation() -> None:
    """A str body raises InvalidInputError that says it was decoded or re-serialised."""
    with pytest.raises(InvalidInputError, match=r"got str.*(decoded|re-serialised)"):
        webhooks.verify_signature(SPEC_BODY.decode(), SPEC_SIGNATURE, SPEC_SECRET)  # type: ignore[arg-type]


def test_verify_rejects_parsed_json_body() -> None:
    """A dict (parsed JSON) body raises InvalidInputError."""
    with pytest.raises(InvalidInputError, match="raw request bytes, got dict"):
        webhooks.verify_signature({"key": "value"}, SPEC_SIGNATURE, SPEC_SECRET)  # type: ignore[arg-type]


def test_sign_rejects_str_body() -> None:
    """``sign`` refuses str bodies like ``verify_signature``."""
    with pytest.raises(InvalidInputError, match="got str"):
        webhooks.sign(SPEC_BODY.decode(), SPEC_SECRET)  # type: ignore[arg-type]


def test_verify_rejects_non_str_signature() -> None:
    """A bytes signature is a programming error, not an invalid signature."""
    with pytest.raises(InvalidInputError, match="signature must be a str"):
        webhooks.verify_signature(SPEC_BODY, SPEC_SIGNATURE.encode(), SPEC_SECRET)  # type: ignore[arg-type]


_EMPTY_SECRET_CALLS: dict[str, Callable[[], object]] = {
    "sign": lambda: webhooks.sign(SPEC_BODY, ""),
    "verify": lambda: webhooks.verify_signature(SPEC_BODY, SPEC_SIGNATURE, ""),
    "parse": lambda: webhooks.parse_event(SPEC_BODY, signature=SPEC_SIGNATURE, secret=""),
}


@pytest.mark.parametrize("call", sorted(_EMPTY_SECRET_CALLS))
def test_empty_secret_is_invalid_input(call: str) -> None:
    """An empty secret raises InvalidInputError (a ValueError) everywhere, before any comparison."""
    with pytest.raises(InvalidInputError, match="secret must not be empty") as info:
        _EMPTY_SECRET_CALLS[call]()
    assert isinstance(info.value, ValueError)


def test_non_str_secret_is_invalid_input() -> None:
    """A bytes secret raises InvalidInputError."""
    with pytest.raises(InvalidInputError, match="secret must be a str"):
        webhooks.verify_signature(SPEC_BODY, SPEC_SIGNATURE, b"secretkey")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "zz",
        webhooks.sign(SPEC_BODY, "other-secret"),
        webhooks.sign(SPEC_BODY, "other-secret").upper(),
    ],
)
def test_error_messages_leak_nothing(signature: str | None) -> None:
    """Neither the secret, the expected digest nor the received signature is in the message."""
    with pytest.raises(webhooks.InvalidSignatureError) as info:
        webhooks.verify_signature(SPEC_BODY, signature, SPEC_SECRET)
    text = str(info.value) + repr(info.value)
    assert SPEC_SECRET not in text
    assert SPEC_SIGNATURE not in text.lower()
    if signature and len(signature) > 2:
        assert signature.lower() not in text.lower()


LOCALS_SECRET = "whsec-Locals-Secret-4e1b"
LOCALS_OTHER = "whsec-Locals-Rotated-9c2d"
LOCALS_BODY = b'{"action": "integration_updated", "timestamp": 1700000000000}'
#: What an attacker's forged request would learn from frame locals: valid signatures.
LOCALS_DIGESTS = tuple(
    hmac.new(key.encode(), LOCALS_BODY, "sha256").hexdigest()
    for key in (LOCALS_SECRET, LOCALS_OTHER)
)


async def _ignore_event(_event: object) -> None:
    return None


# Module constants, read in lambdas: no frame of the test itself holds a secret.
_RAISING_CALLS: dict[str, Callable[[], object]] = {
    "verify mismatch": lambda: webhooks.verify_signature(LOCALS_BODY, "0" * 64, LOCALS_SECRET),
    "verify rotation mismatch": lambda: webhooks.verify_signature(
        LOCALS_BODY, "0" * 64, [LOCALS_SECRET, LOCALS_OTHER]
    ),
    "verify missing": lambda: webhooks.verify_signature(LOCALS_BODY, None, LOCALS_SECRET),
    "verify malformed": lambda: webhooks.verify_signature(LOCALS_BODY, "zz", LOCALS_SECRET),
    "verify str body": lambda: webhooks.verify_signature(
        LOCALS_BODY.decode(),  # type: ignore[arg-type]
        "0" * 64,
        LOCALS_SECRET,
    ),
    "verify empty rotated secret": lambda: webhooks.verify_signature(
        LOCALS_BODY, "0" * 64, [LOCALS_SECRET, ""]
    ),
    "parse mismatch": lambda: webhooks.parse_event(
        LOCALS_BODY, signature="0" * 64, secret=LOCALS_SECRET
    ),
    "parse rotation mismatch": lambda: webhooks.parse_event(
        LOCALS_BODY, signature="1" * 64, secret=(LOCALS_OTHER, LOCALS_SECRET), max_age=60
    ),
    "parse bad max_age": lambda: webhooks.parse_event(
        LOCALS_BODY, signature="0" * 64, secret=LOCALS_SECRET, max_age=-1
    ),
    "handler empty rotated secret": lambda: webhooks.aiohttp_handler(
        [LOCALS_SECRET, ""], _ignore_event
    ),
    "handler bad callback": lambda: webhooks.aiohttp_handler(LOCALS_SECRET, "not callable"),  # type: ignore[arg-type]
    "handler bad max_age": lambda: webhooks.aiohttp_handler(
        LOCALS_SECRET, _ignore_event, max_age=0
    ),
    "sign str body": lambda: webhooks.sign(LOCALS_BODY.decode(), LOCALS_SECRET),  # type: ignore[arg-type]
}


@pytest.mark.parametrize("call", sorted(_RAISING_CALLS))
def test_no_frame_of_a_signature_error_holds_the_secret_or_the_expected_digest(call: str) -> None:
    """Anyone can post a forged webhook: no local of any frame of what is raised (error
    trackers record them) holds the secret, its key bytes or a valid signature."""
    with pytest.raises((webhooks.InvalidSignatureError, InvalidInputError)) as info:
        _RAISING_CALLS[call]()
    assert info.value.__traceback__ is not None
    shown = everything_shown(info.value)
    for secret in (LOCALS_SECRET, LOCALS_OTHER):
        assert secret not in shown
        assert repr(secret.encode())[2:-1] not in shown
    for digest in LOCALS_DIGESTS:
        assert digest not in shown.lower()


def test_invalid_signature_error_is_a_sendcloud_error_and_pickles() -> None:
    """The error fits the SDK's tree and survives pickling with its reason."""
    err = webhooks.InvalidSignatureError("mismatch")
    assert isinstance(err, SendcloudError)
    clone = pickle.loads(pickle.dumps(err))
    assert type(clone) is webhooks.InvalidSignatureError
    assert clone.reason == "mismatch"
    assert str(clone) == str(err)


@settings(max_examples=200)
@given(body=st.binary(max_size=512), secret=st.text(min_size=1, max_size=64))
def test_sign_verify_roundtrip(body: bytes, secret: str) -> None:
    """Whatever the bytes and the secret, a signature made by ``sign`` verifies."""
    webhooks.verify_signature(body, webhooks.sign(body, secret), secret)


@settings(max_examples=200)
@given(body=st.binary(min_size=1, max_size=256), data=st.data())
def test_any_flipped_bit_fails(body: bytes, data: st.DataObject) -> None:
    """Flipping any bit of the body invalidates the signature."""
    index = data.draw(st.integers(0, len(body) - 1))
    bit = data.draw(st.integers(0, 7))
    tampered = bytearray(body)
    tampered[index] ^= 1 << bit
    with pytest.raises(webhooks.InvalidSignatureError):
        webhooks.verify_signature(bytes(tampered), webhooks.sign(body, SECRET), SECRET)


# --------------------------------------------------------------------------- parse_event


def test_parse_event_verifies_before_decoding() -> None:
    """A bad signature on an undecodable body is a signature error, not a decode error."""
    with pytest.raises(webhooks.InvalidSignatureError):
        webhooks.parse_event(b"\xff not json", signature="0" * 64, secret=SECRET)


def test_parse_event_requires_a_signature() -> None:
    """A valid event without a signature is rejected."""
    with pytest.raises(webhooks.InvalidSignatureError):
        webhooks.parse_event(fixture_body("return_created"), signature=None, secret=SECRET)


def test_integration_connected_fixture() -> None:
    """``integration_connected`` decodes with every v2-style integration field."""
    event = parse(fixture_body("integration_connected"))
    assert type(event) is webhooks.IntegrationConnected
    assert event.action == "integration_connected"
    assert event.timestamp == datetime(2018, 5, 2, 14, 38, 5, 993000, tzinfo=UTC)
    assert event.timestamp_raw == 1525271885993
    integ = event.integration
    assert integ is not None
    assert integ.id == 1
    assert integ.shop_name == "API Integration"
    assert integ.shop_url == "https://www.sendcloud.com"
    assert integ.system == "api"
    assert integ.failing_since is None
    assert integ.last_fetch == datetime(2019, 2, 3, 6, 48, 7, tzinfo=UTC)
    assert integ.last_updated_at == datetime(2019, 2, 3, 6, 48, 7, tzinfo=UTC)
    assert integ.service_point_enabled is True
    assert integ.service_point_carriers == ["postnl", "dhl"]
    assert integ.webhook_active is True
    assert integ.webhook_url == "https://www.sendcloud.com/sendcloud-webhooks"


def test_integration_updated_fixture() -> None:
    """``integration_updated`` (the spec's IntegrationModified) decodes; naive times are UTC."""
    event = parse(fixture_body("integration_updated"))
    assert type(event) is webhooks.IntegrationUpdated
    assert event.action == "integration_updated"
    integ = event.integration
    assert integ is not None
    assert integ.shop_name == "API Integration (renamed)"
    assert integ.failing_since == datetime(2019, 2, 3, 6, 48, 7, tzinfo=UTC)
    assert integ.last_fetch == datetime(2019, 2, 3, 6, 48, 7, tzinfo=UTC)
    assert integ.last_updated_at == datetime(2019, 2, 4, 8, tzinfo=timezone(timedelta(hours=1)))
    assert integ.service_point_enabled is False
    assert integ.service_point_carriers == []


def test_integration_deleted_fixture() -> None:
    """``integration_deleted`` decodes with null date-times."""
    event = parse(fixture_body("integration_deleted"))
    assert type(event) is webhooks.IntegrationDeleted
    assert event.action == "integration_deleted"
    integ = event.integration
    assert integ is not None
    assert integ.id == 1
    assert integ.last_fetch is None
    assert integ.last_updated_at is None
    assert integ.webhook_active is False


def test_parcel_status_changed_fixture() -> None:
    """``parcel_status_changed`` decodes every spec field of the parcel."""
    event = parse(fixture_body("parcel_status_changed"))
    assert type(event) is webhooks.ParcelStatusChanged
    assert event.action == "parcel_status_changed"
    assert event.timestamp == datetime(2018, 5, 2, 14, 38, 5, 993000, tzinfo=UTC)
    assert event.timestamp_raw == 1525271885.993
    assert event.carrier_status_change_timestamp == datetime(2018, 5, 2, 14, 38, 0, tzinfo=UTC)
    assert event.carrier_status_change_timestamp_raw == 1525271880
    p = event.parcel
    assert p is not None
    assert p.id == 3172
    assert p.name == "Mr Bob"
    assert p.company_name == "Sendcloud"
    assert p.address == "Stadhuisplein 10"
    assert p.address_divided == webhooks.ParcelAddressDivided(
        street="Stadhuisplein", house_number="10"
    )
    assert p.city == "Eindhoven"
    assert p.postal_code == "5611 EM"
    assert p.telephone == "612345678"
    assert p.email == "contact@sendcloud.com"
    assert p.date_created == "2019-02-03T06:48:07"
    assert p.tracking_number == "3SYZXG132912330"
    assert p.weight == "2.000"
    assert p.label is not None
    assert p.label.normal_printer is not None
    assert p.label.normal_printer[0].startswith("https://panel.sendcloud.sc/api/v2/label/normal")
    assert p.label.label_printer is not None
    assert "label_printer/3172" in p.label.label_printer
    assert p.customs_declaration == {}
    assert p.status == webhooks.ParcelStatus(id=1, message="Ready to send")
    assert p.data == {}
    assert p.country == webhooks.ParcelCountry(iso_2="NL", iso_3="NLD", name="Netherlands")
    assert p.shipment == webhooks.ParcelShipment(id=8, name="PostNL Standard")
    assert p.order_number == "ORD12334"
    assert p.shipment_uuid == "87e18823-016b-479b-b9e0-c5c0c4065452"
    assert p.external_order_id == "AMZ23311"
    assert p.external_shipment_id == "AMZ231231"


def test_return_created_fixture() -> None:
    """``return_created`` decodes the return and its items."""
    event = parse(fixture_body("return_created"))
    assert type(event) is webhooks.ReturnCreated
    assert event.action == "return_created"
    assert event.timestamp == datetime(2018, 5, 2, 14, 38, 5, tzinfo=UTC)
    data = event.data
    assert data.id == 42
    assert data.brand_id == 7
    assert data.order_number == "ORD12334"
    assert data.return_reason_id == 3
    assert data.return_address_id == 11
    assert data.paid_return is False
    assert data.delivery_choice == "drop_off_point"
    assert data.refund_type == "money"
    assert data.items == [
        webhooks.ReturnItem(
            item_id="5552",
            description="T-shirt, size M",
            quantity=2,
            sku="TS-M-001",
            hs_code="610910",
            return_reason_id=3,
        )
    ]


@pytest.mark.parametrize(
    ("action", "cls"),
    [
        ("integration_connected", webhooks.IntegrationConnected),
        ("integration_updated", webhooks.IntegrationUpdated),
        ("integration_deleted", webhooks.IntegrationDeleted),
        ("parcel_status_changed", webhooks.ParcelStatusChanged),
    ],
)
def test_minimal_events_dispatch_on_action(action: str, cls: type[Any]) -> None:
    """Only action and timestamp are needed for the events whose bodies the spec leaves open."""
    event = parse(encode({"action": action, "timestamp": 1700000000}))
    assert type(event) is cls
    assert event.action == action
    assert event.timestamp == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)


def test_minimal_integration_event_has_no_integration() -> None:
    """A missing ``integration`` object is ``None``; an empty one has every field unset."""
    bare = parse(encode({"action": "integration_deleted", "timestamp": 1}))
    assert isinstance(bare, webhooks.IntegrationDeleted)
    assert bare.integration is None
    empty = parse(encode({"action": "integration_deleted", "timestamp": 1, "integration": {}}))
    assert isinstance(empty, webhooks.IntegrationDeleted)
    assert empty.integration == webhooks.WebhookIntegration()


def test_unknown_action_keeps_action_and_payload() -> None:
    """An action the spec does not list becomes UnknownEvent with the whole object."""
    payload = {"action": "shipment_exploded", "timestamp": 1525271885993, "extra": [1, {"a": None}]}
    event = parse(encode(payload))
    assert type(event) is webhooks.UnknownEvent
    assert event.action == "shipment_exploded"
    assert event.timestamp == datetime(2018, 5, 2, 14, 38, 5, 993000, tzinfo=UTC)
    assert event.timestamp_raw == 1525271885993
    assert event.payload == payload


@pytest.mark.parametrize(
    "action", ["Integration_Connected", "integration_modified", "IntegrationModified", ""]
)
def test_actions_match_exactly(action: str) -> None:
    """Spellings other than the wire's exact actions are unknown events."""
    event = parse(encode({"action": action, "timestamp": 1}))
    assert isinstance(event, webhooks.UnknownEvent)
    assert event.action == action


@pytest.mark.parametrize("timestamp", [None, "yesterday", True, [1], 1e300, "absent"])
def test_unknown_event_tolerates_unusable_timestamp(timestamp: Any) -> None:
    """An unknown event without a usable numeric timestamp still decodes, with ``None``."""
    payload: dict[str, Any] = {"action": "something_new"}
    if timestamp != "absent":
        payload["timestamp"] = timestamp
    event = parse(encode(payload))
    assert isinstance(event, webhooks.UnknownEvent)
    assert event.timestamp is None
    assert event.timestamp_raw is None
    assert event.payload == payload


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (1525271885993, datetime(2018, 5, 2, 14, 38, 5, 993000, tzinfo=UTC)),
        (1525271885993.0, datetime(2018, 5, 2, 14, 38, 5, 993000, tzinfo=UTC)),
        (1525271885.993, datetime(2018, 5, 2, 14, 38, 5, 993000, tzinfo=UTC)),
        (1525271885, datetime(2018, 5, 2, 14, 38, 5, tzinfo=UTC)),
        (0, datetime(1970, 1, 1, tzinfo=UTC)),
        (100_000_000_000, datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=1e11)),
        (100_000_000_001, datetime(1973, 3, 3, 9, 46, 40, 1000, tzinfo=UTC)),
    ],
)
def test_timestamp_unit_is_decided_by_magnitude(raw: float, expected: datetime) -> None:
    """Values above 1e11 are milliseconds, others seconds; the result is aware UTC."""
    event = parse(encode({"action": "return_created", "timestamp": raw, "data": {"id": 1}}))
    assert isinstance(event, webhooks.ReturnCreated)
    assert event.timestamp == expected
    assert event.timestamp.tzinfo is UTC
    assert event.timestamp_raw == raw


def test_seconds_and_milliseconds_of_the_same_instant_agree() -> None:
    """The same moment sent in s and in ms gives the same datetime."""
    seconds = parse(encode({"action": "parcel_status_changed", "timestamp": 1700000000.25}))
    millis = parse(encode({"action": "parcel_status_changed", "timestamp": 1700000000250}))
    assert seconds.timestamp == millis.timestamp


def test_numeric_string_timestamp_is_accepted() -> None:
    """A timestamp sent as a numeric string decodes like the number."""
    event = parse(encode({"action": "integration_connected", "timestamp": "1525271885993"}))
    assert isinstance(event, webhooks.IntegrationConnected)
    assert event.timestamp_raw == 1525271885993
    assert event.timestamp == datetime(2018, 5, 2, 14, 38, 5, 993000, tzinfo=UTC)


def test_null_carrier_timestamp_is_none() -> None:
    """``carrier_status_change_timestamp`` may be null."""
    body = encode(
        {"action": "parcel_status_changed", "timestamp": 1, "carrier_status_change_timestamp": None}
    )
    event = parse(body)
    assert isinstance(event, webhooks.ParcelStatusChanged)
    assert event.carrier_status_change_timestamp is None
    assert event.carrier_status_change_timestamp_raw is None


def test_extra_fields_are_ignored_everywhere() -> None:
    """Unknown fields at any level never break decoding."""
    body = encode(
        {
            "action": "return_created",
            "timestamp": 1,
            "new_top_level": {"x": 1},
            "data": {
                "id": 5,
                "new_field": [1, 2],
                "items": [{"quantity": 1, "colour": "red"}],
            },
        }
    )
    event = parse(body)
    assert isinstance(event, webhooks.ReturnCreated)
    assert event.data.id == 5
    assert event.data.items == [webhooks.ReturnItem(quantity=1)]


def test_parcel_fields_that_vary_are_lenient() -> None:
    """house_number as int, weight as number, ids as strings, data as list all decode."""
    body = encode(
        {
            "action": "parcel_status_changed",
            "timestamp": 1,
            "parcel": {
                "id": "3172",
                "address_divided": {"street": "Main", "house_number": 10},
                "weight": 2.5,
                "data": [],
                "label": None,
                "status": {"id": "11", "message": "Delivered"},
                "telephone": None,
            },
        }
    )
    event = parse(body)
    assert isinstance(event, webhooks.ParcelStatusChanged)
    p = event.parcel
    assert p is not None
    assert p.id == 3172
    assert p.address_divided == webhooks.ParcelAddressDivided(street="Main", house_number=10)
    assert p.weight == 2.5
    assert p.data == []
    assert p.label is None
    assert p.status == webhooks.ParcelStatus(id=11, message="Delivered")


def test_return_id_integral_float_is_an_int() -> None:
    """The spec types the return id as ``number``; 42.0 becomes 42."""
    event = parse(encode({"action": "return_created", "timestamp": 1, "data": {"id": 42.0}}))
    assert isinstance(event, webhooks.ReturnCreated)
    assert event.data.id == 42
    assert type(event.data.id) is int


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00",
        b'{"action": "\xff"}',
        b"[]",
        b'["integration_connected", 1]',
        b'"integration_connected"',
        b"null",
        b"{}",
        b'{"timestamp": 1}',
        b'{"action": 1, "timestamp": 1}',
        b'{"action": null, "timestamp": 1}',
        b'{"action": "integration_connected"}',
        b'{"action": "parcel_status_changed"}',
        b'{"action": "integration_connected", "timestamp": true}',
        b'{"action": "integration_connected", "timestamp": null}',
        b'{"action": "integration_connected", "timestamp": "yesterday"}',
        b'{"action": "integration_connected", "timestamp": "nan"}',
        b'{"action": "integration_connected", "timestamp": "inf"}',
        b'{"action": "integration_connected", "timestamp": 1e999}',
        b'{"action": "integration_connected", "timestamp": 123456789012345678901234567890}',
        b'{"action": "integration_connected", "timestamp": -1e20}',
        b'{"action": "integration_connected", "timestamp": 1, "integration": []}',
        b'{"action": "integration_connected", "timestamp": 1, "integration": {"id": "x"}}',
        b'{"action": "integration_updated", "timestamp": 1, "integration": {"last_fetch": "no"}}',
        b'{"action": "parcel_status_changed", "timestamp": 1, "parcel": {"id": [1]}}',
        b'{"action": "parcel_status_changed", "timestamp": 1, '
        b'"carrier_status_change_timestamp": "soon"}',
        b'{"action": "return_created", "timestamp": 1}',
        b'{"action": "return_created", "timestamp": 1, "data": {}}',
        b'{"action": "return_created", "timestamp": 1, "data": {"id": 1.5}}',
        b'{"action": "return_created", "timestamp": 1, "data": {"id": 1, "items": [{}]}}',
        b'{"action": "something_new", "timestamp": 1,',
        b'{"action": "x", "p": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ],
)
def test_undecodable_signed_bodies_raise_decode_error(body: bytes) -> None:
    """Every decoding failure after a valid signature is the SDK's DecodeError."""
    with pytest.raises(DecodeError) as info:
        parse(body)
    assert isinstance(info.value, SendcloudError)
    assert not isinstance(info.value, msgspec.MsgspecError)


def test_decode_error_message_does_not_contain_the_secret() -> None:
    """Decoding errors talk about the body only."""
    with pytest.raises(DecodeError) as info:
        parse(b"[]", secret="do-not-print-me")
    assert "do-not-print-me" not in str(info.value)


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)
_actions = st.sampled_from(
    [
        "integration_connected",
        "integration_updated",
        "integration_deleted",
        "parcel_status_changed",
        "return_created",
        "something_else",
    ]
)
_fields = st.sampled_from(
    ["timestamp", "integration", "parcel", "data", "carrier_status_change_timestamp"]
)


@settings(max_examples=300)
@given(body=st.binary(max_size=300))
def test_arbitrary_signed_bytes_only_raise_decode_error(body: bytes) -> None:
    """Correctly signed arbitrary bytes give an event or DecodeError, nothing else."""
    try:
        event = parse(body)
    except DecodeError:
        return
    assert isinstance(event.action, str)


@settings(max_examples=500)
@given(
    action=_actions,
    fields=st.dictionaries(_fields, _json, max_size=5),
    timestamp=st.one_of(st.integers(), st.floats(), st.text(max_size=12), st.none()),
)
def test_arbitrary_signed_event_shapes_only_raise_decode_error(
    action: str, fields: dict[str, Any], timestamp: Any
) -> None:
    """Event-shaped JSON with arbitrary field values gives an event or DecodeError."""
    obj = {**fields, "action": action, "timestamp": timestamp}
    body = json.dumps(obj).encode()  # NaN/Infinity literals included on purpose
    try:
        event = parse(body)
    except DecodeError:
        return
    assert event.action == action
    if event.timestamp is not None:
        assert event.timestamp.tzinfo is UTC


def test_public_names_are_sorted_and_exist() -> None:
    """``__all__`` is sorted (constants, classes, functions) and every name in it is defined."""

    def kind(name: str) -> tuple[int, str]:
        """The isort-style sort key ruff enforces."""
        rank = 0 if name.isupper() else 1 if name[0].isupper() else 2
        return (rank, name)

    assert webhooks.__all__ == sorted(webhooks.__all__, key=kind)
    for name in webhooks.__all__:
        assert hasattr(webhooks, name), name


def test_signature_header_name() -> None:
    """The header name is the spec's."""
    assert webhooks.SIGNATURE_HEADER == "Sendcloud-Signature"


# --------------------------------------------------------------------------- rotation

NEW_SECRET = "whsec-new-7f3a"
OLD_SECRET = "whsec-old-1b9c"
ROTATING = (NEW_SECRET, OLD_SECRET)


@pytest.mark.parametrize("signed_with", [NEW_SECRET, OLD_SECRET])
@pytest.mark.parametrize("secrets", [ROTATING, list(ROTATING), ROTATING[::-1]])
def test_rotation_accepts_either_secret(signed_with: str, secrets: Any) -> None:
    """During a rotation a body signed with the old or the new secret verifies and parses."""
    body = fixture_body("parcel_status_changed")
    signature = webhooks.sign(body, signed_with)
    webhooks.verify_signature(body, signature, secrets)
    event = webhooks.parse_event(body, signature=signature, secret=secrets)
    assert isinstance(event, webhooks.ParcelStatusChanged)


def test_rotation_rejects_a_third_secret_without_saying_which_were_tried() -> None:
    """A body signed with neither secret is a mismatch, with the single-secret message."""
    body = fixture_body("parcel_status_changed")
    signature = webhooks.sign(body, "whsec-someone-else")
    with pytest.raises(webhooks.InvalidSignatureError) as many:
        webhooks.verify_signature(body, signature, ROTATING)
    with pytest.raises(webhooks.InvalidSignatureError) as one:
        webhooks.verify_signature(body, signature, NEW_SECRET)
    assert many.value.reason == "mismatch"
    assert str(many.value) == str(one.value)
    text = str(many.value) + repr(many.value)
    for secretish in (*ROTATING, signature, webhooks.sign(body, NEW_SECRET), "2", "two"):
        assert secretish not in text


def test_rotation_with_a_bad_signature_format_is_still_malformed() -> None:
    """Rotation changes nothing about missing or malformed signatures."""
    with pytest.raises(webhooks.InvalidSignatureError) as info:
        webhooks.verify_signature(SPEC_BODY, "abc", ROTATING)
    assert info.value.reason == "malformed"
    with pytest.raises(webhooks.InvalidSignatureError) as missing:
        webhooks.parse_event(SPEC_BODY, signature=None, secret=ROTATING)
    assert missing.value.reason == "missing"


@pytest.mark.parametrize(
    ("secret", "error", "message"),
    [
        ((), InvalidInputError, "secret must not be empty: give at least one"),
        ([], InvalidInputError, "secret must not be empty: give at least one"),
        ((NEW_SECRET, ""), InvalidInputError, "secret must not be empty"),
        ((NEW_SECRET, b"old"), InvalidInputError, "secret must be a str, got bytes"),
        ({NEW_SECRET}, InvalidInputError, "secret must be a str or a sequence of str, got set"),
        ({NEW_SECRET: 1}, InvalidInputError, "secret must be a str or a sequence of str, got dict"),
        (b"secretkey", InvalidInputError, "secret must be a str or a sequence of str, got bytes"),
        (None, InvalidInputError, "secret must be a str or a sequence of str, got NoneType"),
    ],
)
def test_bad_secret_collections_are_refused(
    secret: Any, error: type[Exception], message: str
) -> None:
    """An empty rotation, an empty or non-str member, or a non-sequence raise clear errors."""
    with pytest.raises(error) as info:
        webhooks.verify_signature(SPEC_BODY, SPEC_SIGNATURE, secret)
    assert str(info.value) == message


def test_the_spec_vector_verifies_among_other_secrets() -> None:
    """The spec's vector verifies when its secret is the last of several candidates."""
    webhooks.verify_signature(SPEC_BODY, SPEC_SIGNATURE, ["a", "b", "c", SPEC_SECRET])


# --------------------------------------------------------------------------- max_age

MAX_AGE = 43_200.0


def event_at(when: float, *, ms: bool = False, parcel: int = 1) -> bytes:
    """A parcel event body with ``timestamp`` ``when`` (unix seconds; optionally sent in ms)."""
    raw: float = round(when * 1000) if ms else when
    return encode({"action": "parcel_status_changed", "timestamp": raw, "parcel": {"id": parcel}})


@pytest.mark.parametrize(
    ("age", "passes"),
    [
        (0.0, True),
        (MAX_AGE - 0.001, True),
        (MAX_AGE, True),
        (MAX_AGE + 0.001, False),
        (-300.0, True),
        (-300.001, False),
        (-86_400.0, False),
    ],
)
def test_age_check_edges_are_inclusive(age: float, passes: bool) -> None:
    """max_age and the 5-minute future skew are both inclusive edges."""
    now = 1_800_000_000.0
    event = decode_event(event_at(now - age))
    if passes:
        check_age(event, MAX_AGE, now)
        return
    with pytest.raises(webhooks.EventTooOldError) as info:
        check_age(event, MAX_AGE, now)
    assert info.value.age == pytest.approx(age, abs=1e-5)
    assert info.value.max_age == MAX_AGE


@pytest.mark.parametrize("ms", [False, True])
def test_parse_event_max_age_around_the_edge(ms: bool) -> None:
    """Two seconds inside max_age passes, two seconds outside raises, in seconds or ms."""
    now = time.time()
    inside = event_at(now - MAX_AGE + 2, ms=ms)
    event = webhooks.parse_event(
        inside, signature=webhooks.sign(inside, SECRET), secret=SECRET, max_age=MAX_AGE
    )
    assert isinstance(event, webhooks.ParcelStatusChanged)
    outside = event_at(now - MAX_AGE - 2, ms=ms)
    with pytest.raises(webhooks.EventTooOldError) as info:
        webhooks.parse_event(
            outside, signature=webhooks.sign(outside, SECRET), secret=SECRET, max_age=MAX_AGE
        )
    assert MAX_AGE + 1.99 <= info.value.age < MAX_AGE + 60
    assert str(info.value).startswith("webhook event is 4320")
    assert str(info.value).endswith("s old, more than max_age=43200 s")


def test_event_from_the_future_beyond_the_skew_is_refused() -> None:
    """One minute ahead is clock skew; ten minutes ahead raises EventTooOldError."""
    now = time.time()
    near = event_at(now + 60)
    webhooks.parse_event(near, signature=webhooks.sign(near, SECRET), secret=SECRET, max_age=60)
    far = event_at(now + 600)
    with pytest.raises(webhooks.EventTooOldError, match=r"in the future, more than the 300 s"):
        webhooks.parse_event(far, signature=webhooks.sign(far, SECRET), secret=SECRET, max_age=60)


def test_without_max_age_any_age_passes() -> None:
    """max_age=None (the default) checks no age: an event from 2018 parses."""
    body = fixture_body("integration_connected")
    assert parse(body).timestamp is not None
    webhooks.parse_event(body, signature=webhooks.sign(body, SECRET), secret=SECRET, max_age=None)


def test_unknown_event_without_timestamp_has_no_age() -> None:
    """An UnknownEvent without a timestamp passes max_age (there is nothing to check)."""
    body = b'{"action": "label_printed"}'
    event = webhooks.parse_event(
        body, signature=webhooks.sign(body, SECRET), secret=SECRET, max_age=1
    )
    assert isinstance(event, webhooks.UnknownEvent)


def test_bad_signature_wins_over_age() -> None:
    """An old event with a wrong signature is InvalidSignatureError: age is checked after."""
    body = event_at(0.0 + 1_000_000_000)
    with pytest.raises(webhooks.InvalidSignatureError):
        webhooks.parse_event(body, signature="0" * 64, secret=SECRET, max_age=10)


@pytest.mark.parametrize("max_age", [0, -1, math.nan, math.inf, True, "60"])
def test_bad_max_age_is_invalid_input(max_age: Any) -> None:
    """max_age must be a positive finite number of seconds."""
    body = fixture_body("return_created")
    with pytest.raises(InvalidInputError, match="max_age must be a positive number of seconds"):
        webhooks.parse_event(
            body, signature=webhooks.sign(body, SECRET), secret=SECRET, max_age=max_age
        )


def test_event_too_old_error_is_a_sendcloud_error_and_pickles() -> None:
    """EventTooOldError fits the SDK's tree and survives pickling with its numbers."""
    err = webhooks.EventTooOldError(50_000.25, MAX_AGE)
    assert isinstance(err, SendcloudError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.age, copy.max_age, str(copy)) == (50_000.25, MAX_AGE, str(err))
    assert str(err) == "webhook event is 50000.2 s old, more than max_age=43200 s"


# --------------------------------------------------------------------------- ledger


def parcel_event(parcel: int | None, when: float, status: int = 1) -> webhooks.WebhookEvent:
    """A decoded parcel_status_changed event."""
    body: dict[str, Any] = {"action": "parcel_status_changed", "timestamp": when}
    body["parcel"] = (
        {"status": {"id": status}} if parcel is None else {"id": parcel, "status": {"id": status}}
    )
    return decode_event(encode(body))


def integration_event(action: str, ident: int, when: float) -> webhooks.WebhookEvent:
    """A decoded integration event."""
    return decode_event(encode({"action": action, "timestamp": when, "integration": {"id": ident}}))


def return_event(ident: int, when: float) -> webhooks.WebhookEvent:
    """A decoded return_created event."""
    return decode_event(
        encode({"action": "return_created", "timestamp": when, "data": {"id": ident}})
    )


async def test_ledger_new_duplicate_stale_for_one_parcel() -> None:
    """A parcel's events: new, the same again is a duplicate, an older one is stale."""
    ledger = webhooks.EventLedger()
    assert await ledger.admit(parcel_event(7, 1000)) == "new"
    assert await ledger.admit(parcel_event(7, 1000)) == "duplicate"
    assert await ledger.admit(parcel_event(7, 1001)) == "new"
    assert await ledger.admit(parcel_event(7, 999)) == "stale"
    assert await ledger.admit(parcel_event(7, 1000)) == "duplicate"
    assert await ledger.admit(parcel_event(8, 999)) == "new"
    assert ledger.counts == {"new": 3, "duplicate": 2, "stale": 1}
    assert await ledger.size() == 3


async def test_same_action_object_and_time_is_a_duplicate_whatever_else_differs() -> None:
    """Same action, parcel and timestamp with another status is still a duplicate."""
    ledger = webhooks.EventLedger()
    assert await ledger.admit(parcel_event(7, 1000, status=1)) == "new"
    assert await ledger.admit(parcel_event(7, 1000, status=11)) == "duplicate"


async def test_the_same_instant_in_seconds_or_ms_is_a_duplicate() -> None:
    """1700000000.5 s and 1700000000500 ms are the same timestamp."""
    ledger = webhooks.EventLedger()
    assert await ledger.admit(parcel_event(7, 1_700_000_000.5)) == "new"
    assert await ledger.admit(parcel_event(7, 1_700_000_000_500)) == "duplicate"


async def test_integration_events_share_their_integration_as_object() -> None:
    """connected, updated and deleted of one integration are ordered together, by id."""
    ledger = webhooks.EventLedger()
    assert await ledger.admit(integration_event("integration_connected", 3, 100)) == "new"
    assert await ledger.admit(integration_event("integration_deleted", 3, 300)) == "new"
    assert await ledger.admit(integration_event("integration_updated", 3, 200)) == "stale"
    assert await ledger.admit(integration_event("integration_updated", 4, 200)) == "new"
    # the same instant with another action is not older: new
    assert await ledger.admit(integration_event("integration_updated", 3, 300)) == "new"


async def test_returns_are_objects_of_their_own() -> None:
    """A return is ordered by its id, separately from a parcel with the same number."""
    ledger = webhooks.EventLedger()
    assert await ledger.admit(parcel_event(42, 500)) == "new"
    assert await ledger.admit(return_event(42, 100)) == "new"
    assert await ledger.admit(return_event(42, 100)) == "duplicate"
    assert await ledger.admit(return_event(42, 50)) == "stale"


async def test_events_without_an_object_are_only_deduplicated_by_content() -> None:
    """Unknown events and id-less parcels: the same content is a duplicate, nothing is stale."""
    ledger = webhooks.EventLedger()
    unknown = decode_event(b'{"action": "label_printed", "timestamp": 200, "label": 1}')
    older = decode_event(b'{"action": "label_printed", "timestamp": 100, "label": 1}')
    same_keys_reordered = decode_event(b'{"label": 1, "timestamp": 200, "action": "label_printed"}')
    assert await ledger.admit(unknown) == "new"
    assert await ledger.admit(same_keys_reordered) == "duplicate"
    assert await ledger.admit(older) == "new"
    assert await ledger.admit(parcel_event(None, 100)) == "new"
    assert await ledger.admit(parcel_event(None, 100)) == "duplicate"
    assert await ledger.admit(parcel_event(None, 50)) == "new"


async def test_ledger_forgets_after_ttl() -> None:
    """An entry is forgotten ttl seconds after it was admitted."""
    ledger = webhooks.EventLedger(ttl=0.05)
    assert await ledger.admit(parcel_event(7, 1000)) == "new"
    assert await ledger.admit(parcel_event(7, 999)) == "stale"
    await asyncio.sleep(0.08)
    assert await ledger.admit(parcel_event(7, 999)) == "new"
    assert await ledger.size() == 1


async def test_ledger_is_bounded_by_max_entries_oldest_first() -> None:
    """With max_entries=2 the first parcel is forgotten when a third arrives."""
    ledger = webhooks.EventLedger(max_entries=2)
    for parcel in (1, 2, 3):
        assert await ledger.admit(parcel_event(parcel, 1000)) == "new"
    assert await ledger.size() == 2
    assert await ledger.admit(parcel_event(1, 500)) == "new"  # forgotten: no longer stale
    assert await ledger.admit(parcel_event(3, 500)) == "stale"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_entries": 0}, "max_entries must be 1 or more, got 0"),
        ({"max_entries": 1.5}, "max_entries must be an int, not float"),
        ({"ttl": 0}, "ttl must be a positive number of seconds, got 0"),
        ({"ttl": math.inf}, "ttl must be a positive number of seconds, got inf"),
    ],
)
def test_ledger_options_are_checked(options: dict[str, Any], message: str) -> None:
    """Bad ledger options raise InvalidInputError naming the option."""
    with pytest.raises(InvalidInputError) as info:
        webhooks.EventLedger(**options)
    assert str(info.value) == message


async def test_handling_admits_only_after_the_block_succeeded() -> None:
    """A failing block admits nothing (the retry is new); a succeeding one admits the event."""
    ledger = webhooks.EventLedger()
    event = parcel_event(7, 1000)

    async def failing() -> None:
        """A block whose work fails."""
        async with ledger.handling(event) as verdict:
            assert verdict == "new"
            raise RuntimeError("database is down")

    with pytest.raises(RuntimeError, match="database is down"):
        await failing()
    async with ledger.handling(event) as verdict:
        assert verdict == "new"
    async with ledger.handling(event) as verdict:
        assert verdict == "duplicate"
    async with ledger.handling(parcel_event(7, 10)) as verdict:
        assert verdict == "stale"
    assert ledger.counts == {"new": 1, "failed": 1, "duplicate": 1, "stale": 1}


async def test_a_second_delivery_for_an_object_in_flight_is_refused() -> None:
    """While one delivery for parcel 7 is handled, the same or another one for it is in flight."""
    ledger = webhooks.EventLedger()
    async with ledger.handling(parcel_event(7, 1000)) as verdict:
        assert verdict == "new"
        with pytest.raises(webhooks.EventInFlightError) as same:
            async with ledger.handling(parcel_event(7, 1000)):
                pytest.fail("entered a block for an object in flight")
        with pytest.raises(webhooks.EventInFlightError):
            await ledger.admit(parcel_event(7, 2000))
        assert await ledger.admit(parcel_event(8, 1000)) == "new"
    assert same.value.scope == "parcel:7"
    assert str(same.value) == "another delivery for parcel:7 is being handled right now"
    assert await ledger.admit(parcel_event(7, 1000)) == "duplicate"
    assert await ledger.admit(parcel_event(7, 2000)) == "new"
    assert ledger.counts["in_flight"] == 2


async def test_a_cancelled_block_admits_nothing() -> None:
    """A handler cancelled mid-way releases the object: the retry is new."""
    ledger = webhooks.EventLedger()
    started = asyncio.Event()

    async def work() -> None:
        """Hold the block open until cancelled."""
        async with ledger.handling(parcel_event(7, 1000)):
            started.set()
            await asyncio.sleep(10)

    task = asyncio.create_task(work())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await ledger.admit(parcel_event(7, 1000)) == "new"


def test_in_flight_error_is_a_sendcloud_error_and_pickles() -> None:
    """EventInFlightError fits the SDK's tree and survives pickling."""
    err = webhooks.EventInFlightError("parcel:7")
    assert isinstance(err, SendcloudError)
    assert pickle.loads(pickle.dumps(err)).scope == "parcel:7"


@settings(max_examples=50)
@given(
    seed=st.integers(0, 2**32 - 1),
    parcels=st.integers(1, 6),
    per_parcel=st.integers(1, 8),
    duplicates=st.floats(0, 1),
)
def test_shuffled_duplicated_stream_admits_an_increasing_run_ending_at_the_newest(
    seed: int, parcels: int, per_parcel: int, duplicates: float
) -> None:
    """Any order, any repeats: a parcel's admitted events only get newer, up to the newest."""
    rng = random.Random(seed)
    events = [(p, 1000 + n) for p in range(parcels) for n in range(per_parcel)]
    stream = events + rng.sample(events, round(len(events) * duplicates))
    rng.shuffle(stream)
    ledger = webhooks.EventLedger()
    admitted: dict[int, list[int]] = {}

    async def run() -> None:
        """Admit the stream in order."""
        for parcel, when in stream:
            if await ledger.admit(parcel_event(parcel, when)) == "new":
                admitted.setdefault(parcel, []).append(when)

    asyncio.run(run())
    for parcel in range(parcels):
        run_ = admitted[parcel]
        assert run_ == sorted(set(run_))
        assert run_[-1] == 1000 + per_parcel - 1
    assert ledger.counts["new"] == sum(len(v) for v in admitted.values())
    assert sum(ledger.counts.values()) == len(stream)


def test_rotation_compares_every_candidate_even_after_a_match(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A match on the first secret still compares the others: timing does not say which."""
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        """Count, then compare for real."""
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    webhooks.verify_signature(SPEC_BODY, SPEC_SIGNATURE, [SPEC_SECRET, "b", "c"])
    assert len(calls) == 3


def test_naive_integration_date_times_use_the_one_utc_rule() -> None:
    """Webhook models read naive date-times through _time.as_utc; no copy of the rule is left."""
    body = encode(
        {
            "action": "integration_updated",
            "timestamp": 1,
            "integration": {"id": 1, "failing_since": "2019-02-03T06:48:07"},
        }
    )
    event = parse(body)
    assert isinstance(event, webhooks.IntegrationUpdated)
    assert event.integration is not None
    assert event.integration.failing_since == datetime(2019, 2, 3, 6, 48, 7, tzinfo=UTC)
    assert not hasattr(webhook_events, "_aware")
    assert vars(webhook_events)["as_utc"] is sendcloud_async._time.as_utc


# --------------------------------------------------------------------------- stores


async def test_a_store_of_your_own_gets_every_step_and_the_same_verdicts() -> None:
    """EventLedger(store) runs admit, claim, commit and size through a user's store."""
    store = ScriptedStore()
    assert isinstance(store, webhooks.LedgerStore)
    ledger = webhooks.EventLedger(store)
    assert await ledger.admit(parcel_event(7, 1000)) == "new"
    async with ledger.handling(parcel_event(7, 2000)) as verdict:
        assert verdict == "new"
    assert await ledger.admit(parcel_event(7, 1500)) == "stale"
    assert await ledger.size() == 2
    assert store.calls == ["admit", "claim", "commit", "admit", "size"]
    assert ledger.counts == {"new": 2, "stale": 1}
    assert repr(ledger).startswith("<EventLedger store=<")


def test_the_default_store_is_in_memory_and_implements_the_protocol() -> None:
    """EventLedger() keeps its entries in a MemoryLedgerStore with the options given."""
    ledger = webhooks.EventLedger(max_entries=5, ttl=60)
    store = ledger.store
    assert isinstance(store, webhooks.MemoryLedgerStore)
    assert isinstance(store, webhooks.LedgerStore)
    assert (store.max_entries, store.ttl) == (5, 60.0)
    assert repr(store) == "<MemoryLedgerStore max_entries=5 ttl=60>"


async def test_size_leaves_out_what_was_forgotten() -> None:
    """size() counts only the deliveries still remembered, without another admit first."""
    ledger = webhooks.EventLedger(ttl=0.05)
    assert await ledger.admit(parcel_event(7, 1000)) == "new"
    assert await ledger.admit(parcel_event(8, 1000)) == "new"
    assert await ledger.size() == 2
    await asyncio.sleep(0.08)
    assert await ledger.size() == 0


async def test_a_store_answer_that_is_not_a_verdict_is_an_error() -> None:
    """A store that answers something else is a broken store: RuntimeError, nothing counted."""
    ledger = webhooks.EventLedger(ScriptedStore(answer="maybe"))
    with pytest.raises(RuntimeError, match="the ledger's store answered 'maybe', not a verdict"):
        await ledger.admit(parcel_event(7, 1000))
    assert ledger.counts == {}


async def test_handling_when_the_store_cannot_claim_raises_and_runs_nothing() -> None:
    """StateUnavailableError on entry: nothing ran, nothing is counted, the retry is new."""
    store = ScriptedStore(failing=frozenset({"claim"}))
    ledger = webhooks.EventLedger(store)
    ran: list[str] = []

    async def handle() -> None:
        """Work that must not run."""
        async with ledger.handling(parcel_event(7, 1000)):
            ran.append("work")

    with pytest.raises(sc.StateUnavailableError, match=r"the store is down \(claim\)"):
        await handle()
    assert (ran, ledger.counts) == ([], {})
    store.failing = frozenset()
    assert await ledger.admit(parcel_event(7, 1000)) == "new"


async def test_handling_when_the_store_cannot_commit_logs_and_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The work succeeded: a commit that fails is a WARNING, not an error (no repeated work)."""
    ledger = webhooks.EventLedger(ScriptedStore(failing=frozenset({"commit"})))
    caplog.set_level(logging.WARNING, logger="sendcloud_async.webhooks")
    async with ledger.handling(parcel_event(7, 1000)) as verdict:
        assert verdict == "new"
    assert ledger.counts == {"new": 1}
    [record] = [r for r in caplog.records if r.name == "sendcloud_async.webhooks"]
    assert record.levelno == logging.WARNING
    assert record.getMessage() == (
        "webhook parcel_status_changed for parcel:7 was handled but could not be recorded: "
        "the store is down (commit)"
    )


async def test_handling_when_the_store_cannot_release_keeps_the_works_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failed block whose release fails raises the block's error and logs the release."""
    ledger = webhooks.EventLedger(ScriptedStore(failing=frozenset({"release"})))
    caplog.set_level(logging.WARNING, logger="sendcloud_async.webhooks")

    async def fail() -> None:
        """Work that fails."""
        async with ledger.handling(parcel_event(7, 1000)):
            raise RuntimeError("database is down")

    with pytest.raises(RuntimeError, match="database is down"):
        await fail()
    assert ledger.counts == {"failed": 1}
    messages = [r.getMessage() for r in caplog.records if r.name == "sendcloud_async.webhooks"]
    assert messages == ["could not release the claim on parcel:7: the store is down (release)"]


class NotAStore:
    """Has some of a store's steps, not all."""

    async def admit(self, key: webhooks.LedgerKey) -> str:
        """Only this one."""
        return "new"


async def _admit_a_dict() -> object:
    """Give a ledger parsed JSON instead of an event."""
    return await webhooks.EventLedger().admit({"action": "x"})  # type: ignore[arg-type]


async def _handle_a_str() -> object:
    """Give handling() an action name instead of an event."""
    async with webhooks.EventLedger().handling("parcel_status_changed"):  # type: ignore[arg-type]
        return None


_BAD_LEDGER_CALLS: dict[str, tuple[Callable[[], object], str]] = {
    "store without every step": (
        lambda: webhooks.EventLedger(NotAStore()),  # type: ignore[arg-type]
        "store must be a LedgerStore (admit, claim, commit, release and size), got NotAStore",
    ),
    "store and ttl": (
        lambda: webhooks.EventLedger(webhooks.MemoryLedgerStore(), ttl=5),
        "max_entries and ttl configure the in-memory store: with a store of your own, "
        "configure it instead",
    ),
    "store and max_entries": (
        lambda: webhooks.EventLedger(webhooks.MemoryLedgerStore(), max_entries=5),
        "max_entries and ttl configure the in-memory store: with a store of your own, "
        "configure it instead",
    ),
    "memory store ttl": (
        lambda: webhooks.MemoryLedgerStore(ttl=-1),
        "ttl must be a positive number of seconds, got -1",
    ),
    "admit a dict": (
        lambda: asyncio.run(_admit_a_dict()),
        "event must be a webhook event from parse_event, got dict",
    ),
    "handling a str": (
        lambda: asyncio.run(_handle_a_str()),
        "event must be a webhook event from parse_event, got str",
    ),
    "sign a bytearray secret": (
        lambda: webhooks.sign(SPEC_BODY, bytearray(b"k")),  # type: ignore[arg-type]
        "secret must be a str, got bytearray",
    ),
    "parse a str body": (
        lambda: webhooks.parse_event("{}", signature=None, secret="s"),  # type: ignore[arg-type]
        "body must be the raw request bytes, got str",
    ),
    "parse a bytes signature": (
        lambda: webhooks.parse_event(SPEC_BODY, signature=b"ab", secret="s"),  # type: ignore[arg-type]
        "signature must be a str or None, got bytes",
    ),
}


@pytest.mark.parametrize("case", sorted(_BAD_LEDGER_CALLS))
def test_every_bad_argument_is_invalid_input(case: str) -> None:
    """Each bad argument raises InvalidInputError (a ValueError, not a TypeError) saying why."""
    call, message = _BAD_LEDGER_CALLS[case]
    with pytest.raises(InvalidInputError) as info:
        call()
    assert str(info.value).startswith(message)
    assert isinstance(info.value, ValueError)
    assert not isinstance(info.value, TypeError)


def test_public_classes_name_the_public_module() -> None:
    """Reprs, tracebacks and pickles say sendcloud_async.webhooks.Name, not a private module."""
    classes = [v for n in webhooks.__all__ if isinstance(v := getattr(webhooks, n), type)]
    assert len(classes) > 20
    assert {cls.__module__ for cls in classes} == {"sendcloud_async.webhooks"}
    err = pickle.loads(pickle.dumps(webhooks.EventInFlightError("parcel:7")))
    assert type(err) is webhooks.EventInFlightError
