"""Pure tests for ``sendcloud_async._validate``: every check, every bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from sendcloud_async import _validate as check
from sendcloud_async._errors import InvalidInputError, SendcloudError
from sendcloud_async._models import ShopOrderStatusInput, StatusMappingEntry, StatusTranslation

FULL_MAPPING: dict[str, str | None] = {
    "READY_TO_SEND": "11",
    "IN_TRANSIT": "11",
    "DELIVERED": "12",
    "CANCEL": None,
}
CANONICAL = [
    StatusMappingEntry("READY_TO_SEND", "11"),
    StatusMappingEntry("IN_TRANSIT", "11"),
    StatusMappingEntry("DELIVERED", "12"),
    StatusMappingEntry("CANCEL", None),
]


def tr(status: str = "Sent", language: str = "en-gb") -> StatusTranslation:
    """A translation."""
    return StatusTranslation(status=status, language=language)


def status_dict(external_id: str = "1", *languages: str) -> dict[str, Any]:
    """A status as a plain dict with one translation per language."""
    langs = languages or ("en-gb",)
    return {
        "external_id": external_id,
        "translations": [{"status": f"S-{lang}", "language": lang} for lang in langs],
    }


def test_invalid_input_error_is_value_error_and_sendcloud_error() -> None:
    """Every check raises an error catchable as ValueError and as SendcloudError."""
    with pytest.raises(ValueError, match="page_size") as info:
        check.page_size(0)
    assert isinstance(info.value, SendcloudError)


# --- integration_id ------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 2, 23452345, 2**40])
def test_integration_id_ok(value: int) -> None:
    """Positive ints pass through unchanged."""
    assert check.integration_id(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "1 or more, got 0"),
        (-1, "1 or more, got -1"),
        (True, "must be an int, not bool"),
        (False, "must be an int, not bool"),
        ("1", "must be an int, not str"),
        (1.0, "must be an int, not float"),
        (None, "must be an int, not NoneType"),
    ],
)
def test_integration_id_bad(value: Any, message: str) -> None:
    """Zero, negatives, bools, strings, floats and None are rejected with a reason."""
    with pytest.raises(InvalidInputError, match=message):
        check.integration_id(value)


def test_integration_id_custom_name() -> None:
    """The argument name in the message can be chosen."""
    with pytest.raises(InvalidInputError, match=r"^other must be"):
        check.integration_id("x", "other")


# --- page_size -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1, 25, 100, None])
def test_page_size_ok(value: int | None) -> None:
    """1..100 and None are accepted as given."""
    assert check.page_size(value) == value


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (0, "between 1 and 100, got 0"),
        (101, "between 1 and 100, got 101"),
        (-5, "between 1 and 100, got -5"),
        (True, "must be an int, not bool"),
        ("5", "must be an int, not str"),
        (5.0, "must be an int, not float"),
    ],
)
def test_page_size_bad(value: Any, message: str) -> None:
    """Out of range, bool, str and float page sizes are rejected."""
    with pytest.raises(InvalidInputError, match=message):
        check.page_size(value)


# --- strings ---------------------------------------------------------------------------------


def test_non_empty_str_ok() -> None:
    """A string within the limit passes unchanged (250 characters is allowed)."""
    assert check.non_empty_str("My shop", "shop_name", max_len=250) == "My shop"
    name = "x" * 250
    assert check.non_empty_str(name, "shop_name", max_len=check.MAX_SHOP_NAME) == name


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "shop_name must not be empty"),
        ("x" * 251, "at most 250 characters, got 251"),
        (None, "must be a str, not NoneType"),
        (5, "must be a str, not int"),
        (b"shop", "must be a str, not bytes"),
    ],
)
def test_shop_name_bad(value: Any, message: str) -> None:
    """An empty, too long or non-str shop_name is rejected."""
    with pytest.raises(InvalidInputError, match=message):
        check.non_empty_str(value, "shop_name", max_len=check.MAX_SHOP_NAME)


def test_non_empty_str_without_limit() -> None:
    """Without max_len, long strings pass."""
    assert len(check.non_empty_str("y" * 5000, "shop_url")) == 5000


def test_optional_str() -> None:
    """optional_str accepts None and str, rejects other types."""
    assert check.optional_str(None, "method") is None
    assert check.optional_str("", "method") == ""
    with pytest.raises(InvalidInputError, match="method must be a str or None, not int"):
        check.optional_str(1, "method")


def test_string_list_ok() -> None:
    """A list or tuple of non-empty strings becomes a list."""
    assert check.string_list(("ups", "dhl"), "carriers") == ["ups", "dhl"]
    assert check.string_list([], "carriers") == []


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ups", "carriers must be a list of str, not str"),
        (b"ups", "carriers must be a list of str, not bytes"),
        ({"ups"}, "carriers must be a list of str, not set"),
        (None, "carriers must be a list of str, not NoneType"),
        (["ups", ""], r"carriers\[1\] must not be empty"),
        (["ups", 3], r"carriers\[1\] must be a str, not int"),
    ],
)
def test_string_list_bad(value: Any, message: str) -> None:
    """A bare string, a set, None, or a bad item is rejected naming the item."""
    with pytest.raises(InvalidInputError, match=message):
        check.string_list(value, "carriers")


# --- bool, datetime, choices ------------------------------------------------------------------


@pytest.mark.parametrize("value", [True, False])
def test_boolean_ok(value: bool) -> None:
    """Real bools pass."""
    assert check.boolean(value, "webhook_active") is value


@pytest.mark.parametrize("value", [0, 1, "true", None])
def test_boolean_bad(value: Any) -> None:
    """0/1, strings and None are not bools."""
    with pytest.raises(InvalidInputError, match="webhook_active must be a bool"):
        check.boolean(value, "webhook_active")


def test_aware_datetime() -> None:
    """Aware datetimes pass; naive ones and non-datetimes are rejected."""
    dt = datetime(2023, 3, 1, 2, 2, tzinfo=timezone(timedelta(hours=1)))
    assert check.aware_datetime(dt, "created_at") is dt
    assert check.aware_datetime(datetime(2023, 1, 1, tzinfo=UTC), "created_at").tzinfo is UTC
    with pytest.raises(InvalidInputError, match="created_at must be an aware datetime"):
        check.aware_datetime(datetime(2023, 3, 1), "created_at")
    with pytest.raises(InvalidInputError, match="created_at must be a datetime, not str"):
        check.aware_datetime("2023-03-01T00:00:00Z", "created_at")


@pytest.mark.parametrize("value", ["eager", "delayed", "none"])
def test_feedback_type_ok(value: str) -> None:
    """The spec's three feedback types pass."""
    assert check.choice(value, "feedback_type", check.FEEDBACK_TYPES) == value


@pytest.mark.parametrize("value", ["instant", "EAGER", "", None, 1])
def test_feedback_type_bad(value: Any) -> None:
    """Unknown, wrongly cased, empty or non-str feedback types are rejected, listing choices."""
    with pytest.raises(
        InvalidInputError, match="feedback_type must be one of eager, delayed, none"
    ):
        check.choice(value, "feedback_type", check.FEEDBACK_TYPES)


@pytest.mark.parametrize("value", ["en-us", "en-gb", "fr-fr", "de-de", "nl-nl", "es-es", "it-it"])
def test_language_ok(value: str) -> None:
    """Every language of the spec's enum passes."""
    assert check.choice(value, "language", check.LANGUAGES) == value


@pytest.mark.parametrize("value", ["pl-pl", "en", "EN-GB", "en_gb", ""])
def test_language_bad(value: str) -> None:
    """Languages outside the enum are rejected."""
    with pytest.raises(InvalidInputError, match="language must be one of"):
        check.choice(value, "language", check.LANGUAGES)


def test_constants_match_spec() -> None:
    """The enums and limits are exactly the spec's."""
    assert check.FEEDBACK_TYPES == ("eager", "delayed", "none")
    assert set(check.LANGUAGES) == {"en-us", "en-gb", "fr-fr", "de-de", "nl-nl", "es-es", "it-it"}
    assert check.STATUS_CATEGORIES == ("READY_TO_SEND", "IN_TRANSIT", "DELIVERED", "CANCEL")
    assert check.MAX_SHOP_NAME == 250
    assert check.MAX_TRANSLATIONS == 7


# --- status_mapping ------------------------------------------------------------------------------


def test_mapping_dict_ok() -> None:
    """A dict of all four categories becomes canonical entries."""
    assert check.status_mapping(FULL_MAPPING) == CANONICAL


def test_mapping_dict_any_order_canonicalised() -> None:
    """Key order does not matter: the result is in the spec's category order."""
    shuffled = dict(reversed(list(FULL_MAPPING.items())))
    assert check.status_mapping(shuffled) == CANONICAL


def test_mapping_list_of_entries_ok() -> None:
    """A list of StatusMappingEntry (any order) becomes canonical entries."""
    entries = list(reversed(CANONICAL))
    assert check.status_mapping(entries) == CANONICAL


def test_mapping_list_entries_drop_is_valid() -> None:
    """Entries read back from the server (with is_valid) are sent without it."""
    entries = [StatusMappingEntry(e.status_category, e.external_id, True) for e in CANONICAL]
    assert [e.is_valid for e in check.status_mapping(entries)] == [None] * 4


def test_mapping_all_none_ok() -> None:
    """Every category may be unmapped."""
    got = check.status_mapping(dict.fromkeys(check.STATUS_CATEGORIES))
    assert [e.external_id for e in got] == [None] * 4


def test_mapping_unknown_category() -> None:
    """An unknown category is rejected."""
    with pytest.raises(InvalidInputError, match="status category must be one of"):
        check.status_mapping({**FULL_MAPPING, "LOST": "1"})


def test_mapping_missing_category() -> None:
    """A mapping without all four categories is rejected, naming the missing ones."""
    partial = {k: v for k, v in FULL_MAPPING.items() if k not in ("DELIVERED", "CANCEL")}
    with pytest.raises(InvalidInputError, match="missing DELIVERED, CANCEL"):
        check.status_mapping(partial)


def test_mapping_empty() -> None:
    """An empty mapping is missing every category."""
    with pytest.raises(InvalidInputError, match="missing READY_TO_SEND, IN_TRANSIT"):
        check.status_mapping({})


def test_mapping_duplicate_category_in_list() -> None:
    """A category appearing twice in a list is rejected."""
    with pytest.raises(InvalidInputError, match="'CANCEL' appears more than once"):
        check.status_mapping([*CANONICAL, StatusMappingEntry("CANCEL", "9")])


def test_mapping_list_with_dict_item() -> None:
    """A list must hold StatusMappingEntry objects, not dicts."""
    with pytest.raises(InvalidInputError, match=r"mapping\[0\] must be a StatusMappingEntry"):
        check.status_mapping([{"status_category": "CANCEL", "external_id": None}])


@pytest.mark.parametrize("value", ["READY_TO_SEND", None, 5, b"x"])
def test_mapping_wrong_type(value: Any) -> None:
    """A str, None, int or bytes mapping is rejected."""
    with pytest.raises(InvalidInputError, match="mapping must be a dict"):
        check.status_mapping(value)


@pytest.mark.parametrize(
    ("external_id", "message"), [("", "must not be empty"), (11, "must be a str, not int")]
)
def test_mapping_bad_external_id(external_id: Any, message: str) -> None:
    """An external_id must be a non-empty str or None."""
    with pytest.raises(InvalidInputError, match=f"external_id of DELIVERED {message}"):
        check.status_mapping({**FULL_MAPPING, "DELIVERED": external_id})


def test_mapping_non_str_category() -> None:
    """A non-str category key is rejected."""
    bad: dict[Any, str | None] = {**FULL_MAPPING, 1: "x"}
    with pytest.raises(InvalidInputError, match="status category must be one of"):
        check.status_mapping(bad)


# --- shop_order_statuses ------------------------------------------------------------------------


def test_statuses_structs_ok() -> None:
    """Structs pass through as equal ShopOrderStatusInput values."""
    statuses = [
        ShopOrderStatusInput("Send-4", [tr("Sent", "en-gb"), tr("Verzonden", "nl-nl")]),
        ShopOrderStatusInput("15", [tr("Delivered", "en-gb")]),
    ]
    assert check.shop_order_statuses(statuses, allow_empty=False) == statuses


def test_statuses_dicts_ok() -> None:
    """Plain dicts are converted to ShopOrderStatusInput."""
    got = check.shop_order_statuses(
        [status_dict("a", "en-gb", "nl-nl"), status_dict("b")], allow_empty=False
    )
    assert got == [
        ShopOrderStatusInput("a", [tr("S-en-gb", "en-gb"), tr("S-nl-nl", "nl-nl")]),
        ShopOrderStatusInput("b", [tr("S-en-gb", "en-gb")]),
    ]
    assert all(isinstance(s, ShopOrderStatusInput) for s in got)


def test_statuses_mixed_and_struct_with_dict_translations() -> None:
    """A Struct whose translations are dicts, next to a plain dict, is accepted."""
    struct = ShopOrderStatusInput("a", [{"status": "Sent", "language": "en-us"}])  # type: ignore[list-item]
    got = check.shop_order_statuses([struct, status_dict("b")], allow_empty=False)
    assert got[0] == ShopOrderStatusInput("a", [tr("Sent", "en-us")])
    assert got[1].external_id == "b"


def test_statuses_seven_translations_ok() -> None:
    """Seven translations (one per language) are the maximum and pass."""
    got = check.shop_order_statuses([status_dict("a", *check.LANGUAGES)], allow_empty=False)
    assert len(got[0].translations) == 7


def test_statuses_empty_without_allow_empty() -> None:
    """An empty list would delete everything: rejected unless allow_empty=True."""
    with pytest.raises(InvalidInputError, match="allow_empty=True"):
        check.shop_order_statuses([], allow_empty=False)


def test_statuses_empty_with_allow_empty() -> None:
    """With allow_empty=True an empty list is accepted."""
    assert check.shop_order_statuses([], allow_empty=True) == []
    assert check.shop_order_statuses((), allow_empty=True) == []


def test_statuses_duplicate_external_id() -> None:
    """Two statuses with the same external_id are rejected (dicts and Structs alike)."""
    with pytest.raises(InvalidInputError, match=r"statuses\[1\]: duplicate external_id 'a'"):
        check.shop_order_statuses(
            [status_dict("a"), ShopOrderStatusInput("a", [tr()])], allow_empty=False
        )


def test_statuses_duplicate_language() -> None:
    """A language appearing twice in one status is rejected."""
    with pytest.raises(InvalidInputError, match="language 'en-gb' appears twice"):
        check.shop_order_statuses(
            [ShopOrderStatusInput("a", [tr("x", "en-gb"), tr("y", "en-gb")])], allow_empty=False
        )


def test_statuses_zero_translations() -> None:
    """A status with no translation is rejected."""
    with pytest.raises(InvalidInputError, match="1 to 7 translations, got 0"):
        check.shop_order_statuses([ShopOrderStatusInput("a", [])], allow_empty=False)


def test_statuses_eight_translations() -> None:
    """More than seven translations are rejected (even before duplicate languages)."""
    eight = [tr(f"s{i}", lang) for i, lang in enumerate([*check.LANGUAGES, "en-gb"])]
    with pytest.raises(InvalidInputError, match="1 to 7 translations, got 8"):
        check.shop_order_statuses([ShopOrderStatusInput("a", eight)], allow_empty=False)


def test_statuses_unknown_language() -> None:
    """A translation language outside the enum is rejected with its position."""
    with pytest.raises(
        InvalidInputError, match=r"statuses\[0\]\.translations\[0\]\.language must be one of"
    ):
        check.shop_order_statuses([status_dict("a", "pl-pl")], allow_empty=False)


def test_statuses_empty_status_text() -> None:
    """A translation with an empty status text is rejected."""
    with pytest.raises(InvalidInputError, match=r"translations\[0\]\.status must not be empty"):
        check.shop_order_statuses([ShopOrderStatusInput("a", [tr("", "en-gb")])], allow_empty=False)


def test_statuses_empty_external_id() -> None:
    """An empty external_id is rejected."""
    with pytest.raises(InvalidInputError, match=r"statuses\[0\]\.external_id must not be empty"):
        check.shop_order_statuses([status_dict("")], allow_empty=False)


def test_statuses_dict_missing_field() -> None:
    """A dict without translations is rejected with msgspec's reason."""
    with pytest.raises(InvalidInputError, match=r"statuses\[0\]: .*translations"):
        check.shop_order_statuses([{"external_id": "a"}], allow_empty=False)


def test_statuses_dict_wrong_types() -> None:
    """A dict with a non-str external_id is rejected."""
    with pytest.raises(InvalidInputError, match=r"statuses\[0\]: .*external_id"):
        check.shop_order_statuses(
            [{"external_id": 5, "translations": [{"status": "x", "language": "en-gb"}]}],
            allow_empty=False,
        )


@pytest.mark.parametrize("item", ["a", 5, None, ["a"]])
def test_statuses_bad_item(item: Any) -> None:
    """An item that is neither a Struct nor a dict is rejected."""
    with pytest.raises(InvalidInputError, match=r"statuses\[0\] must be a ShopOrderStatusInput"):
        check.shop_order_statuses([item], allow_empty=False)


@pytest.mark.parametrize("value", ["abc", b"abc", {"external_id": "a"}, None, 5])
def test_statuses_not_a_sequence(value: Any) -> None:
    """A str, bytes, a single dict, None or int is not a list of statuses."""
    with pytest.raises(InvalidInputError, match="statuses must be a list"):
        check.shop_order_statuses(value, allow_empty=True)


@pytest.mark.parametrize("value", [0, -1.5, float("inf"), float("nan"), True, "3", None])
def test_positive_seconds_rejects(value: object) -> None:
    """Seconds must be a finite number above 0; the message names the argument."""
    with pytest.raises(InvalidInputError, match=r"^lease must be a positive number of seconds"):
        check.positive_seconds(value, "lease")


def test_positive_seconds_accepts_ints_and_floats() -> None:
    """An int or a float above 0 comes back as a float."""
    assert check.positive_seconds(2, "window") == 2.0
    assert check.positive_seconds(0.25, "window") == 0.25


@pytest.mark.parametrize("value", [-1, True, "500", 1.5])
def test_optional_non_negative_int_rejects(value: object) -> None:
    """Only None or an int of 0 or more passes."""
    with pytest.raises(InvalidInputError, match=r"^response_code must be an int of 0 or more"):
        check.optional_non_negative_int(value, "response_code")


def test_optional_struct_converts_dicts_and_refuses_others() -> None:
    """A dict becomes the Struct, a Struct or None passes, anything else is refused by name."""
    from sendcloud_async._models import LogResponse

    assert check.optional_struct(None, LogResponse, "response") is None
    got = check.optional_struct({"body": "x"}, LogResponse, "response")
    assert got == LogResponse(body="x")
    with pytest.raises(InvalidInputError, match=r"^response must be a LogResponse"):
        check.optional_struct(5, LogResponse, "response")
    with pytest.raises(InvalidInputError, match=r"^response: Expected"):
        check.optional_struct({"headers": 5}, LogResponse, "response")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("https://u:hunter2@example.com/t", "^token_url must not contain credentials; hint$"),
        ("ftp://example.com/t", "^token_url must be an absolute http"),
        ("http://example.com/t", "^token_url must use https"),
        (b"https://example.com", "^token_url must be a str or yarl.URL"),
    ],
)
def test_http_url_rejects(value: object, message: str) -> None:
    """http_url names the argument, never echoes a password and uses the caller's hint."""
    with pytest.raises(InvalidInputError, match=message) as info:
        check.http_url(value, "token_url", credentials_hint="hint")
    assert "hunter2" not in str(info.value)
