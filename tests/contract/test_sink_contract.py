"""One contract for every sink: file (JSON Lines, CSV), memory and Redis.

``load()`` after nothing is ``None``; ``commit`` then ``load`` gives the state; a
second writer is refused while the first holds the medium; ``aclose()`` twice is
fine and any use after it raises ``ClientClosedError``. The durable sinks are
killed with SIGKILL at random moments (from the first milliseconds of committing
on) while a child process commits in a loop: the records on the medium are then
exactly those of the state the parent loads, each once, and the next writer goes
on from there.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from sendcloud_async._errors import ClientClosedError
from sendcloud_async._sinks import MemoryMedium, SinkInUseError

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
