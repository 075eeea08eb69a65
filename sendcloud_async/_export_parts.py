"""An export into parts (``_parts.PartsSink``): its checkpoint is the parts manifest's state.

``LogExport`` writes here instead of a file when ``writes_parts`` says so (a URL,
or Parquet). One place holds the committed state: the manifest. So a resume
``load()``-s the sink and continues from the checkpoint it gives; a new export
``restart()``-s it (the account's old parts are removed, the manifest first). A
commit goes into the sink's current part group; the group is published (parts,
then the manifest with the checkpoint after its last log) when it holds
``part_records`` logs, ``flush_seconds`` after the last publication, and when the
export ends or stops, so a kill loses at most the logs since the last
publication, which a resume fetches again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from ._checkpoint import Checkpoint
from ._errors import ExportInputError
from ._parts import DEFAULT_PART_RECORDS, PartsSink
from ._parts._layout import manifest_key

if TYPE_CHECKING:
    from ._models import IntegrationLog

__all__ = ["PartsOutput"]


class PartsOutput:
    """The parts of one account of an export, and their manifest (module docstring)."""

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        account: str,
        fmt: str,
        compression: str | None,
        part_records: int | None,
        account_column: bool,
        state_type: type[Checkpoint],
        flush_seconds: float,
    ) -> None:
        self.sink = PartsSink(
            out,
            account=account,
            format=fmt,
            compression=compression,
            part_records=DEFAULT_PART_RECORDS if part_records is None else part_records,
            account_column=account_column,
            state_type=state_type,
        )
        #: Where the checkpoint is: the manifest (as messages show it).
        self.manifest = f"{self.sink.url}/{manifest_key(self.sink.account)}"
        self._state_type = state_type
        self._flush_seconds = flush_seconds
        self._published = time.monotonic()

    @property
    def compression(self) -> str:
        return self.sink.format.compression

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
            raise ExportInputError(
                f"the checkpoint in {self.manifest} is damaged ({exc})"
            ) from None

    async def begin(
        self, resume: bool, verify: Callable[[Checkpoint], Checkpoint | None]
    ) -> Checkpoint | None:
        """Take the manifest: its checkpoint to continue from (``resume``), or ``None`` after
        removing the old parts. ``verify`` checks a checkpoint (``None``: start afresh)."""
        sink = self.sink
        if resume:
            try:
                saved: Any = await sink.load()
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise ExportInputError(
                    f"the checkpoint in {self.manifest} is damaged ({exc})"
                ) from None
            state = verify(saved) if saved is not None else None
            if state is not None:
                self._published = time.monotonic()
                return state
        await sink.restart()
        self._published = time.monotonic()
        return None

    async def commit(self, items: Sequence[IntegrationLog], state: Checkpoint) -> None:
        """Add ``items`` and the checkpoint after them; publish when it is time."""
        sink = self.sink
        await sink.commit(items, state)
        if state.done or time.monotonic() - self._published >= self._flush_seconds:
            await sink.flush()
            self._published = time.monotonic()

    @property
    def saved_records(self) -> int:
        """Logs in the published parts."""
        return self.sink.committed_records

    @property
    def saved_bytes(self) -> int:
        return self.sink.committed_bytes

    async def abandon(self) -> None:
        """Let the manifest go publishing nothing: this writer no longer owns the output.

        What is buffered is dropped (the next holder fetches it again from the manifest's
        checkpoint), so a writer that lost its lease leaves no part outside the manifest.
        """
        await self.sink.abandon()

    async def aclose(self) -> None:
        """Publish what is buffered (its checkpoint with it) and let the manifest go."""
        await self.sink.aclose()
