"""Pure tests for the exceptions (``_errors``) and the error builder (``_error_response``).

Status → class, messages, Retry-After, pickling, and the drawn exception tree.
"""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict, CIMultiDictProxy

import sendcloud_async as sc
from sendcloud_async._error_response import build_api_error, decode_error_objects, parse_retry_after
from sendcloud_async._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    DecodeError,
    InvalidInputError,
    MissingExtraError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SendcloudError,
    ServerError,
)
from sendcloud_async._models import ErrorObject, ErrorSource

URL = "https://panel.sendcloud.sc/api/v3/integrations/42"


def body_of(obj: Any) -> bytes:
    """JSON bytes of ``obj``."""
    return json.dumps(obj).encode()


def error_body(status: int | str = 400, code: str = "invalid", detail: str = "Bad") -> bytes:
    """A JSON:API error body with one error object."""
    return body_of({"errors": [{"status": status, "code": code, "title": "T", "detail": detail}]})


def build(status: int, body: bytes = b"", **kw: Any) -> APIError:
    """``build_api_error`` with a fixed method and URL."""
    return build_api_error(status, body=body, method="GET", url=URL, **kw)


# --- the tree --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cls", "bases"),
    [
        (APIError, (SendcloudError,)),
        (BadRequestError, (APIError,)),
        (AuthenticationError, (APIError,)),
        (PermissionDeniedError, (APIError,)),
        (NotFoundError, (APIError,)),
        (RateLimitError, (APIError,)),
        (ServerError, (APIError,)),
        (APIConnectionError, (SendcloudError,)),
        (APITimeoutError, (APIConnectionError, TimeoutError)),
        (DecodeError, (SendcloudError,)),
        (InvalidInputError, (SendcloudError, ValueError)),
        (ClientClosedError, (SendcloudError, RuntimeError)),
        (MissingExtraError, (SendcloudError, ImportError)),
    ],
)
def test_exception_tree(cls: type[Exception], bases: tuple[type[Exception], ...]) -> None:
    """Each exception class sits where the documented tree puts it."""
    for base in bases:
        assert issubclass(cls, base)


def test_public_names_are_the_same_classes() -> None:
    """The public namespace re-exports the very classes of _errors."""
    assert sc.APIError is APIError
    assert sc.RateLimitError is RateLimitError
    assert sc.APITimeoutError is APITimeoutError
    assert sc.InvalidInputError is InvalidInputError


def test_timeout_error_is_builtin_timeout_and_connection_error() -> None:
    """APITimeoutError is caught by `except TimeoutError` and `except APIConnectionError`."""
    err = APITimeoutError("timed out", method="GET", url=URL)
    assert isinstance(err, TimeoutError)
    assert isinstance(err, APIConnectionError)
    assert err.method == "GET"
    assert err.url == URL
    assert str(err) == f"timed out while calling GET {URL}"
    with pytest.raises(TimeoutError):
        raise err


def test_connection_error_message() -> None:
    """APIConnectionError names the call it failed on."""
    err = APIConnectionError("refused", method="POST", url=URL)
    assert str(err) == f"refused while calling POST {URL}"
    assert str(APIConnectionError("refused")) == "refused"


def test_invalid_input_error_is_value_error() -> None:
    """InvalidInputError can be caught as ValueError."""
    with pytest.raises(ValueError, match="nope"):
        raise InvalidInputError("nope")


def test_decode_error_message() -> None:
    """DecodeError keeps method, URL and status and names them."""
    err = DecodeError("bad body", method="GET", url=URL, status=200)
    assert (err.method, err.url, err.status) == ("GET", URL, 200)
    assert str(err) == f"bad body (GET {URL})"


# --- status → class ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (429, RateLimitError),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
        (599, ServerError),
        (402, APIError),
        (405, APIError),
        (409, APIError),
        (418, APIError),
        (422, APIError),
        (300, APIError),
        (302, APIError),
    ],
)
def test_status_maps_to_class(status: int, cls: type[APIError]) -> None:
    """Each status gets exactly its class; other 4xx and 3xx get the APIError base."""
    err = build(status, error_body(status))
    assert type(err) is cls
    assert err.status == status


# --- error objects -----------------------------------------------------------------------


def test_errors_as_list() -> None:
    """A list of error objects is kept in order."""
    body = body_of(
        {
            "errors": [
                {"status": 400, "code": "invalid", "detail": "first"},
                {"status": 400, "code": "required", "detail": "second"},
            ]
        }
    )
    err = build(400, body)
    assert [e.detail for e in err.errors] == ["first", "second"]
    assert [e.code for e in err.errors] == ["invalid", "required"]
    assert err.code == "invalid"
    assert err.detail == "first"
    assert "first; second" in str(err)


def test_errors_as_single_object() -> None:
    """A single error object (not a list) becomes a one-element list."""
    err = build(404, body_of({"errors": {"status": 404, "code": "not_found", "detail": "gone"}}))
    assert isinstance(err, NotFoundError)
    assert err.errors == [ErrorObject(status=404, code="not_found", detail="gone")]


@pytest.mark.parametrize("status", ["400", 400])
def test_error_status_string_or_int(status: str | int) -> None:
    """status arrives as "400" or 400 and is exposed as the int 400."""
    err = build(400, error_body(status))
    assert err.errors[0].status == 400
    assert isinstance(err.errors[0].status, int)


def test_unknown_code_kept() -> None:
    """A code outside the spec's enum is kept as is."""
    err = build(400, error_body(400, code="extra_forbidden", detail="Extra inputs"))
    assert err.code == "extra_forbidden"
    assert "(extra_forbidden)" in str(err)


def test_source_pointer_in_message() -> None:
    """source.pointer is decoded and shown in the message."""
    body = body_of(
        {
            "errors": [
                {
                    "status": 400,
                    "code": "extra_forbidden",
                    "title": "Extra Forbidden",
                    "detail": "Extra inputs are not permitted",
                    "source": {"pointer": "body/unknown_field"},
                }
            ]
        }
    )
    err = build(400, body)
    assert err.errors[0].source == ErrorSource(pointer="body/unknown_field")
    assert "[at body/unknown_field]" in str(err)


def test_title_used_when_no_detail() -> None:
    """Without detail, the title is the human part of the message."""
    err = build(403, body_of({"errors": [{"status": 403, "code": "forbidden", "title": "No"}]}))
    assert err.detail == "No"
    assert ": No" in str(err)


def test_unknown_fields_in_error_objects_ignored() -> None:
    """Fields the server adds later do not break error decoding."""
    body = body_of({"errors": [{"status": 400, "code": "x", "detail": "d", "new": [1]}], "x": 1})
    assert build(400, body).code == "x"


def test_str_contains_everything_actionable() -> None:
    """str(err) names status, reason, code, detail, method and URL."""
    err = build_api_error(
        400,
        body=error_body(400, code="invalid", detail="Webhook URL required"),
        method="PATCH",
        url=URL,
        reason="Bad Request",
    )
    text = str(err)
    assert text == (
        f"Sendcloud answered 400 Bad Request (invalid): Webhook URL required for PATCH {URL}"
    )
    for part in ("400", "invalid", "Webhook URL required", "PATCH", URL):
        assert part in text


def test_authentication_error_hint() -> None:
    """A 401 message tells the reader to check the credentials."""
    err = build(401, error_body(401, code="authentication_failed", detail="No credentials"))
    assert str(err).endswith("Check the API credentials the client was created with")
    assert err.method == "GET"
    assert err.url == URL


def test_api_error_without_errors_or_body() -> None:
    """An empty body still gives a readable message and empty errors."""
    err = build(503)
    assert err.errors == []
    assert err.body is None
    assert err.code is None
    assert err.detail is None
    assert str(err) == f"Sendcloud answered 503 for GET {URL}"


def test_empty_errors_list_falls_back_to_body() -> None:
    """`{"errors": []}` has no error objects, so the raw body is shown."""
    err = build(500, b'{"errors": []}')
    assert err.errors == []
    assert err.body == '{"errors": []}'


# --- non-JSON bodies ---------------------------------------------------------------------


def test_html_body_shortened_and_folded() -> None:
    """An HTML page from a proxy: right class, whitespace folded, body shortened."""
    html = b"<html>\n  <head><title>502 Bad Gateway</title></head>\n\n<body>" + b"x" * 500
    err = build(502, html)
    assert isinstance(err, ServerError)
    assert err.errors == []
    assert err.body is not None
    assert err.body.startswith("<html> <head><title>502 Bad Gateway</title></head> <body>xxx")
    assert len(err.body) == 200
    assert err.body.endswith("…")
    assert "\n" not in str(err)
    assert err.body in str(err)


def test_short_text_body_kept_whole() -> None:
    """A short non-JSON body is kept whole (stripped)."""
    err = build(404, b"  Not Found\r\n")
    assert isinstance(err, NotFoundError)
    assert err.body == "Not Found"
    assert str(err) == f"Sendcloud answered 404: Not Found for GET {URL}"


def test_invalid_utf8_body() -> None:
    """Undecodable bytes are replaced, not raised."""
    err = build(500, b"\xff\xfe bad")
    assert isinstance(err, ServerError)
    assert err.body == "\ufffd\ufffd bad"


@pytest.mark.parametrize(
    "body",
    [b"[]", b"null", b"42", b'"text"', b'{"errors": 5}', b'{"errors": [{"status": "abc"}]}'],
)
def test_json_of_unexpected_shape(body: bytes) -> None:
    """JSON that is not a JSON:API error document yields no error objects, keeps the body."""
    err = build(400, body)
    assert isinstance(err, BadRequestError)
    assert err.errors == []
    assert err.body == body.decode()


# --- Retry-After ---------------------------------------------------------------------------


def test_rate_limit_empty_body_retry_after_seconds() -> None:
    """An empty 429 with Retry-After: 7 gives retry_after 7.0 and a hint."""
    err = build(429, b"", headers={"Retry-After": "7"})
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 7.0
    assert err.errors == []
    assert str(err) == f"Sendcloud answered 429 for GET {URL}. Retry after 7 seconds"


def test_rate_limit_retry_after_header_case_insensitive() -> None:
    """The header lookup is case-insensitive; CIMultiDictProxy headers are kept as given."""
    headers = CIMultiDictProxy(CIMultiDict({"retry-after": "2.5"}))
    err = build(429, b"", headers=headers)
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 2.5
    assert err.headers is headers


def test_rate_limit_retry_after_http_date_in_past() -> None:
    """An HTTP-date in the past means retry now (0)."""
    err = build(429, b"", headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})
    assert isinstance(err, RateLimitError)
    assert err.retry_after == 0.0


def test_rate_limit_without_retry_after() -> None:
    """No Retry-After: retry_after None and a generic hint."""
    err = build(429, error_body(429, code="throttled", detail="Too many"))
    assert isinstance(err, RateLimitError)
    assert err.retry_after is None
    assert str(err).endswith("Slow down and retry later")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("7", 7.0),
        (" 12 ", 12.0),
        ("2.5", 2.5),
        ("-3", 0.0),
        ("-0.1", 0.0),
    ],
)
def test_parse_retry_after_seconds(value: str, expected: float) -> None:
    """delta-seconds parse to a float; negatives clamp to 0."""
    assert parse_retry_after(value) == expected


def test_parse_retry_after_http_date() -> None:
    """An HTTP-date gives the seconds from the injected now."""
    when = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    now = when.timestamp() - 90
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=now) == 90.0
    assert parse_retry_after(format_datetime(when, usegmt=True), now=now) == 90.0


def test_parse_retry_after_http_date_past() -> None:
    """An HTTP-date before now clamps to 0."""
    when = datetime(2015, 10, 21, 7, 28, tzinfo=UTC).timestamp()
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=when + 30) == 0.0


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "nan", "inf", "-inf", "1e400", "12 seconds", "Wed, 99 Foo"]
)
def test_parse_retry_after_garbage(value: str | None) -> None:
    """Unreadable values give None."""
    assert parse_retry_after(value, now=0.0) is None


# --- pickling ------------------------------------------------------------------------------


def test_api_error_pickles() -> None:
    """An APIError subclass survives pickling with every field and the same message."""
    err = build_api_error(
        400,
        body=error_body(400, code="extra_forbidden", detail="Extra inputs"),
        method="POST",
        url=URL,
        headers={"X-Request-Id": "abc"},
        reason="Bad Request",
    )
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is BadRequestError
    assert copy.status == 400
    assert copy.errors == err.errors
    assert copy.method == "POST"
    assert copy.url == URL
    assert copy.headers["x-request-id"] == "abc"
    assert copy.reason == "Bad Request"
    assert copy.body is None
    assert str(copy) == str(err)
    assert copy.args == err.args


def test_api_error_with_body_pickles() -> None:
    """The raw body of a non-JSON error survives pickling."""
    err = build(502, b"<html>bad gateway</html>")
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is ServerError
    assert copy.body == "<html>bad gateway</html>"
    assert str(copy) == str(err)


def test_rate_limit_error_pickles_fields() -> None:
    """RateLimitError keeps retry_after and its other fields through pickling."""
    err = build_api_error(429, body=b"", method="GET", url=URL, headers={"Retry-After": "5"})
    copy = pickle.loads(pickle.dumps(err))
    assert type(copy) is RateLimitError
    assert copy.retry_after == 5.0
    assert copy.status == 429
    assert copy.method == "GET"
    assert copy.url == URL
    assert copy.headers["Retry-After"] == "5"


def test_rate_limit_error_pickles_message() -> None:
    """A pickled RateLimitError reads the same as the original (its hint uses retry_after)."""
    err = build_api_error(429, body=b"", method="GET", url=URL, headers={"Retry-After": "5"})
    copy = pickle.loads(pickle.dumps(err))
    assert str(copy) == str(err)
    assert str(copy).endswith("Retry after 5 seconds")


# --- decode_error_objects ----------------------------------------------------------------


def test_decode_error_objects_empty_and_garbage() -> None:
    """Empty, non-JSON and error-less bodies give None."""
    assert decode_error_objects(b"") is None
    assert decode_error_objects(b"<html>") is None
    assert decode_error_objects(b"{}") is None
    assert decode_error_objects(b'{"errors": null}') is None


def test_decode_error_objects_full() -> None:
    """Every ErrorObject field decodes."""
    body = body_of(
        {
            "errors": [
                {
                    "id": "e1",
                    "status": "422",
                    "code": "invalid_choice",
                    "title": "Invalid",
                    "detail": "Pick another",
                    "source": {"pointer": "/data/x", "parameter": "sort", "header": "X-H"},
                    "links": {"about": "https://docs"},
                    "meta": {"k": [1, 2]},
                }
            ]
        }
    )
    assert decode_error_objects(body) == [
        ErrorObject(
            id="e1",
            status=422,
            code="invalid_choice",
            title="Invalid",
            detail="Pick another",
            source=ErrorSource(pointer="/data/x", parameter="sort", header="X-H"),
            links={"about": "https://docs"},
            meta={"k": [1, 2]},
        )
    ]


# --- properties ----------------------------------------------------------------------------

_STATUSES = st.integers(min_value=300, max_value=599)

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["errors", "status", "code", "detail", "title", "source", "pointer"])
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_STATUSES, st.binary(max_size=300), st.text(max_size=40))
def test_build_api_error_never_raises_on_bytes(status: int, body: bytes, retry: str) -> None:
    """Arbitrary bytes and Retry-After values still yield an APIError of the right status."""
    err = build_api_error(status, body=body, method="GET", url=URL, headers={"Retry-After": retry})
    assert isinstance(err, APIError)
    assert err.status == status
    assert isinstance(str(err), str)


@settings(max_examples=200, deadline=None)
@given(_STATUSES, _JSON)
def test_build_api_error_never_raises_on_json(status: int, doc: Any) -> None:
    """Arbitrary JSON, bare or under "errors", yields an APIError."""
    for value in (doc, {"errors": doc}, {"errors": [doc]}):
        err = build_api_error(status, body=body_of(value), method="GET", url=URL)
        assert isinstance(err, APIError)
        assert err.status == status
        assert all(isinstance(e, ErrorObject) for e in err.errors)
        assert isinstance(str(err), str)


def test_state_configuration_error_is_permanent_and_pickles() -> None:
    """StateConfigurationError: a SendcloudError, not the transient StateUnavailableError."""
    err = sc.StateConfigurationError("Redis wants a password", reason="authentication")
    assert isinstance(err, sc.SendcloudError)
    assert not isinstance(err, sc.StateUnavailableError)
    copy = pickle.loads(pickle.dumps(err))
    assert (type(copy), str(copy), copy.reason) == (
        sc.StateConfigurationError,
        "Redis wants a password",
        "authentication",
    )


def _drawn_tree() -> dict[str, str]:
    """The tree drawn in ``_errors``' docstring: each class name and its parent's."""
    import re

    import sendcloud_async._errors as errors_module

    doc = errors_module.__doc__ or ""
    parents: dict[str, str] = {}
    stack: list[str] = []
    for line in doc.splitlines():
        found = re.match(r"^    ((?:[│ ]   )*)(?:[├└]── )?(\w+Error)\s", line)
        if not found:
            continue
        depth = len(found.group(1)) // 4 + (1 if "──" in line else 0)
        del stack[depth:]
        if stack:
            parents[found.group(2)] = stack[-1]
        stack.append(found.group(2))
    return parents


def _every_sendcloud_error() -> set[type[BaseException]]:
    import importlib
    import pkgutil

    import sendcloud_async

    for module in pkgutil.walk_packages(sendcloud_async.__path__, "sendcloud_async."):
        if module.name.startswith(
            ("sendcloud_async._cli", "sendcloud_async.testing", "sendcloud_async.__main__")
        ):
            continue  # the command line's and the fake's own, not the SDK's
        importlib.import_module(module.name)
    found: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [SendcloudError]
    while todo:
        cls = todo.pop()
        for sub in cls.__subclasses__():
            if sub.__module__.startswith("sendcloud_async") and sub not in found:
                found.add(sub)
                todo.append(sub)
    return found


def test_the_drawn_tree_names_every_error_under_its_real_parent() -> None:
    """Every subclass of SendcloudError is drawn, under the class it derives from."""
    drawn = _drawn_tree()
    classes = {cls.__name__: cls for cls in _every_sendcloud_error()}
    assert sorted(set(classes) - set(drawn)) == []  # none left out
    assert sorted(set(drawn) - set(classes)) == []  # none that does not exist
    for name, parent in drawn.items():
        cls = classes[name]
        assert parent in [base.__name__ for base in cls.__mro__[1:]], (name, parent)
        direct = [b.__name__ for b in cls.__bases__ if issubclass(b, SendcloudError)]
        assert direct == [parent], (name, direct, parent)
