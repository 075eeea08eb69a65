"""Pure tests for client configuration: base URL, timeout and constructor checks."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from yarl import URL

import sendcloud_async as sc
from sendcloud_async._client import (
    DEFAULT_BASE_URL,
    normalize_base_url,
    normalize_timeout,
)
from sendcloud_async._errors import InvalidInputError
from sendcloud_async._validate import is_loopback

AUTH = sc.BasicAuth("public", "secret-value-xyz")


# --- is_loopback -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.0.0.2", "127.255.255.254", "localhost", "LOCALHOST", "::1", "[::1]"]
)
def test_is_loopback_true(host: str) -> None:
    """localhost, 127.0.0.0/8 and ::1 are loopback."""
    assert is_loopback(host) is True


@pytest.mark.parametrize(
    "host",
    [
        None,
        "",
        "example.com",
        "10.0.0.1",
        "0.0.0.0",
        "::",
        "localhost.evil.com",
        "127.0.0.1.nip.io",
    ],
)
def test_is_loopback_false(host: str | None) -> None:
    """Other hosts (and look-alikes) are not loopback."""
    assert is_loopback(host) is False


# --- normalize_base_url ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("https://panel.sendcloud.sc/api/v3", "https://panel.sendcloud.sc/api/v3"),
        ("https://panel.sendcloud.sc/api/v3/", "https://panel.sendcloud.sc/api/v3"),
        ("https://panel.sendcloud.sc/api/v3//", "https://panel.sendcloud.sc/api/v3"),
        ("https://example.com/", "https://example.com"),
        ("https://example.com", "https://example.com"),
        ("https://example.com:8443/x/", "https://example.com:8443/x"),
        ("HTTPS://Example.COM/api/", "https://example.com/api"),
        ("http://127.0.0.1:8080/api/v3/", "http://127.0.0.1:8080/api/v3"),
        ("http://127.0.0.5/api", "http://127.0.0.5/api"),
        ("http://localhost:1234/api/v3", "http://localhost:1234/api/v3"),
        ("http://[::1]:9000/api/v3/", "http://[::1]:9000/api/v3"),
        ("https://10.1.2.3/api", "https://10.1.2.3/api"),
    ],
)
def test_normalize_base_url_ok(value: str, expected: str) -> None:
    """Valid URLs lose a trailing slash; http is accepted for loopback hosts only."""
    url = normalize_base_url(value)
    assert isinstance(url, URL)
    assert str(url) == expected


def test_normalize_base_url_accepts_yarl_url() -> None:
    """A yarl.URL is accepted and normalised the same way."""
    assert str(normalize_base_url(URL("https://h.example/api/"))) == "https://h.example/api"


def test_normalize_base_url_unchanged_object_when_already_normal() -> None:
    """An already normal yarl.URL comes back equal."""
    url = URL("https://h.example/api")
    assert normalize_base_url(url) == url


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://example.com/api", "must use https"),
        ("http://10.0.0.1/api", "must use https"),
        ("http://0.0.0.0:8080/api", "must use https"),
        ("http://localhost.evil.com/api", "must use https"),
        ("https://user:pass@example.com/api", "must not contain credentials"),
        ("https://user@example.com/api", "must not contain credentials"),
        ("http://user:pass@127.0.0.1/api", "must not contain credentials"),
        ("https://example.com/api?x=1", "must not have a query or fragment"),
        ("https://example.com/api#frag", "must not have a query or fragment"),
        ("/api/v3", "absolute http"),
        ("example.com/api/v3", "absolute http"),
        ("ftp://example.com/api", "absolute http"),
        ("ws://127.0.0.1/api", "absolute http"),
        ("https:///api", "absolute http"),
        ("", "absolute http"),
    ],
)
def test_normalize_base_url_rejected(value: str, message: str) -> None:
    """Plain http off-loopback, user info, query, fragment, relative and other schemes fail."""
    with pytest.raises(InvalidInputError, match=message) as info:
        normalize_base_url(value)
    assert isinstance(info.value, ValueError)
    assert "pass" not in str(info.value).replace("pass them", "")


@pytest.mark.parametrize(
    "value",
    [
        "ftp://user:hunter2@example.com/api",
        "htps://user:hunter2@example.com/api",
        "//user:hunter2@example.com/api",
        "http://user:hunter2@example.com/api",
        "https://user:hunter2@example.com/api?x=1",
    ],
)
def test_normalize_base_url_error_never_echoes_credentials(value: str) -> None:
    """Whatever is wrong with a URL, the error message never repeats its password."""
    with pytest.raises(InvalidInputError) as info:
        normalize_base_url(value)
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize("value", [None, 123, b"https://example.com"])
def test_normalize_base_url_wrong_type(value: Any) -> None:
    """Only str and yarl.URL are accepted."""
    with pytest.raises(InvalidInputError, match=r"must be a str or yarl\.URL"):
        normalize_base_url(value)


def test_normalize_base_url_custom_name() -> None:
    """The argument name in messages can be chosen."""
    with pytest.raises(InvalidInputError, match=r"^token_url must use https"):
        normalize_base_url("http://example.com/token", name="token_url")


def test_default_base_url() -> None:
    """The default base URL is the production API and already normal."""
    assert DEFAULT_BASE_URL == "https://panel.sendcloud.sc/api/v3"
    assert str(normalize_base_url(DEFAULT_BASE_URL)) == DEFAULT_BASE_URL


# --- normalize_timeout -------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "total"), [(30, 30.0), (2.5, 2.5), (0.001, 0.001)])
def test_normalize_timeout_number(value: float, total: float) -> None:
    """A number of seconds becomes ClientTimeout(total=seconds)."""
    timeout = normalize_timeout(value)
    assert timeout == aiohttp.ClientTimeout(total=total)
    assert isinstance(timeout.total, float)


def test_normalize_timeout_passthrough() -> None:
    """A ClientTimeout is used as given (the same object)."""
    given = aiohttp.ClientTimeout(total=None, connect=3, sock_read=10)
    assert normalize_timeout(given) is given


@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5, True, False, "3", None, float("nan")])
def test_normalize_timeout_rejected(value: Any) -> None:
    """Zero, negatives, bools, strings, None and NaN are rejected."""
    with pytest.raises(InvalidInputError, match="timeout must be a positive number"):
        normalize_timeout(value)


def test_normalize_timeout_infinity_is_not_passed_to_aiohttp() -> None:
    """An infinite timeout is rejected or means "no total timeout", never total=inf."""
    # aiohttp computes ceil(loop.time() + total) per request: total=inf makes every
    # request raise a bare OverflowError.
    try:
        timeout = normalize_timeout(float("inf"))
    except InvalidInputError:
        return
    assert timeout.total is None


# --- SendcloudClient constructor --------------------------------------------------------------


def test_client_constructs_without_loop() -> None:
    """A client can be built outside a running loop; its config is normalised."""
    client = sc.SendcloudClient(auth=AUTH, base_url="http://127.0.0.1:8080/api/v3/", timeout=5)
    assert str(client.base_url) == "http://127.0.0.1:8080/api/v3"
    assert client.closed is False
    assert client._transport.config.timeout == aiohttp.ClientTimeout(total=5.0)
    assert client._transport.config.retry.max_retries == 3


def test_client_defaults() -> None:
    """Defaults: production base URL, 30 s total timeout, three retries."""
    client = sc.SendcloudClient(auth=AUTH)
    assert str(client.base_url) == DEFAULT_BASE_URL
    assert client._transport.config.timeout == aiohttp.ClientTimeout(total=30.0)
    assert client._transport.config.retry.max_retries == 3


def test_client_max_retries_zero() -> None:
    """max_retries=0 is allowed and reaches the retry policy."""
    client = sc.SendcloudClient(auth=AUTH, max_retries=0)
    assert client._transport.config.retry.max_retries == 0


def test_client_repr_hides_secret() -> None:
    """The client's repr names the base URL but never the secret key."""
    text = repr(sc.SendcloudClient(auth=AUTH))
    assert "secret-value-xyz" not in text
    assert "https://panel.sendcloud.sc/api/v3" in text


@pytest.mark.parametrize("auth", [None, "public:secret", ("public", "secret"), {"public_key": "a"}])
def test_client_rejects_bad_auth(auth: Any) -> None:
    """auth must be one of the SDK's credential strategies."""
    with pytest.raises(InvalidInputError, match=r"auth must be a sendcloud_async\.BasicAuth"):
        sc.SendcloudClient(auth=auth)


@pytest.mark.parametrize("value", [-1, True, False, "3", 1.5, None])
def test_client_rejects_bad_max_retries(value: Any) -> None:
    """max_retries must be an int of 0 or more (not a bool, str or float)."""
    with pytest.raises(InvalidInputError, match="max_retries must be an int of 0 or more"):
        sc.SendcloudClient(auth=AUTH, max_retries=value)


@pytest.mark.parametrize("value", ["session", object(), 1])
def test_client_rejects_bad_session(value: Any) -> None:
    """session must be an aiohttp.ClientSession."""
    with pytest.raises(InvalidInputError, match=r"session must be an aiohttp\.ClientSession"):
        sc.SendcloudClient(auth=AUTH, session=value)


def test_client_rejects_bad_base_url() -> None:
    """The constructor normalises base_url and so rejects plain http off loopback."""
    with pytest.raises(InvalidInputError, match="must use https"):
        sc.SendcloudClient(auth=AUTH, base_url="http://panel.sendcloud.sc/api/v3")


def test_client_rejects_bad_timeout() -> None:
    """The constructor rejects a zero timeout."""
    with pytest.raises(InvalidInputError, match="timeout must be a positive number"):
        sc.SendcloudClient(auth=AUTH, timeout=0)


async def test_client_accepts_borrowed_session() -> None:
    """A borrowed session is accepted (and left open by the constructor)."""
    session = aiohttp.ClientSession()
    try:
        client = sc.SendcloudClient(auth=AUTH, session=session)
        assert client.closed is False
        assert session.closed is False
    finally:
        await session.close()
