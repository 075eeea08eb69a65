"""Tests of FakeSendcloud itself, over real sockets with a plain aiohttp.ClientSession."""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import msgspec
import pytest
from yarl import URL

from sendcloud_async._auth import BasicAuth
from sendcloud_async._models import (
    INTEGRATION_DECODER,
    INTEGRATION_LIST_DECODER,
    LOG_DECODER,
    LOG_LIST_DECODER,
    SHOP_ORDER_STATUS_LIST_DECODER,
    STATUS_MAPPING_DECODER,
)
from sendcloud_async.testing import FakeSendcloud, RecordedRequest, ScriptedResponse

AUTH = "Basic " + base64.b64encode(b"fake-public-key:fake-secret-key").decode()
NOT_FOUND = "The Integration could not be found with the search criteria given"


class Reply(msgspec.Struct):
    """What a test needs of a response."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        """The body decoded as JSON."""
        return msgspec.json.decode(self.body)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session that sends the fake's Basic credentials."""
    async with aiohttp.ClientSession(headers={"Authorization": AUTH}) as session:
        yield session


async def call(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json: Any = None,
    data: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Reply:
    """Send one request and read the whole response."""
    kwargs: dict[str, Any] = {"headers": headers}
    if json is not None:
        kwargs["data"] = msgspec.json.encode(json)
        kwargs["headers"] = {"Content-Type": "application/json", **(headers or {})}
    elif data is not None:
        kwargs["data"] = data
    async with session.request(method, URL(url, encoded=True), **kwargs) as r:
        return Reply(r.status, dict(r.headers), await r.read())


def only_error(reply: Reply) -> dict[str, Any]:
    """The single error object of an error reply."""
    errors = reply.json["errors"]
    assert len(errors) == 1, errors
    error: dict[str, Any] = errors[0]
    return error


def next_link(reply: Reply) -> str | None:
    """The target of the reply's ``Link: <...>; rel="next"``, if any."""
    value = reply.headers.get("Link")
    if value is None:
        return None
    target, _, params = value.partition(";")
    assert params.strip() == 'rel="next"'
    return target.strip()[1:-1]


# -- lifecycle and addresses ----------------------------------------------------


async def test_addresses_and_credentials() -> None:
    """The fake exposes its origin, API base, token URL and a matching BasicAuth."""
    async with FakeSendcloud(public_key="pk", secret_key="sk") as fake:
        assert fake.origin == f"http://127.0.0.1:{fake.port}"
        assert fake.base_url == fake.origin + "/api/v3"
        assert fake.token_url == fake.origin + "/oauth2/token/"
        assert fake.basic_auth == BasicAuth("pk", "sk")
        assert fake.port > 0


async def test_addresses_need_a_started_server() -> None:
    """Reading the base URL before start() is a clear error."""
    fake = FakeSendcloud()
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.base_url


async def test_start_and_close_are_idempotent() -> None:
    """start() twice keeps one server; close() twice is harmless and stops it."""
    fake = FakeSendcloud()
    await fake.start()
    port = fake.port
    await fake.start()
    assert fake.port == port
    await fake.close()
    await fake.close()
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            await call(session, "GET", f"http://127.0.0.1:{port}/api/v3/integrations")


async def test_two_fakes_get_different_ports() -> None:
    """Port 0 means a fresh random port per fake."""
    async with FakeSendcloud() as one, FakeSendcloud() as two:
        assert one.port != two.port


# -- authentication, routing ------------------------------------------------------


async def test_missing_credentials_get_401(fake: FakeSendcloud) -> None:
    """No Authorization header: 401 with the spec's "No credentials" error."""
    async with aiohttp.ClientSession() as session:
        reply = await call(session, "GET", fake.base_url + "/integrations")
    assert reply.status == 401
    assert reply.headers["Content-Type"].startswith("application/json")
    assert reply.headers["WWW-Authenticate"] == 'Basic realm="api"'
    assert only_error(reply) == {
        "status": "401",
        "code": "authentication_failed",
        "title": "No credentials",
        "detail": "Authentication credentials were not provided.",
    }
    assert fake.requests[-1].auth_scheme is None


@pytest.mark.parametrize(
    "authorization",
    [
        "Basic " + base64.b64encode(b"fake-public-key:wrong").decode(),
        "Basic not-base64!",
        "Bearer some-token",
        "Token abc",
    ],
)
async def test_wrong_credentials_get_401(fake: FakeSendcloud, authorization: str) -> None:
    """Wrong or foreign credentials: 401 with the spec's invalid-credentials error."""
    async with aiohttp.ClientSession() as session:
        reply = await call(
            session,
            "GET",
            fake.base_url + "/integrations",
            headers={"Authorization": authorization},
        )
    assert reply.status == 401
    error = only_error(reply)
    assert error["code"] == "authentication_failed"
    assert error["title"] == "Invalid username/password."
    assert error["status"] == "401"


async def test_basic_scheme_is_case_insensitive(fake: FakeSendcloud) -> None:
    """RFC 7617: the scheme name is case-insensitive."""
    async with aiohttp.ClientSession() as session:
        reply = await call(
            session,
            "GET",
            fake.base_url + "/integrations",
            headers={"Authorization": "basic " + AUTH.split()[1]},
        )
    assert reply.status == 200
    assert fake.requests[-1].auth_scheme == "basic"


async def test_bearer_tokens_hook(fake: FakeSendcloud) -> None:
    """A bearer token in ``_bearer_tokens`` is accepted; others are not."""
    headers = {"Authorization": "Bearer tok-1"}
    async with aiohttp.ClientSession() as session:
        assert (
            await call(session, "GET", fake.base_url + "/integrations", headers=headers)
        ).status == 401
        fake._bearer_tokens.add("tok-1")
        assert (
            await call(session, "GET", fake.base_url + "/integrations", headers=headers)
        ).status == 200
    assert [r.auth_scheme for r in fake.requests] == ["bearer", "bearer"]


@pytest.mark.parametrize(
    "path",
    ["/api/v3/nope", "/api/v3/integrations/5/other", "/api/v3/integrations/logs/", "/elsewhere"],
)
async def test_unknown_route_is_404(
    fake: FakeSendcloud, http: aiohttp.ClientSession, path: str
) -> None:
    """Paths that are no route answer a JSON 404."""
    reply = await call(http, "GET", fake.origin + path)
    assert reply.status == 404
    assert only_error(reply)["code"] == "not_found"


async def test_token_endpoint_speaks_rfc6749(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """The token endpoint issues a bearer token for Basic client auth and refuses bad clients."""

    def basic(secret: str) -> dict[str, str]:
        value = "Basic " + base64.b64encode(f"{fake.client_id}:{secret}".encode()).decode()
        return {"Content-Type": "application/x-www-form-urlencoded", "Authorization": value}

    form = b"grant_type=client_credentials&scope=api"
    async with http.post(fake.token_url, data=form, headers=basic(fake.client_secret)) as resp:
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        token = await resp.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["access_token"] == fake.issued_tokens[0]
    async with http.post(fake.token_url, data=form, headers=basic("nope")) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"] == "invalid_client"
    async with http.post(
        fake.token_url, data=b"grant_type=password", headers=basic(fake.client_secret)
    ) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"] == "unsupported_grant_type"
    async with http.get(fake.token_url) as resp:
        assert resp.status == 405
    assert fake.token_requests == 3
    assert fake.token_auth_methods == ["client_secret_basic"] * 3
    api = fake.base_url + "/integrations"
    async with http.get(api, headers={"Authorization": f"Bearer {token['access_token']}"}) as r:
        assert r.status == 200
    assert fake.revoke_tokens() == 1
    async with http.get(api, headers={"Authorization": f"Bearer {token['access_token']}"}) as r:
        assert r.status == 401


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("POST", "/integrations", "GET"),
        ("PUT", "/integrations/1", "GET, PATCH, DELETE"),
        ("PATCH", "/integrations/logs", "GET"),
        ("DELETE", "/shop-order-statuses", "GET, POST"),
    ],
)
async def test_wrong_method_is_405(
    fake: FakeSendcloud, http: aiohttp.ClientSession, method: str, path: str, allow: str
) -> None:
    """A route called with a method it does not have: 405 with Allow."""
    fake.add_integration()
    reply = await call(http, method, fake.base_url + path)
    assert reply.status == 405
    assert reply.headers["Allow"] == allow
    assert only_error(reply)["code"] == "method_not_allowed"


async def test_wrong_method_without_credentials_is_401(fake: FakeSendcloud) -> None:
    """Authentication is checked before the method, as the real API does."""
    async with aiohttp.ClientSession() as session:
        reply = await call(session, "POST", fake.base_url + "/integrations")
    assert reply.status == 401


# -- integrations -------------------------------------------------------------------


async def test_list_integrations(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """GET /integrations lists every integration in the spec's shape."""
    fake.seed(integrations=4, logs_per_integration=0)
    reply = await call(http, "GET", fake.base_url + "/integrations")
    assert reply.status == 200
    data = reply.json["data"]
    assert sorted(i["id"] for i in data) == [1, 2, 3, 4]
    decoded = INTEGRATION_LIST_DECODER.decode(reply.body).data
    assert {i.id for i in decoded} == {1, 2, 3, 4}


async def test_list_integrations_default_order(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Default order: last_fetched_at (nulls last), then created_at."""
    fake.add_integration(id=1, last_fetched_at=None, created_at="2023-01-01T00:00:00Z")
    fake.add_integration(id=2, last_fetched_at="2023-05-01T00:00:00Z")
    fake.add_integration(id=3, last_fetched_at="2023-04-01T00:00:00Z")
    fake.add_integration(id=4, last_fetched_at=None, created_at="2022-01-01T00:00:00Z")
    reply = await call(http, "GET", fake.base_url + "/integrations")
    assert [i["id"] for i in reply.json["data"]] == [3, 2, 4, 1]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("created_at", [2, 3, 1]),
        ("-created_at", [1, 3, 2]),
        ("updated_at", [3, 1, 2]),
        ("integration_type", [3, 1, 2]),
        ("-integration_type", [2, 1, 3]),
        ("failing_since", [2, 1, 3]),
        ("-failing_since", [3, 1, 2]),
        ("last_fetch", [1, 2, 3]),
    ],
)
async def test_list_integrations_sorted(
    fake: FakeSendcloud, http: aiohttp.ClientSession, sort: str, expected: list[int]
) -> None:
    """``sort`` maps the v2 names onto v3 fields; '-' reverses; nulls last ascending."""
    fake.add_integration(
        id=1,
        type="shopify",
        created_at="2023-03-01T00:00:00Z",
        updated_at="2023-03-02T00:00:00Z",
        started_failing_at="2023-06-01T00:00:00Z",
        last_fetched_at="2023-01-01T00:00:00Z",
    )
    fake.add_integration(
        id=2,
        type="woocommerce",
        created_at="2023-01-01T00:00:00Z",
        updated_at="2023-04-01T00:00:00Z",
        started_failing_at="2023-05-01T00:00:00Z",
        last_fetched_at="2023-02-01T00:00:00+01:00",
    )
    fake.add_integration(
        id=3,
        type="api",
        created_at="2023-02-01T00:00:00Z",
        updated_at="2023-02-02T00:00:00Z",
        started_failing_at=None,
        last_fetched_at="2023-02-01T00:00:00Z",
    )
    reply = await call(http, "GET", fake.base_url + f"/integrations?sort={sort}")
    assert reply.status == 200
    assert [i["id"] for i in reply.json["data"]] == expected


async def test_list_integrations_unknown_sort_is_400(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """An unknown sort field: 400 code invalid naming the parameter."""
    reply = await call(http, "GET", fake.base_url + "/integrations?sort=shop_name")
    assert reply.status == 400
    error = only_error(reply)
    assert error["code"] == "invalid"
    assert error["source"] == {"parameter": "sort"}


async def test_get_integration(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """GET /integrations/{id} wraps the stored record in ``data``."""
    stored = fake.add_integration(shop_name="My Shop", service_point_carriers=["ups"])
    reply = await call(http, "GET", fake.base_url + f"/integrations/{stored['id']}")
    assert reply.status == 200
    assert reply.json == {"data": stored}
    assert INTEGRATION_DECODER.decode(reply.body).data.shop_name == "My Shop"


@pytest.mark.parametrize("segment", ["999", "0", "-1", "abc", "1.5", "%2B1"])
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
async def test_unknown_or_bad_integration_id_is_404(
    fake: FakeSendcloud, http: aiohttp.ClientSession, segment: str, method: str
) -> None:
    """An id that is unknown, not an integer or below 1: the spec's 404."""
    fake.add_integration(id=1)
    reply = await call(http, method, fake.base_url + f"/integrations/{segment}", json={})
    assert reply.status == 404
    assert only_error(reply) == {
        "status": 404,
        "code": "not_found",
        "title": "Not Found",
        "detail": NOT_FOUND,
    }


async def test_patch_integration(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """PATCH updates the given fields, bumps updated_at and answers 204 with no body."""
    stored = fake.add_integration(updated_at="2023-01-01T00:00:00Z")
    changes = {
        "shop_name": "New name",
        "shop_url": "https://new.example.com/",
        "service_point_enabled": True,
        "service_point_carriers": ["ups", "dhl"],
        "webhook_active": True,
        "webhook_url": "https://new.example.com/hook",
        "feedback_type": "none",
    }
    reply = await call(http, "PATCH", fake.base_url + f"/integrations/{stored['id']}", json=changes)
    assert reply.status == 204
    assert reply.body == b""
    record = fake.integrations[stored["id"]]
    assert {k: record[k] for k in changes} == changes
    assert record["updated_at"] > "2023-01-01T00:00:00Z"


async def test_patch_extra_field_is_forbidden(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """A field outside integration-model: 400 extra_forbidden pointing at it; nothing changes."""
    stored = fake.add_integration(shop_name="Before")
    reply = await call(
        http,
        "PATCH",
        fake.base_url + f"/integrations/{stored['id']}",
        json={"shop_name": "After", "type": "shopify"},
    )
    assert reply.status == 400
    assert only_error(reply) == {
        "status": 400,
        "code": "extra_forbidden",
        "title": "Extra Forbidden",
        "detail": "Extra inputs are not permitted",
        "source": {"pointer": "body/type"},
    }
    assert fake.integrations[stored["id"]]["shop_name"] == "Before"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("shop_name", ""),
        ("shop_name", "x" * 251),
        ("shop_name", 5),
        ("shop_url", ""),
        ("service_point_enabled", "yes"),
        ("service_point_carriers", "ups"),
        ("service_point_carriers", [1]),
        ("webhook_active", 1),
        ("webhook_url", 5),
        ("feedback_type", "sometimes"),
    ],
)
async def test_patch_type_errors(
    fake: FakeSendcloud, http: aiohttp.ClientSession, field: str, value: object
) -> None:
    """Values of the wrong type or out of range: 400 pointing at the field."""
    stored = fake.add_integration()
    before = dict(stored)
    reply = await call(
        http, "PATCH", fake.base_url + f"/integrations/{stored['id']}", json={field: value}
    )
    assert reply.status == 400
    error = only_error(reply)
    assert error["code"] in ("invalid", "invalid_choice")
    assert error["source"] == {"pointer": f"body/{field}"}
    assert fake.integrations[stored["id"]] == before


async def test_patch_body_must_be_an_object(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """A JSON array or broken JSON is a 400."""
    stored = fake.add_integration()
    url = fake.base_url + f"/integrations/{stored['id']}"
    assert (await call(http, "PATCH", url, json=[1])).status == 400
    assert (await call(http, "PATCH", url, data=b"{nope")).status == 400


@pytest.mark.parametrize(
    ("initial", "patch"),
    [
        ({"webhook_url": None}, {"webhook_active": True}),
        ({"webhook_url": "https://x.example/hook"}, {"webhook_active": True, "webhook_url": None}),
        ({"webhook_active": True, "webhook_url": "https://x.example/h"}, {"webhook_url": None}),
    ],
)
async def test_patch_webhook_needs_url(
    fake: FakeSendcloud, http: aiohttp.ClientSession, initial: dict[str, Any], patch: dict[str, Any]
) -> None:
    """webhook_active true without a webhook_url: the spec's 400 (status as a string)."""
    stored = fake.add_integration(**initial)
    before = dict(stored)
    reply = await call(http, "PATCH", fake.base_url + f"/integrations/{stored['id']}", json=patch)
    assert reply.status == 400
    assert only_error(reply) == {
        "status": "400",
        "code": "invalid",
        "title": "Invalid",
        "detail": "Webhook URL required when enable webhook is set to true",
    }
    assert fake.integrations[stored["id"]] == before


async def test_delete_integration(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """DELETE answers 204, forgets the integration and its statuses, keeps its logs."""
    fake.seed(integrations=2, logs_per_integration=3)
    reply = await call(http, "DELETE", fake.base_url + "/integrations/1")
    assert reply.status == 204
    assert reply.body == b""
    assert 1 not in fake.integrations
    assert 1 not in fake.shop_order_statuses
    assert 1 not in fake.status_mappings
    assert (await call(http, "GET", fake.base_url + "/integrations/1")).status == 404
    assert (await call(http, "GET", fake.base_url + "/integrations/1/logs")).status == 404
    all_logs = (await call(http, "GET", fake.base_url + "/integrations/logs")).json["data"]
    assert sum(1 for log in all_logs if log["integration_id"] == 1) == 3


# -- exception logs ------------------------------------------------------------------


async def test_logs_paging_follows_link_headers(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Following Link rel=next over several pages yields every log once, in order."""
    fake.seed(integrations=2, logs_per_integration=30)
    url: str | None = fake.base_url + "/integrations/logs?page_size=25"
    seen: list[int] = []
    pages = 0
    while url is not None:
        reply = await call(http, "GET", url)
        assert reply.status == 200
        items = LOG_LIST_DECODER.decode(reply.body).data
        seen.extend(item.id or 0 for item in items)
        pages += 1
        url = next_link(reply)
        if url is not None:
            last = reply.json["data"][-1]["created_at"]
            assert "+01:00" in last
            encoded = last.replace("+", "%2B")
            assert url == f"{fake.base_url}/integrations/logs?cursor={encoded}&page_size=25"
    assert pages == 3
    assert seen == [log["id"] for log in fake.logs]
    assert "%2B01:00" in fake.requests[1].raw_path


async def test_integration_logs_paging(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """Per-integration logs page over that integration's records only."""
    fake.seed(integrations=3, logs_per_integration=12)
    url: str | None = fake.base_url + "/integrations/2/logs?page_size=5"
    seen: list[dict[str, Any]] = []
    links: list[str] = []
    while url is not None:
        reply = await call(http, "GET", url)
        assert reply.status == 200
        seen.extend(reply.json["data"])
        url = next_link(reply)
        if url is not None:
            links.append(url)
    assert seen == [log for log in fake.logs if log["integration_id"] == 2]
    assert len(links) == 2
    assert all(link.startswith(fake.base_url + "/integrations/2/logs?cursor=") for link in links)
    assert all("%2B01:00&page_size=5" in link for link in links)


async def test_logs_default_page_size_and_no_link_on_last_page(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """The default page holds 25; a page that ends the data has no Link."""
    fake.seed(integrations=1, logs_per_integration=25)
    reply = await call(http, "GET", fake.base_url + "/integrations/logs")
    assert len(reply.json["data"]) == 25
    assert "Link" not in reply.headers
    fake.add_log(1)
    reply = await call(http, "GET", fake.base_url + "/integrations/logs")
    assert next_link(reply) is not None


async def test_logs_of_unknown_integration_is_404(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """GET /integrations/{id}/logs for an unknown integration: 404."""
    reply = await call(http, "GET", fake.base_url + "/integrations/77/logs")
    assert reply.status == 404
    assert only_error(reply)["detail"] == NOT_FOUND


async def test_logs_cursor_is_strictly_after(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """A cursor selects the records created strictly after that instant, in any offset."""
    fake.seed(integrations=1, logs_per_integration=10)
    pivot = fake.logs[3]["created_at"]
    as_utc = datetime.fromisoformat(pivot).astimezone(UTC)
    for cursor in (pivot, as_utc.isoformat()):
        encoded = cursor.replace("+", "%2B").replace(":", "%3A")
        reply = await call(http, "GET", fake.base_url + f"/integrations/logs?cursor={encoded}")
        assert [r["id"] for r in reply.json["data"]] == [r["id"] for r in fake.logs[4:]]


async def test_logs_cursor_in_the_spec_example_form(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """The spec's example cursor, percent-encoded, parses and selects later records."""
    fake.seed(integrations=1, logs_per_integration=5)
    cursor = "2023-03-01T00%3A00%3A00%2B01%3A00"
    reply = await call(http, "GET", fake.base_url + f"/integrations/1/logs?cursor={cursor}")
    assert reply.status == 200
    assert [r["id"] for r in reply.json["data"]] == [r["id"] for r in fake.logs[1:]]
    assert fake.requests[-1].query["cursor"] == "2023-03-01T00:00:00+01:00"


async def test_logs_cursor_with_raw_plus_is_400(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """A raw '+' in the cursor reads as a space: 400 invalid, naming the parameter."""
    fake.seed(integrations=1, logs_per_integration=5)
    reply = await call(
        http, "GET", fake.base_url + "/integrations/logs?cursor=2023-03-01T00:00:00+01:00"
    )
    assert reply.status == 400
    error = only_error(reply)
    assert error["code"] == "invalid"
    assert error["source"] == {"parameter": "cursor"}
    assert "%2B" in error["detail"]
    assert fake.requests[-1].query["cursor"] == "2023-03-01T00:00:00+01:00"


@pytest.mark.parametrize("cursor", ["", "yesterday", "2023-03-01T02:02:00", "2023-03-01"])
async def test_logs_bad_cursor_is_400(
    fake: FakeSendcloud, http: aiohttp.ClientSession, cursor: str
) -> None:
    """A cursor that is not an aware ISO 8601 date-time: 400."""
    reply = await call(http, "GET", fake.base_url + f"/integrations/logs?cursor={cursor}")
    assert reply.status == 400
    assert only_error(reply)["source"] == {"parameter": "cursor"}


@pytest.mark.parametrize("page_size", ["0", "101", "abc", "", "-5", "2.5"])
async def test_logs_bad_page_size_is_400(
    fake: FakeSendcloud, http: aiohttp.ClientSession, page_size: str
) -> None:
    """page_size outside 1..100 or not an integer: 400 code invalid."""
    reply = await call(http, "GET", fake.base_url + f"/integrations/logs?page_size={page_size}")
    assert reply.status == 400
    error = only_error(reply)
    assert error["code"] == "invalid"
    assert error["source"] == {"parameter": "page_size"}


async def test_logs_page_size_bounds(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """page_size 1 and 100 are both accepted."""
    fake.seed(integrations=1, logs_per_integration=120)
    for size in (1, 100):
        reply = await call(http, "GET", fake.base_url + f"/integrations/logs?page_size={size}")
        assert len(reply.json["data"]) == size
        assert (next_link(reply) or "").endswith(f"&page_size={size}")


async def test_create_log(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """POST a log: 201 with the full integration-log, stored after the newest record."""
    fake.seed(integrations=1, logs_per_integration=3)
    body = {
        "base_url": "https://example.com",
        "full_url": "https://example.com/order-note.json",
        "method": "POST",
        "response_code": 495,
        "response": {"headers": {"Connection": "keep-alive"}, "body": "<html></html>"},
        "request": {"headers": {"Accept": "*/*"}, "payload": {"order_note": {"note": "Ok"}}},
        "exception_type": "requests.exceptions.SSLError",
        "exception": "An SSL error occurred",
    }
    reply = await call(http, "POST", fake.base_url + "/integrations/1/logs", json=body)
    assert reply.status == 201
    data = reply.json["data"]
    assert data == {
        **body,
        "id": 4,
        "integration_id": 1,
        "created_at": data["created_at"],
        "protected": False,
        "additional_data": "",
    }
    assert list(data) == list(fake.logs[0])  # the spec's field order
    assert fake.logs[-1] == data
    created = datetime.fromisoformat(data["created_at"])
    assert created > datetime.fromisoformat(fake.logs[-2]["created_at"])
    assert LOG_DECODER.decode(reply.body).data.created_at == created


async def test_create_log_minimal_and_explicit_created_at(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Only base_url is needed; an explicit created_at is kept and sorted into place."""
    fake.seed(integrations=1, logs_per_integration=5)
    when = "2023-03-01T00:00:00.500000+01:00"  # between the first two seeded records
    reply = await call(
        http,
        "POST",
        fake.base_url + "/integrations/1/logs",
        json={"base_url": "https://e.example", "created_at": when, "method": None},
    )
    assert reply.status == 201
    data = reply.json["data"]
    assert data["created_at"] == when
    assert data["method"] == ""
    assert data["response"] is None
    assert fake.logs[1]["id"] == data["id"]
    instants = [datetime.fromisoformat(r["created_at"]) for r in fake.logs]
    assert instants == sorted(set(instants))


async def test_create_log_with_taken_created_at_is_moved(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """created_at stays unique: a taken instant moves forward by a microsecond."""
    fake.seed(integrations=1, logs_per_integration=2)
    taken = fake.logs[0]["created_at"]
    reply = await call(
        http,
        "POST",
        fake.base_url + "/integrations/1/logs",
        json={"base_url": "https://e.example", "created_at": taken},
    )
    assert reply.status == 201
    moved = datetime.fromisoformat(reply.json["data"]["created_at"])
    assert moved == datetime.fromisoformat(taken) + timedelta(microseconds=1)


async def test_create_log_extra_field_is_forbidden(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """additionalProperties false: the spec's extra_forbidden error with a body pointer."""
    fake.add_integration(id=1)
    reply = await call(
        http,
        "POST",
        fake.base_url + "/integrations/1/logs",
        json={"base_url": "https://e.example", "unknown_field": 1},
    )
    assert reply.status == 400
    assert only_error(reply) == {
        "status": 400,
        "code": "extra_forbidden",
        "title": "Extra Forbidden",
        "detail": "Extra inputs are not permitted",
        "source": {"pointer": "body/unknown_field"},
    }
    assert fake.logs == []


@pytest.mark.parametrize(
    ("body", "code", "pointer"),
    [
        ({}, "required", "body/base_url"),
        ({"base_url": None}, "required", "body/base_url"),
        ({"base_url": ""}, "invalid", "body/base_url"),
        ({"base_url": 5}, "invalid", "body/base_url"),
        ({"base_url": "https://e", "response_code": -1}, "invalid", "body/response_code"),
        ({"base_url": "https://e", "response_code": True}, "invalid", "body/response_code"),
        ({"base_url": "https://e", "response": "x"}, "invalid", "body/response"),
        ({"base_url": "https://e", "response": {"body": 5}}, "invalid", "body/response/body"),
        ({"base_url": "https://e", "request": {"headers": 5}}, "invalid", "body/request/headers"),
        ({"base_url": "https://e", "created_at": "never"}, "invalid", "body/created_at"),
        (
            {"base_url": "https://e", "created_at": "2023-03-01T02:02:00"},
            "invalid",
            "body/created_at",
        ),
        ({"base_url": "https://e", "method": 1}, "invalid", "body/method"),
    ],
)
async def test_create_log_validation(
    fake: FakeSendcloud,
    http: aiohttp.ClientSession,
    body: dict[str, Any],
    code: str,
    pointer: str,
) -> None:
    """Bodies outside integration-log-create: 400 with the field's pointer."""
    fake.add_integration(id=1)
    reply = await call(http, "POST", fake.base_url + "/integrations/1/logs", json=body)
    assert reply.status == 400
    error = only_error(reply)
    assert (error["code"], error["source"]["pointer"]) == (code, pointer)


async def test_create_log_for_unknown_integration_is_404(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """POST to the logs of an unknown integration: 404."""
    reply = await call(
        http, "POST", fake.base_url + "/integrations/3/logs", json={"base_url": "https://e"}
    )
    assert reply.status == 404


# -- shop order statuses ------------------------------------------------------------


def _statuses(*items: tuple[str, dict[str, str]]) -> list[dict[str, Any]]:
    """Status input bodies from (external_id, {language: status}) pairs."""
    return [
        {
            "external_id": external_id,
            "translations": [{"status": s, "language": lang} for lang, s in names.items()],
        }
        for external_id, names in items
    ]


async def test_statuses_language_fallback(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """``status`` is in the requested language, else en-gb, else the first language A-Z."""
    fake.add_integration(id=1)
    fake.shop_order_statuses[1] = [
        {
            "external_id": "a",
            "deleted_at": None,
            "translations": [
                {"status": "Sent", "language": "en-gb"},
                {"status": "Verzonden", "language": "nl-nl"},
            ],
        },
        {
            "external_id": "b",
            "deleted_at": None,
            "translations": [
                {"status": "Versandt", "language": "de-de"},
                {"status": "Envoyé", "language": "fr-fr"},
            ],
        },
    ]
    base = fake.base_url + "/shop-order-statuses?integration_id=1"
    reply = await call(http, "GET", base)
    assert reply.status == 200
    assert [s["status"] for s in reply.json["data"]] == ["Sent", "Versandt"]
    reply = await call(http, "GET", base + "&language=nl-nl")
    assert [s["status"] for s in reply.json["data"]] == ["Verzonden", "Versandt"]
    reply = await call(http, "GET", base + "&language=fr-fr")
    assert [s["status"] for s in reply.json["data"]] == ["Sent", "Envoyé"]
    assert reply.json["data"][0] == {
        "external_id": "a",
        "status": "Sent",
        "deleted_at": None,
        "translations": fake.shop_order_statuses[1][0]["translations"],
    }
    assert len(SHOP_ORDER_STATUS_LIST_DECODER.decode(reply.body).data) == 2


async def test_statuses_replace_and_show_deleted(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """POST replaces: unlisted statuses get deleted_at and show only with show_deleted."""
    fake.add_integration(id=7)
    url = fake.base_url + "/shop-order-statuses"
    first = _statuses(("1", {"en-gb": "New"}), ("2", {"en-gb": "Sent", "nl-nl": "Verzonden"}))
    reply = await call(http, "POST", url, json={"integration_id": 7, "statuses": first})
    assert reply.status == 200
    assert reply.body == b"null"
    assert reply.headers["Content-Type"].startswith("application/json")
    second = _statuses(("2", {"en-gb": "Shipped"}), ("3", {"de-de": "Storniert"}))
    reply = await call(http, "POST", url, json={"integration_id": 7, "statuses": second})
    assert reply.status == 200

    shown = (await call(http, "GET", url + "?integration_id=7")).json["data"]
    assert [(s["external_id"], s["status"], s["deleted_at"]) for s in shown] == [
        ("2", "Shipped", None),
        ("3", "Storniert", None),
    ]
    for flag in ("true", "True", "1"):
        everything = await call(http, "GET", url + f"?integration_id=7&show_deleted={flag}")
        data = everything.json["data"]
        assert [s["external_id"] for s in data] == ["1", "2", "3"]
        assert data[0]["deleted_at"] is not None
    hidden = (await call(http, "GET", url + "?integration_id=7&show_deleted=false")).json["data"]
    assert [s["external_id"] for s in hidden] == ["2", "3"]

    # Listing a deleted status again brings it back.
    reply = await call(http, "POST", url, json={"integration_id": 7, "statuses": first})
    shown = (await call(http, "GET", url + "?integration_id=7")).json["data"]
    assert [s["external_id"] for s in shown] == ["1", "2"]


@pytest.mark.parametrize(
    "query", ["", "?integration_id=", "?integration_id=abc", "?language=en-gb"]
)
@pytest.mark.parametrize("path", ["/shop-order-statuses", "/shop-order-statuses/mapping"])
async def test_statuses_need_integration_id(
    fake: FakeSendcloud, http: aiohttp.ClientSession, path: str, query: str
) -> None:
    """A missing or non-integer integration_id: the spec's 400 non_field_errors."""
    reply = await call(http, "GET", fake.base_url + path + query)
    assert reply.status == 400
    assert only_error(reply) == {
        "status": "400",
        "code": "non_field_errors",
        "title": "integration ID",
        "detail": "Integration ID is a required GET parameter",
    }


@pytest.mark.parametrize("path", ["/shop-order-statuses", "/shop-order-statuses/mapping"])
async def test_statuses_of_unknown_integration_is_404(
    fake: FakeSendcloud, http: aiohttp.ClientSession, path: str
) -> None:
    """An integration_id that does not exist: 404."""
    reply = await call(http, "GET", fake.base_url + path + "?integration_id=5")
    assert reply.status == 404
    assert only_error(reply)["detail"] == NOT_FOUND


@pytest.mark.parametrize(
    ("query", "parameter"),
    [
        ("&language=en", "language"),
        ("&language=EN-GB", "language"),
        ("&show_deleted=maybe", "show_deleted"),
    ],
)
async def test_statuses_bad_query_is_400(
    fake: FakeSendcloud, http: aiohttp.ClientSession, query: str, parameter: str
) -> None:
    """A language outside the enum or a non-boolean show_deleted: 400 naming it."""
    fake.add_integration(id=1)
    reply = await call(http, "GET", fake.base_url + "/shop-order-statuses?integration_id=1" + query)
    assert reply.status == 400
    assert only_error(reply)["source"] == {"parameter": parameter}


@pytest.mark.parametrize("path", ["/shop-order-statuses", "/shop-order-statuses/mapping"])
@pytest.mark.parametrize("body", [b"[]", b'"text"', b"", b"{broken"])
async def test_statuses_post_needs_an_object(
    fake: FakeSendcloud, http: aiohttp.ClientSession, path: str, body: bytes
) -> None:
    """A body that is not a JSON object: the spec's "Wrong format" 400."""
    reply = await call(
        http,
        "POST",
        fake.base_url + path,
        data=body,
        headers={"Content-Type": "application/json"},
    )
    assert reply.status == 400
    assert only_error(reply) == {
        "status": "400",
        "code": "non_field_errors",
        "title": "Wrong format",
        "detail": "Wrong request format, expected object",
    }


def _one_status(**overrides: Any) -> dict[str, Any]:
    """A valid single-status body with one field replaced or removed (value ...)."""
    status: dict[str, Any] = {
        "external_id": "1",
        "translations": [{"status": "Sent", "language": "en-gb"}],
    }
    for key, value in overrides.items():
        if value is ...:
            del status[key]
        else:
            status[key] = value
    return {"integration_id": 1, "statuses": [status]}


@pytest.mark.parametrize(
    ("body", "code", "pointer"),
    [
        ({"statuses": []}, "required", "/integration_id"),
        ({"integration_id": "1", "statuses": []}, "invalid", "/integration_id"),
        ({"integration_id": 1}, "required", "/statuses"),
        ({"integration_id": 1, "statuses": {}}, "not_a_list", "/statuses"),
        ({"integration_id": 1, "statuses": [5]}, "invalid", "/statuses/0"),
        (_one_status(external_id=...), "required", "/statuses/0/external_id"),
        (_one_status(external_id=17), "invalid", "/statuses/0/external_id"),
        (_one_status(translations=...), "required", "/statuses/0/translations"),
        (_one_status(translations=[]), "invalid", "/statuses/0/translations"),
        (
            _one_status(translations=[{"status": "x", "language": "xx-xx"}]),
            "invalid_choice",
            "/statuses/0/translations/0/language",
        ),
        (
            _one_status(translations=[{"language": "en-gb"}]),
            "required",
            "/statuses/0/translations/0/status",
        ),
        (
            _one_status(translations=[{"status": "a", "language": "en-gb"}] * 2),
            "invalid",
            "/statuses/0/translations/1/language",
        ),
    ],
)
async def test_statuses_post_validation(
    fake: FakeSendcloud,
    http: aiohttp.ClientSession,
    body: dict[str, Any],
    code: str,
    pointer: str,
) -> None:
    """Bodies outside post-shop-order-statuses: 400 pointing at the problem."""
    fake.add_integration(id=1)
    reply = await call(http, "POST", fake.base_url + "/shop-order-statuses", json=body)
    assert reply.status == 400
    error = only_error(reply)
    assert (error["status"], error["code"], error["source"]["pointer"]) == ("400", code, pointer)
    assert fake.shop_order_statuses.get(1, []) == []


async def test_statuses_post_too_many_translations_and_duplicates(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Eight translations, or one external_id twice, are rejected."""
    fake.add_integration(id=1)
    url = fake.base_url + "/shop-order-statuses"
    eight = [{"status": f"s{i}", "language": "en-gb"} for i in range(8)]
    assert (await call(http, "POST", url, json=_one_status(translations=eight))).status == 400
    twice = _statuses(("1", {"en-gb": "a"}), ("1", {"en-gb": "b"}))
    reply = await call(http, "POST", url, json={"integration_id": 1, "statuses": twice})
    assert reply.status == 400
    assert only_error(reply)["source"] == {"pointer": "/statuses/1/external_id"}


async def test_statuses_post_unknown_integration_is_404(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """A valid body for an unknown integration: 404."""
    reply = await call(
        http,
        "POST",
        fake.base_url + "/shop-order-statuses",
        json={"integration_id": 9, "statuses": []},
    )
    assert reply.status == 404


# -- status mapping -------------------------------------------------------------------


async def test_mapping_defaults_to_nulls(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """With no mapping stored, all four categories map to null and are valid."""
    fake.add_integration(id=3)
    reply = await call(http, "GET", fake.base_url + "/shop-order-statuses/mapping?integration_id=3")
    assert reply.status == 200
    assert reply.json == {
        "data": {
            "integration_id": 3,
            "mapping": [
                {"status_category": c, "external_id": None, "is_valid": True}
                for c in ("READY_TO_SEND", "IN_TRANSIT", "DELIVERED", "CANCEL")
            ],
        }
    }
    assert STATUS_MAPPING_DECODER.decode(reply.body).data.integration_id == 3


async def test_mapping_set_and_validity(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """POST stores the mapping; is_valid is false for missing or deleted statuses."""
    fake.add_integration(id=1)
    statuses = _statuses(("11", {"en-gb": "Ready"}), ("12", {"en-gb": "Done"}))
    await call(
        http,
        "POST",
        fake.base_url + "/shop-order-statuses",
        json={"integration_id": 1, "statuses": statuses},
    )
    await call(
        http,
        "POST",
        fake.base_url + "/shop-order-statuses",
        json={"integration_id": 1, "statuses": statuses[:1]},
    )  # "12" is now deleted
    mapping = [
        {"status_category": "READY_TO_SEND", "external_id": "11"},
        {"status_category": "IN_TRANSIT", "external_id": "11"},
        {"status_category": "DELIVERED", "external_id": "12"},
        {"status_category": "CANCEL", "external_id": "nope"},
    ]
    url = fake.base_url + "/shop-order-statuses/mapping"
    reply = await call(http, "POST", url, json={"integration_id": 1, "mapping": mapping[::-1]})
    assert reply.status == 200
    assert reply.body == b"null"
    got = (await call(http, "GET", url + "?integration_id=1")).json["data"]["mapping"]
    assert [(m["status_category"], m["external_id"], m["is_valid"]) for m in got] == [
        ("READY_TO_SEND", "11", True),
        ("IN_TRANSIT", "11", True),
        ("DELIVERED", "12", False),
        ("CANCEL", "nope", False),
    ]


def _mapping(**changes: Any) -> list[dict[str, Any]]:
    """A valid four-entry mapping with some categories' external_id replaced."""
    return [
        {"status_category": c, "external_id": changes.get(c)}
        for c in ("READY_TO_SEND", "IN_TRANSIT", "DELIVERED", "CANCEL")
    ]


@pytest.mark.parametrize(
    ("body", "code", "pointer"),
    [
        ({"mapping": _mapping()}, "required", "/integration_id"),
        ({"integration_id": 1}, "required", "/mapping"),
        ({"integration_id": 1, "mapping": "x"}, "not_a_list", "/mapping"),
        ({"integration_id": 1, "mapping": _mapping()[:3]}, "invalid", "/mapping"),
        (
            {"integration_id": 1, "mapping": [*_mapping()[:3], _mapping()[0]]},
            "invalid",
            "/mapping/3/status_category",
        ),
        (
            {
                "integration_id": 1,
                "mapping": [*_mapping()[:3], {"status_category": "LOST", "external_id": None}],
            },
            "invalid_choice",
            "/mapping/3/status_category",
        ),
        (
            {"integration_id": 1, "mapping": [*_mapping()[:3], {"status_category": "CANCEL"}]},
            "required",
            "/mapping/3/external_id",
        ),
        (
            {
                "integration_id": 1,
                "mapping": [*_mapping()[:3], {"status_category": "CANCEL", "external_id": 5}],
            },
            "invalid",
            "/mapping/3/external_id",
        ),
    ],
)
async def test_mapping_post_validation(
    fake: FakeSendcloud,
    http: aiohttp.ClientSession,
    body: dict[str, Any],
    code: str,
    pointer: str,
) -> None:
    """Mappings without exactly the four categories, or with bad values: 400."""
    fake.add_integration(id=1)
    reply = await call(http, "POST", fake.base_url + "/shop-order-statuses/mapping", json=body)
    assert reply.status == 400
    error = only_error(reply)
    assert (error["code"], error["source"]["pointer"]) == (code, pointer)
    assert 1 not in fake.status_mappings


async def test_mapping_post_unknown_integration_is_404(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """A valid mapping for an unknown integration: 404."""
    reply = await call(
        http,
        "POST",
        fake.base_url + "/shop-order-statuses/mapping",
        json={"integration_id": 4, "mapping": _mapping()},
    )
    assert reply.status == 404


# -- scripting ------------------------------------------------------------------------


async def test_script_queues_then_falls_back(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Scripted responses are served in order, then the route behaves normally."""
    fake.seed(integrations=1, logs_per_integration=2)
    fake.script(
        "GET",
        "/integrations/logs",
        ScriptedResponse(503, body="upstream down", headers={"Retry-After": "2"}),
        ScriptedResponse(429, body={"errors": [{"status": 429, "code": "throttled"}]}),
    )
    url = fake.base_url + "/integrations/logs"
    first = await call(http, "GET", url)
    assert (first.status, first.body, first.headers["Retry-After"]) == (503, b"upstream down", "2")
    assert first.headers["Content-Type"].startswith("text/plain")
    second = await call(http, "GET", url)
    assert second.status == 429
    assert second.headers["Content-Type"] == "application/json"
    assert second.json == {"errors": [{"status": 429, "code": "throttled"}]}
    third = await call(http, "GET", url)
    assert third.status == 200
    assert len(third.json["data"]) == 2
    assert len(fake.requests) == 3


async def test_script_before_auth(fake: FakeSendcloud) -> None:
    """Scripts are served before authentication: a 401 to a valid caller, a 200 to anyone."""
    fake.add_integration(id=1)
    fake.script("GET", "/integrations/1", ScriptedResponse(401, body={"errors": []}))
    fake.script("GET", "/integrations", ScriptedResponse(body={"data": []}))
    async with aiohttp.ClientSession(headers={"Authorization": AUTH}) as session:
        assert (await call(session, "GET", fake.base_url + "/integrations/1")).status == 401
        assert (await call(session, "GET", fake.base_url + "/integrations/1")).status == 200
    async with aiohttp.ClientSession() as anonymous:
        reply = await call(anonymous, "GET", fake.base_url + "/integrations")
        assert (reply.status, reply.json) == (200, {"data": []})
    assert [r.auth_scheme for r in fake.requests] == ["basic", "basic", None]


async def test_script_templates_and_concrete_paths(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """A "{id}" template matches any id; a concrete path's queue is used first."""
    fake.add_integration(id=1)
    fake.add_integration(id=2)
    fake.script("GET", "/integrations/{id}", ScriptedResponse(500), ScriptedResponse(502))
    fake.script("get", "/api/v3/integrations/2", ScriptedResponse(418))
    assert (await call(http, "GET", fake.base_url + "/integrations/2")).status == 418
    assert (await call(http, "GET", fake.base_url + "/integrations/2")).status == 500
    assert (await call(http, "GET", fake.base_url + "/integrations/1")).status == 502
    assert (await call(http, "PATCH", fake.base_url + "/integrations/1", json={})).status == 204
    assert (await call(http, "GET", fake.base_url + "/integrations/1")).status == 200


async def test_script_unknown_route_and_raw_bytes(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Any path can be scripted; bytes bodies are sent untouched with the given headers."""
    fake.script(
        "POST",
        "/oauth2/token/",
        ScriptedResponse(
            body=b'{"access_token":"t"}', headers={"Content-Type": "application/json"}
        ),
    )
    reply = await call(http, "POST", fake.token_url, data=b"grant_type=client_credentials")
    assert (reply.status, reply.body) == (200, b'{"access_token":"t"}')
    assert reply.headers["Content-Type"] == "application/json"


async def test_script_delay(fake: FakeSendcloud, http: aiohttp.ClientSession) -> None:
    """``delay`` holds the answer back for that long."""
    fake.script("GET", "/integrations", ScriptedResponse(204, delay=0.2))
    started = time.perf_counter()
    reply = await call(http, "GET", fake.base_url + "/integrations")
    assert reply.status == 204
    assert time.perf_counter() - started >= 0.2


async def test_delayed_request_abandoned_by_client_shuts_down_cleanly() -> None:
    """A client timing out mid-delay leaves nothing behind when the fake closes."""
    async with FakeSendcloud() as fake:
        fake.script("GET", "/integrations", ScriptedResponse(delay=5))
        timeout = aiohttp.ClientTimeout(total=0.1)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            with pytest.raises(asyncio.TimeoutError):
                await call(session, "GET", fake.base_url + "/integrations")
        started = time.perf_counter()
    assert time.perf_counter() - started < 2


def test_scripted_response_checks_its_arguments() -> None:
    """Bad statuses, delays and unencodable bodies fail when scripted, not when served."""
    with pytest.raises(ValueError, match="status"):
        ScriptedResponse(99)
    with pytest.raises(ValueError, match="delay"):
        ScriptedResponse(delay=-1)
    with pytest.raises(TypeError):
        ScriptedResponse(body=object())
    assert ScriptedResponse(503) == ScriptedResponse(503)


async def test_script_rejects_bad_paths(fake: FakeSendcloud) -> None:
    """Script paths start with '/' and carry no query."""
    with pytest.raises(ValueError, match="path"):
        fake.script("GET", "integrations", ScriptedResponse())
    with pytest.raises(ValueError, match="path"):
        fake.script("GET", "/integrations/logs?cursor=x", ScriptedResponse())


# -- the journal ----------------------------------------------------------------------


async def test_journal_records_requests_as_received(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Method, paths, decoded query ('+' kept), headers, body and auth scheme are kept."""
    fake.seed(integrations=1, logs_per_integration=3)
    raw = "/api/v3/integrations/1/logs?cursor=2023-03-01T02%3A02%3A00%2B01%3A00&page_size=2"
    await call(http, "GET", fake.origin + raw)
    await call(http, "GET", fake.base_url + "/integrations/logs?cursor=a+b&x=%20y&flag")
    await call(http, "POST", fake.base_url + "/integrations/1/logs", json={"base_url": "https://e"})
    first, second, third = fake.requests
    assert isinstance(first, RecordedRequest)
    assert first.method == "GET"
    assert first.path == "/integrations/1/logs"
    assert first.raw_path == raw
    assert first.query == {"cursor": "2023-03-01T02:02:00+01:00", "page_size": "2"}
    assert first.headers["Authorization"] == AUTH
    assert first.header("authorization") == AUTH
    assert first.header("X-Missing") is None
    assert first.body == b""
    assert first.json is None
    assert first.auth_scheme == "basic"
    assert second.query == {"cursor": "a+b", "x": " y", "flag": ""}
    assert third.method == "POST"
    assert third.body == b'{"base_url":"https://e"}'
    assert third.json == {"base_url": "https://e"}
    with pytest.raises(AttributeError):
        first.method = "PUT"  # type: ignore[misc]


async def test_journal_includes_rejected_and_scripted_requests(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """401s, 404s and scripted answers are journalled too; clear_requests empties it."""
    fake.script("GET", "/integrations", ScriptedResponse(500))
    await call(http, "GET", fake.base_url + "/integrations")
    await call(http, "GET", fake.base_url + "/nowhere")
    async with aiohttp.ClientSession() as anonymous:
        await call(anonymous, "GET", fake.base_url + "/integrations")
    assert [(r.path, r.auth_scheme) for r in fake.requests] == [
        ("/integrations", "basic"),
        ("/nowhere", "basic"),
        ("/integrations", None),
    ]
    fake.clear_requests()
    assert fake.requests == []


# -- state and seeding ----------------------------------------------------------------


async def test_seed_is_deterministic() -> None:
    """The same arguments give the same data; another seed gives other data."""
    async with FakeSendcloud() as one, FakeSendcloud() as two:
        one.seed(integrations=3, logs_per_integration=50, seed=7)
        two.seed(integrations=3, logs_per_integration=50, seed=7)
        assert one.integrations == two.integrations
        assert one.logs == two.logs
        assert one.shop_order_statuses == two.shop_order_statuses
        assert one.status_mappings == two.status_mappings
        two.seed(integrations=3, logs_per_integration=50, seed=8)
        assert one.logs != two.logs
        two.seed(integrations=3, logs_per_integration=50, seed=7)  # seed() replaces the state
        assert one.logs == two.logs


async def test_seeded_logs_shape_and_order(fake: FakeSendcloud) -> None:
    """Seeded logs: full shape, +01:00 timestamps strictly increasing, the spec's unions."""
    fake.seed()
    logs = fake.logs
    assert len(fake.integrations) == 3
    assert len(logs) == 3000
    assert [log["id"] for log in logs] == list(range(1, 3001))
    for n in (1, 2, 3):
        assert sum(1 for log in logs if log["integration_id"] == n) == 1000
    assert logs[0]["created_at"] == "2023-03-01T00:00:00+01:00"
    assert all(log["created_at"].endswith("+01:00") for log in logs)
    instants = [datetime.fromisoformat(log["created_at"]) for log in logs]
    steps = {(b - a).total_seconds() for a, b in itertools.pairwise(instants)}
    assert min(steps) >= 1
    assert max(steps) <= 6
    fields = {
        "id",
        "integration_id",
        "base_url",
        "full_url",
        "method",
        "response_code",
        "response",
        "request",
        "created_at",
        "exception_type",
        "exception",
        "protected",
        "additional_data",
    }
    assert all(set(log) == fields for log in logs)
    bodies = {type(log["response"]["body"]) for log in logs if log["response"]}
    assert bodies == {str, dict, type(None)}
    assert any(log["response"] is None for log in logs)
    payloads = {type(log["request"]["payload"]) for log in logs}
    assert payloads == {str, dict, type(None)}
    assert {type(log["additional_data"]) for log in logs} == {str, dict}
    assert {type(log["response_code"]) for log in logs} == {int, type(None)}
    assert any(log["protected"] for log in logs)
    msgspec.json.decode(msgspec.json.encode({"data": logs}), type=LOG_LIST_DECODER.type)


async def test_seeded_statuses_and_mapping(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Seeded integrations have statuses (one deleted) and a mapping with an invalid entry."""
    fake.seed(integrations=2, logs_per_integration=0)
    shown = await call(http, "GET", fake.base_url + "/shop-order-statuses?integration_id=2")
    everything = await call(
        http, "GET", fake.base_url + "/shop-order-statuses?integration_id=2&show_deleted=true"
    )
    assert len(everything.json["data"]) == len(shown.json["data"]) + 1
    mapping = await call(
        http, "GET", fake.base_url + "/shop-order-statuses/mapping?integration_id=2"
    )
    assert [m["is_valid"] for m in mapping.json["data"]["mapping"]][-1] is False


async def test_add_integration_and_add_log(fake: FakeSendcloud) -> None:
    """add_integration/add_log store spec-shaped records with automatic ids and times."""
    first = fake.add_integration(shop_name="A")
    second = fake.add_integration(id=10, type="shopify")
    third = fake.add_integration()
    assert (first["id"], second["id"], third["id"]) == (1, 10, 11)
    assert fake.integrations[1] is first
    assert set(first) == {
        "id",
        "shop_name",
        "shop_url",
        "type",
        "started_failing_at",
        "last_fetched_at",
        "created_at",
        "updated_at",
        "service_point_enabled",
        "service_point_carriers",
        "webhook_active",
        "webhook_url",
        "feedback_type",
    }
    a = fake.add_log(1, base_url="https://a.example")
    b = fake.add_log(10)
    c = fake.add_log(1, created_at="2023-02-01T00:00:00+01:00")
    assert fake.logs == [c, a, b]
    assert (a["id"], b["id"], c["id"]) == (1, 2, 3)
    assert datetime.fromisoformat(b["created_at"]) > datetime.fromisoformat(a["created_at"])
    assert a["integration_id"] == 1
    assert a["protected"] is False
    assert a["additional_data"] == ""
    with pytest.raises(TypeError, match="colour"):
        fake.add_integration(colour="red")
    with pytest.raises(ValueError, match="already exists"):
        fake.add_integration(id=10)
    with pytest.raises(ValueError, match="already exists"):
        fake.add_log(1, created_at=c["created_at"])
    with pytest.raises(ValueError, match="no integration"):
        fake.add_log(99)
    with pytest.raises(TypeError, match="colour"):
        fake.add_log(1, colour="red")
