"""client.integrations against FakeSendcloud over real sockets."""

from __future__ import annotations

from datetime import datetime

import pytest

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud


async def test_list_returns_typed_integrations(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """list() decodes every integration into an Integration with aware datetimes."""
    fake.seed(integrations=3, logs_per_integration=0, seed=1)
    result = await client.integrations.list()
    assert [i.id for i in result] == sorted(fake.integrations)
    for item in result:
        assert isinstance(item, sc.Integration)
        assert isinstance(item.created_at, datetime)
        assert item.created_at.tzinfo is not None
    req = fake.requests[-1]
    assert (req.method, req.path, req.body) == ("GET", "/integrations", b"")
    assert req.auth_scheme == "basic"


async def test_list_sort_is_sent_encoded(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """sort= reaches the server as a query parameter, '-' prefix kept."""
    fake.seed(integrations=3, logs_per_integration=0, seed=1)
    result = await client.integrations.list(sort="-created_at")
    created = [i.created_at for i in result if i.created_at is not None]
    assert len(created) == len(result)
    assert created == sorted(created, reverse=True)
    assert fake.requests[-1].query == {"sort": "-created_at"}


async def test_get_one(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """get() returns the integration with the spec's field names."""
    stored = fake.add_integration(shop_name="Shop A", webhook_active=False)
    got = await client.integrations.get(stored["id"])
    assert got.id == stored["id"]
    assert got.shop_name == "Shop A"
    assert fake.requests[-1].path == f"/integrations/{stored['id']}"


async def test_get_unknown_raises_not_found(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """A 404 becomes NotFoundError with the server's code and detail and the URL."""
    with pytest.raises(sc.NotFoundError) as info:
        await client.integrations.get(999_999)
    err = info.value
    assert err.status == 404
    assert err.code == "not_found"
    assert err.method == "GET"
    assert err.url.endswith("/integrations/999999")
    assert "404" in str(err)
    assert "not_found" in str(err)
    assert "GET " in str(err)
    assert len(fake.requests) == 1  # a 404 is not retried


async def test_update_sends_only_passed_fields(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """update() sends exactly the fields passed and the server state changes."""
    stored = fake.add_integration(shop_name="Old", feedback_type="eager")
    await client.integrations.update(stored["id"], shop_name="New", feedback_type="none")
    req = fake.requests[-1]
    assert req.method == "PATCH"
    assert req.json == {"shop_name": "New", "feedback_type": "none"}
    assert req.headers["Content-Type"] == "application/json"
    assert fake.integrations[stored["id"]]["shop_name"] == "New"


async def test_update_webhook_url_none_sends_null(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """webhook_url=None sends an explicit null; leaving it out sends nothing."""
    stored = fake.add_integration(webhook_url="https://shop.example/hook", webhook_active=False)
    await client.integrations.update(stored["id"], webhook_url=None)
    assert fake.requests[-1].json == {"webhook_url": None}
    assert fake.integrations[stored["id"]]["webhook_url"] is None
    await client.integrations.update(
        stored["id"], service_point_enabled=True, service_point_carriers=("ups", "dhl")
    )
    assert fake.requests[-1].json == {
        "service_point_enabled": True,
        "service_point_carriers": ["ups", "dhl"],
    }


async def test_update_server_rejection_is_bad_request(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """The server's 400 (webhook without URL) becomes BadRequestError with its detail."""
    stored = fake.add_integration(webhook_url=None, webhook_active=False)
    with pytest.raises(sc.BadRequestError) as info:
        await client.integrations.update(stored["id"], webhook_active=True)
    assert info.value.status == 400
    assert info.value.errors[0].status == 400  # sent as the string "400"
    assert "Webhook URL required" in str(info.value)


async def test_delete(fake: FakeSendcloud, client: sc.SendcloudClient) -> None:
    """delete() answers None on 204 and the integration is gone."""
    stored = fake.add_integration()
    assert await client.integrations.delete(stored["id"]) is None  # type: ignore[func-returns-value]
    assert stored["id"] not in fake.integrations
    assert fake.requests[-1].method == "DELETE"
    assert fake.requests[-1].body == b""
    with pytest.raises(sc.NotFoundError):
        await client.integrations.delete(stored["id"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shop_name": ""}, "shop_name must not be empty"),
        ({"shop_name": "x" * 251}, "at most 250"),
        ({"shop_name": 5}, "shop_name must be a str"),
        ({"feedback_type": "sometimes"}, "feedback_type must be one of"),
        ({"service_point_enabled": "yes"}, "service_point_enabled must be a bool"),
        ({"service_point_carriers": "ups"}, "service_point_carriers must be a list"),
        ({"webhook_active": 1}, "webhook_active must be a bool"),
        ({"webhook_url": ""}, "webhook_url must not be empty"),
        ({"webhook_active": True, "webhook_url": None}, "needs a webhook_url"),
        ({}, "at least one field"),
    ],
)
async def test_update_bad_input_sends_nothing(
    fake: FakeSendcloud, client: sc.SendcloudClient, kwargs: dict[str, object], message: str
) -> None:
    """Each bad update() argument raises InvalidInputError and no request is sent."""
    with pytest.raises(sc.InvalidInputError, match=message):
        await client.integrations.update(1, **kwargs)  # type: ignore[arg-type]
    assert fake.requests == []


@pytest.mark.parametrize("bad_id", [0, -3, True, "12", 1.5, None])
async def test_bad_integration_id_sends_nothing(
    fake: FakeSendcloud, client: sc.SendcloudClient, bad_id: object
) -> None:
    """An integration_id that is not a positive int is refused before sending, for every call."""
    calls = [
        client.integrations.get(bad_id),  # type: ignore[arg-type]
        client.integrations.delete(bad_id),  # type: ignore[arg-type]
        client.integrations.update(bad_id, shop_name="x"),  # type: ignore[arg-type]
        client.logs.create(bad_id, base_url="https://x"),  # type: ignore[arg-type]
        client.shop_order_statuses.list(bad_id),  # type: ignore[arg-type]
        client.shop_order_statuses.get_mapping(bad_id),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(sc.InvalidInputError, match="integration_id"):
            await call
    if bad_id is not None:  # None means "all integrations" for the log walkers
        with pytest.raises(ValueError, match="integration_id"):
            client.logs.pages(integration_id=bad_id)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="integration_id"):
            client.logs.iter(integration_id=bad_id)  # type: ignore[arg-type]
    assert fake.requests == []
