"""Pure tests for ``sendcloud_async._models``: decoders, unions, date-times, growth."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sendcloud_async._error_response import decode_error_objects
from sendcloud_async._models import (
    INTEGRATION_DECODER,
    INTEGRATION_LIST_DECODER,
    LOG_DECODER,
    LOG_LIST_DECODER,
    LOG_STAMP_LIST_DECODER,
    SHOP_ORDER_STATUS_LIST_DECODER,
    STATUS_MAPPING_DECODER,
    ErrorObject,
    ErrorSource,
    Integration,
    IntegrationLog,
    LogPage,
    LogRequest,
    LogResponse,
    LogStamp,
    ShopOrderStatus,
    StatusMapping,
    StatusMappingEntry,
    StatusTranslation,
)

PLUS_ONE = timezone(timedelta(hours=1))


def enc(obj: Any) -> bytes:
    """JSON bytes of ``obj``."""
    return json.dumps(obj).encode()


def log(**fields: Any) -> IntegrationLog:
    """Decode one log with ``base_url`` plus ``fields`` through LOG_DECODER."""
    return LOG_DECODER.decode(enc({"data": {"base_url": "https://shop", **fields}})).data


INTEGRATION = {
    "id": 23452345,
    "shop_name": "Integration #1",
    "shop_url": "https://www.my-shop-integration.com/",
    "type": "api",
    "started_failing_at": "2023-11-10T16:16:42Z",
    "last_fetched_at": "2023-11-10T16:15:09Z",
    "created_at": "2023-11-04T14:15:22Z",
    "updated_at": "2023-11-08T12:23:56Z",
    "service_point_enabled": True,
    "service_point_carriers": ["ups", "dhl"],
    "webhook_active": True,
    "webhook_url": "https://my-shop-integration.integrator/api/webhooks/sendcloud",
    "feedback_type": "eager",
}


# --- integrations --------------------------------------------------------------------------


def test_integration_decodes_every_field() -> None:
    """Every field of an integration decodes to the right Python value."""
    got = INTEGRATION_DECODER.decode(enc({"data": INTEGRATION})).data
    assert got == Integration(
        id=23452345,
        shop_name="Integration #1",
        shop_url="https://www.my-shop-integration.com/",
        type="api",
        started_failing_at=datetime(2023, 11, 10, 16, 16, 42, tzinfo=UTC),
        last_fetched_at=datetime(2023, 11, 10, 16, 15, 9, tzinfo=UTC),
        created_at=datetime(2023, 11, 4, 14, 15, 22, tzinfo=UTC),
        updated_at=datetime(2023, 11, 8, 12, 23, 56, tzinfo=UTC),
        service_point_enabled=True,
        service_point_carriers=["ups", "dhl"],
        webhook_active=True,
        webhook_url="https://my-shop-integration.integrator/api/webhooks/sendcloud",
        feedback_type="eager",
    )


def test_integration_list_decodes() -> None:
    """The list decoder returns one Integration per item, in order."""
    got = INTEGRATION_LIST_DECODER.decode(enc({"data": [INTEGRATION, {**INTEGRATION, "id": 2}]}))
    assert [i.id for i in got.data] == [23452345, 2]
    assert all(isinstance(i, Integration) for i in got.data)


def test_integration_minimal_defaults() -> None:
    """Only id is required; the rest default sensibly."""
    got = INTEGRATION_DECODER.decode(b'{"data": {"id": 1}}').data
    assert got == Integration(id=1)
    assert got.service_point_carriers == []
    assert got.service_point_enabled is False
    assert got.webhook_url is None


def test_integration_unknown_fields_ignored() -> None:
    """Fields the server adds later are ignored, at every level."""
    doc = {"data": {**INTEGRATION, "brand_new": {"x": [1]}, "another": None}, "meta": {"n": 1}}
    assert INTEGRATION_DECODER.decode(enc(doc)).data.id == 23452345


def test_integration_null_timestamps() -> None:
    """Nullable timestamps decode to None."""
    got = INTEGRATION_DECODER.decode(
        enc({"data": {**INTEGRATION, "started_failing_at": None, "last_fetched_at": None}})
    ).data
    assert got.started_failing_at is None
    assert got.last_fetched_at is None


def test_integration_naive_datetimes_become_utc() -> None:
    """A date-time without an offset is taken as UTC."""
    doc = {
        "id": 1,
        "started_failing_at": "2023-11-10T16:16:42",
        "last_fetched_at": "2023-11-10T16:15:09.5",
        "created_at": "2023-11-04T14:15:22",
        "updated_at": "2023-11-08T12:23:56",
    }
    got = INTEGRATION_DECODER.decode(enc({"data": doc})).data
    assert got.started_failing_at == datetime(2023, 11, 10, 16, 16, 42, tzinfo=UTC)
    assert got.last_fetched_at == datetime(2023, 11, 10, 16, 15, 9, 500000, tzinfo=UTC)
    assert got.created_at == datetime(2023, 11, 4, 14, 15, 22, tzinfo=UTC)
    assert got.updated_at == datetime(2023, 11, 8, 12, 23, 56, tzinfo=UTC)
    for value in (got.started_failing_at, got.last_fetched_at, got.created_at, got.updated_at):
        assert value is not None
        assert value.utcoffset() == timedelta(0)


def test_integration_list_with_one_naive_datetime_decodes_every_item_as_integration() -> None:
    """One naive date-time on a page: the page is decoded leniently, every item stays an
    ``Integration`` (not the lenient type), offsets kept, the naive one taken as UTC."""
    doc = {"data": [INTEGRATION, {**INTEGRATION, "id": 2, "created_at": "2023-11-04T14:15:22"}]}
    got = INTEGRATION_LIST_DECODER.decode(enc(doc)).data
    assert [type(i) for i in got] == [Integration, Integration]
    assert got[1].created_at == datetime(2023, 11, 4, 14, 15, 22, tzinfo=UTC)
    assert got[0] == INTEGRATION_DECODER.decode(enc({"data": INTEGRATION})).data


def test_integration_that_is_wrong_beyond_a_naive_datetime_keeps_the_strict_error() -> None:
    """A naive date-time and a bad id: the error is the strict decoder's, about the id."""
    doc = {"data": {"id": "x", "created_at": "2023-11-04T14:15:22"}}
    with pytest.raises(msgspec.ValidationError, match=r"\$\.data\.id"):
        INTEGRATION_DECODER.decode(enc(doc))


def test_integration_offsets_preserved() -> None:
    """A date-time with an offset keeps that offset (not converted to UTC)."""
    got = INTEGRATION_DECODER.decode(
        enc({"data": {"id": 1, "created_at": "2023-03-01T02:02:00+01:00"}})
    ).data
    assert got.created_at == datetime(2023, 3, 1, 2, 2, tzinfo=PLUS_ONE)
    assert got.created_at is not None
    assert got.created_at.utcoffset() == timedelta(hours=1)
    assert got.created_at.hour == 2


def test_integration_missing_id_is_validation_error() -> None:
    """A missing required field is a msgspec.ValidationError naming it."""
    with pytest.raises(msgspec.ValidationError, match="id"):
        INTEGRATION_DECODER.decode(b'{"data": {"shop_name": "x"}}')


def test_integration_wrong_type_is_validation_error() -> None:
    """A wrongly typed field is a msgspec.ValidationError with its path."""
    with pytest.raises(msgspec.ValidationError, match=r"\$\.data\.service_point_carriers"):
        INTEGRATION_DECODER.decode(b'{"data": {"id": 1, "service_point_carriers": "ups"}}')


def test_new_feedback_type_value_decodes() -> None:
    """Enumerated response values are open strings: a new value does not break decoding."""
    got = INTEGRATION_DECODER.decode(b'{"data": {"id": 1, "feedback_type": "instant"}}').data
    assert got.feedback_type == "instant"


# --- logs ------------------------------------------------------------------------------


def test_log_minimal() -> None:
    """Only base_url is required; additional_data defaults to '' and protected to False."""
    got = log()
    assert got == IntegrationLog(base_url="https://shop")
    assert got.additional_data == ""
    assert got.protected is False
    assert got.response is None
    assert got.request is None


def test_log_missing_base_url() -> None:
    """A log without base_url fails validation."""
    with pytest.raises(msgspec.ValidationError, match="base_url"):
        LOG_DECODER.decode(b'{"data": {"id": 1}}')


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("<html></html>", "<html></html>"),
        ({"error": "nope"}, {"error": "nope"}),
        (None, None),
        ("", ""),
    ],
)
def test_log_response_body_union(body: Any, expected: Any) -> None:
    """response.body is a string, an object or null."""
    got = log(response={"headers": {"A": "b"}, "body": body})
    assert got.response == LogResponse(headers={"A": "b"}, body=expected)


def test_log_response_headers_null() -> None:
    """response.headers may be null."""
    assert log(response={"headers": None}).response == LogResponse(headers=None, body=None)


def test_log_response_null() -> None:
    """response itself may be null."""
    assert log(response=None).response is None


@pytest.mark.parametrize(
    ("headers", "payload"),
    [
        ({"Content-Type": "text/html"}, {"order_note": {"note": "Success"}}),
        ("Content-Type: text/html", "raw payload"),
        (None, None),
        ({"k": 1}, "x=1&y=2"),
        ("h", {"nested": [1, {"a": None}]}),
    ],
)
def test_log_request_unions(headers: Any, payload: Any) -> None:
    """request.headers and request.payload are each an object, a string or null."""
    got = log(request={"headers": headers, "payload": payload})
    assert got.request == LogRequest(headers=headers, payload=payload)


def test_log_request_null() -> None:
    """request itself may be null."""
    assert log(request=None).request is None


@pytest.mark.parametrize("value", [{"a": [1, 2]}, "some text", "", None])
def test_log_additional_data_union(value: Any) -> None:
    """additional_data is an object, a string or null."""
    assert log(additional_data=value).additional_data == value


@pytest.mark.parametrize("value", [5, ["x"], True])
def test_log_additional_data_wrong_type(value: Any) -> None:
    """additional_data of another JSON type is a ValidationError."""
    with pytest.raises(msgspec.ValidationError, match="additional_data"):
        log(additional_data=value)


@pytest.mark.parametrize("value", [5, ["x"]])
def test_log_response_body_wrong_type(value: Any) -> None:
    """response.body of another JSON type is a ValidationError."""
    with pytest.raises(msgspec.ValidationError, match=r"response\.body"):
        log(response={"body": value})


def test_log_full() -> None:
    """Every log field decodes; created_at keeps its +01:00 offset."""
    got = log(
        id=123,
        integration_id=7,
        full_url="https://shop/order-note.json",
        method="POST",
        response_code=495,
        created_at="2023-03-01T02:02:00+01:00",
        exception_type="requests.exceptions.SSLError",
        exception="An SSL error occurred",
        protected=True,
        nobody_knows="this field",
    )
    assert got == IntegrationLog(
        base_url="https://shop",
        id=123,
        integration_id=7,
        full_url="https://shop/order-note.json",
        method="POST",
        response_code=495,
        created_at=datetime(2023, 3, 1, 2, 2, tzinfo=PLUS_ONE),
        exception_type="requests.exceptions.SSLError",
        exception="An SSL error occurred",
        protected=True,
    )
    assert got.created_at is not None
    assert got.created_at.utcoffset() == timedelta(hours=1)


def test_log_naive_created_at_becomes_utc() -> None:
    """A naive created_at becomes UTC-aware."""
    got = log(created_at="2023-03-01T02:02:00")
    assert got.created_at == datetime(2023, 3, 1, 2, 2, tzinfo=UTC)
    assert got.created_at is not None
    assert got.created_at.tzinfo is not None


def test_log_list_decodes_several() -> None:
    """LOG_LIST_DECODER returns IntegrationLogs in order."""
    got = LOG_LIST_DECODER.decode(
        enc({"data": [{"base_url": "a", "id": 1}, {"base_url": "b", "id": 2}]})
    )
    assert [(x.base_url, x.id) for x in got.data] == [("a", 1), ("b", 2)]


def test_log_list_empty() -> None:
    """An empty page decodes to an empty list."""
    assert LOG_LIST_DECODER.decode(b'{"data": []}').data == []


def test_log_page_defaults() -> None:
    """A LogPage without next link has no cursor and no URL."""
    page = LogPage(items=[])
    assert page.next_cursor is None
    assert page.next_url is None


def test_log_request_encodes_without_unset_fields() -> None:
    """LogRequest/LogResponse omit defaults when encoded (so request bodies stay minimal)."""
    assert msgspec.json.encode(LogRequest(payload="x")) == b'{"payload":"x"}'
    assert msgspec.json.encode(LogResponse()) == b"{}"


# --- shop order statuses and mapping ----------------------------------------------------


def test_shop_order_statuses_decode() -> None:
    """Statuses decode with translations and an aware (or null) deleted_at."""
    doc = {
        "data": [
            {
                "external_id": "17-B",
                "status": "Delivered",
                "deleted_at": None,
                "translations": [{"status": "Delivered", "language": "en-gb"}],
            },
            {"external_id": "14-A", "deleted_at": "2023-11-04T14:15:22", "translations": []},
        ]
    }
    got = SHOP_ORDER_STATUS_LIST_DECODER.decode(enc(doc)).data
    assert got == [
        ShopOrderStatus(
            external_id="17-B",
            status="Delivered",
            deleted_at=None,
            translations=[StatusTranslation(status="Delivered", language="en-gb")],
        ),
        ShopOrderStatus(
            external_id="14-A",
            deleted_at=datetime(2023, 11, 4, 14, 15, 22, tzinfo=UTC),
            translations=[],
        ),
    ]


def test_shop_order_status_new_language_decodes() -> None:
    """A language outside the request enum still decodes in a response."""
    doc = {"data": [{"external_id": "1", "translations": [{"status": "x", "language": "pl-pl"}]}]}
    got = SHOP_ORDER_STATUS_LIST_DECODER.decode(enc(doc)).data
    assert got[0].translations[0].language == "pl-pl"


def test_status_mapping_decodes() -> None:
    """A mapping decodes entries with external_id str or null and is_valid."""
    doc = {
        "data": {
            "integration_id": 5,
            "mapping": [
                {"status_category": "READY_TO_SEND", "external_id": "11", "is_valid": True},
                {"status_category": "CANCEL", "external_id": None, "is_valid": False},
                {"status_category": "NEW_CATEGORY", "external_id": "3"},
            ],
        }
    }
    got = STATUS_MAPPING_DECODER.decode(enc(doc)).data
    assert got == StatusMapping(
        integration_id=5,
        mapping=[
            StatusMappingEntry("READY_TO_SEND", "11", True),
            StatusMappingEntry("CANCEL", None, False),
            StatusMappingEntry("NEW_CATEGORY", "3"),
        ],
    )
    assert got.mapping[2].is_valid is None


def test_status_mapping_entry_encodes_without_is_valid() -> None:
    """is_valid is omitted from a request body when not set; external_id None stays null."""
    assert msgspec.json.encode(StatusMappingEntry("CANCEL", None)) == (
        b'{"status_category":"CANCEL","external_id":null}'
    )


def test_status_mapping_entry_requires_external_id_key() -> None:
    """external_id must be present (it may be null)."""
    with pytest.raises(msgspec.ValidationError, match="external_id"):
        STATUS_MAPPING_DECODER.decode(
            b'{"data": {"integration_id": 1, "mapping": [{"status_category": "CANCEL"}]}}'
        )


# --- error objects ---------------------------------------------------------------------------


def test_error_objects_decode_list() -> None:
    """decode_error_objects reads a list of errors with string and int statuses."""
    body = enc(
        {
            "errors": [
                {"status": "400", "code": "invalid", "title": "Invalid", "detail": "d1"},
                {"status": 404, "code": "not_found", "detail": "d2", "source": {"pointer": "p"}},
            ]
        }
    )
    assert decode_error_objects(body) == [
        ErrorObject(status=400, code="invalid", title="Invalid", detail="d1"),
        ErrorObject(status=404, code="not_found", detail="d2", source=ErrorSource(pointer="p")),
    ]


def test_error_objects_decode_single_object() -> None:
    """decode_error_objects wraps a single error object in a list."""
    body = enc({"errors": {"status": "401", "code": "authentication_failed", "detail": "no"}})
    assert decode_error_objects(body) == [
        ErrorObject(status=401, code="authentication_failed", detail="no")
    ]


def test_error_objects_missing_status_and_unknown_code() -> None:
    """status may be absent (None) and code is an open string."""
    body = enc({"errors": [{"code": "extra_forbidden", "detail": "Extra", "whatever": 1}]})
    assert decode_error_objects(body) == [ErrorObject(code="extra_forbidden", detail="Extra")]


# --- property --------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)

_LOG_KEYS = st.sampled_from(
    [
        "base_url",
        "id",
        "integration_id",
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
        "headers",
        "body",
        "payload",
    ]
)
_DATES = st.sampled_from(
    ["2023-03-01T02:02:00+01:00", "2023-03-01T02:02:00", "2023-03-01", "not a date", ""]
)
_LOG_LIKE = st.dictionaries(
    _LOG_KEYS,
    _JSON | _DATES | st.dictionaries(_LOG_KEYS, _JSON | _DATES, max_size=3),
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(_JSON | _LOG_LIKE.map(lambda d: {"data": [d]}))
def test_log_list_decoder_only_raises_msgspec_errors(doc: Any) -> None:
    """Arbitrary JSON either decodes to logs or raises msgspec.ValidationError/DecodeError."""
    try:
        got = LOG_LIST_DECODER.decode(enc(doc))
    except (msgspec.ValidationError, msgspec.DecodeError):
        return
    for item in got.data:
        assert isinstance(item, IntegrationLog)
        assert item.created_at is None or item.created_at.tzinfo is not None


def test_naive_created_at_on_a_page_falls_back_to_utc() -> None:
    """A page with one naive created_at decodes leniently as UTC; the type stays IntegrationLog."""
    doc = {
        "data": [
            {"id": 1, "base_url": "https://a", "created_at": "2023-03-01T02:02:00+01:00"},
            {"id": 2, "base_url": "https://b", "created_at": "2023-03-01T02:02:00"},
        ]
    }
    logs = LOG_LIST_DECODER.decode(enc(doc)).data
    assert [type(log) for log in logs] == [IntegrationLog, IntegrationLog]
    assert logs[0].created_at is not None
    assert logs[0].created_at.utcoffset() == timedelta(hours=1)
    assert logs[1].created_at == datetime(2023, 3, 1, 2, 2, tzinfo=UTC)


def test_a_page_read_as_stamps_keeps_id_and_created_at_only() -> None:
    """Stamps: id and created_at as the full decoder reads them (naive as UTC, offsets
    kept); every other field skipped, even one the full decoder would refuse."""
    doc = {
        "data": [
            {"id": 1, "base_url": "https://a", "created_at": "2023-03-01T02:02:00+01:00"},
            {"id": 2, "created_at": "2023-03-01T02:02:00", "response_code": "not a number"},
            {"base_url": "https://c"},
        ]
    }
    stamps = LOG_STAMP_LIST_DECODER.decode(enc(doc)).data
    assert stamps == [
        LogStamp(id=1, created_at=datetime(2023, 3, 1, 1, 2, tzinfo=UTC)),
        LogStamp(id=2, created_at=datetime(2023, 3, 1, 2, 2, tzinfo=UTC)),
        LogStamp(),
    ]
    assert stamps[0].created_at is not None
    assert stamps[0].created_at.utcoffset() == timedelta(hours=1)
    with pytest.raises(msgspec.ValidationError):
        LOG_LIST_DECODER.decode(enc(doc))


def test_stamps_refuse_what_places_a_log_wrongly() -> None:
    """A stamp whose id or created_at does not decode is refused, naive or not."""
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int \| null`"):
        LOG_STAMP_LIST_DECODER.decode(b'{"data": [{"id": "one", "created_at": null}]}')
    with pytest.raises(msgspec.ValidationError, match="Invalid RFC3339"):
        LOG_STAMP_LIST_DECODER.decode(b'{"data": [{"id": 1, "created_at": "yesterday"}]}')
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int \| null`"):
        LOG_STAMP_LIST_DECODER.decode(
            b'{"data": [{"id": "one", "created_at": "2023-03-01T02:02:00"}]}'
        )


def test_other_validation_errors_are_not_masked_by_the_fallback() -> None:
    """A page that is wrong for another reason still raises msgspec's ValidationError."""
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int \| null`"):
        LOG_LIST_DECODER.decode(b'{"data": [{"base_url": "x", "id": "one"}]}')
    with pytest.raises(msgspec.ValidationError, match=r"Expected `int \| null`"):
        LOG_LIST_DECODER.decode(
            b'{"data": [{"base_url": "x", "id": "one", "created_at": "2023-03-01T02:02:00"}]}'
        )
