"""``sendcloud-async logs watch --accounts FILE --redis URL``: the console script, two workers."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio

from sendcloud_async.testing import FakeSendcloud
from tests.functional.test_cli import base_env, run, start

from .conftest import RedisServer


def _accounts_file(tmp_path: Path, fake: FakeSendcloud, count: int) -> Path:
    path = tmp_path / "accounts.toml"
    tables = []
    for n in range(count):
        fake.add_account(f"pk-{n}", f"sk-{n}")
        tables.append(
            f'[accounts.shop-{n}]\npublic_key = "pk-{n}"\nsecret_key = "sk-{n}"\n'
            f'base_url = "{fake.base_url}"\n'
        )
    path.write_text("\n".join(tables), encoding="utf-8")
    path.chmod(0o600)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--out-dir", "x"), "--out-dir cannot be used with --redis"),
        (("--once",), "--once cannot be used with --redis"),
        (("--stream", "a b"), "stream_prefix must be 1 to 100 letters"),
    ],
)
async def test_options_that_do_not_go_with_redis_are_refused(
    fake: FakeSendcloud, redis_server: RedisServer, tmp_path: Path, extra: Any, message: str
) -> None:
    """Exit 2 with the reason, before any request."""
    accounts = _accounts_file(tmp_path, fake, 1)
    args = ("logs", "watch", "--accounts", str(accounts), "--redis", redis_server.url, *extra)
    result = await run(*args, env=base_env())
    assert result.code == 2, result.err
    assert message in result.err
    assert fake.requests == []


async def test_redis_options_need_redis_and_accounts(tmp_path: Path) -> None:
    """--stream without --redis, --redis without --accounts, a non-Redis URL: exit 2."""
    for args, message in (
        (("--out", str(tmp_path / "x.jsonl"), "--stream", "p"), "--stream goes with --redis"),
        (("--redis", "redis://127.0.0.1:1/0"), "--redis needs --accounts"),
        (
            ("--accounts", str(tmp_path / "a.toml"), "--redis", "http://127.0.0.1/"),
            "--redis must be a redis://",
        ),
    ):
        result = await run("logs", "watch", *args, env=base_env())
        assert result.code == 2, result.err
        assert message in result.err


async def test_two_workers_split_the_accounts_and_write_every_log_once(
    fake: FakeSendcloud, redis_server: RedisServer, tmp_path: Path, namespace: str
) -> None:
    """Two CLI workers, 4 accounts: every log once per account's stream; SIGTERM exits 0."""
    fake.seed(integrations=2, logs_per_integration=10)
    accounts = _accounts_file(tmp_path, fake, 4)
    prefix = f"{namespace}:cli"
    args = (
        "logs",
        "watch",
        "--accounts",
        str(accounts),
        "--redis",
        redis_server.url,
        "--stream",
        prefix,
        "--lease",
        "1",
        "--interval",
        "0.2",
        "--start",
        "all",
        "--status-interval",  # off a terminal the status is a line at most this often
        "0.5",
    )
    journals = [tmp_path / f"events-{n}.jsonl" for n in range(2)]
    workers = [await start(*args, "--events", str(j), env=base_env()) for j in journals]
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        await asyncio.sleep(1.5)
        for n in range(3):
            fake.add_log(1 + n % 2, base_url="https://shop.example")
        expected = [log["id"] for log in fake.logs]
        for _ in range(100):
            lengths = [await client.xlen(f"{prefix}:shop-{n}") for n in range(4)]
            if lengths == [len(expected)] * 4:
                break
            await asyncio.sleep(0.1)
        # The holdings are settled: give the status line (one at most every 0.5 s, off a
        # terminal) time to show them before the stop (a slow start can take the rest).
        await asyncio.sleep(1.5)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        outputs = [await asyncio.wait_for(w.communicate(), 20) for w in workers]
        for n in range(4):
            entries: Any = await client.xrange(f"{prefix}:shop-{n}")
            assert [msgspec.json.decode(f[b"log"])["id"] for _, f in entries] == expected
        leases = [k async for k in client.scan_iter(f"sendcloud-async:watch:{{{prefix}:*}}:lease")]
        assert leases == []
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        await client.aclose()
    held: list[set[str]] = []
    for worker, journal, (_, err) in zip(workers, journals, outputs, strict=True):
        assert worker.returncode == 0, err.decode()
        assert "stopped; leases released" in err.decode()
        assert re.search(r"holding \d/4 accounts", err.decode())  # the status line
        held.append(_held_at_stop(journal))
    # Each worker held what it owns when stopped: together all four, none twice.
    assert sorted(held[0] | held[1]) == [f"shop-{n}" for n in range(4)], held
    assert not held[0] & held[1], held
    assert fake.throttled == 0


def _held_at_stop(journal: Path) -> set[str]:
    """The accounts a worker held when its stop began, replayed from its ``--events`` file."""
    held: set[str] = set()
    for line in journal.read_text().splitlines():
        record = json.loads(line)
        event, account = record["event"], record.get("account")
        if record.get("reason") == "stop":
            break
        if event in ("lease_claimed", "lease_taken_over"):
            held.add(account)
        elif event.startswith("lease_"):
            held.discard(account)
    return held
