"""FakeSendcloud delivers signed webhooks; the SDK's receiver helper verifies and decodes them."""

from __future__ import annotations

import ast
import asyncio
import collections
import hashlib
import hmac
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

import sendcloud_async as sc
from sendcloud_async import webhooks
from sendcloud_async.testing import FakeSendcloud
from sendcloud_async.testing import _webhooks as sc_testing_webhooks
from tests._serve import serving

SECRET = "fake-webhook-secret"


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 built with webhooks.aiohttp_handler."""

    url: str
    events: list[webhooks.WebhookEvent] = field(default_factory=list)


@asynccontextmanager
async def serve_raw(
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """A bare aiohttp receiver with ``handler`` on 127.0.0.1; yields its URL."""
    app = web.Application()
    app.router.add_post("/raw", handler)
    async with serving(app, "/raw") as url:
        yield url


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A running receiver that checks signatures with SECRET."""
    events: list[webhooks.WebhookEvent] = []

    async def on_event(event: webhooks.WebhookEvent) -> None:
        """Record the event."""
        events.append(event)

    app = web.Application()
    app.router.add_post("/hooks/sendcloud", webhooks.aiohttp_handler(SECRET, on_event))
    async with serving(app, "/hooks/sendcloud") as url:
        yield Receiver(url, events)


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


# --------------------------------------------------------------------------- scattered delivery


@dataclass
class Applied:
    """What a receiver with a ledger did: every handler call and each parcel's current state."""

    url: str
    ledger: webhooks.EventLedger
    calls: list[tuple[int, int]] = field(default_factory=list)
    succeeded: list[tuple[int, int]] = field(default_factory=list)
    state: dict[int, int] = field(default_factory=dict)
    #: (parcel, millisecond timestamp) pairs whose first handler call fails.
    fail_once: set[tuple[int, int]] = field(default_factory=set)


@asynccontextmanager
async def applying_receiver(
    fail_once: set[tuple[int, int]] | None = None, *, slow: float = 0.0
) -> AsyncIterator[Applied]:
    """A receiver with an EventLedger whose handler sets parcel -> event time (last write wins)."""
    applied = Applied("", webhooks.EventLedger(), fail_once=set(fail_once or ()))

    async def on_event(event: webhooks.WebhookEvent) -> None:
        """Apply the parcel's new state; fail once for the events in fail_once."""
        assert isinstance(event, webhooks.ParcelStatusChanged)
        assert event.parcel is not None
        assert event.parcel.id is not None
        key = (event.parcel.id, int(event.timestamp_raw))
        applied.calls.append(key)
        if key in applied.fail_once:
            applied.fail_once.discard(key)
            raise RuntimeError("the database is briefly down")
        if slow:  # work that takes a while: deliveries overlap without the ledger's claims
            await asyncio.sleep(slow)
        applied.state[key[0]] = key[1]
        applied.succeeded.append(key)

    app = web.Application()
    app.router.add_post("/hooks", webhooks.aiohttp_handler(SECRET, on_event, ledger=applied.ledger))
    async with serving(app, "/hooks") as applied.url:
        yield applied


def parcel_events(parcels: int, per_parcel: int, *, base: int = 1_764_000_000_000) -> list[Any]:
    """``parcels * per_parcel`` parcel_status_changed events with distinct ms timestamps."""
    return [
        {
            "action": "parcel_status_changed",
            "timestamp": base + parcel * 100_000 + n * 1000,
            "parcel": {"id": parcel, "status": {"id": n}},
        }
        for parcel in range(1, parcels + 1)
        for n in range(per_parcel)
    ]


def newest(events: list[Any]) -> dict[int, int]:
    """Each parcel's newest event time."""
    best: dict[int, int] = {}
    for event in events:
        parcel = event["parcel"]["id"]
        best[parcel] = max(best.get(parcel, 0), event["timestamp"])
    return best


async def test_scattered_stream_of_1000_applies_exactly_the_newest_per_parcel(
    fake: FakeSendcloud, caplog: pytest.LogCaptureFixture
) -> None:
    """1,000 events, 50 parcels, shuffled, 30% twice, 10% late, some failing once: newest wins."""
    events = parcel_events(50, 20)
    expected = newest(events)
    # The newest event of every fifth parcel, and some others, fail on their first call.
    fail_once = {(p, t) for p, t in expected.items() if p % 5 == 0}
    fail_once |= {(e["parcel"]["id"], e["timestamp"]) for e in events[::37]}
    caplog.set_level(logging.CRITICAL, logger="aiohttp.server")
    async with applying_receiver(fail_once, slow=0.002) as receiver:
        iid = fake.add_integration(webhook_active=True, webhook_url=receiver.url)["id"]
        attempts = await fake.deliver_webhooks(
            iid, events, duplicates=0.3, late=0.1, concurrency=16, seed=19
        )
    ledger = receiver.ledger
    assert receiver.state == expected
    # the handler succeeded once per admitted event, and only for admitted events
    assert len(receiver.succeeded) == len(set(receiver.succeeded)) == ledger.counts["new"]
    assert len(receiver.calls) == ledger.counts["new"] + ledger.counts["failed"]
    # a parcel's applied events only ever moved forward in time
    for parcel in expected:
        times = [t for p, t in receiver.succeeded if p == parcel]
        assert times == sorted(times)
        assert times[-1] == expected[parcel]
    # every newest event that failed first was processed on its retry
    assert {(p, t) for p, t in expected.items() if p % 5 == 0} <= set(receiver.succeeded)
    assert ledger.counts["failed"] == len(fail_once - receiver.fail_once) >= 10
    # what the fake sent: 1,300 events, failures retried, every chain acknowledged in the end
    assert len([a for a in attempts if a.attempt == 1]) == 1300
    # each of the 1,300 chains of attempts ended in exactly one 200: new, duplicate or stale
    assert ledger.counts["new"] + ledger.counts["duplicate"] + ledger.counts["stale"] == 1300
    assert {a.status for a in attempts} <= {200, 409, 500}
    assert {a.body for a in attempts if a.ok} == {a.body for a in attempts}
    assert sum(ledger.counts.values()) == len(attempts)


async def test_failed_deliveries_are_retried_on_the_scaled_schedule(fake: FakeSendcloud) -> None:
    """A receiver that fails twice gets the same body again after ~5 and ~10 (scaled) minutes."""
    statuses = iter([503, 500])
    arrivals: list[tuple[float, bytes, str]] = []

    async def flaky(request: web.Request) -> web.Response:
        """Answer 503, then 500, then 200."""
        arrivals.append(
            (time.monotonic(), await request.read(), request.headers["Sendcloud-Signature"])
        )
        return web.Response(status=next(statuses, 200))

    async with serve_raw(flaky) as url:
        iid = fake.add_integration(webhook_active=True, webhook_url=url)["id"]
        fake.webhook_retry_scale = 1e-4  # 300 s -> 30 ms
        attempts = await fake.deliver_webhooks(iid, [{"action": "integration_updated"}])
    assert [(a.attempt, a.status) for a in attempts] == [(1, 503), (2, 500), (3, 200)]
    assert len({body for _, body, _ in arrivals}) == 1
    assert len({sig for _, _, sig in arrivals}) == 1
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(arrivals)]
    assert 0.03 <= gaps[0] < 0.5
    assert 0.06 <= gaps[1] < 0.6
    assert fake.webhook_deliveries == attempts


async def test_a_receiver_that_always_fails_gets_eleven_attempts(fake: FakeSendcloud) -> None:
    """Like Sendcloud: the first try and 10 retries, then the fake gives up."""

    async def down(request: web.Request) -> web.Response:
        """Always 500."""
        return web.Response(status=500)

    async with serve_raw(down) as url:
        iid = fake.add_integration(webhook_active=True, webhook_url=url)["id"]
        fake.webhook_retry_scale = 1e-6
        attempts = await fake.deliver_webhooks(iid, [{"action": "integration_updated"}])
    assert [a.attempt for a in attempts] == list(range(1, 12))
    assert not any(a.ok for a in attempts)


async def test_without_retry_and_shuffle_the_order_is_exactly_as_given(
    fake: FakeSendcloud,
) -> None:
    """shuffle=False, retry=False, concurrency=1 sends the events once each, in the order given."""
    received: list[int] = []

    async def record(request: web.Request) -> web.Response:
        """Record the parcel id; answer 500 (not retried)."""
        received.append(json.loads(await request.read())["parcel"]["id"])
        return web.Response(status=500)

    events = parcel_events(5, 1)[::-1]
    async with serve_raw(record) as url:
        iid = fake.add_integration(webhook_active=True, webhook_url=url)["id"]
        attempts = await fake.deliver_webhooks(
            iid, events, shuffle=False, retry=False, concurrency=1
        )
    assert received == [5, 4, 3, 2, 1]
    assert [a.status for a in attempts] == [500] * 5


async def test_late_events_arrive_after_all_the_others(fake: FakeSendcloud) -> None:
    """late=0.25 holds a quarter of the deliveries back until the rest were answered."""
    received: list[int] = []

    async def record(request: web.Request) -> web.Response:
        """Record the event time."""
        received.append(json.loads(await request.read())["timestamp"])
        return web.Response(status=200)

    events = parcel_events(1, 20)
    async with serve_raw(record) as url:
        iid = fake.add_integration(webhook_active=True, webhook_url=url)["id"]
        attempts = await fake.deliver_webhooks(iid, events, late=0.25, shuffle=False, concurrency=1)
    late = received[15:]
    assert len(received) == 20
    assert sorted(received) == [e["timestamp"] for e in events]
    assert late == sorted(late)
    assert received[:15] == sorted(received[:15])
    assert received != sorted(received)  # the held-back ones came after newer ones
    assert all(a.ok for a in attempts)


async def test_duplicates_deliver_that_share_of_events_twice(fake: FakeSendcloud) -> None:
    """duplicates=0.5 on 10 events sends 15 bodies: 5 of them twice, byte for byte."""
    bodies: list[bytes] = []

    async def record(request: web.Request) -> web.Response:
        """Record the body."""
        bodies.append(await request.read())
        return web.Response(status=200)

    async with serve_raw(record) as url:
        iid = fake.add_integration(webhook_active=True, webhook_url=url)["id"]
        await fake.deliver_webhooks(iid, parcel_events(10, 1), duplicates=0.5)
    assert len(bodies) == 15
    assert sorted(collections.Counter(bodies).values()) == [1] * 5 + [2] * 5


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"duplicates": 1.5}, "duplicates must be between 0 and 1, got 1.5"),
        ({"late": -0.1}, "late must be between 0 and 1, got -0.1"),
        ({"concurrency": 0}, "concurrency must be a positive int, got 0"),
    ],
)
async def test_bad_stream_options_send_nothing(
    fake: FakeSendcloud, receiver: Receiver, options: dict[str, Any], message: str
) -> None:
    """A bad share or concurrency raises ValueError before anything is sent."""
    iid = fake.add_integration(webhook_active=True, webhook_url=receiver.url)["id"]
    with pytest.raises(ValueError, match="must be") as info:
        await fake.deliver_webhooks(iid, parcel_events(2, 2), **options)
    assert str(info.value) == message
    assert fake.webhook_deliveries == []
    assert receiver.events == []


async def test_event_without_action_or_integration_without_url_sends_nothing(
    fake: FakeSendcloud, receiver: Receiver
) -> None:
    """An event with no action, or an integration with no webhook_url, raises; nothing is sent."""
    iid = fake.add_integration(webhook_active=True, webhook_url=receiver.url)["id"]
    with pytest.raises(ValueError, match="every event needs an 'action' string"):
        await fake.deliver_webhooks(iid, [{"action": "integration_updated"}, {"timestamp": 1}])
    bare = fake.add_integration(webhook_active=False)["id"]
    with pytest.raises(ValueError, match=f"integration {bare} has no webhook_url"):
        await fake.deliver_webhooks(bare, [{"action": "integration_updated"}])
    assert fake.webhook_deliveries == []
    assert receiver.events == []


async def test_refused_url_is_not_retried(fake: FakeSendcloud) -> None:
    """A non-loopback webhook_url is refused once, not retried ten times."""
    iid = fake.add_integration(webhook_active=False, webhook_url="https://shop.example/h")["id"]
    attempts = await fake.deliver_webhooks(iid, [{"action": "integration_updated"}])
    assert [(a.attempt, a.status) for a in attempts] == [(1, None)]
    assert attempts[0].error is not None
    assert "loopback" in attempts[0].error


# --------------------------------------------------------------------------- an independent referee

SPEC_VECTOR = "1eed4b3d41f4653ac64fd56f1bf1cbfd349e4482cbc11dff7134bd93e5da4b0a"


async def test_the_fake_signs_the_spec_vector_by_itself(fake: FakeSendcloud) -> None:
    """The fake's own signing reproduces the spec's known vector, without the SDK's helper."""
    seen: list[tuple[bytes, str]] = []

    async def record(request: web.Request) -> web.Response:
        """Record body and signature."""
        seen.append((await request.read(), request.headers["Sendcloud-Signature"]))
        return web.Response(status=200)

    fake.webhook_secret = "secretkey"
    async with serve_raw(record) as url:
        iid = fake.add_integration(webhook_active=True, webhook_url=url)["id"]
        await fake.deliver_webhooks(iid, [{"action": "custom", "timestamp": 1}], retry=False)
    body, signature = seen[0]
    assert body == b'{"action":"custom","timestamp":1}'
    expected = hmac.new(b"secretkey", body, hashlib.sha256).hexdigest()
    assert signature == expected
    fake_sign = sc_testing_webhooks._sign
    assert fake_sign(b'{"key": "value"}', "secretkey") == SPEC_VECTOR


def imported_modules(tree: ast.Module, package: str) -> set[str]:
    """Every module (and ``module.name``) a module of ``package`` imports, made absolute."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            parts = package.split(".")
            base = ".".join(parts[: len(parts) - node.level + 1]) if node.level else ""
            module = ".".join(x for x in (base, node.module or "") if x)
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def test_testing_package_imports_no_webhook_protocol_code() -> None:
    """No module of sendcloud_async.testing imports sendcloud_async.webhooks (or from it)."""
    package = Path(sc_testing_webhooks.__file__).parent
    offenders = {
        path.name: sorted(m for m in modules if m.startswith("sendcloud_async.webhooks"))
        for path in sorted(package.glob("*.py"))
        if (
            modules := imported_modules(
                ast.parse(path.read_text("utf-8")), "sendcloud_async.testing"
            )
        )
    }
    assert {name: found for name, found in offenders.items() if found} == {}
    assert "sendcloud_async._validate.is_loopback" in imported_modules(
        ast.parse(Path(sc_testing_webhooks.__file__).read_text("utf-8")), "sendcloud_async.testing"
    )
    assert "sendcloud_async.webhooks" in imported_modules(
        ast.parse("from .. import webhooks"), "sendcloud_async.testing"
    )
