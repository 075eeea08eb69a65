"""A storage URL in a message: never a secret, whatever the URL holds (a ``/`` in a password,
a query, a host that is not one), and the storage's secrets masked in its errors."""

from __future__ import annotations

import os
import traceback
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
from aiohttp import web

from sendcloud_async._errors import ExportError, ExportInputError
from sendcloud_async._parts import PartsSink, _store, open_store
from sendcloud_async._parts._errors import clean
from sendcloud_async.testing import FakeSendcloud

from .test_cli import assert_one_error_line, fake_env, run

#: An AWS secret key with ``/`` in it, as about half of them are.
SLASHED = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SLASHED_URL = f"s3://AKIAIOSFODNN7EXAMPLE:{SLASHED}@my-bucket/exports"
CREDENTIALS = (
    "cannot write parts to s3://my-bucket/exports: credentials in the URL are not accepted "
    "(it holds an '@'); the storage's own environment gives them (for S3: AWS_ACCESS_KEY_ID, "
    "AWS_SECRET_ACCESS_KEY)"
)


def _pieces(secret: str) -> list[str]:
    """``secret`` and each part of it between ``/`` (none may be shown)."""
    return [secret, *[p for p in secret.split("/") if len(p) >= 6]]


def _said(error: BaseException) -> list[str]:
    """Everything an exception says: str, repr, args, and its chain as a traceback (or an
    error tracker) shows it."""
    said = [str(error), repr(error), repr(error.args)]
    said += ["".join(traceback.format_exception(error))]
    cause = error.__cause__ or (None if error.__suppress_context__ else error.__context__)
    if cause is not None:
        said += _said(cause)
    return said


@pytest.mark.parametrize("make", [open_store, PartsSink])
def test_a_secret_with_a_slash_is_refused_and_never_shown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: object
) -> None:
    """``urlsplit`` ends the host at the first ``/``: the ``@`` after it still refuses."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExportInputError) as caught:
        make(SLASHED_URL)  # type: ignore[operator]
    assert str(caught.value) == CREDENTIALS
    for said in _said(caught.value):
        for piece in [*_pieces(SLASHED), "AKIAIOSFODNN7EXAMPLE"]:
            assert piece not in said
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "message", "secret"),
    [
        (
            "s3://key:abc?Pass-Word-1@bucket/x",
            "cannot write parts to s3://**********: a storage URL takes no query or fragment",
            "abc",
        ),
        (
            "gs://key:Se/cr/et-Value@bucket/x",
            "cannot write parts to gs://bucket/x: credentials in the URL are not accepted (it "
            "holds an '@'); the storage's own environment gives them (for GCS: "
            "GOOGLE_SERVICE_ACCOUNT)",
            "cr/et-Value",
        ),
        (
            "abfss://container@account.dfs.core.windows.net/exports",
            "cannot write parts to abfss://account.dfs.core.windows.net/exports: credentials in "
            "the URL are not accepted (it holds an '@'); the storage's own environment gives "
            "them (for Azure: abfss://CONTAINER/PREFIX and AZURE_STORAGE_ACCOUNT_NAME)",
            "container@",
        ),
        (
            "s3://bucket:9000/x",
            "cannot write parts to s3://bucket:9000/x: a s3:// URL names a bucket "
            "(s3://BUCKET/PREFIX; a bucket name holds letters, digits, '.', '-' and '_' only)",
            "never-there",
        ),
        (
            "s3://[bucket:Secret-Value/x",
            "cannot write parts to s3://**********: not a valid URL",
            "Secret-Value",
        ),
        (
            "file://user:Pw-Secret-9@localhost/x",
            "cannot write parts to file://localhost/x: credentials in the URL are not "
            "accepted (it holds an '@'); the storage's own environment gives them",
            "Pw-Secret-9",
        ),
    ],
)
def test_a_url_that_is_no_storage_url_is_refused_without_a_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, url: str, message: str, secret: str
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExportInputError) as caught:
        open_store(url)
    assert str(caught.value) == message
    for said in _said(caught.value):
        assert secret not in said
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (SLASHED_URL, "s3://my-bucket/exports"),
        ("s3://bucket/prefix", "s3://bucket/prefix"),
        ("az://container/exports?sv=2024&sig=SECRET%3D", "az://container/exports"),
        ("https://user:pw@example.com:8443/logs.jsonl#f", "https://example.com:8443/logs.jsonl"),
        ("s3://key:a/b?c@bucket", "s3://**********"),
        ("file:///tmp/x.jsonl", "file:///tmp/x.jsonl"),
        ("/tmp/plain path", "/tmp/plain path"),
    ],
)
def test_shown_url_says_where_and_no_secret(url: str, shown: str) -> None:
    assert _store.shown_url(url) == shown


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize(
    "command", [("logs", "export", "--out"), ("logs", "watch", "--once", "--out")]
)
async def test_the_command_line_refuses_a_slashed_secret_without_showing_it(
    fake: FakeSendcloud, tmp_path: Path, command: tuple[str, ...], log_format: str
) -> None:
    """``logs export`` and ``logs watch``: exit 2, the one line, no request, no file."""
    fake.seed(integrations=1, logs_per_integration=3, seed=5)
    os.chdir(tmp_path)
    result = await run("--log-format", log_format, *command, SLASHED_URL, env=fake_env(fake))
    assert result.code == 2, result.err
    if log_format == "text":
        assert_one_error_line(result, 2, CREDENTIALS)
    else:
        lines = [msgspec.json.decode(line) for line in result.err.splitlines() if line.strip()]
        assert [line["message"] for line in lines] == [CREDENTIALS]
    for piece in [*_pieces(SLASHED), "AKIAIOSFODNN7EXAMPLE"]:
        assert piece not in result.out + result.err
    assert fake.requests == []
    assert os.listdir(tmp_path) == []


# -- the storage's secrets in its errors -------------------------------------------------------

SIG = "QmFkU2lnbmF0dXJlU2VjcmV0VmFsdWUxMjM0NTY3OA%3D%3D"
SAS = f"sv=2022-11-02&ss=b&srt=co&sp=rwdlac&se=2030-01-01T00:00:00Z&sig={SIG}"


@pytest.mark.parametrize(
    "variable",
    [
        "AWS_TOKEN",
        "AWS_SSE_CUSTOMER_KEY_BASE64",
        "GOOGLE_BEARER_TOKEN",
        "AZURE_STORAGE_SAS_KEY",
        "AZURE_STORAGE_ACCESS_KEY",
        "AZURE_STORAGE_MASTER_KEY",
        "AZURE_STORAGE_TOKEN",
        "AZURE_STORAGE_CLIENT_SECRET",
        "AZURE_ENCRYPTION_KEY",
    ],
)
def test_every_credential_variable_obstore_reads_is_masked(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "Xy-Storage-Secret-Value")
    assert clean("denied for Xy-Storage-Secret-Value\nsecond") == "denied for **********"


def test_a_signature_is_masked_on_its_own(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the variable, a ``sig=`` (or a presigned URL's signature) never shows."""
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", SAS)
    text = f"403: sig={SIG} and X-Amz-Signature=abc0123&x=1, sig=other"
    assert clean(text) == "403: sig=********** and X-Amz-Signature=**********&x=1, sig=**********"


@pytest.fixture
async def echoing_blob_storage() -> AsyncIterator[str]:
    """A blob storage on 127.0.0.1 that refuses every request, echoing its SAS signature."""

    async def refuse(request: web.Request) -> web.Response:
        body = f"<Error><Code>AuthenticationFailed</Code><Detail>sig={request.query.get('sig')}"
        return web.Response(status=403, text=body + "</Detail></Error>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", refuse)
    runner = web.AppRunner(app, access_log=None)  # (it would log the query)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("variable", ["AZURE_STORAGE_SAS_KEY", "AZURE_STORAGE_SAS_TOKEN"])
async def test_a_storage_echoing_the_sas_signature_shows_none_of_it(
    echoing_blob_storage: str, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv("AZURE_STORAGE_USE_EMULATOR", "true")
    monkeypatch.setenv("AZURITE_BLOB_STORAGE_URL", echoing_blob_storage)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "devstoreaccount1")
    monkeypatch.setenv(variable, SAS)
    sink = PartsSink("az://container/exports", format="jsonl")
    try:
        with pytest.raises(ExportError) as caught:
            await sink.load()
    finally:
        await sink.aclose()
    message = str(caught.value)
    assert message.startswith("cannot write parts to az://container/exports: ")
    assert message.endswith("<Detail>sig=**********</Detail></Error>")
    assert "\n" not in message
    # obstore's own error (its text holds the whole answer) is not kept, even hidden
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None
    decoded = SIG.replace("%3D", "=")
    for said in _said(caught.value):
        assert SIG not in said
        assert decoded not in said
        assert decoded.rstrip("=") not in said
