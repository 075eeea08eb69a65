"""A part group: the part files one flush publishes, one per ``date=`` among its logs.

Its files are written to local spool files (the store's ``spool``: beside the
final name for a directory, a private temporary folder for an object store), so
memory holds fewer than ``row_group_records`` logs across all its open parts (and
the row groups being written), and the store receives only finished files
(``_sink`` publishes them).

Its blocking steps (``add``, ``finish``, ``discard``) run in a worker thread, one at
a time: the sink waits for each to end, even through a cancel (``_aio.finish``),
so ``discard`` never closes a file another step is still writing, and it removes
every spool file the group made, finished ones included.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .._models import IntegrationLog
from ._encode import PartFormat, PartWriter
from ._layout import account_prefix
from ._store import Store

__all__ = ["FinishedPart", "PartGroup"]


@dataclass(frozen=True)
class FinishedPart:
    """A closed part file, ready to publish."""

    date: str
    spool: Path
    records: int
    bytes: int


class PartGroup:
    """The open parts of group ``seq`` of ``account``."""

    def __init__(
        self, fmt: PartFormat, store: Store, account: str, seq: int, *, account_column: bool
    ) -> None:
        self._format = fmt
        self._store = store
        self._account = account
        self._column = account if account_column else None
        self.seq = seq
        self._open: dict[str, tuple[PartWriter, Path]] = {}
        self._held: list[IntegrationLog] = []
        self.rows = 0
        #: The closed parts once ``finish()`` ran (``None``: still open).
        self.finished: list[FinishedPart] | None = None

    def _writer(self, date: str) -> PartWriter:
        entry = self._open.get(date)
        if entry is None:
            stem = f"{account_prefix(self._account)}date={date}/part-{self.seq:06d}"
            spool = self._store.spool(stem)
            entry = (self._format.open(spool, self._column), spool)
            self._open[date] = entry
        return entry[0]

    def add(self, items: Sequence[IntegrationLog]) -> None:
        """Write ``items`` into the parts of their dates (blocking: run it in a thread)."""
        if not items:
            return
        self.rows += len(items)
        size = self._format.batch_records
        if not size:
            self._write(items)
            return
        self._held.extend(items)
        while len(self._held) >= size:
            batch, self._held = self._held[:size], self._held[size:]
            self._write(batch)

    def only_holds(self, count: int) -> bool:
        """Whether adding ``count`` logs only keeps them in memory (no encoding, no I/O)."""
        size = self._format.batch_records
        return size > 0 and len(self._held) + count < size

    def _write(self, items: Sequence[IntegrationLog]) -> None:
        for date, batch, count in self._format.encode(items, self._column):
            self._writer(date).write(batch, count)

    def pending(self) -> int:
        """Logs held in memory, not yet encoded (fewer than a row group)."""
        return len(self._held)

    def size(self) -> int:
        """Bytes in its files so far."""
        return sum(writer.size() for writer, _ in self._open.values())

    def finish(self) -> list[FinishedPart]:
        """Close every part (blocking); what to publish, by date (also kept in ``finished``)."""
        held, self._held = self._held, []
        if held:
            self._write(held)
        finished = []
        for date, (writer, spool) in sorted(self._open.items()):
            writer.close()
            finished.append(FinishedPart(date, spool, writer.rows, spool.stat().st_size))
        self._open.clear()
        self.finished = finished
        return finished

    def discard(self) -> None:
        """Close and remove every part file, finished or not, left unpublished (blocking)."""
        self._held = []
        for writer, spool in self._open.values():
            with contextlib.suppress(Exception):
                writer.close()
            spool.unlink(missing_ok=True)
        self._open.clear()
        for part in self.finished or ():
            with contextlib.suppress(OSError):
                part.spool.unlink(missing_ok=True)  # gone already once published
