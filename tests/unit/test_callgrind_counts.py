"""``benchmarks/_callgrind``: reading the instructions callgrind counted, one dump a cycle."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import _callgrind


def _dump(path: Path, total: int) -> None:
    path.write_text(
        f"# callgrind format\nversion: 1\ncmd: python\nsummary: {total}\ntotals: {total}\n"
    )


def test_each_dump_is_one_count_in_the_order_written(tmp_path: Path) -> None:
    out = tmp_path / "client-0.out"
    for number, total in ((1, 500), (2, 400), (10, 300)):
        _dump(tmp_path / f"client-0.out.{number}", total)
    _dump(out, 7)  # written when the process ended: after the last cycle, not one
    _dump(tmp_path / "client-1.out.1", 9)  # another client's
    assert _callgrind.instructions(out) == [500, 400, 300]


def test_no_dump_is_no_count(tmp_path: Path) -> None:
    assert _callgrind.instructions(tmp_path / "client-0.out") == []


def test_the_counting_command_counts_nothing_until_told(tmp_path: Path) -> None:
    prefix = _callgrind.command(tmp_path / "c.out")
    assert prefix[:2] == ["valgrind", "--tool=callgrind"]
    assert "--instr-atstart=no" in prefix
    assert f"--callgrind-out-file={tmp_path / 'c.out'}" in prefix


def test_without_valgrind_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "")
    assert _callgrind.missing() == "valgrind is not installed (apt-get install valgrind)"


def test_the_watch_benchmark_refuses_to_count_without_valgrind(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from benchmarks import watch

    monkeypatch.setenv("PATH", "")
    with pytest.raises(SystemExit) as exited:
        watch.main(["--accounts", "5", "--instructions"])
    assert exited.value.code == 2
    assert "--instructions: valgrind is not installed" in capsys.readouterr().err
