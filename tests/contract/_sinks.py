"""Every sink over a medium of its own, for the contract tests and their committing child."""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import msgspec

from sendcloud_async._models import IntegrationLog
from sendcloud_async._records import csv_header, encode_csv, encode_jsonl
from sendcloud_async._sinks import FileSink, MemoryMedium, MemorySink, RedisSink

#: The durable sinks (the kill test runs over these) and every sink.
DURABLE = ["file-jsonl", "file-csv", "redis"]
ALL = ["file-jsonl", "file-csv", "memory", "redis"]
ACCOUNT = "shop-a"


class Progress(msgspec.Struct, kw_only=True):
    """The state the tests commit: records so far, batches so far (``offset``: the file's)."""

    committed: int
    batches: int
    offset: int = 0


def log(n: int) -> IntegrationLog:
    """Record number ``n``."""
    return IntegrationLog(
        base_url="https://shop.example", id=n, integration_id=1, exception=f"#{n}"
    )


def file_sink(kind: str, medium: Path) -> FileSink[IntegrationLog, Progress]:
    csv_format = kind == "file-csv"
    return FileSink(
        medium,
        medium.with_name(medium.name + ".state.json"),
        state=Progress,
        encode=encode_csv if csv_format else encode_jsonl,
        header=csv_header() if csv_format else b"",
    )


def redis_sink(url: str, namespace: str, worker: str) -> RedisSink[IntegrationLog, Progress]:
    from sendcloud_async.redis import RedisWatchStore

    store = RedisWatchStore.from_url(
        url, namespace=namespace, stream_prefix=namespace, worker_id=worker, lease=30.0
    )
    return RedisSink(store, ACCOUNT, state=Progress)


def make(kind: str, medium: Any, worker: str = "w1") -> Any:
    """A sink of ``kind`` over ``medium`` (a path, a ``MemoryMedium``, ``(url, namespace)``)."""
    if kind.startswith("file-"):
        return file_sink(kind, medium)
    if kind == "memory":
        return MemorySink(Progress, medium)
    url, namespace = medium
    return redis_sink(url, namespace, worker)


async def close(kind: str, sink: Any) -> None:
    await sink.aclose()
    if kind == "redis":
        await sink.store.aclose()


def file_ids(kind: str, medium: Path) -> list[int]:
    raw = medium.read_bytes() if medium.exists() else b""
    if kind == "file-jsonl":
        return [msgspec.json.decode(line)["id"] for line in raw.splitlines()]
    if not raw:
        return []
    rows = list(csv.reader(io.StringIO(raw.decode(), newline="")))
    assert rows[0] == csv_header().decode().rstrip("\r\n").split(",")
    return [int(row[0]) for row in rows[1:]]


async def medium_ids(kind: str, medium: Any) -> list[int]:
    """The ids of the records on ``medium``, in order."""
    if kind.startswith("file-"):
        return file_ids(kind, medium)
    if kind == "memory":
        assert isinstance(medium, MemoryMedium)
        return [r.id for r in medium.records]
    import redis.asyncio

    url, namespace = medium
    client = redis.asyncio.Redis.from_url(url)
    try:
        entries: Any = await client.xrange(f"{namespace}:{ACCOUNT}")
    finally:
        await client.aclose()
    return [msgspec.json.decode(fields[b"log"])["id"] for _, fields in entries]


async def commit_forever(kind: str, medium: Any) -> None:
    """The child: continue from the loaded state, committing batches of 0 to 4 records."""
    sink = make(kind, medium)
    state = await sink.load()
    count, batches = (0, 0) if state is None else (state.committed, state.batches)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    while True:
        size = batches % 5
        records = [log(n) for n in range(count + 1, count + size + 1)]
        count, batches = count + size, batches + 1
        await sink.commit(records, Progress(committed=count, batches=batches))


if __name__ == "__main__":
    import asyncio

    which, where = sys.argv[1], sys.argv[2]
    target: Any = Path(where) if which.startswith("file-") else tuple(where.split(" "))
    asyncio.run(commit_forever(which, target))
