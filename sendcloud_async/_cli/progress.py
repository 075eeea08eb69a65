"""Progress on stderr: one redrawn line on a terminal, a plain line now and then otherwise."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Final, Literal, TextIO

from .._aio import stop_task
from .._export import ExportStats
from .common import PROG, one_line

__all__ = ["LINE_INTERVAL", "TTY_INTERVAL", "Progress", "ProgressLogHandler", "account_var"]

LINE_INTERVAL: Final = 2.0  # seconds between progress lines when stderr is not a terminal
TTY_INTERVAL: Final = 0.1

ProgressMode = Literal["tty", "lines", "off"]

#: The account a task works for (many-account export), named in its warnings.
account_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sendcloud_async_cli_account", default=None
)


class Progress:
    """Progress on stderr: one updating line on a terminal, a line now and then otherwise.

    ``message()`` prints a line (a warning, an account's failure) without
    garbling the live line.
    """

    def __init__(
        self,
        stream: TextIO,
        mode: ProgressMode,
        *,
        total: int | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.mode = mode
        self.total = total
        self.interval = (
            interval if interval is not None else TTY_INTERVAL if mode == "tty" else LINE_INTERVAL
        )
        self._clock = clock
        self._last = clock()
        self._line = ""
        #: What the client is waiting for now (``""``: nothing worth saying).
        self.note: Callable[[], str] | None = None
        # The last numbers shown, and when: ``tick()`` redraws them with the clock moved on.
        self._numbers: tuple[int, int, float, float, str] = (0, 0, 0.0, 0.0, "")
        self._numbers_at = self._last

    @staticmethod
    def mode_for(stream: TextIO, *, quiet: bool) -> ProgressMode:
        """``off`` when quiet, ``tty`` on a terminal, else ``lines``."""
        if quiet:
            return "off"
        try:
            return "tty" if stream.isatty() else "lines"
        except (AttributeError, ValueError):
            return "lines"

    def render(self, records: int, pages: int, rate: float, elapsed: float, extra: str = "") -> str:
        """The progress text (without control characters)."""
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
        note = self.note() if self.note is not None else ""
        if note:
            extra += f" · {note}" if self.mode == "tty" else f"; {note}"
        return f"{text}{extra}"

    def update(
        self,
        records: int,
        pages: int,
        rate: float,
        elapsed: float,
        *,
        extra: str = "",
        force: bool = False,
    ) -> None:
        """Show the numbers, at most once per interval unless ``force``."""
        if self.mode == "off":
            return
        now = self._clock()
        self._numbers = (records, pages, rate * elapsed, elapsed, extra)
        self._numbers_at = now
        self._draw(now, records, pages, rate, elapsed, extra, force)

    def tick(self, *, force: bool = False) -> None:
        """Redraw the last numbers with the clock moved on (a heartbeat while nothing comes)."""
        if self.mode == "off":
            return
        now = self._clock()
        records, pages, run_records, elapsed, extra = self._numbers
        elapsed += now - self._numbers_at
        rate = run_records / elapsed if elapsed > 0 else 0.0
        self._draw(now, records, pages, rate, elapsed, extra, force)

    @asynccontextmanager
    async def ticking(self) -> AsyncIterator[Progress]:
        """Tick in the background while the block runs (off when quiet)."""
        if self.mode == "off":
            yield self
            return
        period = self.interval if self.mode == "tty" else min(self.interval, 0.5)

        async def beat() -> None:
            while True:
                await asyncio.sleep(period)
                self.tick()

        task = asyncio.create_task(beat())
        try:
            yield self
        finally:
            await stop_task(task)

    def _draw(
        self,
        now: float,
        records: int,
        pages: int,
        rate: float,
        elapsed: float,
        extra: str,
        force: bool,
    ) -> None:
        if not force and now - self._last < self.interval:
            return
        self._last = now
        text = self.render(records, pages, rate, elapsed, extra)
        if self.mode == "tty":
            width = _columns(self.stream)
            if width and len(text) >= width:  # a wrapped line cannot be redrawn in place
                text = text[: width - 2] + "…"
            self._line = text
            self.stream.write(f"\r{text}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def show(self, text: str, *, force: bool = False) -> None:
        """Make ``text`` the live line (a command's own status), at most once per interval."""
        if self.mode == "off":
            return
        now = self._clock()
        if not force and now - self._last < self.interval:
            return
        self._last = now
        if self.mode == "tty":
            width = _columns(self.stream)
            if width and len(text) >= width:
                text = text[: width - 2] + "…"
            self._line = text
            self.stream.write(f"\r{text}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """Print one line above the live progress line (shown even when quiet)."""
        if self.mode == "tty" and self._line:
            self.stream.write(f"\r\x1b[K{text}\n{self._line}\x1b[K")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """End the live line (on a terminal)."""
        if self.mode == "tty" and self._line:
            self.stream.write("\n")
            self.stream.flush()
            self._line = ""

    def for_export(self) -> Callable[[ExportStats], None]:
        """A progress callback for one ``LogExport``."""

        def report(stats: ExportStats) -> None:
            # The last page is always drawn on a terminal; elsewhere the summary says it.
            final = stats.done and self.mode == "tty"
            self.update(stats.records, stats.pages, stats.rate, stats.elapsed, force=final)

        return report


def _columns(stream: TextIO) -> int:
    """The terminal's width (0 if unknown)."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0


class ProgressLogHandler(logging.Handler):
    """SDK log records as one line each, above the progress line: warnings (retries), or
    with ``-v`` every request (``debug:``); the SDK never logs a header or a secret."""

    def __init__(self, progress: Progress, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        try:
            account = account_var.get()
            where = f"account {account}: " if account else ""
            kind = "warning" if record.levelno >= logging.WARNING else record.levelname.lower()
            self.progress.message(f"{PROG}: {kind}: {where}{one_line(record.getMessage())}")
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)
