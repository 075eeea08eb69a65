"""An export into one file through a ``FileSink``, its checkpoint beside it.

``LogExport`` writes here unless ``writes_parts`` says parts (``_export_parts``).
``open()`` reads and checks the checkpoint and locks the file, sending nothing.
Before the first page the file and the checkpoint are made to agree: a new export
saves its first checkpoint, then empties the file (killed between the two, a
resume starts over); a resumed one cuts the file back to the checkpoint's offset
(bytes beyond it are a commit whose checkpoint was never saved). Each commit is
``FileSink.commit``: the pages at the offset, fsync-ed, then the checkpoint.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from ._aio import finish
from ._checkpoint import START_OVER, Checkpoint, CheckpointQuery, checkpoint_path, continued
from ._errors import ExportInputError, ExportInUseError
from ._fileio import output_file_problem
from ._records import file_encoding
from ._sinks import FileSink, SinkError, SinkInUseError

if TYPE_CHECKING:
    from pathlib import Path

    from ._models import IntegrationLog

__all__ = ["FileOutput"]


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


class FileOutput:
    """An export's file and its checkpoint (module docstring); ``state`` is the last one."""

    def __init__(
        self,
        path: Path,
        query: CheckpointQuery,
        *,
        state_type: type[Checkpoint],
        describe: Callable[[Checkpoint], str],
    ) -> None:
        encode, header = file_encoding(query.format, query.compression)
        self.sink: FileSink[IntegrationLog, Checkpoint] = FileSink(
            path,
            checkpoint_path(path),
            state=state_type,
            encode=encode,
            header=header,
            writer="export",
            state_name="the checkpoint",
            describe=describe,
        )
        self.path = path
        self.query = query
        #: Where the checkpoint is, as messages show it.
        self.location = str(self.sink.state_path)
        #: The checkpoint continued or committed last (``None``: none yet).
        self.state: Checkpoint | None = None
        #: Bytes found after the checkpoint's offset when opened (dropped by the resume).
        self.discarded = 0

    def open(self, resume: bool) -> Checkpoint | None:
        """Check the path and (``resume``) the checkpoint, and lock the file. Sends nothing.

        The checkpoint to continue (``None``: the export starts afresh). Changes
        nothing on disk except creating an empty file if there is none.
        ``ExportInputError`` (or ``ExportInUseError``) with a one-line reason.
        """
        path, sink = self.path, self.sink
        state = self._read() if resume else None
        parent = path.parent
        if not parent.is_dir() and output_file_problem(path) is None:
            raise ExportInputError(f"cannot write {path}: the directory {parent} does not exist")
        if state is not None and state.pages and not path.exists():
            raise ExportInputError(
                f"cannot resume: {path} does not exist (its checkpoint does); {START_OVER}"
            )
        try:
            size = sink.open()
            if state is not None and size < state.offset:
                raise ExportInputError(
                    f"cannot resume: {path} has {size:,} bytes but its checkpoint says "
                    f"{state.offset:,} were written; {START_OVER}"
                )
            if not os.access(parent, os.W_OK):
                raise ExportInputError(
                    f"cannot write the checkpoint beside {path}: the directory is not writable"
                )
        except BaseException as exc:
            sink.close()
            if isinstance(exc, SinkInUseError):
                raise ExportInUseError(f"{exc}; wait for it or stop it") from None
            if isinstance(exc, SinkError):
                raise ExportInputError(str(exc)) from None
            if isinstance(exc, OSError):
                raise ExportInputError(f"cannot write {path}: {_reason(exc)}") from None
            raise
        self.state = state
        if state is not None:
            self.discarded = max(0, size - state.offset)
        return state

    def _read(self) -> Checkpoint | None:
        """The checkpoint to continue; ``None``: none, and the file is missing or empty."""
        where = self.location
        try:
            state = self.sink.read()
        except OSError as exc:
            raise ExportInputError(f"cannot read the checkpoint {where}: {_reason(exc)}") from None
        except SinkError as exc:
            raise ExportInputError(
                f"the checkpoint {where} is damaged ({exc.reason}); {START_OVER}"
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
                f"cannot resume: {self.path} has data but no checkpoint ({where}); {START_OVER}"
            )
        return continued(state, self.query, where)

    async def recorded(self) -> Checkpoint | None:
        """The checkpoint on disk now (``None``: none, or it cannot be read). Changes nothing."""
        try:
            return self.sink.read()
        except (OSError, SinkError):
            return None

    async def begin(self, resume: bool) -> Checkpoint | None:
        """The checkpoint to continue, as ``open()`` found it."""
        return self.state

    async def start(self, fresh: Checkpoint | None) -> None:
        """Make the file and the checkpoint agree before the first page (module docstring).

        ``fresh``: the first checkpoint of a new export (or of one that never
        finished a page: the same thing). Runs in a worker thread, finished even if
        the caller is cancelled meanwhile.
        """
        await finish(asyncio.get_running_loop().run_in_executor(None, self._start, fresh))

    def _start(self, fresh: Checkpoint | None) -> None:
        sink, state = self.sink, self.state
        if fresh is not None:
            sink.restart(fresh)
            fresh.offset = sink.offset
            if fresh.done and fresh.offset:
                sink.save(fresh)
            self.state = fresh
        elif state is not None and not state.done:
            sink.cut(state.offset, state)

    async def commit(self, items: Sequence[IntegrationLog], state: Checkpoint) -> None:
        """Append ``items`` and then save ``state``, the checkpoint after them."""
        try:
            await self.sink.commit(items, state)
        finally:  # even when cancelled: the newest checkpoint on disk is the one kept
            self.state = self.sink.state or self.state

    @property
    def saved_records(self) -> int:
        return 0 if self.state is None else self.state.records

    @property
    def saved_bytes(self) -> int:
        return 0 if self.state is None else self.state.offset

    async def end(self, *, abandon: bool = False) -> None:
        """The run ended: nothing to publish (the lock is kept until ``close()``)."""

    @property
    def closed(self) -> bool:
        return self.sink.closed

    def close(self) -> None:
        """Release the lock and the file (idempotent)."""
        self.sink.close()
