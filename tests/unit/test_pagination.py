"""Pure tests for ``sendcloud_async._pagination``: Link headers, next-page URLs, cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from sendcloud_async._errors import InvalidInputError, SendcloudError
from sendcloud_async._pagination import (
    PaginationError,
    cursor_in,
    cursor_to_str,
    encode_query_value,
    find_next_link,
    follow_link,
    parse_link_header,
)

ORIGIN = ("https", "panel.sendcloud.sc", 443)
RESPONSE_URL = URL("https://panel.sendcloud.sc/api/v3/integrations/logs?cursor=abc&page_size=25")


def follow(target: str, response_url: URL = RESPONSE_URL) -> tuple[URL, str | None]:
    """``follow_link`` against the production origin, and the cursor it carries."""
    url = follow_link(target, response_url=response_url, origin=ORIGIN)
    return url, cursor_in(url)


def follow_on(
    target: str, *, response_url: URL, origin: tuple[str, str | None, int | None]
) -> tuple[URL, str | None]:
    """``follow_link`` for any origin, and the cursor the URL carries."""
    url = follow_link(target, response_url=response_url, origin=origin)
    return url, cursor_in(url)


def encode_cursor(cursor: Any) -> str:
    """A cursor as it goes on the wire."""
    return encode_query_value(cursor_to_str(cursor))


# --- parse_link_header -------------------------------------------------------------------


def test_parse_single_link() -> None:
    """A single link with a quoted rel parses to its target and params."""
    assert parse_link_header(['<https://h/p?cursor=1>; rel="next"']) == [
        ("https://h/p?cursor=1", {"rel": "next"})
    ]


def test_parse_several_links_in_one_header() -> None:
    """Comma-separated link-values in one header are all returned, in order."""
    value = '<https://h/a>; rel="prev", <https://h/b>; rel="next", <https://h/c>; rel="last"'
    assert parse_link_header([value]) == [
        ("https://h/a", {"rel": "prev"}),
        ("https://h/b", {"rel": "next"}),
        ("https://h/c", {"rel": "last"}),
    ]


def test_parse_several_headers() -> None:
    """Links from several Link header values are concatenated."""
    assert parse_link_header(['<https://h/a>; rel="prev"', "<https://h/b>; rel=next"]) == [
        ("https://h/a", {"rel": "prev"}),
        ("https://h/b", {"rel": "next"}),
    ]


def test_parse_unquoted_rel() -> None:
    """A bare token rel value is accepted."""
    assert parse_link_header(["<https://h/b>; rel=next"]) == [("https://h/b", {"rel": "next"})]


def test_parse_param_names_lowercased_values_kept() -> None:
    """Parameter names are case-insensitive (lower-cased); values keep their case."""
    assert parse_link_header(["<https://h/b>; REL=NEXT; Title=Hello"]) == [
        ("https://h/b", {"rel": "NEXT", "title": "Hello"})
    ]


def test_parse_quoted_string_with_escapes_commas_and_semicolons() -> None:
    """Quoted strings may hold escaped quotes, commas and semicolons without splitting."""
    value = r'<https://h/a>; title="say \"hi\", then; go"; rel="next", <https://h/z>; rel=last'
    assert parse_link_header([value]) == [
        ("https://h/a", {"title": 'say "hi", then; go', "rel": "next"}),
        ("https://h/z", {"rel": "last"}),
    ]


def test_parse_params_in_any_order() -> None:
    """rel need not be the first parameter."""
    value = '<https://h/b>; type="application/json"; title=x; rel="next"'
    assert parse_link_header([value]) == [
        ("https://h/b", {"type": "application/json", "title": "x", "rel": "next"})
    ]


def test_parse_first_occurrence_of_param_wins() -> None:
    """RFC 8288: a repeated parameter keeps its first value."""
    assert parse_link_header(['<https://h/b>; rel="prev"; rel="next"']) == [
        ("https://h/b", {"rel": "prev"})
    ]


def test_parse_extra_whitespace() -> None:
    """Whitespace around separators, targets and '=' is ignored."""
    value = '   <  https://h/b  >  ;   rel  =  "next"  ,   <https://h/c>\t;\trel=last  '
    assert parse_link_header([value]) == [
        ("https://h/b", {"rel": "next"}),
        ("https://h/c", {"rel": "last"}),
    ]


def test_parse_commas_inside_angle_brackets() -> None:
    """A comma inside <...> belongs to the URL and does not split links."""
    value = '<https://h/p?cursor=a,b&x=1,2>; rel="next", <https://h/last>; rel="last"'
    assert parse_link_header([value]) == [
        ("https://h/p?cursor=a,b&x=1,2", {"rel": "next"}),
        ("https://h/last", {"rel": "last"}),
    ]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([""], []),
        (["garbage"], []),
        (["<"], []),
        ([";;;,,,"], []),
        (["<https://h/a"], []),
        (["<a>; rel"], [("a", {"rel": ""})]),
        (['<a>; rel="unterminated'], [("a", {"rel": "unterminated"})]),
        (["junk, <b>;rel=next"], [("b", {"rel": "next"})]),
        (["<c> junk ; rel=next, <d>; rel=next"], [("c", {}), ("d", {"rel": "next"})]),
        (["<e>; =x; rel=next"], [("e", {"rel": "next"})]),
    ],
)
def test_parse_garbage_is_skipped(values: list[str], expected: list[Any]) -> None:
    """Malformed parts are skipped; well-formed links around them still parse."""
    assert parse_link_header(values) == expected


def test_parse_empty_iterable() -> None:
    """No header values, no links."""
    assert parse_link_header([]) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(), max_size=4))
def test_parse_link_header_never_raises(values: list[str]) -> None:
    """Arbitrary text never makes the parser raise; it returns (str, dict) pairs."""
    links = parse_link_header(values)
    assert isinstance(links, list)
    for target, params in links:
        assert isinstance(target, str)
        assert all(k == k.lower() for k in params)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet='<>;,="\\ \trelnxt:/hps', max_size=60), max_size=3))
def test_parse_link_header_never_raises_on_link_like_text(values: list[str]) -> None:
    """Text built from Link syntax characters never makes the parser raise."""
    assert isinstance(parse_link_header(values), list)
    find_next_link(values)


# --- find_next_link ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        '<https://h/n>; rel="next"',
        "<https://h/n>; rel=next",
        "<https://h/n>; REL=NEXT",
        '<https://h/n>; Rel="Next"',
        '<https://h/n>; rel="next last"',
        '<https://h/n>; rel="last  next"',
        '<https://h/n>; title="rel=prev"; rel="next"',
        '<https://h/p>; rel="prev", <https://h/n>; rel="next"',
    ],
)
def test_find_next_link_variants(value: str) -> None:
    """rel=next is found quoted, bare, multi-valued, in any case and any position."""
    assert find_next_link([value]) == "https://h/n"


def test_find_next_link_across_headers() -> None:
    """The next link may be in a later header value."""
    assert find_next_link(['<https://h/p>; rel="prev"', '<https://h/n>; rel="next"']) == (
        "https://h/n"
    )


def test_find_next_link_first_wins() -> None:
    """When several links are rel=next, the first one wins."""
    assert find_next_link(['<https://h/1>; rel="next", <https://h/2>; rel="next"']) == "https://h/1"


@pytest.mark.parametrize(
    "values",
    [
        [],
        [""],
        ["garbage"],
        ['<https://h/p>; rel="prev"'],
        ['<https://h/p>; rel="nextpage"'],
        ['<https://h/p>; rel="next-page"'],
        ['<https://h/p>; title="next"'],
        ["<https://h/p>; rel"],
        ['<https://h/p rel="next"'],
    ],
)
def test_find_next_link_none(values: list[str]) -> None:
    """No link whose rel includes the token 'next' yields None."""
    assert find_next_link(values) is None


def test_find_next_link_with_commas_in_url() -> None:
    """A URL containing commas is returned whole."""
    assert find_next_link(['<https://h/p?c=a,b>; rel="next"']) == "https://h/p?c=a,b"


def test_find_next_link_spec_example() -> None:
    """The Link example from the spec yields its next URL."""
    value = (
        "<https://panel.sendcloud.sc/api/v3/integrations/logs?cursor=2023-03-01T02:02:00"
        '&page_size=25>; rel="next"'
    )
    assert find_next_link([value]) == (
        "https://panel.sendcloud.sc/api/v3/integrations/logs?cursor=2023-03-01T02:02:00"
        "&page_size=25"
    )


# --- next_page: resolution and origin ----------------------------------------------------


def test_next_page_absolute_same_origin() -> None:
    """An absolute link on the same origin is followed and its cursor extracted."""
    url, cursor = follow("https://panel.sendcloud.sc/api/v3/integrations/logs?cursor=xyz")
    assert str(url) == "https://panel.sendcloud.sc/api/v3/integrations/logs?cursor=xyz"
    assert cursor == "xyz"


def test_next_page_explicit_default_port() -> None:
    """An explicit :443 is the same origin as an implicit one."""
    url, cursor = follow("https://panel.sendcloud.sc:443/api/v3/integrations/logs?cursor=1")
    assert url.port == 443
    assert url.host == "panel.sendcloud.sc"
    assert cursor == "1"


def test_next_page_absolute_path_reference() -> None:
    """A path-absolute target is resolved against the response URL's origin."""
    url, cursor = follow("/api/v3/integrations/logs?cursor=c2&page_size=25")
    assert str(url) == "https://panel.sendcloud.sc/api/v3/integrations/logs?cursor=c2&page_size=25"
    assert cursor == "c2"


def test_next_page_query_only_reference() -> None:
    """A query-only target keeps the response URL's path and replaces its query."""
    url, cursor = follow("?cursor=c3")
    assert str(url) == "https://panel.sendcloud.sc/api/v3/integrations/logs?cursor=c3"
    assert cursor == "c3"


def test_next_page_dot_dot_reference() -> None:
    """A '../' target is resolved per RFC 3986 against the response URL."""
    url, cursor = follow("../logs?cursor=c4")
    assert str(url) == "https://panel.sendcloud.sc/api/v3/logs?cursor=c4"
    assert cursor == "c4"


def test_next_page_relative_against_integration_logs() -> None:
    """A relative target resolves against the per-integration logs URL."""
    response_url = URL("https://panel.sendcloud.sc/api/v3/integrations/7/logs?page_size=2")
    url, cursor = follow("logs?cursor=z", response_url)
    assert str(url) == "https://panel.sendcloud.sc/api/v3/integrations/7/logs?cursor=z"
    assert cursor == "z"


def test_next_page_without_cursor() -> None:
    """A next link without a cursor parameter yields cursor None."""
    url, cursor = follow("/api/v3/integrations/logs?page_size=25")
    assert cursor is None
    assert url.raw_query_string == "page_size=25"


def test_next_page_drops_fragment() -> None:
    """A fragment in the link is not sent."""
    url, cursor = follow("/api/v3/integrations/logs?cursor=1#frag")
    assert url.fragment == ""
    assert cursor == "1"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/api/v3/integrations/logs?cursor=1",
        "https://panel.sendcloud.sc.evil.example/api/v3/integrations/logs",
        "//evil.example/api/v3/integrations/logs?cursor=1",
        "http://panel.sendcloud.sc/api/v3/integrations/logs?cursor=1",
        "https://panel.sendcloud.sc:8443/api/v3/integrations/logs?cursor=1",
        "ftp://panel.sendcloud.sc/api/v3/integrations/logs",
    ],
)
def test_next_page_foreign_origin_refused(target: str) -> None:
    """Another host, scheme or port raises PaginationError (a SendcloudError)."""
    with pytest.raises(PaginationError, match="another origin") as info:
        follow(target)
    assert isinstance(info.value, SendcloudError)


@pytest.mark.parametrize(
    "target",
    [
        "https://user:pass@panel.sendcloud.sc/api/v3/integrations/logs?cursor=1",
        "https://user@panel.sendcloud.sc/api/v3/integrations/logs?cursor=1",
    ],
)
def test_next_page_credentials_refused(target: str) -> None:
    """A same-origin link that carries user info is refused."""
    with pytest.raises(PaginationError, match="credentials"):
        follow(target)


@pytest.mark.parametrize(
    "target",
    [
        "http:///api/v3/integrations/logs?cursor=1",
        "https:///api/v3/integrations/logs?cursor=1",
        "https://",
        "///api/v3/integrations/logs",
        "https://user:pass@/api/v3/integrations/logs",
        "https://:443/api/v3/integrations/logs",
        " https:///api/v3/integrations/logs",
    ],
)
def test_next_page_without_a_host_refused(target: str) -> None:
    """An authority without a host is an invalid link, not a path on the API's origin."""
    with pytest.raises(PaginationError, match="without a host"):
        follow(target)


def test_next_page_unusable_target() -> None:
    """A target yarl cannot parse becomes a PaginationError, not a ValueError."""
    with pytest.raises(PaginationError, match="unusable"):
        follow("https://[broken/logs")


def test_pagination_error_is_sendcloud_error() -> None:
    """PaginationError is part of the SDK's exception tree."""
    assert issubclass(PaginationError, SendcloudError)


# --- next_page: re-encoding the query ----------------------------------------------------


def test_next_page_literal_plus_is_reencoded() -> None:
    """A literal '+' in the Link query goes out as %2B; the cursor keeps the '+'."""
    url, cursor = follow("/api/v3/integrations/logs?cursor=2023-03-01T02:02:00+01:00")
    assert url.raw_query_string == "cursor=2023-03-01T02:02:00%2B01:00"
    assert cursor == "2023-03-01T02:02:00+01:00"


def test_next_page_encoded_plus_stays_encoded() -> None:
    """%2B in the Link stays %2B on the wire and decodes to '+'."""
    url, cursor = follow("/api/v3/integrations/logs?cursor=2023-03-01T02:02:00%2B01:00")
    assert url.raw_query_string == "cursor=2023-03-01T02:02:00%2B01:00"
    assert cursor == "2023-03-01T02:02:00+01:00"


def test_next_page_spaces_as_percent_20() -> None:
    """Spaces (raw or %20) are sent as %20, never '+'."""
    url, cursor = follow("/api/v3/integrations/logs?cursor=a%20b c")
    assert url.raw_query_string == "cursor=a%20b%20c"
    assert cursor == "a b c"


def test_next_page_other_params_preserved() -> None:
    """Every other query parameter is kept, in order, re-encoded consistently."""
    url, cursor = follow("/api/v3/integrations/logs?a=1&cursor=x+y&page_size=25&b=%2B&c=d%20e")
    assert url.raw_query_string == "a=1&cursor=x%2By&page_size=25&b=%2B&c=d%20e"
    assert cursor == "x+y"
    assert url.query.getall("page_size") == ["25"]


def test_next_page_reserved_chars_in_cursor() -> None:
    """Encoded '&' and '=' in a cursor do not split the query."""
    url, cursor = follow("/api/v3/integrations/logs?cursor=a%26b%3Dc&page_size=5")
    assert cursor == "a&b=c"
    assert url.raw_query_string == "cursor=a%26b%3Dc&page_size=5"


def test_next_page_comma_in_cursor() -> None:
    """A comma in the link query is a literal comma in the cursor."""
    url, cursor = follow("https://panel.sendcloud.sc/api/v3/integrations/logs?cursor=a,b")
    assert cursor == "a,b"
    assert url.query["cursor"] == "a,b"
    assert url.raw_query_string in ("cursor=a,b", "cursor=a%2Cb")


def test_next_page_first_cursor_wins() -> None:
    """With two cursor parameters, the first is the one reported."""
    _, cursor = follow("/api/v3/integrations/logs?cursor=one&cursor=two")
    assert cursor == "one"


# --- cursor encoding ---------------------------------------------------------------------


def test_encode_cursor_str_with_offset() -> None:
    """A '+HH:MM' offset in a string cursor is sent as %2B; ':' may stay."""
    assert encode_cursor("2023-03-01T02:02:00+01:00") == "2023-03-01T02:02:00%2B01:00"


def test_encode_cursor_aware_datetime() -> None:
    """An aware datetime is sent as ISO 8601 with its offset, '+' encoded."""
    dt = datetime(2023, 3, 1, 2, 2, tzinfo=timezone(timedelta(hours=1)))
    assert encode_cursor(dt) == "2023-03-01T02:02:00%2B01:00"


def test_encode_cursor_negative_offset_and_utc() -> None:
    """Negative and zero offsets are kept as isoformat writes them."""
    minus = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=-5, minutes=-30)))
    assert encode_cursor(minus) == "2024-01-02T03:04:05-05:30"
    utc = datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
    assert encode_cursor(utc) == "2024-01-02T03:04:05.123456%2B00:00"


def test_encode_cursor_opaque_string_kept() -> None:
    """An opaque string cursor is encoded byte for byte, not reinterpreted."""
    assert encode_cursor("abc/def ghi&j=k") == "abc%2Fdef%20ghi%26j%3Dk"


def test_encode_cursor_naive_datetime_rejected() -> None:
    """A naive datetime raises InvalidInputError, which is a ValueError."""
    with pytest.raises(InvalidInputError, match="aware") as info:
        encode_cursor(datetime(2023, 3, 1, 2, 2))
    assert isinstance(info.value, ValueError)


def test_encode_cursor_empty_string_rejected() -> None:
    """An empty cursor string is rejected."""
    with pytest.raises(InvalidInputError, match="empty"):
        encode_cursor("")


@pytest.mark.parametrize("value", [123, 1.5, None, b"2023", ["x"]])
def test_encode_cursor_wrong_type_rejected(value: Any) -> None:
    """Anything but str or datetime is rejected with the type named."""
    with pytest.raises(InvalidInputError, match=type(value).__name__):
        encode_cursor(value)


@pytest.mark.parametrize(
    ("raw", "encoded"),
    [
        ("a+b", "a%2Bb"),
        ("a b", "a%20b"),
        ("a:b@c", "a:b@c"),
        ("-._~", "-._~"),
        ("a&b=c#d?e/f", "a%26b%3Dc%23d%3Fe%2Ff"),
        ("é", "%C3%A9"),
        ("%2B", "%252B"),
    ],
)
def test_encode_query_value(raw: str, encoded: str) -> None:
    """Every character but unreserved, ':' and '@' is percent-encoded."""
    assert encode_query_value(raw) == encoded


# --- properties ----------------------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from("09AZaz-._~:@+ %/&=é\u2028"), max_size=40) | st.text())
def test_encode_query_value_is_quote_with_colon_and_at_safe(raw: str) -> None:
    """The fast path for plain values (date-time cursors) encodes exactly as ``quote``."""
    assert encode_query_value(raw) == quote(raw, safe=":@")


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
def test_any_cursor_round_trips_through_a_link(cursor: str) -> None:
    """Any cursor string, encoded into a Link, comes back from next_page unchanged."""
    header = f"<https://h/p?cursor={encode_query_value(cursor)}&page_size=3>; rel=next"
    target = find_next_link([header])
    assert target is not None
    url, next_cursor = follow_on(
        target, response_url=URL("https://h/p"), origin=("https", "h", 443)
    )
    assert next_cursor == cursor
    assert url.query["cursor"] == cursor
    assert url.query["page_size"] == "3"


# Real UTC offsets are whole minutes (Python 3.11 cannot read back sub-minute ones).
_OFFSETS = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59).map(
    lambda minutes: timezone(timedelta(minutes=minutes))
)


@settings(max_examples=200, deadline=None)
@given(st.datetimes(timezones=_OFFSETS))
def test_any_aware_datetime_round_trips(dt: datetime) -> None:
    """An aware datetime cursor survives encode → Link → follow_link → fromisoformat."""
    header = f"<https://h/p?cursor={encode_cursor(dt)}>; rel=next"
    target = find_next_link([header])
    assert target is not None
    url, next_cursor = follow_on(
        target, response_url=URL("https://h/p"), origin=("https", "h", 443)
    )
    assert next_cursor == dt.isoformat()
    assert "+" not in url.raw_query_string
    parsed = datetime.fromisoformat(next_cursor)
    assert parsed == dt
    assert parsed.utcoffset() == dt.utcoffset()


def test_empty_cursor_in_link_is_none() -> None:
    """An empty cursor in a Link gives next_cursor None (it could not be passed back)."""
    _, cursor = follow_on(
        "https://h/p?cursor=&page_size=3",
        response_url=URL("https://h/p"),
        origin=("https", "h", 443),
    )
    assert cursor is None


def test_fast_path_matches_slow_path_semantics() -> None:
    """An already-encoded same-origin link is used as sent, with the same cursor."""
    target = "https://panel.sendcloud.sc/api/v3/integrations/logs?cursor=2023-03-01T02%3A02%3A00%2B01%3A00&page_size=25"
    url, cursor = follow(target)
    assert str(url) == target
    assert cursor == "2023-03-01T02:02:00+01:00"
    # the same link with a raw '+' takes the slow path and is re-encoded
    url2, cursor2 = follow(target.replace("%2B", "+"))
    assert cursor2 == cursor
    assert url2.query == url.query
    assert "+" not in url2.raw_query_string


def test_fast_path_still_refuses_lookalike_origin() -> None:
    """A host that merely starts like ours (panel.sendcloud.sc.evil) is refused."""
    with pytest.raises(PaginationError):
        follow("https://panel.sendcloud.sc.evil.example/api/v3/integrations/logs?cursor=x")
    with pytest.raises(PaginationError):
        follow("https://panel.sendcloud.sc:8443/api/v3/integrations/logs?cursor=x")
