"""The suite's own guard: every test runs under a time limit, so a hang fails one test."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_suite_sets_a_time_limit_per_test() -> None:
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert 0 < int(options["timeout"]) <= 300
    assert options["timeout_method"] == "signal"  # fails the test, keeps the run going
    assert any(
        line.startswith("pytest-timeout")
        for line in (ROOT / "requirements-test.txt").read_text().splitlines()
    )


def test_a_hanging_async_test_fails_alone_and_the_run_goes_on(tmp_path: Path) -> None:
    """An awaited event that never comes: that test fails at the limit, the next one passes."""
    (tmp_path / "test_hang.py").write_text(
        textwrap.dedent(
            """
            import asyncio

            async def test_hangs():
                await asyncio.Event().wait()

            def test_after():
                assert True
            """
        )
    )
    began = time.monotonic()
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_mode=auto",
            "-o",
            "timeout=2",
            "-o",
            "timeout_method=signal",
            str(tmp_path / "test_hang.py"),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert time.monotonic() - began < 30
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Timeout" in done.stdout
    assert "1 failed, 1 passed" in done.stdout
