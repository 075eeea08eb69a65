"""What every command is handed: the environment, the streams and the progress line."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TextIO

from .._export import ExportInputError, LogExport
from .._observe import observing
from .activity import Activity
from .common import PROG, UsageError, one_line
from .progress import Progress

__all__ = ["Context", "open_job"]


class Context:
    """What every command needs: the streams, the environment and the progress line."""

    def __init__(self, env: Mapping[str, str], stdout: TextIO, stderr: TextIO, quiet: bool) -> None:
        self.env = env
        self.stdout = stdout
        self.stderr = stderr
        self.quiet = quiet
        self.progress = Progress(stderr, Progress.mode_for(stderr, quiet=quiet))

    def say(self, text: str = "") -> None:
        """A result line on stdout (not when quiet)."""
        if not self.quiet:
            self.progress.close()
            self.stdout.write(text + "\n")
            self.stdout.flush()

    def warn(self, text: str) -> None:
        """A one-line warning on stderr (always: warnings of this kind are about safety)."""
        self.progress.message(f"{PROG}: warning: {one_line(text)}")

    def error(self, text: str) -> None:
        """A one-line error on stderr (always)."""
        self.progress.close()
        self.progress.message(f"{PROG}: error: {one_line(text)}")

    @asynccontextmanager
    async def live(self) -> AsyncIterator[Activity]:
        """While the block runs, the progress line ticks and says what requests wait for."""
        activity = Activity()
        self.progress.note = activity.note
        try:
            with observing(activity):
                async with self.progress.ticking():
                    yield activity
        finally:
            self.progress.note = None


def open_job(job: LogExport) -> LogExport:
    """``job`` opened (checked and locked); a refusal is a ``UsageError``."""
    try:
        job.open()
    except ExportInputError as exc:
        raise UsageError(str(exc)) from None
    return job
