"""FakeSendcloud delivers signed webhooks; the SDK's receiver helper verifies and decodes them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async import webhooks
from sendcloud_async.testing import FakeSendcloud

SECRET = "fake-webhook-secret"


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 built with webhooks.aiohttp_handler."""

    url: str
    events: list[webhooks.WebhookEvent] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A running receiver that checks signatures with SECRET."""
    app = web.Application()
    runner = web.AppRunner(app, access_log=None)
    events: list[webhooks.WebhookEvent] = []

    async def on_event(event: webhooks.WebhookEvent) -> None:
        events.append(event)

    app.router.add_post("/hooks/sendcloud", webhooks.aiohttp_handler(SECRET, on_event))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Receiver(f"http://127.0.0.1:{port}/hooks/sendcloud", events)
    finally:
        await runner.cleanup()


async def test_update_delivers_signed_integration_updated(
    fake: FakeSendcloud, client: sc.SendcloudClient, receiver: Receiver
) -> None:
    """update(webhook_active=True, webhook_url=receiver) makes the fake deliver a verified event."""
    iid = fake.add_integration(shop_name="Hooked shop", webhook_active=False)["id"]
    await client.integrations.update(iid, webhook_active=True, webhook_url=receiver.url)
    await fake.drain_webhooks()
    (delivery,) = fake.webhook_deliveries
    assert delivery.ok
    assert delivery.status == 200
    assert delivery.action == "integration_updated"
    webhooks.verify_signature(delivery.body, delivery.signature, SECRET)
    (event,) = receiver.events
    assert isinstance(event, webhooks.IntegrationUpdated)
    assert event.integration is not None
    assert event.integration.id == iid
    assert event.integration.shop_name == "Hooked shop"
    assert event.integration.webhook_url == receiver.url
    assert event.timestamp.tzinfo is not None


async def test_delete_delivers_integration_deleted(
    fake: FakeSendcloud, client: sc.SendcloudClient, receiver: Receiver
) -> None:
    """Deleting an integration with an active webhook delivers integration_deleted."""
    iid = fake.add_integration(webhook_active=True, webhook_url=receiver.url)["id"]
    await client.integrations.delete(iid)
    await fake.drain_webhooks()
    assert [type(e) for e in receiver.events] == [webhooks.IntegrationDeleted]


async def test_inactive_webhook_gets_nothing(
    fake: FakeSendcloud, client: sc.SendcloudClient, receiver: Receiver
) -> None:
    """Changes to an integration whose webhook is inactive deliver nothing."""
    iid = fake.add_integration(webhook_active=False, webhook_url=receiver.url)["id"]
    await client.integrations.update(iid, shop_name="Quiet")
    await fake.drain_webhooks()
    assert fake.webhook_deliveries == []
    assert receiver.events == []


async def test_wrong_secret_is_rejected_by_receiver(
    fake: FakeSendcloud, client: sc.SendcloudClient, receiver: Receiver
) -> None:
    """A delivery signed with another secret is answered 401 and never reaches the callback."""
    fake.webhook_secret = "another-secret"
    iid = fake.add_integration(webhook_active=True, webhook_url=receiver.url)["id"]
    await client.integrations.update(iid, shop_name="Tampered")
    await fake.drain_webhooks()
    assert [d.status for d in fake.webhook_deliveries] == [401]
    assert receiver.events == []


async def test_manual_parcel_and_return_events(fake: FakeSendcloud, receiver: Receiver) -> None:
    """send_webhook delivers parcel_status_changed and return_created events by hand."""
    iid = fake.add_integration(webhook_active=True, webhook_url=receiver.url)["id"]
    parcel = await fake.send_webhook(
        iid,
        "parcel_status_changed",
        parcel={
            "id": 7,
            "tracking_number": "3SYZXG1",
            "status": {"id": 11, "message": "Delivered"},
        },
    )
    ret = await fake.send_webhook(iid, "return_created", data={"id": 42, "order_number": "ORD1"})
    assert parcel.ok
    assert ret.ok
    first, second = receiver.events
    assert isinstance(first, webhooks.ParcelStatusChanged)
    assert first.parcel is not None
    assert first.parcel.tracking_number == "3SYZXG1"
    assert isinstance(second, webhooks.ReturnCreated)
    assert second.data.id == 42


async def test_non_loopback_webhook_url_is_refused(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """The fake never sends to a non-loopback URL; it records the refusal instead."""
    iid = fake.add_integration(webhook_active=False)["id"]
    await client.integrations.update(
        iid, webhook_active=True, webhook_url="https://shop.example/hooks"
    )
    await fake.drain_webhooks()
    (delivery,) = fake.webhook_deliveries
    assert delivery.status is None
    assert delivery.error is not None
    assert "loopback" in delivery.error


async def test_unreachable_receiver_is_recorded(fake: FakeSendcloud) -> None:
    """A receiver that is not listening gives a delivery with an error and no status."""
    iid = fake.add_integration(webhook_active=True, webhook_url="http://127.0.0.1:9/h")["id"]
    delivery = await fake.send_webhook(iid, "integration_connected")
    assert delivery.status is None
    assert delivery.error is not None
    assert not delivery.ok
