"""How the watch command writes events: one line on stderr, one JSON record in ``--events``.

Health events (``IntegrationFailing``, ``IntegrationRecovered``) come from every watch;
the Redis watch adds the coordinator's state changes (``coordinator_record``): a
lease claimed, taken over, released, rebalanced, given up, lost or refused by the
fence, Redis down and up, an account failing and recovered. Each record has
``event`` (its name), the event's fields and ``seen_at``; a new kind of event is a
new name with fields of its own, and readers skip the names they do not know.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Final

import msgspec

from .._watchers import IntegrationFailing, IntegrationRecovered, NewLogs
from .common import PROG, UsageError

if TYPE_CHECKING:
    from .._redis._watch import CoordinatorEvent
    from .logline import Level
    from .progress import Progress

__all__ = [
    "announce",
    "coordinator_record",
    "event_line",
    "event_record",
    "late_line",
    "late_record",
    "open_events",
    "write_record",
]

ENCODER: Final = msgspec.json.Encoder()


def announce(
    progress: Progress,
    events: IO[str] | None,
    event: IntegrationFailing | IntegrationRecovered | NewLogs,
    *,
    single: bool,
    worst_late: float = 0.0,
) -> None:
    """Say a health event, or the late logs of a batch (``worst_late``: the worst lateness
    seen so far): its stderr line (its fields in a JSON log) and its ``--events`` record."""
    level: Level = "warning" if isinstance(event, IntegrationFailing) else "info"
    if isinstance(event, NewLogs):
        record, line = late_record(event), late_line(event, single, worst_late)
    else:
        record, line = event_record(event), event_line(event, single)
    fields = {key: value for key, value in record.items() if key != "event"}
    progress.message(line, level=level, event=str(record["event"]), **fields)
    write_record(events, record)


def open_events(path: str | None) -> IO[str] | None:
    """The ``--events`` file, opened to append (``None``: no such option given).

    ``UsageError`` if it cannot be written: the command refuses before it sends anything.
    """
    if path is None:
        return None
    try:
        return open(path, "a", encoding="utf-8")  # closed by the command
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


def write_record(events: IO[str] | None, record: dict[str, object]) -> None:
    """Append ``record`` to the ``--events`` file (if there is one), as one JSON line."""
    if events is not None:
        events.write(ENCODER.encode(record).decode() + "\n")
        events.flush()


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


def late_record(event: NewLogs) -> dict[str, object]:
    """A batch with logs that became visible behind the mark (the ``--events`` record)."""
    return {
        "event": "late_logs",
        "account": event.account,
        "logs": len(event.late),
        "worst_behind_s": round(event.lateness, 3),
        "ids": [log.id for log in event.late],
        "seen_at": datetime.now(UTC).isoformat(),
    }


def late_line(event: NewLogs, single: bool, worst: float) -> str:
    """The stderr line of such a batch; ``worst``: the worst lateness seen so far."""
    who = "" if single else f"account {event.account}: "
    return (
        f"{PROG}: {who}{len(event.late)} log(s) became visible late, up to "
        f"{event.lateness:.1f} s behind the newest (worst so far {worst:.1f} s)"
    )


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


def coordinator_record(event: CoordinatorEvent, name: str, worker: str) -> dict[str, object]:
    """The ``--events`` record of a Redis watch coordinator's event, from ``worker``.

    ``{"event": "lease_taken_over", "account": …, "token": …, "how": …,
    "previous": …, "worker": …, "seen_at": …}``: ``name`` (the event's name, as
    ``describe_event`` gives it), the fields of its ``sendcloud_async.events`` class (times
    in ISO 8601), which worker saw it, and when.
    """
    record: dict[str, object] = {"event": name}
    for item in dataclasses.fields(event):
        value = getattr(event, item.name)
        record[item.name] = value.isoformat() if isinstance(value, datetime) else value
    record["worker"] = worker
    record["seen_at"] = datetime.now(UTC).isoformat()
    return record
