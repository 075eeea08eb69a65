"""What one line on stderr looks like: for people on a terminal, a timestamped log line, JSON.

A record is a level, an event name, a message (one line, complete for people) and
structured fields. It is written in one of three styles:

* ``plain`` (a terminal with ``--log-format text``): ``sendcloud-async: warning: message``
  (``sendcloud-async: message`` for ``info``), as a command line tool speaks;
* ``text`` (``--log-format text`` off a terminal): ``2026-12-06T16:40:01Z WARNING message``,
  a log line with the time in UTC (journald, Docker, cron mail, a file);
* ``json`` (``--log-format json``): one object per line, ``{"ts": "2026-12-06T16:40:01.123Z",
  "level": "warning", "event": "poll_failed", "message": "…", …fields}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal

import msgspec

from .common import LOG_FORMATS, PROG, LogFormat, one_line

__all__ = [
    "LEVELS",
    "LOG_FORMATS",
    "Level",
    "LogFormat",
    "Record",
    "Style",
    "legacy_record",
    "now",
    "render",
    "timestamp",
    "usage_line",
]

Level = Literal["debug", "info", "warning", "error"]
LEVELS: Final[tuple[Level, ...]] = ("debug", "info", "warning", "error")
Style = Literal["plain", "text", "json"]

#: The keys every JSON line has; a field of the same name is written with a ``_`` after it.
_RESERVED: Final = frozenset({"ts", "level", "event", "message"})

_ENCODER: Final = msgspec.json.Encoder(enc_hook=str)


@dataclass(frozen=True, slots=True)
class Record:
    """One thing worth a line: ``event`` names its kind for machines (``status``,
    ``poll_failed``, ``error`` …), ``message`` says it to people, ``fields`` are its data
    (in the JSON line; the message already says them in words)."""

    level: Level
    event: str
    message: str
    fields: Mapping[str, object] = field(default_factory=dict)


def timestamp(at: datetime, *, precise: bool = False) -> str:
    """``at`` in UTC, ISO 8601: ``2026-12-06T16:40:01Z`` (``precise``: with milliseconds)."""
    utc = at.astimezone(UTC)
    if precise:
        return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def now() -> datetime:
    """The time a line is stamped with."""
    return datetime.now(UTC)


def render(record: Record, style: Style, at: datetime) -> str:
    """The line (without its newline) for ``record`` written at ``at`` in ``style``."""
    message = one_line(record.message)
    if style == "plain":
        kind = "" if record.level == "info" else f"{record.level}: "
        return f"{PROG}: {kind}{message}"
    if style == "text":
        return f"{timestamp(at)} {record.level.upper()} {message}"
    line: dict[str, object] = {
        "ts": timestamp(at, precise=True),
        "level": record.level,
        "event": record.event,
        "message": message,
    }
    for key, value in record.fields.items():
        while key in line or key in _RESERVED:
            key += "_"
        # Every date-time of a line as its stamp is written (UTC, milliseconds), so that
        # they compare with it and with each other as the instants they are.
        line[key] = timestamp(value, precise=True) if isinstance(value, datetime) else value
    return _ENCODER.encode(line).decode()


def legacy_record(text: str) -> Record:
    """A line written the old way (``sendcloud-async: warning: …``) as a record.

    The prefix becomes the level; without one the line is ``info``.
    """
    message = one_line(text)
    head = f"{PROG}: "
    if message.startswith(head):
        message = message[len(head) :]
    for level in LEVELS:
        if message.startswith(f"{level}: "):
            return Record(level, level if level != "info" else "message", message[len(level) + 2 :])
    return Record("info", "message", message)


def usage_line(text: str, log_format: LogFormat) -> str:
    """The error line of bad usage or input (exit status 2).

    With ``text`` it is ``sendcloud-async: error: …`` on a terminal or not, as command
    line tools write it (nothing ran, so there is no time worth stamping); with
    ``json`` a JSON line (event ``usage_error``) like every other.
    """
    style: Style = "json" if log_format == "json" else "plain"
    return render(Record("error", "usage_error", text), style, now())
