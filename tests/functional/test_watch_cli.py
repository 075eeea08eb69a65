"""``sendcloud-async logs watch``: the installed console script, killed and stopped for real."""

from __future__ import annotations

import asyncio
import fcntl
import os
import random
import signal
from collections import Counter
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from sendcloud_async._watch_files import WatchFile, state_path
from sendcloud_async.testing import FakeSendcloud
from tests.functional.test_cli import base_env, fake_env, run, start


@pytest.fixture
async def tied() -> AsyncIterator[FakeSendcloud]:
    """A FakeSendcloud whose logs may share a created_at."""
    async with FakeSendcloud(validate_spec=True, unique_log_times=False) as server:
        yield server
        assert server.spec_violations == []


def ids_in(path: Path) -> list[int]:
    """The ``id`` of every line of a JSON Lines file."""
    return [msgspec.json.decode(line)["id"] for line in path.read_bytes().splitlines()]


async def feed(fake: FakeSendcloud, rng: random.Random) -> None:
    """New logs every few milliseconds; about a third share the newest created_at."""
    while True:
        await asyncio.sleep(rng.uniform(0.005, 0.03))
        newest = max(datetime.fromisoformat(r["created_at"]) for r in fake.logs)
        step = rng.choice((timedelta(0), timedelta(microseconds=1), timedelta(seconds=1)))
        ties = sum(1 for r in fake.logs[-10:] if datetime.fromisoformat(r["created_at"]) == newest)
        if ties >= 5:
            step = timedelta(seconds=1)
        fake.add_log(rng.choice((1, 2)), created_at=(newest + step).isoformat())


async def test_ten_sigkills_while_logs_come_leave_every_log_exactly_once(
    tied: FakeSendcloud, tmp_path: Path
) -> None:
    """SIGKILL at 10 random moments, each followed by a restart: each log in the file once."""
    tied.seed(integrations=2, logs_per_integration=40)
    rng = random.Random(14)
    out = tmp_path / "logs.jsonl"
    args = ("logs", "watch", "--out", str(out), "--start", "all", "--page-size", "7")
    feeder = asyncio.create_task(feed(tied, rng))
    try:
        for kill in range(10):
            proc = await start(
                *args, "--interval", "0.05", env=fake_env(tied), stdout=None, stderr=None
            )
            if kill == 0:  # the first kill lands after a commit, however slow the start
                for _ in range(300):
                    if state_path(out).exists():
                        break
                    await asyncio.sleep(0.1)
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            proc.send_signal(signal.SIGKILL)
            assert await proc.wait() == -signal.SIGKILL
    finally:
        feeder.cancel()
    assert state_path(out).exists()
    assert len(tied.logs) > 80 + 50  # logs kept coming while it was being killed
    done = await run(*args, "--once", env=fake_env(tied))
    assert done.code == 0, done.err
    written = ids_in(out)
    assert Counter(written) == Counter(r["id"] for r in tied.logs)
    saved = msgspec.json.decode(state_path(out).read_bytes(), type=WatchFile)
    assert saved.offset == out.stat().st_size
    assert saved.records == len(written)


async def test_sigterm_stops_cleanly_with_the_state_saved(
    tied: FakeSendcloud, tmp_path: Path
) -> None:
    """SIGTERM: the batch in hand finishes, the state is saved, exit status 0."""
    tied.seed(integrations=2, logs_per_integration=300)
    out = tmp_path / "logs.jsonl"
    proc = await start(
        "logs", "watch", "--out", str(out), "--start", "all", "--page-size", "5",
        "--interval", "0.05", env=fake_env(tied),
    )  # fmt: skip
    for _ in range(200):
        if state_path(out).exists():
            break
        await asyncio.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    assert "stopped; every log written so far is saved" in err.decode()
    saved = msgspec.json.decode(state_path(out).read_bytes(), type=WatchFile)
    assert saved.offset == out.stat().st_size
    assert saved.records == len(ids_in(out))
    rest = await run("logs", "watch", "--out", str(out), "--once", env=fake_env(tied))
    assert rest.code == 0, rest.err
    assert ids_in(out) == [r["id"] for r in tied.logs]


async def test_once_appends_only_new_logs_and_reports_health(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """--once twice: the second run appends only what is new; transitions on stderr and FILE."""
    fake.seed(integrations=2, logs_per_integration=4)
    out = tmp_path / "logs.jsonl"
    events = tmp_path / "events.jsonl"
    args = ("logs", "watch", "--out", str(out), "--once", "--events", str(events))
    first = await run(*args, "--start", "all", env=fake_env(fake))
    assert first.code == 0, first.err
    assert ids_in(out) == [r["id"] for r in fake.logs]
    fake.add_log(1)
    fake.integrations[2]["started_failing_at"] = None
    fake.start_failing(1)
    second = await run(*args, env=fake_env(fake))
    assert second.code == 0, second.err
    assert ids_in(out) == [r["id"] for r in fake.logs]
    assert "appended 1 new logs (9 in all)" in second.out
    lines = [line for line in second.err_lines if "integration 1" in line]
    assert len(lines) == 1
    assert "started failing at" in lines[0]
    recorded = [msgspec.json.decode(line) for line in events.read_bytes().splitlines()]
    assert [(e["event"], e["integration_id"]) for e in recorded][-1] == ("integration_failing", 1)
    third = await run(*args, env=fake_env(fake))
    assert third.code == 0
    assert not any("integration 1" in line for line in third.err_lines)


async def test_many_accounts_each_get_their_file(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--accounts: DIR/NAME.jsonl per account with its state; a bad account fails the run."""
    fake.seed(integrations=3, logs_per_integration=5)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f"""
[accounts.shop-a]
public_key = "fake-public-key"
secret_key = "fake-secret-key"
base_url = "{fake.base_url}"

[accounts.shop-three]
public_key = "fake-public-key"
secret_key = "fake-secret-key"
base_url = "{fake.base_url}"
integration = 3

[accounts.shop-wrong]
public_key = "fake-public-key"
secret_key = "wrong"
base_url = "{fake.base_url}"
"""
    )
    accounts.chmod(0o600)
    out_dir = tmp_path / "out"
    result = await run(
        "logs", "watch", "--accounts", str(accounts), "--out-dir", str(out_dir),
        "--start", "all", "--once", "--max-retries", "0", env=base_env(),
    )  # fmt: skip
    assert result.code == 1
    assert "account shop-wrong: poll failed:" in result.err
    assert ids_in(out_dir / "shop-a.jsonl") == [r["id"] for r in fake.logs]
    assert ids_in(out_dir / "shop-three.jsonl") == [
        r["id"] for r in fake.logs if r["integration_id"] == 3
    ]
    assert ids_in(out_dir / "shop-wrong.jsonl") == []


async def test_accounts_on_two_servers_and_a_watcher_that_stops_the_run(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Accounts on two base URLs (a watcher each, on one runner): each file gets its own
    server's logs. A watcher stopped by an error (its --events line cannot be written: a
    full disk) stops the other at once: exit 1, one line; every state matches its file."""
    fake.seed(integrations=2, logs_per_integration=4, seed=41)
    async with FakeSendcloud() as other:
        other.seed(integrations=3, logs_per_integration=3, seed=42)
        accounts = tmp_path / "accounts.toml"
        accounts.write_text(
            f"[accounts.here]\npublic_key = 'fake-public-key'\nsecret_key = 'fake-secret-key'\n"
            f"base_url = '{fake.base_url}'\n\n"
            f"[accounts.there]\npublic_key = 'fake-public-key'\n"
            f"secret_key = 'fake-secret-key'\nbase_url = '{other.base_url}'\nintegration = 2\n"
        )
        accounts.chmod(0o600)
        out_dir = tmp_path / "out"
        args: tuple[str, ...] = ("logs", "watch", "--accounts", str(accounts))
        args += ("--out-dir", str(out_dir), "--start", "all", "--interval", "60")
        once = await run(*args, "--once", env=base_env())
        assert once.code == 0, once
        assert ids_in(out_dir / "here.jsonl") == [r["id"] for r in fake.logs]
        assert ids_in(out_dir / "there.jsonl") == [
            r["id"] for r in other.logs if r["integration_id"] == 2
        ]
        other.start_failing(2)
        fake.add_log(1)
        began = asyncio.get_running_loop().time()
        stopped = await asyncio.wait_for(run(*args, "--events", "/dev/full", env=base_env()), 30)
        assert asyncio.get_running_loop().time() - began < 20  # not the next poll's 60 s
        assert stopped.code == 1, stopped
        assert "No space left on device" in stopped.err_lines[-1]
        for name in ("here", "there"):
            out = out_dir / f"{name}.jsonl"
            saved = msgspec.json.decode(state_path(out).read_bytes(), type=WatchFile)
            assert saved.offset == out.stat().st_size
            assert saved.records == len(ids_in(out))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--out", "x.jsonl", "--start", "yesterday"), "not now, all or an ISO 8601 date-time"),
        (("--out", "x.jsonl", "--start", "2024-01-01T00:00:00"), "start must be an aware"),
        (("--out", "x.jsonl", "--interval", "-1"), "positive number of seconds"),
        (("--out", "x.jsonl", "--accounts", "a.toml"), "say where to write"),
        (("--out", "-"), "--out needs a file"),
        (("--accounts", "a.toml"), "--accounts needs --out-dir DIR"),
    ],
)
async def test_bad_usage_exits_2_before_any_request(
    fake: FakeSendcloud, tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    """Each bad option: exit 2, one error line naming it, no request."""
    os.chdir(tmp_path)
    result = await run("logs", "watch", *args, env=fake_env(fake))
    assert result.code == 2
    assert message in result.err
    assert fake.requests == []


async def test_a_damaged_state_file_is_refused_before_any_request(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A state file that does not decode: exit 2 naming it; the output is left untouched."""
    out = tmp_path / "logs.jsonl"
    out.write_bytes(b'{"id": 1}\n')
    state_path(out).write_bytes(b"{half")
    result = await run("logs", "watch", "--out", str(out), "--once", env=fake_env(fake))
    assert result.code == 2
    assert f"the watch state {state_path(out)} is damaged" in result.err
    assert out.read_bytes() == b'{"id": 1}\n'
    assert fake.requests == []


@pytest.mark.parametrize("once", [True, False], ids=["once", "until-stopped"])
async def test_a_state_file_with_an_unreadable_log_watch_is_a_usage_error(
    fake: FakeSendcloud, tmp_path: Path, once: bool
) -> None:
    """A state file whose inner log watch this release cannot read (a newer release's):
    exit 2 at once, with and without --once, one line naming the file; nothing sent, the
    output and its state left as they were."""
    fake.seed(integrations=1, logs_per_integration=3)
    out = tmp_path / "logs.jsonl"
    first = await run("logs", "watch", "--out", str(out), "--start", "all", "--once",
                      env=fake_env(fake))  # fmt: skip
    assert first.code == 0, first
    saved = msgspec.json.decode(state_path(out).read_bytes())
    saved["state"]["logs"]["version"] = 3
    state_path(out).write_bytes(msgspec.json.encode(saved))
    before = (out.read_bytes(), state_path(out).read_bytes())
    fake.clear_requests()
    result = await asyncio.wait_for(
        run("logs", "watch", "--out", str(out), *(["--once"] if once else []),
            env=fake_env(fake)),
        30,
    )  # fmt: skip
    assert result.code == 2, result
    assert result.err_lines == [
        f"sendcloud-async: error: the watch state {state_path(out)} holds an unreadable log "
        "watch (state is not a valid WatchState: version 3; this sendcloud-async reads "
        "versions 1 and 2); move it away to start over"
    ]
    assert fake.requests == []
    assert (out.read_bytes(), state_path(out).read_bytes()) == before


@pytest.mark.parametrize("log_format", ["text", "json"])
async def test_with_once_a_failed_poll_says_it_is_not_retried(
    fake: FakeSendcloud, tmp_path: Path, log_format: str
) -> None:
    """--once and credentials the server refuses: the poll_failed line says the account
    is not retried (no "retrying in"), its JSON has retry_in null; exit 1."""
    env = fake_env(fake)
    env["SENDCLOUD_SECRET_KEY"] = "wrong"
    out = tmp_path / "logs.jsonl"
    result = await run(
        "logs", "watch", "--out", str(out), "--once", "--max-retries", "0",
        "--log-format", log_format, env=env,
    )  # fmt: skip
    assert result.code == 1, result
    assert "retrying" not in result.err
    if log_format == "text":
        (line,) = [line for line in result.err_lines if " poll failed: " in line]
        assert line.endswith("; not retried (--once)"), line
    else:
        records = [msgspec.json.decode(line) for line in result.err_lines]
        (failed,) = [r for r in records if r["event"] == "poll_failed"]
        assert failed["message"].startswith("poll failed: "), failed
        assert failed["message"].endswith("; not retried (--once)"), failed
        assert (failed["failures"], failed["retry_in"]) == (1, None)
    assert out.read_bytes() == b""


async def test_a_file_locked_by_another_watch_is_refused(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Another process holds the output's lock: exit 2, nothing sent, nothing written."""
    out = tmp_path / "logs.jsonl"
    with out.open("wb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = await run("logs", "watch", "--out", str(out), "--once", env=fake_env(fake))
    assert result.code == 2
    assert f"another watch is writing {out} (it is locked)" in result.err
    assert out.read_bytes() == b""
    assert not state_path(out).exists()
    assert fake.requests == []


async def test_an_output_shorter_than_its_state_is_refused(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A file cut behind the watch's back: exit 2 naming both sizes; no request."""
    fake.seed(integrations=1, logs_per_integration=3)
    out = tmp_path / "logs.jsonl"
    first = await run("logs", "watch", "--out", str(out), "--once", "--start", "all",
                      env=fake_env(fake))  # fmt: skip
    assert first.code == 0, first.err
    size = out.stat().st_size
    out.write_bytes(b"")
    fake.clear_requests()
    result = await run("logs", "watch", "--out", str(out), "--once", env=fake_env(fake))
    assert result.code == 2
    assert f"{out} has 0 bytes but its watch state says {size:,} were written" in result.err
    assert fake.requests == []


async def test_a_batch_written_without_its_state_is_dropped_on_restart(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A kill between the page write and the state write: the restart cuts the page away."""
    fake.seed(integrations=1, logs_per_integration=3)
    out = tmp_path / "logs.jsonl"
    args = ("logs", "watch", "--out", str(out), "--once")
    assert (await run(*args, "--start", "all", env=fake_env(fake))).code == 0
    committed = out.read_bytes()
    fake.add_log(1)
    with out.open("ab") as torn:  # what a killed run leaves: logs beyond the saved offset
        torn.write(b'{"id": 4, "base_url": "https://torn.example"}\n{"id": 5, "ba')
    result = await run(*args, env=fake_env(fake))
    assert result.code == 0, result.err
    assert out.read_bytes().startswith(committed)
    assert ids_in(out) == [1, 2, 3, 4]
    assert b"torn.example" not in out.read_bytes()
