"""Parts into S3: a real S3-compatible server (moto, in server mode) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import obstore
import pytest
from obstore.store import S3Store

from sendcloud_async._parts import ExportInputError, PartsSink, SecondWriterError
from sendcloud_async._parts._errors import clean
from tests._parts_data import export, make_logs
from tests._s3server import ACCESS_KEY, SECRET_KEY, S3Server

LOGS = make_logs(600)
ROOT = Path(__file__).resolve().parents[2]


def _store(bucket: str) -> S3Store:
    return S3Store(bucket, client_options={"allow_http": True})


# obstore's blocking calls in a thread, as the sink makes them (see ``_objstore``): its
# ``*_async`` calls could abort this process as it exits.


async def _keys(bucket: str) -> list[str]:
    chunks = await asyncio.to_thread(obstore.list(_store(bucket)).collect)
    return sorted(str(meta["path"]) for meta in chunks)


def _download(store: S3Store, keys: list[str], into: Path) -> None:
    for key in keys:
        target = into / key
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(bytes(obstore.get(store, key).bytes()))


async def download(bucket: str, prefix: str, into: Path) -> Path:
    """Every object under ``prefix`` as a local tree (DuckDB reads it there)."""
    keys = [key for key in await _keys(bucket) if key.startswith(prefix)]
    await asyncio.to_thread(_download, _store(bucket), keys, into)
    return into / prefix


async def test_parquet_parts_and_manifest_in_a_bucket(bucket: str, tmp_path: Path) -> None:
    sink = await export(f"s3://{bucket}/exports/logs", LOGS)
    keys = await _keys(bucket)
    assert "exports/logs/account=shop-a/_manifest.json" in keys
    parts = [k for k in keys if k.endswith(".parquet")]
    assert parts == sorted(f"exports/logs/{key}" for key in sink.parts)
    root = await download(bucket, "exports/logs", tmp_path)
    [(count, distinct)] = duckdb.sql(
        f"select count(*), count(distinct id) from read_parquet('{root}/**/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()  # type: ignore[union-attr]
    assert count == distinct == len(LOGS)
    manifest = json.loads((root / "account=shop-a" / "_manifest.json").read_text())
    assert manifest["state"] == {"next": len(LOGS)}
    assert manifest["records"] == len(LOGS)


async def test_a_resume_continues_and_removes_orphans(bucket: str) -> None:
    out = f"s3://{bucket}/x"
    await export(out, LOGS[:300])
    store = _store(bucket)
    orphan = "x/account=shop-a/date=2026-11-02/part-000099-deadbeef.parquet"
    await asyncio.to_thread(obstore.put, store, orphan, b"left by a killed writer")
    sink = await export(out, LOGS)
    keys = await _keys(bucket)
    assert orphan not in keys
    assert sink.committed_records == len(LOGS)
    assert {k for k in keys if k.endswith(".parquet")} == {f"x/{k}" for k in sink.parts}


async def test_a_writer_that_lost_the_manifest_is_refused(bucket: str) -> None:
    out = f"s3://{bucket}/y"
    first = PartsSink(out, account="shop-a", part_records=100)
    await first.load()
    await first.commit(LOGS[:50], {"next": 50})
    second = PartsSink(out, account="shop-a", part_records=100)
    await second.load()  # claims the manifest
    with pytest.raises(SecondWriterError, match=r"another writer changed s3://.*_manifest.json"):
        await first.commit(LOGS[50:150], {"next": 150})
    await first.aclose()
    assert await second.load() is None
    await second.commit(LOGS[:100], {"next": 100})
    await second.aclose()
    assert second.committed_records == 100


async def test_a_refused_writer_removes_only_its_own_parts(
    bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stalled writer and the one that took the account over, both from one manifest
    state, buffer the same logs (so the same part group, at the same dates). The
    successor is held between its part uploads and its manifest PUT (the window a slow
    network gives it; the calls themselves are the real ones) while the stalled writer
    publishes, is refused and cleans up: it removes its own parts only, every part the
    successor lists exists, and a resume continues after them."""
    out = f"s3://{bucket}/race"
    await export(out, LOGS[:100], part_records=10_000)
    stalled, successor = (
        PartsSink(out, account="shop-a", part_records=10_000, row_group_records=128)
        for _ in range(2)
    )
    assert await stalled.load() == {"next": 100}
    await stalled.commit(LOGS[100:200], {"next": 200})
    assert await successor.load() == {"next": 100}  # claims the manifest
    await successor.commit(LOGS[100:200], {"next": 200})
    arrived, go_on = asyncio.Event(), asyncio.Event()
    replace = successor._store.replace

    async def held(key: str, data: bytes, *, expected: str | None) -> str | None:
        arrived.set()
        await go_on.wait()
        return await replace(key, data, expected=expected)

    monkeypatch.setattr(successor._store, "replace", held)
    flushing = asyncio.create_task(successor.flush())
    await arrived.wait()  # its parts are uploaded; its manifest is not replaced yet
    theirs = {k for k in await _keys(bucket) if k.endswith(".parquet")}
    with pytest.raises(SecondWriterError, match=r"another writer changed s3://.*_manifest.json"):
        await stalled.flush()
    await stalled.aclose()
    assert {k for k in await _keys(bucket) if k.endswith(".parquet")} == theirs
    go_on.set()
    await flushing
    await successor.aclose()
    keys = await _keys(bucket)
    assert {k for k in keys if k.endswith(".parquet")} == {f"race/{k}" for k in successor.parts}
    root = await download(bucket, "race", tmp_path)
    [(count, distinct)] = duckdb.sql(
        f"select count(*), count(distinct id) from read_parquet('{root}/**/*.parquet', "
        "hive_partitioning=true)"
    ).fetchall()  # type: ignore[union-attr]
    assert count == distinct == 200
    resumed = PartsSink(out, account="shop-a")
    assert await resumed.load() == {"next": 200}
    await resumed.aclose()
    assert resumed.committed_records == 200


async def test_a_missing_bucket_is_one_line_and_nothing_is_written(
    s3_server: S3Server, bucket: str
) -> None:
    sink = PartsSink("s3://no-such-bucket/x", account="shop-a")
    with pytest.raises(
        ExportInputError, match=r"^cannot write parts to s3://no-such-bucket/x: "
    ) as caught:
        await sink.load()
    await sink.aclose()
    text = str(caught.value)
    assert "\n" not in text
    assert SECRET_KEY not in text
    assert ACCESS_KEY not in text
    assert await _keys(bucket) == []


async def test_credentials_never_appear_in_errors_or_reprs(
    bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = PartsSink(f"s3://{bucket}/z", account="shop-a")
    assert SECRET_KEY not in repr(sink)
    assert ACCESS_KEY not in repr(sink)
    assert SECRET_KEY not in repr(sink._store)
    await sink.aclose()
    # The storage library's message passes through one filter: first line, secrets masked.
    message = f"Error performing PUT with {SECRET_KEY} and {ACCESS_KEY}\n<Error>...</Error>"
    assert clean(message) == "Error performing PUT with ********** and **********"


@pytest.mark.parametrize(("fmt", "compression"), [("jsonl", "gzip"), ("csv", "zstd")])
async def test_compressed_text_parts_in_a_bucket(bucket: str, fmt: str, compression: str) -> None:
    sink = await export(f"s3://{bucket}/t", LOGS, format=fmt, compression=compression)
    suffix = ".gz" if compression == "gzip" else ".zst"
    assert sink.parts
    assert all(k.endswith(f".{fmt}{suffix}") for k in sink.parts)
    assert sink.committed_records == len(LOGS)


@pytest.mark.timeout(300)
async def test_a_process_that_wrote_to_s3_exits_0_every_time(
    s3_server: S3Server, bucket: str
) -> None:
    """A process exits 0 after its export, run after run: nothing aborts it at shutdown.

    The first run writes the parts, the next ones resume (read and claim the manifest,
    list, publish nothing) and exit right after their last call to the store: the
    moment an asynchronous storage call's thread could still be calling into Python
    (SIGABRT, in a few percent of such runs, before the calls became blocking ones).
    """
    out = f"s3://{bucket}/exit"
    outcomes = []
    for _run in range(30):
        child = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "tests._parts_data", out, str(len(LOGS)), "parquet"],
            cwd=ROOT,
            env={**os.environ, **s3_server.env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        outcomes.append((child.returncode, child.stdout.strip(), child.stderr[-500:]))
    assert outcomes == [(0, "done", "")] * 30
    sink = PartsSink(out, account="shop-a")
    assert await sink.load() == {"next": len(LOGS)}
    await sink.aclose()
    assert sink.committed_records == len(LOGS)
