"""``logs export --resume`` continues what its checkpoint records; an empty run is no obstacle.

Run as the installed script against FakeSendcloud. Every refusal is one line that
says what the checkpoint holds, and following its advice works.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from sendcloud_async._checkpoint import checkpoint_path
from sendcloud_async._export_walks import LISTING
from sendcloud_async.testing import FakeSendcloud, Fault

from .test_cli import (
    SECRET_KEY,
    Result,
    as_csv,
    base_env,
    checkpoint,
    csv_rows,
    fake_env,
    ids,
    run,
)


def one_line(result: Result, code: int, *needles: str) -> str:
    """Exit ``code`` with one line on stderr holding ``needles`` (and no secret)."""
    assert result.code == code, result
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    for needle in needles:
        assert needle in line, line
    assert "Traceback" not in result.err
    assert SECRET_KEY not in result.err + result.out
    return line


def wrong_secret(fake: FakeSendcloud) -> dict[str, str]:
    """``fake_env`` with a secret key the fake refuses (401)."""
    return {**fake_env(fake), "SENDCLOUD_SECRET_KEY": "a-wrong-secret"}


def page_sizes(fake: FakeSendcloud) -> set[str]:
    """The page_size of every log listing request the fake received."""
    return {r.query.get("page_size", "") for r in fake.requests if r.path.endswith("/logs")}


async def fail_after(fake: FakeSendcloud, path: str, pages: int) -> None:
    """The listing at ``path`` answers ``pages`` pages, then 500 (with --max-retries 0: exit 1)."""
    fake.inject("GET", path, *([Fault.delay(0)] * pages), Fault.status(500))


# -- the options a resume leaves out come from the checkpoint -------------------------------------


async def test_resume_takes_the_page_size_format_and_integration_from_the_checkpoint(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Started with --page-size 7 --format csv --integration 2, resumed with none of them."""
    fake.seed(integrations=3, logs_per_integration=40, seed=71)
    out = tmp_path / "logs.out"  # a name that implies no format
    await fail_after(fake, "/integrations/2/logs", 2)
    first = await run(
        "logs", "export", "--out", str(out), "--page-size", "7", "--format", "csv",
        "--integration", "2", "--max-retries", "0", env=fake_env(fake),
    )  # fmt: skip
    # 7 + 6: a page after the first lists the last log of the one before again
    one_line(first, 1, "500", "13 records are saved, --resume continues")
    assert checkpoint(out).records == 13
    fake.clear_requests()
    resumed = await run("logs", "export", "--out", str(out), "--resume", env=fake_env(fake))
    assert resumed.code == 0, resumed
    assert "resumed after 13 records" in resumed.out
    assert page_sizes(fake) == {"7"}
    assert {r.path for r in fake.requests} == {"/integrations/2/logs"}
    wanted = [as_csv(r) for r in fake.logs if r["integration_id"] == 2]
    assert csv_rows(out) == wanted
    assert checkpoint(out).done


async def test_resume_continues_a_per_integration_export_without_the_flag(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A per-integration checkpoint resumed with plain --resume walks on per integration."""
    fake.seed(integrations=2, logs_per_integration=30, seed=72)
    out = tmp_path / "logs.jsonl"
    await fail_after(fake, "/integrations/{id}/logs", 3)
    first = await run(
        "logs", "export", "--out", str(out), "--per-integration", "--page-size", "5",
        "--concurrency", "1", "--max-retries", "0", env=fake_env(fake),
    )  # fmt: skip
    assert first.code == 1, first
    saved = checkpoint(out)
    assert saved.query.listing == LISTING
    assert saved.records == 13  # 5 + 4 + 4: each page after the first lists one log again
    fake.clear_requests()
    resumed = await run("logs", "export", "--out", str(out), "--resume", env=fake_env(fake))
    assert resumed.code == 0, resumed
    assert "integrations walked side by side" in resumed.out
    assert all(r.path.startswith("/integrations/") for r in fake.requests)
    assert "/integrations/logs" not in {r.path for r in fake.requests}
    assert page_sizes(fake) == {"5"}
    assert sorted(ids(out)) == sorted(r["id"] for r in fake.logs)
    assert len(ids(out)) == len(fake.logs)


async def test_an_option_that_contradicts_the_checkpoint_is_one_line_that_leads_on(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """--page-size 9 on a checkpoint of 5: one line naming both; drop it, or --restart: works."""
    fake.seed(integrations=1, logs_per_integration=30, seed=73)
    out = tmp_path / "logs.out"  # JSON Lines, by default: the name implies no format
    args = ("logs", "export", "--out", str(out))
    await fail_after(fake, "/integrations/logs", 2)
    first = await run(*args, "--page-size", "5", "--max-retries", "0", env=fake_env(fake))
    assert first.code == 1, first
    before = out.read_bytes()
    fake.clear_requests()
    refused = await run(*args, "--resume", "--page-size", "9", env=fake_env(fake))
    line = one_line(
        refused, 2,
        "page_size 9 here but 5 in the checkpoint", str(checkpoint_path(out)),
        "drop --page-size to continue it as the checkpoint says",
        "--restart (instead of --resume) starts over with it",
    )  # fmt: skip
    assert "run without --resume" not in line
    assert fake.requests == []
    assert out.read_bytes() == before
    both = await run(
        *args, "--resume", "--page-size", "9", "--format", "csv", "--integration", "1",
        env=fake_env(fake),
    )  # fmt: skip
    one_line(
        both, 2, "format csv here but jsonl", "drop --format and --page-size and --integration"
    )
    # The line's two ways on: drop the option ...
    dropped = await run(*args, "--resume", env=fake_env(fake))
    assert dropped.code == 0, dropped
    assert page_sizes(fake) == {"5"}
    assert ids(out) == [r["id"] for r in fake.logs]
    # ... or start over with it.
    fake.clear_requests()
    restarted = await run(*args, "--restart", "--page-size", "9", env=fake_env(fake))
    assert restarted.code == 0, restarted
    assert page_sizes(fake) == {"9"}
    assert ids(out) == [r["id"] for r in fake.logs]


async def test_every_refused_resume_names_a_way_that_works(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A damaged checkpoint, or an output gone missing: the advice (--restart) finishes the job."""
    fake.seed(integrations=1, logs_per_integration=12, seed=74)
    env = fake_env(fake)
    damaged, missing = tmp_path / "damaged.jsonl", tmp_path / "missing.jsonl"
    damaged.write_text('{"id": 1}\n')
    checkpoint_path(damaged).write_text("{oops")
    await fail_after(fake, "/integrations/logs", 1)
    first = await run("logs", "export", "--out", str(missing), "--page-size", "5",
                      "--max-retries", "0", env=env)  # fmt: skip
    assert first.code == 1, first
    missing.unlink()
    fake.clear_requests()
    for out, needle in ((damaged, "damaged"), (missing, "does not exist")):
        refused = await run("logs", "export", "--out", str(out), "--resume", env=env)
        one_line(refused, 2, needle, "--restart (instead of --resume) starts over")
        again = await run("logs", "export", "--out", str(out), env=env)  # without --resume
        one_line(again, 2, "unfinished export", "--restart to start over")
        assert fake.requests == []
        done = await run("logs", "export", "--out", str(out), "--restart", env=env)
        assert done.code == 0, done
        assert ids(out) == [r["id"] for r in fake.logs]
        fake.clear_requests()


async def test_many_accounts_resume_each_account_as_its_checkpoint_says(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """--accounts --resume: each account continues its own CSV file, page size and listing."""
    fake.seed(integrations=2, logs_per_integration=20, seed=75)
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f"[accounts.shop]\npublic_key = 'fake-public-key'\nsecret_key = '{SECRET_KEY}'\n"
        f"base_url = '{fake.base_url}'\n"
    )
    accounts.chmod(0o600)
    out_dir = tmp_path / "out"
    args = ("logs", "export", "--accounts", str(accounts), "--out-dir", str(out_dir))
    await fail_after(fake, "/integrations/logs", 2)
    first = await run(*args, "--format", "csv", "--page-size", "4", "--max-retries", "0",
                      env=base_env())  # fmt: skip
    assert first.code == 1, first
    assert checkpoint(out_dir / "shop.csv").records == 7  # 4 + 3: one log listed again
    fake.clear_requests()
    resumed = await run(*args, "--resume", env=base_env())
    assert resumed.code == 0, resumed
    assert not (out_dir / "shop.jsonl").exists()
    assert page_sizes(fake) == {"4"}
    assert csv_rows(out_dir / "shop.csv") == [as_csv(r) for r in fake.logs]
    refused = await run(*args, "--resume", "--page-size", "6", env=base_env())
    one_line(refused, 2, "account shop: ", "page_size 6 here but 4 in the checkpoint")


# -- an export that wrote nothing does not block the corrected re-run ---------------------------


async def test_a_run_whose_first_request_failed_can_be_run_again_as_is(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A 401 on the first request writes nothing; the same command with right credentials works."""
    fake.seed(integrations=2, logs_per_integration=15, seed=76)
    out = tmp_path / "logs.jsonl"
    for extra in ((), ("--per-integration",)):
        args = ("logs", "export", "--out", str(out), *extra)
        failed = await run(*args, env=wrong_secret(fake))
        one_line(failed, 1, "401")
        assert "a-wrong-secret" not in failed.err
        assert not out.exists() or out.read_bytes() == b""  # nothing written
        rerun = await run(*args, env=fake_env(fake))
        assert rerun.code == 0, rerun
        assert sorted(ids(out)) == sorted(r["id"] for r in fake.logs)
        assert checkpoint(out).done
        out.unlink()
        checkpoint_path(out).unlink()


async def test_a_resume_after_a_run_that_wrote_nothing_takes_the_options_given(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Nothing written: --resume with another --page-size is no contradiction, it starts afresh."""
    fake.seed(integrations=1, logs_per_integration=15, seed=77)
    out = tmp_path / "logs.jsonl"
    args = ("logs", "export", "--out", str(out))
    failed = await run(*args, "--page-size", "5", env=wrong_secret(fake))
    assert failed.code == 1, failed
    assert checkpoint(out).records == 0
    fake.clear_requests()
    resumed = await run(*args, "--resume", "--page-size", "9", env=fake_env(fake))
    assert resumed.code == 0, resumed
    assert page_sizes(fake) == {"9"}
    assert ids(out) == [r["id"] for r in fake.logs]
    assert msgspec.json.decode(checkpoint_path(out).read_bytes())["query"]["page_size"] == 9


async def test_a_many_accounts_run_with_a_refused_account_can_be_run_again_as_is(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """An account refused (401) on its first request: fix the file, run the same command again."""
    fake.seed(integrations=1, logs_per_integration=10, seed=78)
    accounts = tmp_path / "accounts.toml"
    out_dir = tmp_path / "out"
    args = ("logs", "export", "--accounts", str(accounts), "--out-dir", str(out_dir))

    def write(secret: str) -> None:
        accounts.write_text(
            f"[accounts.good]\npublic_key = 'fake-public-key'\nsecret_key = '{SECRET_KEY}'\n"
            f"base_url = '{fake.base_url}'\n"
            f"[accounts.bad]\npublic_key = 'fake-public-key'\nsecret_key = '{secret}'\n"
            f"base_url = '{fake.base_url}'\n"
        )
        accounts.chmod(0o600)

    write("a-wrong-secret")
    failed = await run(*args, env=base_env())
    assert failed.code == 1, failed
    assert "account bad: failed" in failed.err
    assert checkpoint(out_dir / "bad.jsonl").records == 0
    write(SECRET_KEY)
    rerun = await run(*args, env=base_env())
    assert rerun.code == 0, rerun
    for name in ("good", "bad"):
        assert ids(out_dir / f"{name}.jsonl") == [r["id"] for r in fake.logs]
