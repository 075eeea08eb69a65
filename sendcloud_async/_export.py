"""Exactly-once export of exception logs to a file, with a checkpoint beside it.

The engine behind ``sendcloud-async logs export``, usable on its own::

    from sendcloud_async._export import export_logs

    stats = await export_logs(client, "logs.jsonl", fmt="jsonl", page_size=100)
    # killed? run the same call again with resume=True

Each page is committed through a ``FileSink`` (``_sinks``): written at the
offset the checkpoint (``FILE.checkpoint.json``) names and fsync-ed, then the
checkpoint, with the cursor after the page and the new offset, replaced
atomically. A resumed run cuts the file back to the offset and asks for the logs
after the cursor: the file's first ``offset`` bytes always hold exactly the logs
before ``cursor``, each once, whatever instant the process died at. The
checkpoint also records the query (base URL, integration, format, page size); a
resume with another query is refused. The file is locked while a job runs.

Formats (see ``encode_jsonl`` and ``encode_csv``):

* ``jsonl``: one JSON object per log and line, ``msgspec.json.encode`` of the
  SDK's ``IntegrationLog``.
* ``csv``: RFC 4180, UTF-8, a header row, the nested request/response fields
  flattened into columns (``CSV_COLUMNS``).

Compressed files (``logs.jsonl.gz``, ``logs.csv.zst``, or ``compression=``): each
commit appends its page as one complete gzip member (or Zstandard frame). A file
of several members is one valid stream (``gzip -d``, ``zstd -d``, ``gzip.open``
read it whole), and the checkpoint's offset is always at the end of a member, so
a resume cuts the file back there exactly as for a plain file.

Parts (``writes_parts``): to a URL (``s3://``, ``gs://``, ``az://``, ``file://``)
and in the ``parquet`` format anywhere, the export is a directory of parts
(``_export_parts``): the parts manifest holds the checkpoint.

A range (``since``, ``until``: aware date-times) exports only the logs created in
``[since, until)``, and its walks stop at the range's far end (``_export_range``).
"""

from __future__ import annotations

import asyncio
import gzip
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Final

import msgspec
from msgspec import UNSET

from . import _observe
from . import _validate as check
from ._aio import finish, stop_task
from ._checkpoint import (
    CHECKPOINT_SUFFIX,
    CHECKPOINT_VERSION,
    Checkpoint,
    CheckpointQuery,
    checkpoint_path,
    checkpoint_query,
    holds_nothing,
)
from ._defaults import (
    DEFAULT_EXPORT_ROLL_SECONDS,
    EXPORT_FORMATS,
    FORMATS,
    Format,
    output_compression,
    writes_parts,
)
from ._engine import run_due
from ._errors import (
    ExportError,
    ExportInputError,
    ExportInUseError,
    InvalidInputError,
    NotFoundError,
    require_extra,
)
from ._export_range import check_range, in_range, probe_order, start_cursor
from ._fileio import output_file_problem
from ._models import IntegrationLog
from ._records import CSV_COLUMNS, ENCODERS, csv_header, encode_csv, encode_jsonl
from ._sinks import FileSink, SinkError, SinkInUseError
from .events import PageCommitted

if TYPE_CHECKING:
    from ._client import SendcloudClient
    from ._export_parts import PartsOutput

__all__ = [
    "CHECKPOINT_SUFFIX",
    "CHECKPOINT_VERSION",
    "CSV_COLUMNS",
    "DEFAULT_ACCOUNT",
    "EXPORT_FORMATS",
    "FORMATS",
    "Checkpoint",
    "CheckpointQuery",
    "ExportError",
    "ExportInUseError",
    "ExportInputError",
    "ExportStats",
    "Format",
    "LogExport",
    "checkpoint_path",
    "checkpoint_query",
    "csv_header",
    "describe_difference",
    "encode_csv",
    "encode_jsonl",
    "export_logs",
    "holds_nothing",
    "writes_parts",
]

#: The account an export of one account names in its parts' folder (``account=default``).
DEFAULT_ACCOUNT: Final = "default"


# -- statistics -----------------------------------------------------------------------


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


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _compressed(
    encode: Callable[[Sequence[IntegrationLog]], bytes], compression: str, header: bytes
) -> tuple[Callable[[Sequence[IntegrationLog]], bytes], bytes]:
    """``encode`` and ``header`` as complete gzip members (or zstd frames), one per commit."""
    if compression == "none":
        return encode, header
    pack: Callable[[bytes], bytes]
    if compression == "gzip":

        def pack(data: bytes) -> bytes:
            return gzip.compress(data, compresslevel=6, mtime=0)

    else:
        zstandard = require_extra("zstandard", "zstd", "a .zst export")
        pack = zstandard.ZstdCompressor(level=3).compress

    def encode_packed(items: Sequence[IntegrationLog]) -> bytes:
        return pack(encode(items))

    return encode_packed, pack(header) if header else b""


#: The name a field of ``CheckpointQuery`` is shown (and read) by.
_SHOWN: Final = {"codec": "compression", "start": "since", "end": "until"}

#: How a refused resume starts over instead (``sendcloud-async logs export``).
_START_OVER: Final = "--restart (instead of --resume) starts over"


def describe_difference(query: CheckpointQuery, other: CheckpointQuery) -> str:
    """The fields where ``query`` (this run) differs from ``other`` (the checkpoint)."""
    diffs = []
    for field in CheckpointQuery.__struct_fields__:
        name = _SHOWN.get(field, field)
        mine, theirs = getattr(query, name), getattr(other, name)
        if mine != theirs:
            shown = ["all" if v is None and name == "integration_id" else v for v in (mine, theirs)]
            if name == "page_size":
                shown = ["default" if v is None else v for v in (mine, theirs)]
            if name in ("since", "until"):
                shown = ["none" if v is None else v.isoformat() for v in (mine, theirs)]
            diffs.append(f"{name} {shown[0]} here but {shown[1]} in the checkpoint")
    return "; ".join(diffs)


# -- the job ----------------------------------------------------------------------------------


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
        self._sink: FileSink[IntegrationLog, Checkpoint] | None = None
        self._parts: PartsOutput | None = None
        self._state: Checkpoint | None = None
        self._started = False
        #: The fence refused a write: another writer owns the output now.
        self._fenced_out = False
        self._discarded = 0

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

    def _describe(self, state: Checkpoint) -> str:
        return f"appending page {state.pages:,}"

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Check the output path and checkpoint and lock the file. Sends nothing.

        Changes nothing on disk except creating an empty output file if there
        is none. Raises ``ExportInputError`` with a one-line reason.
        """
        if self._sink is not None or self._parts is not None:
            return
        if self.parts:
            self._open_parts()
            return
        path = self.path
        encode, header = _compressed(
            ENCODERS[self.query.format],
            self.query.compression,
            csv_header() if self.query.format == "csv" else b"",
        )
        sink = FileSink(
            path,
            self.checkpoint_path,
            state=self._checkpoint,
            encode=encode,
            header=header,
            writer="export",
            state_name="the checkpoint",
            describe=self._describe,
        )
        state = self._read_checkpoint(sink) if self.resume else None
        if self.resume and state is None:  # killed before its first checkpoint: start
            self.resume = False
        parent = path.parent
        if not parent.is_dir() and output_file_problem(path) is None:
            raise ExportInputError(f"cannot write {path}: the directory {parent} does not exist")
        if state is not None and state.pages and not path.exists():
            raise ExportInputError(
                f"cannot resume: {path} does not exist (its checkpoint does); {_START_OVER}"
            )
        try:
            size = sink.open()
            if state is not None and size < state.offset:
                raise ExportInputError(
                    f"cannot resume: {path} has {size:,} bytes but its checkpoint says "
                    f"{state.offset:,} were written; {_START_OVER}"
                )
            if not os.access(parent, os.W_OK):
                raise ExportInputError(
                    f"cannot write the checkpoint beside {path}: the directory is not writable"
                )
        except SinkInUseError as exc:
            sink.close()
            raise ExportInUseError(f"{exc}; wait for it or stop it") from None
        except SinkError as exc:
            sink.close()
            raise ExportInputError(str(exc)) from None
        except OSError as exc:
            sink.close()
            raise ExportInputError(f"cannot write {path}: {_reason(exc)}") from None
        except BaseException:
            sink.close()
            raise
        self._sink = sink
        self._state = state
        if state is not None:
            self._discarded = max(0, size - state.offset)

    def _read_checkpoint(self, sink: FileSink[IntegrationLog, Checkpoint]) -> Checkpoint | None:
        """The checkpoint; ``None`` if there is none and the output is missing or empty."""
        where = self.checkpoint_path
        try:
            state = sink.read()
        except OSError as exc:
            raise ExportInputError(f"cannot read the checkpoint {where}: {_reason(exc)}") from None
        except SinkError as exc:
            raise ExportInputError(
                f"the checkpoint {where} is damaged ({exc.reason}); {_START_OVER}"
            ) from None
        if state is None:
            try:
                size = self.path.stat().st_size
            except FileNotFoundError:
                return None
            except OSError:
                size = -1
            if size == 0:
                return None  # the checkpoint is written before the first byte of output
            raise ExportInputError(
                f"cannot resume: {self.path} has data but no checkpoint ({where}); {_START_OVER}"
            )
        return self._verified(state, str(where))

    def verify(self, state: Checkpoint) -> Checkpoint | None:
        """``state`` (a checkpoint ``recorded()`` gave) if a resume continues it.

        ``None`` if it holds nothing to continue; ``ExportInputError`` if it is of
        another version or damaged, or for another query.
        """
        return self._verified(state, self.state_location)

    def _verified(self, state: Checkpoint, where: str) -> Checkpoint | None:
        """``state`` if this export continues it; ``None`` if it holds nothing to continue.

        ``ExportInputError`` for another version, damage, or another query.
        """
        if state.version != CHECKPOINT_VERSION:
            raise ExportInputError(
                f"the checkpoint {where} has version {state.version}, "
                f"this sendcloud-async writes version {CHECKPOINT_VERSION}; {_START_OVER}"
            )
        if state.records < 0 or state.pages < 0:
            raise ExportInputError(f"the checkpoint {where} is damaged (negative counts)")
        if state.query != self.query:
            if holds_nothing(state.records):
                return None  # nothing to continue: this run starts afresh
            raise ExportInputError(
                f"cannot resume: the checkpoint {where} is for another export "
                f"({describe_difference(self.query, state.query)}); "
                f"{_START_OVER}, or pick another output"
            )
        return state

    def close(self) -> None:
        """Release the lock and the file (idempotent).

        A parts export lets its manifest go when ``run()`` ends; ``aclose()`` does it
        for one that never ran.
        """
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()

    async def aclose(self) -> None:
        """``close()``; a parts export also publishes what is buffered (idempotent)."""
        self.close()
        parts = self._parts
        if parts is not None:
            await parts.aclose()

    def _open_parts(self) -> None:
        from ._export_parts import PartsOutput  # here: the parts load their own modules

        self._parts = PartsOutput(
            self.destination,
            account=self.account,
            fmt=self.query.format,
            compression=self.query.compression,
            part_records=self._part_records,
            account_column=self._account_column,
            state_type=self._checkpoint,
            flush_seconds=self._part_seconds,
        )

    @property
    def state_location(self) -> str:
        """Where the checkpoint is: the file beside the output, or the parts manifest."""
        if self._parts is not None:
            return self._parts.manifest
        return str(self.checkpoint_path)

    async def recorded(self) -> Checkpoint | None:
        """The checkpoint the destination holds now (``None``: none). Changes nothing.

        Opens the job if needed; ``ExportInputError`` if the checkpoint is damaged.
        """
        self.open()
        if self._parts is not None:
            return await self._parts.recorded()
        if self._sink is None:
            return None
        try:
            return self._sink.read()
        except (OSError, SinkError):
            return None

    def __enter__(self) -> LogExport:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -------------------------------------------------------------------------------

    @property
    def saved_records(self) -> int:
        """How many records the checkpoint on disk (or the parts manifest) accounts for."""
        if self._parts is not None:
            return self._parts.saved_records
        return 0 if self._state is None else self._state.records

    @property
    def already_complete(self) -> bool:
        """Whether a resumed checkpoint says the export finished."""
        return self.resume and self._state is not None and self._state.done

    def _stats(self, base: Checkpoint, started: float) -> ExportStats:
        state = self._state
        assert state is not None
        return ExportStats(
            path=self.path,
            records=state.records,
            pages=state.pages,
            bytes=state.offset if self._parts is None else self._parts.saved_bytes,
            run_records=state.records - base.records,
            run_pages=state.pages - base.pages,
            elapsed=time.monotonic() - started,
            done=state.done,
            resumed=self.resume,
            already_complete=self.resume and base.done,
            discarded_bytes=self._discarded,
            destination=self.destination,
        )

    def _held(self) -> FileSink[IntegrationLog, Checkpoint]:
        assert self._sink is not None
        return self._sink

    def _start(self, fresh: Checkpoint | None) -> None:
        """Make the file and the checkpoint agree before the first page (a worker thread).

        ``fresh``: a new export (or one that never finished a page: the same thing)
        with this first checkpoint. It goes first: killed after it, a resume starts over.
        """
        sink = self._held()
        state = self._state
        if fresh is not None:
            sink.restart(fresh)
            fresh.offset = sink.offset
            if fresh.done and fresh.offset:
                sink.save(fresh)
            self._state = fresh
        elif state is not None and not state.done:
            sink.cut(state.offset, state)
        self._started = True

    def _new(self, cursor: str | None = None, done: bool = False) -> Checkpoint:
        return Checkpoint(
            version=CHECKPOINT_VERSION,
            query=self.query,
            cursor=cursor,
            offset=0,
            records=0,
            pages=0,
            done=done,
        )

    #: Awaited before every write (the first, which cuts the output back to the
    #: checkpoint, and each commit): raising stops the export with nothing more
    #: written. The many-worker export checks its lease there (``_cli/export_workers``).
    fence: Callable[[], Awaitable[None]] | None = None

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
        """Append the records of ``state`` (the checkpoint after them) through the sink."""
        await self._fenced()
        if self._parts is not None:
            await self._parts.commit(items, state)
            self._state = state
            _observe.emit(PageCommitted, self.destination, len(items), state.pages, state.records)
            return
        sink = self._held()
        try:
            await sink.commit(items, state)
            _observe.emit(PageCommitted, str(self.path), len(items), state.pages, state.records)
        finally:  # even when cancelled: the newest checkpoint on disk is the one kept
            self._state = sink.state or self._state

    # -- the walks -------------------------------------------------------------------------------

    #: Listings walked at once, and the most pages one commit writes.
    concurrency = 1
    _batch = 1
    #: Whether a listing that answers 404 ends its walk (or fails the export).
    _gone_on_404 = False

    def _walks(self, state: Checkpoint) -> list[tuple[int | None, str | None, bool]]:
        """Every walk of ``state``: the integration it lists (``None``: all), its cursor, done."""
        return [(self.query.integration_id, state.cursor, state.done)]

    async def _fresh(self, client: SendcloudClient) -> Checkpoint:
        """The first checkpoint of a new export."""
        return self._new()

    def _after(self, state: Checkpoint, batch: list[WalkPage]) -> Checkpoint:
        """The checkpoint after ``state`` and the pages of ``batch``."""
        last = batch[-1]
        return Checkpoint(
            version=CHECKPOINT_VERSION,
            query=self.query,
            cursor=state.cursor if last.done else last.next_cursor,
            offset=state.offset,
            records=state.records + sum(len(page.items) for page in batch),
            pages=state.pages + len(batch),
            done=last.done,
            listing_order=state.listing_order,
        )

    def _result(self, base: Checkpoint, started: float) -> ExportStats:
        return self._stats(base, started)

    # -- the run --------------------------------------------------------------------------------

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
        it ends: what was committed is published then, with its checkpoint.
        """
        self.open()
        parts = self._parts
        if parts is None:
            return await self._run(client, progress)
        try:
            await self._begin_parts(parts, client)
            stats = await self._run(client, progress)
        except BaseException:
            # What was committed is published, unless the fence said another writer owns
            # the output now: then nothing more may appear in it.
            close = parts.abandon if self._fenced_out else parts.aclose
            with suppress(Exception):  # the first error is the one to report
                await finish(asyncio.ensure_future(close()))
            raise
        await parts.aclose()
        return stats

    async def _first(self, client: SendcloudClient) -> Checkpoint:
        """The first checkpoint of a new export: ``_fresh``, with a range the listing's order."""
        fresh = await self._fresh(client)
        query = self.query
        if query.since is not None or query.until is not None:
            order = await probe_order(client, query.integration_id)
            fresh.listing_order = UNSET if order is None else order
        return fresh

    async def _begin_parts(self, parts: PartsOutput, client: SendcloudClient) -> None:
        """Take the manifest: continue from its checkpoint, or start afresh (old parts removed)."""
        if self._started:
            return
        state = await parts.begin(self.resume, lambda saved: self._verified(saved, parts.manifest))
        if state is None:
            self.resume = False  # nothing to continue: this run starts afresh
            state = await self._first(client)
            if state.done:  # nothing to export (no integration): say so in the manifest
                await parts.commit([], state)
        self._state = state
        self._started = True

    async def _run(self, client: SendcloudClient, progress: ProgressCallback | None) -> ExportStats:
        if self._sink is None and self._parts is None:
            self.open()
        started = time.monotonic()
        if self.already_complete:
            assert self._state is not None
            return self._result(self._state, started)
        loop = asyncio.get_running_loop()
        if not self._started:
            state = self._state
            fresh = await self._first(client) if state is None or state.pages == 0 else None
            await self._fenced()
            await finish(loop.run_in_executor(None, self._start, fresh))
        state = self._state
        assert state is not None
        base = msgspec.structs.replace(state)
        walks = self._walks(state)
        todo = [i for i, (_, _, done) in enumerate(walks) if not done]
        queue: asyncio.Queue[WalkPage | _Failed | None] = asyncio.Queue(
            maxsize=2 * self.concurrency
        )
        supervisor = loop.create_task(self._feed(client, walks, todo, queue))
        try:
            while True:
                item = await queue.get()
                batch: list[WalkPage] = []
                failure: BaseException | None = None
                while True:
                    if item is None:
                        break
                    if isinstance(item, _Failed):
                        failure = item.error
                        break
                    batch.append(item)
                    if len(batch) >= self._batch or queue.empty():
                        break
                    item = queue.get_nowait()
                if batch:
                    assert self._state is not None
                    new = self._after(self._state, batch)
                    await self._commit([log for page in batch for log in page.items], new)
                    if progress is not None:
                        progress(self._result(base, started))
                if failure is not None:
                    raise failure
                if item is None:
                    break
        finally:
            await stop_task(supervisor)
        return self._result(base, started)

    async def _feed(
        self,
        client: SendcloudClient,
        walks: list[tuple[int | None, str | None, bool]],
        todo: list[int],
        queue: asyncio.Queue[WalkPage | _Failed | None],
    ) -> None:
        """Run the walks of ``todo`` (``concurrency`` at once, on ``run_due``) into ``queue``.

        Each walk puts its pages in order, from its cursor in ``walks``. The queue
        ends with ``None``, or with the first failure (the other walks stopped).
        """

        query = self.query
        ranged = query.since is not None or query.until is not None
        order = None if self._state is None else self._state.order

        async def walk(index: int) -> None:
            integration_id, cursor, _ = walks[index]
            if cursor is None:  # a walk not begun: a range begins it at its near end
                cursor = start_cursor(order, query.since, query.until)
            pages = client.logs.pages(
                integration_id=integration_id, cursor=cursor, page_size=self.query.page_size
            )
            try:
                async with aclosing(pages):
                    async for page in pages:
                        if page.next_url is not None and page.next_cursor is None:
                            raise ExportError(
                                f"the server's next-page link has no cursor ({page.next_url}); "
                                "the export cannot be checkpointed"
                            )
                        if not ranged:
                            await queue.put(WalkPage(index, page.items, page.next_cursor))
                            continue
                        kept, beyond = in_range(page.items, order, query.since, query.until)
                        await queue.put(WalkPage(index, kept, None if beyond else page.next_cursor))
                        if beyond:  # the range's far end: the rest of the listing is beyond
                            break
            except NotFoundError:
                if not self._gone_on_404:
                    raise
                # The integration was deleted: its logs are no longer listed per integration.
                await queue.put(WalkPage(index, [], None, gone=True))

        try:
            await run_due(todo, walk, concurrency=self.concurrency)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # the writer raises it after the pages before it
            await queue.put(_Failed(exc))
        else:
            await queue.put(None)


class WalkPage:
    """A page on its way from a walk to the writer."""

    __slots__ = ("done", "gone", "index", "items", "next_cursor")

    def __init__(
        self,
        index: int,
        items: list[IntegrationLog],
        next_cursor: str | None,
        *,
        gone: bool = False,
    ) -> None:
        self.index = index
        self.items = items
        self.next_cursor = next_cursor
        self.done = next_cursor is None
        self.gone = gone


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


async def export_logs(
    client: SendcloudClient,
    out_path: str | os.PathLike[str],
    *,
    fmt: str = "jsonl",
    integration_id: int | None = None,
    page_size: int | None = None,
    resume: bool = False,
    progress: ProgressCallback | None = None,
    base_url: str | None = None,
    compression: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    account: str = DEFAULT_ACCOUNT,
    part_records: int | None = None,
) -> ExportStats:
    """Export the exception logs ``client`` can see to ``out_path``, exactly once.

    ``resume=True`` continues from ``out_path``'s checkpoint (and refuses one
    written for another query). ``base_url`` names the source in the
    checkpoint; it defaults to the client's base URL.

    ``out_path`` may be a URL (``s3://BUCKET/PREFIX``, ``gs://``, ``az://``,
    ``file://``), and ``fmt`` ``"parquet"``: the export is then a directory of parts
    under ``account=ACCOUNT/`` (``part_records`` logs per part at most), whose
    manifest holds the checkpoint. ``compression``: ``gzip`` or ``zstd`` for a file
    (else the file name's ``.gz``/``.zst`` says it), a parts format's codec for parts.
    ``since``/``until`` (aware date-times): only the logs created in ``[since, until)``.
    """
    job = LogExport(
        out_path,
        base_url=str(client.base_url) if base_url is None else base_url,
        fmt=fmt,
        integration_id=integration_id,
        page_size=page_size,
        resume=resume,
        compression=compression,
        since=since,
        until=until,
        account=account,
        part_records=part_records,
    )
    job.open()
    try:
        return await job.run(client, progress=progress)
    finally:
        await job.aclose()
