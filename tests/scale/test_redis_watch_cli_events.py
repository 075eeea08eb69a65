"""``logs watch --redis``: every state change reaches ``--events`` and stderr; cut paths.

Console-script workers against a real ``redis-server`` and a ``FakeSendcloud``, with
``TcpProxy`` (a TCP proxy on 127.0.0.1) on the path a test breaks.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from sendcloud_async.testing import FakeSendcloud
from tests._wait import until
from tests.functional.test_cli import base_env, start

from ._proxy import TcpProxy
from .conftest import RedisServer
from .test_redis_watch_liveness import PolledFake

#: Both tests bound how long a takeover or an outage report takes: run them alone.
pytestmark = pytest.mark.alone

LEASE = 1.0
INTERVAL = 0.2


def _accounts_file(path: Path, base_url: str, count: int) -> Path:
    tables = [
        f'[accounts.shop-{n}]\npublic_key = "pk-{n}"\nsecret_key = "sk-{n}"\n'
        f'base_url = "{base_url}"\nintegration = {n}\n'
        for n in range(1, count + 1)
    ]
    path.write_text("\n".join(tables), encoding="utf-8")
    path.chmod(0o600)
    return path


def _events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _held(path: Path) -> set[str]:
    """The accounts a worker holds, from its --events file."""
    held: set[str] = set()
    for record in _events(path):
        if record["event"] in ("lease_claimed", "lease_taken_over"):
            held.add(record["account"])
        elif record["event"].startswith("lease_"):
            held.discard(record["account"])
    return held


async def _settle(*journals: Path, limit: float = 20) -> None:
    """Wait until the workers hold all four accounts between them and nothing has moved for
    two leases (rendezvous hand-overs and adoptions are over)."""
    started = time.monotonic()
    while True:
        before = [_held(journal) for journal in journals]
        await asyncio.sleep(2 * LEASE)
        after = [_held(journal) for journal in journals]
        if before == after and sum(len(held) for held in after) == 4:
            return
        assert time.monotonic() - started < limit, ("settled", after)


def _worker_args(accounts: Path, redis_url: str, prefix: str, events: Path) -> tuple[str, ...]:
    return (
        "logs", "watch", "--accounts", str(accounts), "--redis", redis_url, "--stream", prefix,
        "--lease", str(LEASE), "--interval", str(INTERVAL), "--start", "all",
        "--max-retries", "0", "--events", str(events), "--log-format", "json",
        "--status-interval", "0.2",
    )  # fmt: skip


async def _stop(process: asyncio.subprocess.Process) -> tuple[int, list[dict[str, Any]]]:
    """SIGTERM, then its exit status and its stderr's JSON lines."""
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode is not None
    return process.returncode, [json.loads(line) for line in err.decode().splitlines()]


async def test_a_worker_cut_off_from_sendcloud_gives_up_and_the_other_takes_over(
    redis_server: RedisServer, tmp_path: Path, namespace: str
) -> None:
    """A's path to the fake breaks: A reports the failures and gives its accounts up, B
    adopts them naming A and polls them within the bound; all of it in --events and on
    stderr (JSON lines); both exit 0 on SIGTERM."""
    async with PolledFake(validate_spec=False) as fake, TcpProxy(fake.port) as proxy:
        fake.seed(integrations=4, logs_per_integration=2)
        for n in range(1, 5):
            fake.add_account(f"pk-{n}", f"sk-{n}")
        prefix = f"{namespace}:cli"
        a_events, b_events = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
        a_accounts = _accounts_file(tmp_path / "a.toml", proxy.url + "/api/v3", 4)
        b_accounts = _accounts_file(tmp_path / "b.toml", fake.base_url, 4)
        a = await start(
            *_worker_args(a_accounts, redis_server.url, prefix, a_events), env=base_env()
        )
        b = await start(
            *_worker_args(b_accounts, redis_server.url, prefix, b_events), env=base_env()
        )
        try:
            for _ in range(5):
                # Settled: each holds what it owns (rendezvous hashing of the random worker
                # ids). A must own some (1 chance in 16 it owns none: B starts again).
                await asyncio.sleep(LEASE)
                await _settle(a_events, b_events)
                if _held(a_events):
                    break
                b.send_signal(signal.SIGTERM)
                await asyncio.wait_for(b.communicate(), 20)
                b_events.unlink()
                b = await start(
                    *_worker_args(b_accounts, redis_server.url, prefix, b_events), env=base_env()
                )
            await asyncio.sleep(0.5)
            cut_off = sorted(_held(a_events))
            proxy.cut()
            cut_at = time.monotonic()
            # max(interval + lease / 2, stall_after = 2 × lease) + lease / 2, and slack for
            # two processes, the fake and Redis sharing 2 cores.
            bound = max(INTERVAL + LEASE / 2, 2 * LEASE) + LEASE / 2

            def polled() -> bool:
                return all(
                    any(t > cut_at for t in fake.polls[int(name.split("-")[1])]) for name in cut_off
                )

            took = await until(polled, bound + 5, "B polls A's accounts")
            assert took <= bound + 1.5, (took, bound)
            await until(lambda: len(_held(b_events)) == 4, 5, "B holds all four")
        finally:
            proxy.heal()
            a_code, a_err = await _stop(a)
            b_code, b_err = await _stop(b)
    assert (a_code, b_code) == (0, 0), (a_err[-3:], b_err[-3:])
    a_records, b_records = _events(a_events), _events(b_events)
    a_worker = next(r["worker"] for r in a_records)
    failing = [r for r in a_records if r["event"] == "account_failing"]
    assert sorted(r["account"] for r in failing) == cut_off
    assert all("APIConnectionError" in r["detail"] for r in failing)
    assert all(r["detail"].startswith(f"{r['error']}: ") for r in failing)  # error: the class
    given_up = [r for r in a_records if r["event"] == "lease_given_up"]
    assert sorted(r["account"] for r in given_up) == cut_off
    adopted = [r for r in b_records if r["event"] == "lease_taken_over"]
    assert sorted(r["account"] for r in adopted) == cut_off
    assert {(r["how"], r["previous"]) for r in adopted} == {("adopted", a_worker)}
    for record in (*a_records, *b_records):  # every record: its name, who saw it, when
        assert {"event", "worker", "seen_at"} <= record.keys()
    # stderr: the same state changes as JSON log lines (warnings for the failures).
    a_lines = {line["event"]: line for line in a_err}
    assert a_lines["account_failing"]["level"] == "warning"
    assert a_lines["lease_given_up"]["level"] == "warning"
    assert "given up: its polls kept failing" in a_lines["lease_given_up"]["message"]
    b_taken = [line for line in b_err if line["event"] == "lease_taken_over"]
    assert sorted(line["account"] for line in b_taken) == cut_off
    assert all(f"taken over from worker {a_worker}" in line["message"] for line in b_taken)
    assert not any(line["event"] == "lease_claimed" for line in b_err)  # only with -v
    assert a_err[-1]["event"] == b_err[-1]["event"] == "stopped"


async def test_the_status_says_since_when_redis_is_unreachable_and_then_that_it_is_back(
    fake: FakeSendcloud, redis_server: RedisServer, tmp_path: Path, namespace: str
) -> None:
    """The worker's path to Redis breaks: a warning, the status "Redis unreachable since
    HH:MM:SS" until it is back, then once "Redis answers again after N s"."""
    port = int(redis_server.url.rsplit(":", 1)[1].split("/")[0])
    for n in range(1, 3):
        fake.add_account(f"pk-{n}", f"sk-{n}")
    fake.seed(integrations=2, logs_per_integration=1)
    accounts = _accounts_file(tmp_path / "accounts.toml", fake.base_url, 2)
    events = tmp_path / "events.jsonl"
    async with TcpProxy(port) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        worker = await start(
            *_worker_args(accounts, url, f"{namespace}:cli", events), env=base_env()
        )
        try:
            await until(lambda: len(_held(events)) == 2, 20, "both accounts held")
            proxy.cut()
            await until(lambda: any(r["event"] == "redis_down" for r in _events(events)), 5, "down")
            await asyncio.sleep(1.5)
            proxy.heal()
            await until(lambda: any(r["event"] == "redis_up" for r in _events(events)), 10, "up")
            await until(lambda: len(_held(events)) == 2, 10, "both held again")
            await asyncio.sleep(0.5)
        finally:
            code, err = await _stop(worker)
    assert code == 0, err[-3:]
    records = _events(events)
    (down,) = [r for r in records if r["event"] == "redis_down"]
    (up,) = [r for r in records if r["event"] == "redis_up"]
    assert up["since"] == down["since"]
    assert 1.0 <= up["down_for"] < 15
    names = [line["event"] for line in err]
    assert names.count("redis_down") == 1
    assert names.count("redis_up") == 1
    (down_line,) = [line for line in err if line["event"] == "redis_down"]
    assert down_line["level"] == "warning"
    assert down_line["message"].count("unreachable") == 1
    statuses = [line for line in err if line["event"] == "status"]
    unreachable = [s for s in statuses if "Redis unreachable since" in s["message"]]
    assert unreachable, [s["message"] for s in statuses]
    clock = re.search(r"Redis unreachable since (\d\d:\d\d:\d\d)", unreachable[0]["message"])
    assert clock is not None
    assert unreachable[0]["redis_unreachable_since"] is not None
    after = statuses[statuses.index(unreachable[-1]) + 1 :]
    assert after, "a status once Redis is back"
    assert all("unreachable" not in s["message"] for s in after)
    (up_line,) = [line for line in err if line["event"] == "redis_up"]
    assert up_line["message"].startswith("Redis answers again after")
    assert f"(unreachable since {clock.group(1)})" in up_line["message"]
