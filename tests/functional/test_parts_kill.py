"""SIGKILL a process writing parts at random moments, resume, and find every log once.

The child (``python -m tests._parts_data``) exports 4,000 logs in pages of 50 into
parts of 300 (a manifest replaced after each group); it is killed ten times (three
of them within its first 100 ms), then run to its end. DuckDB's
``read_parquet('…/**/*.parquet', hive_partitioning=true)`` over the result must find
exactly the logs of a clean run, each once, and the parts must be the clean run's,
byte for byte, in the same places (their names' digests hold each run's writer
token). On S3 (moto) the bucket is read back through obstore first: DuckDB's httpfs
extension is downloaded at run time, which CI cannot do.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from tests._parts_data import by_place, make_logs
from tests._s3server import S3Server
from tests.functional.test_parts_s3 import download

COUNT = 4000
ROOT = Path(__file__).resolve().parents[2]


def _child(out: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests._parts_data", out, str(COUNT), "parquet"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _kill_and_resume(out: str, env: dict[str, str], seed: int, lifetime: float) -> int:
    """Ten SIGKILLs at random moments, then a run to the end; how many kills hit a live run.

    The late kills fall within ``lifetime``, how long a whole run takes on this machine.
    """
    rng = random.Random(seed)
    hits = 0
    for kill in range(10):
        child = _child(out, env)
        time.sleep(rng.uniform(0.0, 0.1) if kill < 3 else rng.uniform(0.1, 0.9) * lifetime)
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
            hits += 1
        stdout, stderr = child.communicate(timeout=60)
        assert child.returncode in (0, -signal.SIGKILL), stderr
    child = _child(out, env)
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr
    assert stdout.strip() == "done"
    return hits


def _ids(root: Path) -> list[int]:
    rows = duckdb.sql(
        f"select id, account, date from read_parquet('{root}/**/*.parquet', "
        "hive_partitioning=true) order by id"
    ).fetchall()  # type: ignore[union-attr]
    assert {account for _, account, _ in rows} == {"shop-a"}
    return [ident for ident, _, _ in rows]


def _parts(root: Path) -> dict[str, bytes]:
    return by_place(
        {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.parquet")}
    )


def _clean_run(out: Path) -> tuple[dict[str, bytes], float]:
    """The parts of a run that is not killed, and how long it took."""
    started = time.monotonic()
    child = _child(str(out), dict(os.environ))
    _, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr
    return _parts(out), time.monotonic() - started


@pytest.mark.alone  # how many kills land on a live run depends on the machine's load
@pytest.mark.timeout(300)
def test_sigkill_then_resume_into_a_directory(tmp_path: Path) -> None:
    clean, lifetime = _clean_run(tmp_path / "clean")
    out = tmp_path / "killed"
    hits = _kill_and_resume(str(out), dict(os.environ), seed=11, lifetime=lifetime)
    assert hits >= 5
    expected = [log.id for log in make_logs(COUNT)]
    assert _ids(out) == expected
    assert _parts(out) == clean
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


@pytest.mark.alone  # how many kills land on a live run depends on the machine's load
@pytest.mark.timeout(300)
async def test_sigkill_then_resume_into_s3(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean, lifetime = _clean_run(tmp_path / "clean")
    s3_server.create_bucket("killed")
    env = {**os.environ, **s3_server.env}
    hits = _kill_and_resume("s3://killed/run", env, seed=12, lifetime=lifetime)
    assert hits >= 5
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    root = await download("killed", "run", tmp_path / "s3")
    assert _ids(root) == [log.id for log in make_logs(COUNT)]
    assert _parts(root) == clean
