"""Today's checkpoint and state files resume exactly once.

``tests/fixtures/export_v1`` and ``tests/fixtures/watch_files_v1`` hold what an
export and the watches left on disk when they were stopped mid-way (made by the
``make.py`` beside them, with bytes past each state's offset as a SIGKILL leaves
them). Each is resumed against a fake seeded alike: the committed bytes stay as
they are, the rest is written after them, every record once, and the state is
written in the same shape.
"""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import msgspec
import pytest

import sendcloud_async as sc
from sendcloud_async._export import ExportStats, export_logs
from sendcloud_async._export_walks import export_logs_per_integration
from sendcloud_async.testing import FakeSendcloud

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
#: The fake's address in the fixtures' states (``SOURCE`` of both ``make.py``).
SOURCE = b"http://127.0.0.1:9"


def copied(names: list[Path], into: Path, base_url: str) -> None:
    """Copy fixture files into ``into``, the fake's address put back into the states."""
    for name in names:
        raw = name.read_bytes()
        if name.suffix == ".json":
            raw = raw.replace(SOURCE, base_url.encode())
        (into / name.name).write_bytes(raw)


def ids_of(path: Path) -> list[int]:
    """The ``id`` of every record of a JSON Lines or CSV file, in order."""
    raw = path.read_bytes()
    if path.suffix == ".csv":
        return [int(row[0]) for row in list(csv.reader(io.StringIO(raw.decode(), newline="")))[1:]]
    return [msgspec.json.decode(line)["id"] for line in raw.splitlines()]


def keys(raw: bytes) -> object:
    """The shape of a state: its keys, nested, in the order written."""

    def shape(value: object) -> object:
        if isinstance(value, dict):
            return [(k, shape(v)) for k, v in value.items()]
        return None

    return shape(msgspec.json.decode(raw))


@pytest.mark.parametrize("name", ["account.jsonl", "account.csv", "walks.jsonl"])
async def test_an_interrupted_export_resumes_exactly_once(
    fake: FakeSendcloud, tmp_path: Path, name: str
) -> None:
    fake.seed(integrations=3, logs_per_integration=30, seed=2024)
    source = FIXTURES / "export_v1"
    checkpoint = source / (name + ".checkpoint.json")
    copied([source / name, checkpoint], tmp_path, fake.base_url)
    saved = msgspec.json.decode(checkpoint.read_bytes())
    committed = (source / name).read_bytes()[: saved["offset"]]
    assert len(committed) < (source / name).stat().st_size  # a torn batch is there to drop
    out = tmp_path / name
    fmt = "csv" if name.endswith(".csv") else "jsonl"
    stats: ExportStats
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
        if name.startswith("walks"):
            stats = await export_logs_per_integration(
                client, out, fmt=fmt, page_size=7, concurrency=2, resume=True
            )
        else:
            stats = await export_logs(client, out, fmt=fmt, page_size=7, resume=True)
    assert stats.done
    assert stats.run_records == 90 - saved["records"]
    assert out.read_bytes().startswith(committed)
    written = ids_of(out)
    if name.startswith("walks"):  # walks interleave; each integration's logs keep their order
        assert sorted(written) == sorted(r["id"] for r in fake.logs)
        for ident in (1, 2, 3):
            mine = [r["id"] for r in fake.logs if r["integration_id"] == ident]
            assert [i for i in written if i in set(mine)] == mine
    else:
        assert written == [r["id"] for r in fake.logs]
    after = (tmp_path / (name + ".checkpoint.json")).read_bytes()
    # The same shape, plus where the walks' last pages ended (the boundary of each walk).
    before = keys(checkpoint.read_bytes())
    assert isinstance(before, list)
    if name.startswith("walks"):
        assert keys(after) == before
        first = list(msgspec.json.decode(checkpoint.read_bytes())["walks"][0])
        walks = msgspec.json.decode(after)["walks"]
        for walk in walks:  # a walk done before the resume has none
            assert list(walk) in (first, [*first, "boundary"])
        assert any("boundary" in walk for walk in walks)
    else:
        boundary = ("boundary", [("at", None), ("ids", None), ("order", None)])
        assert keys(after) == [*before, boundary]
    assert msgspec.json.decode(after)["offset"] == out.stat().st_size


@pytest.mark.parametrize(
    ("folder", "name", "integration"),
    [
        ("single", "logs.csv", None),
        ("accounts", "shop-a.jsonl", None),
        ("accounts", "shop-two.jsonl", 2),
    ],
)
async def test_a_stopped_file_watch_resumes_exactly_once(
    fake: FakeSendcloud, tmp_path: Path, folder: str, name: str, integration: int | None
) -> None:
    fake.seed(integrations=2, logs_per_integration=20, seed=2025)
    source = FIXTURES / "watch_files_v1" / folder
    state = source / (name + ".watch.json")
    copied([source / name, state], tmp_path, fake.base_url)
    saved = msgspec.json.decode(state.read_bytes())
    committed = (source / name).read_bytes()[: saved["offset"]]
    out = tmp_path / name
    store = sc.FileWatchStore(format=out.suffix[1:], source=fake.base_url, paths={"shop": out})
    store.open("shop", integration_id=integration)
    try:
        async with sc.AccountPool(base_url=fake.base_url) as pool:
            watcher = sc.LogWatcher(
                pool,
                {"shop": fake.basic_auth},
                store=store,
                start="all",
                page_size=5,
                health=False,
                integrations=None if integration is None else {"shop": integration},
            )
            await watcher.run(once=True)
    finally:
        store.close()
    assert out.read_bytes().startswith(committed)
    wanted = [r["id"] for r in fake.logs if integration in (None, r["integration_id"])]
    assert ids_of(out) == wanted
    assert store.records == {"shop": len(wanted)}
    after = (tmp_path / (name + ".watch.json")).read_bytes()
    assert keys(after) == keys(state.read_bytes())


async def test_a_directory_watch_store_resumes_exactly_once(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    fake.seed(integrations=2, logs_per_integration=20, seed=2025)
    shutil.copytree(FIXTURES / "watch_files_v1" / "store", tmp_path / "store")
    fixture = (tmp_path / "store" / "shop-a.json").read_bytes()
    delivered: list[int] = []

    def handler(event: sc.WatchEvent) -> None:
        if isinstance(event, sc.NewLogs):
            delivered.extend(log.id for log in event.items if log.id is not None)

    async with sc.AccountPool(base_url=fake.base_url) as pool:
        watcher = sc.LogWatcher(
            pool,
            {"shop-a": fake.basic_auth},
            store=sc.DirectoryWatchStore(tmp_path / "store"),
            start="all",
            page_size=5,
        )
        await watcher.run(handler, once=True)
    assert delivered == [r["id"] for r in fake.logs if r["id"] > 9]  # 1 to 9: before the stop
    after = (tmp_path / "store" / "shop-a.json").read_bytes()
    assert after != fixture
    assert keys(after) == keys(fixture)
