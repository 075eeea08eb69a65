"""Every call names its operation: observer events and log records carry name and path template.

Over real sockets against FakeSendcloud: the template, filled in, is the path the
server received, for every operation the client offers.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

import sendcloud_async as sc
from sendcloud_async._observe import Event, Finished, Sending, observing
from sendcloud_async.testing import FakeSendcloud, Fault, RetryEvent


class Recorder:
    """An observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        """Keep the event."""
        self.events.append(event)


async def _drain(items: AsyncIterator[Any]) -> None:
    async for _ in items:
        pass


STATUSES = [{"external_id": "7", "translations": [{"status": "Sent", "language": "en-gb"}]}]
MAPPING = {"READY_TO_SEND": "7", "IN_TRANSIT": "7", "DELIVERED": "7", "CANCEL": None}

Call = Callable[[sc.SendcloudClient, int], Awaitable[Any]]

#: (what the caller does, operation, template, method): every operation of the client.
CALLS: list[tuple[str, Call, str, str, str]] = [
    (
        "integrations.list",
        lambda c, i: c.integrations.list(sort="-created_at"),
        "integrations.list",
        "/integrations",
        "GET",
    ),
    (
        "integrations.get",
        lambda c, i: c.integrations.get(i),
        "integrations.get",
        "/integrations/{id}",
        "GET",
    ),
    (
        "integrations.update",
        lambda c, i: c.integrations.update(i, shop_name="Shop"),
        "integrations.update",
        "/integrations/{id}",
        "PATCH",
    ),
    (
        "logs.create",
        lambda c, i: c.logs.create(i, base_url="https://shop.example"),
        "logs.create",
        "/integrations/{id}/logs",
        "POST",
    ),
    (
        "logs.pages",
        lambda c, i: _drain(c.logs.pages(page_size=1)),
        "logs.list",
        "/integrations/logs",
        "GET",
    ),
    (
        "logs.iter one integration",
        lambda c, i: _drain(c.logs.iter(integration_id=i, page_size=1, read_ahead=0)),
        "logs.list",
        "/integrations/{id}/logs",
        "GET",
    ),
    (
        "logs.watch",
        lambda c, i: _drain(c.logs.watch(integration_id=i, start="all", once=True)),
        "logs.list",
        "/integrations/{id}/logs",
        "GET",
    ),
    (
        "shop_order_statuses.replace",
        lambda c, i: c.shop_order_statuses.replace(i, STATUSES),
        "shop_order_statuses.replace",
        "/shop-order-statuses",
        "POST",
    ),
    (
        "shop_order_statuses.list",
        lambda c, i: c.shop_order_statuses.list(i, show_deleted=True),
        "shop_order_statuses.list",
        "/shop-order-statuses",
        "GET",
    ),
    (
        "shop_order_statuses.set_mapping",
        lambda c, i: c.shop_order_statuses.set_mapping(i, MAPPING),
        "shop_order_statuses.set_mapping",
        "/shop-order-statuses/mapping",
        "POST",
    ),
    (
        "shop_order_statuses.get_mapping",
        lambda c, i: c.shop_order_statuses.get_mapping(i),
        "shop_order_statuses.get_mapping",
        "/shop-order-statuses/mapping",
        "GET",
    ),
    (
        "integrations.delete",
        lambda c, i: c.integrations.delete(i),
        "integrations.delete",
        "/integrations/{id}",
        "DELETE",
    ),
]


async def test_every_call_reports_its_operation_and_template(
    fake: FakeSendcloud, client: sc.SendcloudClient
) -> None:
    """Each event of a call names its operation and template; filled in, it is the path sent."""
    iid = fake.add_integration()["id"]
    for _ in range(3):
        fake.add_log(iid)
    for label, call, name, template, method in CALLS:
        fake.clear_requests()
        recorder = Recorder()
        with observing(recorder):
            await call(client, iid)
        assert fake.requests, label
        sent = [e for e in recorder.events if isinstance(e, Sending)]
        done = [e for e in recorder.events if isinstance(e, Finished)]
        assert len(sent) == len(done) == len(fake.requests), label
        for event in recorder.events:
            assert (event.operation, event.template, event.method) == (name, template, method), (
                label
            )
        for request in fake.requests:
            assert (request.method, request.path) == (method, template.format(id=iid)), label


async def test_a_retry_wait_names_the_operation_too(
    fake: FakeSendcloud, client: sc.SendcloudClient, retries: list[RetryEvent]
) -> None:
    """The retry's Waiting event carries the operation: a display can say what waits."""
    iid = fake.add_integration()["id"]
    fake.inject("GET", "/integrations/{id}", Fault.status(503))
    recorder = Recorder()
    with observing(recorder):
        await client.integrations.get(iid)
    kinds = [(type(e).__name__, e.operation, e.template) for e in recorder.events]
    assert kinds == [
        ("Sending", "integrations.get", "/integrations/{id}"),
        ("Finished", "integrations.get", "/integrations/{id}"),
        ("Waiting", "integrations.get", "/integrations/{id}"),
        ("Sending", "integrations.get", "/integrations/{id}"),
        ("Finished", "integrations.get", "/integrations/{id}"),
        ("CallEnded", "integrations.get", "/integrations/{id}"),
    ]
    assert len(retries) == 1


async def test_log_records_carry_operation_and_template(
    fake: FakeSendcloud,
    client: sc.SendcloudClient,
    retries: list[RetryEvent],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each DEBUG attempt line and each retry line has ``operation`` and ``url_template``."""
    caplog.set_level(logging.DEBUG, logger="sendcloud_async")
    iid = fake.add_integration()["id"]
    fake.inject("GET", "/integrations/{id}", Fault.status(502))
    await client.integrations.get(iid)
    records = [r for r in caplog.records if r.name == "sendcloud_async"]
    attempts = [r for r in records if r.levelno == logging.DEBUG and " -> " in r.getMessage()]
    retried = [r for r in records if "retrying in" in r.getMessage()]
    assert len(attempts) == 2
    assert len(retried) == 1
    for record in attempts + retried:
        assert record.operation == "integrations.get"  # type: ignore[attr-defined]
        assert record.url_template == "/integrations/{id}"  # type: ignore[attr-defined]
    assert f"/integrations/{iid} -> 502 in " in attempts[0].getMessage()
