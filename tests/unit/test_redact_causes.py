"""``sanitized_cause``: the one rule for chaining a lower layer's exception under an SDK error."""

from __future__ import annotations

import pickle
import ssl
import warnings

import aiohttp
from aiohttp.client_reqrep import ConnectionKey
from yarl import URL

from sendcloud_async._redact import UnderlyingError, sanitized_cause

PASSWORD = "unit-Proxy-Passw0rd-41d2"


def _key(proxy: URL | None, auth: aiohttp.BasicAuth | None) -> ConnectionKey:
    return ConnectionKey("api.example", 443, True, True, proxy, auth, hash(PASSWORD), None)


def _raised(exc: BaseException) -> BaseException:
    """``exc`` with a traceback and a context, as it reaches the transport."""
    try:
        try:
            raise OSError("inner")
        except OSError:
            raise exc  # noqa: B904  (a context, on purpose)
    except BaseException as caught:
        return caught


def test_a_connection_error_keeps_its_type_without_the_proxy_credentials() -> None:
    """aiohttp's connection errors hold the proxy URL and its BasicAuth in ``args`` and
    ``_conn_key``: the cause keeps its type, host and port, not the credentials."""
    with warnings.catch_warnings():  # aiohttp 3.14 deprecates building a BasicAuth
        warnings.simplefilter("ignore", DeprecationWarning)
        auth = aiohttp.BasicAuth("proxyuser", PASSWORD)  # what aiohttp builds from the URL
    key = _key(URL(f"http://proxyuser:{PASSWORD}@127.0.0.1:3128"), auth)
    certificate = ssl.SSLCertVerificationError(1, "certificate verify failed")
    exc = _raised(aiohttp.ClientConnectorCertificateError(key, certificate))
    assert PASSWORD in repr(exc.args)  # what there is to clean
    cause = sanitized_cause(exc)
    assert cause is exc
    assert isinstance(cause, aiohttp.ClientConnectorCertificateError)
    assert (cause.host, cause.port) == ("api.example", 443)
    assert cause.__traceback__ is None
    assert cause.__context__ is None
    shown = repr(cause) + str(cause) + repr(cause.args) + repr(vars(cause))
    assert PASSWORD not in shown
    assert PASSWORD.encode() not in pickle.dumps(cause)
    assert "127.0.0.1:3128" in repr(cause.args)  # the proxy is still named


def test_a_connection_key_that_cannot_be_cleaned_becomes_an_underlying_error() -> None:
    """A ``_conn_key`` of an unknown shape: nothing of the exception is chained but its type."""

    class OddError(Exception):
        def __init__(self) -> None:
            super().__init__(f"proxy password {PASSWORD}")
            self._conn_key = (f"http://u:{PASSWORD}@proxy",)

    cause = sanitized_cause(_raised(OddError()))
    assert isinstance(cause, UnderlyingError)
    assert str(cause).endswith("OddError")
    assert PASSWORD not in repr(cause)


def test_an_error_without_a_connection_key_is_the_same_object_without_its_traceback() -> None:
    """The rule as before: the exception itself, without traceback or chain."""
    exc = _raised(ValueError("plain"))
    cause = sanitized_cause(exc)
    assert cause is exc
    assert cause.__traceback__ is None
    assert cause.__context__ is None
    assert cause.__suppress_context__
