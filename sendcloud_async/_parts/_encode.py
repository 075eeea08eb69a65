"""Part files: Parquet (the ``parquet`` extra), JSON Lines or CSV, each optionally compressed.

``part_format(fmt, compression)`` is the one place a format is chosen and checked;
it imports what the format needs, so a missing extra is found before anything is
written, with the ``pip install`` to run:

==========  ===========================  =====================  =================
format      compression (default first)  extension              extra
==========  ===========================  =====================  =================
parquet     zstd, snappy, gzip, none     ``.parquet``           ``parquet``
jsonl       none, gzip, zstd             ``.jsonl[.gz|.zst]``   ``zstd`` for zstd
csv         none, gzip, zstd             ``.csv[.gz|.zst]``     ``zstd`` for zstd
==========  ===========================  =====================  =================

JSON Lines and CSV hold exactly the bytes of a file export (``encode_jsonl``;
``csv_header`` then ``encode_csv``): each part is a whole file of its format, and
``.gz`` / ``.zst`` are real gzip (RFC 1952, no name, time 0) and Zstandard frames,
readable by ``gzip -d``, ``zstd -d``, DuckDB and pandas.

Parquet: a part group holds up to ``row_group_records`` logs, then builds one
Arrow table of them column by column (``_schema``: each column in one call, the
JSON text of a nested column in one ``msgspec`` call), splits it by date in Arrow
(``_layout.split_by_date``) and hands each date's rows to its part's writer, which
writes them as a row group on a thread of its own while the next logs come.
JSON Lines and CSV are encoded and written as they come.

Memory: the logs of one row group, the Arrow table being built from them and the
one being written: nothing grows with the length of the export. Output is
deterministic: the same logs give the same bytes.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final, Protocol

from .._errors import ExportInputError, require_extra
from .._models import IntegrationLog
from .._records import csv_header, encode_csv, encode_jsonl
from ._layout import date_of, split_by_date
from ._schema import DICTIONARY_COLUMNS, STATISTICS_COLUMNS, arrow_schema, arrow_table

__all__ = ["COMPRESSIONS", "FORMATS", "PartFormat", "PartWriter", "part_format"]

FORMATS: Final = ("parquet", "jsonl", "csv")
#: The compressions of each format; the first is the default.
COMPRESSIONS: Final = {
    "parquet": ("zstd", "snappy", "gzip", "none"),
    "jsonl": ("none", "gzip", "zstd"),
    "csv": ("none", "gzip", "zstd"),
}
_SUFFIX: Final = {"none": "", "gzip": ".gz", "zstd": ".zst"}
DEFAULT_ROW_GROUP: Final = 65_536


class PartWriter(Protocol):
    """One part file being written."""

    #: Logs written so far.
    rows: int

    def write(self, batch: Any, rows: int) -> None:
        """Add ``rows`` logs, as ``PartFormat.encode`` gave them (bytes, or a row group)."""

    def size(self) -> int:
        """Bytes in the file so far (about: a compressor may hold some back)."""

    def close(self) -> None:
        """Finish the file (footer, last frame) and close it."""


class _ParquetWriter:
    """Row groups written to the file by a thread of its own.

    Building a row group's table is Python work (it holds the GIL); encoding and
    compressing it into the file is Arrow's C++ (it does not). So while row group
    N is written, the export can go on with the logs of N+1 on another core. At
    most one row group is being written: the next waits for it, and so does
    ``close``; ``size`` is the file's size after the last finished write. An error
    of the write is raised by the next ``write`` or by ``close``.
    """

    def __init__(self, fmt: PartFormat, path: Path, account: str | None) -> None:
        pa, _pc, pq = fmt.modules
        schema = arrow_schema(pa, account_column=account is not None)
        self._sink = pa.OSFile(str(path), "wb")
        names = set(schema.names)
        try:
            self._writer = pq.ParquetWriter(
                self._sink,
                schema,
                compression=fmt.compression,
                use_dictionary=[name for name in DICTIONARY_COLUMNS if name in names],
                write_statistics=[name for name in STATISTICS_COLUMNS if name in names],
                store_schema=True,
            )
        except BaseException:
            self._sink.close()
            raise
        self._thread: ThreadPoolExecutor | None = None
        self._writing: Future[int] | None = None
        self._size = 0
        self.rows = 0

    def write(self, batch: Any, rows: int) -> None:
        self._wait()
        if self._thread is None:
            self._thread = ThreadPoolExecutor(1, thread_name_prefix="parquet-part")
        self._writing = self._thread.submit(self._write_table, batch)
        self.rows += rows

    def _write_table(self, table: Any) -> int:
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        return int(self._sink.tell())

    def _wait(self) -> None:
        """Wait for the row group being written; raise its error."""
        writing, self._writing = self._writing, None
        if writing is not None:
            self._size = writing.result()

    def size(self) -> int:
        writing = self._writing
        if writing is not None and writing.done() and writing.exception() is None:
            self._wait()  # a failed write is raised by the next write or close
        return self._size

    def close(self) -> None:
        try:
            self._wait()
            self._writer.close()
        finally:
            self._writing = None
            thread, self._thread = self._thread, None
            if thread is not None:
                thread.shutdown(wait=True)
            self._sink.close()


class _TextWriter:
    """JSON Lines or CSV, through gzip or zstd when asked."""

    def __init__(self, fmt: PartFormat, path: Path) -> None:
        self._raw: BinaryIO = open(path, "wb")  # noqa: SIM115  # closed in close()
        self._stream: Any = self._raw
        if fmt.compression == "gzip":
            self._stream = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0)
        elif fmt.compression == "zstd":
            zstandard = fmt.modules[0]
            self._stream = zstandard.ZstdCompressor(level=3).stream_writer(self._raw, closefd=False)
        if fmt.name == "csv":
            self._stream.write(csv_header())
        self.rows = 0

    def write(self, batch: Any, rows: int) -> None:
        self._stream.write(batch)
        self.rows += rows

    def size(self) -> int:
        return self._raw.tell()

    def close(self) -> None:
        if self._stream is not self._raw:
            self._stream.close()
        self._raw.close()


@dataclass(frozen=True)
class PartFormat:
    """A chosen format: what its files are named, and how to write one."""

    name: str
    compression: str
    row_group_records: int
    #: The libraries it writes with (pyarrow, pyarrow.compute, pyarrow.parquet; zstandard).
    modules: tuple[Any, ...]

    @property
    def extension(self) -> str:
        """The file name extension, without the dot (``parquet``, ``jsonl.gz``, ...)."""
        if self.name == "parquet":
            return "parquet"
        return self.name + _SUFFIX[self.compression]

    @property
    def batch_records(self) -> int:
        """Logs a part group holds before it encodes them: a row group; none for text."""
        return self.row_group_records if self.name == "parquet" else 0

    def open(self, path: Path, account: str | None) -> PartWriter:
        """A writer of a new part file at ``path`` (with the ``account`` column if given)."""
        if self.name == "parquet":
            return _ParquetWriter(self, path, account)
        return _TextWriter(self, path)

    def encode(
        self, items: Sequence[IntegrationLog], account: str | None
    ) -> list[tuple[str, Any, int]]:
        """``items`` for the parts of their dates: ``(date, batch, logs)`` for ``write``.

        Parquet: one table (``account`` in every row if given), split by date in
        Arrow. Text: the file export's bytes of each date's logs.
        """
        if self.name == "parquet":
            pa, pc, _pq = self.modules
            schema = arrow_schema(pa, account_column=account is not None)
            table = arrow_table(pa, pc, schema, items, account)
            return [(date, rows, rows.num_rows) for date, rows in split_by_date(pa, pc, table)]
        encode = encode_csv if self.name == "csv" else encode_jsonl
        dates = [date_of(log) for log in items]
        if dates.count(dates[0]) == len(dates):
            return [(dates[0], encode(items), len(items))]
        by_date: dict[str, list[IntegrationLog]] = {}
        for date, log in zip(dates, items, strict=True):
            by_date.setdefault(date, []).append(log)
        return [(date, encode(logs), len(logs)) for date, logs in by_date.items()]


def part_format(
    fmt: str, compression: str | None = None, *, row_group_records: int = DEFAULT_ROW_GROUP
) -> PartFormat:
    """The format ``fmt`` with ``compression`` (``None``: its default); see the module docstring."""
    if fmt not in COMPRESSIONS:
        raise ExportInputError(f"unknown parts format {fmt!r}; use one of {', '.join(FORMATS)}")
    allowed = COMPRESSIONS[fmt]
    chosen = allowed[0] if compression is None else compression
    if chosen not in allowed:
        raise ExportInputError(
            f"{fmt} parts cannot be compressed with {chosen!r}; use one of {', '.join(allowed)}"
        )
    if isinstance(row_group_records, bool) or not isinstance(row_group_records, int):
        raise ExportInputError(f"row_group_records must be an int, got {row_group_records!r}")
    if row_group_records < 1:
        raise ExportInputError(f"row_group_records must be 1 or more, got {row_group_records}")
    modules: tuple[Any, ...] = ()
    if fmt == "parquet":
        modules = (
            require_extra("pyarrow", "parquet", "--format parquet"),
            require_extra("pyarrow.compute", "parquet", "--format parquet"),
            require_extra("pyarrow.parquet", "parquet", "--format parquet"),
        )
    elif chosen == "zstd":
        modules = (require_extra("zstandard", "zstd", f"{fmt} parts compressed with zstd"),)
    return PartFormat(fmt, chosen, row_group_records, modules)
