"""Where an export goes: directories made on demand, an unfinished export never clobbered."""

from __future__ import annotations

from pathlib import Path
from typing import NoReturn

import msgspec

from .._checkpoint import Checkpoint, checkpoint_path, holds_nothing
from .._fileio import create_directory
from .common import UsageError

__all__ = ["make_directory", "refuse_to_clobber", "refuse_unfinished"]


def make_directory(directory: Path, *, what: str) -> None:
    """Create ``directory`` and its parents if missing (``--out`` and ``--out-dir`` alike)."""
    problem = create_directory(directory)
    if problem is not None:
        raise UsageError(f"cannot write {what}: {problem}")


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
        _refuse(str(out), "an unfinished export (its checkpoint is damaged)", label)
    else:
        refuse_unfinished(str(out), state.records, state.done, label=label)


def refuse_unfinished(out: str, records: int, done: bool, *, label: str = "") -> None:
    """The rule of every output: ``UsageError`` if it holds an unfinished export.

    ``records`` and ``done`` are its checkpoint's (beside a file, or in the parts
    manifest). A finished export, or one that holds no record, is replaced.
    """
    if done or holds_nothing(records):
        return
    _refuse(out, f"an unfinished export ({records:,} records so far)", label)


def _refuse(out: str, held: str, label: str) -> NoReturn:
    raise UsageError(
        f"{label}{out} holds {held}; run again with --resume to continue it, "
        "or --restart to start over"
    )
