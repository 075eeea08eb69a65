"""Property-based tests of Link parsing with generated well-formed headers (RFC 8288).

``test_pagination.py`` proves the parser never raises on garbage and handles
hand-picked forms; here hypothesis builds valid Link headers in every form the
RFC allows (whitespace, quoting, parameter order and case, several links per
header, several headers, garbage between links) and checks what comes back.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from sendcloud_async._pagination import (
    _CANONICAL_TAIL,
    PaginationError,
    _follow_link_slow,
    find_next_link,
    follow_link,
    parse_link_header,
)

WS = st.text(alphabet=" \t", max_size=2)
TOKEN = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-._", min_size=1, max_size=8)
# URI references as servers send them: no '<', '>', whitespace or control characters.
TARGET = st.text(
    alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="<>"),
    min_size=1,
    max_size=40,
)
# Any visible text for a quoted-string value: quotes and backslashes get escaped.
QUOTED_TEXT = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20)
REL_TOKENS = st.lists(
    st.sampled_from(["next", "prev", "last", "first", "alternate", "NEXT", "Next"]),
    min_size=1,
    max_size=3,
)


@dataclass(frozen=True)
class Link:
    """A link as generated: its target, rel tokens and the header text for it."""

    target: str
    rel: tuple[str, ...]
    text: str


def quote(value: str) -> str:
    """``value`` as an RFC 9110 quoted-string."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@st.composite
def links(draw: st.DrawFn) -> Link:
    """One link-value: random whitespace, quoting, parameter order and name case."""
    target = draw(TARGET)
    rel = tuple(draw(REL_TOKENS))
    rel_text = " ".join(rel)
    bare = len(rel) == 1 and draw(st.booleans())  # a single token may go unquoted
    rel_value = rel_text if bare else quote(rel_text)
    rel_name = draw(st.sampled_from(["rel", "REL", "Rel"]))
    params = [(rel_name, rel_value)]
    for name in draw(
        st.lists(st.sampled_from(["title", "type", "hreflang", "anchor"]), max_size=3, unique=True)
    ):
        value = draw(st.one_of(TOKEN, QUOTED_TEXT.map(quote)))
        params.append((name, value))
    params = draw(st.permutations(params))
    text = "<" + draw(WS) + target + draw(WS) + ">"
    for name, value in params:
        text += f"{draw(WS)};{draw(WS)}{name}{draw(WS)}={draw(WS)}{value}"
    return Link(target, rel, text)


GARBAGE = st.text(alphabet="abc xyz;=\"'", min_size=1, max_size=10).filter(
    lambda g: g.strip() != ""
)


@st.composite
def headers(draw: st.DrawFn) -> tuple[list[Link], list[str]]:
    """Several links spread over one or more header values, garbage in between."""
    generated = draw(st.lists(links(), min_size=1, max_size=5))
    values: list[str] = []
    current: list[str] = []
    for link in generated:
        new_header: bool = draw(st.booleans())
        if current and new_header:
            values.append(", ".join(current))
            current = []
        if draw(st.integers(0, 4)) == 0:
            current.append(draw(GARBAGE))  # not a link-value: skipped up to the next comma
        current.append(draw(WS) + link.text + draw(WS))
    values.append(", ".join(current))
    return generated, values


@settings(max_examples=300, deadline=None)
@given(headers())
def test_every_generated_link_is_parsed_in_order(case: tuple[list[Link], list[str]]) -> None:
    """Targets come back in order and whole; rel values come back unquoted."""
    generated, values = case
    parsed = parse_link_header(values)
    assert [target for target, _ in parsed] == [link.target for link in generated]
    for (_, params), link in zip(parsed, generated, strict=True):
        assert params["rel"] == " ".join(link.rel)


@settings(max_examples=300, deadline=None)
@given(headers())
def test_the_first_next_link_wins(case: tuple[list[Link], list[str]]) -> None:
    """find_next_link gives the first link whose rel has 'next' in any case, else None."""
    generated, values = case
    expected = next(
        (link.target for link in generated if "next" in (r.lower() for r in link.rel)), None
    )
    assert find_next_link(values) == expected


@settings(max_examples=200, deadline=None)
@given(link=links(), value=QUOTED_TEXT)
def test_quoted_parameter_values_round_trip(link: Link, value: str) -> None:
    """Any quoted-string parameter, commas and semicolons included, is read back exactly."""
    text = f"{link.text}; x-note={quote(value)}, <https://h/other>; rel=next"
    parsed = parse_link_header([text])
    assert [target for target, _ in parsed] == [link.target, "https://h/other"]
    assert parsed[0][1]["x-note"] == value


# --- the fast paths agree with the RFC parser and the canonical follow ----------------------

_PIECES = st.sampled_from(
    [
        "<",
        ">",
        ";",
        ",",
        '"',
        "\\",
        " ",
        "\t",
        "rel",
        "REL",
        "=",
        "next",
        "NEXT",
        "prev",
        "https://x/a",
        "?cursor=1",
        "&",
        "%2B",
        "+",
        "title=t",
        "nex",
        "t",
        "ü",
        "\r",
    ]
)
ODD_HEADERS = st.lists(_PIECES, max_size=14).map("".join)


def _rfc_next(value: str) -> str | None:
    """What the RFC 8288 parser alone says the next link is (no fast path)."""
    for target, params in parse_link_header([value]):
        rel = params.get("rel")
        if rel and "next" in rel.lower().split():
            return target
    return None


@settings(max_examples=600, deadline=None)
@given(st.one_of(ODD_HEADERS, st.builds(lambda link: link.text, links())))
def test_the_link_fast_path_returns_what_the_rfc_parser_returns(value: str) -> None:
    """For any one header value, the regex fast path and the RFC parser agree."""
    assert find_next_link([value]) == _rfc_next(value)


def test_a_stray_quote_after_a_bare_rel_is_not_a_next_link() -> None:
    """``<https://x/a>; rel=next"`` is no next link: the fast path agrees with the parser."""
    value = '<https://x/a>; rel=next"'
    assert _rfc_next(value) is None
    assert find_next_link([value]) is None


_ORIGIN = ("https", "panel.sendcloud.sc", 443)
_RESPONSE = URL("https://panel.sendcloud.sc/api/v3/integrations/logs?cursor=a")
_TAIL_PIECES = st.sampled_from(
    [
        "/",
        "api",
        "v3",
        "logs",
        ".",
        "..",
        "?",
        "&",
        "=",
        "cursor",
        "a",
        "%2B",
        "%2b",
        "%3A",
        ":",
        "+",
        ",",
        "(",
        ")",
        "%",
        "%zz",
        "ü",
        " ",
        "#frag",
        "@",
        "~",
        "-",
        "_",
        "*",
        "'",
    ]
)
TAILS = st.lists(_TAIL_PIECES, max_size=14).map(lambda parts: "/" + "".join(parts))


@settings(max_examples=600, deadline=None)
@given(TAILS, st.sampled_from(["https://panel.sendcloud.sc", "https://panel.sendcloud.sc:443"]))
def test_follow_link_fast_path_returns_what_the_slow_path_returns(tail: str, prefix: str) -> None:
    """An absolute same-origin target: the fast path's URL is the canonical one."""
    target = prefix + tail
    try:
        slow = _follow_link_slow(target, response_url=_RESPONSE, origin=_ORIGIN)
    except PaginationError:
        with pytest.raises(PaginationError):
            follow_link(target, response_url=_RESPONSE, origin=_ORIGIN)
        return
    fast = follow_link(target, response_url=_RESPONSE, origin=_ORIGIN)
    assert str(fast) == str(slow)


@pytest.mark.parametrize(
    "target", ["https://panel.sendcloud.sc/api/v3/x?cursor=a,b(c)", "x?cursor=a,b(c)"]
)
def test_absolute_and_relative_targets_are_sent_alike(target: str) -> None:
    """``?cursor=a,b(c)`` goes out in one form whether the link is absolute or relative."""
    url = follow_link(
        target, response_url=URL("https://panel.sendcloud.sc/api/v3/y"), origin=_ORIGIN
    )
    assert url.raw_query_string == "cursor=a%2Cb%28c%29"
    assert url.query["cursor"] == "a,b(c)"


def test_the_usual_link_takes_the_fast_path() -> None:
    """What servers send (an encoded cursor, a page size) is recognised as canonical."""
    tail = "/api/v3/integrations/logs?cursor=2024-01-01T00%3A00%3A00%2B00%3A00&page_size=100"
    assert _CANONICAL_TAIL.match(tail) is not None
    assert _CANONICAL_TAIL.match("/api/v3/../logs?cursor=a") is None
