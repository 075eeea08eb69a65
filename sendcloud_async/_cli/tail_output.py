"""Where ``logs tail`` writes: the JSON line of a stream entry, and the output it goes to
(standard output, or ``--out FILE``), each batch flushed and fsync-ed before it is
acknowledged."""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Final, TextIO

import msgspec

from .._fileio import FileWriteError, lock_exclusively, write_at, writing
from .common import UsageError
from .destination import make_directory

if TYPE_CHECKING:
    from .._redis._tail import TailEntry

__all__ = ["FileSink", "OutputStop", "Sink", "StdoutSink", "tail_line"]

_ENCODER: Final = msgspec.json.Encoder()


class OutputStop(Exception):
    """The output cannot be written: the tail stops, its batch stays pending."""


def tail_line(entry: TailEntry) -> bytes | None:
    """The JSON Lines record of ``entry``; ``None`` when it holds no log JSON object."""
    if entry.log is None:
        return None
    try:
        raw = bytes(msgspec.json.decode(entry.log, type=msgspec.Raw))
    except msgspec.DecodeError:
        return None
    if not raw.startswith(b"{"):
        return None
    if b"\n" in raw or b"\r" in raw:  # whitespace between tokens: one line it must be
        raw = _ENCODER.encode(msgspec.json.decode(raw))
    return (
        b'{"account":'
        + _ENCODER.encode(entry.account)
        + b',"entry":'
        + _ENCODER.encode(entry.entry_id)
        + b',"log":'
        + raw
        + b"}\n"
    )


class Sink:
    """Where the lines go; ``write`` returns once they are flushed (and fsync-ed)."""

    label = "standard output"

    def write(self, data: bytes, lines: int) -> None:
        """Write ``data`` (``lines`` log lines) and make it durable."""
        raise NotImplementedError

    def close(self) -> None:
        """Let the output go."""


class StdoutSink(Sink):
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        buffer = getattr(stream, "buffer", None)
        self.binary = buffer if buffer is not None and hasattr(buffer, "write") else None

    def write(self, data: bytes, lines: int) -> None:
        if self.binary is not None:
            self.binary.write(data)
            self.binary.flush()
        else:
            self.stream.write(data.decode())
            self.stream.flush()
        try:
            fd = self.stream.fileno()
            if stat.S_ISREG(os.fstat(fd).st_mode):  # redirected to a file: make it durable
                os.fsync(fd)
        except (OSError, ValueError, AttributeError):
            pass  # a pipe or terminal: flushed is all there is


class FileSink(Sink):
    """``--out FILE``: appended to, locked while the tail runs, fsync-ed per batch."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.label = str(path)
        self.fd: int | None = None
        self.offset = 0
        self.regular = True

    def open(self) -> int:
        """Lock the file, cut an unfinished last line off; the bytes cut (0: none)."""
        make_directory(self.path.parent, what=str(self.path))
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UsageError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        try:
            if not lock_exclusively(fd):
                raise UsageError(f"another logs tail is writing {self.path} (it is locked)")
            info = os.fstat(fd)
            # A regular file is appended at the end of its last whole line; anything else
            # (a named pipe, a device) is written as a stream.
            self.regular = stat.S_ISREG(info.st_mode)
            size = end = info.st_size if self.regular else 0
            if self.regular:
                end = _last_line_end(fd, size)
                if end != size:
                    os.ftruncate(fd, end)
                    os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            raise UsageError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        except BaseException:
            os.close(fd)
            raise
        self.fd, self.offset = fd, end
        return size - end

    def write(self, data: bytes, lines: int) -> None:
        fd = self.fd
        assert fd is not None
        try:
            with writing(self.path, f"appending {lines:,} log lines"):
                if self.regular:
                    write_at(fd, data, self.offset)
                    os.fsync(fd)
                else:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
        except FileWriteError as exc:
            if self.regular:
                with contextlib.suppress(OSError):  # no unfinished line: it is read again
                    os.ftruncate(fd, self.offset)
            raise OutputStop(
                f"{exc}; the batch was not acknowledged and is written again by the next run"
            ) from None
        self.offset += len(data)

    def close(self) -> None:
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)


def _last_line_end(fd: int, size: int) -> int:
    """Where the last complete line of the file ends (``size`` if it ends in a newline)."""
    end = size
    chunk = 65_536
    while end > 0:
        start = max(0, end - chunk)
        data = os.pread(fd, end - start, start)
        if end == size and data.endswith(b"\n"):
            return size
        cut = data.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0
