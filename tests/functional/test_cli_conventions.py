"""The command line's conventions: outputs, formats, flags, help, warnings and the demo."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from pathlib import Path

import pytest

from sendcloud_async._checkpoint import checkpoint_path
from sendcloud_async._cli.common import FAKE_INTEGRATIONS
from sendcloud_async._cli.many_accounts import NOTE_WIDTH
from sendcloud_async._cli.parser import build_parser
from sendcloud_async.testing import FakeSendcloud, Fault
from tests.functional.test_cli import (
    PUBLIC_KEY,
    SECRET_KEY,
    as_csv,
    assert_one_error_line,
    base_env,
    csv_rows,
    fake_env,
    ids,
    logged,
    run,
    start,
)


async def run_in(cwd: Path, *args: str, env: dict[str, str]) -> tuple[int, bytes, str]:
    """Run the console script in ``cwd``; (status, stdout bytes, stderr text)."""
    proc = await start(*args, env=env, cwd=cwd)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out, err.decode()


# -- outputs and formats -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_out_dash_writes_the_same_bytes_to_stdout(
    fake: FakeSendcloud, tmp_path: Path, fmt: str
) -> None:
    """--out - puts on stdout exactly what a file export holds; progress and summary on stderr."""
    fake.seed(integrations=2, logs_per_integration=60, seed=41)
    env = fake_env(fake)
    options = ("--page-size", "7", "--format", fmt)
    file_run = await run("logs", "export", "--out", str(tmp_path / "f.out"), *options, env=env)
    assert file_run.code == 0, file_run
    code, out, err = await run_in(tmp_path, "logs", "export", "--out", "-", *options, env=env)
    assert code == 0, err
    assert out == (tmp_path / "f.out").read_bytes()
    level, summary = logged(err.splitlines()[-1])  # stderr is not a terminal: a log line
    assert level == "INFO"
    assert summary.startswith("exported 120 records in 18 pages")
    assert summary.endswith("to standard output")
    assert not (tmp_path / "-").exists()
    assert not checkpoint_path(tmp_path / "-").exists()


async def test_out_dash_into_a_reader_that_goes_away_ends_quietly(fake: FakeSendcloud) -> None:
    """--out - | head -1: when the reader closes the pipe the export stops with status 0."""
    fake.seed(integrations=2, logs_per_integration=500, seed=47)
    read_end, write_end = os.pipe()
    proc = await start(
        "logs", "export", "--out", "-", "--page-size", "5", env=fake_env(fake), stdout=write_end
    )
    os.close(write_end)
    with os.fdopen(read_end, "rb") as reader:
        first = await asyncio.to_thread(reader.readline)  # as `head -1` does, then it exits
    assert first.startswith(b'{"')
    assert proc.stderr is not None
    err = await asyncio.wait_for(proc.stderr.read(), 30)
    assert await proc.wait() == 0, err
    assert b"Traceback" not in err
    assert b"error" not in err
    assert len(fake.requests) < 200  # it stopped, rather than fetching every page


async def test_out_dash_has_no_checkpoint_to_resume(fake: FakeSendcloud) -> None:
    """--out - --resume is a usage error: there is no checkpoint for standard output."""
    result = await run("logs", "export", "--out", "-", "--resume", env=fake_env(fake))
    assert_one_error_line(result, 2, "standard output", "no checkpoint")
    assert fake.requests == []


async def test_format_follows_the_file_name(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--out logs.csv writes CSV without --format; a contradicting --format is refused."""
    fake.seed(integrations=1, logs_per_integration=25, seed=42)
    env = fake_env(fake)
    out = tmp_path / "logs.CSV"
    result = await run("logs", "export", "--out", str(out), env=env)
    assert result.code == 0, result
    assert csv_rows(out) == [as_csv(r) for r in fake.logs]
    fake.clear_requests()
    refused = await asyncio.gather(
        run("logs", "export", "--out", str(tmp_path / "a.csv"), "--format", "jsonl", env=env),
        run("logs", "export", "--out", str(tmp_path / "b.jsonl"), "--format", "csv", env=env),
    )
    for result in refused:
        assert_one_error_line(result, 2, "contradicts the file name")
    assert fake.requests == []
    assert not (tmp_path / "a.csv").exists()


async def test_out_and_out_dir_both_create_missing_directories(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """--out into a directory that does not exist yet creates it, as --out-dir does."""
    fake.seed(integrations=1, logs_per_integration=15, seed=43)
    out = tmp_path / "a" / "b" / "logs.jsonl"
    result = await run("logs", "export", "--out", str(out), env=fake_env(fake))
    assert result.code == 0, result
    assert ids(out) == [r["id"] for r in fake.logs]
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f"[accounts.x]\npublic_key = '{PUBLIC_KEY}'\nsecret_key = '{SECRET_KEY}'\n"
        f"base_url = '{fake.base_url}'\n"
    )
    accounts.chmod(0o600)
    out_dir = tmp_path / "c" / "d"
    many = await run(
        "logs", "export", "--accounts", str(accounts), "--out-dir", str(out_dir), env=base_env()
    )
    assert many.code == 0, many
    assert ids(out_dir / "x.jsonl") == [r["id"] for r in fake.logs]


# -- errors that name the right thing ------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("logs", "export", "--out", "{tmp}/x.jsonl", "--timeout", "inf"),
        ("logs", "export", "--out", "{tmp}/x.jsonl", "--timeout", "nan"),
        ("--timeout", "inf", "integrations", "list"),
    ],
)
async def test_timeout_inf_is_a_usage_error(
    fake: FakeSendcloud, tmp_path: Path, args: tuple[str, ...]
) -> None:
    """--timeout inf (or nan): exit 2 with a plain message naming --timeout, nothing sent."""
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    result = await run(*argv, env=fake_env(fake))
    assert_one_error_line(result, 2, "--timeout", "positive number of seconds")
    assert "unexpected" not in result.err
    assert fake.requests == []


async def test_a_long_failure_is_cut_in_the_accounts_table(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A 300-character 401 keeps the summary table readable; its stderr line says more."""
    fake.seed(integrations=1, logs_per_integration=5, seed=44)
    detail = "The credentials were not accepted because " + "x" * 260
    body = {"errors": [{"status": "401", "code": "unauthorized", "detail": detail}]}
    fake.inject("GET", "/integrations/logs", Fault.status(401, body=body))
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        "".join(
            f"[accounts.{name}]\npublic_key = '{PUBLIC_KEY}'\nsecret_key = '{SECRET_KEY}'\n"
            f"base_url = '{fake.base_url}'\n\n"
            for name in ("first", "second")
        )
    )
    accounts.chmod(0o600)
    result = await run(
        "logs", "export", "--accounts", str(accounts), "--out-dir", str(tmp_path / "out"),
        "--concurrency", "1", env=base_env(),
    )  # fmt: skip
    assert result.code == 1, result
    failed = [line for line in result.err_lines if "account first: failed" in line]
    assert len(failed) == 1
    assert "The credentials were not accepted because xxx" in failed[0]
    rows = [line for line in result.out.splitlines() if line.startswith("first ")]
    assert len(rows) == 1
    assert rows[0].endswith("…")
    assert len(rows[0]) < len(failed[0])
    width = max(len(line) for line in result.out.splitlines()[:3])
    assert width <= NOTE_WIDTH + len(str(tmp_path / "out" / "second.jsonl")) + 40


async def test_accounts_file_readable_by_others_is_warned_about(tmp_path: Path) -> None:
    """An accounts file others may read gets a chmod 600 warning (as ssh warns about keys)."""
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        f"[accounts.one]\npublic_key = '{PUBLIC_KEY}'\nsecret_key = '{SECRET_KEY}'\n"
    )
    args = ("logs", "export", "--fake", "--accounts", str(accounts), "--page-size", "100")
    accounts.chmod(0o644)
    loose = await run(*args, "--out-dir", str(tmp_path / "a"), env=base_env())
    assert loose.code == 0, loose
    warnings = [line for line in loose.err_lines if logged(line)[0] == "WARNING"]
    assert len(warnings) == 1
    assert str(accounts) in warnings[0]
    assert "(mode 0644)" in warnings[0]
    assert f"chmod 600 {accounts}" in warnings[0]
    assert SECRET_KEY not in loose.err
    accounts.chmod(0o600)
    tight = await run(*args, "--out-dir", str(tmp_path / "b"), env=base_env())
    assert tight.code == 0, tight
    assert not any("warning" in line for line in tight.err_lines)


async def test_a_failing_token_request_is_named_in_the_warnings(fake: FakeSendcloud) -> None:
    """OAuth2 with an unreachable token endpoint: every line names the token request."""
    env = base_env(
        SENDCLOUD_BASE_URL=fake.base_url,
        SENDCLOUD_CLIENT_ID=fake.client_id,
        SENDCLOUD_CLIENT_SECRET=fake.client_secret,
        SENDCLOUD_TOKEN_URL="http://127.0.0.1:9/oauth2/token/",
    )
    result = await run("integrations", "list", "--max-retries", "1", env=env)
    assert result.code == 1, result
    assert len(result.err_lines) == 2  # one warning (the retry), one error
    for line in result.err_lines:
        assert "http://127.0.0.1:9/oauth2/token/" in line, line
    assert fake.requests == []
    assert fake.client_secret not in result.err


# -- flags and help ------------------------------------------------------------------------------


async def test_global_flags_go_before_the_command(fake: FakeSendcloud, tmp_path: Path) -> None:
    """-q, --fake, --max-retries … work before the command as after it."""
    fake.seed(integrations=1, logs_per_integration=10, seed=45)
    env = fake_env(fake)
    quiet = await run("-q", "logs", "export", "--out", str(tmp_path / "q.jsonl"), env=env)
    assert (quiet.code, quiet.out, quiet.err) == (0, "", "")
    listed = await run("--fake", "integrations", "list", env=base_env())
    assert listed.code == 0, listed
    assert len(listed.out.splitlines()) == FAKE_INTEGRATIONS + 1
    fake.inject("GET", "/integrations/logs", Fault.status(503))
    fake.clear_requests()
    once = await run(
        "--max-retries", "0", "logs", "export", "--out", str(tmp_path / "r.jsonl"), env=env
    )
    assert_one_error_line(once, 1, "503")
    assert len(fake.requests) == 1


async def test_verbose_shows_each_request_without_secrets(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """-v prints the SDK's request log on stderr (method, URL, status), never a secret."""
    fake.seed(integrations=1, logs_per_integration=20, seed=46)
    result = await run(
        "-v", "logs", "export", "--out", str(tmp_path / "v.jsonl"), "--page-size", "10",
        env=fake_env(fake),
    )  # fmt: skip
    assert result.code == 0, result
    debug = [line for line in result.err_lines if logged(line)[0] == "DEBUG"]
    assert len(debug) == len(fake.requests) == 3  # 10 + 9 + 1: each page lists one log again
    assert all(f"GET {fake.base_url}/integrations/logs" in line for line in debug)
    assert all("-> 200 in " in line for line in debug)
    assert SECRET_KEY not in result.err
    assert "Authorization" not in result.err
    both = await run("-q", "-v", "integrations", "list", env=fake_env(fake))
    assert_one_error_line(both, 2, "--quiet and --verbose")


def _subparsers(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                found.append(sub)
                found.extend(_subparsers(sub))
    return found


def test_every_command_has_examples_and_every_argument_has_help() -> None:
    """Each command's --help shows examples; no option or argument goes without help text."""
    parser = build_parser()
    commands = [p for p in _subparsers(parser) if not any(
        isinstance(a, argparse._SubParsersAction) for a in p._actions
    )]  # fmt: skip
    names = sorted(p.prog.removeprefix("sendcloud-async ") for p in commands)
    assert {"demo", "logs export", "integrations list", "integrations get"} <= set(names)
    for command in [parser, *commands]:
        assert "examples:\n  $ sendcloud-async " in command.format_help(), command.prog
        for action in command._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue  # the list of commands: each has its own help line
            assert action.help, f"{command.prog}: {action.option_strings or action.dest}"


def test_help_groups_the_export_options() -> None:
    """logs export --help groups its options: output, what to export, many accounts, connection."""
    export = next(p for p in _subparsers(build_parser()) if p.prog.endswith("logs export"))
    text = export.format_help()
    headings = ["general options:", "connection options:", "output:", "what to export:"]
    for heading in [*headings, "many accounts:"]:
        assert f"\n{heading}\n" in text, heading
    assert text.index("\n  --out FILE") > text.index("\noutput:")
    assert text.index("\n  --accounts TOML") > text.index("\nmany accounts:")


# -- the demo ------------------------------------------------------------------------------------


async def test_demo_cleans_up_after_itself(tmp_path: Path) -> None:
    """Without --keep the demo's files are removed at the end, and it says so; the report's
    page is all it leaves, in the user's cache directory."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    cache = tmp_path / "cache"
    result = await run("demo", env=base_env(TMPDIR=str(scratch), XDG_CACHE_HOME=str(cache)))
    assert result.code == 0, result
    assert "verified: 30,000 logs" in result.out
    assert "removed the demo's files" in result.out
    assert "--keep DIR" in result.out
    assert list(scratch.iterdir()) == []
    assert [p.name for p in cache.rglob("*") if p.is_file()] == ["demo-report.html"]


async def test_demo_prints_commands_that_work_when_pasted(tmp_path: Path) -> None:
    """demo --keep DIR: the commands it prints run as printed, on the same data as --fake."""
    kept = tmp_path / "kept"
    demo = await run("demo", "--keep", str(kept), "--format", "csv", env=base_env())
    assert demo.code == 0, demo
    file = kept / "logs.csv"
    assert f"kept {file}" in demo.out
    commands = [line[2:] for line in demo.out.splitlines() if line.startswith("$ ")]
    assert len(commands) == 4, demo.out

    def argv(line: str) -> list[str]:
        words = shlex.split(line)
        assert words[0] == "sendcloud-async"
        return words[1:]

    listing, export, resume, report = commands
    listed = await run(*argv(listing), env=base_env())
    assert listed.code == 0, listed
    assert listed.out.strip() in demo.out
    reported = await run(*argv(report), env=base_env())
    assert reported.code == 0, reported
    assert reported.out.strip() in demo.out  # the same table, from the kept export
    resumed = await run(*argv(resume), env=base_env())
    assert resumed.code == 0, resumed
    assert "already complete" in resumed.out
    # The export line, pasted elsewhere, writes the very same bytes.
    again = tmp_path / "again" / "logs.csv"
    pasted = await run(*[str(again) if w == str(file) else w for w in argv(export)], env=base_env())
    assert pasted.code == 0, pasted
    assert again.read_bytes() == file.read_bytes()


# -- the library ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("configure", "shown"), [("", False), ("logging.basicConfig()", True)])
async def test_library_logs_nowhere_unless_the_application_configures_logging(
    configure: str, shown: bool
) -> None:
    """The package's NullHandler: no retry warning on stderr in an app without logging setup."""
    code = (
        "import logging, sendcloud_async\n"
        f"{configure}\n"
        "logging.getLogger('sendcloud_async').warning('GET /x failed; retrying in 1 s')\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, stderr=asyncio.subprocess.PIPE, env=base_env()
    )
    _, err = await proc.communicate()
    assert proc.returncode == 0
    assert ("retrying in 1 s" in err.decode()) is shown
