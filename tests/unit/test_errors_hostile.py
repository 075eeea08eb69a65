"""Pure tests for the error builder against hostile error bodies: depth, size, echoed secrets."""

from __future__ import annotations

import base64
import json
import pickle
import sys
import tracemalloc
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

from sendcloud_async._error_response import build_api_error
from sendcloud_async._errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    DecodeError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    SendcloudError,
    ServerError,
)
from sendcloud_async._models import ErrorObject, ErrorSource
from sendcloud_async._redact import Redactor

URL = "https://panel.sendcloud.sc/api/v3/integrations/42"
PUBLIC = "pk-hostile-test"
SECRET = "sk-S3cr3t/Key+with=odd"
BASIC_B64 = base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode()
BASIC_HEADER = f"Basic {BASIC_B64}"
TOKEN = "tok-Issued.Bearer_Token-0123456789"
CLIENT_SECRET = "cs-Client/Secret+0123"
#: Every form that must never be shown.
FORBIDDEN = (SECRET, BASIC_B64, f"{PUBLIC}:{SECRET}", TOKEN, CLIENT_SECRET)
STATUS_CLASSES: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    429: RateLimitError,
    500: ServerError,
    503: ServerError,
    418: APIError,
    302: APIError,
}


def build(status: int, body: bytes, **kw: Any) -> APIError:
    """``build_api_error`` with a fixed method and URL."""
    return build_api_error(status, body=body, method="GET", url=URL, **kw)


def redactor() -> Redactor:
    """A redactor for the Basic pair, the bearer token and the client secret above."""
    return Redactor.for_basic(PUBLIC, SECRET) | Redactor.for_bearer(TOKEN) | Redactor(CLIENT_SECRET)


def everything_shown(err: APIError) -> str:
    """Every text of ``err`` a person or a log could see."""
    return "\n".join(
        [
            str(err),
            repr(err),
            repr(err.errors),
            repr(err.body),
            repr(dict(err.headers)),
            repr(err.reason),
            err.url,
            str(pickle.loads(pickle.dumps(err))),
        ]
    )


def nested(depth: int, inner: bytes = b"1") -> bytes:
    """JSON objects nested ``depth`` levels deep."""
    return b'{"a":' * depth + inner + b"}" * depth


# --- deeply nested JSON ----------------------------------------------------------------

# Deeper than any supported Python decodes: 3.11 stops near 1,000 levels, 3.12 near
# 5,000, 3.13 near 20,000 (msgspec uses the interpreter's C recursion limit).
DEEP = 50_000
DEEP_BODIES = {
    "top level": nested(DEEP),
    "arrays": b"[" * DEEP + b"]" * DEEP,
    "unknown key": b'{"x":' + b"[" * DEEP + b"]" * DEEP + b"}",
    "errors list": b'{"errors":' + b"[" * DEEP + b"]" * DEEP + b"}",
    "meta": b'{"errors":[{"code":"c","detail":"d","meta":' + nested(DEEP) + b"}]}",
    "links": b'{"errors":{"links":' + nested(DEEP) + b"}}",
}


@pytest.mark.parametrize("status", sorted(STATUS_CLASSES))
@pytest.mark.parametrize("body", DEEP_BODIES.values(), ids=list(DEEP_BODIES))
def test_deeply_nested_error_body_gives_the_status_class(status: int, body: bytes) -> None:
    """JSON nested too deeply to decode never raises RecursionError: the status's own class."""
    err = build(status, body)
    assert type(err) is STATUS_CLASSES[status]
    assert err.errors == []
    assert err.body is not None
    assert len(err.body) == 200
    assert err.body.endswith("…")
    assert err.body.startswith(body[:20].decode())


def test_deeply_nested_error_body_near_the_recursion_limit() -> None:
    """Built from deep inside the call stack, the builder still answers with the class."""

    def descend(levels: int) -> APIError:
        if levels == 0:
            return build(404, DEEP_BODIES["meta"])
        return descend(levels - 1)

    err = descend(sys.getrecursionlimit() - 200)
    assert type(err) is NotFoundError


# --- bounded messages ------------------------------------------------------------------


def test_many_error_objects_give_a_short_message_and_keep_every_object() -> None:
    """100k error objects: str(err) is a sentence that counts what it left out."""
    objects = [
        {"code": "invalid", "detail": f"Field {i} is wrong.", "source": {"pointer": f"/data/{i}"}}
        for i in range(100_000)
    ]
    err = build(400, json.dumps({"errors": objects}).encode())
    message = str(err)
    assert len(message) < 700
    assert len(err.errors) == 100_000
    assert err.errors[-1].detail == "Field 99999 is wrong."
    shown = message.count("is wrong.")
    assert f"({100_000 - shown:,} more errors left out; the full error objects are on .errors)" in (
        message
    )
    assert "[at /data/0, /data/1, /data/2 and 99,997 more]" in message
    assert message.endswith(f" for GET {URL}")


def test_a_huge_detail_is_cut_and_the_cut_counted() -> None:
    """A 5 MB detail: about 300 characters shown, the rest counted, the whole kept."""
    detail = "x" * 5_000_000
    err = build(400, json.dumps({"errors": [{"code": "big", "detail": detail}]}).encode())
    assert str(err) == (
        f"Sendcloud answered 400 (big): {'x' * 299}… (4,999,701 characters left out; "
        f"the full error objects are on .errors) for GET {URL}"
    )
    assert err.detail == detail


def test_small_messages_are_unchanged() -> None:
    """Two short details and a pointer read as before: nothing is said to be left out."""
    body = {
        "errors": [
            {"code": "invalid", "detail": "Bad name.", "source": {"pointer": "/shop_name"}},
            {"code": "invalid", "detail": "Bad URL."},
        ]
    }
    err = build(400, json.dumps(body).encode())
    assert str(err) == (
        f"Sendcloud answered 400 (invalid): Bad name.; Bad URL. [at /shop_name] for GET {URL}"
    )


def test_huge_code_pointer_and_reason_are_cut() -> None:
    """A code, pointer or reason phrase of a megabyte each shows 100 characters."""
    body = {"errors": [{"code": "c" * 1_000_000, "source": {"pointer": "/" + "p" * 1_000_000}}]}
    err = build(400, json.dumps(body).encode(), reason="r" * 1_000_000)
    assert len(str(err)) < 500
    assert f"({'c' * 99}…)" in str(err)
    assert err.code == "c" * 1_000_000


def test_a_long_body_given_directly_is_cut_in_the_message() -> None:
    """An APIError built with a long raw body still has a short message."""
    err = APIError(502, body="b" * 10_000, method="GET", url=URL)
    assert str(err) == (
        f"Sendcloud answered 502: {'b' * 199}… (9,801 characters left out) for GET {URL}"
    )


def test_a_decode_error_message_is_cut() -> None:
    """A DecodeError quoting a megabyte of what the server sent stays short."""
    err = DecodeError("unusable token_type " + "t" * 1_000_000, method="POST", url=URL)
    assert len(str(err)) < 700
    assert "(999,521 characters left out)" in str(err)


# --- cut first: a 50 MB page ----------------------------------------------------------------


PAGES = {
    "html": (b"<p>word word word</p>\n", 2_300_000),
    "whitespace": (b" ", 50_000_000),
    "not utf-8": (b"\xff\xfe", 25_000_000),
}


@pytest.mark.parametrize("kind", PAGES)
def test_a_50_mb_page_costs_kilobytes(kind: str) -> None:
    """Building the error from a 50 MB page allocates far less than the page (cut first)."""
    unit, times = PAGES[kind]
    page = unit * times
    tracemalloc.start()
    try:
        err = build(502, page, redact=redactor())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert type(err) is ServerError
    assert peak < 1_000_000
    assert err.body is None or len(err.body) <= 200


# --- echoed secrets ---------------------------------------------------------------------------


def test_an_echoed_basic_header_is_masked_everywhere() -> None:
    """detail, title, meta, links, pointer, headers, reason, body and str(err): no secret."""
    echo = f"Authorization: {BASIC_HEADER}"
    body = {
        "errors": [
            {
                "code": "bad",
                "title": echo,
                "detail": f"you sent {echo} and {PUBLIC}:{SECRET}",
                "source": {"pointer": f"/{SECRET}", "header": BASIC_HEADER},
                "meta": {"deep": {"echo": [BASIC_B64, {"k": SECRET}]}},
                "links": {"about": f"https://x/?s={SECRET}"},
            }
        ]
    }
    err = build(
        400,
        json.dumps(body).encode(),
        headers={"X-Echo": BASIC_HEADER, "Content-Type": "application/json"},
        reason=f"Bad {SECRET}",
        redact=redactor(),
    )
    shown = everything_shown(err)
    for secret in FORBIDDEN:
        assert secret not in shown
    assert err.detail == ("you sent Authorization: ********** and **********")
    assert err.errors[0].meta == {"deep": {"echo": ["**********", {"k": "**********"}]}}
    assert err.headers["X-Echo"] == "**********"
    assert err.headers["Content-Type"] == "application/json"
    assert str(err).startswith("Sendcloud answered 400 Bad ********** (bad): you sent")


def test_the_public_key_alone_is_not_masked() -> None:
    """Only secrets are masked: the public key (an identifier) stays readable."""
    err = build(
        401,
        json.dumps({"errors": [{"detail": f"unknown key {PUBLIC}"}]}).encode(),
        redact=redactor(),
    )
    assert err.detail == f"unknown key {PUBLIC}"


@pytest.mark.parametrize(
    "written",
    [
        json.dumps({"errors": [{"detail": CLIENT_SECRET}]}).replace("/", "\\/"),
        '{"errors": [{"detail": "' + "".join(f"\\u{ord(c):04x}" for c in SECRET) + '"}]}',
        "client_secret=" + CLIENT_SECRET.replace("/", "%2F").replace("+", "%2B"),
        f"<html><pre>{BASIC_HEADER}</pre></html>",
        f"bearer token {TOKEN}",
    ],
    ids=["json slash", "json unicode escapes", "form encoded", "html", "token"],
)
def test_secrets_written_back_in_other_forms_are_masked(written: str) -> None:
    """JSON escapes and percent-encoding of a secret are masked too."""
    err = build(400, written.encode(), redact=redactor())
    shown = everything_shown(err)
    for secret in FORBIDDEN:
        assert secret not in shown
    assert "**********" in shown


def test_a_secret_cut_by_the_window_shows_no_part_of_it() -> None:
    """A secret that straddles the end of the part of the body looked at is not half shown."""
    for offset in range(1, len(BASIC_HEADER)):
        body = b"x" * (4096 - offset) + BASIC_HEADER.encode() + b"y" * 10_000
        err = build(502, body, redact=redactor())
        assert err.body is not None
        # Whatever the message keeps of the window, it holds no 6 characters of the secret.
        tail = BASIC_HEADER[6:]
        assert not any(tail[i : i + 6] in everything_shown(err) for i in range(len(tail) - 5))


def test_a_secret_at_the_message_cut_is_masked_not_halved() -> None:
    """A secret across the 200th character is masked whole before the text is cut."""
    body = ("z" * 190 + " " + BASIC_HEADER).encode()
    err = build(500, body, redact=redactor())
    assert err.body == "z" * 190 + " ********…"
    assert BASIC_B64[:4] not in everything_shown(err)


def test_without_a_redactor_nothing_is_masked() -> None:
    """The builder masks only what it is told: no guessing at what looks secret."""
    err = build(400, json.dumps({"errors": [{"detail": BASIC_HEADER}]}).encode())
    assert err.detail == BASIC_HEADER


def test_redact_accepts_plain_strings() -> None:
    """``redact`` takes the secret strings as well (one str is one secret, not its letters)."""
    body = json.dumps({"errors": [{"detail": f"{SECRET} / {TOKEN} / a"}]}).encode()
    assert build(400, body, redact=[SECRET, TOKEN]).detail == "********** / ********** / a"
    assert build(400, body, redact=SECRET).detail == f"********** / {TOKEN} / a"
    assert build(400, body, redact=[]).detail == f"{SECRET} / {TOKEN} / a"


def test_rate_limit_errors_are_masked_and_keep_retry_after() -> None:
    """A 429 echoing the token keeps its Retry-After and loses the token."""
    err = build(
        429,
        json.dumps({"errors": [{"detail": f"slow down {TOKEN}"}]}).encode(),
        headers={"Retry-After": "7"},
        redact=redactor(),
    )
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 7.0
    assert err.detail == "slow down **********"
    assert TOKEN not in everything_shown(err)


def test_api_error_masks_what_it_is_given() -> None:
    """An APIError built by hand with ``redact=`` masks its objects, body, reason, URL, headers."""
    headers = CIMultiDictProxy(CIMultiDict({"X-Token": TOKEN}))
    err = AuthenticationError(
        401,
        errors=[ErrorObject(code="x", detail=TOKEN, source=ErrorSource(parameter=TOKEN))],
        method="POST",
        url=f"http://127.0.0.1/?t={TOKEN}",
        headers=headers,
        body=TOKEN,
        reason=TOKEN,
        redact=Redactor.for_bearer(TOKEN),
    )
    assert TOKEN not in everything_shown(err)
    assert err.errors[0].source == ErrorSource(parameter="**********")


def test_decode_error_masks_what_it_is_told() -> None:
    """A DecodeError quoting a server's token_type loses the secret it echoed."""
    err = DecodeError(f"unusable token_type {BASIC_HEADER!r}", url=URL, redact=redactor())
    assert str(err) == "unusable token_type '**********'"
    assert BASIC_B64 not in str(err)


def test_redactor_is_a_discreet_value() -> None:
    """Its repr names no secret; equal values are equal; empty is false; a non-str is refused."""
    r = redactor()
    assert all(secret not in repr(r) for secret in FORBIDDEN)
    assert r == redactor()
    assert hash(r) == hash(redactor())
    assert not Redactor()
    assert not Redactor("")
    assert r
    assert Redactor.for_authorization("Basic !!not-base64!!").mask_text("!!not-base64!!") == (
        "**********"
    )
    with pytest.raises(TypeError, match="must be a str"):
        Redactor(b"bytes")  # type: ignore[arg-type]


def test_for_authorization_masks_every_part_of_a_basic_value() -> None:
    """The header value, its base64, the decoded pair and the secret; not the public key."""
    r = Redactor.for_authorization(BASIC_HEADER)
    text = f"{BASIC_HEADER}|{BASIC_B64}|{PUBLIC}:{SECRET}|{SECRET}|{PUBLIC}"
    assert r.mask_text(text) == f"**********|**********|**********|**********|{PUBLIC}"
    assert r.mask_bytes(text.encode()) == r.mask_text(text).encode()


# --- the size-limit error --------------------------------------------------------------------


def test_response_too_large_error_names_the_limit_and_pickles() -> None:
    """ResponseTooLargeError is a DecodeError that names the limit; it survives pickling."""
    err = ResponseTooLargeError(20_000_000, method="GET", url=URL, status=200)
    assert isinstance(err, DecodeError)
    assert isinstance(err, SendcloudError)
    assert str(err) == (
        "the response body is larger than the limit of 20,000,000 bytes (max_response_size) "
        f"(GET {URL})"
    )
    again = pickle.loads(pickle.dumps(err))
    assert type(again) is ResponseTooLargeError
    assert (again.limit, again.method, again.url, again.status, str(again)) == (
        err.limit,
        err.method,
        err.url,
        err.status,
        str(err),
    )


# --- properties ---------------------------------------------------------------------------------

# Secrets of the characters credentials and tokens use, and the awkward ones for JSON and URLs;
# a fixed prefix keeps them from matching the SDK's own words by chance. No '*': the mask.
SECRET_TEXT = st.text(
    alphabet=st.sampled_from(
        'abcdefXYZ0123456789+/=-_.~:;"\\ü%&?#\t' + "".join(map(chr, range(0x20, 0x2A)))
    ),
    min_size=1,
    max_size=40,
).map(lambda s: "S3CR3T" + s)
FILLER = st.text(alphabet=st.characters(exclude_characters="*"), max_size=300)


@settings(max_examples=200, deadline=None)
@given(
    secret=SECRET_TEXT,
    before=FILLER,
    after=FILLER,
    status=st.sampled_from([400, 401, 403, 404, 429, 500, 302]),
    shape=st.sampled_from(["detail", "title", "meta", "raw", "header"]),
)
def test_an_echoed_secret_never_shows(
    secret: str, before: str, after: str, status: int, shape: str
) -> None:
    """Wherever a server puts a secret the SDK sent, no error text shows it."""
    echoed = before + secret + after
    headers: dict[str, str] = {}
    if shape == "raw":
        body = echoed.encode("utf-8", "surrogatepass")
    elif shape == "header":
        body = b""
        headers["X-Echo"] = echoed
    elif shape == "meta":
        body = json.dumps({"errors": [{"meta": {"k": [echoed]}}]}).encode()
    else:
        body = json.dumps({"errors": [{shape: echoed}]}).encode()
    err = build(status, body, headers=headers, redact=Redactor(secret))
    assert type(err) is STATUS_CLASSES[status]
    assert secret not in everything_shown(err)
