"""How the watch command writes health events: one line on stderr, one JSON record."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final

import msgspec

from .._watchers import IntegrationFailing, IntegrationRecovered
from .common import PROG

__all__ = ["ENCODER", "event_line", "event_record"]

ENCODER: Final = msgspec.json.Encoder()


def event_record(event: IntegrationFailing | IntegrationRecovered) -> dict[str, object]:
    failing = isinstance(event, IntegrationFailing)
    at = event.since if isinstance(event, IntegrationFailing) else event.failing_since
    return {
        "event": "integration_failing" if failing else "integration_recovered",
        "account": event.account,
        "integration_id": event.integration.id,
        "shop_name": event.integration.shop_name,
        "started_failing_at": at.isoformat(),
        "seen_at": datetime.now(UTC).isoformat(),
    }


def event_line(event: IntegrationFailing | IntegrationRecovered, single: bool) -> str:
    who = "" if single else f"account {event.account}: "
    name = f" ({event.integration.shop_name})" if event.integration.shop_name else ""
    if isinstance(event, IntegrationFailing):
        return (
            f"{PROG}: {who}integration {event.integration.id}{name} started failing "
            f"at {event.since.isoformat()}"
        )
    return (
        f"{PROG}: {who}integration {event.integration.id}{name} recovered "
        f"(failing since {event.failing_since.isoformat()})"
    )
