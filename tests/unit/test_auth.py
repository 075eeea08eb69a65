"""Pure tests for ``sendcloud_async._auth``: Basic credentials and secret masking."""

from __future__ import annotations

import base64
import pickle
from typing import Any

import pytest

import sendcloud_async as sc
from sendcloud_async._auth import Auth, BasicAuth, Secret, mask
from sendcloud_async._errors import InvalidInputError
from sendcloud_async._flows import StaticFlow

PUBLIC = "pk_live_0123456789abcdef"
SECRET = "sk_live_SUPERSECRET_fedcba9876543210"


async def header_of(auth: BasicAuth) -> str:
    """The Authorization value ``auth``'s flow produces (Basic auth ignores the session)."""
    value = await StaticFlow(auth).authorization(None, None, None)  # type: ignore[arg-type]
    return value.get_secret_value()


def test_basic_auth_is_public() -> None:
    """sc.BasicAuth is the _auth class."""
    assert sc.BasicAuth is BasicAuth
    assert issubclass(BasicAuth, Auth)


async def test_basic_auth_header_value() -> None:
    """The header is 'Basic ' + base64('pk:sk')."""
    auth = BasicAuth("pk", "sk")
    value = await header_of(auth)
    assert value == "Basic " + base64.b64encode(b"pk:sk").decode()
    assert value == "Basic cGs6c2s="


async def test_basic_auth_header_non_ascii_and_colon_in_secret() -> None:
    """A ':' in the secret is allowed; non-ASCII keys are UTF-8 encoded."""
    auth = BasicAuth("ключ", "a:b")
    value = await header_of(auth)
    assert base64.b64decode(value.removeprefix("Basic ")) == "ключ:a:b".encode()


async def test_basic_auth_header_stable() -> None:
    """The header is the same on every call and decodes to 'pk:sk'."""
    auth = BasicAuth(PUBLIC, SECRET)
    first = await header_of(auth)
    assert first == await header_of(auth)
    assert base64.b64decode(first.removeprefix("Basic ")).decode() == f"{PUBLIC}:{SECRET}"


async def test_basic_auth_not_refreshable() -> None:
    """Static credentials are never worth a replay after 401."""
    auth = BasicAuth(PUBLIC, SECRET)
    flow = StaticFlow(auth)
    assert flow.refreshable is False
    assert await flow.invalidate(auth.header) is False


def test_basic_auth_repr_hides_secret_and_masks_public_key() -> None:
    """repr shows neither the secret nor the full public key nor the header."""
    auth = BasicAuth(PUBLIC, SECRET)
    text = repr(auth)
    assert text == "BasicAuth(public_key='pk_l…', secret_key=<redacted>)"
    assert SECRET not in text
    assert PUBLIC not in text
    assert base64.b64encode(f"{PUBLIC}:{SECRET}".encode()).decode() not in text
    assert SECRET not in str(auth)
    assert SECRET not in f"{auth}"
    assert SECRET not in repr([auth, {"a": auth}])


def test_basic_auth_public_key_property() -> None:
    """The public key is available as an attribute."""
    assert BasicAuth(PUBLIC, SECRET).public_key == PUBLIC


def test_basic_auth_equality() -> None:
    """Equal credentials compare and hash equal; different ones do not."""
    a, b, c = BasicAuth("pk", "sk"), BasicAuth("pk", "sk"), BasicAuth("pk", "other")
    assert a == b
    assert hash(a) == hash(b)
    assert a != c
    assert a != "pk:sk"


def test_basic_auth_has_no_instance_dict() -> None:
    """__slots__ keep credentials out of a __dict__ dump."""
    assert not hasattr(BasicAuth(PUBLIC, SECRET), "__dict__")


@pytest.mark.parametrize(
    ("public", "secret", "message"),
    [
        ("", "sk", "public_key"),
        ("pk", "", "secret_key"),
        (None, "sk", "public_key"),
        ("pk", None, "secret_key"),
        (123, "sk", "public_key"),
        ("pk", b"sk", "secret_key"),
        ("p:k", "sk", "cannot contain ':'"),
    ],
)
def test_basic_auth_invalid(public: Any, secret: Any, message: str) -> None:
    """Empty, non-str, or ':'-containing public keys raise InvalidInputError."""
    with pytest.raises(InvalidInputError, match=message) as info:
        BasicAuth(public, secret)
    assert isinstance(info.value, ValueError)
    if isinstance(secret, str) and secret:
        assert secret not in str(info.value)


# --- Secret --------------------------------------------------------------------------------


def test_secret_hides_value_everywhere() -> None:
    """repr, str, format and f-strings never show the value."""
    s = Secret("hunter2")
    assert repr(s) == "Secret('**********')"
    assert str(s) == "Secret('**********')"
    assert f"{s}" == "Secret('**********')"
    assert f"{s!r}" == "Secret('**********')"
    assert f"{s:>30}" == "Secret('**********')"
    assert format(s, "") == "Secret('**********')"
    assert "{}".format(s) == "Secret('**********')"  # noqa: UP032
    assert "%s" % s == "Secret('**********')"  # noqa: UP031
    assert "hunter2" not in repr([s, (s,), {"k": s}])


def test_secret_value_available_explicitly() -> None:
    """get_secret_value returns the real value."""
    assert Secret("hunter2").get_secret_value() == "hunter2"


def test_secret_equality_and_hash() -> None:
    """Secrets compare by value in constant time and hash consistently."""
    assert Secret("a") == Secret("a")
    assert hash(Secret("a")) == hash(Secret("a"))
    assert Secret("a") != Secret("b")
    assert Secret("a") != "a"


def test_secret_pickles() -> None:
    """A Secret survives pickling with its value."""
    copy = pickle.loads(pickle.dumps(Secret("hunter2")))
    assert copy.get_secret_value() == "hunter2"


def test_secret_has_no_dict() -> None:
    """__slots__: no __dict__ that vars() could dump."""
    assert not hasattr(Secret("x"), "__dict__")


@pytest.mark.parametrize(
    ("value", "expected"), [("abcdefgh", "abcd…"), ("abcd", "…"), ("", "…"), ("abcde", "abcd…")]
)
def test_mask(value: str, expected: str) -> None:
    """mask keeps the first four characters of values longer than four."""
    assert mask(value) == expected
