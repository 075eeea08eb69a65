"""Stopping ``sendcloud-async logs export`` at any moment: SIGKILL, SIGTERM, and resuming."""

from __future__ import annotations

import asyncio
import random
import signal
from pathlib import Path

from sendcloud_async._checkpoint import checkpoint_path
from sendcloud_async.testing import FakeSendcloud, Fault
from tests.functional.test_cli import (
    PUBLIC_KEY,
    SECRET_KEY,
    accounts_file,
    as_csv,
    assert_one_error_line,
    checkpoint,
    csv_rows,
    fake_env,
    ids,
    logged,
    run,
    start,
)


async def test_kill_at_twenty_moments_from_the_first_100_ms_then_resume(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """SIGKILL at 20 random moments (5 in the first 100 ms), --resume each time: same bytes."""
    fake.seed(integrations=3, logs_per_integration=1000, seed=21)
    env = fake_env(fake)
    args = ("logs", "export", "--page-size", "9")
    reference = tmp_path / "reference.jsonl"
    clean = await run(*args, "--out", str(reference), env=env)
    assert clean.code == 0, clean
    rng = random.Random(20251201)
    total = reference.stat().st_size
    # 15 moments spread over the file's growth (in order: each run continues the last),
    # and 5 in the first 100 ms of a run (before the command has even imported the SDK),
    # slotted in at random places.
    moments: list[tuple[str, float]] = [
        ("size", fraction) for fraction in sorted(rng.uniform(0.02, 0.95) for _ in range(15))
    ]
    for n in range(5):  # the first run of all is one of them: killed before any checkpoint
        where = 0 if n == 0 else rng.randrange(len(moments) + 1)
        moments.insert(where, ("time", rng.uniform(0, 0.1)))
    out = tmp_path / "logs.jsonl"
    killed = before_checkpoint = 0
    for kind, value in moments:
        # Always --resume, as a supervisor restarting the job would: it must work every time.
        proc = await start(
            *args, "--out", str(out), "--resume", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        if kind == "time":
            await asyncio.sleep(value)
        else:
            while proc.returncode is None:
                if out.exists() and out.stat().st_size >= value * total:
                    await asyncio.sleep(rng.uniform(0, 0.01))
                    break
                await asyncio.sleep(0.001)
        if proc.returncode is None:
            before_checkpoint += not checkpoint_path(out).exists()
            proc.kill()
            killed += 1
        assert await proc.wait() in (-signal.SIGKILL, 0)
    assert killed == 20
    assert before_checkpoint >= 1  # a kill came before the first checkpoint was written
    final = await run(*args, "--out", str(out), "--resume", env=env)
    assert final.code == 0, final
    assert out.read_bytes() == reference.read_bytes()
    assert ids(out) == [r["id"] for r in fake.logs]
    assert checkpoint(out).done


async def test_sigterm_stops_like_ctrl_c_with_exit_143(fake: FakeSendcloud, tmp_path: Path) -> None:
    """SIGTERM: exit 143, the --resume hint, file and checkpoint agree; resume finishes."""
    fake.seed(integrations=2, logs_per_integration=1500, seed=22)
    env = fake_env(fake)
    out = tmp_path / "logs.csv"
    args = ("logs", "export", "--out", str(out), "--page-size", "5")
    proc = await start(*args, env=env)
    for _ in range(5000):
        if checkpoint_path(out).exists() and checkpoint(out).records >= 100:
            break
        await asyncio.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 143, err
    lines = err.decode().splitlines()
    assert logged(lines[-1]) == ("WARNING", "interrupted; run again with --resume to continue")
    state = checkpoint(out)
    assert not state.done
    assert state.records >= 100
    assert state.offset == out.stat().st_size  # the page in hand was finished
    result = await run(*args, "--resume", env=env)
    assert result.code == 0, result
    assert f"resumed after {state.records:,} records" in result.out
    assert csv_rows(out) == [as_csv(r) for r in fake.logs]


async def test_many_accounts_sigterm_leaves_every_account_resumable(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """--accounts, SIGTERM while accounts export (two at once, one waiting its turn): exit
    143, every started account's file ends where its checkpoint says (the page in hand was
    finished), none is marked done; --resume completes each file exactly once."""
    fake.seed(integrations=2, logs_per_integration=600, seed=26)
    body = ""
    for n in range(3):
        fake.add_account(f"{PUBLIC_KEY}-{n}", SECRET_KEY)  # a rate budget each
        body += (
            f"[accounts.a{n}]\npublic_key = '{PUBLIC_KEY}-{n}'\n"
            f"secret_key = '{SECRET_KEY}'\nbase_url = '{fake.base_url}'\n\n"
        )
    accounts = accounts_file(tmp_path / "accounts.toml", body)
    out_dir = tmp_path / "out"
    args: tuple[str, ...] = ("logs", "export", "--accounts", str(accounts), "--format", "csv")
    args += ("--out-dir", str(out_dir), "--page-size", "5", "--concurrency", "2")
    proc = await start(*args, env=fake_env(fake))
    outs = [out_dir / f"a{n}.csv" for n in range(3)]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        started = [out for out in outs if checkpoint_path(out).exists()]
        if len(started) == 2 and all(checkpoint(out).records >= 50 for out in started):
            break
        await asyncio.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 143, err
    lines = err.decode().splitlines()
    assert logged(lines[-1]) == ("WARNING", "interrupted; run again with --resume to continue")
    started = [out for out in outs if checkpoint_path(out).exists()]
    assert len(started) == 2  # the third was waiting for a free slot
    for out in started:
        state = checkpoint(out)
        assert not state.done
        assert state.records >= 50
        assert state.offset == out.stat().st_size
    result = await run(*args, "--resume", env=fake_env(fake))
    assert result.code == 0, result
    for out in outs:
        assert csv_rows(out) == [as_csv(r) for r in fake.logs]
        assert checkpoint(out).done


async def test_sigterm_before_any_request_exits_143(fake: FakeSendcloud, tmp_path: Path) -> None:
    """SIGTERM while the first request waits for its answer: exit 143, resumable from nothing."""
    fake.seed(integrations=1, logs_per_integration=20, seed=23)
    fake.inject("GET", "/integrations/logs", Fault.delay(30))
    out = tmp_path / "logs.jsonl"
    proc = await start("logs", "export", "--out", str(out), env=fake_env(fake))
    for _ in range(3000):
        if fake.requests:
            break
        await asyncio.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 143, err
    assert logged(err.decode().splitlines()[-1]) == (
        "WARNING",
        "interrupted; run again with --resume to continue",
    )
    assert checkpoint(out).records == 0
    fake.clear_faults()
    result = await run("logs", "export", "--out", str(out), "--resume", env=fake_env(fake))
    assert result.code == 0, result
    assert ids(out) == [r["id"] for r in fake.logs]


async def test_rerun_refuses_to_clobber_an_unfinished_export(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Without --resume or --restart an unfinished export is kept (exit 2); --restart redoes it."""
    fake.seed(integrations=1, logs_per_integration=50, seed=24)
    fake.inject("GET", "/integrations/logs", Fault.delay(0), Fault.status(500))
    out = tmp_path / "logs.jsonl"
    args = ("logs", "export", "--out", str(out), "--page-size", "10", "--max-retries", "0")
    failed = await run(*args, env=fake_env(fake))
    assert failed.code == 1, failed
    before = out.read_bytes()
    assert len(before.splitlines()) == 10
    fake.clear_requests()
    refused = await run(*args, env=fake_env(fake))
    assert_one_error_line(refused, 2, "unfinished export", "10 records", "--resume", "--restart")
    assert fake.requests == []
    assert out.read_bytes() == before
    restarted = await run(*args, "--restart", env=fake_env(fake))
    assert restarted.code == 0, restarted
    assert "resumed" not in restarted.out
    assert ids(out) == [r["id"] for r in fake.logs]
    again = await run(*args, env=fake_env(fake))  # a finished export is replaced quietly
    assert again.code == 0, again
    both = await run(*args, "--resume", "--restart", env=fake_env(fake))
    assert_one_error_line(both, 2, "--resume and --restart")


async def test_many_accounts_refuse_to_clobber_unfinished_files(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """--accounts: an account's unfinished file is refused by name before any request."""
    fake.seed(integrations=1, logs_per_integration=5, seed=25)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f"[accounts.a]\npublic_key = 'fake-public-key'\nsecret_key = 'fake-secret-key'\n"
        f"base_url = '{fake.base_url}'\n"
    )
    accounts.chmod(0o600)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "a.jsonl").write_text("")
    checkpoint_path(out_dir / "a.jsonl").write_text("{damaged")
    result = await run(
        "logs", "export", "--accounts", str(accounts), "--out-dir", str(out_dir),
        env=fake_env(fake),
    )  # fmt: skip
    assert_one_error_line(result, 2, "account a: ", "unfinished export", "damaged")
    assert fake.requests == []
