"""What every command is handed: the environment, the streams and the progress line."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from typing import TextIO

from .._errors import ExportInputError, MissingExtraError
from .._export import LogExport
from .._observe import observing
from .activity import Activity
from .common import UsageError
from .logline import LogFormat, Record, now, render, usage_line
from .metrics import MetricsAddress
from .progress import Progress

__all__ = ["Context", "open_job"]


class Context:
    """What every command needs: the streams, the environment and the progress line."""

    def __init__(
        self,
        env: Mapping[str, str],
        stdout: TextIO,
        stderr: TextIO,
        quiet: bool,
        *,
        log_format: LogFormat = "text",
        status_interval: float | None = None,
    ) -> None:
        self.env = env
        self.stdout = stdout
        self.stderr = stderr
        self.quiet = quiet
        self.log_format: LogFormat = log_format
        #: ``--metrics HOST:PORT`` of a long-running command (``serving_metrics``).
        self.metrics: MetricsAddress | None = None
        mode = Progress.mode_for(stderr, quiet=quiet, log_format=log_format)
        self.progress = Progress(
            stderr,
            mode,
            log_format=log_format,
            interval=None if mode == "tty" else status_interval,
        )

    def say(self, text: str = "") -> None:
        """A result line on stdout (not when quiet)."""
        if not self.quiet:
            self.progress.close()
            self.stdout.write(text + "\n")
            self.stdout.flush()

    def result(self, text: str, *, event: str, **fields: object) -> None:
        """The summary a long-running command ends with, on stdout (not when quiet):
        ``text`` as it is, or with ``--log-format json`` one JSON line (``event``,
        ``fields``) like the log's, so that every line the command writes parses."""
        if self.log_format != "json":
            self.say(text)
        elif not self.quiet:
            self.stdout.write(render(Record("info", event, text, fields), "json", now()) + "\n")
            self.stdout.flush()

    def warn(self, text: str, *, event: str = "warning", **fields: object) -> None:
        """A one-line warning on stderr (always: warnings of this kind are about safety)."""
        self.progress.log("warning", text, event=event, **fields)

    def error(self, text: str, *, event: str = "error", **fields: object) -> None:
        """The one-line error that ends a command (always), after its last status."""
        self.progress.finish()
        self.progress.log("error", text, event=event, **fields)

    def usage_error(self, text: str) -> None:
        """The one-line error of bad usage or input (exit status 2): ``usage_line``."""
        self.progress.finish()
        self.stderr.write(usage_line(text, self.log_format) + "\n")
        self.stderr.flush()

    @asynccontextmanager
    async def live(self, *, accounts: Sequence[str] | None = None) -> AsyncIterator[Activity]:
        """While the block runs, the progress line ticks and says what requests wait for.

        With ``--metrics`` the metrics page is served meanwhile (``serving_metrics``).
        """
        activity = Activity()
        self.progress.note = activity.note
        try:
            with observing(activity):
                async with self.progress.ticking(), self.serving_metrics(accounts=accounts):
                    yield activity
        finally:
            self.progress.note = None

    def serving_metrics(
        self, *, accounts: Sequence[str] | None = None, leases: bool = False
    ) -> AbstractAsyncContextManager[None]:
        """The ``--metrics`` page while the block runs (nothing without ``--metrics``).

        Ready (``/readyz``) once every one of ``accounts`` was polled up to date, or
        with ``leases`` while a lease is held; else while the command runs.
        """
        if self.metrics is None:
            return nullcontext()
        from .metrics_server import serving  # here: only a command with --metrics loads it

        def say(host: str, port: int) -> None:
            shown = f"[{host}]" if ":" in host else host
            self.progress.log(
                "info",
                f"metrics on http://{shown}:{port}/metrics (and /healthz, /readyz)",
                event="metrics",
                host=host,
                port=port,
            )

        return serving(self.metrics, say=say, accounts=accounts, leases=leases)


def open_job(job: LogExport) -> LogExport:
    """``job`` opened (checked and locked); a refusal (or a missing extra) is a ``UsageError``."""
    try:
        job.open()
    except (ExportInputError, MissingExtraError) as exc:
        raise UsageError(str(exc)) from None
    return job
