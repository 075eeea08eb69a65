"""read_authorization: the one reading of an Authorization header in FakeSendcloud."""

from __future__ import annotations

import base64

import pytest

from sendcloud_async.testing._request import Authorization, read_authorization


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


def test_basic_credentials_are_decoded() -> None:
    """Basic: the user:password bytes, and the pair split at the first colon."""
    read = read_authorization(basic(b"key:se:cret"))
    assert (read.scheme, read.known_scheme, read.present) == ("basic", "basic", True)
    assert read.basic == b"key:se:cret"
    assert read.basic_pair == (b"key", b"se:cret")
    assert read.bearer is None


def test_scheme_case_and_spaces_do_not_matter() -> None:
    """The scheme is matched in any case; the credentials are stripped."""
    token = base64.b64encode(b"k:s").decode()
    assert read_authorization(f"bAsIc   {token}  ").basic == b"k:s"
    assert read_authorization("BEARER  tok ").bearer == "tok"


@pytest.mark.parametrize("header", ["Basic not*base64", "Basic YQ", "Basic", "Basic ===="])
def test_basic_that_is_not_base64_has_no_credentials(header: str) -> None:
    """Invalid base64 (or none at all) gives neither bytes nor a pair."""
    read = read_authorization(header)
    assert read.known_scheme == "basic"
    if header == "Basic":  # nothing after the scheme: empty credentials
        assert read.basic == b""
    else:
        assert read.basic is None
        assert read.basic_pair is None


def test_basic_without_a_colon_has_no_password() -> None:
    """A user id alone (``client_id`` without a secret) is told apart from an empty one."""
    assert read_authorization(basic(b"client")).basic_pair == (b"client", None)
    assert read_authorization(basic(b"client:")).basic_pair == (b"client", b"")


@pytest.mark.parametrize("header", ["Bearer", "Bearer ", "Bearer    ", "Basic dG9r"])
def test_an_empty_or_other_bearer_is_no_token(header: str) -> None:
    """Only ``Bearer <something>`` carries a token."""
    assert read_authorization(header).bearer is None


@pytest.mark.parametrize("header", [None, ""])
def test_no_header(header: str | None) -> None:
    """No header (or an empty one): not present, no scheme."""
    read = read_authorization(header)
    assert read == Authorization("", "", present=False)
    assert read.known_scheme is None
    assert read.basic is None
    assert read.bearer is None


def test_another_scheme_is_present_but_unknown() -> None:
    """Digest, or a header without a scheme word, is a header nonetheless."""
    assert read_authorization("Digest abc").known_scheme is None
    assert read_authorization(" abc").present


def test_repr_hides_the_credentials() -> None:
    """The credentials are a secret: repr shows the scheme only."""
    text = repr(read_authorization("Bearer s3cr3t-token"))
    assert "s3cr3t" not in text
    assert "bearer" in text
