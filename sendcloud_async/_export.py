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
"""

from __future__ import annotations

import asyncio
import csv
import io
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import msgspec

from . import _observe
from . import _validate as check
from ._aio import finish, stop_task
from ._defaults import FORMATS, Format
from ._errors import InvalidInputError, NotFoundError, SendcloudError
from ._fileio import output_file_problem
from ._models import IntegrationLog
from ._sinks import FileSink, SinkError, SinkInUseError
from .events import PageCommitted

if TYPE_CHECKING:
    from ._client import SendcloudClient

__all__ = [
    "CHECKPOINT_SUFFIX",
    "CHECKPOINT_VERSION",
    "CSV_COLUMNS",
    "FORMATS",
    "Checkpoint",
    "CheckpointQuery",
    "ExportError",
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
]

CHECKPOINT_SUFFIX: Final = ".checkpoint.json"
CHECKPOINT_VERSION: Final = 1

#: The CSV columns: the spec's ``integration-log`` fields in the spec's order,
#: with ``response`` and ``request`` each split into two columns.
CSV_COLUMNS: Final = (
    "id",
    "integration_id",
    "base_url",
    "full_url",
    "method",
    "response_code",
    "response_headers",
    "response_body",
    "request_headers",
    "request_payload",
    "created_at",
    "exception_type",
    "exception",
    "protected",
    "additional_data",
)

_ENCODER: Final = msgspec.json.Encoder()


class ExportError(SendcloudError):
    """The export cannot go on (raised while running: exit status 1 in the CLI)."""


class ExportInputError(ExportError, ValueError):
    """The export cannot start: a bad argument, output path or checkpoint.

    Raised by ``LogExport.open()``, before any request is sent.
    """


# -- the checkpoint ------------------------------------------------------------


class CheckpointQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What was asked for: a resume must ask for exactly the same."""

    base_url: str
    integration_id: int | None
    format: str
    page_size: int | None
    #: ``"account"`` (one account-wide walk) or ``"per-integration"`` (see ``_export_walks``).
    listing: str = "account"


class Checkpoint(msgspec.Struct, kw_only=True):
    """The state of an export on disk, in ``FILE.checkpoint.json``.

    ``offset`` bytes of the file hold ``records`` logs in ``pages`` pages: every
    log before ``cursor`` (``None`` before the first page). ``done`` is set once
    the last page is written.
    """

    version: int
    query: CheckpointQuery
    cursor: str | None
    offset: int
    records: int
    pages: int
    done: bool


class _Recorded(msgspec.Struct):
    """What every kind of checkpoint records: its query, and how many records it holds."""

    query: CheckpointQuery
    records: int


def holds_nothing(records: int) -> bool:
    """Whether a checkpoint accounting for ``records`` logs holds nothing worth keeping.

    The one rule for an export that wrote nothing (its first request failed, say):
    it does not stand in the way of a new run, whatever that run asks for.
    """
    return records == 0


def checkpoint_query(out_path: str | os.PathLike[str]) -> tuple[CheckpointQuery, int] | None:
    """The query recorded beside ``out_path`` and the records it holds.

    ``None`` when there is no checkpoint or it cannot be read or decoded
    (``LogExport.open()`` says why, when it matters).
    """
    try:
        raw = checkpoint_path(out_path).read_bytes()
        recorded = msgspec.json.decode(raw, type=_Recorded)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return recorded.query, recorded.records


def checkpoint_path(out_path: str | os.PathLike[str]) -> Path:
    """The checkpoint file of an export to ``out_path``: ``out_path + ".checkpoint.json"``."""
    path = Path(out_path)
    return path.with_name(path.name + CHECKPOINT_SUFFIX)


# -- the writers -------------------------------------------------------------------


def encode_jsonl(items: Sequence[IntegrationLog]) -> bytes:
    """One JSON object per log, each followed by ``\\n``.

    Every top-level field of ``IntegrationLog`` is present (``null`` when the
    server sent none); inside ``request`` and ``response`` a null member is left
    out. Date-times keep the server's UTC offset (``Z`` for UTC).
    """
    if not items:
        return b""
    return _ENCODER.encode_lines(items)


def _text(value: Any) -> str:
    """A CSV cell: ``""`` for null, a string as is, anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    text: str = _ENCODER.encode(value).decode()
    if isinstance(value, datetime):
        return text[1:-1]  # the JSON string's contents: the same form as in JSON Lines
    return text


def _row(log: IntegrationLog) -> list[str]:
    response = log.response
    request = log.request
    return [
        _text(log.id),
        _text(log.integration_id),
        log.base_url,
        _text(log.full_url),
        _text(log.method),
        _text(log.response_code),
        "" if response is None else _text(response.headers),
        "" if response is None else _text(response.body),
        "" if request is None else _text(request.headers),
        "" if request is None else _text(request.payload),
        _text(log.created_at),
        _text(log.exception_type),
        _text(log.exception),
        _text(log.protected),
        _text(log.additional_data),
    ]


def csv_header() -> bytes:
    """The CSV header row (``CSV_COLUMNS``), ``\\r\\n``-terminated."""
    return (",".join(CSV_COLUMNS) + "\r\n").encode()


def encode_csv(items: Sequence[IntegrationLog]) -> bytes:
    """CSV rows (RFC 4180: ``\\r\\n``, fields quoted when needed), UTF-8, no header.

    Flattening: ``response`` becomes ``response_headers`` and ``response_body``,
    ``request`` becomes ``request_headers`` and ``request_payload``. A JSON
    object (or array) is written as compact JSON text, a string as it is, null
    as an empty cell, booleans as ``true``/``false``, date-times as ISO 8601
    with their offset. So an empty cell means null *or* an empty string
    (``additional_data`` is often ``""``).
    """
    if not items:
        return b""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(_row(log) for log in items)
    return buffer.getvalue().encode()


_ENCODERS: Final[dict[str, Callable[[Sequence[IntegrationLog]], bytes]]] = {
    "jsonl": encode_jsonl,
    "csv": encode_csv,
}


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

    @property
    def rate(self) -> float:
        """Records per second in this run."""
        return self.run_records / self.elapsed if self.elapsed > 0 else 0.0


ProgressCallback = Callable[[ExportStats], None]


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


#: How a refused resume starts over instead (``sendcloud-async logs export``).
_START_OVER: Final = "--restart (instead of --resume) starts over"


def describe_difference(query: CheckpointQuery, other: CheckpointQuery) -> str:
    """The fields where ``query`` (this run) differs from ``other`` (the checkpoint)."""
    diffs = []
    for name in CheckpointQuery.__struct_fields__:
        mine, theirs = getattr(query, name), getattr(other, name)
        if mine != theirs:
            shown = ["all" if v is None and name == "integration_id" else v for v in (mine, theirs)]
            if name == "page_size":
                shown = ["default" if v is None else v for v in (mine, theirs)]
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
    ) -> None:
        if fmt not in _ENCODERS:
            raise ExportInputError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        try:
            if integration_id is not None:
                check.integration_id(integration_id, "integration")
            check.page_size(page_size)
        except InvalidInputError as exc:
            raise ExportInputError(str(exc)) from None
        self.path = Path(out_path)
        self.checkpoint_path = checkpoint_path(self.path)
        self.query = CheckpointQuery(
            base_url=base_url, integration_id=integration_id, format=fmt, page_size=page_size
        )
        self.resume = resume
        self._sink: FileSink[IntegrationLog, Checkpoint] | None = None
        self._state: Checkpoint | None = None
        self._started = False
        self._discarded = 0

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
        if self._sink is not None:
            return
        path = self.path
        sink = FileSink(
            path,
            self.checkpoint_path,
            state=self._checkpoint,
            encode=_ENCODERS[self.query.format],
            header=csv_header() if self.query.format == "csv" else b"",
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
            raise ExportInputError(f"{exc}; wait for it or stop it") from None
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
        """Release the lock and the file (idempotent)."""
        sink, self._sink = self._sink, None
        if sink is not None:
            sink.close()

    def __enter__(self) -> LogExport:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- state -------------------------------------------------------------------------------

    @property
    def saved_records(self) -> int:
        """How many records the checkpoint on disk accounts for."""
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
            bytes=state.offset,
            run_records=state.records - base.records,
            run_pages=state.pages - base.pages,
            elapsed=time.monotonic() - started,
            done=state.done,
            resumed=self.resume,
            already_complete=self.resume and base.done,
            discarded_bytes=self._discarded,
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

    async def _commit(self, items: list[IntegrationLog], state: Checkpoint) -> None:
        """Append the records of ``state`` (the checkpoint after them) through the sink."""
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
        """
        if self._sink is None:
            self.open()
        started = time.monotonic()
        if self.already_complete:
            assert self._state is not None
            return self._result(self._state, started)
        loop = asyncio.get_running_loop()
        if not self._started:
            state = self._state
            fresh = await self._fresh(client) if state is None or state.pages == 0 else None
            await finish(loop.run_in_executor(None, self._start, fresh))
        state = self._state
        assert state is not None
        base = msgspec.structs.replace(state)
        walks = self._walks(state)
        todo = deque(i for i, (_, _, done) in enumerate(walks) if not done)
        queue: asyncio.Queue[WalkPage | _Failed | None] = asyncio.Queue(
            maxsize=2 * self.concurrency
        )
        walkers = [
            loop.create_task(self._walker(client, walks, todo, queue))
            for _ in range(min(self.concurrency, len(todo)))
        ]
        supervisor = loop.create_task(_supervise(walkers, queue))
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

    async def _walker(
        self,
        client: SendcloudClient,
        walks: list[tuple[int | None, str | None, bool]],
        todo: deque[int],
        queue: asyncio.Queue[WalkPage | _Failed | None],
    ) -> None:
        """Take walks from ``todo`` until none is left; each walk's pages go to ``queue`` in order.

        ``walks`` are the walks as this run found them (a walk starts from its cursor there).
        """
        while todo:
            index = todo.popleft()
            integration_id, cursor, _ = walks[index]
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
                        await queue.put(WalkPage(index, page.items, page.next_cursor))
            except NotFoundError:
                if not self._gone_on_404:
                    raise
                # The integration was deleted: its logs are no longer listed per integration.
                await queue.put(WalkPage(index, [], None, gone=True))


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


async def _supervise(
    walkers: Sequence[asyncio.Task[None]], queue: asyncio.Queue[WalkPage | _Failed | None]
) -> None:
    """Wait for the walkers; on the first failure stop the others. Ends the queue either way."""
    try:
        if walkers:
            done, _ = await asyncio.wait(walkers, return_when=asyncio.FIRST_EXCEPTION)
            failed = next((t for t in done if not t.cancelled() and t.exception()), None)
            if failed is not None:
                for task in walkers:
                    task.cancel()
                await asyncio.wait(walkers)
                error = failed.exception()
                assert error is not None
                await queue.put(_Failed(error))
                return
    except asyncio.CancelledError:
        for task in walkers:
            task.cancel()
        if walkers:
            await asyncio.wait(walkers)
        raise
    await queue.put(None)


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
) -> ExportStats:
    """Export the exception logs ``client`` can see to ``out_path``, exactly once.

    ``resume=True`` continues from ``out_path``'s checkpoint (and refuses one
    written for another query). ``base_url`` names the source in the
    checkpoint; it defaults to the client's base URL.
    """
    job = LogExport(
        out_path,
        base_url=str(client.base_url) if base_url is None else base_url,
        fmt=fmt,
        integration_id=integration_id,
        page_size=page_size,
        resume=resume,
    )
    with job:
        return await job.run(client, progress=progress)
