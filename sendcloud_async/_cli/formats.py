"""Output formats: which one a file name implies, and the writer for standard output."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Final, TextIO

from .._defaults import FORMATS, split_compression
from .common import UsageError

if TYPE_CHECKING:
    from .._client import SendcloudClient
    from .progress import Progress

__all__ = ["STDOUT", "StreamStats", "format_for", "implied_format", "stream_logs"]

#: ``--out -``: JSON Lines (or CSV) on standard output, no checkpoint.
STDOUT: Final = "-"

#: The format each file name extension implies.
_EXTENSIONS: Final = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def implied_format(out: str | None) -> str | None:
    """The format ``out``'s extension implies (``None``: none, or standard output).

    A compression suffix is looked through: ``logs.csv.gz`` holds CSV.
    """
    if out is None or out == STDOUT:
        return None
    return _EXTENSIONS.get(Path(split_compression(out)[0]).suffix.lower())


def format_for(out: str | None, given: str | None) -> str:
    """The export format: ``--format`` if given, else what ``out``'s extension implies.

    A ``--format`` that contradicts the extension (``--format jsonl`` into
    ``logs.csv``) is refused; other extensions (and ``-``) default to JSON Lines.
    """
    implied = implied_format(out)
    if given is not None and implied is not None and given != implied:
        raise UsageError(
            f"--format {given} contradicts the file name {out} (a {Path(out or '').suffix} file "
            f"holds {implied}); drop --format or rename the file"
        )
    return given or implied or FORMATS[0]


class StreamStats:
    """What ``stream_logs`` wrote."""

    def __init__(self) -> None:
        self.records = 0
        self.pages = 0
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        elapsed = self.elapsed
        return self.records / elapsed if elapsed > 0 else 0.0


def _binary(stream: TextIO) -> BinaryIO | None:
    buffer = getattr(stream, "buffer", None)
    return buffer if buffer is not None and hasattr(buffer, "write") else None


async def stream_logs(
    client: SendcloudClient,
    out: TextIO,
    *,
    fmt: str,
    integration_id: int | None,
    page_size: int | None,
    progress: Progress,
) -> StreamStats:
    """Write every log to ``out`` page by page (the same bytes a file export holds)."""
    from .._records import csv_header, encode_csv, encode_jsonl  # here: --help does not load it

    binary = _binary(out)

    def write(data: bytes) -> None:
        if binary is not None:
            binary.write(data)
            binary.flush()
        else:
            out.write(data.decode())
            out.flush()

    encode = encode_csv if fmt == "csv" else encode_jsonl
    stats = StreamStats()
    if fmt == "csv":
        write(csv_header())
    pages = client.logs.pages(integration_id=integration_id, page_size=page_size)
    try:
        async for page in pages:
            write(encode(page.items))
            stats.records += len(page.items)
            stats.pages += 1
            progress.update(stats.records, stats.pages, stats.rate, stats.elapsed)
    finally:
        await pages.aclose()
    return stats
