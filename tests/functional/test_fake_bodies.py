"""How FakeSendcloud reads request bodies: the spec's schemas first, then the rules a
schema cannot express, answered in each endpoint's own error style (real sockets)."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest

from sendcloud_async.testing import FakeSendcloud
from sendcloud_async.testing._bodies import BODY_OPERATIONS
from sendcloud_async.testing._spec import KNOWN_SPEC_DEVIATIONS, patched_spec

AUTH = "Basic " + base64.b64encode(b"fake-public-key:fake-secret-key").decode()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session that sends the fake's Basic credentials."""
    async with aiohttp.ClientSession(headers={"Authorization": AUTH}) as session:
        yield session


async def send(http: aiohttp.ClientSession, method: str, url: str, body: Any) -> tuple[int, Any]:
    """One JSON request; the status and the decoded body (``None`` when empty)."""
    async with http.request(
        method, url, data=msgspec.json.encode(body), headers={"Content-Type": "application/json"}
    ) as resp:
        raw = await resp.read()
        return resp.status, msgspec.json.decode(raw) if raw else None


def _body_operations() -> list[tuple[str, str, dict[str, Any]]]:
    spec = patched_spec()
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "requestBody" in operation
    ]


def test_the_fake_reads_every_body_the_spec_describes() -> None:
    """Each operation with a request body in the spec has its reading; no more, no less.
    Operations with rules beyond the schema are those the spec check lists as lenient."""
    operations = {f"{method} {path}" for method, path, _ in _body_operations()}
    assert set(BODY_OPERATIONS) == operations
    [beyond] = [d for d in KNOWN_SPEC_DEVIATIONS if d.name == "rules-beyond-json-schema"]
    with_rules = {name for name, reading in BODY_OPERATIONS.items() if reading.rules is not None}
    assert with_rules
    assert with_rules <= set(beyond.lenient)


async def test_every_request_example_of_the_spec_is_accepted(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """The spec's own request bodies pass the fake's reading (2xx, nothing refused)."""
    sent = 0
    for method, path, operation in _body_operations():
        media = operation["requestBody"]["content"]["application/json"]
        for example in media.get("examples", {}).values():
            body = example["value"]
            ident = body.get("integration_id", 7)
            if ident not in fake.integrations:
                fake.add_integration(id=ident)
            url = fake.base_url + path.replace("{id}", str(ident))
            status, answer = await send(http, method, url, body)
            assert 200 <= status < 300, (method, path, answer)
            sent += 1
    assert sent >= 7


async def test_one_error_per_place_the_most_telling(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """A value that breaks several keywords gets one error: a wrong choice before a wrong
    type; an empty URL is one error, not minLength and format both."""
    fake.add_integration(id=1)
    url = fake.base_url + "/integrations/1"
    status, answer = await send(http, "PATCH", url, {"feedback_type": 5, "webhook_url": ""})
    assert status == 400
    assert [(e["code"], e["source"]["pointer"], e["detail"]) for e in answer["errors"]] == [
        ("invalid_choice", "body/feedback_type", "Input should be 'eager', 'delayed' or 'none'"),
        ("invalid", "body/webhook_url", "Input should be a valid URL"),
    ]


async def test_errors_come_in_the_order_of_the_body(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Unknown fields and bad values, each pointed at, in the order the client sent them;
    a missing required field after them."""
    fake.add_integration(id=1)
    status, answer = await send(
        http,
        "POST",
        fake.base_url + "/integrations/1/logs",
        {"method": 5, "kind": "x", "response_code": -1},
    )
    assert status == 400
    assert [(e["status"], e["code"], e["source"]["pointer"]) for e in answer["errors"]] == [
        (400, "invalid", "body/method"),
        (400, "extra_forbidden", "body/kind"),
        (400, "invalid", "body/response_code"),
        (400, "required", "body/base_url"),
    ]
    assert answer["errors"][2]["detail"] == "Input should be greater than or equal to 0"
    assert fake.logs == []


async def test_an_error_inside_a_list_points_at_the_list(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Pydantic style: the field holding the list, the item's index in the detail."""
    stored = fake.add_integration(id=1)
    before = dict(stored)
    status, answer = await send(
        http, "PATCH", fake.base_url + "/integrations/1", {"service_point_carriers": ["a", 2]}
    )
    assert status == 400
    assert answer["errors"] == [
        {
            "status": 400,
            "code": "invalid",
            "title": "Invalid",
            "detail": "Input should be a valid string (item 1)",
            "source": {"pointer": "body/service_point_carriers"},
        }
    ]
    assert fake.integrations[1] == before


async def test_a_naive_date_time_is_told_apart(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """format: date-time: a date-time without an offset and no date-time at all."""
    fake.add_integration(id=1)
    url = fake.base_url + "/integrations/1/logs"
    details = []
    for value in ("2023-03-01T02:02:00", "yesterday"):
        status, answer = await send(
            http, "POST", url, {"base_url": "https://e", "created_at": value}
        )
        assert status == 400
        [problem] = answer["errors"]
        assert problem["source"] == {"pointer": "body/created_at"}
        details.append(problem["detail"])
    assert details == ["Input should have timezone info", "Input should be a valid datetime"]


async def test_whole_numbers_sent_as_floats_are_integers(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """JSON Schema's integer takes 404.0, as the API does: stored and served as 404."""
    fake.add_integration(id=1)
    status, answer = await send(
        http,
        "POST",
        fake.base_url + "/integrations/1/logs",
        {"base_url": "https://e", "response_code": 404.0},
    )
    assert status == 201
    assert answer["data"]["response_code"] == 404
    assert isinstance(fake.logs[0]["response_code"], int)
    statuses = [{"external_id": "1", "translations": [{"status": "Sent", "language": "en-gb"}]}]
    status, _ = await send(
        http,
        "POST",
        fake.base_url + "/shop-order-statuses",
        {"integration_id": 1.0, "statuses": statuses},
    )
    assert status == 200
    assert list(fake.shop_order_statuses) == [1]
    status, answer = await send(
        http,
        "POST",
        fake.base_url + "/integrations/1/logs",
        {"base_url": "https://e", "response_code": 404.5},
    )
    assert (status, answer["errors"][0]["source"]) == (400, {"pointer": "body/response_code"})


async def test_repeated_items_are_named_by_the_rule(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """Two identical translations break uniqueItems too; the answer names the repeated
    language once, where it repeats (Django REST framework style)."""
    fake.add_integration(id=1)
    twice = [{"status": "a", "language": "en-gb"}] * 2
    body = {"integration_id": 1, "statuses": [{"external_id": "1", "translations": twice}]}
    status, answer = await send(http, "POST", fake.base_url + "/shop-order-statuses", body)
    assert status == 400
    assert answer["errors"] == [
        {
            "status": "400",
            "code": "invalid",
            "title": "Invalid",
            "detail": 'Duplicate language "en-gb".',
            "source": {"pointer": "/statuses/0/translations/1/language"},
        }
    ]
    assert fake.shop_order_statuses == {}


async def test_blank_strings_the_api_refuses(
    fake: FakeSendcloud, http: aiohttp.ClientSession
) -> None:
    """An empty external_id or status is a string to the schema; the API refuses it."""
    fake.add_integration(id=1)
    body = {
        "integration_id": 1,
        "statuses": [{"external_id": "", "translations": [{"status": "", "language": "en-gb"}]}],
    }
    status, answer = await send(http, "POST", fake.base_url + "/shop-order-statuses", body)
    assert status == 400
    assert [(e["source"]["pointer"], e["detail"]) for e in answer["errors"]] == [
        ("/statuses/0/external_id", "This field may not be blank."),
        ("/statuses/0/translations/0/status", "This field may not be blank."),
    ]


_WITHOUT_VALIDATOR = """
import asyncio, json, sys
sys.modules["openapi_schema_validator"] = None  # as if it were not installed
import aiohttp
from sendcloud_async.testing import FakeSendcloud

async def main():
    async with FakeSendcloud(validate_spec=False) as fake:
        fake.add_integration(id=1, shop_name="Before")
        auth = {"Authorization": sys.argv[1]}
        async with aiohttp.ClientSession(headers=auth) as http:
            async with http.get(fake.base_url + "/integrations/1") as got:
                listed = got.status
            async with http.patch(fake.base_url + "/integrations/1", json={"shop_name": "x"}) as r:
                answer = {"status": r.status, "body": await r.json()}
        name = fake.integrations[1]["shop_name"]
        print(json.dumps({"get": listed, "patch": answer, "name": name}))

asyncio.run(main())
"""


async def test_without_openapi_schema_validator_a_body_gets_a_clear_500() -> None:
    """Without the package that checks bodies, the fake still serves what has no body and
    answers a body with a 500 that says what to install; nothing is changed."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WITHOUT_VALIDATOR,
        AUTH,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    found = json.loads(out)
    assert found["get"] == 200
    assert found["patch"]["status"] == 500
    [problem] = found["patch"]["body"]["errors"]
    assert problem["code"] == "server_error"
    assert "openapi-schema-validator" in problem["detail"]
    assert "pip install" in problem["detail"]
    assert "\n" not in problem["detail"]
    assert found["name"] == "Before"
