"""The whole public API, used as a user would, for ``mypy --strict`` (the typing session).

``assert_type`` pins what each call returns, so a change to a public signature or
return type shows up as a type error here. ``test_usage.py`` also runs
``exercise`` against a FakeSendcloud, so every line is known to work; nothing
here talks to the network.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any, Literal, assert_type

import aiohttp
from aiohttp import web
from yarl import URL

import sendcloud_async as sc
from sendcloud_async import webhooks
from sendcloud_async.testing import (
    FakeSendcloud,
    Fault,
    InjectedFault,
    RecordedRequest,
    RetryEvent,
    ScriptedResponse,
    WebhookDelivery,
    instant_retries,
)


def configure() -> list[sc.SendcloudClient]:
    """Every way to build credentials and clients (none is opened)."""
    basic = sc.BasicAuth("public-key", "secret-key")
    assert_type(basic.public_key, str)
    oauth = sc.OAuth2ClientCredentials(
        "client-id",
        "client-secret",
        token_url="https://account.sendcloud.com/oauth2/token/",
        scope="api",
    )
    assert_type(oauth.token_url, str)
    assert_type(oauth.client_id, str)
    clients = [
        sc.SendcloudClient(auth=basic),
        sc.SendcloudClient(
            auth=oauth,
            base_url=URL("https://panel.sendcloud.sc/api/v3"),
            timeout=aiohttp.ClientTimeout(total=10),
            max_retries=0,
            rate_limit=sc.RateLimits(),
            state=sc.MemoryState(),
        ),
    ]
    faster = clients[0].with_options(timeout=5.0, max_retries=1)
    assert_type(faster, sc.SendcloudClient)
    assert_type(faster.base_url, URL)
    assert_type(faster.closed, bool)
    assert_type(sc.AccountPool(), sc.AccountPool)
    assert_type(sc.__version__, str)
    return clients


async def exercise(client: sc.SendcloudClient, integration_id: int) -> None:
    """Every resource call, with the types it returns."""
    integrations = await client.integrations.list(sort="-updated_at")
    assert_type(integrations, list[sc.Integration])
    integration = await client.integrations.get(integration_id)
    assert_type(integration, sc.Integration)
    assert_type(integration.id, int)
    assert_type(integration.created_at, datetime | None)
    assert_type(
        await client.integrations.update(
            integration_id,
            shop_name="My shop",
            shop_url="https://shop.example/",
            service_point_enabled=True,
            service_point_carriers=["ups", "dhl"],
            webhook_active=False,
            webhook_url=None,
            feedback_type="eager",
        ),
        None,
    )

    log = await client.logs.create(
        integration_id,
        base_url="https://shop.example",
        full_url="https://shop.example/order-note.json",
        method="POST",
        response_code=500,
        response=sc.LogResponse(headers={"Content-Type": "text/html"}, body="<html/>"),
        request=sc.LogRequest(headers={"Accept": "*/*"}, payload={"note": "x"}),
        created_at=datetime(2024, 5, 1, 12, tzinfo=UTC),
        exception_type="requests.exceptions.Timeout",
        exception="Timeout while posting the order note",
    )
    assert_type(log, sc.IntegrationLog)
    assert_type(log.base_url, str)
    async for item in client.logs.iter(integration_id=integration_id, page_size=100):
        assert_type(item, sc.IntegrationLog)
    async for page in client.logs.pages(page_size=50, cursor=datetime(2020, 1, 1, tzinfo=UTC)):
        assert_type(page, sc.LogPage)
        assert_type(page.items, list[sc.IntegrationLog])
        assert_type(page.next_cursor, str | None)
        assert_type(page.next_url, str | None)

    statuses: list[sc.ShopOrderStatusInput | dict[str, Any]] = [
        sc.ShopOrderStatusInput(
            "17-B",
            [sc.StatusTranslation("Delivered", "en-gb"), sc.StatusTranslation("Bezorgd", "nl-nl")],
        ),
        {"external_id": "14-A", "translations": [{"status": "Cancelled", "language": "en-gb"}]},
    ]
    assert_type(await client.shop_order_statuses.replace(integration_id, statuses), None)
    listed = await client.shop_order_statuses.list(
        integration_id, language="en-gb", show_deleted=True
    )
    assert_type(listed, list[sc.ShopOrderStatus])
    mapping: dict[str, str | None] = {
        "READY_TO_SEND": "17-B",
        "IN_TRANSIT": "17-B",
        "DELIVERED": "17-B",
        "CANCEL": None,
    }
    assert_type(await client.shop_order_statuses.set_mapping(integration_id, mapping), None)
    entries = [sc.StatusMappingEntry(category, external) for category, external in mapping.items()]
    assert_type(await client.shop_order_statuses.set_mapping(integration_id, entries), None)
    current = await client.shop_order_statuses.get_mapping(integration_id)
    assert_type(current, sc.StatusMapping)
    assert_type(current.mapping, list[sc.StatusMappingEntry])

    try:
        await client.integrations.get(10**9)
    except sc.NotFoundError as err:
        assert_type(err.status, int)
        assert_type(err.errors, list[sc.ErrorObject])
        assert_type(err.code, str | None)
        assert_type(err.detail, str | None)
    except sc.RateLimitError as err:
        assert_type(err.retry_after, float | None)
    except (sc.APITimeoutError, sc.APIConnectionError, sc.DecodeError, sc.ServerError):
        raise
    except (sc.BadRequestError, sc.AuthenticationError, sc.PermissionDeniedError):
        raise
    except (sc.APIError, sc.InvalidInputError, sc.SendcloudError):
        raise

    assert_type(await client.integrations.delete(integration_id), None)
    assert_type(await client.aclose(), None)


async def receive(
    body: bytes, signature: str | None
) -> tuple[Literal["event", "signature", "body"], web.Application]:
    """Webhooks: verify, parse, sign, and the aiohttp receiver; what the body was."""
    secret = "webhook-secret"
    assert_type(webhooks.sign(body, secret), str)
    assert_type(webhooks.verify_signature(body, webhooks.sign(body, secret), secret), None)
    outcome: Literal["event", "signature", "body"] = "event"
    try:
        event = webhooks.parse_event(body, signature=signature, secret=secret)
    except webhooks.InvalidSignatureError as err:
        assert_type(err.reason, Literal["missing", "malformed", "mismatch"])
        outcome = "signature"
    except sc.DecodeError:
        outcome = "body"
    else:
        assert_type(event, webhooks.WebhookEvent)
        assert_type(event.action, str)
        match event:
            case webhooks.ParcelStatusChanged(parcel=parcel) if parcel is not None:
                assert_type(parcel, webhooks.Parcel)
            case webhooks.ReturnCreated(data=data):
                assert_type(data, webhooks.ReturnData)
            case webhooks.IntegrationConnected() | webhooks.IntegrationUpdated():
                pass
            case webhooks.IntegrationDeleted(integration=integration):
                assert_type(integration, webhooks.WebhookIntegration | None)
            case webhooks.UnknownEvent(payload=payload):
                assert_type(payload, dict[str, Any])

    async def on_event(event: webhooks.WebhookEvent) -> None:
        print(event.action, file=sys.stderr)

    app = web.Application()
    app.router.add_post("/hook", webhooks.aiohttp_handler(secret, on_event, max_body_size=1024))
    return outcome, app


async def fake_sendcloud() -> None:
    """The testing helpers a user's own tests call."""
    async with FakeSendcloud() as fake:
        assert_type(fake.base_url, str)
        assert_type(fake.token_url, str)
        assert_type(fake.basic_auth, sc.BasicAuth)
        assert_type(fake.oauth2_credentials, sc.OAuth2ClientCredentials)
        fake.seed(integrations=1, logs_per_integration=5, seed=1)
        fake.script("GET", "/integrations", ScriptedResponse(503, body={"errors": []}))
        fake.inject("GET", "/integrations", Fault.status(429, headers={"Retry-After": "1"}))
        with instant_retries() as retries:
            async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as c:
                await c.integrations.list()
        assert_type(retries, list[RetryEvent])
        assert_type(fake.requests, list[RecordedRequest])
        assert_type(fake.injected_faults, list[InjectedFault])
        assert_type(fake.webhook_deliveries, list[WebhookDelivery])


async def watch_and_dedupe(client: sc.SendcloudClient, out: str) -> int:
    """The watch, its state's round trip, the per-integration export and the ledger."""
    import msgspec

    delivered = 0
    state: sc.WatchState | None = None
    async for batch in client.logs.watch(state, start="all", once=True, page_size=100):
        assert_type(batch, sc.LogBatch)
        assert_type(batch.items, list[sc.IntegrationLog])
        saved = msgspec.json.encode(batch.state)
        state = msgspec.json.decode(saved, type=sc.WatchState)
        delivered += len(batch.items)
    stats = await sc.export_logs_per_integration(client, out, concurrency=2)
    assert stats is not None
    assert_type(client.token_requests, int)
    ledger = webhooks.EventLedger()
    body = b'{"action": "integration_deleted", "timestamp": 1525271885993}'
    event = webhooks.parse_event(
        body,
        signature=webhooks.sign(body, "new-secret"),
        secret=("new-secret", "old-secret"),
        max_age=None,
    )
    verdict = await ledger.admit(event)
    assert_type(verdict, Literal["new", "duplicate", "stale"])
    return delivered
