"""The fake's webhook sender: signed events POSTed to an integration's ``webhook_url``.

Like Sendcloud, the fake signs each body with HMAC-SHA256 (hex, in the
``Sendcloud-Signature`` header) using a secret the test chooses. It only ever
delivers to loopback URLs: anything else is recorded as refused and nothing is
sent. Deliveries run after the API response, in tasks the fake awaits on close.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import aiohttp
import msgspec
from yarl import URL

from .. import webhooks
from .._validate import is_loopback

__all__ = ["WebhookDelivery", "WebhookSender", "integration_payload"]

_ENCODER: Final = msgspec.json.Encoder()


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
    """Signs and delivers events; keeps every delivery in ``deliveries``."""

    def __init__(self, secret: str, *, timeout: float = 5.0) -> None:
        self.secret = secret
        self.deliveries: list[WebhookDelivery] = []
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._pending: set[asyncio.Task[WebhookDelivery]] = set()

    def schedule(self, url: str, payload: dict[str, Any]) -> None:
        """Deliver ``payload`` to ``url`` in the background (after the current response)."""
        task = asyncio.get_running_loop().create_task(self.deliver(url, payload))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def deliver(self, url: str, payload: dict[str, Any]) -> WebhookDelivery:
        """Sign ``payload`` and POST it to ``url`` now; returns (and records) the delivery."""
        body = _ENCODER.encode(payload)
        signature = webhooks.sign(body, self.secret)
        action = str(payload.get("action", ""))
        if not _is_loopback_url(url):
            delivery = WebhookDelivery(
                url, action, body, signature, None, "refused: the fake only delivers to loopback"
            )
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
                    webhooks.SIGNATURE_HEADER: signature,
                    "User-Agent": "FakeSendcloud-Webhooks",
                },
                allow_redirects=False,
            ) as resp:
                await resp.read()
                delivery = WebhookDelivery(url, action, body, signature, resp.status)
        except (aiohttp.ClientError, TimeoutError) as exc:
            delivery = WebhookDelivery(
                url, action, body, signature, None, f"{type(exc).__name__}: {exc}"
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


def now_iso() -> str:
    """Now as an ISO 8601 string in UTC."""
    return datetime.now(UTC).isoformat()
