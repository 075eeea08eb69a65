"""Output for services: log lines off a terminal, ``--log-format json``, ``--once``, the
countdown on a terminal, and error lines that name the file and what was being done.

The one long test (``test_a_watch_without_a_terminal_for_60_s_…``, marked ``slow``)
runs ``logs watch --fake`` for a full minute, twice at once (text and JSON); the rest
take seconds.
"""

from __future__ import annotations

import asyncio
import errno
import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest

from sendcloud_async import AuthenticationError
from sendcloud_async._checkpoint import checkpoint_path
from sendcloud_async._cli.logline import Record, legacy_record, render, usage_line
from sendcloud_async._cli.output import failure
from sendcloud_async._cli.progress import STATUS_REPEAT, Progress, Status, countdown
from sendcloud_async._fileio import FileWriteError, writing
from sendcloud_async._watch_files import state_path
from sendcloud_async.testing import FakeSendcloud
from tests._pty import on_pty
from tests.functional.test_cli import (
    SCRIPT,
    SECRET_KEY,
    assert_one_error_line,
    base_env,
    fake_env,
    logged,
    run,
    start,
)

#: The seconds the long test watches (the issue asks for a minute).
LONG_RUN = 60.0
#: ``--status-interval`` of the long test: at most one status line every this many seconds.
STATUS_EVERY = 5.0


def ids_in(path: Path) -> list[int]:
    """The ``id`` of every line of a JSON Lines file."""
    return [msgspec.json.decode(line)["id"] for line in path.read_bytes().splitlines()]


def no_failing(fake: FakeSendcloud) -> None:
    """Clear every integration's failure, so that no health event adds a line."""
    for integration in fake.integrations.values():
        integration["started_failing_at"] = None


def utc(text: str) -> datetime:
    """A line's ISO 8601 time (``…Z``) as an aware datetime."""
    value = datetime.fromisoformat(text)
    assert value.utcoffset() == timedelta(0), text
    return value


async def timed_lines(proc: asyncio.subprocess.Process, until: float) -> list[tuple[float, str]]:
    """stderr's lines with the (monotonic) time each arrived, read until ``until``."""
    assert proc.stderr is not None
    lines: list[tuple[float, str]] = []
    while (left := until - time.monotonic()) > 0:
        try:
            raw = await asyncio.wait_for(proc.stderr.readline(), left)
        except TimeoutError:
            break
        if not raw:
            break
        lines.append((time.monotonic(), raw.decode().rstrip("\n")))
    return lines


async def stop(proc: asyncio.subprocess.Process) -> tuple[int, list[str]]:
    """SIGTERM, then the exit status and the rest of stderr."""
    proc.send_signal(signal.SIGTERM)
    _, rest = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, rest.decode().splitlines()


# -- the long one: a minute of watching without a terminal ---------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(LONG_RUN + 120)
async def test_a_watch_without_a_terminal_for_60_s_logs_timestamped_lines_at_a_bounded_rate(
    tmp_path: Path,
) -> None:
    """THE LONG TEST (60 s). ``logs watch --fake`` polls every second while its fake keeps
    adding logs, so the status changes all the time; with ``--status-interval 5`` stderr
    (a pipe) gets timestamped lines, at most one status line every 5 s, never a redrawn
    line. The same minute with ``--log-format json``: every line a JSON object."""
    args = ("logs", "watch", "--fake", "--interval", "1", "--status-interval", str(STATUS_EVERY))
    began = datetime.now(UTC)
    text_proc = await start(*args, "--out", str(tmp_path / "text.jsonl"), env=base_env())
    json_proc = await start(
        *args, "--out", str(tmp_path / "json.jsonl"), "--log-format", "json", env=base_env()
    )
    until = time.monotonic() + LONG_RUN
    text_timed, json_timed = await asyncio.gather(
        timed_lines(text_proc, until), timed_lines(json_proc, until)
    )
    (text_code, text_rest), (json_code, json_rest) = await asyncio.gather(
        stop(text_proc), stop(json_proc)
    )
    ended = datetime.now(UTC)
    assert (text_code, json_code) == (0, 0), (text_rest, json_rest)
    most = int(LONG_RUN / STATUS_EVERY) + 1  # the documented rate, and one to spare

    # text: "2026-12-06T16:40:01Z LEVEL message", in time order, within the run
    lines = [line for _, line in text_timed] + text_rest
    assert all("\r" not in line and "\x1b" not in line for line in lines)
    stamps = [utc(line.split(" ", 1)[0]) for line in lines if logged(line)]
    assert stamps == sorted(stamps)
    assert began - timedelta(seconds=1) <= stamps[0]
    assert stamps[-1] <= ended + timedelta(seconds=1)
    assert logged(lines[0]) == ("INFO", "watching 1 account, polling every 1 s")
    assert logged(lines[-1]) == ("INFO", "stopped; every log written so far is saved")
    status = [
        (at, message)
        for at, line in text_timed
        if re.match(r"[\d,]+ new logs · ", message := logged(line)[1])
    ]
    assert 8 <= len(status) <= most, status
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(status)]
    assert min(gaps) >= STATUS_EVERY - 0.3, gaps
    counts = [int(m.split(" new logs", 1)[0].replace(",", "")) for _, m in status]
    assert counts == sorted(counts)
    assert counts[-1] > counts[0]  # it changed, so it was written
    assert counts[-1] <= len(ids_in(tmp_path / "text.jsonl"))

    # json: one object per line with ts, level, event, message and the status's fields
    records = [json.loads(line) for _, line in json_timed] + [json.loads(x) for x in json_rest]
    for record in records:
        assert {"ts", "level", "event", "message"} <= record.keys(), record
        assert record["level"] in ("debug", "info", "warning", "error")
    times = [utc(r["ts"]) for r in records]
    assert times == sorted(times)
    assert (records[0]["event"], records[-1]["event"]) == ("started", "stopped")
    assert records[0]["accounts"] == 1
    assert records[0]["interval"] == 1.0
    statuses = [r for r in records if r["event"] == "status"]
    assert 8 <= len(statuses) <= most, statuses
    status_times = [utc(r["ts"]) for r in statuses]
    assert min(b - a for a, b in itertools.pairwise(status_times)) >= timedelta(
        seconds=STATUS_EVERY - 0.3
    )
    for record in statuses:
        assert record["accounts"] == 1
        assert isinstance(record["new_logs"], int)
        assert record["failing_accounts"] == {}
        assert isinstance(record["failing_integrations"], dict)
        assert utc(record["last_poll"]) <= utc(record["ts"])
        assert record["next_poll_in"] is None or 0 <= record["next_poll_in"] <= 1.0
        assert f"{record['new_logs']:,} new logs" in record["message"]
    news = [r["new_logs"] for r in statuses]
    assert news == sorted(news)
    assert news[-1] > news[0]


def test_date_times_in_a_json_line_are_written_as_its_stamp() -> None:
    """A date-time field has the stamp's form and precision, so it compares with ``ts``."""
    at = datetime(2026, 12, 6, 21, 36, 15, 823000, tzinfo=UTC)
    polled = datetime(2026, 12, 6, 22, 36, 15, 823020, tzinfo=timezone(timedelta(hours=1)))
    line = json.loads(render(Record("info", "status", "ok", {"last_poll": polled}), "json", at))
    assert line["ts"] == "2026-12-06T21:36:15.823Z"
    assert line["last_poll"] == "2026-12-06T21:36:15.823Z"


def test_a_day_of_status_lines_is_bounded() -> None:
    """A simulated day off a terminal at the default interval: an idle watch writes a status
    line every 10 minutes (144), a busy one at most one a minute (1,440), never ~43,000."""

    def day(changing: bool) -> int:
        now = [0.0]
        stream = io.StringIO()
        progress = Progress(stream, "lines", clock=lambda: now[0])
        progress.follow(lambda: Status(f"{int(now[0]) if changing else 0:,} new logs"))
        while now[0] < 86_400:
            now[0] += 0.5
            progress.refresh(force=True)  # force does not shorten the interval off a terminal
        return len(stream.getvalue().splitlines())

    assert STATUS_REPEAT == 600.0
    assert day(changing=False) == 144
    assert day(changing=True) == 1440


def test_a_countdown_is_not_a_change() -> None:
    """Off a terminal the status's numbers that only count (a countdown, a clock) are left out
    of 'did it change'; what it is waiting for is in."""
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(stream, "lines", interval=1.0, clock=lambda: now[0])
    note = ["waiting 41 s for the rate limit"]
    progress.note = lambda: note[0]
    progress.update(10, 1, 5.0, 2.0)
    for step in range(1, 40):
        now[0] = step * 0.5
        note[0] = f"waiting {41 - step} s for the rate limit"
        progress.tick()
    assert len(stream.getvalue().splitlines()) == 1  # the wait appeared once, then counted
    note[0] = "retrying in 2.0 s after 503"
    now[0] += 1.0
    progress.tick()
    assert len(stream.getvalue().splitlines()) == 2
    assert countdown(2.01) == 3
    assert countdown(0.999) == 1
    assert countdown(0.0) == 0


# -- on a terminal: the countdown counts, nothing after "stopped" -------------------------------


async def on_terminal(
    *args: str, env: dict[str, str], seconds: float | None
) -> tuple[int, str, bytes]:
    """Run the command with stderr on a pseudo-terminal; Ctrl-C (SIGINT) after ``seconds``
    (``None``: let it end). (exit status, what the terminal got, stdout)."""
    code, chunks, out = await on_pty(*args, env=env, interrupt_after=seconds)
    return code, b"".join(chunk for _, chunk in chunks).decode(errors="replace"), out


async def test_on_a_terminal_the_countdown_counts_and_nothing_is_drawn_after_stopped(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A watch polling every 4 s on a terminal: 'next poll in N s' shows 4, 3, 2, 1 between
    two polls; Ctrl-C ends the live line, and after the 'stopped' line nothing is drawn."""
    fake.seed(integrations=1, logs_per_integration=3)
    no_failing(fake)
    out = tmp_path / "logs.jsonl"
    code, text, _ = await on_terminal(
        "logs", "watch", "--out", str(out), "--interval", "4", env=fake_env(fake), seconds=9.5
    )
    assert code == 0, text
    counted = [int(n) for n in re.findall(r"next poll in (\d+) s", text)]
    assert {4, 3, 2, 1} <= set(counted), counted
    # each second shown is drawn again only when it changes: 4 3 2 1 (0) 4 3 2 1 …, not 40 times
    shown = [n for n, _ in itertools.groupby(counted)]
    assert len(counted) <= len(shown) + 6, counted
    assert max(b - a for a, b in itertools.pairwise(shown)) >= 3  # it went back up: a poll
    head, sep, tail = text.rpartition("sendcloud-async: stopped; every log written so far is saved")
    assert sep, text
    assert head.endswith("\n")  # the live line was ended first, not overwritten
    assert tail in ("\r\n", "\n"), repr(tail)  # and nothing was drawn after it
    assert "new logs" not in tail


async def test_json_on_a_terminal_has_no_live_line(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--log-format json is for machines even on a terminal: JSON lines, no line redrawn."""
    fake.seed(integrations=1, logs_per_integration=3)
    no_failing(fake)
    code, text, _ = await on_terminal(
        "logs", "watch", "--out", str(tmp_path / "logs.jsonl"), "--interval", "1",
        "--status-interval", "1", "--log-format", "json", env=fake_env(fake), seconds=3.5,
    )  # fmt: skip
    assert code == 0, text
    assert "\x1b" not in text
    records = [json.loads(line) for line in text.replace("\r\n", "\n").splitlines()]
    assert records[0]["event"] == "started"
    assert records[-1]["event"] == "stopped"
    assert any(r["event"] == "status" for r in records)


# -- --once: the summary only --------------------------------------------------------------------


async def test_once_prints_only_its_summary(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--once (cron): no status line, no start line, on stderr nothing at all; stdout holds the
    summary (a JSON line with --log-format json). On a terminal as well."""
    fake.seed(integrations=2, logs_per_integration=30)
    no_failing(fake)
    out = tmp_path / "logs.jsonl"
    args = ("logs", "watch", "--out", str(out), "--once", "--status-interval", "0.01")
    first = await run(*args, "--start", "all", env=fake_env(fake))
    assert (first.code, first.err) == (0, ""), first
    assert first.out == "appended 60 new logs (60 in all)\n"
    fake.add_log(1)
    second = await run(*args, "--log-format", "json", env=fake_env(fake))
    assert (second.code, second.err) == (0, ""), second
    (line,) = second.out.splitlines()
    summary = json.loads(line)
    assert summary["event"] == "summary"
    assert summary["message"] == "appended 1 new logs (61 in all)"
    assert (summary["new_logs"], summary["records"], summary["failed_accounts"]) == (1, 61, [])
    fake.add_log(2)
    code, text, stdout = await on_terminal(*args, env=fake_env(fake), seconds=None)
    assert code == 0
    assert text == ""  # not even a status line drawn and cleared
    assert stdout.decode() == "appended 1 new logs (62 in all)\n"
    assert ids_in(out) == [r["id"] for r in fake.logs]


# -- errors name the file and what was being done ----------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    """A named pipe (not a file an export can keep)."""
    path = tmp_path / "pipe.jsonl"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize(
    "command",
    [
        ("logs", "export", "--fake"),
        ("logs", "export", "--fake", "--per-integration"),
        ("logs", "watch", "--fake", "--once"),
        ("logs", "watch", "--fake"),
        ("demo",),
    ],
)
async def test_dev_full_as_output_is_refused_naming_it(
    fake: FakeSendcloud, command: tuple[str, ...]
) -> None:
    """--out /dev/full (Linux): one line 'cannot write /dev/full: it is a character device, not
    a regular file …', exit 2, nothing sent, no checkpoint or state left beside it in /dev."""
    target = Path("/dev/full")
    assert os.path.exists(target), "this test needs Linux's /dev/full"  # noqa: ASYNC240
    result = await run(*command, "--out", str(target), env=fake_env(fake))
    assert_one_error_line(
        result, 2, "cannot write /dev/full: it is a character device, not a regular file"
    )
    assert "Errno" not in result.err
    assert fake.requests == []
    assert not checkpoint_path(target).exists()
    assert not state_path(target).exists()


async def test_a_pipe_as_output_is_refused_naming_it(fake: FakeSendcloud, fifo: Path) -> None:
    """A named pipe as --out: refused the same way (it is a pipe), nothing sent or written."""
    for command in (("logs", "export"), ("logs", "watch", "--once")):
        result = await run(*command, "--out", str(fifo), env=fake_env(fake))
        assert_one_error_line(result, 2, f"cannot write {fifo}: it is a pipe, not a regular file")
    assert fake.requests == []
    assert sorted(p.name for p in fifo.parent.iterdir()) == [fifo.name]


#: Runs the command with a file size limit: a write past ``limit`` bytes fails with EFBIG
#: (SIGXFSZ ignored), as a full disk fails one with ENOSPC, without root or a mount.
_LIMITED = (
    "import os, resource, signal, sys; "
    "limit = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)); "
    "signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
    "os.execv(sys.argv[2], sys.argv[2:])"
)


async def run_limited(limit: int, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the console script, no file of it growing past ``limit`` bytes."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _LIMITED, str(limit), str(SCRIPT), *args, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 64 KiB tmpfs: a disk that really fills up (mounting one needs root)."""
    where = tmp_path / "disk"
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)],
        capture_output=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(
            "a full disk is made with a 64 KiB tmpfs, which only root may mount; the "
            "file-size-limit tests check the same error path without it"
        )
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


async def test_a_watch_that_cannot_append_says_which_file_and_loses_nothing(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A write that fails mid-watch (a file size limit: EFBIG): one error line 'cannot write
    FILE (appending the new logs): File too large', exit 1, not 'unexpected OSError'; the
    restart continues after the last saved batch and every log is in the file once."""
    fake.seed(integrations=1, logs_per_integration=200)
    no_failing(fake)
    out = tmp_path / "logs.jsonl"
    args = ("logs", "watch", "--out", str(out), "--start", "all", "--page-size", "10")
    code, _, err = await run_limited(20_000, *args, env=fake_env(fake))
    assert code == 1, err
    errors = [line for line in err.splitlines() if logged(line)[0] == "ERROR"]
    assert len(errors) == 1, err
    assert logged(errors[0])[1] == (
        f"cannot write {out} (appending the new logs): {os.strerror(errno.EFBIG)}"
    )
    for word in ("unexpected", "Errno", "Traceback"):
        assert word not in err
    saved = msgspec.json.decode(state_path(out).read_bytes())
    assert 0 < saved["records"] < 200
    done = await run(*args, "--once", env=fake_env(fake))
    assert done.code == 0, done
    assert ids_in(out) == [r["id"] for r in fake.logs]


async def test_an_export_that_cannot_append_says_which_file_and_resumes(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """The same for an export: 'cannot write FILE (appending page N): File too large; K
    records are saved, --resume continues' (a JSON line with --log-format json), then
    --resume completes it exactly once."""
    fake.seed(integrations=1, logs_per_integration=200)
    out = tmp_path / "logs.jsonl"
    args = ("logs", "export", "--out", str(out), "--page-size", "10")
    code, _, err = await run_limited(20_000, *args, "--log-format", "json", env=fake_env(fake))
    assert code == 1, err
    (line,) = err.splitlines()
    record = json.loads(line)
    saved = record["records_saved"]
    assert (record["level"], record["event"], record["path"]) == ("error", "error", str(out))
    # 10 logs on the first page, 9 on each after it (each lists one log again)
    pages = 0 if saved == 0 else 1 + (saved - 10) // 9
    assert record["message"] == (
        f"cannot write {out} (appending page {pages + 1}): {os.strerror(errno.EFBIG)}; "
        f"{saved:,} records are saved, --resume continues"
    )
    resumed = await run(*args, "--resume", env=fake_env(fake))
    assert resumed.code == 0, resumed
    assert ids_in(out) == [r["id"] for r in fake.logs]


@pytest.mark.parametrize("command", ["watch", "export"])
async def test_a_full_disk_is_named_with_what_was_being_done(
    fake: FakeSendcloud, small_disk: Path, command: str
) -> None:
    """A disk that fills up (a 64 KiB tmpfs): 'cannot write FILE (…): No space left on
    device', one line, exit 1; with room again the run completes exactly once."""
    fake.seed(integrations=1, logs_per_integration=300)
    no_failing(fake)
    out = small_disk / "logs.jsonl"
    args: tuple[str, ...] = ("logs", command, "--out", str(out), "--page-size", "10")
    if command == "watch":
        args += ("--start", "all", "--once")
    result = await run(*args, env=fake_env(fake))
    assert result.code == 1, result
    (line,) = [x for x in result.err_lines if logged(x)[0] == "ERROR"]
    message = logged(line)[1]
    assert re.fullmatch(
        rf"cannot write {re.escape(str(small_disk))}/logs\.jsonl(\.watch\.json|\.checkpoint\.json)?"
        rf" \((appending .+|saving the (watch state|checkpoint))\): No space left on device.*",
        message,
    ), message
    subprocess.run(  # noqa: ASYNC221 - a moment's remount
        ["mount", "-o", "remount,size=4m", str(small_disk)], check=True, capture_output=True
    )
    again = await run(*args, *(() if command == "watch" else ("--resume",)), env=fake_env(fake))
    assert again.code == 0, again
    assert ids_in(out) == [r["id"] for r in fake.logs]


# -- --log-format json everywhere: usage errors, failures, the SDK's log ------------------------


async def test_json_usage_errors_are_json_lines(fake: FakeSendcloud) -> None:
    """A usage error with --log-format json is a JSON line (event usage_error), before or after
    the command, found by the parser or by the command; without it, the classic line."""
    for args in (
        ("logs", "watch", "--out", "x.jsonl", "--interval", "0", "--log-format", "json"),
        ("--log-format=json", "logs", "watch", "--bogus"),
        ("--log-format", "json", "logs", "watch", "--out", "-"),
    ):
        result = await run(*args, env=fake_env(fake))
        assert result.code == 2, result
        (line,) = result.err_lines
        record = json.loads(line)
        assert (record["level"], record["event"]) == ("error", "usage_error"), record
        utc(record["ts"])
    bad = await run("--log-format", "yaml", "integrations", "list", env=fake_env(fake))
    assert_one_error_line(bad, 2, "--log-format", "invalid choice", "'yaml'")
    assert fake.requests == []


async def test_json_failures_and_the_sdk_log_are_json_lines(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """-v --log-format json: the SDK's log records are JSON lines (event sdk_log, the logger),
    never a secret; the summary on stdout is a JSON line; a 401 is one JSON error line."""
    fake.seed(integrations=1, logs_per_integration=20)
    out = tmp_path / "v.jsonl"
    args = ("logs", "export", "--out", str(out), "--page-size", "10", "--log-format", "json")
    result = await run("-v", *args, env=fake_env(fake))
    assert result.code == 0, result
    records = [json.loads(line) for line in result.err_lines]
    sdk = [r for r in records if r["event"] == "sdk_log"]
    assert len(sdk) == len(fake.requests) == 3  # 10 + 9 + 1: each page lists one log again
    for record in sdk:
        assert record["level"] == "debug"
        assert record["logger"].startswith("sendcloud_async")
        assert f"GET {fake.base_url}/integrations/logs" in record["message"]
    assert SECRET_KEY not in result.err + result.out
    (line,) = result.out.splitlines()
    summary = json.loads(line)
    assert (summary["event"], summary["records"], summary["path"]) == ("summary", 20, str(out))
    env = fake_env(fake)
    env["SENDCLOUD_SECRET_KEY"] = "a-wrong-secret"
    wrong = await run(*args, "--restart", env=env)
    assert wrong.code == 1
    (line,) = wrong.err_lines
    record = json.loads(line)
    assert (record["level"], record["event"]) == ("error", "error")
    assert "401" in record["message"]
    assert "a-wrong-secret" not in wrong.err + wrong.out


async def test_json_many_accounts_results_are_json_lines(tmp_path: Path) -> None:
    """logs export --accounts with --log-format json: a JSON line per account and the summary
    on stdout instead of the table; the failing account is an error line on stderr."""
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        "[accounts.good]\npublic_key = 'fake-public-key'\nsecret_key = 'fake-secret-key'\n"
        "[accounts.bad]\npublic_key = 'fake-public-key'\nsecret_key = 'not-it'\n"
    )
    accounts.chmod(0o600)
    result = await run(
        "logs", "export", "--fake", "--accounts", str(accounts), "--out-dir",
        str(tmp_path / "out"), "--log-format", "json", "--max-retries", "0", env=base_env(),
    )  # fmt: skip
    assert result.code == 1, result
    out = [json.loads(line) for line in result.out.splitlines()]
    assert [(r["event"], r.get("account"), r.get("status")) for r in out] == [
        ("account_result", "good", "ok"),
        ("account_result", "bad", "failed"),
        ("summary", None, None),
    ]
    assert out[0]["records"] == 30_000
    assert out[2]["accounts_failed"] == ["bad"]
    errors = [json.loads(line) for line in result.err_lines]
    failed = [r for r in errors if r["event"] == "account_failed"]
    assert [(r["level"], r["account"]) for r in failed] == [("error", "bad")]
    assert "not-it" not in result.err + result.out


# -- the pieces --------------------------------------------------------------------------------


def test_records_in_each_style() -> None:
    """plain (a terminal), text (a timestamped log line), json (an object; a field named
    like a key of the line keeps its value under a new name)."""
    at = datetime(2026, 12, 6, 16, 40, 1, 123_456, tzinfo=UTC)
    record = Record(
        "warning", "poll_failed", "account a: poll\nfailed", {"account": "a", "message": 1}
    )
    assert render(record, "plain", at) == "sendcloud-async: warning: account a: poll failed"
    assert render(Record("info", "x", "hello"), "plain", at) == "sendcloud-async: hello"
    assert render(record, "text", at) == "2026-12-06T16:40:01Z WARNING account a: poll failed"
    assert json.loads(render(record, "json", at)) == {
        "ts": "2026-12-06T16:40:01.123Z",
        "level": "warning",
        "event": "poll_failed",
        "message": "account a: poll failed",
        "account": "a",
        "message_": 1,
    }
    assert legacy_record("sendcloud-async: error: boom") == Record("error", "error", "boom")
    assert legacy_record("sendcloud-async: account a: x") == Record(
        "info", "message", "account a: x"
    )
    assert usage_line("bad --x", "text") == "sendcloud-async: error: bad --x"
    assert json.loads(usage_line("bad --x", "json"))["event"] == "usage_error"


def test_after_finish_nothing_is_drawn_on_a_terminal() -> None:
    """finish() ends the live line; a later status draws nothing, a message no old line."""
    stream = io.StringIO()
    progress = Progress(stream, "tty", clock=time.monotonic)
    progress.show("3 new logs · next poll in 4 s", force=True)
    progress.finish()
    ended = stream.getvalue()
    assert ended.endswith("\x1b[K\n")
    progress.show("4 new logs · next poll in 3 s", force=True)
    progress.tick(force=True)
    progress.message("sendcloud-async: stopped")
    assert stream.getvalue() == ended + "sendcloud-async: stopped\n"


def test_one_rule_turns_a_failure_into_its_line(tmp_path: Path) -> None:
    """A write error names the file and what was being done (the innermost ``writing``
    says it); another OSError names its file; the SDK's errors say themselves."""
    target = tmp_path / "logs.jsonl"
    with (
        pytest.raises(FileWriteError) as caught,
        writing(tmp_path, "outer"),
        writing(target, "appending the new logs"),
    ):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    error = caught.value
    assert isinstance(error, OSError)
    assert (error.errno, error.filename) == (errno.ENOSPC, str(target))
    assert (
        failure(error) == f"cannot write {target} (appending the new logs): No space left on device"
    )
    assert failure(FileNotFoundError(errno.ENOENT, "No such file or directory", "x.toml")) == (
        "x.toml: No such file or directory"
    )
    assert failure(OSError(errno.EIO, "Input/output error")) == "Input/output error"
    refused = AuthenticationError(401, method="GET", url="https://x.example/api/v3/integrations")
    assert failure(refused) == str(refused)
    assert "401" in failure(refused)
    assert failure(KeyError("k")) == "unexpected KeyError: 'k'"
