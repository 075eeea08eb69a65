"""An export into parts (``_parts.PartsSink``): its checkpoint is the parts manifest's state.

``LogExport`` writes here instead of a file when ``writes_parts`` says so (a URL,
or Parquet). One place holds the committed state: the manifest. So a resume
``load()``-s the sink and continues from the checkpoint it gives; a new export
``restart()``-s it (the account's old parts are removed, the manifest first). A
commit goes into the sink's current part group; the group is published (parts,
then the manifest with the checkpoint after its last log) when it holds
``part_records`` logs, at the first commit ``flush_seconds`` or more after the last
publication (the time is looked at when a page is committed, not by a timer), and
when the export ends or stops, so a kill loses at most the logs since the last
publication, which a resume fetches again. A stop (a cancel) that lands while the
sink writes lets that write end and publishes what was committed; an export that
lost its output (``end(abandon=True)``) publishes nothing more.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ._checkpoint import Checkpoint, CheckpointQuery, continued
from ._errors import ExportInputError
from ._parts import DEFAULT_PART_RECORDS, PartsSink
from ._parts._layout import manifest_key

if TYPE_CHECKING:
    from ._models import IntegrationLog

__all__ = ["PartsOutput"]


class PartsOutput:
    """The parts of one account of an export, and their manifest (module docstring).

    The same steps as ``_export_file.FileOutput``; ``state`` is the checkpoint
    continued or committed last.
    """

    #: Bytes of an unfinished commit dropped when opened: none (the manifest lists parts).
    discarded = 0
    #: Never: the manifest is let go when the run ends, and a job keeps its parts output.
    closed = False

    def __init__(
        self,
        out: str | os.PathLike[str],
        query: CheckpointQuery,
        *,
        account: str,
        part_records: int | None,
        account_column: bool,
        state_type: type[Checkpoint],
        flush_seconds: float,
    ) -> None:
        self.sink = PartsSink(
            out,
            account=account,
            format=query.format,
            compression=query.compression,
            part_records=DEFAULT_PART_RECORDS if part_records is None else part_records,
            account_column=account_column,
            state_type=state_type,
        )
        self.query = query
        #: Where the checkpoint is: the manifest (as messages show it).
        self.location = f"{self.sink.url}/{manifest_key(self.sink.account)}"
        self.state: Checkpoint | None = None
        self._begun = False
        self._flush_seconds = flush_seconds
        self._published = time.monotonic()

    def _damaged(self, exc: Exception) -> ExportInputError:
        return ExportInputError(f"the checkpoint in {self.location} is damaged ({exc})")

    async def recorded(self) -> Checkpoint | None:
        """The checkpoint in the manifest, read without taking it (``None``: none).

        ``ExportInputError`` if the manifest or its checkpoint is damaged.
        """
        raw = await self.sink.peek()
        if raw is None:
            return None
        try:
            return msgspec.json.decode(raw, type=Checkpoint)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise self._damaged(exc) from None

    async def begin(self, resume: bool) -> Checkpoint | None:
        """Take the manifest: its checkpoint to continue from (``resume``, if it continues this
        export's query), or ``None`` after removing the old parts. Idempotent."""
        if self._begun:
            return self.state
        sink = self.sink
        state = None
        if resume:
            try:
                saved: Any = await sink.load()
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise self._damaged(exc) from None
            state = None if saved is None else continued(saved, self.query, self.location)
        if state is None:
            await sink.restart()
        self._published = time.monotonic()
        self.state, self._begun = state, True
        return state

    async def start(self, fresh: Checkpoint | None) -> None:
        """Before the first page: a new export with nothing to export says so in the manifest."""
        if fresh is not None:
            self.state = fresh
            if fresh.done:
                await self.commit([], fresh)

    async def commit(self, items: Sequence[IntegrationLog], state: Checkpoint) -> None:
        """Add ``items`` and the checkpoint after them; publish when it is time."""
        sink = self.sink
        await sink.commit(items, state)
        if state.done or time.monotonic() - self._published >= self._flush_seconds:
            await sink.flush()
            self._published = time.monotonic()
        self.state = state

    @property
    def saved_records(self) -> int:
        """Logs in the published parts."""
        return self.sink.committed_records

    @property
    def saved_bytes(self) -> int:
        return self.sink.committed_bytes

    async def end(self, *, abandon: bool = False) -> None:
        """Publish what is buffered (its checkpoint with it) and let the manifest go; with
        ``abandon``, publish nothing: this writer no longer owns the output.

        What an abandon drops is fetched again by the next holder from the manifest's
        checkpoint; the parts of a publication it interrupted that the manifest does not
        list are removed, so a writer that lost its lease leaves no part outside the
        manifest.
        """
        await (self.sink.abandon() if abandon else self.sink.aclose())

    def close(self) -> None:
        """Nothing to do: the manifest is let go by ``end()``, when the run ends."""
