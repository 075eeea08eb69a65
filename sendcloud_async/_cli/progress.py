"""stderr: the live status line on a terminal, timestamped (or JSON) log lines elsewhere.

``Progress`` owns stderr while a command runs. It shows two things:

* the **status** (what an export or a watch is at), from ``update()`` (an export's
  numbers) or from the command's own ``follow()``/``show()``: on a terminal one line
  redrawn in place every ``TTY_INTERVAL`` (its clocks and countdowns move); off a
  terminal, and with ``--log-format json``, a log line (event ``status``) written
  when the status changed (clocks and countdowns aside), at most once every
  ``--status-interval`` seconds (``DEFAULT_STATUS_INTERVAL``), and, unchanged, once
  every ``STATUS_REPEAT`` seconds (or every interval, if that is longer) so that the
  log shows the command is alive. ``--once`` and ``-q`` show no status;
* **records**: warnings, failures, events and the SDK's log (``log()``, ``message()``,
  ``ProgressLogHandler``), printed above the live line, never garbling it, in the
  style of ``logline``.

``finish()`` ends the live line for good: nothing is drawn after it ("stopped").
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Hashable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final, Literal, TextIO

from .._aio import stop_task
from .._export import ExportStats
from .common import DEFAULT_STATUS_INTERVAL, STATUS_REPEAT, one_line
from .logline import Level, LogFormat, Record, Style, legacy_record, render

__all__ = [
    "DEFAULT_STATUS_INTERVAL",
    "STATUS_REPEAT",
    "TTY_INTERVAL",
    "Progress",
    "ProgressLogHandler",
    "Status",
    "account_var",
    "countdown",
]

#: Seconds between redraws of the live line on a terminal.
TTY_INTERVAL: Final = 0.1
#: How often the status is looked at off a terminal (a change waits at most this long more).
_LOOK: Final = 0.5

ProgressMode = Literal["tty", "lines", "off"]

#: The account a task works for (many-account export), named in its warnings.
account_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sendcloud_async_cli_account", default=None
)

_NUMBER: Final = re.compile(r"\d[\d,.]*")
_NOTHING: Final = object()


def _shape(text: str) -> str:
    """``text`` with its numbers masked: a countdown's shape does not change as it counts."""
    return _NUMBER.sub("#", text)


@dataclass(frozen=True, slots=True)
class Status:
    """What a command is at: ``text`` for people (the live line, the log line's message),
    ``fields`` for machines (the JSON line), ``key`` what counts as a change (``None``: the
    text; leave clocks and countdowns out of it)."""

    text: str
    fields: Mapping[str, object] = field(default_factory=dict)
    key: Hashable | None = None

    @property
    def change_key(self) -> Hashable:
        return self.text if self.key is None else self.key


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


class Progress:
    """The status and the records of one command on ``stream`` (stderr).

    ``mode``: ``tty`` (the live line), ``lines`` (status as log lines) or ``off`` (no
    status; records are still written). ``interval``: on a terminal the redraw period,
    elsewhere the status interval. ``log_format``: ``text`` or ``json`` (JSON lines in
    every mode). ``clock`` (monotonic) times the status; ``wall`` stamps the lines.
    """

    def __init__(
        self,
        stream: TextIO,
        mode: ProgressMode,
        *,
        total: int | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        log_format: LogFormat = "text",
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        if log_format == "json" and mode == "tty":
            mode = "lines"  # JSON is for machines: no line redrawn in place
        self.stream = stream
        self.mode: ProgressMode = mode
        self.total = total
        self.style: Style = (
            "json"
            if log_format == "json"
            else "plain"
            if mode == "tty" or (mode == "off" and _isatty(stream))
            else "text"
        )
        self.interval = (
            interval
            if interval is not None
            else TTY_INTERVAL
            if mode == "tty"
            else DEFAULT_STATUS_INTERVAL
        )
        self._clock = clock
        self._wall = wall or (lambda: datetime.now(UTC))
        self._last = clock()
        self._line = ""
        self._shown_key: object = _NOTHING
        #: The key of the status shown last without its note (see ``refresh``).
        self._shown_base: object = _NOTHING
        self._finished = False
        #: What the client is waiting for now (``""``: nothing worth saying).
        self.note: Callable[[], str] | None = None
        #: The command's own status (``None``: the export numbers of ``update()``).
        self.source: Callable[[], Status] | None = None
        # The last numbers given to update(), and when: the status moves their clock on.
        self._numbers: tuple[int, int, float, float, str] = (0, 0, 0.0, 0.0, "")
        self._numbers_fields: Mapping[str, object] = {}
        self._numbers_at = self._last

    @staticmethod
    def mode_for(stream: TextIO, *, quiet: bool, log_format: LogFormat = "text") -> ProgressMode:
        """``off`` when quiet, ``tty`` on a terminal (with ``text``), else ``lines``."""
        if quiet:
            return "off"
        return "tty" if log_format == "text" and _isatty(stream) else "lines"

    # -- the status ------------------------------------------------------------------------------

    def render(self, records: int, pages: int, rate: float, elapsed: float, extra: str = "") -> str:
        """An export's status text (without control characters, without the note)."""
        if self.mode == "tty":
            parts = []
            if self.total:
                width = 24
                fraction = min(1.0, records / self.total)
                filled = int(fraction * width)
                bar = "█" * filled + "░" * (width - filled)
                parts.append(f"[{bar}] {fraction:4.0%}  {records:,}/{self.total:,} records")
            else:
                parts.append(f"{records:,} records")
            parts += [f"{pages:,} pages", f"{rate:,.0f} rec/s", f"{elapsed:.1f} s"]
            text = " · ".join(parts)
        else:
            text = (
                f"exported {records:,} records in {pages:,} pages "
                f"({rate:,.0f} rec/s, {elapsed:.1f} s)"
            )
        return f"{text}{extra}"

    def update(
        self,
        records: int,
        pages: int,
        rate: float,
        elapsed: float,
        *,
        extra: str = "",
        fields: Mapping[str, object] | None = None,
        force: bool = False,
    ) -> None:
        """An export's numbers: its status until the next update (the clock moves on)."""
        self._numbers = (records, pages, rate * elapsed, elapsed, extra)
        self._numbers_fields = fields or {}
        self._numbers_at = self._clock()
        self.refresh(force=force)

    def follow(self, source: Callable[[], Status] | None) -> None:
        """Take the status from ``source`` (called whenever the status is shown)."""
        self.source = source

    def show(
        self,
        text: str,
        *,
        force: bool = False,
        fields: Mapping[str, object] | None = None,
        key: Hashable | None = None,
    ) -> None:
        """Make ``text`` the status (a command's own), and show it as ``refresh()`` does."""
        status = Status(text, fields or {}, key)
        self.source = lambda: status
        self.refresh(force=force)

    def tick(self, *, force: bool = False) -> None:
        """Show the status with the clock moved on (the heartbeat while nothing comes)."""
        self.refresh(force=force)

    def status_off(self) -> None:
        """No status from now on (``--once``: its summary is all it prints)."""
        self.close()
        self.mode = "off"

    def current(self) -> Status:
        """The status now, the client's note included."""
        status = self.source() if self.source is not None else self._export_status()
        note = self.note() if self.note is not None else ""
        if not note:
            return status
        return Status(
            status.text + (" · " if self.mode == "tty" else "; ") + note,
            {**status.fields, "note": note},
            (status.change_key, _shape(note)),
        )

    def _export_status(self) -> Status:
        records, pages, run_records, elapsed, extra = self._numbers
        elapsed += self._clock() - self._numbers_at
        rate = run_records / elapsed if elapsed > 0 else 0.0
        fields: dict[str, object] = {
            "records": records,
            "pages": pages,
            "rate": round(rate, 1),
            "elapsed": round(elapsed, 1),
        }
        if self.total:
            fields["total"] = self.total
        fields.update(self._numbers_fields)
        return Status(
            self.render(records, pages, rate, elapsed, extra), fields, (records, pages, extra)
        )

    def refresh(self, *, force: bool = False) -> None:
        """Show the status if it is time to.

        On a terminal: redrawn at most every interval unless ``force``. Elsewhere a
        log line when it changed and the status interval has passed since the last
        one (``force`` does not shorten that: the rate stays bounded), or when it
        has not changed for ``STATUS_REPEAT`` seconds.
        """
        if self.mode == "off" or self._finished:
            return
        now = self._clock()
        if self.mode == "tty":
            if not force and now - self._last < self.interval:
                return
            self._last = now
            self._draw(self.current().text, force=force)
            return
        status = self.current()
        key = status.change_key
        # A note that went away (the answer came, the wait is over) is no news of its own:
        # the status is unchanged until what it counts changes.
        changed = key != self._shown_key and not (
            "note" not in status.fields and key == self._shown_base
        )
        wait = self.interval if changed else max(self.interval, STATUS_REPEAT)
        if now - self._last < wait:
            return
        self._last = now
        self._shown_key = key
        self._shown_base = key[0] if "note" in status.fields and isinstance(key, tuple) else key
        self._write(Record("info", "status", status.text, status.fields))

    def _draw(self, text: str, *, force: bool) -> None:
        width = _columns(self.stream)
        if width and len(text) >= width:  # a wrapped line cannot be redrawn in place
            text = text[: width - 2] + "…"
        if text == self._line and not force:
            return  # nothing moved
        self._line = text
        self.stream.write(f"\r{text}\x1b[K")
        self.stream.flush()

    @asynccontextmanager
    async def ticking(self) -> AsyncIterator[Progress]:
        """Look at the status in the background while the block runs (not when off)."""
        if self.mode == "off":
            yield self
            return
        period = self.interval if self.mode == "tty" else min(self.interval, _LOOK)

        async def beat() -> None:
            while True:
                await asyncio.sleep(period)
                self.refresh()

        task = asyncio.create_task(beat())
        try:
            yield self
        finally:
            await stop_task(task)

    # -- records ---------------------------------------------------------------------------------

    def log(self, level: Level, message: str, *, event: str, **fields: object) -> None:
        """One record as a line above the live line (shown in every mode, quiet too)."""
        self._write(Record(level, event, message, fields))

    def message(
        self, text: str, *, level: Level | None = None, event: str | None = None, **fields: object
    ) -> None:
        """A line as a command line tool writes it (``sendcloud-async: warning: …``): as it
        is on a terminal; elsewhere a record without the prefix, of ``level`` (default:
        the level the prefix names, else ``info``), ``event`` (default: ``message``, or
        the level) and ``fields``."""
        if self.style == "plain":
            self._put(text)
            return
        record = legacy_record(text)
        self._write(Record(level or record.level, event or record.event, record.message, fields))

    def _write(self, record: Record) -> None:
        self._put(render(record, self.style, self._wall()))

    def _put(self, line: str) -> None:
        if self.mode == "tty" and self._line:
            self.stream.write(f"\r\x1b[K{line}\n{self._line}\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line (on a terminal); the next status starts a new one."""
        if self.mode == "tty" and self._line:
            self.stream.write("\n")
            self.stream.flush()
            self._line = ""

    def finish(self) -> None:
        """End the live line for good: no status is shown after this (records still are)."""
        self.close()
        self._finished = True

    def for_export(self) -> Callable[[ExportStats], None]:
        """A progress callback for one ``LogExport``."""

        def report(stats: ExportStats) -> None:
            # The last page is always drawn on a terminal; elsewhere the summary says it.
            final = stats.done and self.mode == "tty"
            self.update(stats.records, stats.pages, stats.rate, stats.elapsed, force=final)

        return report


def countdown(seconds: float) -> int:
    """Whole seconds left, rounded up: ``next poll in 3 s`` … ``1 s``, then it happens."""
    return max(0, math.ceil(seconds - 1e-9))


def _columns(stream: TextIO) -> int:
    """The terminal's width (0 if unknown)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


def _level(levelno: int) -> Level:
    if levelno >= logging.ERROR:
        return "error"
    if levelno >= logging.WARNING:
        return "warning"
    return "info" if levelno >= logging.INFO else "debug"


class ProgressLogHandler(logging.Handler):
    """The SDK's ``logging`` records as lines of the command's own style (event ``sdk_log``,
    the logger and the account as fields): warnings (retries), or with ``-v`` every
    request; the SDK never logs a header or a secret."""

    def __init__(self, progress: Progress, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            account = account_var.get()
            where = f"account {account}: " if account else ""
            fields: dict[str, object] = {"logger": record.name}
            if account:
                fields["account"] = account
            self.progress.log(
                _level(record.levelno),
                where + one_line(record.getMessage()),
                event="sdk_log",
                **fields,
            )
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)
