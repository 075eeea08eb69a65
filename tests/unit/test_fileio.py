"""The one atomic replacement of a file (``atomic_write``, ``atomic_move``) on a real disk."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sendcloud_async._fileio import FileWriteError, atomic_move, atomic_write, writing


def test_atomic_write_replaces_the_file_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write(path, b"one")
    assert path.read_bytes() == b"one"
    atomic_write(path, b"two, longer" * 1000)
    assert path.read_bytes() == b"two, longer" * 1000
    assert os.listdir(tmp_path) == ["state.json"]


def test_atomic_move_puts_a_finished_file_in_place_of_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "part-000001.parquet"
    path.write_bytes(b"old")
    written = tmp_path / "part-000001.parquet.tmp"
    written.write_bytes(b"new bytes")
    atomic_move(written, path)
    assert path.read_bytes() == b"new bytes"
    assert os.listdir(tmp_path) == ["part-000001.parquet"]


def test_a_failed_atomic_write_names_the_file_and_keeps_the_old_bytes(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    atomic_write(path, b"kept")
    (tmp_path / "state.json.tmp").mkdir()  # the temporary file cannot be created
    with pytest.raises(FileWriteError) as caught, writing(path, "saving the state"):
        atomic_write(path, b"lost")
    assert str(caught.value) == f"cannot write {path} (saving the state): Is a directory"
    assert path.read_bytes() == b"kept"


def test_a_failed_atomic_move_keeps_both_files(tmp_path: Path) -> None:
    path = tmp_path / "part"
    path.mkdir()
    (path / "inside").write_bytes(b"x")  # a directory that is not empty cannot be replaced
    written = tmp_path / "part.tmp"
    written.write_bytes(b"finished")
    with pytest.raises(FileWriteError) as caught, writing(path, "publishing a part"):
        atomic_move(written, path)
    assert str(caught.value).startswith(f"cannot write {path} (publishing a part): ")
    assert written.read_bytes() == b"finished"
    assert (path / "inside").read_bytes() == b"x"


def test_atomic_move_of_a_missing_file_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "part"
    path.write_bytes(b"old")
    with pytest.raises(FileNotFoundError):
        atomic_move(tmp_path / "never-written", path)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["part"]
