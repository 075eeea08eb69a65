"""``MemorySink``: records and state in a ``MemoryMedium`` (lost when the process ends)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Generic, TypeVar

import msgspec

from .._lifecycle import Lifecycle
from ._base import ENCODER, SinkInUseError, decode_state

__all__ = ["MemoryMedium", "MemorySink"]

R = TypeVar("R")
S = TypeVar("S")


class MemoryMedium(Generic[R]):
    """What a ``MemorySink`` writes: ``records`` in commit order and the last state's JSON.

    One sink holds it at a time (``holder``), as one process holds a file's lock.
    """

    def __init__(self) -> None:
        self.records: list[R] = []
        self.state: bytes | None = None
        self.holder: object | None = None


class MemorySink(Lifecycle, Generic[R, S]):
    """A ``Sink`` over a ``MemoryMedium`` (a new one unless ``medium`` is given).

    For tests and library users who want the jobs' commit step without a file:
    ``medium.records`` holds every committed record, ``load()`` the state (decoded
    as ``state`` from its JSON, so a caller never shares an object with the medium).
    """

    kind: ClassVar[str] = "memory sink"

    def __init__(self, state: type[S], medium: MemoryMedium[R] | None = None) -> None:
        super().__init__()
        self.medium: MemoryMedium[R] = MemoryMedium() if medium is None else medium
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(state)

    def _take(self) -> MemoryMedium[R]:
        self.check_open()
        medium = self.medium
        if medium.holder is None:
            medium.holder = self
        elif medium.holder is not self:
            raise SinkInUseError("another writer holds this memory medium; close it first")
        return medium

    async def load(self) -> S | None:
        raw = self._take().state
        return None if raw is None else decode_state(self._decoder, raw, "in memory")

    async def commit(self, records: Sequence[R], state: S, /) -> None:
        medium = self._take()
        raw = ENCODER.encode(state)
        medium.records.extend(records)
        medium.state = raw

    async def _close(self) -> None:
        if self.medium.holder is self:
            self.medium.holder = None
