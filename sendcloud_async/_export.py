"""Exactly-once export of exception logs to a file, with a checkpoint beside it.

The engine behind ``sendcloud-async logs export``, usable on its own::

    from sendcloud_async._export import export_logs

    stats = await export_logs(client, "logs.jsonl", fmt="jsonl", page_size=100)
    # killed? run the same call again with resume=True

A job is a source (``_sources._walks``: the listing's walks, as batches of whole
pages), this job (each batch folded into the checkpoint after it: ``_checkpoint``)
and an output that commits both as one step: a file, its ``FILE.checkpoint.json``
beside it (``_export_file``), or parts whose manifest holds the checkpoint
(``_export_parts``: a URL, or ``parquet``). Whatever instant the process died at,
the output holds exactly the logs before the checkpoint's cursor, each once, and
a resume continues from there. A resume with another query (base URL, integration,
format, page size, compression, range) is refused. Encodings are ``_records``'s; a
range (``since``, ``until``) is ``_sources._range``'s.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TypedDict, Unpack

import msgspec
from msgspec import UNSET

from . import _observe
from . import _validate as check
from ._aio import finish
from ._checkpoint import (
    CHECKPOINT_VERSION,
    Checkpoint,
    CheckpointQuery,
    checkpoint_path,
    continued,
    recorded_boundary,
)
from ._defaults import DEFAULT_EXPORT_ROLL_SECONDS, EXPORT_FORMATS, output_compression, writes_parts
from ._errors import ExportInputError, InvalidInputError
from ._export_file import FileOutput
from ._sources._range import check_range, probe_order
from ._sources._walks import Walk, WalkPage, walk_batches
from .events import PageCommitted

if TYPE_CHECKING:
    from ._client import SendcloudClient
    from ._export_parts import PartsOutput
    from ._models import IntegrationLog

__all__ = [
    "DEFAULT_ACCOUNT",
    "ExportOptions",
    "ExportStats",
    "LogExport",
    "ProgressCallback",
    "export_logs",
]

#: The account an export of one account names in its parts' folder (``account=default``).
DEFAULT_ACCOUNT: Final = "default"


@dataclass(frozen=True, slots=True)
class ExportStats:
    """Where an export stands. ``run_*`` count this run only; the rest the whole file."""

    path: Path
    records: int
    pages: int
    bytes: int
    run_records: int
    run_pages: int
    elapsed: float
    done: bool
    resumed: bool = False
    already_complete: bool = False
    discarded_bytes: int = 0
    #: The output as given: a path, or a parts destination's URL (``path`` is its ``Path``).
    destination: str = ""

    @property
    def rate(self) -> float:
        """Records per second in this run."""
        return self.run_records / self.elapsed if self.elapsed > 0 else 0.0


ProgressCallback = Callable[[ExportStats], None]


class ExportOptions(TypedDict, total=False):
    """``LogExport``'s keywords after ``base_url``, for what passes them on."""

    fmt: str
    integration_id: int | None
    page_size: int | None
    resume: bool
    compression: str | None
    since: datetime | None
    until: datetime | None
    account: str
    account_column: bool
    part_records: int | None
    part_seconds: float | None


class LogExport:
    """One export of exception logs to one file, resumable through its checkpoint.

    ``base_url`` identifies where the logs come from (it is recorded in the
    checkpoint; a resume against another one is refused). Use::

        job = LogExport("logs.jsonl", base_url=str(client.base_url), resume=True)
        job.open()              # checks everything, takes the lock; no request yet
        try:
            stats = await job.run(client)
        finally:
            job.close()
    """

    def __init__(
        self,
        out_path: str | os.PathLike[str],
        *,
        base_url: str,
        fmt: str = "jsonl",
        integration_id: int | None = None,
        page_size: int | None = None,
        resume: bool = False,
        compression: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        account: str = DEFAULT_ACCOUNT,
        account_column: bool = False,
        part_records: int | None = None,
        part_seconds: float | None = None,
    ) -> None:
        if fmt not in EXPORT_FORMATS:
            raise ExportInputError(
                f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}"
            )
        try:
            if integration_id is not None:
                check.integration_id(integration_id, "integration")
            check.page_size(page_size)
            since, until = check_range(since, until)
            if part_records is not None:
                check.positive_int(part_records, "part_records")
            if part_seconds is not None:
                check.positive_seconds(part_seconds, "part_seconds")
        except InvalidInputError as exc:
            raise ExportInputError(str(exc)) from None
        #: The destination as given (a path or a URL): what messages show.
        self.destination = os.fspath(out_path)
        #: Whether the export is a directory of parts (``writes_parts``), not one file.
        self.parts = writes_parts(self.destination, fmt)
        self.path = Path(out_path)
        self.checkpoint_path = checkpoint_path(self.path)
        compression = self._compression(fmt, compression)
        self.query = CheckpointQuery(
            base_url=base_url,
            integration_id=integration_id,
            format=fmt,
            page_size=page_size,
            codec=UNSET if compression == "none" else compression,
            start=UNSET if since is None else since,
            end=UNSET if until is None else until,
        )
        self.resume = resume
        self.account = account
        self._account_column = account_column
        self._part_records = part_records
        self._part_seconds = DEFAULT_EXPORT_ROLL_SECONDS if part_seconds is None else part_seconds
        self._out: FileOutput | PartsOutput | None = None
        self._started = False
        #: The fence refused a write: another writer owns the output now.
        self._fenced_out = False

    def _compression(self, fmt: str, given: str | None) -> str:
        """The compression (``output_compression``: ``given``, or what the name says)."""
        try:
            chosen = output_compression(self.path.name, fmt, given, parts=self.parts)
        except ValueError as exc:
            raise ExportInputError(str(exc)) from None
        if chosen is None:
            from ._parts import COMPRESSIONS  # here: the parts need their own modules

            return COMPRESSIONS[fmt][0]
        return chosen

    #: The checkpoint's type (a subclass records more).
    _checkpoint: type[Checkpoint] = Checkpoint
    #: Listings walked at once, and the most pages one commit writes.
    concurrency = 1
    _batch = 1
    #: Whether a listing that answers 404 ends its walk (or fails the export).
    _gone_on_404 = False
    #: Awaited before every write (the first, which cuts the output back to the
    #: checkpoint, and each commit): raising stops the export with nothing more
    #: written. The many-worker export checks its lease there (``_cli/export_lease``).
    #: A fence whose ``lost`` attribute is true has lost the output too (``_abandons``).
    fence: Callable[[], Awaitable[None]] | None = None

    def _describe(self, state: Checkpoint) -> str:
        return f"appending page {state.pages:,}"

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Check the output and the checkpoint and lock the file. Sends nothing.

        Changes nothing on disk except creating an empty output file if there
        is none. Raises ``ExportInputError`` with a one-line reason. A parts export
        takes its manifest when it runs.
        """
        if self._out is not None and not self._out.closed:
            return
        if self.parts:
            from ._export_parts import PartsOutput  # here: the parts load their own modules

            self._out = PartsOutput(
                self.destination,
                self.query,
                account=self.account,
                part_records=self._part_records,
                account_column=self._account_column,
                state_type=self._checkpoint,
                flush_seconds=self._part_seconds,
            )
            return
        out = FileOutput(
            self.path, self.query, state_type=self._checkpoint, describe=self._describe
        )
        if out.open(self.resume) is None:
            self.resume = False  # nothing to continue (killed before its first checkpoint)
        self._out = out

    def _opened(self) -> FileOutput | PartsOutput:
        self.open()
        assert self._out is not None
        return self._out

    def verify(self, state: Checkpoint) -> Checkpoint | None:
        """``state`` (a checkpoint ``recorded()`` gave) if a resume continues it.

        ``None`` if it holds nothing to continue; ``ExportInputError`` if it is of
        another version or damaged, or for another query.
        """
        return continued(state, self.query, self.state_location)

    def close(self) -> None:
        """Release the lock and the file (idempotent).

        A parts export lets its manifest go when ``run()`` ends; ``aclose()`` does it
        for one that never ran.
        """
        if self._out is not None:
            self._out.close()

    async def aclose(self) -> None:
        """``close()``; a parts export also publishes what is buffered (idempotent)."""
        if self._out is not None:
            self._out.close()
            await self._out.end(abandon=self._abandons)

    @property
    def _abandons(self) -> bool:
        """Whether the output is no longer this export's, so it publishes nothing more:
        the fence refused a write, or says it was lost meanwhile (the export is then
        cancelled, not refused). The one place that decides it."""
        return self._fenced_out or bool(getattr(self.fence, "lost", False))

    @property
    def state_location(self) -> str:
        """Where the checkpoint is: the file beside the output, or the parts manifest."""
        return str(self.checkpoint_path) if self._out is None else self._out.location

    async def recorded(self) -> Checkpoint | None:
        """The checkpoint the destination holds now (``None``: none). Changes nothing.

        Opens the job if needed; ``ExportInputError`` if the checkpoint is damaged.
        """
        return await self._opened().recorded()

    def __enter__(self) -> LogExport:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -------------------------------------------------------------------------------

    @property
    def _state(self) -> Checkpoint | None:
        """The checkpoint continued or committed last."""
        return None if self._out is None else self._out.state

    @property
    def saved_records(self) -> int:
        """How many records the checkpoint on disk (or the parts manifest) accounts for."""
        return 0 if self._out is None else self._out.saved_records

    @property
    def already_complete(self) -> bool:
        """Whether a resumed checkpoint says the export finished."""
        return self.resume and self._state is not None and self._state.done

    def _totals(self, base: Checkpoint, started: float) -> dict[str, Any]:
        """``ExportStats``'s fields, from ``base`` (where this run began) to now."""
        out, state = self._opened(), self._state
        assert state is not None
        return {
            "path": self.path,
            "records": state.records,
            "pages": state.pages,
            "bytes": out.saved_bytes,
            "run_records": state.records - base.records,
            "run_pages": state.pages - base.pages,
            "elapsed": time.monotonic() - started,
            "done": state.done,
            "resumed": self.resume,
            "already_complete": self.resume and base.done,
            "discarded_bytes": out.discarded,
            "destination": self.destination,
        }

    def _result(self, base: Checkpoint, started: float) -> ExportStats:
        return ExportStats(**self._totals(base, started))

    def _new(self, done: bool = False) -> Checkpoint:
        """A checkpoint of nothing written yet."""
        return Checkpoint(
            version=CHECKPOINT_VERSION,
            query=self.query,
            cursor=None,
            offset=0,
            records=0,
            pages=0,
            done=done,
        )

    async def _fresh(self, client: SendcloudClient) -> Checkpoint:
        """The first checkpoint of a new export."""
        return self._new()

    def _walks(self, state: Checkpoint) -> list[Walk]:
        """Every walk of ``state``: the integration it lists (``None``: all), its cursor, done."""
        return [
            (self.query.integration_id, state.cursor, state.done, recorded_boundary(state.boundary))
        ]

    def _after(self, state: Checkpoint, batch: list[WalkPage]) -> Checkpoint:
        """The checkpoint after ``state`` and the pages of ``batch``: counts and positions."""
        return msgspec.structs.replace(
            state,
            records=state.records + sum(len(page.items) for page in batch),
            pages=state.pages + sum(0 if page.gone else 1 for page in batch),
            **self._positions(state, batch),
        )

    def _positions(self, state: Checkpoint, batch: list[WalkPage]) -> dict[str, Any]:
        """Where the walks stand after ``batch`` (the fields of the checkpoint that say it)."""
        last = batch[-1]
        return {
            "cursor": state.cursor if last.done else last.next_cursor,
            "done": last.done,
            "boundary": UNSET if last.boundary is None else last.boundary,
        }

    # -- the run --------------------------------------------------------------------------------

    async def _fenced(self) -> None:
        """Pass the fence (if any); refused, the export no longer owns its output."""
        if self.fence is None:
            return
        try:
            await self.fence()
        except Exception:
            self._fenced_out = True
            raise

    async def _commit(self, items: list[IntegrationLog], state: Checkpoint) -> None:
        """Store ``items`` and ``state`` (the checkpoint after them) through the output."""
        await self._fenced()
        await self._opened().commit(items, state)
        shown = self.destination if self.parts else str(self.path)
        _observe.emit(PageCommitted, shown, len(items), state.pages, state.records)

    async def run(
        self, client: SendcloudClient, *, progress: ProgressCallback | None = None
    ) -> ExportStats:
        """Export every log after the checkpoint (or all of them), page by page.

        ``progress`` is called in the event loop after each page is on disk. A
        page is written while the next one is fetched. Cancelling the task waits
        for a page being written to finish, so the checkpoint on disk always
        matches the file. Raises ``SendcloudError`` subclasses for API failures
        and ``OSError`` for write failures.

        A parts export takes the manifest first (continues from its checkpoint with
        ``resume``, else removes the old parts) and lets it go when it ends, however
        it ends: what was committed is published then, with its checkpoint, unless the
        fence says the output is another writer's now (``_abandons``).
        """
        out = self._opened()
        try:
            stats = await self._run(client, progress)
        except BaseException:
            # What was committed is published, unless another writer owns the output
            # now (``_abandons``): then nothing more may appear in it.
            with suppress(Exception):  # the first error is the one to report
                await finish(asyncio.ensure_future(out.end(abandon=self._abandons)))
            raise
        await out.end(abandon=self._abandons)
        return stats

    async def _first(self, client: SendcloudClient) -> Checkpoint:
        """The first checkpoint of a new export: ``_fresh``, with a range the listing's order."""
        fresh = await self._fresh(client)
        query = self.query
        if query.since is not None or query.until is not None:
            order = await probe_order(client, query.integration_id)
            fresh.listing_order = UNSET if order is None else order
        return fresh

    async def _run(self, client: SendcloudClient, progress: ProgressCallback | None) -> ExportStats:
        out = self._opened()
        started = time.monotonic()
        if not self._started and await out.begin(self.resume) is None:
            self.resume = False  # nothing to continue: this run starts afresh
        if self.already_complete:
            assert self._state is not None
            return self._result(self._state, started)
        if not self._started:
            state = self._state
            fresh = await self._first(client) if state is None or state.pages == 0 else None
            await self._fenced()
            await out.start(fresh)
            self._started = True
        state = self._state
        assert state is not None
        base = msgspec.structs.replace(state)
        source = walk_batches(
            client,
            self._walks(state),
            self.query,
            order=state.order,
            concurrency=self.concurrency,
            batch=self._batch,
            gone_on_404=self._gone_on_404,
        )
        async with aclosing(source):
            async for batch in source:
                new = self._after(self._state or state, batch)
                await self._commit([log for page in batch for log in page.items], new)
                if progress is not None:
                    progress(self._result(base, started))
        return self._result(base, started)


async def export_logs(
    client: SendcloudClient,
    out_path: str | os.PathLike[str],
    *,
    progress: ProgressCallback | None = None,
    base_url: str | None = None,
    **options: Unpack[ExportOptions],
) -> ExportStats:
    """Export the exception logs ``client`` can see to ``out_path``, exactly once.

    ``resume=True`` continues from ``out_path``'s checkpoint (and refuses one
    written for another query). ``base_url`` names the source in the
    checkpoint; it defaults to the client's base URL. The other keywords are
    ``LogExport``'s (``ExportOptions``).

    ``out_path`` may be a URL (``s3://BUCKET/PREFIX``, ``gs://``, ``az://``,
    ``file://``), and ``fmt`` ``"parquet"``: the export is then a directory of parts
    under ``account=ACCOUNT/`` (``part_records`` logs per part at most), whose
    manifest holds the checkpoint. ``compression``: ``gzip`` or ``zstd`` for a file
    (else the file name's ``.gz``/``.zst`` says it), a parts format's codec for parts.
    ``since``/``until`` (aware date-times): only the logs created in ``[since, until)``.
    """
    source = str(client.base_url) if base_url is None else base_url
    job = LogExport(out_path, base_url=source, **options)
    job.open()
    try:
        return await job.run(client, progress=progress)
    finally:
        await job.aclose()
