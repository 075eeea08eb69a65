"""Exactly-once export of exception logs to a file, with a checkpoint beside it.

The engine behind ``sendcloud-async logs export``, usable on its own::

    from sendcloud_async._export import export_logs

    stats = await export_logs(client, "logs.jsonl", fmt="jsonl", page_size=100)
    # killed? run the same call again with resume=True

How exactly-once is kept, whatever instant the process dies at:

1. Each page is encoded and written with one ``pwrite`` at the offset the
   checkpoint names, then ``fsync``-ed.
2. Only then is the checkpoint (``FILE.checkpoint.json``) replaced atomically:
   written to ``FILE.checkpoint.json.tmp``, ``fsync``-ed, ``os.replace``-d over
   the old one, and the directory ``fsync``-ed. It records the cursor after the
   page and the byte offset where the file's complete pages end.
3. A resumed run truncates the file to the checkpoint's offset (dropping any
   page written after the last checkpoint) and asks the server for the logs
   after the checkpoint's cursor.

So the file's bytes up to ``offset`` always hold exactly the logs before
``cursor``, each once. The checkpoint also records the query (base URL,
integration, format, page size); a resume with another query is refused.
While a job runs it holds an exclusive ``flock`` on the output file, so two
exports cannot write one file.

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
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec

from . import _validate as check
from ._errors import InvalidInputError, SendcloudError
from ._fileio import lock_exclusively, output_file_problem, writing
from ._models import IntegrationLog

if sys.platform != "win32":
    pass

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

Format = Literal["jsonl", "csv"]
FORMATS: Final[tuple[Format, ...]] = ("jsonl", "csv")
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


_CHECKPOINT_DECODER: Final = msgspec.json.Decoder(Checkpoint)


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


# -- file helpers ------------------------------------------------------------------------


def _write_all(fd: int, data: bytes, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


def _fsync_dir(path: Path) -> None:
    if sys.platform == "win32":  # directories cannot be opened (or fsync-ed) there
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        self._encode = _ENCODERS[fmt]
        self._fd: int | None = None
        self._state: Checkpoint | None = None
        self._started = False
        self._discarded = 0

    # -- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Check the output path and checkpoint and lock the file. Sends nothing.

        Changes nothing on disk except creating an empty output file if there
        is none. Raises ``ExportInputError`` with a one-line reason.
        """
        if self._fd is not None:
            return
        path = self.path
        state: Checkpoint | None = None
        if self.resume:
            state = self._read_checkpoint()
            if state is None:  # killed before its first checkpoint: nothing to resume, so start
                self.resume = False
        problem = output_file_problem(path)
        if problem is not None:
            raise ExportInputError(f"cannot write {path}: {problem}")
        parent = path.parent
        if not parent.is_dir():
            raise ExportInputError(f"cannot write {path}: the directory {parent} does not exist")
        if state is not None and state.pages and not path.exists():
            raise ExportInputError(
                f"cannot resume: {path} does not exist (its checkpoint does); {_START_OVER}"
            )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o666)
        except OSError as exc:
            raise ExportInputError(f"cannot write {path}: {_reason(exc)}") from None
        try:
            self._lock(fd)
            size = os.fstat(fd).st_size
            if state is not None and size < state.offset:
                raise ExportInputError(
                    f"cannot resume: {path} has {size:,} bytes but its checkpoint says "
                    f"{state.offset:,} were written; {_START_OVER}"
                )
            if not os.access(parent, os.W_OK):
                raise ExportInputError(
                    f"cannot write the checkpoint beside {path}: the directory is not writable"
                )
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        self._state = state
        if state is not None:
            self._discarded = max(0, size - state.offset)

    def _lock(self, fd: int) -> None:
        if not lock_exclusively(fd):
            raise ExportInputError(
                f"another export is writing {self.path} (it is locked); wait for it or stop it"
            )

    def _read_checkpoint(self) -> Checkpoint | None:
        """The checkpoint; ``None`` if there is none and the output is missing or empty."""
        where = self.checkpoint_path
        try:
            raw = where.read_bytes()
        except FileNotFoundError:
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
            ) from None
        except OSError as exc:
            raise ExportInputError(f"cannot read the checkpoint {where}: {_reason(exc)}") from None
        try:
            state = self._decode_checkpoint(raw)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ExportInputError(
                f"the checkpoint {where} is damaged ({exc}); {_START_OVER}"
            ) from None
        if state.version != CHECKPOINT_VERSION:
            raise ExportInputError(
                f"the checkpoint {where} has version {state.version}, "
                f"this sendcloud-async writes version {CHECKPOINT_VERSION}; {_START_OVER}"
            )
        if state.offset < 0 or state.records < 0 or state.pages < 0:
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

    def _decode_checkpoint(self, raw: bytes) -> Checkpoint:
        return _CHECKPOINT_DECODER.decode(raw)

    def close(self) -> None:
        """Release the lock and the file (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

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

    def _write_checkpoint(self, state: Checkpoint) -> None:
        target = self.checkpoint_path
        tmp = target.with_name(target.name + ".tmp")
        with writing(target, "saving the checkpoint"):
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
            try:
                _write_all(fd, _ENCODER.encode(state) + b"\n", 0)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            _fsync_dir(target.parent)

    def _start(self) -> None:
        """Make the file and the checkpoint agree before the first page."""
        fd = self._fd
        assert fd is not None
        state = self._state
        if state is None or state.pages == 0:
            # A new export (or one that never finished a page: the same thing).
            # The checkpoint goes first: killed after it, a resume starts over.
            state = Checkpoint(
                version=CHECKPOINT_VERSION,
                query=self.query,
                cursor=None,
                offset=0,
                records=0,
                pages=0,
                done=False,
            )
            self._write_checkpoint(state)
            with writing(self.path, "emptying it for a new export"):
                os.ftruncate(fd, 0)
                header = csv_header() if self.query.format == "csv" else b""
                if header:
                    _write_all(fd, header, 0)
                    state.offset = len(header)
                os.fsync(fd)
            self._state = state
        elif not state.done:
            with writing(self.path, "cutting it back to its checkpoint"):
                os.ftruncate(fd, state.offset)
                os.fsync(fd)
        self._started = True

    def _commit(self, items: list[IntegrationLog], next_cursor: str | None, done: bool) -> None:
        """Append one page, then move the checkpoint past it (runs in a worker thread)."""
        fd = self._fd
        state = self._state
        assert fd is not None
        assert state is not None
        data = self._encode(items)
        if data:
            with writing(self.path, f"appending page {state.pages + 1:,}"):
                _write_all(fd, data, state.offset)
                os.fsync(fd)
        new = Checkpoint(
            version=CHECKPOINT_VERSION,
            query=self.query,
            cursor=state.cursor if done else next_cursor,
            offset=state.offset + len(data),
            records=state.records + len(items),
            pages=state.pages + 1,
            done=done,
        )
        self._write_checkpoint(new)
        self._state = new

    # -- the run --------------------------------------------------------------------------------

    async def run(
        self, client: SendcloudClient, *, progress: ProgressCallback | None = None
    ) -> ExportStats:
        """Export every log after the checkpoint (or all of them), page by page.

        ``progress`` is called in the event loop after each page is on disk.
        Cancelling the task waits for a page being written to finish, so the
        checkpoint on disk always matches the file. Raises ``SendcloudError``
        subclasses for API failures and ``OSError`` for write failures.
        """
        if self._fd is None:
            self.open()
        started = time.monotonic()
        if self.already_complete:
            assert self._state is not None
            return self._stats(self._state, started)
        loop = asyncio.get_running_loop()
        if not self._started:
            await _complete(loop.run_in_executor(None, self._start))
        state = self._state
        assert state is not None
        base = state
        pages = client.logs.pages(
            integration_id=self.query.integration_id,
            cursor=state.cursor,
            page_size=self.query.page_size,
        )
        pending: asyncio.Future[None] | None = None

        def reported(written: asyncio.Future[None]) -> None:
            if progress is not None and not written.cancelled() and written.exception() is None:
                progress(self._stats(base, started))

        try:
            async for page in pages:
                if page.next_url is not None and page.next_cursor is None:
                    raise ExportError(
                        f"the server's next-page link has no cursor ({page.next_url}); "
                        "the export cannot be checkpointed"
                    )
                if pending is not None:
                    # The previous page is on disk before this one is written.
                    await _complete(pending)
                    pending = None
                # Written in a worker thread while the next page is being fetched.
                pending = loop.run_in_executor(
                    None, self._commit, page.items, page.next_cursor, page.next_cursor is None
                )
                if progress is not None:  # as soon as the page is on disk, not at the next one
                    pending.add_done_callback(reported)
            if pending is not None:
                await _complete(pending)
                pending = None
        finally:
            if pending is not None:
                # Interrupted or failed while a page was being written: let it
                # finish, so that the checkpoint on disk is the newest one.
                await _complete(pending, check=False)
            await pages.aclose()
        return self._stats(base, started)


async def _complete(future: asyncio.Future[None], *, check: bool = True) -> None:
    """Wait until ``future`` is done, even through cancellation (re-raised afterwards).

    A worker thread cannot be stopped: a cancelled wait must not leave it
    writing behind our back.
    """
    interrupted = False
    while not future.done():
        try:
            await asyncio.wait((future,))
        except asyncio.CancelledError:
            interrupted = True
    error = None if future.cancelled() else future.exception()
    if interrupted:
        raise asyncio.CancelledError
    if error is not None and check:
        raise error


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
