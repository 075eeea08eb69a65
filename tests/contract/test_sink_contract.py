"""One contract for every sink: file (JSON Lines, CSV), memory and Redis.

``load()`` after nothing is ``None``; ``commit`` then ``load`` gives the state; a
second writer is refused while the first holds the medium; ``aclose()`` twice is
fine and any use after it raises ``ClientClosedError``. The durable sinks are
killed with SIGKILL at random moments (from the first milliseconds of committing
on) while a child process commits in a loop: the records on the medium are then
exactly those of the state the parent loads, each once, and the next writer goes
on from there. A file sink's write that fails midway (a real short write, over
``RLIMIT_FSIZE`` in a child process) leaves nothing after the committed records.
"""

from __future__ import annotations

import asyncio
import errno
import json
import os
import random
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from sendcloud_async._errors import ClientClosedError
from sendcloud_async._fileio import FileWriteError, atomic_write
from sendcloud_async._sinks import MemoryMedium, SinkError, SinkInUseError
from sendcloud_async._sinks import _file as file_sink_module

from ._sinks import ALL, DURABLE, Progress, close, log, make, medium_ids

HERE = Path(__file__).resolve().parent


@pytest.fixture
def media(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    """A fresh medium for a sink kind: ``media(kind)``."""

    def medium(kind: str) -> Any:
        if kind.startswith("file-"):
            return tmp_path / f"records-{uuid.uuid4().hex[:8]}.out"
        if kind == "memory":
            return MemoryMedium()
        server = request.getfixturevalue("redis_server")
        return (server.url, f"test-{uuid.uuid4().hex[:12]}")

    return medium


@pytest.mark.parametrize("kind", ALL)
async def test_load_after_nothing_is_none_and_commit_then_load_is_the_state(
    kind: str, media: Any
) -> None:
    medium = media(kind)
    sink = make(kind, medium)
    try:
        assert await sink.load() is None
        await sink.commit([log(1), log(2)], Progress(committed=2, batches=1))
        await sink.commit([], Progress(committed=2, batches=2))
        await sink.commit([log(3)], Progress(committed=3, batches=3))
        loaded = await sink.load()
        assert (loaded.committed, loaded.batches) == (3, 3)
    finally:
        await close(kind, sink)
    again = make(kind, medium)  # another writer, after the first let go
    try:
        loaded = await again.load()
        assert (loaded.committed, loaded.batches) == (3, 3)
        assert await medium_ids(kind, medium) == [1, 2, 3]
    finally:
        await close(kind, again)


@pytest.mark.parametrize("kind", ALL)
async def test_a_second_writer_is_refused_while_the_first_holds_it(kind: str, media: Any) -> None:
    medium = media(kind)
    first, second = make(kind, medium, "w1"), make(kind, medium, "w2")
    try:
        await first.commit([log(1)], Progress(committed=1, batches=1))
        with pytest.raises(SinkInUseError) as refused:
            await second.load()
        assert "\n" not in str(refused.value)
        with pytest.raises(SinkInUseError):
            await second.commit([log(2)], Progress(committed=2, batches=2))
        assert await medium_ids(kind, medium) == [1]  # the refused commit wrote nothing
        await first.aclose()
        loaded = await second.load()  # the first let go: the second may take it now
        assert loaded is not None
        assert loaded.committed == 1
    finally:
        await close(kind, first)
        await close(kind, second)


@pytest.mark.parametrize("kind", ALL)
async def test_aclose_twice_is_fine_and_use_after_it_raises(kind: str, media: Any) -> None:
    medium = media(kind)
    sink = make(kind, medium)
    await sink.commit([log(1)], Progress(committed=1, batches=1))
    await close(kind, sink)
    await sink.aclose()
    with pytest.raises(ClientClosedError, match="is closed"):
        await sink.load()
    with pytest.raises(ClientClosedError, match="is closed"):
        await sink.commit([log(2)], Progress(committed=2, batches=2))
    assert await medium_ids(kind, medium) == [1]


async def kill_at_random(kind: str, medium: Any, delay: float) -> None:
    """Start the committing child; SIGKILL it ``delay`` seconds after it is ready."""
    where = str(medium) if kind.startswith("file-") else " ".join(medium)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.contract._sinks", kind, where,
        stdout=asyncio.subprocess.PIPE, cwd=HERE.parents[1],
    )  # fmt: skip
    assert proc.stdout is not None
    try:
        assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"ready\n"
        await asyncio.sleep(delay)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.parametrize("kind", DURABLE)
async def test_records_on_the_medium_are_those_of_the_committed_state_after_sigkill(
    kind: str, media: Any
) -> None:
    """Ten kills at random moments, four of them in the first 100 ms of committing."""
    rng = random.Random(f"sink-{kind}")
    medium = media(kind)
    delays = [rng.uniform(0, 0.1) for _ in range(4)] + [rng.uniform(0.1, 0.6) for _ in range(6)]
    rng.shuffle(delays)
    last = 0
    for delay in delays:
        await kill_at_random(kind, medium, delay)
        sink = make(kind, medium)
        try:
            state = await sink.load()  # the state after a crash, with the medium cut back to it
            committed = 0 if state is None else state.committed
            assert await medium_ids(kind, medium) == list(range(1, committed + 1))
            assert committed >= last  # a committed state is never lost
            last = committed
        finally:
            await close(kind, sink)
    assert last > 0, "the child never committed: the kills told nothing"
    sink = make(kind, medium)  # and the next writer goes on exactly after it
    try:
        state = await sink.load()
        assert state is not None
        await sink.commit([log(last + 1)], Progress(committed=last + 1, batches=state.batches + 1))
        assert await medium_ids(kind, medium) == list(range(1, last + 2))
    finally:
        await close(kind, sink)


#: The child of the failed-write test (argv: the sink's kind, its file): a commit over
#: ``RLIMIT_FSIZE`` (part of it written, then EFBIG), then a smaller one. It prints, as
#: JSON, the error and, right after it, the file's size and the state on disk.
SHORT_WRITE_CHILD = """
import asyncio, json, resource, signal, sys
from pathlib import Path
from tests.contract._sinks import Progress, close, log, make

async def main(kind, medium):
    sink = make(kind, medium)
    await sink.load()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (medium.stat().st_size + 100, hard))
    try:
        await sink.commit([log(n) for n in range(3, 40)], Progress(committed=39, batches=2))
        error = None
    except OSError as exc:
        error = str(exc)
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    size, state = medium.stat().st_size, sink.state_path.read_text()
    print(json.dumps({"error": error, "size": size, "state": state}), flush=True)
    await sink.commit([log(3)], Progress(committed=3, batches=2))
    await close(kind, sink)

asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
"""


@pytest.mark.parametrize("kind", ["file-jsonl", "file-csv"])
async def test_a_write_that_fails_midway_leaves_nothing_after_the_committed_records(
    kind: str, media: Any
) -> None:
    """A short write (over ``RLIMIT_FSIZE``, in a child): the error names the file, the
    file is cut back to the committed offset at once, the state is unchanged, and the
    next commit of the same sink goes on exactly after the committed records."""
    medium = media(kind)
    sink = make(kind, medium)
    await sink.commit([log(1), log(2)], Progress(committed=2, batches=1))
    committed, state_path = sink.offset, sink.state_path
    await close(kind, sink)
    state = state_path.read_text()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SHORT_WRITE_CHILD, kind, str(medium),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=HERE.parents[1],
    )  # fmt: skip
    out, err = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, err.decode()
    assert json.loads(out) == {
        "error": f"cannot write {medium} (appending the new records): File too large",
        "size": committed,
        "state": state,
    }
    # Read as the child left it (no writer has cut it since): the records, each once.
    assert await medium_ids(kind, medium) == [1, 2, 3]
    assert json.loads(state_path.read_text())["offset"] == medium.stat().st_size


async def test_a_failed_save_of_the_state_leaves_the_records_for_the_next_open_to_cut(
    media: Any,
) -> None:
    """The records were written and fsync-ed but the state's save failed: the records
    stay (the old state points before them; the next open cuts them), and the next commit
    writes at the committed offset and cuts what the failed one left beyond it."""
    medium = media("file-jsonl")
    sink = make("file-jsonl", medium)
    try:
        await sink.commit([log(1)], Progress(committed=1, batches=1))
        committed, state = sink.offset, sink.state_path.read_bytes()
        blocker = sink.state_path.with_name(sink.state_path.name + ".tmp")
        blocker.mkdir()  # the state's temporary file cannot be written
        with pytest.raises(FileWriteError) as failed:
            await sink.commit([log(n) for n in range(2, 9)], Progress(committed=8, batches=2))
        assert str(failed.value) == (
            f"cannot write {sink.state_path} (saving the state): Is a directory"
        )
        assert sink.state_path.read_bytes() == state
        assert sink.offset == committed
        assert await medium_ids("file-jsonl", medium) == list(range(1, 9))  # left in place
        blocker.rmdir()
        await sink.commit([log(2)], Progress(committed=2, batches=2))
        assert await medium_ids("file-jsonl", medium) == [1, 2]
        assert medium.stat().st_size == sink.offset
    finally:
        await close("file-jsonl", sink)
    again = make("file-jsonl", medium)
    try:
        loaded = await again.load()
        assert loaded is not None
        assert loaded.committed == 2
    finally:
        await close("file-jsonl", again)


def landed_then_failed(path: Path, data: bytes) -> None:
    """``atomic_write`` whose rename lands and whose directory ``fsync`` then fails: a real
    file system does not fail that on demand, so the failure is raised after the write."""
    atomic_write(path, data)
    raise OSError(errno.EIO, "Input/output error")


async def test_a_save_that_landed_although_it_failed_is_never_written_over(
    media: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The commit raised, yet its state is on disk: a commit from the state before is
    refused with nothing written (it would write over the records the state on disk
    holds), and ``load()`` gives the state that landed, from which commits go on."""
    medium = media("file-jsonl")
    sink = make("file-jsonl", medium)
    try:
        await sink.commit([log(1)], Progress(committed=1, batches=1))
        monkeypatch.setattr(file_sink_module, "atomic_write", landed_then_failed)
        with pytest.raises(FileWriteError) as failed:
            await sink.commit([log(2), log(3), log(4)], Progress(committed=4, batches=2))
        monkeypatch.undo()
        assert str(failed.value) == (
            f"cannot write {sink.state_path} (saving the state): Input/output error"
        )
        landed = sink.state_path.read_bytes()
        assert json.loads(landed)["committed"] == 4
        with pytest.raises(SinkError) as refused:
            await sink.commit([log(2)], Progress(committed=2, batches=2))
        assert str(refused.value) == (
            f"saving the state failed, yet {sink.state_path} holds a newer one (the save "
            "landed after all); load the state again before writing more"
        )
        assert sink.state_path.read_bytes() == landed
        assert await medium_ids("file-jsonl", medium) == [1, 2, 3, 4]
        loaded = await sink.load()
        assert loaded is not None
        assert (loaded.committed, sink.offset) == (4, medium.stat().st_size)
        await sink.commit([log(5)], Progress(committed=5, batches=3))
        assert await medium_ids("file-jsonl", medium) == [1, 2, 3, 4, 5]
    finally:
        await close("file-jsonl", sink)


async def test_committed_after_a_failed_save_is_the_state_on_disk(
    media: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``committed()`` reads the state again only after a failed save: the one that landed,
    or the one before if the save did not land (the batch then cut by the next commit)."""
    medium = media("file-jsonl")
    sink = make("file-jsonl", medium)
    try:
        await sink.commit([log(1)], Progress(committed=1, batches=1))
        assert sink.committed() == sink.state
        monkeypatch.setattr(file_sink_module, "atomic_write", landed_then_failed)
        with pytest.raises(FileWriteError):
            await sink.commit([log(2)], Progress(committed=2, batches=2))
        monkeypatch.undo()
        landed = sink.committed()
        assert landed is not None
        assert (landed.committed, sink.offset) == (2, medium.stat().st_size)
        blocker = sink.state_path.with_name(sink.state_path.name + ".tmp")
        blocker.mkdir()  # this save does not land
        with pytest.raises(FileWriteError):
            await sink.commit([log(3), log(4)], Progress(committed=4, batches=3))
        blocker.rmdir()
        kept = sink.committed()
        assert kept is not None
        assert kept.committed == 2
        await sink.commit([log(3)], Progress(committed=3, batches=3))
        assert await medium_ids("file-jsonl", medium) == [1, 2, 3]
    finally:
        await close("file-jsonl", sink)
