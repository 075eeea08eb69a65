"""``sendcloud-async logs tail``: the console script against a real redis-server.

The streams are written as the Redis watch writes them (``PREFIX:NAME``, the log's
JSON in the field ``log``); the docs example (tests/docs/test_shell_examples.py)
runs the real watch workers in front of it.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio

from tests.functional.test_cli import assert_one_error_line, base_env, run, start

from .conftest import RedisServer, free_port, redis_binary

GROUP = "sendcloud-async-tail"


def _log(n: int) -> bytes:
    return msgspec.json.encode({"id": n, "integration_id": 1, "exception": f"error {n}"})


async def _add(client: redis.asyncio.Redis, key: str, ids: range | list[int]) -> list[str]:
    """XADD one entry per id, as the watch writes them; the entry IDs."""
    added = []
    for n in ids:
        entry = await client.xadd(key, {"log": _log(n)})
        added.append(entry.decode() if isinstance(entry, bytes) else str(entry))
    return added


def _lines(path: Path) -> list[dict[str, Any]]:
    """Every line of the output, decoded (an unfinished line fails the test)."""
    return [msgspec.json.decode(line) for line in path.read_bytes().splitlines()]


def _tail(url: str, prefix: str, *extra: str) -> list[str]:
    return ["logs", "tail", "--redis", url, "--stream", prefix, *extra]


async def _pending(client: redis.asyncio.Redis, key: str) -> int:
    summary: Any = await client.xpending(key, GROUP)
    return int(summary["pending"])


async def test_reads_every_account_stream_writes_json_lines_and_acknowledges(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, namespace: str, tmp_path: Path
) -> None:
    """--once: each entry of every PREFIX:NAME stream becomes one line {account, entry, log},
    in stream order, and is acknowledged; keys of a longer prefix, other types and names
    that are not account names are left alone; a second run writes nothing more."""
    prefix = f"{namespace}:logs"
    entries = {
        "shop-a": await _add(redis_client, f"{prefix}:shop-a", range(1, 6)),
        "shop.b_2": await _add(redis_client, f"{prefix}:shop.b_2", range(6, 9)),
    }
    await _add(redis_client, f"{prefix}:deeper:shop-c", [100])  # the prefix PREFIX:deeper
    await _add(redis_client, f"{prefix}:bad name", [101])
    await redis_client.set(f"{prefix}:shop-d", "not a stream")
    out = tmp_path / "tail.jsonl"
    result = await run(
        *_tail(redis_server.url, prefix, "--once", "--out", str(out)), env=base_env()
    )
    assert result.code == 0, result.err
    lines = _lines(out)
    assert [(r["account"], r["entry"]) for r in lines if r["account"] == "shop-a"] == [
        ("shop-a", e) for e in entries["shop-a"]
    ]
    assert sorted((r["account"], r["entry"], r["log"]["id"]) for r in lines) == sorted(
        [("shop-a", e, n) for e, n in zip(entries["shop-a"], range(1, 6), strict=True)]
        + [("shop.b_2", e, n) for e, n in zip(entries["shop.b_2"], range(6, 9), strict=True)]
    )
    for record in lines:  # the shape: the account, the entry ID, the log as the watch wrote it
        assert list(record) == ["account", "entry", "log"]
        n = record["log"]["id"]
        assert record["log"] == msgspec.json.decode(_log(n))
    assert "8 logs written" in result.err
    for name in entries:
        assert await _pending(redis_client, f"{prefix}:{name}") == 0
    for other in (f"{prefix}:deeper:shop-c", f"{prefix}:bad name"):  # not read: no group
        groups: Any = await redis_client.xinfo_groups(other)
        assert groups == []
    again = await run(*_tail(redis_server.url, prefix, "--once", "--out", str(out)), env=base_env())
    assert again.code == 0, again.err
    assert len(_lines(out)) == 8


async def test_follows_new_streams_on_stdout_and_stops_on_sigterm(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    """Without --once it keeps reading, finds a stream that appears later, and SIGTERM
    ends it with status 0 after what it read was written."""
    prefix = f"{namespace}:live"
    await _add(redis_client, f"{prefix}:shop-1", range(1, 4))
    args = _tail(redis_server.url, prefix, "--scan-interval", "0.2")
    proc = await start(*args, env=base_env())
    try:
        assert proc.stdout is not None
        got = [msgspec.json.decode(await asyncio.wait_for(proc.stdout.readline(), 20))]
        got += [msgspec.json.decode(await asyncio.wait_for(proc.stdout.readline(), 5))]
        got += [msgspec.json.decode(await asyncio.wait_for(proc.stdout.readline(), 5))]
        await _add(redis_client, f"{prefix}:shop-2", [4, 5])
        await _add(redis_client, f"{prefix}:shop-1", [6])
        for _ in range(3):
            got.append(msgspec.json.decode(await asyncio.wait_for(proc.stdout.readline(), 10)))
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert sorted(r["log"]["id"] for r in got) == [1, 2, 3, 4, 5, 6]
    assert {r["account"] for r in got} == {"shop-1", "shop-2"}
    assert "stopped: 6 logs written to standard output from 2 streams" in err.decode()


async def test_sigkill_and_restart_lose_nothing(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, namespace: str, tmp_path: Path
) -> None:
    """Entries keep coming while the tail is SIGKILL-ed four times and restarted: at the end
    the file holds every entry (whole lines only), nothing is pending, and an entry is
    written twice only if a kill came between its write and its acknowledgement."""
    prefix = f"{namespace}:kill"
    out = tmp_path / "tail.jsonl"
    added: dict[str, list[str]] = {f"shop-{n}": [] for n in range(3)}
    rng = random.Random(5)

    async def produce() -> None:
        for n in range(1, 1501):
            name = f"shop-{n % 3}"
            added[name] += await _add(redis_client, f"{prefix}:{name}", [n])
            if n % 10 == 0:
                await asyncio.sleep(0.02)

    producer = asyncio.create_task(produce())
    args = _tail(redis_server.url, prefix, "--out", str(out), "--scan-interval", "0.2")
    try:
        for round_ in range(4):
            proc = await start(*args, env=base_env())
            if round_ == 0:  # the first kill lands once it writes, however slow its start
                for _ in range(300):
                    if out.exists() and out.stat().st_size > 0:
                        break
                    await asyncio.sleep(0.1)
            await asyncio.sleep(rng.uniform(0.8, 1.6))
            proc.kill()
            _, err = await proc.communicate()
            assert proc.returncode == -signal.SIGKILL, err.decode()
            if round_ == 0:  # killed while it was writing, with more to come
                assert out.exists()
                assert out.stat().st_size > 0
                assert not producer.done()
        await producer
    finally:
        producer.cancel()
    result = await run(
        *_tail(redis_server.url, prefix, "--once", "--out", str(out)), env=base_env()
    )
    assert result.code == 0, result.err
    lines = _lines(out)
    written = Counter((r["account"], r["entry"]) for r in lines)
    expected = {(name, entry) for name, entries in added.items() for entry in entries}
    assert len(expected) == 1500
    assert set(written) == expected  # nothing lost, nothing foreign
    for name in added:
        assert await _pending(redis_client, f"{prefix}:{name}") == 0
    repeated = sum(count - 1 for count in written.values())
    assert repeated <= 4 * 3 * 500  # at most the batches in hand at the four kills
    for record in lines:  # each line is whole and holds its own log
        assert record["log"]["exception"] == f"error {record['log']['id']}"


async def test_entries_a_dead_consumer_left_pending_are_claimed_after_claim_idle(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, namespace: str, tmp_path: Path
) -> None:
    """Another consumer read 4 entries and died: they are not taken before --claim-idle,
    and are written (and acknowledged) by a tail once they have been idle that long."""
    prefix = f"{namespace}:claim"
    key = f"{prefix}:shop-1"
    entries = await _add(redis_client, key, range(1, 11))
    await redis_client.xgroup_create(key, GROUP, id="0")
    taken: Any = await redis_client.xreadgroup(GROUP, "died", {key: ">"}, count=4)
    assert len(taken[0][1]) == 4
    out = tmp_path / "tail.jsonl"
    base = (*_tail(redis_server.url, prefix, "--once", "--out", str(out)), "--consumer", "alive")
    first = await run(*base, env=base_env())
    assert first.code == 0, first.err
    assert [r["entry"] for r in _lines(out)] == entries[4:]
    assert await _pending(redis_client, key) == 4
    await asyncio.sleep(0.4)
    second = await run(*base, "--claim-idle", "0.3", env=base_env())
    assert second.code == 0, second.err
    assert sorted(r["entry"] for r in _lines(out)) == sorted(entries)
    assert await _pending(redis_client, key) == 0


async def test_start_now_skips_what_is_there_and_reads_what_comes(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, namespace: str, tmp_path: Path
) -> None:
    """--start now: a new group starts at the tail's start; later runs go on from there."""
    prefix = f"{namespace}:now"
    key = f"{prefix}:shop-1"
    await _add(redis_client, key, range(1, 6))
    out = tmp_path / "tail.jsonl"
    args = _tail(redis_server.url, prefix, "--once", "--out", str(out))
    first = await run(*args, "--start", "now", env=base_env())
    assert first.code == 0, first.err
    assert _lines(out) == []
    await _add(redis_client, key, [6, 7])
    second = await run(*args, env=base_env())
    assert second.code == 0, second.err
    assert [r["log"]["id"] for r in _lines(out)] == [6, 7]


async def test_entries_without_a_log_are_skipped_with_a_warning_and_acknowledged(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, namespace: str, tmp_path: Path
) -> None:
    """An entry with no ``log`` field, or one that is not a JSON object, is named on stderr
    and acknowledged (it can never be written); JSON spread over lines becomes one line."""
    prefix = f"{namespace}:odd"
    key = f"{prefix}:shop-1"
    await redis_client.xadd(key, {"other": b"x"})
    await redis_client.xadd(key, {"log": b"not json"})
    await redis_client.xadd(key, {"log": b"[1, 2]"})
    await redis_client.xadd(key, {"log": b'{\n  "id": 7,\n  "exception": "error 7"\n}'})
    out = tmp_path / "tail.jsonl"
    result = await run(
        *_tail(redis_server.url, prefix, "--once", "--out", str(out)), env=base_env()
    )
    assert result.code == 0, result.err
    assert [r["log"] for r in _lines(out)] == [{"id": 7, "exception": "error 7"}]
    assert out.read_bytes().count(b"\n") == 1
    skipped = [line for line in result.err_lines if "holds no log; skipped" in line]
    assert len(skipped) == 3
    assert all(key in line for line in skipped)
    assert await _pending(redis_client, key) == 0


async def test_an_unfinished_last_line_is_cut_off_with_a_warning(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, namespace: str, tmp_path: Path
) -> None:
    """A file a killed tail left with half a line: the half is cut, the rest is kept."""
    prefix = f"{namespace}:cut"
    await _add(redis_client, f"{prefix}:shop-1", [1, 2])
    out = tmp_path / "tail.jsonl"
    out.write_bytes(b'{"account":"old","entry":"1-0","log":{}}\n{"account":"sh')
    result = await run(
        *_tail(redis_server.url, prefix, "--once", "--out", str(out)), env=base_env()
    )
    assert result.code == 0, result.err
    assert "ended in an unfinished line (14 bytes" in result.err
    lines = _lines(out)
    assert [r["account"] for r in lines] == ["old", "shop-1", "shop-1"]


async def test_a_full_disk_is_one_error_line_and_the_entries_stay_pending(
    redis_server: RedisServer, redis_client: redis.asyncio.Redis, namespace: str
) -> None:
    """--out /dev/full: exit 1 with one line naming the file and the reason; nothing is
    acknowledged, so the next run reads the entries again."""
    assert Path("/dev/full").exists()  # noqa: ASYNC240  (a device, no I/O)
    prefix = f"{namespace}:full"
    key = f"{prefix}:shop-1"
    await _add(redis_client, key, range(1, 4))
    result = await run(
        *_tail(redis_server.url, prefix, "--once", "--out", "/dev/full"), env=base_env()
    )
    assert_one_error_line(
        result, 1, "cannot write /dev/full (appending 3 log lines): No space left on device"
    )
    assert await _pending(redis_client, key) == 3


async def test_a_second_tail_on_the_same_file_is_refused(
    redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """Two tails never write one file: the second stops with exit 2 before reading."""
    out = tmp_path / "tail.jsonl"
    args = _tail(redis_server.url, f"{namespace}:lock", "--out", str(out))
    first = await start(*args, env=base_env())
    try:
        await asyncio.sleep(1.5)
        second = await run(*args, "--once", env=base_env())
        assert_one_error_line(second, 2, f"another logs tail is writing {out}")
        first.send_signal(signal.SIGTERM)
        await asyncio.wait_for(first.communicate(), 10)
        assert first.returncode == 0
    finally:
        if first.returncode is None:
            first.kill()
            await first.wait()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((), "the following arguments are required: --redis"),
        (("--redis", "http://127.0.0.1/"), "--redis must be a redis://"),
        (("--redis", "redis://127.0.0.1:6379/abc"), "database must be a number"),
        (("--redis", "redis://127.0.0.1:6379/0", "--stream", "a b"), "stream_prefix must be"),
        (("--redis", "redis://127.0.0.1:6379/0", "--group", "a b"), "--group: must be"),
        (("--redis", "redis://127.0.0.1:6379/0", "--consumer", ""), "--consumer: must be"),
        (("--redis", "redis://127.0.0.1:6379/0", "--claim-idle", "0"), "--claim-idle"),
        (("--redis", "redis://127.0.0.1:6379/0", "--start", "later"), "--start: invalid choice"),
    ],
)
async def test_bad_options_are_one_usage_line(args: tuple[str, ...], needle: str) -> None:
    """Exit 2 with one line, before Redis is asked anything."""
    result = await run("logs", "tail", *args, env=base_env())
    assert_one_error_line(result, 2, needle)


async def test_out_naming_a_directory_is_refused(tmp_path: Path) -> None:
    """--out DIR: exit 2 with one line."""
    result = await run(
        "logs", "tail", "--redis", "redis://127.0.0.1:6379/0", "--out", str(tmp_path),
        env=base_env(),
    )  # fmt: skip
    assert_one_error_line(result, 2, "is a directory")


async def test_unreachable_redis_with_once_is_one_error_line() -> None:
    """Nothing listens: --once exits 1 with one line, quickly."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = await asyncio.wait_for(
        run("logs", "tail", "--redis", url, "--once", env=base_env()), 15
    )
    assert_one_error_line(result, 1, "Redis is unreachable")


@contextmanager
def _redis_with(tmp_path: Path, port: int, *extra: str) -> Iterator[None]:
    """A redis-server of this test's own on ``port`` (with options such as requirepass)."""
    process = subprocess.Popen(
        [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(tmp_path), *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        process.terminate()
        process.wait(5)


@asynccontextmanager
async def _answering(url: str) -> AsyncIterator[redis.asyncio.Redis]:
    client = redis.asyncio.Redis.from_url(url)
    try:
        for _ in range(500):
            try:
                await client.ping()
                break
            except (redis.ConnectionError, redis.AuthenticationError, redis.ResponseError):
                await asyncio.sleep(0.01)
        yield client
    finally:
        await client.aclose()


async def test_a_password_redis_wants_is_one_error_line_not_an_outage(tmp_path: Path) -> None:
    """Redis with requirepass and a URL without the password: exit 1 with one line within
    5 s, even without --once (no retrying what waiting cannot mend)."""
    port = free_port()
    with _redis_with(tmp_path, port, "--requirepass", "s3cret-pass"):
        async with _answering(f"redis://:s3cret-pass@127.0.0.1:{port}/0"):
            url = f"redis://127.0.0.1:{port}/0"
            result = await asyncio.wait_for(run("logs", "tail", "--redis", url, env=base_env()), 5)
    assert_one_error_line(result, 1, "Redis wants a password")
    assert "s3cret-pass" not in result.err


async def test_an_outage_is_waited_out_and_said(tmp_path: Path, namespace: str) -> None:
    """Redis not there yet: one warning, then the tail reads once Redis answers."""
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    prefix = f"{namespace}:outage"
    proc = await start(*_tail(url, prefix, "--scan-interval", "0.2"), env=base_env())
    try:
        await asyncio.sleep(2.0)
        with _redis_with(tmp_path, port):
            async with _answering(url) as client:
                await _add(client, f"{prefix}:shop-1", [1, 2])
                assert proc.stdout is not None
                lines = [await asyncio.wait_for(proc.stdout.readline(), 15) for _ in range(2)]
                proc.send_signal(signal.SIGTERM)
                _, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert [msgspec.json.decode(line)["log"]["id"] for line in lines] == [1, 2]
    text = err.decode()
    assert text.count("Redis is unreachable") == 1, text
    assert "Redis answers again" in text
