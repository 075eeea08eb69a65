"""The installed ``sendcloud-async`` console script, run as a subprocess against FakeSendcloud."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import random
import re
import signal
import sys
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sendcloud_async import AccountPool, SendcloudClient, __version__, _cli
from sendcloud_async._checkpoint import Checkpoint, checkpoint_path
from sendcloud_async._cli.common import FAKE_INTEGRATIONS, FAKE_LOGS_PER_INTEGRATION
from sendcloud_async._cli.progress import Progress
from sendcloud_async._export import LogExport
from sendcloud_async._records import CSV_COLUMNS
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse

SCRIPT = Path(sys.executable).parent / "sendcloud-async"
PUBLIC_KEY = "fake-public-key"
SECRET_KEY = "fake-secret-key"

# -- running the command -----------------------------------------------------------------------


@dataclass
class Result:
    """What a finished command left behind."""

    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        """stderr, line by line."""
        return self.err.splitlines()


def base_env(**extra: str) -> dict[str, str]:
    """The test's environment without any SENDCLOUD_* variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDCLOUD_")}
    env.update(extra)
    return env


def fake_env(fake: FakeSendcloud, **extra: str) -> dict[str, str]:
    """Basic credentials the fake accepts and its base URL."""
    return base_env(
        SENDCLOUD_BASE_URL=fake.base_url,
        SENDCLOUD_PUBLIC_KEY=PUBLIC_KEY,
        SENDCLOUD_SECRET_KEY=SECRET_KEY,
        **extra,
    )


async def start(*args: str, env: dict[str, str], **kwargs: Any) -> asyncio.subprocess.Process:
    """Start the console script (the fake keeps serving in this event loop meanwhile)."""
    assert SCRIPT.exists(), f"the console script is not installed at {SCRIPT}"
    kwargs.setdefault("stdout", asyncio.subprocess.PIPE)
    kwargs.setdefault("stderr", asyncio.subprocess.PIPE)
    return await asyncio.create_subprocess_exec(
        str(SCRIPT), *args, env=env, stdin=asyncio.subprocess.DEVNULL, **kwargs
    )


async def run(*args: str, env: dict[str, str]) -> Result:
    """Run the console script to its end (within a minute)."""
    proc = await start(*args, env=env)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


# -- what the files should hold ----------------------------------------------------------------


def jsonl_records(path: Path) -> list[dict[str, Any]]:
    """The JSON Lines file decoded, ``created_at`` parsed."""
    items = []
    for raw in path.read_bytes().splitlines():
        item = msgspec.json.decode(raw)
        item["created_at"] = datetime.fromisoformat(item["created_at"])
        items.append(item)
    return items


def as_jsonl(record: dict[str, Any]) -> dict[str, Any]:
    """A server record as the README documents a JSON Lines line (null sub-fields left out)."""
    line = dict(record)
    for part in ("request", "response"):
        if isinstance(line.get(part), dict):
            line[part] = {k: v for k, v in line[part].items() if v is not None}
    line["created_at"] = datetime.fromisoformat(line["created_at"])
    return line


def csv_rows(path: Path) -> list[dict[str, str]]:
    """The CSV file's rows; the header must be the documented columns."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    return rows


def as_csv(record: dict[str, Any]) -> dict[str, str]:
    """A server record flattened as the README documents."""

    def cell(value: Any) -> str:
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, dict | list):
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        return str(value)

    response = record.get("response") or {}
    request = record.get("request") or {}
    flat = {
        **record,
        "response_headers": response.get("headers"),
        "response_body": response.get("body"),
        "request_headers": request.get("headers"),
        "request_payload": request.get("payload"),
    }
    return {column: cell(flat.get(column)) for column in CSV_COLUMNS}


def ids(path: Path) -> list[int]:
    """The log ids of a JSON Lines file, in file order."""
    return [msgspec.json.decode(line)["id"] for line in path.read_bytes().splitlines()]


def checkpoint(out: Path) -> Checkpoint:
    """The checkpoint beside ``out``."""
    return msgspec.json.decode(checkpoint_path(out).read_bytes(), type=Checkpoint)


#: A line on stderr off a terminal: ``2026-12-06T16:40:01Z LEVEL message`` (UTC).
LOG_LINE = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) (DEBUG|INFO|WARNING|ERROR) (.*)")


def logged(line: str) -> tuple[str, str]:
    """(LEVEL, message) of a timestamped log line; fails the test if ``line`` is not one."""
    match = LOG_LINE.fullmatch(line)
    assert match is not None, f"not a timestamped log line: {line!r}"
    return match.group(2), match.group(3)


def assert_one_error_line(result: Result, code: int, *needles: str) -> None:
    """Exit ``code``, and stderr is one error line holding ``needles``: bad usage (2) is
    ``sendcloud-async: error: …``; a failure at run time (off a terminal) a log line
    ``… ERROR …``."""
    assert result.code == code, result
    assert len(result.err_lines) == 1, result.err
    line = result.err_lines[0]
    if code == 2:
        assert line.startswith("sendcloud-async: error: "), line
    else:
        assert logged(line)[0] == "ERROR", line
    for needle in needles:
        assert needle in line, line
    assert "Traceback" not in result.err
    assert SECRET_KEY not in result.err + result.out


# -- exporting ---------------------------------------------------------------------------------


async def test_jsonl_export_equals_server_logs(fake: FakeSendcloud, tmp_path: Path) -> None:
    """The default JSON Lines export holds every server log once, in order, as documented."""
    fake.seed(integrations=3, logs_per_integration=200, seed=1)
    out = tmp_path / "logs.jsonl"
    result = await run("logs", "export", "--out", str(out), "--page-size", "17", env=fake_env(fake))
    assert result.code == 0, result
    assert jsonl_records(out) == [as_jsonl(r) for r in fake.logs]
    assert "600 records" in result.out
    # not a terminal: timestamped progress lines (none in a run this short), no control characters
    assert all(logged(line)[1].startswith("exported ") for line in result.err_lines)
    assert "\r" not in result.err
    state = checkpoint(out)
    assert state.done
    assert state.records == 600
    assert state.offset == out.stat().st_size
    assert state.query.base_url == fake.base_url


async def test_csv_export_equals_server_logs(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--format csv writes one header and every log flattened as documented."""
    fake.seed(integrations=2, logs_per_integration=150, seed=2)
    out = tmp_path / "logs.csv"
    result = await run(
        "logs", "export", "--out", str(out), "--format", "csv", "--page-size", "33",
        env=fake_env(fake),
    )  # fmt: skip
    assert result.code == 0, result
    assert csv_rows(out) == [as_csv(r) for r in fake.logs]


async def test_export_of_one_integration(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--integration ID exports that integration's logs through /integrations/{id}/logs."""
    fake.seed(integrations=3, logs_per_integration=40, seed=3)
    out = tmp_path / "two.jsonl"
    result = await run(
        "logs", "export", "--out", str(out), "--integration", "2", env=fake_env(fake)
    )
    assert result.code == 0, result
    assert jsonl_records(out) == [as_jsonl(r) for r in fake.logs if r["integration_id"] == 2]
    assert {r.path for r in fake.requests} == {"/integrations/2/logs"}


async def test_quiet_prints_nothing(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--quiet: no progress, no summary; the file is still complete."""
    fake.seed(integrations=1, logs_per_integration=30, seed=4)
    out = tmp_path / "logs.jsonl"
    result = await run("logs", "export", "--out", str(out), "--quiet", env=fake_env(fake))
    assert (result.code, result.out, result.err) == (0, "", "")
    assert ids(out) == [r["id"] for r in fake.logs]


async def test_kill_9_ten_times_then_resume_gives_exactly_once(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """SIGKILL at ten random points, --resume after each: every log id appears exactly once."""
    fake.seed(integrations=3, logs_per_integration=1000, seed=5)
    rng = random.Random(20240605)
    env = fake_env(fake)
    reference = tmp_path / "reference.jsonl"
    done = await run("logs", "export", "--out", str(reference), "--page-size", "7", env=env)
    assert done.code == 0, done
    total = reference.stat().st_size
    # Ten kill points, spread over the file's growth, with some jitter in time.
    targets = sorted(rng.uniform(0.02, 0.9) * total for _ in range(10))
    out = tmp_path / "logs.jsonl"
    kills = 0
    for target in targets:
        resume = ["--resume"] if kills or checkpoint_path(out).exists() else []
        proc = await start(
            "logs", "export", "--out", str(out), "--page-size", "7", *resume, env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        while proc.returncode is None:
            size = out.stat().st_size if out.exists() else 0
            if size >= target:
                await asyncio.sleep(rng.uniform(0, 0.01))
                break
            await asyncio.sleep(0.001)
        if proc.returncode is None:
            proc.kill()
            kills += 1
        assert await proc.wait() in (-signal.SIGKILL, 0)
    assert kills == 10
    final = await run("logs", "export", "--out", str(out), "--page-size", "7", "--resume", env=env)
    assert final.code == 0, final
    expected = [r["id"] for r in fake.logs]
    assert ids(out) == expected
    assert len(set(ids(out))) == 3000
    assert out.read_bytes() == reference.read_bytes()
    assert checkpoint(out).done


async def test_sigint_saves_checkpoint_exits_130_and_resume_completes(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Ctrl-C: exit 130, a one-line --resume hint; file and checkpoint agree; resume finishes."""
    fake.seed(integrations=2, logs_per_integration=1500, seed=6)
    env = fake_env(fake)
    out = tmp_path / "logs.csv"
    args = ("logs", "export", "--out", str(out), "--format", "csv", "--page-size", "5")
    proc = await start(*args, env=env)
    for _ in range(5000):
        if checkpoint_path(out).exists() and checkpoint(out).records >= 100:
            break
        await asyncio.sleep(0.002)
    proc.send_signal(signal.SIGINT)
    _out_bytes, err_bytes = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 130, err_bytes
    lines = err_bytes.decode().splitlines()
    assert logged(lines[-1]) == ("WARNING", "interrupted; run again with --resume to continue")
    assert all(line.startswith("exported ") for line in lines[:-1])  # periodic progress only
    state = checkpoint(out)
    assert not state.done
    assert state.records >= 100
    assert state.offset == out.stat().st_size  # the page in flight was finished, not left half
    result = await run(*args, "--resume", env=env)
    assert result.code == 0, result
    assert f"resumed after {state.records:,} records" in result.out
    assert csv_rows(out) == [as_csv(r) for r in fake.logs]


async def test_resume_of_finished_export_says_already_complete(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """--resume after a finished export: exit 0, 'already complete', no request sent."""
    fake.seed(integrations=1, logs_per_integration=20, seed=7)
    out = tmp_path / "logs.jsonl"
    assert (await run("logs", "export", "--out", str(out), env=fake_env(fake))).code == 0
    fake.clear_requests()
    result = await run("logs", "export", "--out", str(out), "--resume", env=fake_env(fake))
    assert result.code == 0, result
    assert "already complete" in result.out
    assert fake.requests == []


async def test_fake_export_is_identical_across_runs_and_resumable(tmp_path: Path) -> None:
    """--fake serves the same data every run: identical output, and --resume works there."""
    env = base_env()
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"

    async def killed_part_way() -> None:
        proc = await start("logs", "export", "--fake", "--out", str(second), env=env)
        while proc.returncode is None:
            if second.exists() and second.stat().st_size > 3_000_000:
                proc.kill()
                break
            await asyncio.sleep(0.002)
        await proc.communicate()

    whole, _ = await asyncio.gather(
        run("logs", "export", "--fake", "--out", str(first), env=env), killed_part_way()
    )
    assert whole.code == 0, whole
    assert len(ids(first)) == FAKE_INTEGRATIONS * FAKE_LOGS_PER_INTEGRATION
    assert second.stat().st_size < first.stat().st_size
    result = await run("logs", "export", "--fake", "--out", str(second), "--resume", env=env)
    assert result.code == 0, result
    assert second.read_bytes() == first.read_bytes()


# -- progress ----------------------------------------------------------------------------------


async def test_progress_on_a_terminal_is_one_updating_line(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """With stderr on a terminal the progress line is redrawn with \\r and ends with a newline."""
    fake.seed(integrations=1, logs_per_integration=400, seed=8)
    from tests._pty import on_pty  # it runs commands through this module's ``start``

    out = tmp_path / "logs.jsonl"
    status, chunks, _ = await on_pty(
        "logs", "export", "--out", str(out), "--page-size", "5", env=fake_env(fake), columns=None
    )  # fmt: skip
    text = b"".join(chunk for _, chunk in chunks).decode()
    assert status == 0
    assert "\r" in text
    last = text.replace("\r\n", "\n").rsplit("\r", 1)[-1]
    # 1 + ceil(395 / 4) pages: each page after the first lists the last log of the one before
    assert "400 records · 100 pages" in last
    assert "rec/s" in last
    assert text.endswith("\n")


def test_a_note_that_ends_is_no_new_status_line() -> None:
    """Off a terminal, a wait that ends (its note goes) prints nothing until the counts move."""
    now = [0.0]
    stream = io.StringIO()
    wall = datetime.fromisoformat("2026-12-06T16:40:01+00:00")
    progress = Progress(stream, "lines", interval=1.0, clock=lambda: now[0], wall=lambda: wall)
    note = ["waiting 2 s for the answer to GET /x"]
    progress.note = lambda: note[0]
    progress.update(10, 1, 10.0, 1.0)
    now[0] = 2.0
    progress.refresh()
    note[0] = ""  # the answer came
    now[0] = 4.0
    progress.refresh()
    now[0] = 5.0
    progress.update(20, 2, 4.0, 5.0)
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith("; waiting 2 s for the answer to GET /x")
    assert "exported 20 records in 2 pages" in lines[1]


def test_progress_lines_when_not_a_terminal() -> None:
    """Off a terminal: a timestamped line at most every interval; quiet mode prints none."""
    now = [0.0]
    stream = io.StringIO()
    wall = datetime.fromisoformat("2026-12-06T16:40:01+00:00")
    progress = Progress(stream, "lines", interval=2.0, clock=lambda: now[0], wall=lambda: wall)
    for step in range(1, 11):
        now[0] = step * 0.5
        progress.update(step * 100, step, 200.0, now[0])
    assert stream.getvalue().splitlines() == [
        "2026-12-06T16:40:01Z INFO exported 400 records in 4 pages (200 rec/s, 2.0 s)",
        "2026-12-06T16:40:01Z INFO exported 800 records in 8 pages (200 rec/s, 4.0 s)",
    ]
    quiet = io.StringIO()
    off = Progress(quiet, "off")
    off.update(1, 1, 1.0, 1.0, force=True)
    assert quiet.getvalue() == ""


def test_progress_bar_with_a_known_total() -> None:
    """The demo's terminal progress shows a bar and a percentage when the total is known."""
    stream = io.StringIO()
    progress = Progress(stream, "tty", total=1000, clock=lambda: 100.0)
    progress.update(250, 3, 5000.0, 0.05, force=True)
    progress.message("a warning")
    progress.close()
    text = stream.getvalue()
    assert "25%" in text
    assert "250/1,000 records" in text
    assert "█" in text
    assert "a warning\n" in text
    assert text.endswith("\n")


# -- many accounts -----------------------------------------------------------------------------


def accounts_file(path: Path, body: str) -> Path:
    """Write an accounts file readable only by its owner (as the docs ask)."""
    path.write_text(body, encoding="utf-8")
    path.chmod(0o600)
    return path


async def test_many_accounts_with_one_failing(fake: FakeSendcloud, tmp_path: Path) -> None:
    """Each account gets its own file and checkpoint; a bad one is reported, the rest finish."""
    fake.seed(integrations=3, logs_per_integration=120, seed=9)
    accounts = accounts_file(
        tmp_path / "accounts.toml",
        f"""
[accounts.shop-all]
public_key = "{PUBLIC_KEY}"
secret_key = "{SECRET_KEY}"
base_url = "{fake.base_url}"

[accounts.shop-wrong]
public_key = "{PUBLIC_KEY}"
secret_key = "not-the-secret"
base_url = "{fake.base_url}"

[accounts.shop-three]
public_key = "{PUBLIC_KEY}"
secret_key = "{SECRET_KEY}"
base_url = "{fake.base_url}"
integration = 3
""",
    )
    out_dir = tmp_path / "out"
    result = await run(
        "logs", "export", "--accounts", str(accounts), "--out-dir", str(out_dir),
        "--page-size", "11", "--concurrency", "2", env=base_env(),
    )  # fmt: skip
    assert result.code == 1, result
    assert jsonl_records(out_dir / "shop-all.jsonl") == [as_jsonl(r) for r in fake.logs]
    assert jsonl_records(out_dir / "shop-three.jsonl") == [
        as_jsonl(r) for r in fake.logs if r["integration_id"] == 3
    ]
    assert checkpoint(out_dir / "shop-all.jsonl").done
    assert checkpoint(out_dir / "shop-three.jsonl").done
    failures = [line for line in result.err_lines if "shop-wrong" in line]
    assert len(failures) == 1
    assert "failed" in failures[0]
    assert "401" in failures[0]
    assert "not-the-secret" not in result.err + result.out
    assert "2 of 3 accounts" in result.out
    assert "1 failed" in result.out
    # the failed account resumes on its own; the finished ones are left alone
    fixed = accounts.read_text().replace("not-the-secret", SECRET_KEY)
    accounts.write_text(fixed)
    again = await run(
        "logs", "export", "--accounts", str(accounts), "--out-dir", str(out_dir),
        "--page-size", "11", "--resume", env=base_env(),
    )  # fmt: skip
    assert again.code == 0, again
    assert ids(out_dir / "shop-wrong.jsonl") == [r["id"] for r in fake.logs]


async def test_many_accounts_killed_and_resumed(fake: FakeSendcloud, tmp_path: Path) -> None:
    """kill -9 during a concurrent multi-account CSV export; --resume completes every file once."""
    fake.seed(integrations=2, logs_per_integration=600, seed=10)
    lines = []
    for n in range(4):
        # four accounts (four rate budgets: 400 pages each stay under 1,000 GET/min)
        fake.add_account(f"{PUBLIC_KEY}-{n}", SECRET_KEY)
        lines += [
            f"[accounts.a{n}]",
            f'public_key = "{PUBLIC_KEY}-{n}"',
            f'secret_key = "{SECRET_KEY}"',
            f'base_url = "{fake.base_url}"',
            "",
        ]
    accounts = accounts_file(tmp_path / "accounts.toml", "\n".join(lines))
    out_dir = tmp_path / "out"
    args: tuple[str, ...] = (
        "logs",
        "export",
        "--accounts",
        str(accounts),
        "--out-dir",
        str(out_dir),
    )
    args += ("--format", "csv", "--page-size", "3")
    proc = await start(*args, env=base_env())
    while proc.returncode is None:
        files = list(out_dir.glob("*.csv")) if out_dir.exists() else []
        if sum(f.stat().st_size for f in files) > 200_000:
            proc.kill()
            break
        await asyncio.sleep(0.002)
    await proc.communicate()
    result = await run(*args, "--resume", env=base_env())
    assert result.code == 0, result
    expected = [as_csv(r) for r in fake.logs]
    for n in range(4):
        assert csv_rows(out_dir / f"a{n}.csv") == expected


async def test_many_accounts_against_the_embedded_fake(tmp_path: Path) -> None:
    """--fake --accounts: every account points at one embedded fake, credentials from the file."""
    accounts = accounts_file(
        tmp_path / "accounts.toml",
        f"""
[accounts.one]
public_key = "{PUBLIC_KEY}"
secret_key = "{SECRET_KEY}"
integration = 1

[accounts.bad]
public_key = "someone-else"
secret_key = "wrong"
""",
    )
    result = await run(
        "logs", "export", "--fake", "--accounts", str(accounts), "--out-dir", str(tmp_path),
        env=base_env(),
    )  # fmt: skip
    assert result.code == 1, result
    assert len(ids(tmp_path / "one.jsonl")) == FAKE_LOGS_PER_INTEGRATION
    assert any("account bad: failed" in line for line in result.err_lines)


async def test_accounts_share_one_session_with_bounded_concurrency(
    fake: FakeSendcloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--concurrency N: at most N accounts run at once, all through one shared ClientSession."""
    fake.seed(integrations=2, logs_per_integration=20, seed=15)
    body = "".join(
        f"[accounts.acct{n}]\npublic_key = '{PUBLIC_KEY}'\nsecret_key = '{SECRET_KEY}'\n"
        f"base_url = '{fake.base_url}'\n\n"
        for n in range(6)
    )
    accounts = accounts_file(tmp_path / "accounts.toml", body)
    active = 0
    peak = 0
    sessions: list[object] = []
    original_run = LogExport.run

    async def counting_run(self: Any, client: Any, **kwargs: Any) -> Any:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        try:
            await asyncio.sleep(0.05)
            return await original_run(self, client, **kwargs)
        finally:
            active -= 1

    original_client = AccountPool.client

    def recording_client(self: AccountPool, auth: Any) -> SendcloudClient:
        sessions.append(self.session)
        return original_client(self, auth)

    monkeypatch.setattr(LogExport, "run", counting_run)
    monkeypatch.setattr(AccountPool, "client", recording_client)
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = ["logs", "export", "--accounts", str(accounts), "--out-dir", str(tmp_path / "out")]
    argv += ["--concurrency", "2", "--page-size", "9"]
    code = await asyncio.to_thread(_cli.main, argv, env=base_env(), stdout=stdout, stderr=stderr)
    assert code == 0, stderr.getvalue()
    assert peak == 2
    assert len(sessions) == 6
    assert sessions[0] is not None
    assert all(session is sessions[0] for session in sessions)
    for n in range(6):
        assert ids(tmp_path / "out" / f"acct{n}.jsonl") == [r["id"] for r in fake.logs]


async def test_an_account_whose_export_raises_anything_fails_alone(
    fake: FakeSendcloud, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever an account's export raises (here not an API error: a bug) is that account's
    failure: one line on stderr, a failed row, exit 1; the other accounts finish."""
    fake.seed(integrations=2, logs_per_integration=20, seed=17)
    body = "".join(
        f"[accounts.acct{n}]\npublic_key = '{PUBLIC_KEY}'\nsecret_key = '{SECRET_KEY}'\n"
        f"base_url = '{fake.base_url}'\n\n"
        for n in range(3)
    )
    accounts = accounts_file(tmp_path / "accounts.toml", body)
    original_run = LogExport.run

    async def broken_run(self: Any, client: Any, **kwargs: Any) -> Any:
        if self.path.name == "acct1.jsonl":
            raise RuntimeError("an unexpected state")
        return await original_run(self, client, **kwargs)

    monkeypatch.setattr(LogExport, "run", broken_run)
    stdout, stderr = io.StringIO(), io.StringIO()
    argv = ["logs", "export", "--accounts", str(accounts), "--out-dir", str(tmp_path / "out")]
    argv += ["--concurrency", "1"]
    code = await asyncio.to_thread(_cli.main, argv, env=base_env(), stdout=stdout, stderr=stderr)
    assert code == 1, stderr.getvalue()
    failures = [line for line in stderr.getvalue().splitlines() if "acct1" in line]
    assert len(failures) == 1
    assert "account acct1: failed: " in failures[0]
    assert "an unexpected state" in failures[0]
    rows = [line.split() for line in stdout.getvalue().splitlines()]
    assert [row[:2] for row in rows if row and row[0].startswith("acct")] == [
        ["acct0", "ok"],
        ["acct1", "failed"],
        ["acct2", "ok"],
    ]
    assert "2 of 3 accounts" in stdout.getvalue()
    for n in (0, 2):
        assert ids(tmp_path / "out" / f"acct{n}.jsonl") == [r["id"] for r in fake.logs]


async def test_oauth2_credentials_from_env_and_accounts_file(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """OAuth2 client credentials work from the environment and from an accounts file."""
    fake.seed(integrations=1, logs_per_integration=30, seed=16)
    env = base_env(
        SENDCLOUD_BASE_URL=fake.base_url,
        SENDCLOUD_CLIENT_ID=fake.client_id,
        SENDCLOUD_CLIENT_SECRET=fake.client_secret,
        SENDCLOUD_TOKEN_URL=fake.token_url,
    )
    out = tmp_path / "env.jsonl"
    result = await run("logs", "export", "--out", str(out), env=env)
    assert result.code == 0, result
    assert ids(out) == [r["id"] for r in fake.logs]
    assert fake.client_secret not in result.out + result.err
    accounts = accounts_file(
        tmp_path / "accounts.toml",
        f"""
[accounts.oauth]
client_id = "{fake.client_id}"
client_secret = "{fake.client_secret}"
token_url = "{fake.token_url}"
base_url = "{fake.base_url}"
""",
    )
    result = await run(
        "logs", "export", "--accounts", str(accounts), "--out-dir", str(tmp_path / "out"),
        env=base_env(),
    )  # fmt: skip
    assert result.code == 0, result
    assert ids(tmp_path / "out" / "oauth.jsonl") == [r["id"] for r in fake.logs]


# -- integrations ------------------------------------------------------------------------------


async def test_integrations_list_and_get(fake: FakeSendcloud) -> None:
    """list prints a table (or --json equal to the server's data); get prints one."""
    fake.seed(integrations=3, logs_per_integration=0, seed=11)
    env = fake_env(fake)
    table, listed, one, detail, missing = await asyncio.gather(
        run("integrations", "list", env=env),
        run("integrations", "list", "--json", env=env),
        run("integrations", "get", "2", "--json", env=env),
        run("integrations", "get", "2", env=env),
        run("integrations", "get", "99", env=env),
    )
    assert table.code == 0, table
    lines = table.out.splitlines()
    assert lines[0].split()[:3] == ["ID", "SHOP", "NAME"]
    assert len(lines) == 4
    for record in fake.integrations.values():
        assert any(
            line.startswith(f"{record['id']} ") and record["shop_name"] in line for line in lines
        )
    assert listed.code == 0, listed
    data = json.loads(listed.out)
    assert sorted(i["id"] for i in data) == [1, 2, 3]
    for item in data:
        server = fake.integrations[item["id"]]
        for key in ("shop_name", "shop_url", "type", "webhook_url", "feedback_type"):
            assert item[key] == server[key]
    assert one.code == 0, one
    assert json.loads(one.out)["shop_name"] == fake.integrations[2]["shop_name"]
    assert detail.code == 0
    assert fake.integrations[2]["shop_name"] in detail.out
    assert_one_error_line(missing, 1, "404")


async def test_fake_integrations_list() -> None:
    """integrations list --fake needs no credentials."""
    result = await run("integrations", "list", "--fake", env=base_env())
    assert result.code == 0, result
    assert len(result.out.splitlines()) == FAKE_INTEGRATIONS + 1


# -- bad input: exit 2, one line, nothing sent -------------------------------------------------


async def test_missing_credentials(fake: FakeSendcloud, tmp_path: Path) -> None:
    """No credentials in the environment: exit 2 with a reason naming the variables."""
    result, partial, both = await asyncio.gather(
        run(
            "logs", "export", "--out", str(tmp_path / "x.jsonl"),
            env=base_env(SENDCLOUD_BASE_URL=fake.base_url),
        ),
        run(
            "integrations", "list",
            env=base_env(SENDCLOUD_BASE_URL=fake.base_url, SENDCLOUD_PUBLIC_KEY=PUBLIC_KEY),
        ),
        run(
            "integrations", "list",
            env=fake_env(fake, SENDCLOUD_CLIENT_ID="id", SENDCLOUD_CLIENT_SECRET="s"),
        ),
    )  # fmt: skip
    assert_one_error_line(result, 2, "SENDCLOUD_PUBLIC_KEY", "SENDCLOUD_CLIENT_ID")
    assert_one_error_line(partial, 2, "SENDCLOUD_SECRET_KEY is not set")
    assert_one_error_line(both, 2, "unset one pair")
    assert fake.requests == []


async def test_credentials_are_never_taken_from_argv(fake: FakeSendcloud, tmp_path: Path) -> None:
    """There is no option for a secret; trying one is a usage error that does not echo it."""
    result = await run(
        "logs", "export", "--out", str(tmp_path / "x.jsonl"), "--secret-key", SECRET_KEY,
        env=fake_env(fake),
    )  # fmt: skip
    assert_one_error_line(result, 2, "unrecognized arguments: --secret-key")
    assert fake.requests == []


async def test_plain_http_base_url_is_refused(fake: FakeSendcloud, tmp_path: Path) -> None:
    """SENDCLOUD_BASE_URL over plain http to a non-loopback host is refused before sending."""
    env = fake_env(fake)
    env["SENDCLOUD_BASE_URL"] = "http://panel.example.com/api/v3"
    result = await run("logs", "export", "--out", str(tmp_path / "x.jsonl"), env=env)
    assert_one_error_line(result, 2, "SENDCLOUD_BASE_URL", "https")


def in_process(*argv: str, env: dict[str, str]) -> Result:
    """Run ``main()`` in this process (for checks that end before any request)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = _cli.main(list(argv), env=env, stdout=stdout, stderr=stderr)
    return Result(code, stdout.getvalue(), stderr.getvalue())


#: A base URL where nothing listens: a request sent by mistake fails with exit 1, not 2.
NOWHERE = "http://127.0.0.1:9/api/v3"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "cannot read the accounts file"),
        ("[accounts.a\npublic_key = 1", "not valid TOML"),
        ("[accounts.a]\npublic_key = 'k'\n", "secret_key is missing"),
    ],
)
async def test_unusable_accounts_file(
    fake: FakeSendcloud, tmp_path: Path, content: str | None, needle: str
) -> None:
    """A missing, unparsable or incomplete accounts file: exit 2, one line, nothing sent."""
    path = tmp_path / "accounts.toml"
    if content is not None:
        path.write_text(content)
    result = await run(
        "logs", "export", "--accounts", str(path), "--out-dir", str(tmp_path / "out"),
        env=fake_env(fake),
    )  # fmt: skip
    assert_one_error_line(result, 2, needle)
    assert fake.requests == []


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("[accounts.a]\npublic_key = 'k'\nsecret_key = 's'\nclient_id = 'c'\n", "not both"),
        ("[accounts.a]\nclient_secret = 's'\n", "client_id is missing"),
        ("[accounts.a]\npublic_key = 'k'\nsecret_key = 's'\npasword = 'x'\n", "unknown keys"),
        ("[accounts.a]\npublic_key = 'k'\nsecret_key = ''\n", "non-empty string"),
        ("[accounts.a]\npublic_key = 'k'\nsecret_key = 's'\ntoken_url = 'x'\n", "token_url"),
        ("[accounts.'a b']\npublic_key = 'k'\nsecret_key = 's'\n", "name may hold only"),
        ("[accounts.A]\npublic_key = 'k'\nsecret_key = 's'\n[accounts.a]\n", "used twice"),
        ("[accounts.a]\npublic_key = 'k'\nsecret_key = 's'\nintegration = 0\n", "integration"),
        ("[accounts.a]\npublic_key = 'k'\nsecret_key = 's'\nbase_url = 'ftp://x'\n", "base_url"),
        ("[accounts]\na = 1\n", "must be a table"),
        ("title = 'x'\n", "unknown top-level keys"),
        ("", "no [accounts.NAME] tables"),
    ],
)
def test_inconsistent_accounts_file(tmp_path: Path, content: str, needle: str) -> None:
    """Every inconsistency in an accounts file is one line, exit 2, never a secret's value."""
    path = tmp_path / "accounts.toml"
    path.write_text(content)
    result = in_process(
        "logs", "export", "--accounts", str(path), "--out-dir", str(tmp_path / "out"),
        env=base_env(SENDCLOUD_BASE_URL=NOWHERE),
    )  # fmt: skip
    assert_one_error_line(result, 2, needle)
    assert "'s'" not in result.err


@pytest.mark.parametrize("where", ["directory", "under-a-file"])
async def test_unwritable_output(fake: FakeSendcloud, tmp_path: Path, where: str) -> None:
    """An output path that cannot be written: exit 2 before any request."""
    (tmp_path / "file").write_text("")
    out = {
        "directory": tmp_path,
        "under-a-file": tmp_path / "file" / "x.jsonl",
    }[where]
    result = await run("logs", "export", "--out", str(out), env=fake_env(fake))
    assert_one_error_line(result, 2, "cannot write")
    assert fake.requests == []


async def test_resume_without_checkpoint(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--resume where data lies that no checkpoint describes: exit 2, nothing sent."""
    out = tmp_path / "x.jsonl"
    out.write_text('{"id": 1}\n')
    result = await run("logs", "export", "--out", str(out), "--resume", env=fake_env(fake))
    assert_one_error_line(result, 2, "no checkpoint")
    assert fake.requests == []
    assert out.read_text() == '{"id": 1}\n'


async def test_resume_with_nothing_written_yet_starts(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--resume with no output and no checkpoint (or an empty output) simply starts."""
    fake.seed(integrations=1, logs_per_integration=12, seed=17)
    missing, empty = tmp_path / "new" / "x.jsonl", tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    for out in (missing, empty):
        result = await run("logs", "export", "--out", str(out), "--resume", env=fake_env(fake))
        assert result.code == 0, result
        assert "resumed" not in result.out
        assert ids(out) == [r["id"] for r in fake.logs]
        assert checkpoint(out).done


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (("--integration", "2"), "integration_id 2 here but 1"),
        (("--format", "csv"), "format csv here but jsonl"),
        (("--page-size", "9"), "page_size 9 here but 5"),
        (("--base-url", "http://127.0.0.1:9/api/v3"), "base_url http://127.0.0.1:9/api/v3 here"),
    ],
)
async def test_resume_for_another_query(
    fake: FakeSendcloud, tmp_path: Path, change: tuple[str, str], needle: str
) -> None:
    """A checkpoint for another integration, format, page size or base URL is refused (exit 2)."""
    fake.seed(integrations=2, logs_per_integration=30, seed=12)
    out = tmp_path / "x.log"  # an extension that implies no format
    args = ["logs", "export", "--out", str(out), "--integration", "1", "--page-size", "5"]
    first = await run(*args, env=fake_env(fake))
    assert first.code == 0, first
    env = fake_env(fake)
    option, value = change
    if option == "--base-url":
        env["SENDCLOUD_BASE_URL"] = value
    elif option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    fake.clear_requests()
    result = await run(*args, "--resume", env=env)
    assert_one_error_line(result, 2, "another export", needle)
    assert fake.requests == []


async def test_damaged_checkpoint(fake: FakeSendcloud, tmp_path: Path) -> None:
    """A checkpoint that is not JSON is refused with exit 2."""
    out = tmp_path / "x.jsonl"
    out.write_text("")
    checkpoint_path(out).write_text("{oops")
    result = await run("logs", "export", "--out", str(out), "--resume", env=fake_env(fake))
    assert_one_error_line(result, 2, "damaged")
    assert fake.requests == []


async def test_bad_usage_from_the_console_script(fake: FakeSendcloud, tmp_path: Path) -> None:
    """An unknown option value and a contradictory pair: exit 2, one line each, nothing sent."""
    env = fake_env(fake)
    results = await asyncio.gather(
        run("integrations", "get", "abc", env=env),
        run("logs", "export", "--out", str(tmp_path / "x"), "--out-dir", "d", env=env),
    )
    for result in results:
        assert_one_error_line(result, 2)
    assert fake.requests == []


@pytest.mark.parametrize(
    "args",
    [
        ("logs", "export", "--accounts", "{tmp}/a.toml"),
        ("logs", "export", "--accounts", "{tmp}/a.toml", "--out-dir", "d", "--integration", "1"),
        ("logs", "export", "--out", "{tmp}/x", "--concurrency", "2"),
        ("logs", "export", "--out", "{tmp}/x", "--page-size", "101"),
        ("logs", "export", "--out", "{tmp}/x", "--page-size", "0"),
        ("logs", "export", "--out", "{tmp}/x", "--format", "xml"),
        ("logs", "export", "--out", "{tmp}/x", "--timeout", "-1"),
        ("logs", "export"),
        ("logs",),
        ("integrations", "get", "0"),
    ],
)
def test_bad_usage(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Contradictory or invalid options: exit 2 and one line, before any request."""
    (tmp_path / "a.toml").write_text(
        f"[accounts.a]\npublic_key = '{PUBLIC_KEY}'\nsecret_key = '{SECRET_KEY}'\n"
    )
    argv = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    env = base_env(
        SENDCLOUD_BASE_URL=NOWHERE, SENDCLOUD_PUBLIC_KEY=PUBLIC_KEY, SENDCLOUD_SECRET_KEY=SECRET_KEY
    )
    assert_one_error_line(in_process(*argv, env=env), 2)


# -- runtime failures: exit 1, one line --------------------------------------------------------


async def test_wrong_credentials_fail_with_one_line(fake: FakeSendcloud, tmp_path: Path) -> None:
    """A 401 is one line on stderr, exit 1, and never shows the secret."""
    fake.seed(integrations=1, logs_per_integration=5, seed=13)
    env = fake_env(fake)
    env["SENDCLOUD_SECRET_KEY"] = "a-wrong-secret"
    result = await run("logs", "export", "--out", str(tmp_path / "x.jsonl"), env=env)
    assert_one_error_line(result, 1, "401")
    assert "a-wrong-secret" not in result.err + result.out


async def test_server_errors_after_retries_fail_with_one_line(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """5xx after the retries: one error line (after a warning per retry), exit 1."""
    fake.seed(integrations=1, logs_per_integration=5, seed=14)
    fake.script("GET", "/integrations/logs", ScriptedResponse(503), ScriptedResponse(503))
    result = await run(
        "logs", "export", "--out", str(tmp_path / "x.jsonl"), "--max-retries", "1",
        env=fake_env(fake),
    )  # fmt: skip
    assert result.code == 1, result
    errors = [line for line in result.err_lines if logged(line)[0] == "ERROR"]
    warnings = [line for line in result.err_lines if logged(line)[0] == "WARNING"]
    assert len(errors) == 1
    assert "503" in errors[0]
    assert len(warnings) == 1
    assert "retry 1" in warnings[0]
    assert len(result.err_lines) == 2
    assert len(fake.requests) == 2


# -- the rest ----------------------------------------------------------------------------------


async def test_demo_runs_quickly_and_verifies(tmp_path: Path) -> None:
    """demo: lists integrations, exports tens of thousands of logs and verifies exactly once."""
    out = tmp_path / "demo.jsonl"
    result = await run("demo", "--out", str(out), env=base_env())
    assert result.code == 0, result
    assert "integrations list" in result.out
    assert "SHOP NAME" in result.out
    assert "verified: 30,000 logs, 30,000 distinct ids" in result.out
    assert len(ids(out)) == 30_000


async def test_version_and_python_dash_m() -> None:
    """--version works from the console script and from python -m sendcloud_async."""
    result = await run("--version", env=base_env())
    assert (result.code, result.out.strip()) == (0, f"sendcloud-async {__version__}")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sendcloud_async", "--version",
        stdout=asyncio.subprocess.PIPE, env=base_env(),
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    assert out.decode().strip() == f"sendcloud-async {__version__}"


@pytest.mark.parametrize("command", ["export", "watch"])
async def test_an_output_whose_directory_cannot_be_made_is_refused_before_any_request(
    fake: FakeSendcloud, tmp_path: Path, command: str
) -> None:
    """``--out`` under a regular file: one usage error naming the directory, no request,
    nothing written."""
    blocker = tmp_path / "file"
    blocker.write_bytes(b"x")
    out = blocker / "sub" / "logs.jsonl"
    args = ["logs", command, "--out", str(out)] + (["--once"] if command == "watch" else [])
    result = await run(*args, env=fake_env(fake))
    assert_one_error_line(
        result, 2, f"cannot write {out}: cannot create the directory {out.parent}: Not a directory"
    )
    assert fake.requests == []
    assert os.listdir(tmp_path) == ["file"]
