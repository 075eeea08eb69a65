"""Output files that say what went wrong: the path, and what was being done with it.

A bare ``OSError`` of ``os.pwrite`` or ``os.fsync`` names no file (``[Errno 28] No
space left on device``). Every write of an export or a watch runs inside
``writing(path, doing)``, which turns such an error into a ``FileWriteError``: still
an ``OSError`` (same ``errno``, ``strerror``), now with ``filename`` and
``doing``, and ``str()`` of one line: ``cannot write logs.jsonl (appending page 3):
No space left on device``.

``output_file_problem`` is the one rule for where an export or a watch may write: a
regular file (or none yet). A checkpoint beside a character device or a pipe means
nothing, and such a file cannot be cut back to it.

``lock_exclusively`` is the one way a writer (an export, a watch, a tail) keeps a
second one off its file while it runs; ``try_lock`` also tells whether the lock's
holder is known (it is alive while it holds it). ``write_at`` writes all of a buffer at an
offset; ``atomic_write`` is the one way a file is replaced (temporary file, fsync,
rename, directory fsync): a reader finds the old bytes or the new, never a mix, and
after a crash or a kill the new bytes are whole once it has returned. A file written
whole beforehand (an export's part, written by its encoder) is put in place the same
way by ``atomic_move``.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final

__all__ = [
    "TEMPORARY_SUFFIX",
    "FileWriteError",
    "atomic_move",
    "atomic_write",
    "create_directory",
    "lock_exclusively",
    "output_file_problem",
    "try_lock",
    "write_at",
    "writing",
]


class FileWriteError(OSError):
    """An ``OSError`` of a write to ``filename`` while ``doing`` something."""

    doing: str

    def __str__(self) -> str:
        reason = self.strerror or (f"errno {self.errno}" if self.errno else "failed")
        return f"cannot write {self.filename} ({self.doing}): {reason}"


@contextmanager
def writing(path: str | os.PathLike[str], doing: str) -> Iterator[None]:
    """An ``OSError`` inside becomes a ``FileWriteError`` naming ``path`` and ``doing``.

    The innermost ``writing`` names the error; the ones around it leave it be.
    """
    try:
        yield
    except FileWriteError:
        raise
    except OSError as exc:
        error = FileWriteError(exc.errno, exc.strerror or str(exc) or type(exc).__name__, str(path))
        error.doing = doing
        raise error from exc


def create_directory(directory: Path) -> str | None:
    """Create ``directory`` and its parents if missing; why it cannot be (``None``: done)."""
    if directory.is_dir():
        return None
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"cannot create the directory {directory}: {exc.strerror or exc}"
    return None


def output_file_problem(path: Path) -> str | None:
    """Why ``path`` cannot hold an export or a watch (``None``: it can).

    A missing file is fine (it is created); an existing one must be a regular file.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return exc.strerror or str(exc)
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISDIR(mode):
        return "it is a directory"
    kinds = (
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a pipe"),
        (stat.S_ISSOCK, "a socket"),
    )
    kind = next((f"{name}, not a regular file" for test, name in kinds if test(mode)), None)
    return (
        f"it is {kind or 'not a regular file'} (its checkpoint is kept beside it, and it is "
        "cut back to the checkpoint on a restart)"
    )


def lock_exclusively(fd: int) -> bool:
    """Take an exclusive lock on the open file ``fd`` without waiting.

    ``False`` if another process (or another open file here) holds it. Where there
    are no such locks (Windows, a file system without them) it is ``True``: the
    writer carries on unprotected rather than not at all. The lock goes when ``fd``
    is closed (or the process ends, however it ends).
    """
    return try_lock(fd) is not False


def try_lock(fd: int) -> bool | None:
    """``lock_exclusively``, telling apart a lock taken (``True``), one held elsewhere
    (``False``) and a place without such locks (``None``: nothing is known of others)."""
    if sys.platform == "win32":
        return None
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    except OSError:
        return None  # a file system without locks
    return True


def write_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` into ``fd`` at ``offset`` (``pwrite`` until none is left)."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        view = view[written:]
        offset += written


#: What ``atomic_write`` appends to a file's name for the temporary file it renames.
TEMPORARY_SUFFIX: Final = ".tmp"


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` by ``data``: temporary file, fsync, rename, directory fsync."""
    tmp = path.with_name(path.name + TEMPORARY_SUFFIX)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        write_at(fd, data, 0)
        os.fsync(fd)
    finally:
        os.close(fd)
    _rename_durably(tmp, path)


def atomic_move(written: Path, path: Path) -> None:
    """Replace ``path`` by the finished file ``written`` (in the same directory, closed by
    whoever wrote it): fsync, rename, directory fsync, as ``atomic_write`` does."""
    fd = os.open(written, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _rename_durably(written, path)


def _rename_durably(written: Path, path: Path) -> None:
    """Rename the fsync-ed ``written`` to ``path``, then fsync the directory: the rename
    itself survives a crash."""
    os.replace(written, path)
    if sys.platform != "win32":  # directories cannot be opened (or fsync-ed) there
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
