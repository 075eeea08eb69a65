"""``FileSink``: records appended to a file at the committed offset, the state beside it.

One commit: the records are encoded and written with ``pwrite`` at ``offset`` (the
end of the committed records) and the file is ``fsync``-ed; only then is the state
(with the new ``offset``) written to ``STATE.tmp``, ``fsync``-ed, renamed over
``STATE`` and the directory ``fsync``-ed (``atomic_write``). Whatever instant the
process dies at, the first ``offset`` bytes of the file hold exactly the records
of the state on disk; a writer that continues cuts the file back to ``offset``
first (bytes after it are a batch whose state was never saved). A write of the
records that fails (a full disk, a file size limit: part of the batch may be in the
file) cuts the file back to ``offset`` at once, so no reader finds a partial batch
after the committed records. A save of the state that fails may still have landed
(renamed, then the directory's ``fsync`` failed): the next commit goes on only if
the state on disk is still the one committed before, and ``committed()`` or
``load()`` takes the one on disk. The file is locked (``lock_exclusively``) while the sink
holds it.

The state is a msgspec struct with an ``offset`` field (the sink sets it); it is
saved as one line of JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import msgspec

from .._aio import finish
from .._fileio import atomic_write, lock_exclusively, output_file_problem, write_at, writing
from .._lifecycle import Lifecycle
from ._base import ENCODER, SinkError, SinkInUseError, decode_state

__all__ = ["FileSink"]


class _Placed(Protocol):
    offset: int


R = TypeVar("R")
S = TypeVar("S", bound=_Placed)


class FileSink(Lifecycle, Generic[R, S]):
    """Records in ``path`` (``encode``-d, after ``header``), the state in ``state_path``.

    ``writer`` names who holds the file in the refusal of a second one (``another
    export is writing logs.jsonl (it is locked)``); ``state_name`` names the
    state in errors (``cannot write X (saving the checkpoint): ...``);
    ``describe(state)`` says what a commit that leads to ``state`` appends.

    The steps run in the caller's thread (``open``, ``read``, ``restart``,
    ``cut``, ``write``: a job calls them from a worker thread) or, as a ``Sink``,
    in a worker thread (``load``, ``commit``).
    """

    kind: ClassVar[str] = "file sink"

    def __init__(
        self,
        path: str | os.PathLike[str],
        state_path: str | os.PathLike[str],
        *,
        state: type[S],
        encode: Callable[[Sequence[R]], bytes],
        header: bytes = b"",
        writer: str = "writer",
        state_name: str = "the state",
        describe: Callable[[S], str] = lambda state: "appending the new records",
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.state_path = Path(state_path)
        self.header = header
        self.writer = writer
        self.state_name = state_name
        self.describe = describe
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(state)
        self._encode = encode
        self._fd: int | None = None
        #: The end of the committed records in the file, and the state committed last.
        self.offset = 0
        self.state: S | None = None
        #: The end of the bytes written to the file (beyond ``offset``: a batch whose
        #: state's save failed; the next commit cuts it).
        self._end = 0
        #: The last save of the state failed: the state on disk may be the new one.
        self.save_failed = False

    # -- the steps (blocking) ------------------------------------------------------------

    def read(self) -> S | None:
        """The saved state (``None``: none). ``OSError`` as raised; ``SinkError`` if damaged."""
        self.check_open()
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        state: S = decode_state(self._decoder, raw, self.state_path)
        if state.offset < 0:
            raise SinkError(f"the state {self.state_path} is damaged (a negative offset)")
        return state

    def open(self) -> int:
        """Create the file if there is none and lock it; its size. Idempotent.

        ``SinkError`` if it cannot hold records (not a regular file),
        ``SinkInUseError`` if another writer has it locked, ``OSError`` otherwise.
        """
        self.check_open()
        if self._fd is not None:
            return os.fstat(self._fd).st_size
        problem = output_file_problem(self.path)
        if problem is not None:
            raise SinkError(f"cannot write {self.path}: {problem}", problem)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o666)
        if not lock_exclusively(fd):
            os.close(fd)
            raise SinkInUseError(f"another {self.writer} is writing {self.path} (it is locked)")
        self._fd = fd
        return os.fstat(fd).st_size

    def _held(self) -> int:
        self.check_open()
        fd = self._fd
        if fd is None:
            raise RuntimeError("open() the file sink first")
        return fd

    def save(self, state: S) -> None:
        """Replace the state on disk by ``state`` (atomically); the records stay as they are."""
        with writing(self.state_path, f"saving {self.state_name}"):
            atomic_write(self.state_path, ENCODER.encode(state) + b"\n")
        self.state = state

    def restart(self, state: S | None = None) -> None:
        """Start the file afresh: ``state`` saved first (if given), then the file emptied.

        Killed between the two, a resume finds a state that holds nothing. The
        header (if any) is written; ``offset`` is after it.
        """
        fd = self._held()
        if state is not None:
            self.save(state)
        with writing(self.path, "emptying it for a new run"):
            os.ftruncate(fd, 0)
            if self.header:
                write_at(fd, self.header, 0)
            os.fsync(fd)
        self.offset = self._end = len(self.header)

    def cut(self, offset: int, state: S | None = None) -> None:
        """Continue after ``offset``: bytes beyond it (a batch never committed) are dropped."""
        fd = self._held()
        with writing(self.path, f"cutting it back to the end {self.state_name} saved"):
            os.ftruncate(fd, offset)
            os.fsync(fd)
        self.offset = self._end = offset
        if state is not None:
            self.state = state

    def write(self, records: Sequence[R], state: S) -> S:
        """Commit: append ``records`` at ``offset`` and fsync, then save ``state`` past them.

        Returns ``state`` with its ``offset`` set to the new end of the records. If
        writing or fsync-ing the records fails, the file is cut back to ``offset``
        (best effort: the error raised is the write's) and nothing is committed. If
        only the state's save fails, the records stay, fsync-ed, after ``offset``: the
        state on disk still points before them, so the next open cuts them, and so does
        this sink's next commit once its state is saved.
        """
        fd = self._held()
        if self.save_failed:
            self._check_unchanged()
        data = self._encode(records) if records else b""
        state = msgspec.structs.replace(state, offset=self.offset + len(data))  # type: ignore[type-var]
        if data:
            self._end = max(self._end, state.offset)
            with writing(self.path, self.describe(state)):
                try:
                    write_at(fd, data, self.offset)
                    os.fsync(fd)
                except BaseException:
                    self._drop_uncommitted(fd)
                    raise
        try:
            self.save(state)
        except BaseException:
            self.save_failed = True
            raise
        self.offset = state.offset
        if self._end > self.offset:
            self._drop_uncommitted(fd)
        return state

    def _check_unchanged(self) -> None:
        """After a failed save: go on only from the state committed before, if that is
        still the one on disk (nothing is written otherwise)."""
        if self.read() != self.state:
            raise SinkError(
                f"saving {self.state_name} failed, yet {self.state_path} holds a newer one "
                "(the save landed after all); load the state again before writing more"
            )
        self.save_failed = False

    def committed(self) -> S | None:
        """The state committed last; after a failed save, the one on disk (it may have
        landed), then taken as committed. ``OSError`` as raised; ``SinkError`` if the
        state on disk is damaged or points past what this sink wrote."""
        self.check_open()
        if self.save_failed:
            saved = self.read()
            if saved is not None and saved != self.state:
                if saved.offset > self._end:
                    raise SinkError(
                        f"{self.state_path} was changed behind the {self.writer}'s back"
                    )
                self.offset, self.state = saved.offset, saved
            self.save_failed = False
        return self.state

    def _drop_uncommitted(self, fd: int) -> None:
        """Cut the file back to ``offset`` (what lies beyond was never committed), best
        effort: if the cut fails too, the next open cuts the file back to the state."""
        with contextlib.suppress(OSError):
            os.ftruncate(fd, self.offset)
            os.fsync(fd)
            self._end = self.offset

    def close(self) -> None:
        """Unlock and close the file (idempotent); the sink cannot be used after it."""
        self._closed = True
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    # -- the Sink ----------------------------------------------------------------------------

    def _load(self) -> S | None:
        state = self.read()
        self.open()
        if state is None:
            self.restart()
        else:
            self.cut(state.offset, state)
        self.save_failed = False
        return state

    async def load(self) -> S | None:
        """The committed state, with the file cut back to it (emptied if there is none)."""
        self.check_open()
        loop = asyncio.get_running_loop()
        return await finish(loop.run_in_executor(None, self._load))

    async def commit(self, records: Sequence[R], state: S, /) -> None:
        """``write`` in a worker thread; finished even if the caller is cancelled meanwhile."""
        self.check_open()
        loop = asyncio.get_running_loop()
        if self._fd is None:
            await finish(loop.run_in_executor(None, self._load))
        await finish(loop.run_in_executor(None, self.write, records, state))

    async def _close(self) -> None:
        self.close()
