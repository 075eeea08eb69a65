"""Security properties as tests: no secret in logs, no credential to another origin, TLS on."""

from __future__ import annotations

import ast
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async._auth import Secret
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse
from tests._log_secrets import DEFAULT_SECRETS, SecretScanner
from tests._tls import self_signed_server_context

PACKAGE = Path(sc.__file__).resolve().parent
SDK_LOGGER = logging.getLogger("sendcloud_async")


# -- a second server that records whatever reaches it ------------------------------------------


@dataclass
class Recorder:
    """A loopback server on another origin; ``received`` holds every request's headers."""

    origin: str = ""
    received: list[dict[str, str]] = field(default_factory=list)


@pytest.fixture(params=["127.0.0.2", "127.0.0.1"], ids=["other-host", "other-port"])
async def elsewhere(request: pytest.FixtureRequest) -> AsyncIterator[Recorder]:
    """Another origin on loopback: 127.0.0.2, or the fake's host on another port."""
    recorder = Recorder()

    async def record(req: web.Request) -> web.Response:
        recorder.received.append({**req.headers, "_target": f"{req.method} {req.path_qs}"})
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, request.param, 0).start()
    recorder.origin = f"http://{request.param}:{runner.addresses[0][1]}"
    try:
        yield recorder
    finally:
        await runner.cleanup()


SESSION_HEADERS = {"X-Partner-Token": "partner-token-1234567"}


async def clients(fake: FakeSendcloud) -> AsyncIterator[sc.SendcloudClient]:
    """A Basic-auth client, and an OAuth2 client on a borrowed session with a custom header."""
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, max_retries=0
    ) as client:
        yield client
    async with (
        aiohttp.ClientSession(headers=SESSION_HEADERS) as session,
        sc.SendcloudClient(
            auth=fake.oauth2_credentials, base_url=fake.base_url, session=session, max_retries=0
        ) as client,
    ):
        yield client


def assert_nothing_reached(recorder: Recorder) -> None:
    """No request at all reached the other origin, so neither did any credential."""
    assert recorder.received == []


# -- credentials never go to another origin -------------------------------------------------------


async def test_foreign_next_link_sends_nothing_there(
    fake: FakeSendcloud, elsewhere: Recorder
) -> None:
    """A Link to another origin raises; the other server receives no request at all."""
    link = f'<{elsewhere.origin}/api/v3/integrations/logs?cursor=2023-03-01T00:00:00Z>; rel="next"'
    async for client in clients(fake):
        page = ScriptedResponse(body={"data": []}, headers={"Link": link})
        fake.script("GET", "/integrations/logs", page)
        with pytest.raises(sc.SendcloudError, match="another origin"):
            async for _ in client.logs.pages():
                pass
    assert_nothing_reached(elsewhere)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_cross_origin_redirect_is_refused(
    fake: FakeSendcloud, elsewhere: Recorder, status: int
) -> None:
    """A redirect to another origin is not followed: no Authorization, no session header,
    no body (307/308 would resend it), and no foreign answer taken for the API's."""
    fake.add_integration(id=1)
    location = {"Location": f"{elsewhere.origin}/api/v3/somewhere"}
    async for client in clients(fake):
        fake.script("GET", "/integrations", ScriptedResponse(status, headers=location))
        with pytest.raises(sc.SendcloudError, match="redirect to another origin"):
            await client.integrations.list()
        fake.script("POST", "/integrations/1/logs", ScriptedResponse(status, headers=location))
        with pytest.raises(sc.SendcloudError, match="redirect to another origin"):
            await client.logs.create(1, base_url="https://shop.example", exception="private")
    assert_nothing_reached(elsewhere)


async def test_same_origin_redirect_still_carries_credentials(fake: FakeSendcloud) -> None:
    """A redirect within the API's origin is followed, with the credentials re-applied."""
    fake.add_integration(id=1)
    fake.script(
        "GET",
        "/integrations",
        ScriptedResponse(307, headers={"Location": fake.base_url + "/integrations/1"}),
    )
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
        with pytest.raises(sc.DecodeError):  # the target answers with one integration
            await client.integrations.list()
    assert [(r.path, r.auth_scheme) for r in fake.requests] == [
        ("/integrations", "basic"),
        ("/integrations/1", "basic"),
    ]


# -- TLS --------------------------------------------------------------------------------


async def test_owned_session_verifies_certificates(fake: FakeSendcloud) -> None:
    """The session the client creates uses a connector with default (verifying) TLS."""
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
        connector = client._transport.session().connector
        assert isinstance(connector, aiohttp.TCPConnector)
        assert connector._ssl is True  # aiohttp's default: verify with the system CAs


async def test_untrusted_certificate_is_refused_before_any_credential(tmp_path: Path) -> None:
    """An https server with a self-signed certificate: the handshake fails, nothing is sent."""
    handled: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        handled.append(request.headers.get("Authorization", ""))
        return web.json_response({"data": []})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(
        runner, "127.0.0.1", 0, ssl_context=self_signed_server_context(tmp_path)
    ).start()
    base_url = f"https://127.0.0.1:{runner.addresses[0][1]}/api/v3"
    try:
        auth = sc.BasicAuth("fake-public-key", "fake-secret-key")
        async with sc.SendcloudClient(auth=auth, base_url=base_url, max_retries=0) as client:
            with pytest.raises(sc.APIConnectionError) as info:
                await client.integrations.list()
        assert isinstance(info.value.__cause__, aiohttp.ClientConnectorCertificateError)
        assert handled == []
    finally:
        await runner.cleanup()


def _sdk_sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "testing" not in p.relative_to(PACKAGE).parts)


def test_no_code_path_turns_tls_verification_off() -> None:
    """No module of the SDK passes ssl=False / verify_ssl, or builds an unverified context."""
    offences: list[str] = []
    for path in _sdk_sources():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            where = f"{path.relative_to(PACKAGE)}:{getattr(node, 'lineno', '?')}"
            if isinstance(node, ast.keyword) and node.arg in ("ssl", "verify_ssl", "ssl_context"):
                offences.append(f"{where}: passes {node.arg}=")
            if isinstance(node, ast.Attribute) and node.attr in (
                "CERT_NONE",
                "_create_unverified_context",
                "check_hostname",
                "verify_mode",
            ):
                offences.append(f"{where}: uses {node.attr}")
    assert offences == []
    assert len(_sdk_sources()) > 10


# -- plain http only on loopback -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://account.sendcloud.com/oauth2/token/",
        "http://10.0.0.1/oauth2/token/",
        "http://127.0.0.1.evil.example/oauth2/token/",
        "http://localhost.evil.example/token/",
        "ftp://account.sendcloud.com/token/",
    ],
)
def test_token_url_must_be_https_off_loopback(url: str) -> None:
    """A token URL that would carry the client secret unencrypted over a network is refused."""
    with pytest.raises(sc.InvalidInputError, match="https"):
        sc.OAuth2ClientCredentials("id", "client-secret", token_url=url)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/oauth2/token/",
        "http://127.0.0.2/token/",
        "http://localhost/token/",
        "http://[::1]:9/token/",
        "https://account.sendcloud.com/oauth2/token/",
    ],
)
def test_token_url_may_be_plain_http_on_loopback(url: str) -> None:
    """Loopback (tests, FakeSendcloud) may use plain http; https is always fine."""
    assert sc.OAuth2ClientCredentials("id", "client-secret", token_url=url).token_url == url


def test_default_token_url_is_https() -> None:
    """The default token URL is Sendcloud's, over https."""
    auth = sc.OAuth2ClientCredentials("id", "client-secret")
    assert auth.token_url == "https://account.sendcloud.com/oauth2/token/"


# -- no secret in any log record ------------------------------------------------------------


async def test_the_suite_scans_every_sdk_debug_record(
    fake: FakeSendcloud, log_secrets: SecretScanner
) -> None:
    """The SDK logs at DEBUG during a real exchange, and every record is scanned."""
    async with sc.SendcloudClient(auth=fake.oauth2_credentials, base_url=fake.base_url) as client:
        await client.integrations.list()
    assert SDK_LOGGER.isEnabledFor(logging.DEBUG)
    assert log_secrets.records >= 2  # the token request and the API request
    assert fake.issued_tokens
    assert set(fake.issued_tokens) <= log_secrets.secrets()
    assert log_secrets.secrets() >= DEFAULT_SECRETS
    assert log_secrets.findings == []


async def test_a_secret_logged_on_purpose_fails_the_test(
    fake: FakeSendcloud, log_secrets: SecretScanner
) -> None:
    """Redacted forms pass; the raw secret, in a message or a traceback, is caught."""
    auth = fake.basic_auth
    header = auth.header.get_secret_value()
    # The redaction path: what the SDK's own reprs and errors show is safe to log.
    SDK_LOGGER.debug("auth %r", auth)
    SDK_LOGGER.debug("secret %s", Secret("fake-secret-key"))
    SDK_LOGGER.debug("oauth %r", fake.oauth2_credentials)
    assert log_secrets.findings == []
    # Bypassing it: the raw Authorization value, and an exception quoting the secret.
    SDK_LOGGER.debug("sending Authorization: %s", header)
    try:
        raise RuntimeError(f"bad key {fake.client_secret}")
    except RuntimeError:
        SDK_LOGGER.warning("token request failed", exc_info=True)
    assert len(log_secrets.findings) == 2
    assert "sending Authorization: Basic <SECRET>" in log_secrets.findings[0]
    assert "RuntimeError: bad key <SECRET>" in log_secrets.findings[1]
    with pytest.raises(AssertionError, match=r"2 log record\(s\) hold a secret"):
        log_secrets.raise_for_findings()
    log_secrets.findings.clear()  # this test logged them on purpose


def test_the_scanner_catches_records_of_non_propagating_sdk_logger(
    log_secrets: SecretScanner,
) -> None:
    """The CLI stops the SDK's logger propagating while it runs: records are still seen."""
    SDK_LOGGER.propagate = False
    try:
        SDK_LOGGER.debug("secret is %s", "fake-secret-key")
    finally:
        SDK_LOGGER.propagate = True
    logging.getLogger("sendcloud_async.webhooks").error("webhook key fake-webhook-secret")
    assert log_secrets.findings == [
        "sendcloud_async DEBUG secret is <SECRET>",
        "sendcloud_async.webhooks ERROR webhook key <SECRET>",
    ]
    log_secrets.findings.clear()  # logged on purpose
