"""Reading an export for a report: one reader per format, chosen by name, extension or content.

A reader turns an export into batches of ``LogRow`` (only the fields a report
reads are built), streaming: memory holds one batch, whatever the file's size.

* ``jsonl``: the lines ``logs export`` writes (``encode_jsonl``), read a MiB at a
  time and decoded by msgspec a block at once; blank lines are skipped.
* ``csv``: the CSV ``logs export`` writes (``csv_header``, ``encode_csv``): a header
  row naming the export's columns (extra columns, and another order, are fine; a
  missing column the report reads is not), then RFC 4180 rows.

Another format is one more ``Reader`` passed to ``register``: its name, the
extensions that imply it, how to recognise its first bytes, whether it reads a
directory (a Parquet export is a directory of parts), and ``read(source)``, a
generator of batches. Parquet is not built in yet: a ``.parquet`` file, a
directory of parts, or an ``s3://``-style URL (where the export writes Parquet) is
refused with one line that says so.

Every problem is a ``ReportInputError`` of one line naming the file and, for bad
content, the line: ``logs.jsonl, line 17: not an exception log: Expected `int |
null`, got `str` - at `$.integration_id```.
"""

from __future__ import annotations

import csv
import io
import sys
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol
from urllib.parse import unquote, urlsplit

import msgspec

from .._records import CSV_COLUMNS
from ._model import LogRow

__all__ = [
    "READERS",
    "STDIN",
    "Reader",
    "ReportInputError",
    "Source",
    "open_source",
    "register",
]

#: The argument that reads standard input.
STDIN: Final = "-"
#: Bytes read at a time.
_CHUNK: Final = 1 << 20
#: A line of an export longer than this is refused (memory stays bounded).
_MAX_LINE: Final = 64 << 20
#: CSV rows per batch.
_ROWS: Final = 4_096
#: The columns a report reads from a CSV export.
_NEEDED: Final = (
    "integration_id",
    "base_url",
    "full_url",
    "method",
    "response_code",
    "created_at",
    "exception_type",
    "exception",
)
#: URL schemes ``logs export`` writes Parquet parts to.
_PARQUET_SCHEMES: Final = ("s3", "gs", "gcs", "az", "abfs", "abfss")


class ReportInputError(ValueError):
    """The export cannot be read: missing, unreadable, of an unknown format, or malformed."""


@dataclass
class Source:
    """What a report reads: a file (``path``) or standard input (``path`` is ``None``).

    ``name`` is how messages name it; ``size`` its size in bytes when known;
    ``bytes_read`` grows as a reader reads it (the progress line shows it).
    """

    name: str
    path: Path | None
    size: int | None = None
    bytes_read: int = 0
    _stdin: io.BufferedReader | None = field(default=None, repr=False)

    def open(self) -> AbstractContextManager[io.BufferedReader]:
        """The bytes, from the start (standard input: as it comes, and left open)."""
        if self.path is None:
            assert self._stdin is not None
            return nullcontext(self._stdin)
        try:
            return self.path.open("rb")
        except OSError as exc:
            raise ReportInputError(f"cannot read {self.name}: {exc.strerror or exc}") from None

    def problem(self, where: str, what: str) -> ReportInputError:
        """The error of bad content at ``where`` (``line 17``)."""
        return ReportInputError(f"{self.name}, {where}: {what}")


class _Raw(io.RawIOBase):
    """A binary stream without ``peek`` (a test's), as raw bytes to buffer."""

    def __init__(self, stream: BinaryIO) -> None:
        super().__init__()
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


@dataclass(frozen=True)
class Reader:
    """One input format: its ``name`` (``--format``), the ``extensions`` that imply it, a
    test of the first bytes (``sniff``), whether it reads a directory, and ``read``."""

    name: str
    extensions: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    read: Callable[[Source], Iterator[list[LogRow]]]
    directories: bool = False


#: The readers, by format name; ``register`` adds one.
READERS: dict[str, Reader] = {}


def register(reader: Reader) -> None:
    """Make ``reader`` available (by its name, its extensions and its first bytes)."""
    READERS[reader.name] = reader


# -- JSON Lines ---------------------------------------------------------------------------------

_DECODER: Final = msgspec.json.Decoder(LogRow)


def _line_problem(source: Source, block: bytes, first_line: int) -> ReportInputError:
    """The first line of ``block`` that does not decode, as an error."""
    for offset, raw in enumerate(block.split(b"\n")):
        if not raw.strip():
            continue
        try:
            _DECODER.decode(raw)
        except msgspec.ValidationError as exc:
            return source.problem(f"line {first_line + offset}", f"not an exception log: {exc}")
        except msgspec.DecodeError as exc:
            return source.problem(
                f"line {first_line + offset}", f"not JSON ({exc}); is it a JSON Lines export?"
            )
    return source.problem(f"line {first_line}", "cannot be decoded")  # pragma: no cover


def _decode(source: Source, block: bytes, first_line: int) -> list[LogRow]:
    try:
        return _DECODER.decode_lines(block)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise _line_problem(source, block, first_line) from None


def _read_jsonl(source: Source) -> Iterator[list[LogRow]]:
    line = 1  # the number of the first line of the next block
    rest = b""
    with source.open() as stream:
        while chunk := stream.read(_CHUNK):
            source.bytes_read += len(chunk)
            data = rest + chunk if rest else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                if len(data) > _MAX_LINE:
                    raise source.problem(f"line {line}", "longer than 64 MiB: not an export line")
                rest = data
                continue
            block, rest = data[: cut + 1], data[cut + 1 :]
            rows = _decode(source, block, line)
            line += block.count(b"\n")
            if rows:
                yield rows
        if rest.strip():
            rows = _decode(source, rest, line)
            if rows:
                yield rows


def _sniff_jsonl(head: bytes) -> bool:
    return head.lstrip().startswith(b"{")


# -- CSV ----------------------------------------------------------------------------------------


def _int(text: str, column: str, source: Source, where: str) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise source.problem(where, f"{column} is not an integer: {text[:40]!r}") from None


def _time(text: str, source: Source, where: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise source.problem(where, f"created_at is not an ISO 8601 time: {text[:40]!r}") from None


class _Rows(Protocol):
    """What ``csv.reader`` returns."""

    line_num: int

    def __iter__(self) -> Iterator[list[str]]: ...

    def __next__(self) -> list[str]: ...


def _read_csv(source: Source) -> Iterator[list[LogRow]]:
    limit = csv.field_size_limit()
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # a response body may be large
    try:
        with source.open() as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            try:
                yield from _csv_rows(source, csv.reader(text), raw)
            except UnicodeDecodeError as exc:
                raise source.problem(f"byte {exc.start}", "not UTF-8 text") from None
            except csv.Error as exc:
                raise source.problem("CSV", str(exc)) from None
            finally:
                text.detach()  # the file is closed by its own ``with`` (standard input never)
    finally:
        csv.field_size_limit(limit)


def _csv_rows(source: Source, reader: _Rows, raw: BinaryIO) -> Iterator[list[LogRow]]:
    header = next(reader, None)
    if header is None:
        return
    missing = [name for name in _NEEDED if name not in header]
    if missing:
        raise ReportInputError(
            f"{source.name} is not a CSV export of logs: its header has no "
            f"{', '.join(missing)} (logs export writes {','.join(CSV_COLUMNS)})"
        )
    columns = len(header)
    (ident, base, full, method, code, created, kind, text) = (header.index(n) for n in _NEEDED)
    batch: list[LogRow] = []
    for row in reader:
        if not row:
            continue
        where = f"line {reader.line_num}"
        if len(row) != columns:
            raise source.problem(where, f"{len(row)} fields where the header has {columns}")
        batch.append(
            LogRow(
                base_url=row[base],
                integration_id=_int(row[ident], "integration_id", source, where),
                created_at=_time(row[created], source, where),
                response_code=_int(row[code], "response_code", source, where),
                exception_type=row[kind] or None,
                exception=row[text] or None,
                method=row[method] or None,
                full_url=row[full] or None,
            )
        )
        if len(batch) >= _ROWS:
            source.bytes_read = _position(raw, source.bytes_read)
            yield batch
            batch = []
    source.bytes_read = source.size if source.size is not None else source.bytes_read
    if batch:
        yield batch


def _position(raw: BinaryIO, fallback: int) -> int:
    try:
        return raw.tell()
    except (OSError, ValueError):
        return fallback


def _sniff_csv(head: bytes) -> bool:
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace")
    return "integration_id" in first and "created_at" in first and "," in first


register(Reader("jsonl", (".jsonl", ".ndjson", ".json"), _sniff_jsonl, _read_jsonl))
register(Reader("csv", (".csv",), _sniff_csv, _read_csv))


# -- choosing the source and the reader ---------------------------------------------------------

#: Formats a report knows of but cannot read (yet): their extensions and first bytes.
_LATER: Final = {"parquet": ((".parquet",), b"PAR1")}
_COMPRESSED: Final = {
    b"\x1f\x8b": "gzip",
    b"(\xb5/\xfd": "zstd",
    b"BZh": "bzip2",
    b"\xfd7zXZ": "xz",
}


def _not_yet(name: str, what: str) -> ReportInputError:
    return ReportInputError(
        f"{name}: {what}; logs report reads JSON Lines and CSV exports (Parquet cannot be "
        "read yet): export with --format jsonl or csv to a file and report on that"
    )


def _shown(spec: str) -> str:
    """A URL as a refusal shows it: the one storage-URL display rule (no credential)."""
    from .._parts._store import shown_url  # (only on a refusal: the parts package is big)

    return shown_url(spec)


def _path_of(spec: str) -> Path:
    """The local path ``spec`` names (a path, or a ``file://`` URL)."""
    try:
        parts = urlsplit(spec)
    except ValueError:  # an unbalanced "[" or "]" in the host
        raise ReportInputError(f"{_shown(spec)}: not a valid URL") from None
    scheme = parts.scheme.lower()
    if len(scheme) <= 1:  # a path (also C:\\… on Windows)
        return Path(spec).expanduser()
    if scheme == "file":
        from urllib.request import url2pathname  # (urllib.request is slow to import)

        if parts.netloc not in ("", "localhost"):
            raise ReportInputError(
                f"{_shown(spec)}: a file:// URL must name a local file (no host, no credentials)"
            )
        if parts.query or parts.fragment:
            raise ReportInputError(f"{_shown(spec)}: a file:// URL takes no query or fragment")
        return Path(url2pathname(unquote(parts.path)))
    if scheme in _PARQUET_SCHEMES:
        raise _not_yet(_shown(spec), f"{scheme}:// exports are directories of Parquet parts")
    raise ReportInputError(
        f"{_shown(spec)}: logs report reads an export file (a path or a file:// URL), "
        f"not a {scheme}:// URL"
    )


def _by_content(source: Source, head: bytes) -> Reader:
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            raise ReportInputError(
                f"{source.name} is {kind}-compressed: decompress it first, e.g. "
                f"zcat FILE | sendcloud-async logs report -"
            )
    for name, (_, magic) in _LATER.items():
        if head.startswith(magic) and name not in READERS:
            raise _not_yet(source.name, f"a {name.capitalize()} file")
    for reader in READERS.values():
        if not reader.directories and reader.sniff(head):
            return reader
    shown = head[:24].decode("utf-8", "replace").split("\n", 1)[0]
    raise ReportInputError(
        f"cannot tell the format of {source.name}: it starts with {shown!r}, neither a JSON "
        f"Lines log nor the CSV export's header (--format {'|'.join(READERS)} says which)"
    )


def _peek(source: Source) -> bytes:
    with source.open() as stream:
        return stream.read(4096)


def open_source(
    spec: str, fmt: str | None = None, *, stdin: BinaryIO | None = None
) -> tuple[Source, Reader]:
    """The source ``spec`` names (a path, a ``file://`` URL, or ``-`` for ``stdin``) and the
    reader of its format: ``fmt`` if given, else its extension's, else its first bytes'."""
    if fmt is not None and fmt not in READERS:
        if fmt in _LATER:
            raise _not_yet(spec, f"--format {fmt}")
        raise ReportInputError(f"unknown format {fmt!r} (known: {', '.join(READERS)})")
    if spec == STDIN:
        stream = stdin if stdin is not None else sys.stdin.buffer
        buffered = (
            stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(_Raw(stream))
        )
        source = Source("standard input", None, _stdin=buffered)
        if fmt is not None:
            return source, READERS[fmt]
        return source, _by_content(source, buffered.peek(4096)[:4096])
    path = _path_of(spec)
    source = Source(spec, path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ReportInputError(f"{spec}: no such file") from None
    except OSError as exc:
        raise ReportInputError(f"cannot read {spec}: {exc.strerror or exc}") from None
    if path.is_dir():
        for reader in READERS.values():
            if reader.directories and (fmt is None or fmt == reader.name):
                return source, reader
        raise _not_yet(spec, "a directory (a Parquet export is a directory of parts)")
    source.size = info.st_size
    if fmt is not None:
        return source, READERS[fmt]
    suffix = path.suffix.lower()
    for name, (extensions, _) in _LATER.items():
        if suffix in extensions and name not in READERS:
            raise _not_yet(spec, f"a {name.capitalize()} file")
    head = _peek(source)
    for reader in READERS.values():
        if suffix in reader.extensions:
            return source, reader
    if not head.strip():
        return source, READERS["jsonl"]  # an empty export: no logs, whatever its format
    return source, _by_content(source, head)
