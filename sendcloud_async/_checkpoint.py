"""An export's checkpoint: what was asked for, and how far the output holds it."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Final

import msgspec
from msgspec import UNSET, UnsetType

from ._errors import ExportInputError
from ._sources._ties import Boundary
from ._sources._watch_state import Order

__all__ = [
    "CHECKPOINT_SUFFIX",
    "CHECKPOINT_VERSION",
    "START_OVER",
    "Checkpoint",
    "CheckpointQuery",
    "checkpoint_path",
    "checkpoint_query",
    "continued",
    "describe_difference",
    "holds_nothing",
    "recorded_boundary",
]

CHECKPOINT_SUFFIX: Final = ".checkpoint.json"
CHECKPOINT_VERSION: Final = 1

_ENCODER: Final = msgspec.json.Encoder()


class CheckpointQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What was asked for: a resume must ask for exactly the same."""

    base_url: str
    integration_id: int | None
    format: str
    page_size: int | None
    #: ``"account"`` (one account-wide walk) or ``"per-integration"`` (see ``_export_walks``).
    listing: str = "account"
    # Written only when set, so that an export without them keeps the first version's
    # shape; read them as ``compression``, ``since`` and ``until``.
    codec: str | UnsetType = msgspec.field(default=UNSET, name="compression")
    start: datetime | UnsetType = msgspec.field(default=UNSET, name="since")
    end: datetime | UnsetType = msgspec.field(default=UNSET, name="until")

    @property
    def compression(self) -> str:
        """``none``, ``gzip`` or ``zstd`` for a file; the codec of a parts export."""
        return "none" if isinstance(self.codec, UnsetType) else self.codec

    @property
    def since(self) -> datetime | None:
        """The range of ``created_at`` exported is ``[since, until)`` (``None``: unbounded)."""
        return None if isinstance(self.start, UnsetType) else self.start

    @property
    def until(self) -> datetime | None:
        return None if isinstance(self.end, UnsetType) else self.end


class Checkpoint(msgspec.Struct, kw_only=True):
    """The state of an export on disk, in ``FILE.checkpoint.json``.

    ``offset`` bytes of the file hold ``records`` logs in ``pages`` pages: every
    log before ``cursor`` (``None`` before the first page), the next request's
    cursor, but those of ``boundary``'s ids. ``done`` is set once the last page is
    written.
    """

    version: int
    query: CheckpointQuery
    cursor: str | None
    offset: int
    records: int
    pages: int
    done: bool
    #: The listing's order a ranged export found when it began (``_sources._range``);
    #: written only then (read it as ``order``).
    listing_order: Order | UnsetType = msgspec.field(default=UNSET, name="order")

    #: Where the walk's last page ended: the ``created_at`` of its last log and the ids
    #: delivered at it, which the next request lists again (``_sources._ties``). Not written
    #: before a log is; a checkpoint of the first version has none.
    boundary: Boundary | UnsetType = UNSET

    @property
    def order(self) -> Order | None:
        """``"oldest_first"``, ``"newest_first"``, or ``None``: not known, or no range."""
        return None if isinstance(self.listing_order, UnsetType) else self.listing_order


def recorded_boundary(boundary: Boundary | UnsetType) -> Boundary | None:
    """A walk's ``boundary`` as recorded (``None``: none yet, or a first-version checkpoint).

    A walk without one follows its cursor as recorded and drops nothing on the page
    it lists first: what a first-version checkpoint's cursor means.
    """
    return None if isinstance(boundary, UnsetType) else boundary


class _Recorded(msgspec.Struct):
    """What every kind of checkpoint records: its query, and how many records it holds."""

    query: CheckpointQuery
    records: int


def holds_nothing(records: int) -> bool:
    """Whether a checkpoint accounting for ``records`` logs holds nothing worth keeping.

    The one rule for an export that wrote nothing (its first request failed, say):
    it does not stand in the way of a new run, whatever that run asks for.
    """
    return records == 0


#: How a refused resume starts over instead (``sendcloud-async logs export``).
START_OVER: Final = "--restart (instead of --resume) starts over"

#: The name a field of ``CheckpointQuery`` is shown (and read) by.
_SHOWN: Final = {"codec": "compression", "start": "since", "end": "until"}


def describe_difference(query: CheckpointQuery, other: CheckpointQuery) -> str:
    """The fields where ``query`` (this run) differs from ``other`` (the checkpoint)."""
    diffs = []
    for field in CheckpointQuery.__struct_fields__:
        name = _SHOWN.get(field, field)
        mine, theirs = getattr(query, name), getattr(other, name)
        if mine != theirs:
            shown = ["all" if v is None and name == "integration_id" else v for v in (mine, theirs)]
            if name == "page_size":
                shown = ["default" if v is None else v for v in (mine, theirs)]
            if name in ("since", "until"):
                shown = ["none" if v is None else v.isoformat() for v in (mine, theirs)]
            diffs.append(f"{name} {shown[0]} here but {shown[1]} in the checkpoint")
    return "; ".join(diffs)


def continued(state: Checkpoint, query: CheckpointQuery, where: str) -> Checkpoint | None:
    """``state`` (found at ``where``) if an export of ``query`` continues it.

    ``None`` if it holds nothing to continue (the export starts afresh);
    ``ExportInputError`` for another version, damage, or another query.
    """
    if state.version != CHECKPOINT_VERSION:
        raise ExportInputError(
            f"the checkpoint {where} has version {state.version}, "
            f"this sendcloud-async writes version {CHECKPOINT_VERSION}; {START_OVER}"
        )
    if state.records < 0 or state.pages < 0:
        raise ExportInputError(f"the checkpoint {where} is damaged (negative counts)")
    if state.query != query:
        if holds_nothing(state.records):
            return None
        raise ExportInputError(
            f"cannot resume: the checkpoint {where} is for another export "
            f"({describe_difference(query, state.query)}); {START_OVER}, or pick another output"
        )
    return state


def checkpoint_query(out_path: str | os.PathLike[str]) -> tuple[CheckpointQuery, int] | None:
    """The query recorded beside ``out_path`` and the records it holds.

    ``None`` when there is no checkpoint or it cannot be read or decoded
    (``LogExport.open()`` says why, when it matters).
    """
    try:
        raw = checkpoint_path(out_path).read_bytes()
        recorded = msgspec.json.decode(raw, type=_Recorded)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None
    return recorded.query, recorded.records


def checkpoint_path(out_path: str | os.PathLike[str]) -> Path:
    """The checkpoint file of an export to ``out_path``: ``out_path + ".checkpoint.json"``."""
    path = Path(out_path)
    return path.with_name(path.name + CHECKPOINT_SUFFIX)
