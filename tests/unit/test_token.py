"""The token logic without I/O: the request authlib builds, and responses read into tokens."""

from __future__ import annotations

import base64

import msgspec
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

import sendcloud_async as sc
from sendcloud_async._token import (
    MAX_LIFETIME,
    Token,
    build_token_request,
    lifetime_of,
    read_token_response,
)

CREDS = sc.OAuth2ClientCredentials(
    "client-1", "s3cret", token_url="https://account.sendcloud.com/oauth2/token/", leeway=60
)
HEADERS: CIMultiDictProxy[str] = CIMultiDictProxy(CIMultiDict({"Content-Type": "application/json"}))


def read(status: int, body: bytes | object, *, sent_at: float = 1000.0) -> Token:
    """``read_token_response`` of a recorded answer (dicts are JSON-encoded)."""
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return read_token_response(status, HEADERS, raw, sent_at=sent_at, credentials=CREDS)


def test_the_request_is_a_client_credentials_grant_with_basic_client_auth() -> None:
    """authlib builds the form body and the client_secret_basic header, kept wrapped."""
    request = build_token_request(CREDS)
    assert str(request.url) == "https://account.sendcloud.com/oauth2/token/"
    assert request.body == b"grant_type=client_credentials&scope=api"
    assert "Authorization" not in request.headers
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    value = request.authorization.get_secret_value()
    assert base64.b64decode(value.removeprefix("Basic ")) == b"client-1:s3cret"
    assert "s3cret" not in repr(request)
    assert value not in repr(request)


def test_a_recorded_token_response_becomes_a_token() -> None:
    """Lifetime counts from when the request was sent; refresh comes leeway seconds early."""
    token = read(200, {"access_token": "tok-1", "token_type": "Bearer", "expires_in": 3600})
    assert token.authorization.get_secret_value() == "Bearer tok-1"
    assert token.lifetime == 3600
    assert token.expires_at == 4600.0
    assert token.refresh_at == 4540.0
    assert "tok-1" not in repr(token)


def test_a_short_lifetime_caps_the_leeway_at_half() -> None:
    """With expires_in=10 and leeway 60 the token is replaced after 5 s, not at once."""
    token = read(200, {"access_token": "t", "expires_in": 10})
    assert token.refresh_at == 1005.0


@pytest.mark.parametrize(
    ("expires_in", "lifetime"),
    [
        (None, 300.0),
        (0, 300.0),
        (-5, 300.0),
        ("inf", 300.0),
        ("nan", 300.0),
        ("-inf", 300.0),
        ("120", 120.0),
        (1e300, MAX_LIFETIME),
    ],
)
def test_expires_in_is_read_leniently(expires_in: object, lifetime: float) -> None:
    """Absent, non-finite or non-positive expires_in means the default; huge ones are capped."""
    body: dict[str, object] = {"access_token": "t"}
    if expires_in is not None:
        body["expires_in"] = expires_in
    token = read(200, body)
    assert token.lifetime == lifetime


def test_lifetime_of_is_the_one_rule() -> None:
    """lifetime_of: the same decisions as a pure function."""
    assert lifetime_of(float("inf"), 300.0) == 300.0
    assert lifetime_of(float("nan"), 300.0) == 300.0
    assert lifetime_of(60.0, 300.0) == 60.0


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"<html><body>Log in</body></html>",
        b"",
        {},
        {"access_token": ""},
        {"access_token": 5},
        {"access_token": None},
        {"access_token": "t", "token_type": "mac"},
        {"access_token": "a\r\nX-Injected: 1"},
        {"access_token": "a\x00b"},
        {"access_token": "a b"},
        b"[" * 50_000 + b"]" * 50_000,
        b'{"access_token": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    ],
    ids=lambda b: repr(b)[:30],
)
def test_a_200_without_a_usable_token_is_a_decode_error(body: object) -> None:
    """Anything but a visible-ASCII bearer token is DecodeError (never a bare exception)."""
    with pytest.raises(sc.DecodeError, match="token"):
        read(200, body)


@pytest.mark.parametrize("status", [400, 401])
def test_an_rfc6749_rejection_is_an_authentication_error(status: int) -> None:
    """400/401 with error/error_description: AuthenticationError quoting both."""
    with pytest.raises(sc.AuthenticationError, match="invalid_client") as info:
        read(status, {"error": "invalid_client", "error_description": "bad secret"})
    assert info.value.status == status
    assert info.value.detail == "bad secret"


def test_a_deeply_nested_rejection_is_still_an_authentication_error() -> None:
    """A 401 whose body is nested 2,000 deep is still the status's own class."""
    with pytest.raises(sc.AuthenticationError):
        read(401, b"[" * 50_000 + b"]" * 50_000)


@pytest.mark.parametrize(
    ("status", "cls"),
    [(302, sc.APIError), (503, sc.ServerError), (429, sc.RateLimitError), (199, sc.APIError)],
)
def test_other_statuses_are_the_api_error_of_their_status(
    status: int, cls: type[sc.APIError]
) -> None:
    """A 3xx is never success; 5xx and 429 are their own classes."""
    with pytest.raises(cls) as info:
        read(status, b"")
    assert info.value.status == status
