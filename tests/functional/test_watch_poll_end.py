"""Where a poll leaves the watch: a resumed walk and the state of a poll that found nothing.

Against a real newest-first ``FakeSendcloud``: a walk stopped in its middle and resumed
with a larger ``lookback`` delivers each log once; and the drivers that begin every poll
from a saved state (``LogWatcher`` with its stores, the Redis ``logs_watch``) save the
state a poll ends with, so an idle poll is one request again.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec

import sendcloud_async as sc
from sendcloud_async.testing import FakeSendcloud
from tests._wait import until

SHOP = "https://s.example"


def listings(fake: FakeSendcloud) -> int:
    """How many logs listings the fake received."""
    return sum(1 for r in fake.requests if r.path.endswith("/logs"))


async def _mid_walk(client: sc.SendcloudClient, lookback: float) -> tuple[sc.WatchState, list[int]]:
    """The state after the first batch of a newest-first walk (stopped there), its logs."""
    watch = client.logs.watch(start="all", page_size=3, lookback=lookback, once=True)
    batch = await anext(watch)
    await watch.aclose()
    assert batch.state.walk is not None  # in the middle of the walk
    return batch.state, [log.id or 0 for log in batch.items]


async def _resume(
    client: sc.SendcloudClient, state: sc.WatchState | bytes, lookback: float
) -> tuple[list[int], list[int]]:
    """Two runs from ``state`` (``once``), each from the last batch's state: logs, late logs."""
    delivered: list[int] = []
    late: list[int] = []
    for _ in range(2):
        async for batch in client.logs.watch(state, page_size=3, lookback=lookback, once=True):
            delivered += [log.id or 0 for log in batch.items]
            late += [log.id or 0 for log in batch.late]
            state = batch.state
    return delivered, late


def _six_logs(fake: FakeSendcloud) -> None:
    """Six logs one second apart, the newest 5 s ago (inside a 60 s window)."""
    fake.seed(integrations=1, logs_per_integration=0)
    now = datetime.now(UTC)
    for k in range(6):
        fake.add_log(1, created_at=now - timedelta(seconds=10 - k), base_url=SHOP)


async def test_a_walk_resumed_with_a_larger_lookback_delivers_each_log_once() -> None:
    """A walk with ``lookback=1`` stopped after its first page, resumed with 60: the logs it
    delivered below its head's one-second window are not delivered again, nor called late."""
    async with FakeSendcloud(log_order="newest_first") as fake:
        _six_logs(fake)
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            state, first = await _mid_walk(client, lookback=1)
            assert first == [6, 5, 4]
            rest, late = await _resume(client, msgspec.json.encode(state), lookback=60)
    assert Counter(first + rest) == Counter(range(1, 7))
    assert late == []
    # The walk's memory went down to a window of one second from its head, no further.
    assert state.walk is not None
    assert state.walk.head is not None
    assert msgspec.json.decode(msgspec.json.encode(state))["walk"]["floor"] == (
        (state.walk.head - timedelta(seconds=1)).isoformat().replace("+00:00", "Z")
    )


async def test_a_mid_walk_state_saved_without_a_floor_resumes_exactly_once() -> None:
    """A mid-walk state as the release before wrote it (no ``walk.floor``) still loads, and
    resumed with a larger lookback it delivers the rest once: its memory counts from its head."""
    async with FakeSendcloud(log_order="newest_first") as fake:
        _six_logs(fake)
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            state, first = await _mid_walk(client, lookback=1)
            saved = json.loads(msgspec.json.encode(state))
            saved["walk"].pop("floor", None)
            old = json.dumps(saved).encode()
            rest, late = await _resume(client, old, lookback=60)
    assert Counter(first + rest) == Counter(range(1, 7))
    assert late == []


async def _two_new_logs(fake: FakeSendcloud) -> None:
    """Two logs an hour old (newer than the seeded ones): the window behind them is closed."""
    created = datetime.now(UTC) - timedelta(hours=1)
    fake.add_log(1, created_at=created, base_url=SHOP)
    fake.add_log(1, created_at=created + timedelta(seconds=1), base_url=SHOP)


async def test_log_watcher_saves_the_state_a_newest_first_poll_ends_with() -> None:
    """The last page of a walk holds nothing new: the state after it (walk finished) is saved
    all the same, without logs and without a ``NewLogs``; each idle poll is then one request."""
    events: list[sc.WatchEvent] = []
    saves: list[int] = []

    class Store(sc.MemoryWatchStore):
        async def save(self, account: str, state: sc.AccountState, logs: object) -> None:
            saves.append(len(logs))  # type: ignore[arg-type]
            await super().save(account, state, logs)  # type: ignore[arg-type]

    async with FakeSendcloud(log_order="newest_first") as fake:
        fake.seed(integrations=1, logs_per_integration=2)
        store = Store()
        async with sc.AccountPool(base_url=fake.base_url) as pool:

            async def poll() -> int:
                before = listings(fake)
                watcher = sc.LogWatcher(
                    pool,
                    {"a": fake.basic_auth},
                    store=store,
                    start="all",
                    page_size=2,
                    health=False,
                )
                await watcher.run(events.append, once=True)
                return listings(fake) - before

            assert await poll() == 1  # the two seeded logs, on one page
            await _two_new_logs(fake)
            saves.clear()
            assert await poll() >= 2  # the new logs, then the pages down to the mark
            assert saves == [2, 0]  # the logs, then the state the walk ended with
            assert store.states["a"].logs.walk is None
            saves.clear()
            idle = [await poll() for _ in range(3)]
    assert idle == [1, 1, 1]
    assert saves == []  # an idle poll changes nothing: nothing to save
    new = [e for e in events if isinstance(e, sc.NewLogs)]
    assert [len(e.items) for e in new] == [2, 2]
    polled = [e.new_logs for e in events if isinstance(e, sc.AccountPolled)]
    assert polled == [2, 2, 0, 0, 0]


async def test_a_file_watch_saves_the_poll_end_state_and_appends_nothing(tmp_path: Path) -> None:
    """The same through ``FileWatchStore`` (``logs watch --out``): the state file moves past
    the walk, the output file keeps its bytes, and an idle poll is one request."""
    out = tmp_path / "logs.jsonl"
    async with FakeSendcloud(log_order="newest_first") as fake:
        fake.seed(integrations=1, logs_per_integration=2)
        async with sc.AccountPool(base_url=fake.base_url) as pool:

            async def poll() -> int:
                before = listings(fake)
                async with sc.FileWatchStore(source=fake.base_url, paths={"a": out}) as store:
                    watcher = sc.LogWatcher(
                        pool, {"a": fake.basic_auth}, store=store, start="all", page_size=2
                    )
                    await watcher.run(once=True, handler=None)
                return listings(fake) - before

            await poll()
            await _two_new_logs(fake)
            await poll()
            written = out.read_bytes()
            state = json.loads(out.with_name(out.name + ".watch.json").read_bytes())
            idle = [await poll() for _ in range(2)]
            assert out.read_bytes() == written
    assert state["state"]["logs"]["walk"] is None
    assert len(written.splitlines()) == 4
    assert idle == [1, 1]


class _Commit:
    """A ``Commit`` that records each write, and how many listings each poll had made."""

    def __init__(self, fake: FakeSendcloud) -> None:
        self.fake = fake
        self.writes: list[tuple[dict[str, object], int]] = []
        self.listed: list[int] = []  # the fake's listings when each poll ended

    async def __call__(self, state: bytes, logs: Sequence[bytes], /) -> None:
        self.writes.append((json.loads(state), len(logs)))

    def polled(self) -> None:
        self.listed.append(listings(self.fake))


async def test_the_redis_logs_watch_commits_the_poll_end_state_alone() -> None:
    """``logs_watch`` commits the state a poll ends with (no logs) when it changed; then
    each idle poll is one request and commits nothing."""
    from sendcloud_async.redis import logs_watch

    async with FakeSendcloud(log_order="newest_first") as fake:
        fake.seed(integrations=1, logs_per_integration=2)
        commit = _Commit(fake)
        async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            watch = logs_watch(lambda name: client, start="all", interval=0.02, page_size=2)
            task = asyncio.ensure_future(watch("a", None, commit))
            try:
                await until(lambda: len(commit.listed) >= 1)
                await _two_new_logs(fake)
                await until(lambda: sum(n for _, n in commit.writes) == 4)
                polls = len(commit.listed) + 1  # the poll with the new logs ends then
                await until(lambda: len(commit.listed) >= polls + 4)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    # The start, the seeded logs, the new ones, the state the walk ended with: no more.
    assert [n for _, n in commit.writes] == [0, 2, 2, 0]
    assert commit.writes[-1][0]["walk"] is None
    idle = commit.listed[polls - 1 :]
    assert [b - a for a, b in itertools.pairwise(idle)] == [1] * (len(idle) - 1)


async def test_a_parts_watch_saves_the_poll_end_state_and_publishes_no_part(
    tmp_path: Path,
) -> None:
    """``logs watch --out DIR --format jsonl --once`` into parts: the manifest moves past the
    walk without a new part, and each idle run is one listing request."""
    from tests.functional.test_cli import fake_env, run
    from tests.functional.test_watch_parts import manifest, parts_on_disk

    out = tmp_path / "out"
    args = ("logs", "watch", "--format", "jsonl", "--start", "all", "--page-size", "2")
    async with FakeSendcloud(log_order="newest_first") as fake:
        fake.seed(integrations=1, logs_per_integration=2)
        env = fake_env(fake)

        async def once() -> int:
            before = listings(fake)
            done = await run(*args, "--out", f"file://{out}", "--once", env=env)
            assert done.code == 0, done.err
            return listings(fake) - before

        await once()
        await _two_new_logs(fake)
        await once()
        parts = parts_on_disk(out)
        saved = manifest(out)
        idle = [await once() for _ in range(2)]
        assert parts_on_disk(out) == parts
    assert saved["records"] == 4
    assert saved["state"]["state"]["logs"]["walk"] is None  # type: ignore[index]
    assert idle == [1, 1]
