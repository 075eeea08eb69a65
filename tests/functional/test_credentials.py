"""Credentials are values: frozen, hashable, picklable, usable in two event loops and processes."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle

import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud


def test_oauth2_credentials_pickle_round_trip() -> None:
    """A pickled OAuth2ClientCredentials comes back equal, with the same hash and settings."""
    auth = sc.OAuth2ClientCredentials(
        "client-id", "client-secret", token_url="http://127.0.0.1:9/token", scope="api", leeway=5
    )
    clone = pickle.loads(pickle.dumps(auth))
    assert clone == auth
    assert hash(clone) == hash(auth)
    assert clone.client_secret.get_secret_value() == "client-secret"
    assert (clone.token_url, clone.scope, clone.leeway) == (auth.token_url, "api", 5.0)
    assert "client-secret" not in repr(clone)


def test_basic_auth_pickle_round_trip() -> None:
    """A pickled BasicAuth comes back equal and builds the same header."""
    auth = sc.BasicAuth("pk", "sk")
    clone = pickle.loads(pickle.dumps(auth))
    assert clone == auth
    assert clone.header == auth.header


def test_credentials_are_frozen_and_equal_by_value() -> None:
    """Attributes cannot be set; equal arguments make equal, hash-alike credentials."""
    auth = sc.OAuth2ClientCredentials("id", "secret")
    with pytest.raises(AttributeError, match="immutable"):
        auth.client_id = "other"
    assert auth == sc.OAuth2ClientCredentials("id", "secret")
    assert auth != sc.OAuth2ClientCredentials("id", "other-secret")
    assert auth != sc.OAuth2ClientCredentials("id", "secret", scope="other")
    assert len({auth, sc.OAuth2ClientCredentials("id", "secret")}) == 1
    assert sc.BasicAuth("pk", "sk") != sc.BasicAuth("pk", "sk2")
    assert auth.identity == ("oauth2", "id")
    assert "secret" not in auth.cache_key


def test_one_credentials_object_reused_across_loops_against_one_server() -> None:
    """The very same credentials object is used in two asyncio.run calls against one server."""
    import threading

    ready = threading.Event()
    stop = threading.Event()
    box: dict[str, object] = {}

    def serve() -> None:
        async def main() -> None:
            async with FakeSendcloud() as fake:
                fake.seed(integrations=1, logs_per_integration=0)
                box["fake"] = fake
                ready.set()
                await asyncio.get_running_loop().run_in_executor(None, stop.wait)

        asyncio.run(main())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    fake = box["fake"]
    assert isinstance(fake, FakeSendcloud)
    auth = fake.oauth2_credentials

    async def call() -> int:
        async with sc.SendcloudClient(auth=auth, base_url=fake.base_url) as client:
            return len(await client.integrations.list())

    try:
        assert asyncio.run(call()) == 1
        assert asyncio.run(call()) == 1
    finally:
        stop.set()
        thread.join(10)
    assert 1 <= fake.token_requests <= 2


def _call_in_child(auth: sc.OAuth2ClientCredentials, base_url: str) -> int:
    async def call() -> int:
        async with sc.SendcloudClient(auth=auth, base_url=base_url) as client:
            return len(await client.integrations.list())

    return asyncio.run(call())


async def test_credentials_travel_to_another_process(fake: FakeSendcloud) -> None:
    """Credentials pickled into a child process authenticate there."""
    fake.seed(integrations=3, logs_per_integration=0)
    ctx = multiprocessing.get_context("spawn")
    loop = asyncio.get_running_loop()
    with ctx.Pool(1) as pool:
        result = pool.apply_async(_call_in_child, (fake.oauth2_credentials, fake.base_url))
        count = await loop.run_in_executor(None, result.get, 30)
    assert count == 3
    assert fake.token_requests == 1


async def test_a_closed_pool_client_is_replaced(fake: FakeSendcloud) -> None:
    """pool.client(auth) after that client's aclose() returns a new, working client."""
    fake.seed(integrations=1, logs_per_integration=0)
    async with sc.AccountPool(base_url=fake.base_url) as pool:
        first = pool.client(fake.basic_auth)
        await first.integrations.list()
        await first.aclose()
        with pytest.raises(sc.ClientClosedError):
            await first.integrations.list()
        second = pool.client(fake.basic_auth)
        assert second is not first
        assert len(await second.integrations.list()) == 1
        assert pool.client(sc.BasicAuth(*_basic_pair(fake))) is second


def _basic_pair(fake: FakeSendcloud) -> tuple[str, str]:
    auth = fake.basic_auth
    return auth.public_key, auth.secret_key.get_secret_value()


async def test_equal_credentials_share_one_token_without_a_pool(fake: FakeSendcloud) -> None:
    """Two clients given equal (not identical) credentials share one token by construction."""
    fake.seed(integrations=1, logs_per_integration=0)
    a_auth = fake.oauth2_credentials
    b_auth = pickle.loads(pickle.dumps(a_auth))
    assert a_auth is not b_auth
    async with (
        sc.SendcloudClient(auth=a_auth, base_url=fake.base_url) as a,
        sc.SendcloudClient(auth=b_auth, base_url=fake.base_url) as b,
    ):
        await asyncio.gather(a.integrations.list(), b.integrations.list())
        assert a.token_requests == b.token_requests == 1
    assert fake.token_requests == 1
