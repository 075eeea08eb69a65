"""``sendcloud-async logs export --per-integration``: the installed script, as a subprocess."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import Counter
from pathlib import Path

import msgspec

from sendcloud_async._checkpoint import checkpoint_path
from sendcloud_async._export_walks import LISTING, WalksCheckpoint
from sendcloud_async.testing import FakeSendcloud

from .test_cli import (
    PUBLIC_KEY,
    SECRET_KEY,
    as_jsonl,
    assert_one_error_line,
    base_env,
    fake_env,
    ids,
    jsonl_records,
    logged,
    run,
    start,
)


def lines(path: Path) -> list[bytes]:
    """The file's lines (one log each)."""
    return path.read_bytes().splitlines()


def walks_checkpoint(out: Path) -> WalksCheckpoint:
    """The per-integration checkpoint beside ``out``."""
    return msgspec.json.decode(checkpoint_path(out).read_bytes(), type=WalksCheckpoint)


def union_of_listings(fake: FakeSendcloud) -> dict[int, list[int]]:
    """Each integration's logs in its listing's order (the fake lists by ``created_at``)."""
    groups: dict[int, list[int]] = {i: [] for i in fake.integrations}
    for record in fake.logs:
        groups[record["integration_id"]].append(record["id"])
    return groups


def by_integration(path: Path) -> dict[int, list[int]]:
    """The file's log ids grouped by integration, in file order."""
    groups: dict[int, list[int]] = {}
    for line in lines(path):
        item = msgspec.json.decode(line)
        groups.setdefault(item["integration_id"], []).append(item["id"])
    return groups


async def test_per_integration_export_is_the_union_of_the_listings(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Every integration's logs once, each in its listing's order; the summary names the walks."""
    fake.seed(integrations=5, logs_per_integration=90, seed=21)
    out = tmp_path / "logs.jsonl"
    result = await run(
        "logs", "export", "--out", str(out), "--per-integration", "--concurrency", "3",
        "--page-size", "8", env=fake_env(fake),
    )  # fmt: skip
    assert result.code == 0, result
    assert by_integration(out) == {i: v for i, v in union_of_listings(fake).items() if v}
    assert Counter(ids(out)) == Counter(r["id"] for r in fake.logs)
    assert sorted(jsonl_records(out), key=lambda r: r["id"]) == sorted(
        (as_jsonl(r) for r in fake.logs), key=lambda r: r["id"]
    )
    assert "exported 450 records" in result.out
    assert "5 integrations walked side by side" in result.out
    logs_paths = {r.path for r in fake.requests} - {"/integrations"}
    assert logs_paths == {f"/integrations/{i}/logs" for i in range(1, 6)}
    state = walks_checkpoint(out)
    assert state.done
    assert state.query.listing == LISTING


async def test_ten_sigkills_then_resume_give_the_records_of_a_clean_run(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """kill -9 at ten random moments, --resume after each: exactly the clean run's records."""
    fake.seed(integrations=4, logs_per_integration=400, seed=22)
    rng = random.Random(20261201)
    env = fake_env(fake)
    args = ("logs", "export", "--per-integration", "--concurrency", "4", "--page-size", "7")
    reference = tmp_path / "reference.jsonl"
    clean = await run(*args, "--out", str(reference), env=env)
    assert clean.code == 0, clean
    total = reference.stat().st_size
    targets = sorted(rng.uniform(0.02, 0.9) * total for _ in range(10))
    out = tmp_path / "logs.jsonl"
    kills = 0
    for target in targets:
        resume = ["--resume"] if checkpoint_path(out).exists() else []
        proc = await start(
            *args, "--out", str(out), *resume, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        while proc.returncode is None:
            size = out.stat().st_size if out.exists() else 0
            if size >= target:
                await asyncio.sleep(rng.uniform(0, 0.01))
                break
            await asyncio.sleep(0.001)
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        assert await proc.wait() in (-signal.SIGKILL, 0)
    assert kills == 10
    final = await run(*args, "--out", str(out), "--resume", env=env)
    assert final.code == 0, final
    assert "resumed after" in final.out
    assert sorted(lines(out)) == sorted(lines(reference))
    assert len(set(ids(out))) == len(ids(out)) == 1600
    assert by_integration(out) == by_integration(reference) == union_of_listings(fake)
    state = walks_checkpoint(out)
    assert state.done
    assert state.offset == out.stat().st_size


async def test_accounts_combine_with_per_integration(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--accounts --per-integration: each account's file is the union of its listings."""
    fake.seed(integrations=3, logs_per_integration=40, seed=23)
    fake.add_account(f"{PUBLIC_KEY}-2", SECRET_KEY)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        "\n".join(
            [
                "[accounts.one]",
                f'public_key = "{PUBLIC_KEY}"',
                f'secret_key = "{SECRET_KEY}"',
                f'base_url = "{fake.base_url}"',
                "[accounts.two]",
                f'public_key = "{PUBLIC_KEY}-2"',
                f'secret_key = "{SECRET_KEY}"',
                f'base_url = "{fake.base_url}"',
                "integration = 2",
            ]
        )
        + "\n"
    )
    out_dir = tmp_path / "out"
    result = await run(
        "logs", "export", "--accounts", str(accounts), "--out-dir", str(out_dir),
        "--per-integration", "--concurrency", "2", "--page-size", "9", env=base_env(),
    )  # fmt: skip
    assert result.code == 0, result
    expected = union_of_listings(fake)
    assert by_integration(out_dir / "one.jsonl") == expected
    assert by_integration(out_dir / "two.jsonl") == {2: expected[2]}
    assert walks_checkpoint(out_dir / "one.jsonl").query.listing == LISTING
    assert len(walks_checkpoint(out_dir / "one.jsonl").walks) == 3
    assert "2 of 2 accounts" in result.out


async def test_per_integration_with_integration_is_refused(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """--per-integration --integration ID: exit 2, one line, no file, nothing sent."""
    out = tmp_path / "logs.jsonl"
    result = await run(
        "logs", "export", "--out", str(out), "--per-integration", "--integration", "3",
        env=fake_env(fake),
    )  # fmt: skip
    assert_one_error_line(result, 2, "--per-integration walks every integration")
    assert not out.exists()
    assert fake.requests == []


async def test_per_integration_to_standard_output_is_refused(fake: FakeSendcloud) -> None:
    """--per-integration --out -: exit 2, one line, nothing sent, nothing on stdout."""
    result = await run("logs", "export", "--out", "-", "--per-integration", env=fake_env(fake))
    assert_one_error_line(result, 2, "--per-integration needs an output file")
    assert result.out == ""
    assert fake.requests == []


async def test_concurrency_alone_still_goes_with_accounts(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """--concurrency without --accounts or --per-integration: exit 2, nothing sent."""
    out = tmp_path / "logs.jsonl"
    result = await run(
        "logs", "export", "--out", str(out), "--concurrency", "3", env=fake_env(fake)
    )
    assert_one_error_line(result, 2, "--concurrency goes with --accounts")
    assert not out.exists()
    assert fake.requests == []


async def test_resume_with_the_other_listing_is_refused(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """An account-wide checkpoint resumed with --per-integration: exit 2, nothing sent.

    Without the flag, a per-integration checkpoint is resumed as what it is.
    """
    fake.seed(integrations=2, logs_per_integration=10, seed=24)
    per_integration = tmp_path / "p.jsonl"
    account_wide = tmp_path / "a.jsonl"
    env = fake_env(fake)
    assert (await run("logs", "export", "--out", str(per_integration), "--per-integration",
                      env=env)).code == 0  # fmt: skip
    assert (await run("logs", "export", "--out", str(account_wide), env=env)).code == 0
    before = (per_integration.read_bytes(), account_wide.read_bytes())
    fake.clear_requests()
    resumed = await run("logs", "export", "--out", str(per_integration), "--resume", env=env)
    assert resumed.code == 0, resumed
    assert "already complete" in resumed.out
    refused = await run(
        "logs", "export", "--out", str(account_wide), "--resume", "--per-integration", env=env
    )
    assert_one_error_line(refused, 2, "listing per-integration here but account in the checkpoint")
    assert fake.requests == []
    assert (per_integration.read_bytes(), account_wide.read_bytes()) == before


async def test_sigint_saves_every_walk_and_resume_completes(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Ctrl-C: exit 130, file and checkpoint agree; --resume ends with every log once."""
    fake.seed(integrations=3, logs_per_integration=1000, seed=25)
    env = fake_env(fake)
    out = tmp_path / "logs.jsonl"
    args = ("logs", "export", "--out", str(out), "--per-integration", "--page-size", "5")
    proc = await start(*args, env=env)
    for _ in range(5000):
        if checkpoint_path(out).exists() and walks_checkpoint(out).records >= 100:
            break
        await asyncio.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err
    assert logged(err.decode().splitlines()[-1]) == (
        "WARNING",
        "interrupted; run again with --resume to continue",
    )
    state = walks_checkpoint(out)
    assert not state.done
    assert state.records >= 100
    assert state.offset == out.stat().st_size  # the pages in hand were written, not left half
    assert len(lines(out)) == state.records
    result = await run(*args, "--resume", env=env)
    assert result.code == 0, result
    assert f"resumed after {state.records:,} records" in result.out
    assert by_integration(out) == union_of_listings(fake)
