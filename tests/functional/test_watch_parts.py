"""``logs watch`` into parts (a directory, a moto S3 bucket): killed, stopped and read back.

The console script runs against a FakeSendcloud that keeps adding logs; DuckDB's
``read_parquet('…/**/*.parquet', hive_partitioning=true)`` reads what it published
(from S3 after downloading the objects, as ``test_parts_s3`` does) and must find
every log exactly once, whatever moments the watch was SIGKILLed at.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from sendcloud_async._parts import DEFAULT_PART_RECORDS
from sendcloud_async.testing import FakeSendcloud
from tests._parts_data import export, make_logs
from tests._s3server import ACCESS_KEY, SECRET_KEY, S3Server
from tests.functional.test_cli import fake_env, run, start
from tests.functional.test_parts_s3 import download
from tests.functional.test_watch_cli import feed


@pytest.fixture
async def tied() -> AsyncIterator[FakeSendcloud]:
    """A FakeSendcloud whose logs may share a created_at."""
    async with FakeSendcloud(validate_spec=True, unique_log_times=False) as server:
        yield server
        assert server.spec_violations == []


def rows(root: Path) -> list[tuple[int, str, str]]:
    """``(id, account, date)`` of every log in the Parquet parts under ``root``."""
    found = duckdb.sql(
        f"select id, account, cast(date as varchar) from read_parquet('{root}/**/*.parquet', "
        "hive_partitioning=true) order by id"
    ).fetchall()  # type: ignore[union-attr]
    return [(int(i), str(a), str(d)) for i, a, d in found]


def written(folder: Path) -> list[str]:
    """What ``folder`` holds, and whether the file:// output of the usage test exists."""
    found = sorted(p.name for p in folder.iterdir())
    return [*found, *(["never-written"] if Path("/tmp/never-written").exists() else [])]


def manifest(root: Path, account: str = "default") -> dict[str, object]:
    loaded: dict[str, object] = json.loads((root / f"account={account}/_manifest.json").read_text())
    return loaded


def holds_a_state(root: Path) -> bool:
    """Whether the manifest of ``--out`` holds a watch state (it has polled once)."""
    try:
        return manifest(root).get("state") is not None
    except (OSError, ValueError):
        return False


def parts_on_disk(root: Path) -> set[str]:
    """The published part files under ``root`` (not the spool files being written)."""
    return {
        p.relative_to(root).as_posix() for p in root.rglob("part-*") if not p.name.endswith(".tmp")
    }


async def kill_repeatedly(
    fake: FakeSendcloud, args: tuple[str, ...], env: dict[str, str], seed: int, kills: int
) -> None:
    """SIGKILL the watch ``kills`` times while logs keep coming (three within 100 ms of
    starting), each followed by a restart. A watch runs until stopped: each kill hits it."""
    rng = random.Random(seed)
    feeder = asyncio.create_task(feed(fake, rng))
    try:
        for kill in range(kills):
            proc = await start(*args, env=env, stdout=None)
            await asyncio.sleep(rng.uniform(0.0, 0.1) if kill < 3 else rng.uniform(0.4, 1.6))
            proc.send_signal(signal.SIGKILL)
            _, err = await proc.communicate()
            assert proc.returncode == -signal.SIGKILL, err.decode()
    finally:
        feeder.cancel()


WATCH = ("logs", "watch", "--format", "parquet", "--start", "all", "--page-size", "7")
FAST = ("--interval", "0.05", "--roll-records", "25", "--roll-seconds", "0.3")


@pytest.mark.timeout(300)
async def test_sigkills_leave_every_log_once_in_a_directory(
    tied: FakeSendcloud, tmp_path: Path
) -> None:
    """Ten SIGKILLs at random moments, then --once: each log in exactly one published part."""
    tied.seed(integrations=2, logs_per_integration=40)
    out = tmp_path / "parts"
    args = (*WATCH, "--out", str(out))
    await kill_repeatedly(tied, (*args, *FAST), fake_env(tied), seed=21, kills=10)
    assert len(tied.logs) > 80 + 50  # logs kept coming while it was being killed
    done = await run(*args, "--once", env=fake_env(tied))
    assert done.code == 0, done.err
    found = rows(out)
    assert Counter(i for i, _, _ in found) == Counter(r["id"] for r in tied.logs)
    assert {a for _, a, _ in found} == {"default"}
    saved = manifest(out)
    assert saved["records"] == len(tied.logs)
    listed = {str(p["key"]) for p in saved["parts"]}  # type: ignore[attr-defined]
    assert parts_on_disk(out) == listed  # a killed writer's leftovers were removed
    assert len(listed) > 3  # rolled by size and time, not one part at the end


@pytest.mark.timeout(300)
async def test_sigkills_leave_every_log_once_in_a_bucket(
    tied: FakeSendcloud, s3_server: S3Server, bucket: str, tmp_path: Path
) -> None:
    """The same into S3 (moto): the objects downloaded, then read by DuckDB."""
    tied.seed(integrations=2, logs_per_integration=30)
    env = fake_env(tied, **s3_server.env)
    args = (*WATCH, "--out", f"s3://{bucket}/watch")
    await kill_repeatedly(tied, (*args, *FAST), env, seed=22, kills=7)
    done = await run(*args, "--once", env=env)
    assert done.code == 0, done.err
    assert "published" in done.out
    root = await download(bucket, "watch", tmp_path / "s3")
    found = rows(root)
    assert Counter(i for i, _, _ in found) == Counter(r["id"] for r in tied.logs)
    saved = manifest(root)
    assert saved["records"] == len(tied.logs)
    assert parts_on_disk(root) == {str(p["key"]) for p in saved["parts"]}  # type: ignore[attr-defined]


def now() -> str:
    """A ``created_at`` of now: after the mark of a watch that started with ``now``."""
    return datetime.now(UTC).isoformat()


async def wait_for(check: Callable[[], object], within: float) -> float:
    """Seconds until ``check()`` is true (fails the test after ``within`` seconds)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < within, "timed out"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


async def test_the_time_roll_publishes_within_its_bound_and_sigterm_the_rest(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """--roll-seconds 1: logs a poll found are published together about 1 s after the
    first of them (not at once, not later than the bound); SIGTERM publishes the buffer
    and exits 0."""
    fake.seed(integrations=1, logs_per_integration=2)
    out = tmp_path / "parts"
    proc = await start(
        *WATCH, "--start", "now", "--out", str(out), "--interval", "0.1",
        "--roll-seconds", "1", env=fake_env(fake),
    )  # fmt: skip
    try:
        # The first poll's state is in the manifest at once (so a restart keeps "now").
        await wait_for(lambda: holds_a_state(out), 30)
        assert parts_on_disk(out) == set()
        first = fake.add_log(1, created_at=now())
        added = time.monotonic()
        await asyncio.sleep(0.3)
        second = fake.add_log(1, created_at=now())
        await wait_for(lambda: parts_on_disk(out), 10)
        took = time.monotonic() - added
        # Seen by a poll within 0.1 s (plus a request), published 1 s after that.
        assert 0.9 < took < 1 + 0.1 + 0.8, f"published {took:.2f} s after the first log"
        assert [i for i, _, _ in rows(out)] == [first["id"], second["id"]]
        assert len(parts_on_disk(out)) == 1
        third = fake.add_log(1, created_at=now())
        await asyncio.sleep(0.5)  # polled and buffered; its second is not up yet
        assert len(parts_on_disk(out)) == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "stopped; every log written so far is saved" in err.decode()
    assert [i for i, _, _ in rows(out)] == [first["id"], second["id"], third["id"]]
    assert manifest(out)["records"] == 3


async def test_accounts_give_one_partition_each(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--accounts --out-dir: account=NAME per account, read by DuckDB as one table."""
    fake.seed(integrations=2, logs_per_integration=6)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f"""
[accounts.shop-a]
public_key = "fake-public-key"
secret_key = "fake-secret-key"
base_url = "{fake.base_url}"

[accounts.shop-b]
public_key = "fake-public-key"
secret_key = "fake-secret-key"
base_url = "{fake.base_url}"
integration = 2
"""
    )
    accounts.chmod(0o600)
    out = tmp_path / "parts"
    args = ("logs", "watch", "--accounts", str(accounts), "--out-dir", str(out),
            "--format", "parquet", "--start", "all", "--once")  # fmt: skip
    result = await run(*args, env=fake_env(fake))
    assert result.code == 0, result.err
    assert "published 18 new logs (18 in all)" in result.out
    found = rows(out)
    assert [i for i, a, _ in found if a == "shop-a"] == [r["id"] for r in fake.logs]
    assert [i for i, a, _ in found if a == "shop-b"] == [
        r["id"] for r in fake.logs if r["integration_id"] == 2
    ]
    assert sorted(p.name for p in out.iterdir()) == ["account=shop-a", "account=shop-b"]
    fake.add_log(2)
    again = await run(*args, env=fake_env(fake))
    assert again.code == 0, again.err
    assert "published 2 new logs (20 in all)" in again.out


async def test_jsonl_parts_compressed_into_a_file_url(fake: FakeSendcloud, tmp_path: Path) -> None:
    """A URL means parts whatever the format: gzip JSON Lines parts under file://."""
    fake.seed(integrations=1, logs_per_integration=5)
    out = tmp_path / "logs"
    result = await run(
        "logs", "watch", "--out", f"file://{out}", "--compression", "gzip", "--start", "all",
        "--once", env=fake_env(fake),
    )  # fmt: skip
    assert result.code == 0, result.err
    [part] = sorted(out.rglob("part-*"))
    assert part.name.endswith(".jsonl.gz")
    ids = duckdb.sql(f"select id from read_json('{part}') order by id").fetchall()  # type: ignore[union-attr]
    assert [i for (i,) in ids] == [r["id"] for r in fake.logs]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--out", "p", "--format", "parquet", "--roll-seconds", "0"), "--roll-seconds"),
        (("--out", "p", "--format", "parquet", "--roll-records", "0"), "--roll-records"),
        (("--out", "p", "--format", "parquet", "--compression", "lz4"), "--compression"),
        (
            ("--out", "file:///tmp/never-written", "--format", "csv", "--compression", "snappy"),
            "csv parts cannot be compressed with 'snappy'",
        ),
        (("--out", "logs.jsonl", "--compression", "gzip"), "--compression goes with parts"),
        (("--out", "logs.jsonl", "--roll-seconds", "5"), "--roll-seconds goes with parts"),
        (("--out", "logs.jsonl", "--format", "parquet"), "--format parquet contradicts"),
        (("--out", "logs.jsonl.gz"), "which cannot be a compressed file: drop .gz"),
        (("--out", "ftp://host/logs"), "unknown scheme 'ftp'"),
        (
            ("--out", f"s3://{ACCESS_KEY}:{SECRET_KEY}@bucket/logs"),
            "credentials in the URL are not accepted",
        ),
    ],
)
async def test_bad_usage_exits_2_with_nothing_written(
    fake: FakeSendcloud, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """Each bad option: exit 2, one error line naming it, no request, no file."""
    os.chdir(tmp_path)
    result = await run("logs", "watch", *args, env=fake_env(fake))
    assert result.code == 2, result.err
    assert message in result.err
    assert len(result.err_lines) == 1, result.err
    assert SECRET_KEY not in result.err
    assert fake.requests == []
    assert written(tmp_path) == []


async def test_another_format_or_compression_than_the_folders_is_refused(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A second run must write what the folder holds: exit 2 naming both, nothing sent."""
    fake.seed(integrations=1, logs_per_integration=3)
    url = f"file://{tmp_path}"
    first = await run("logs", "watch", "--out", url, "--start", "all", "--once", env=fake_env(fake))
    assert first.code == 0, first.err
    before = parts_on_disk(tmp_path)
    fake.clear_requests()
    again = await run("logs", "watch", "--out", url, "--compression", "gzip", "--once",
                      env=fake_env(fake))  # fmt: skip
    assert again.code == 2, again.err
    assert "holds jsonl parts (none)" in again.err
    assert len(again.err_lines) == 1, again.err
    assert fake.requests == []
    assert parts_on_disk(tmp_path) == before


async def test_a_second_watch_into_the_same_folder_is_refused(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """The folder's lock is held by a running watch: exit 2 naming it, nothing sent."""
    proc = await start("logs", "watch", "--out", str(tmp_path), "--format", "parquet",
                       "--interval", "0.1", env=fake_env(fake))  # fmt: skip
    try:
        await wait_for(lambda: holds_a_state(tmp_path), 30)
        async with FakeSendcloud() as other:  # the refused watch's: it must see no request
            second = await run("logs", "watch", "--out", str(tmp_path), "--format", "parquet",
                               "--once", env=fake_env(other))  # fmt: skip
            assert other.requests == []
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    assert second.code == 2, second.err
    assert f"another watch or export is writing {tmp_path}/account=default" in second.err
    assert len(second.err_lines) == 1, second.err


async def test_the_parts_of_an_export_are_refused(fake: FakeSendcloud, tmp_path: Path) -> None:
    """A folder an export wrote: exit 2 before any request, its parts untouched."""
    await export(str(tmp_path), make_logs(30), account="default")
    before = parts_on_disk(tmp_path)
    result = await run("logs", "watch", "--out", str(tmp_path), "--format", "parquet",
                       env=fake_env(fake))  # fmt: skip
    assert result.code == 2, result.err
    assert "holds parts that a watch did not write" in result.err
    assert fake.requests == []
    assert parts_on_disk(tmp_path) == before


async def test_a_lost_bucket_ends_the_watch_with_one_line(
    fake: FakeSendcloud, s3_server: S3Server, bucket: str
) -> None:
    """The bucket goes away under a running watch: its next publish fails, exit 1, one
    line naming the URL, no credential."""
    fake.seed(integrations=1, logs_per_integration=1)
    env = fake_env(fake, **s3_server.env)
    proc = await start(
        "logs", "watch", "--out", f"s3://{bucket}/w", "--interval", "0.1",
        "--roll-seconds", "0.3", env=env,
    )  # fmt: skip
    try:
        await wait_for(lambda: any("/integrations/logs" in r.path for r in fake.requests), 30)
        await asyncio.sleep(0.3)
        s3_server.reset()
        fake.add_log(1, created_at=now())
        out, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = err.decode()
    assert proc.returncode == 1, text
    errors = [line for line in text.splitlines() if f"s3://{bucket}/w" in line]
    assert len(errors) == 1, text
    assert SECRET_KEY not in text + out.decode()
    assert ACCESS_KEY not in text + out.decode()


async def test_help_states_the_default_roll_records() -> None:
    """The help's default for --roll-records is the parts' own default."""
    result = await run("logs", "watch", "--help", env=dict(os.environ))
    assert result.code == 0
    assert f"({DEFAULT_PART_RECORDS:,}, as an export's parts)" in " ".join(result.out.split())
