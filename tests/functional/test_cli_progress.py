"""The progress line while requests wait: on a terminal (a pseudo-terminal) and without one."""

from __future__ import annotations

import asyncio
import fcntl
import io
import itertools
import os
import pty
import re
import struct
import termios
import time
from datetime import datetime
from pathlib import Path

import pytest

from sendcloud_async import SendcloudClient
from sendcloud_async._cli.activity import Activity
from sendcloud_async._cli.progress import Progress, account_var
from sendcloud_async._observe import (
    NO_CALL,
    Event,
    Finished,
    Sending,
    Waiting,
    begin,
    current_call,
    observing,
)
from sendcloud_async.testing import FakeSendcloud, Fault
from tests._pty import on_pty
from tests.functional.test_cli import fake_env, ids, logged, start

# -- helpers -------------------------------------------------------------------------------------


class Recorder:
    """An observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        """Keep the event."""
        self.events.append(event)


@pytest.fixture
async def reporting(fake: FakeSendcloud) -> None:
    """The SDK's request path reports to ``sendcloud_async._observe`` (what the notes read)."""
    recorder = Recorder()
    with observing(recorder):
        async with SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
            await client.integrations.list()
    fake.clear_requests()
    assert any(isinstance(e, Sending) for e in recorder.events), recorder.events


async def on_terminal(*args: str, env: dict[str, str]) -> tuple[int, list[tuple[float, str]]]:
    """Run the command with stderr on a 200-column pseudo-terminal; (status, timed chunks)."""
    code, chunks, _ = await on_pty(*args, env=env)
    return code, [(at, chunk.decode(errors="replace")) for at, chunk in chunks]


def redraws(chunks: list[tuple[float, str]]) -> list[tuple[float, str]]:
    """Each drawing of the live line, with the time its chunk arrived."""
    out = []
    for at, text in chunks:
        for part in re.split(r"[\r\n]", text):
            part = part.replace("\x1b[K", "").strip()
            if part:
                out.append((at, part))
    return out


def clocks(lines: list[tuple[float, str]], needle: str) -> list[float]:
    """The elapsed-time figures (``4.1 s``) of the drawings that contain ``needle``."""
    found = []
    for _, line in lines:
        if needle in line:
            match = re.search(r"rec/s · (\d+\.\d) s", line)
            if match:
                found.append(float(match.group(1)))
    return found


async def export_args(fake: FakeSendcloud, tmp_path: Path) -> tuple[str, ...]:
    """A small export whose second page the test makes wait."""
    fake.seed(integrations=1, logs_per_integration=30, seed=31)
    return ("logs", "export", "--out", str(tmp_path / "logs.jsonl"), "--page-size", "10")


# -- on a terminal -------------------------------------------------------------------------------


async def test_terminal_line_keeps_ticking_while_the_server_is_slow(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A page that takes 3 s to come: the line's clock keeps moving meanwhile."""
    args = await export_args(fake, tmp_path)
    fake.inject("GET", "/integrations/logs", Fault.delay(0), Fault.delay(3))
    code, chunks = await on_terminal(*args, env=fake_env(fake))
    assert code == 0
    lines = redraws(chunks)
    during = clocks(lines, "10 records · 1 pages")
    assert len(set(during)) >= 10  # redrawn with a new time at least 10 times in 3 s
    assert max(during) - min(during) >= 2.5
    assert ids(tmp_path / "logs.jsonl") == [r["id"] for r in fake.logs]


@pytest.mark.usefixtures("reporting")
async def test_terminal_line_says_it_waits_for_the_rate_limit(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A 429 with Retry-After 3: the line counts down 'waiting N s for the rate limit'."""
    args = await export_args(fake, tmp_path)
    fake.inject(
        "GET", "/integrations/logs", Fault.delay(0), Fault.status(429, headers={"Retry-After": "3"})
    )
    code, chunks = await on_terminal(*args, env=fake_env(fake))
    assert code == 0
    lines = redraws(chunks)
    waits = [line for _, line in lines if "for the rate limit" in line]
    counted = {int(m.group(1)) for line in waits if (m := re.search(r"waiting (\d+) s", line))}
    assert {3, 2, 1} <= counted
    assert len(set(clocks(lines, "for the rate limit"))) >= 10  # and the clock ticks meanwhile
    assert ids(tmp_path / "logs.jsonl") == [r["id"] for r in fake.logs]


@pytest.mark.usefixtures("reporting")
async def test_terminal_line_says_it_retries_after_a_503(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A 503 with Retry-After 2: the line says 'retrying in … s after 503' until the retry."""
    args = await export_args(fake, tmp_path)
    fake.inject(
        "GET", "/integrations/logs", Fault.delay(0), Fault.status(503, headers={"Retry-After": "2"})
    )
    code, chunks = await on_terminal(*args, env=fake_env(fake))
    assert code == 0
    lines = [line for _, line in redraws(chunks)]
    assert any(re.search(r"retrying in 1\.\d s after 503", line) for line in lines), lines
    assert any("warning" in line and "503" in line for line in lines)  # the warning line too


@pytest.mark.usefixtures("reporting")
async def test_terminal_line_shows_an_attempt_waiting_for_its_answer(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A server that takes 3 s to answer: the line says which request is waiting, how long."""
    args = await export_args(fake, tmp_path)
    fake.inject("GET", "/integrations/logs", Fault.delay(0), Fault.delay(3))
    code, chunks = await on_terminal(*args, env=fake_env(fake))
    assert code == 0
    lines = [line for _, line in redraws(chunks)]
    assert any("waiting 2 s for the answer to GET /api/v3/integrations/logs" in x for x in lines)


# -- without a terminal --------------------------------------------------------------------------


async def timed_stderr_lines(
    args: tuple[str, ...], env: dict[str, str]
) -> tuple[int, list[tuple[float, str]]]:
    """Run the command with stderr on a pipe; each line with the time it arrived."""
    proc = await start(*args, env=env)
    assert proc.stderr is not None
    lines: list[tuple[float, str]] = []
    while raw := await asyncio.wait_for(proc.stderr.readline(), 60):
        lines.append((time.monotonic(), raw.decode().rstrip("\n")))
    return await proc.wait(), lines


async def test_status_lines_without_a_terminal_come_on_a_change_only(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Off a terminal, while a page takes 5 s to come: timestamped status lines at most one a
    second (--status-interval 1), each a change (the wait for the answer appearing), not a
    line every 2 s saying the same."""
    args = await export_args(fake, tmp_path)
    fake.inject("GET", "/integrations/logs", Fault.delay(0), Fault.delay(5))
    code, lines = await timed_stderr_lines((*args, "--status-interval", "1"), fake_env(fake))
    assert code == 0
    assert all("\r" not in line and "\x1b" not in line for _, line in lines)
    shown = [(at, logged(line)) for at, line in lines]
    waiting = [(at, message) for at, (level, message) in shown if level == "INFO"]
    during = [m for _, m in waiting if m.startswith("exported 10 records in 1 pages")]
    assert 1 <= len(during) <= 2, during  # 5 s of the same page: no heartbeat every 2 s
    assert any("for the answer to GET /api/v3/integrations/logs" in m for m in during), during
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(waiting)]
    assert all(gap >= 0.9 for gap in gaps), gaps


@pytest.mark.usefixtures("reporting")
@pytest.mark.usefixtures("reporting")
async def test_status_lines_say_what_they_wait_for(fake: FakeSendcloud, tmp_path: Path) -> None:
    """Off a terminal the status line names the wait: '; waiting N s for the rate limit
    (429)', once: the countdown is not a change."""
    args = await export_args(fake, tmp_path)
    fake.inject(
        "GET", "/integrations/logs", Fault.delay(0), Fault.status(429, headers={"Retry-After": "5"})
    )
    code, lines = await timed_stderr_lines((*args, "--status-interval", "1"), fake_env(fake))
    assert code == 0
    waits = [logged(line) for _, line in lines if "for the rate limit" in line]
    assert len(waits) == 1, lines
    level, message = waits[0]
    assert level == "INFO"
    assert message.startswith("exported 10 records in 1 pages")
    assert re.search(r"; waiting \d s for the rate limit \(429\)$", message), message


# -- the pieces, without processes ---------------------------------------------------------------


def test_activity_describes_waits_and_slow_attempts() -> None:
    """Activity.note: the longest wait counting down, else an attempt slower than 1 s."""
    now = [100.0]
    activity = Activity(clock=lambda: now[0])
    url = "http://127.0.0.1:1/api/v3/integrations/logs?cursor=abc"
    assert activity.note() == ""
    activity.on_event(Waiting(1, "GET", url, "rate_limit", 41.0, at=100.0))
    assert activity.note() == "waiting 41 s for the rate limit"
    now[0] = 110.5
    assert activity.note() == "waiting 31 s for the rate limit"
    activity.on_event(Sending(1, "GET", url, 1, at=141.0))
    now[0] = 141.5
    assert activity.note() == ""  # under a second: not worth a word
    now[0] = 153.2
    assert activity.note() == "waiting 12 s for the answer to GET /api/v3/integrations/logs"
    activity.on_event(Finished(1, "GET", url, 1, at=153.3, status=503))
    activity.on_event(Waiting(1, "GET", url, "retry", 2.0, at=153.3, status=503))
    now[0] = 153.4
    assert activity.note() == "retrying in 1.9 s after 503"
    activity.on_event(Sending(1, "GET", url, 2, at=155.3))
    now[0] = 157.0
    assert (
        activity.note() == "waiting 2 s for the answer to GET /api/v3/integrations/logs, attempt 2"
    )
    activity.on_event(Finished(1, "GET", url, 2, at=157.1, status=200))
    assert activity.note() == ""
    activity.on_event(Waiting(2, "GET", url, "retry", 0.5, at=157.0, error="timeout"))
    assert activity.note() == "retrying in 0.5 s after timeout"
    now[0] = 170.0  # a wait long over whose call ended some other way is forgotten
    assert activity.note() == ""


def test_activity_names_the_account() -> None:
    """With many accounts the note says whose request waits."""
    activity = Activity(clock=lambda: 0.0)
    token = account_var.set("shop-nl")
    try:
        activity.on_event(Waiting(7, "GET", "http://x/a", "retry", 3.0, at=0.0, status=429))
    finally:
        account_var.reset(token)
    assert activity.note() == "account shop-nl: waiting 3 s for the rate limit (429)"


def test_progress_tick_moves_the_clock_and_shows_the_note() -> None:
    """tick() redraws the last numbers with the time advanced; the note is appended."""
    now = [0.0]
    stream = io.StringIO()
    progress = Progress(stream, "tty", clock=lambda: now[0])
    progress.note = lambda: "waiting 41 s for the rate limit"
    now[0] = 1.0
    progress.update(500, 5, 500.0, 1.0, force=True)
    now[0] = 3.0
    progress.tick()
    last = stream.getvalue().rsplit("\r", 1)[-1]
    assert "500 records · 5 pages · 167 rec/s · 3.0 s · waiting 41 s for the rate limit" in last
    lines = io.StringIO()
    wall = datetime.fromisoformat("2026-12-06T16:40:01+00:00")
    plain = Progress(lines, "lines", interval=2.0, clock=lambda: now[0], wall=lambda: wall)
    plain.note = lambda: "retrying in 2.0 s after 503"
    now[0] = 10.0
    plain.tick()
    assert lines.getvalue() == (
        "2026-12-06T16:40:01Z INFO "
        "exported 0 records in 0 pages (0 rec/s, 7.0 s); retrying in 2.0 s after 503\n"
    )


def test_progress_line_is_cut_to_the_terminal_width() -> None:
    """On a narrow terminal the live line is cut (a wrapped line cannot be redrawn)."""
    master, slave = pty.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 40, 0, 0))
        with open(slave, "w", encoding="utf-8", closefd=False) as stream:
            progress = Progress(stream, "tty", clock=lambda: 5.0)
            progress.note = lambda: "waiting 41 s for the rate limit"
            progress.update(123_456, 1_235, 9_999.0, 12.3, force=True)
            assert len(progress._line) == 39
            assert progress._line.endswith("…")
    finally:
        os.close(slave)
        os.close(master)


async def test_observe_reports_to_the_installed_observer_only() -> None:
    """begin() is NO_CALL without an observer; with one, events carry one id per call."""
    assert begin("GET", "http://x/a") is NO_CALL
    NO_CALL.waiting("retry", 1.0)  # does nothing, raises nothing
    recorder = Recorder()
    with observing(recorder):
        first, second = begin("GET", "http://x/a"), begin("POST", "http://x/b")
        with first.active():
            assert current_call() is first
            current_call().waiting("rate_limit", 2.5)
        assert current_call() is NO_CALL
        first.sending(1)
        first.finished(1, status=200)
        second.finished(1, error="APITimeoutError")
    assert begin("GET", "http://x/a") is NO_CALL
    kinds = [(type(e).__name__, e.call) for e in recorder.events]
    assert kinds == [
        ("Waiting", first.id),
        ("Sending", first.id),
        ("Finished", first.id),
        ("Finished", second.id),
    ]
    assert first.id != second.id
    wait = recorder.events[0]
    assert isinstance(wait, Waiting)
    assert (wait.reason, wait.seconds, wait.method, wait.url) == (
        "rate_limit",
        2.5,
        "GET",
        "http://x/a",
    )


async def test_an_observer_that_raises_never_breaks_a_call() -> None:
    """An observer's exception is swallowed: the request path goes on."""

    class Broken:
        def on_event(self, event: Event) -> None:
            """Fail on every event."""
            raise RuntimeError("display bug")

    with observing(Broken()):
        call = begin("GET", "http://x/a")
        call.sending(1)
        call.finished(1, status=200)
    assert call.id > 0


async def test_tasks_started_inside_observing_report_too() -> None:
    """The observer is a context variable: tasks created inside the block inherit it."""
    recorder = Recorder()

    async def child() -> None:
        begin("GET", "http://x/c").sending(1)

    with observing(recorder):
        await asyncio.gather(child(), child())
    assert len(recorder.events) == 2
