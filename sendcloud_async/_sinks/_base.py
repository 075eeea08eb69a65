"""The sink protocol and its errors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol, TypeVar

import msgspec

__all__ = ["ENCODER", "Sink", "SinkError", "SinkInUseError", "decode_state"]

S = TypeVar("S")
R_contra = TypeVar("R_contra", contravariant=True)

#: The JSON of every state (and of every record a sink keeps as JSON).
ENCODER: Final = msgspec.json.Encoder()


class SinkError(Exception):
    """A sink cannot be used: its medium is not writable, or its saved state is damaged.

    ``reason`` is the bare cause (``str()`` is the whole one-line message). Internal:
    the job that owns the sink says it in its own error (``ExportError``, a usage
    error of the command line), so it is not a ``SendcloudError`` of its own.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason or message


class SinkInUseError(SinkError):
    """Another writer holds the sink's medium (its lock or lease): a second one is refused."""


class Sink(Protocol[R_contra, S]):
    """Where a job commits records and the state that follows them, as one step.

    ``load()`` gives the state committed last (``None``: nothing was committed)
    and takes the medium for this writer (``SinkInUseError`` if another holds
    it); ``commit(records, state)`` stores both, or neither whenever the process
    dies; ``aclose()`` lets the medium go (idempotent). Every use after
    ``aclose()`` raises ``ClientClosedError``.
    """

    async def load(self) -> S | None:
        """The last committed state, or ``None``."""
        ...

    async def commit(self, records: Sequence[R_contra], state: S, /) -> None:
        """Store ``records`` and then ``state``, atomically."""
        ...

    async def aclose(self) -> None:
        """Let the medium go (idempotent)."""
        ...


def decode_state(decoder: msgspec.json.Decoder[Any], raw: bytes, where: object) -> Any:
    """A state from its JSON; ``SinkError`` naming ``where`` if it does not decode."""
    try:
        return decoder.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise SinkError(f"the state {where} is damaged ({exc})", str(exc)) from None
