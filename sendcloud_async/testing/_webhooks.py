"""The fake's webhook sender: signed events POSTed to an integration's ``webhook_url``.

Like Sendcloud, the fake signs each body with HMAC-SHA256 (hex, in the
``Sendcloud-Signature`` header) using a secret the test chooses. The signing
here is the referee's own (``hmac`` + ``hashlib``), not the SDK's: a bug in
``sendcloud_async.webhooks`` cannot make the fake agree with it.

It only ever delivers to loopback URLs: anything else is recorded as refused
and nothing is sent. Deliveries scheduled by API calls run after the response,
in tasks the fake awaits on close.

``WebhookEvents`` holds ``FakeSendcloud``'s webhook methods. Its
``deliver_webhooks`` sends a batch of events the way Sendcloud's delivery can
look to a receiver: shuffled (out of order), some twice, some late (after all
the others), and each one retried on failure on Sendcloud's schedule (10
retries, 5 minutes doubling up to an hour apart) scaled down by
``webhook_retry_scale`` so that a test waits milliseconds, not hours.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

import aiohttp
import msgspec
from yarl import URL

from .._validate import is_loopback

if TYPE_CHECKING:
    from ._store import Store

__all__ = [
    "SENDCLOUD_RETRY_DELAYS",
    "SIGNATURE_HEADER",
    "WebhookDelivery",
    "WebhookEvents",
    "WebhookSender",
    "event_payload",
    "integration_payload",
]

_ENCODER: Final = msgspec.json.Encoder()

#: The header Sendcloud puts the signature in.
SIGNATURE_HEADER: Final = "Sendcloud-Signature"

#: Seconds Sendcloud waits before each of its 10 retries of a failed delivery: "starting
#: with a 5 minute delay, and a maximum delay of 1 hour between retries" (about 7¼ h in all).
SENDCLOUD_RETRY_DELAYS: Final = (300.0, 600.0, 1200.0, 2400.0, *(3600.0,) * 6)

_REFUSED: Final = "refused: the fake only delivers to loopback"

#: The default ``retry_scale``: Sendcloud's 5 minutes become 30 ms, its hour 360 ms.
DEFAULT_RETRY_SCALE: Final = 1e-4


def _sign(body: bytes, secret: str) -> str:
    """The hex HMAC-SHA256 of ``body`` keyed with ``secret``, as Sendcloud computes it."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One attempt to deliver an event: what was sent and how the receiver answered."""

    url: str
    action: str
    body: bytes
    signature: str
    #: The receiver's HTTP status, or ``None`` if nothing was received.
    status: int | None
    #: Why the delivery failed without a status (refused URL, connection error).
    error: str | None = None
    #: 1 for the first attempt, 2 to 11 for Sendcloud-style retries of the same body.
    attempt: int = 1

    @property
    def ok(self) -> bool:
        """Whether the receiver answered 2xx."""
        return self.status is not None and 200 <= self.status < 300


def integration_payload(integration: dict[str, Any]) -> dict[str, Any]:
    """An integration in the webhook's v2-style field names."""
    return {
        "id": integration["id"],
        "shop_name": integration.get("shop_name"),
        "shop_url": integration.get("shop_url"),
        "system": integration.get("type"),
        "failing_since": integration.get("started_failing_at"),
        "last_fetch": integration.get("last_fetched_at"),
        "last_updated_at": integration.get("updated_at"),
        "service_point_enabled": integration.get("service_point_enabled", False),
        "service_point_carriers": list(integration.get("service_point_carriers") or []),
        "webhook_active": integration.get("webhook_active", False),
        "webhook_url": integration.get("webhook_url"),
    }


def _is_loopback_url(url: str) -> bool:
    try:
        parsed = URL(url)
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and is_loopback(parsed.host)


class WebhookSender:
    """Signs and delivers events; keeps every delivery attempt in ``deliveries``."""

    def __init__(
        self, secret: str, *, timeout: float = 5.0, retry_scale: float = DEFAULT_RETRY_SCALE
    ) -> None:
        self.secret = secret
        #: Sendcloud's retry delays are multiplied by this (1.0: the real hours).
        self.retry_scale = retry_scale
        self.deliveries: list[WebhookDelivery] = []
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[Any]] = set()

    def schedule(self, url: str, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` to ``url`` in the background (after the current response)."""
        task = asyncio.get_running_loop().create_task(self.deliver(url, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def deliver(self, url: str, payload: dict[str, Any]) -> WebhookDelivery:
        """Sign ``payload`` and POST it to ``url`` now, once; returns (and records) the delivery."""
        body = _ENCODER.encode(payload)
        return await self._attempt(url, str(payload.get("action", "")), body, 1)

    async def deliver_with_retries(
        self,
        urls: str | Sequence[str],
        payload: dict[str, Any],
        *,
        rng: random.Random | None = None,
    ) -> list[WebhookDelivery]:
        """Deliver ``payload``, retrying like Sendcloud until a 2xx or 10 retries are spent.

        Every attempt sends the same body and signature. With several ``urls``
        (receiver processes behind a load balancer) each attempt goes to a
        random one. A refused (non-loopback) URL is not retried.
        """
        targets = [urls] if isinstance(urls, str) else list(urls)
        pick = rng or random.Random()
        body = _ENCODER.encode(payload)
        action = str(payload.get("action", ""))
        attempts: list[WebhookDelivery] = []
        for attempt, delay in enumerate((0.0, *SENDCLOUD_RETRY_DELAYS), start=1):
            if delay:
                await asyncio.sleep(delay * self.retry_scale)
            delivery = await self._attempt(pick.choice(targets), action, body, attempt)
            attempts.append(delivery)
            if delivery.ok or delivery.error == _REFUSED:
                break
        return attempts

    async def _attempt(self, url: str, action: str, body: bytes, attempt: int) -> WebhookDelivery:
        signature = _sign(body, self.secret)
        if not _is_loopback_url(url):
            delivery = WebhookDelivery(url, action, body, signature, None, _REFUSED, attempt)
            self.deliveries.append(delivery)
            return delivery
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                url,
                data=body,
                headers={
                    "Content-Type": "application/json",
                    SIGNATURE_HEADER: signature,
                    "User-Agent": "FakeSendcloud-Webhooks",
                },
                allow_redirects=False,
            ) as resp:
                await resp.read()
                delivery = WebhookDelivery(
                    url, action, body, signature, resp.status, attempt=attempt
                )
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery = WebhookDelivery(
                url, action, body, signature, None, f"{type(exc).__name__}: {exc}", attempt
            )
        self.deliveries.append(delivery)
        return delivery

    async def drain(self) -> None:
        """Wait until every scheduled delivery has finished."""
        while self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def close(self) -> None:
        """Finish pending deliveries and close the sending session."""
        await self.drain()
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def timestamp_ms() -> int:
    """Now, in milliseconds since the epoch (as Sendcloud's integration events send it)."""
    return int(time.time() * 1000)


def event_payload(integration: dict[str, Any], event: dict[str, Any]) -> dict[str, Any]:
    """``event`` as sent for ``integration``: with a ``timestamp`` (now) and the integration."""
    if not isinstance(event.get("action"), str):
        raise ValueError(f"every event needs an 'action' string, got {event!r}")
    payload: dict[str, Any] = {"action": event["action"], "timestamp": timestamp_ms()}
    if event["action"].startswith("integration_"):
        payload["integration"] = integration_payload(integration)
    payload.update(event)
    return payload


class WebhookEvents:
    """``FakeSendcloud``'s webhook methods (see ``sendcloud_async.testing._webhooks``)."""

    _webhooks: WebhookSender
    _store: Store

    @property
    def webhook_secret(self) -> str:
        """The secret webhook bodies are signed with (settable)."""
        return self._webhooks.secret

    @webhook_secret.setter
    def webhook_secret(self, value: str) -> None:
        self._webhooks.secret = value

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook delivery attempt, oldest first."""
        return self._webhooks.deliveries

    async def drain_webhooks(self) -> None:
        """Wait until every webhook the fake has scheduled has been delivered (or failed)."""
        await self._webhooks.drain()

    def _notify(self, integration: dict[str, Any], action: str) -> None:
        # Like Sendcloud: an integration with an active webhook hears about its changes.
        url = integration.get("webhook_url")
        if integration.get("webhook_active") and url:
            payload = {
                "action": action,
                "timestamp": timestamp_ms(),
                "integration": integration_payload(integration),
            }
            self._webhooks.schedule(url, payload)

    async def send_webhook(
        self, integration_id: int, action: str, **fields: Any
    ) -> WebhookDelivery:
        """Deliver an event to an integration's ``webhook_url`` now, whatever its state.

        ``action`` is e.g. ``"parcel_status_changed"`` (pass ``parcel={...}``) or
        ``"return_created"`` (pass ``data={...}``); integration events get the
        integration in the payload. ``timestamp`` defaults to now in milliseconds.
        """
        integration = self._store.integrations[integration_id]
        url = integration.get("webhook_url")
        if not url:
            raise ValueError(f"integration {integration_id} has no webhook_url")
        payload: dict[str, Any] = {"action": action, "timestamp": timestamp_ms()}
        if action.startswith("integration_"):
            payload["integration"] = integration_payload(integration)
        payload.update(fields)
        return await self._webhooks.deliver(url, payload)

    @property
    def webhook_retry_scale(self) -> float:
        """Sendcloud's retry delays (5 minutes to an hour) times this; default 1e-4 (settable)."""
        return self._webhooks.retry_scale

    @webhook_retry_scale.setter
    def webhook_retry_scale(self, value: float) -> None:
        self._webhooks.retry_scale = value

    async def deliver_webhooks(
        self,
        integration_id: int,
        events: list[dict[str, Any]],
        *,
        duplicates: float = 0.0,
        late: float = 0.0,
        shuffle: bool = True,
        retry: bool = True,
        concurrency: int = 8,
        seed: int = 0,
        urls: list[str] | None = None,
    ) -> list[WebhookDelivery]:
        """Deliver ``events`` to the integration's ``webhook_url`` the way Sendcloud may.

        Each event is a dict with at least ``"action"`` (``"timestamp"`` defaults to
        now in milliseconds; integration events get the integration). The stream is
        shuffled, ``duplicates`` (0 to 1) of the events arrive twice, ``late`` of
        the deliveries come after all the others (and a scaled first retry delay
        more), and a delivery that is not answered 2xx is retried on Sendcloud's
        schedule times ``webhook_retry_scale`` (``retry=False``: once only); at most
        ``concurrency`` deliveries are under way at once. ``urls`` replaces the
        ``webhook_url`` with several receivers, a random one per attempt (a load
        balancer). ``seed`` makes it reproducible (the order of concurrent arrivals
        aside). Returns every attempt; they are also in ``webhook_deliveries``.
        """
        integration = self._store.integrations[integration_id]
        targets: str | list[str] | None = urls or integration.get("webhook_url")
        if not targets:
            raise ValueError(f"integration {integration_id} has no webhook_url")
        items = [event_payload(integration, event) for event in events]
        for name, share in (("duplicates", duplicates), ("late", late)):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {share!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be a positive int, got {concurrency!r}")
        sender = self._webhooks
        rng = random.Random(seed)
        items += rng.sample(items, round(len(items) * duplicates))
        if shuffle:
            rng.shuffle(items)
        held = set(rng.sample(range(len(items)), round(len(items) * late)))
        on_time = [item for n, item in enumerate(items) if n not in held]
        held_back = [items[n] for n in sorted(held)]
        gate = asyncio.Semaphore(concurrency)
        sent: list[WebhookDelivery] = []

        async def one(payload: dict[str, Any]) -> None:
            async with gate:
                if retry:
                    sent.extend(await sender.deliver_with_retries(targets, payload, rng=rng))
                else:
                    target = targets if isinstance(targets, str) else rng.choice(targets)
                    sent.append(await sender.deliver(target, payload))

        await asyncio.gather(*(one(p) for p in on_time))
        if held_back:
            await asyncio.sleep(SENDCLOUD_RETRY_DELAYS[0] * sender.retry_scale)
            await asyncio.gather(*(one(p) for p in held_back))
        return sent
