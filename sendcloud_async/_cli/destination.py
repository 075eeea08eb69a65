"""Where an export goes: directories made on demand, an unfinished export never clobbered."""

from __future__ import annotations

from pathlib import Path

import msgspec

from .._export import Checkpoint, checkpoint_path, holds_nothing
from .common import UsageError

__all__ = ["make_directory", "refuse_to_clobber"]


def make_directory(directory: Path, *, what: str) -> None:
    """Create ``directory`` and its parents if missing (``--out`` and ``--out-dir`` alike)."""
    if directory.is_dir():
        return
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot write {what}: cannot create the directory {directory}: {exc.strerror or exc}"
        ) from None


def refuse_to_clobber(out: Path, *, label: str = "") -> None:
    """``UsageError`` if ``out`` holds an export that did not finish (without --resume/--restart).

    A finished export (its checkpoint says ``done``), one that wrote no record (its
    first request failed, say) and a file without a checkpoint are replaced, as
    ``curl -o`` would: re-running the same command works.
    """
    where = checkpoint_path(out)
    try:
        raw = where.read_bytes()
    except OSError:
        return
    try:
        state = msgspec.json.decode(raw, type=Checkpoint)
    except (msgspec.DecodeError, msgspec.ValidationError):
        held = "an unfinished export (its checkpoint is damaged)"
    else:
        if state.done or holds_nothing(state.records):
            return
        held = f"an unfinished export ({state.records:,} records so far)"
    raise UsageError(
        f"{label}{out} holds {held}; run again with --resume to continue it, "
        "or --restart to start over"
    )
