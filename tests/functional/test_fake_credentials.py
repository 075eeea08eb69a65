"""FakeSendcloud reads an Authorization header one way everywhere: signing in, the
account a rate limit counts, the token endpoint's client and the journal agree."""

from __future__ import annotations

import base64

import aiohttp
import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def get(fake: FakeSendcloud, authorization: str) -> int:
    async with (
        aiohttp.ClientSession(headers={"Authorization": authorization}) as http,
        http.get(fake.base_url + "/integrations") as resp,
    ):
        return resp.status


async def test_a_colon_in_a_secret_reads_alike_everywhere(fake: FakeSendcloud) -> None:
    """A secret holding a colon signs in, is counted for its account when throttled, and
    authenticates an OAuth2 client at the token endpoint; the journal says basic."""
    fake.add_account("pk-2", "se:cret")
    fake.enforce_rate_limits(sc.RateLimits(get=1, window=30.0))
    assert await get(fake, basic("pk-2", "se:cret")) == 200
    assert await get(fake, basic("pk-2", "se:cret")) == 429
    assert fake.throttled_by_account == {"basic:pk-2": 1}
    fake.add_oauth_client("cid", "c:secret")
    async with (
        aiohttp.ClientSession(headers={"Authorization": basic("cid", "c:secret")}) as http,
        http.post(fake.token_url, data={"grant_type": "client_credentials"}) as resp,
    ):
        assert resp.status == 200
        token = (await resp.json())["access_token"]
    assert await get(fake, f"bearer {token}") == 200
    assert await get(fake, f"Bearer {token}") == 429
    assert fake.throttled_by_account == {"basic:pk-2": 1, "oauth2:cid": 1}
    assert fake.token_auth_methods == ["client_secret_basic"]
    assert [r.auth_scheme for r in fake.requests] == ["basic", "basic", "basic", "bearer", "bearer"]


@pytest.mark.parametrize(
    ("authorization", "scheme"),
    [
        (" abc", None),  # a header without a scheme is still a header
        ("Bearer ", "bearer"),  # a scheme without a token
        ("Basic " + base64.b64encode(b"fake-public-key").decode(), "basic"),  # no secret
    ],
)
async def test_a_header_without_valid_credentials_is_invalid(
    fake: FakeSendcloud, authorization: str, scheme: str | None
) -> None:
    """A header that is there but holds no valid credentials: "invalid", not "none"."""
    async with (
        aiohttp.ClientSession(headers={"Authorization": authorization}) as http,
        http.get(fake.base_url + "/integrations") as resp,
    ):
        assert resp.status == 401
        [problem] = (await resp.json())["errors"]
    assert problem["title"] == "Invalid username/password."
    assert fake.requests[-1].auth_scheme == scheme


async def test_a_token_request_with_broken_basic_is_refused(fake: FakeSendcloud) -> None:
    """Basic credentials that are not base64 authenticate no client: 401 invalid_client."""
    async with (
        aiohttp.ClientSession(headers={"Authorization": "Basic not*base64"}) as http,
        http.post(fake.token_url, data={"grant_type": "client_credentials"}) as resp,
    ):
        assert resp.status == 401
        assert (await resp.json())["error"] == "invalid_client"
    assert fake.token_auth_methods == ["client_secret_basic"]
    assert fake.issued_tokens == []
