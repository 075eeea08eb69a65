"""A killed writer's spool folder is removed by the next writer; a live one's never is.

A writer into a bucket spools each part in a private temporary folder
(``sendcloud-async-parts-*``), holding an exclusive lock on its ``.lock`` file while
the folder lives. The children (``python -m tests._spool_child``) spool parts into
moto and are SIGKILLed at random moments, some within their first milliseconds; the
next writer's first spool must remove every dead writer's folder, while a second
child, alive all along, keeps its folder and its part and finishes cleanly. Every
test points the temporary directory (``TMPDIR``, ``tempfile.tempdir``) at its own
``tmp_path``, so it sees no other test's folders.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import obstore
import pytest
from obstore.store import S3Store

from sendcloud_async._parts._objstore import SPOOL_GRACE, SPOOL_LOCK, SPOOL_PREFIX, ObjectStore
from tests._s3server import S3Server
from tests._spool_child import HELD

ROOT = Path(__file__).resolve().parents[2]


def _child(url: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests._spool_child", url],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _spooling(child: subprocess.Popen[str]) -> Path:
    """The spool folder ``child`` printed once its first part was spooled."""
    assert child.stdout is not None
    line = child.stdout.readline()
    assert line.startswith("spooling "), (line, child.stderr.read() if child.stderr else "")
    return Path(line.split(" ", 1)[1].strip())


def _folders(temp: Path) -> set[Path]:
    return set(temp.glob(f"{SPOOL_PREFIX}*"))


def _kill(child: subprocess.Popen[str]) -> None:
    if child.poll() is None:
        os.kill(child.pid, signal.SIGKILL)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode in (0, -signal.SIGKILL), stderr


@pytest.mark.timeout(300)
def test_a_killed_writers_folder_goes_with_the_next_spool_and_a_live_ones_stays(
    s3_server: S3Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    s3_server.create_bucket("spool-kills")
    env = {**os.environ, **s3_server.env, "TMPDIR": str(temp)}
    live = _child("s3://spool-kills/live", env)
    try:
        live_folder = _spooling(live)
        _kill_and_spool(temp, env, live_folder)
        stdout, stderr = live.communicate("", timeout=60)
    finally:
        if live.poll() is None:
            _kill(live)
    assert live.returncode == 0, stderr
    assert stdout.startswith("published ")
    assert int(stdout.split()[1]) > 0
    assert not live_folder.exists()  # its own aclose() removed it
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    held = obstore.get(S3Store("spool-kills", client_options={"allow_http": True}), "live/held")
    assert bytes(held.bytes()) == HELD


def _kill_and_spool(temp: Path, env: dict[str, str], live_folder: Path) -> None:
    """Twelve rounds: a writer killed at a random moment (before, during or after its
    first spool), then a next writer, killed once its first spool has swept."""
    rng = random.Random(5)
    previous: Path | None = None
    victims_with_parts = 0
    for round_ in range(12):
        victim = _child(f"s3://spool-kills/victim-{round_}", env)
        time.sleep(rng.uniform(0.0, 0.08) if round_ < 4 else rng.uniform(0.08, 0.6))
        _kill(victim)
        dead = _folders(temp) - {live_folder}
        victims_with_parts += any(
            p.name != SPOOL_LOCK for folder in dead - {previous} for p in folder.iterdir()
        )
        nxt = _child(f"s3://spool-kills/next-{round_}", env)
        own = _spooling(nxt)
        left = _folders(temp) - {live_folder, own}
        # Every dead writer's folder is gone; only one whose maker died before its lock
        # file existed may stay while it is young, and it holds neither a lock nor a part.
        assert all(not any(folder.iterdir()) for folder in left), left
        assert previous not in left  # (or the victim's first spool had removed it)
        _kill(nxt)  # killed after its first spool: its folder is dead for the next round
        previous = own
        # The live writer's folder and its held part are untouched.
        assert (live_folder / "held").read_bytes() == HELD
    assert victims_with_parts >= 3  # kills that left a part behind, not only early ones
    assert (live_folder / SPOOL_LOCK).is_file()
    assert previous is not None
    assert (previous / SPOOL_LOCK).is_file()  # a dead writer's lock file, free to take


def _folder(temp: Path, name: str, *, lock: bool, age: float = 0.0) -> Path:
    folder = temp / f"{SPOOL_PREFIX}{name}"
    folder.mkdir()
    (folder / "a_part").write_bytes(b"part bytes")
    if lock:
        (folder / SPOOL_LOCK).touch()
    if age:
        then = time.time() - age
        os.utime(folder, (then, then))
    return folder


async def test_what_the_sweep_removes_and_what_it_leaves(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    dead = _folder(temp, "dead", lock=True)
    dead_unlocked_old = _folder(temp, "old", lock=False, age=SPOOL_GRACE + 5)
    being_made = _folder(temp, "young", lock=False, age=SPOOL_GRACE / 2)
    held = _folder(temp, "held", lock=True)
    other_user = _folder(temp, "other", lock=True)
    os.chown(other_user / SPOOL_LOCK, 65534, 65534)
    os.chown(other_user, 65534, 65534)
    other_name = temp / "elsewhere-parts-dead"
    other_name.mkdir()
    (other_name / SPOOL_LOCK).touch()
    target = tmp_path / "target"
    target.mkdir()
    (target / SPOOL_LOCK).touch()
    link = temp / f"{SPOOL_PREFIX}link"
    link.symlink_to(target)
    plain_file = temp / f"{SPOOL_PREFIX}file"
    plain_file.write_bytes(b"not a folder")
    fd = os.open(held / SPOOL_LOCK, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a live writer (this process)
        store = ObjectStore("s3", bucket, "sweep")
        spool = await asyncio.to_thread(store.spool, "sweep/part-1")
        own = spool.parent
        assert own.parent == temp
        assert sorted(p.name for p in temp.iterdir()) == sorted(
            p.name for p in (own, being_made, held, other_user, other_name, link, plain_file)
        )
        assert not dead.exists()
        assert not dead_unlocked_old.exists()
        assert (own / SPOOL_LOCK).is_file()
        assert (held / "a_part").read_bytes() == b"part bytes"
        assert (other_user / "a_part").read_bytes() == b"part bytes"
        assert (target / SPOOL_LOCK).is_file()
        # A second store of this process sees the first one's folder as live.
        second = ObjectStore("s3", bucket, "sweep")
        second_spool = await asyncio.to_thread(second.spool, "sweep/part-2")
        assert own.is_dir()
        assert second_spool.parent.is_dir()
        await second.aclose()
        await store.aclose()
        assert not own.exists()
        assert not second_spool.parent.exists()
    finally:
        os.close(fd)
    # Released: the next spool finds the held folder's writer dead.
    third = ObjectStore("s3", bucket, "sweep")
    await asyncio.to_thread(third.spool, "sweep/part-3")
    assert not held.exists()
    assert being_made.exists()
    await third.aclose()
