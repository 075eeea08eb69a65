"""Parts into Google Cloud Storage: obstore's GCS client, pointed at a server on 127.0.0.1.

No GCS emulator here speaks the XML API obstore writes with, so the server below
only records each request, answers a GET with a manifest at generation
1700000000000001 (the headers GCS sends) and a PUT with 412 (the answer of GCS to a
generation that moved on): enough to show what the client sends, not how GCS
itself answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from sendcloud_async._parts import SecondWriterError
from sendcloud_async._parts._objstore import ObjectStore


@pytest.fixture
async def gcs(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[list[bytes]]:
    """The requests a server on 127.0.0.1 got (each answered 412); the env points GCS at it."""
    seen: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        seen.append(head)
        if head.startswith(b"GET "):
            writer.write(
                b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\nETag: "etag-1"\r\n'
                b"x-goog-generation: 1700000000000001\r\n"
                b"Last-Modified: Mon, 07 Dec 2026 07:00:00 GMT\r\n\r\n{}"
            )
        else:
            writer.write(b"HTTP/1.1 412 Precondition Failed\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    account = {
        "private_key": pem,
        "private_key_id": "test",
        "client_email": "test@example.com",
        "gcs_base_url": f"http://127.0.0.1:{port}",
        "disable_oauth": True,
    }
    monkeypatch.setenv("GOOGLE_SERVICE_ACCOUNT_KEY", json.dumps(account))
    async with server:
        yield seen


async def test_a_manifest_update_sends_the_generation_gcs_checks(gcs: list[bytes]) -> None:
    store = ObjectStore("gs", "bucket", "logs")
    found = await store.read("account=a/_manifest.json")
    assert found is not None
    assert found[0] == b"{}"
    with pytest.raises(SecondWriterError) as caught:
        await store.replace("account=a/_manifest.json", b"{}", expected=found[1])
    assert str(caught.value) == (
        "another writer changed gs://bucket/logs/account=a/_manifest.json since this export "
        "read it; two exports of one account into one place are not allowed"
    )
    [get, request] = gcs  # the PUT sent once (a refusal is not retried), on the generation
    assert get.startswith(b"GET /bucket/logs")
    assert request.startswith(b"PUT /bucket/logs")
    assert b"x-goog-if-generation-match: 1700000000000001\r\n" in request.lower()
    await store.aclose()
