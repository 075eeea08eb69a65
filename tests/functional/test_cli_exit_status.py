"""Every command's exit statuses are the one table of ``sendcloud_async._cli.exits``.

The table is shown by every ``--help`` and written in docs/cli.md (both checked
here), and every registered command is run, as the installed script, to each of its
outcomes: success, bad usage, a failure at run time, Ctrl-C and SIGTERM (real
signals, sent while the command works). The status each run must end with is read
from the table and the command's own declaration (``Command.until_stopped``), so a
command added without its runs here, or a status that drifts from the table, fails.
"""

from __future__ import annotations

import asyncio
import io
import re
import resource
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest

from sendcloud_async._cli import build_parser, main
from sendcloud_async._cli.command import Command
from sendcloud_async._cli.commands import COMMANDS
from sendcloud_async._cli.exits import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TERMINATED,
    EXIT_USAGE,
    TABLE,
    help_text,
    stop_rule,
    stop_sentence,
)
from sendcloud_async._cli.parser import command_of
from sendcloud_async.testing import FakeSendcloud, Fault
from tests.functional.test_cli import SECRET_KEY, fake_env, start

ROOT = Path(__file__).resolve().parents[2]
WIDTH = 78

Outcome = Literal["ok", "usage", "failed", "sigint", "sigterm"]
#: Every listing a command starts with: "slow" delays the first request of each.
ROUTES = ("/integrations", "/integrations/{id}", "/integrations/logs", "/integrations/{id}/logs")
SIGNALS: dict[str, signal.Signals] = {"sigint": signal.SIGINT, "sigterm": signal.SIGTERM}


def name_of(command: Command) -> str:
    return " ".join(command.words)


def until_stopped_runs(command: Command) -> bool:
    """Whether the command always runs until it is stopped (its success is a stop)."""
    return command.until_stopped is not None and command.until_stopped.when == ""


# -- the table in --help and in the docs ---------------------------------------------------------


def help_of(*words: str) -> str:
    """``sendcloud-async WORDS --help``, as printed."""
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        code = main([*words, "--help"], env={})
    assert code == EXIT_OK
    return buffer.getvalue()


@pytest.mark.parametrize("command", COMMANDS, ids=name_of)
def test_every_help_ends_with_the_table_and_what_a_stop_does(command: Command) -> None:
    """Each command's --help holds every row of the table and its own stop sentence."""
    text = help_of(*command.words)
    block = help_text(command.until_stopped, width=WIDTH)
    assert text.rstrip().endswith(block), text
    flat = " ".join(text.split())
    for row in TABLE:
        assert " ".join(row.meaning.split()) in flat
    assert " ".join(stop_sentence(command.until_stopped).split()) in flat
    # Nothing before the block speaks of an exit status of its own (no second rule).
    head = text[: text.rindex("exit status:")]
    assert not re.search(r"\bexit(s|ing)?\b(\s+status)?\s+\d", head, re.IGNORECASE), head


def test_the_top_level_help_states_the_rule_for_every_command() -> None:
    """`sendcloud-async --help`: the table, and the rule naming what runs until stopped."""
    text = help_of()
    commands = [(name_of(c), c.until_stopped) for c in COMMANDS]
    assert text.rstrip().endswith(help_text(None, width=WIDTH, commands=commands))
    for command in COMMANDS:
        if command.until_stopped is not None:
            assert name_of(command) in " ".join(text.split())


def test_the_docs_hold_the_same_table_and_rule() -> None:
    """docs/cli.md's Exit status section: the table's rows, in order, and the same rule."""
    docs = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = docs.split("\n## Exit status\n", 1)[1].split("\n## ", 1)[0]
    rows = [
        tuple(cell.strip() for cell in line.strip("|").split("|"))
        for line in section.splitlines()
        if re.match(r"\|\s*\d+\s*\|", line)
    ]
    assert rows == [(str(row.code), row.meaning) for row in TABLE]
    rule = stop_rule([(name_of(c), c.until_stopped) for c in COMMANDS])
    assert rule in " ".join(section.split())


def test_the_table_is_the_statuses_main_knows() -> None:
    """The table holds the named statuses, each once; 130 and 143 as a shell reports them."""
    codes = [row.code for row in TABLE]
    assert codes == [EXIT_OK, EXIT_FAILURE, EXIT_USAGE, EXIT_INTERRUPTED, EXIT_TERMINATED]
    assert EXIT_INTERRUPTED == 128 + signal.SIGINT
    assert EXIT_TERMINATED == 128 + signal.SIGTERM


# -- every command, run to each outcome ----------------------------------------------------------


def expected(argv: list[str], outcome: Outcome) -> int:
    """The status the table gives this run."""
    plain = {"ok": EXIT_OK, "usage": EXIT_USAGE, "failed": EXIT_FAILURE}
    if outcome in plain:
        return plain[outcome]
    args = build_parser().parse_args(argv)
    command = command_of(args)
    assert command is not None
    stops = command.until_stopped
    if stops is not None and stops.applies(args):
        return EXIT_OK
    return EXIT_TERMINATED if outcome == "sigterm" else EXIT_INTERRUPTED


@dataclass(frozen=True)
class Case:
    """One run: the command line (``{…}`` filled in by ``World``) and how it must end."""

    argv: tuple[str, ...]
    outcome: Outcome
    #: What the fake does first: "" (answers), "slow" (the first answers wait 30 s).
    fake: str = ""
    #: What shows that the command is at work before a signal is sent.
    ready: Literal["request", "stdout", "redis-client"] = "request"
    #: Credentials, in the environment and the accounts file: "good", or "wrong" (401).
    credentials: Literal["good", "wrong"] = "good"
    #: A file size limit of 64 KiB for the process (a write fails: EFBIG).
    small_disk: bool = False


def case(id: str, outcome: Outcome, *argv: str, **kwargs: Any) -> Any:
    """A ``pytest.param`` of one ``Case``, named ``ID-OUTCOME``."""
    return pytest.param(Case(argv, outcome, **kwargs), id=f"{id}-{outcome}")


EXPORT = ("logs", "export", "--out", "{tmp}/logs.jsonl")
PER_INTEGRATION = (*EXPORT, "--per-integration")
EXPORT_ACCOUNTS = ("logs", "export", "--accounts", "{accounts}", "--out-dir", "{tmp}/out")
WATCH = ("logs", "watch", "--out", "{tmp}/watch.jsonl", "--interval", "60")
WATCH_ACCOUNTS = ("logs", "watch", "--accounts", "{accounts}", "--out-dir", "{tmp}/out")
WATCH_REDIS = ("logs", "watch", "--accounts", "{accounts}", "--redis", "{redis}")
WATCH_LOCKED = ("logs", "watch", "--accounts", "{accounts}", "--redis", "{locked_redis}")
TAIL = ("logs", "tail", "--redis", "{redis}", "--out", "{tmp}/tail.jsonl")
REPORT = ("logs", "report", "--json")

CASES = [
    # demo: no network; a write that fails is its run-time failure.
    case("demo", "ok", "demo", ready="stdout"),
    case("demo", "usage", "demo", "--keep", "{tmp}/a", "--out", "{tmp}/b.jsonl"),
    case("demo", "failed", "demo", "--out", "{tmp}/demo.jsonl", small_disk=True),
    case("demo", "sigint", "demo", ready="stdout"),
    case("demo", "sigterm", "demo", ready="stdout"),
    # logs export, one file
    case("export", "ok", *EXPORT),
    case("export", "usage", *EXPORT, "--page-size", "101"),
    case("export", "failed", *EXPORT, credentials="wrong"),
    case("export", "sigint", *EXPORT, fake="slow"),
    case("export", "sigterm", *EXPORT, fake="slow"),
    case("export-stdout", "failed", "logs", "export", "--out", "-", credentials="wrong"),
    case("export-stdout", "sigterm", "logs", "export", "--out", "-", fake="slow"),
    # logs export --per-integration
    case("per-integration", "ok", *PER_INTEGRATION),
    case("per-integration", "usage", *PER_INTEGRATION, "--integration", "1"),
    case("per-integration", "failed", *PER_INTEGRATION, credentials="wrong"),
    case("per-integration", "sigint", *PER_INTEGRATION, fake="slow"),
    case("per-integration", "sigterm", *PER_INTEGRATION, fake="slow"),
    # logs export --accounts
    case("export-accounts", "ok", *EXPORT_ACCOUNTS),
    case("export-accounts", "usage", "logs", "export", "--accounts", "{accounts}"),
    case("export-accounts", "failed", *EXPORT_ACCOUNTS, credentials="wrong"),
    case("export-accounts", "sigint", *EXPORT_ACCOUNTS, fake="slow"),
    case("export-accounts", "sigterm", *EXPORT_ACCOUNTS, fake="slow"),
    # logs watch --out FILE: runs until stopped; with --once it finishes by itself
    case("watch", "ok", *WATCH, "--once"),
    case("watch", "usage", *WATCH, "--start", "yesterday"),
    case("watch", "failed", *WATCH, "--once", credentials="wrong"),
    case("watch", "sigint", *WATCH),
    case("watch", "sigterm", *WATCH),
    case("watch-once", "sigint", *WATCH, "--once", fake="slow"),
    case("watch-once", "sigterm", *WATCH, "--once", fake="slow"),
    # logs watch --accounts --out-dir
    case("watch-accounts", "ok", *WATCH_ACCOUNTS, "--once"),
    case("watch-accounts", "usage", "logs", "watch", "--accounts", "{accounts}"),
    case("watch-accounts", "failed", *WATCH_ACCOUNTS, "--once", credentials="wrong"),
    case("watch-accounts", "sigint", *WATCH_ACCOUNTS),
    case("watch-accounts", "sigterm", *WATCH_ACCOUNTS, fake="slow"),
    case("watch-accounts-once", "sigterm", *WATCH_ACCOUNTS, "--once", fake="slow"),
    # logs watch --redis: many workers; it runs until stopped
    case("watch-redis", "usage", *WATCH_REDIS, "--once"),
    case("watch-redis", "failed", *WATCH_LOCKED),
    case("watch-redis", "sigint", *WATCH_REDIS, ready="redis-client"),
    case("watch-redis", "sigterm", *WATCH_REDIS, ready="redis-client"),
    # logs tail: reads the streams; runs until stopped, with --once until what is there is out
    case("tail", "ok", *TAIL, "--once"),
    case("tail", "usage", "logs", "tail", "--redis", "http://127.0.0.1:1/"),
    case("tail", "failed", "logs", "tail", "--redis", "{locked_redis}", "--once"),
    case("tail", "sigint", *TAIL, ready="redis-client"),
    case("tail", "sigterm", *TAIL, ready="redis-client"),
    # logs report: the account's logs through the API (an export file's never send a request)
    case("report", "ok", *REPORT),
    case("report", "usage", "logs", "report", "{tmp}/missing.jsonl"),
    case("report", "failed", *REPORT, credentials="wrong"),
    case("report", "sigint", *REPORT, fake="slow"),
    case("report", "sigterm", *REPORT, fake="slow"),
    # integrations list / get
    case("integrations-list", "ok", "integrations", "list"),
    case("integrations-list", "usage", "integrations", "list", "--max-retries", "-1"),
    case("integrations-list", "failed", "integrations", "list", credentials="wrong"),
    case("integrations-list", "sigint", "integrations", "list", fake="slow"),
    case("integrations-list", "sigterm", "integrations", "list", fake="slow"),
    case("integrations-get", "ok", "integrations", "get", "1"),
    case("integrations-get", "usage", "integrations", "get", "0"),
    case("integrations-get", "failed", "integrations", "get", "99"),
    case("integrations-get", "sigint", "integrations", "get", "1", fake="slow"),
    case("integrations-get", "sigterm", "integrations", "get", "1", fake="slow"),
    # fake serve: runs until stopped
    case("fake-serve", "usage", "fake", "serve", "--accounts", "0"),
    case("fake-serve", "failed", "fake", "serve", "--port", "{taken_port}"),
    case("fake-serve", "sigint", "fake", "serve", "--port", "0", ready="stdout"),
    case("fake-serve", "sigterm", "fake", "serve", "--port", "0", ready="stdout"),
]


def test_every_command_is_run_to_every_outcome() -> None:
    """A command added to the registry needs its runs here: every outcome at least once."""
    seen: dict[str, set[str]] = {}
    for param in CASES:
        (one,) = param.values
        (command,) = [c for c in COMMANDS if one.argv[: len(c.words)] == c.words]
        seen.setdefault(name_of(command), set()).add(one.outcome)
    for command in COMMANDS:
        wanted = {"usage", "failed", "sigint", "sigterm"}
        if not until_stopped_runs(command):
            wanted.add("ok")  # one that always runs until stopped succeeds by being stopped
        assert wanted <= seen.get(name_of(command), set()), name_of(command)


# -- the world the runs happen in ----------------------------------------------------------------


def small_disk() -> None:
    """In the child: files may not grow past 64 KiB, and a write past it fails (EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (65_536, 65_536))


class Redis:
    """Two ``redis-server``s, started on first use: one open, one that wants a password."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.servers: list[subprocess.Popen[bytes]] = []
        self.urls: tuple[str, str] | None = None

    def start(self) -> tuple[str, str]:
        if self.urls is None:
            from tests.scale.conftest import free_port, redis_binary

            binary = redis_binary()  # skips (or fails, where Redis is required) without it
            ports = free_port(), free_port()
            for port, extra in zip(ports, ([], ["--requirepass", "a-redis-password"]), strict=True):
                self.servers.append(
                    subprocess.Popen(
                        [
                            binary,
                            "--port",
                            str(port),
                            "--bind",
                            "127.0.0.1",
                            "--save",
                            "",
                            "--appendonly",
                            "no",
                            "--dir",
                            str(self.workdir),
                            *extra,
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
                deadline = time.monotonic() + 5
                while not _answers(port):
                    assert time.monotonic() < deadline, "redis-server did not start"
                    time.sleep(0.01)
            self.urls = tuple(f"redis://127.0.0.1:{port}/0" for port in ports)  # type: ignore[assignment]
        assert self.urls is not None
        return self.urls

    def stop(self) -> None:
        for server in self.servers:
            server.terminate()
            server.wait(5)


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16)[:1] in (b"+", b"-")  # PONG, or NOAUTH
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Redis]:
    servers = Redis(tmp_path_factory.mktemp("redis"))
    try:
        yield servers
    finally:
        servers.stop()


class World:
    """What the command lines name: the fake, the files, the Redis servers, a taken port."""

    def __init__(self, fake: FakeSendcloud, tmp_path: Path, redis: Redis) -> None:
        self.fake = fake
        self.tmp = tmp_path
        self.redis = redis
        self.accounts = tmp_path / "accounts.toml"
        self.listener: socket.socket | None = None

    def argv(self, one: Case) -> list[str]:
        values = {"{tmp}": str(self.tmp), "{accounts}": str(self.accounts)}
        if any("redis}" in arg for arg in one.argv):
            values["{redis}"], values["{locked_redis}"] = self.redis.start()
        if "{taken_port}" in one.argv:
            self.listener = socket.socket()
            self.listener.bind(("127.0.0.1", 0))
            self.listener.listen()
            values["{taken_port}"] = str(self.listener.getsockname()[1])
        argv = []
        for arg in one.argv:
            for key, value in values.items():
                arg = arg.replace(key, value)
            argv.append(arg)
        return argv

    def env(self, one: Case) -> dict[str, str]:
        secret = SECRET_KEY if one.credentials == "good" else "a-wrong-secret"
        self.accounts.write_text(
            f"[accounts.shop]\npublic_key = 'fake-public-key'\nsecret_key = '{secret}'\n"
            f"base_url = '{self.fake.base_url}'\n"
        )
        self.accounts.chmod(0o600)
        return {**fake_env(self.fake), "SENDCLOUD_SECRET_KEY": secret}

    async def ready(self, proc: asyncio.subprocess.Process, one: Case) -> None:
        """Wait (30 s at most) until the command is at work."""
        deadline = time.monotonic() + 30
        if one.ready == "stdout":
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "the command printed nothing"
            return
        check: Callable[[], Awaitable[bool]]
        if one.ready == "request":

            async def check() -> bool:
                return bool(self.fake.requests)

        else:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(self.redis.start()[0])

            async def check() -> bool:
                return len(await client.client_list()) > 1  # ours and the command's

        try:
            while not await check():
                assert proc.returncode is None, "the command ended before it was at work"
                assert time.monotonic() < deadline, "the command did not get to work"
                await asyncio.sleep(0.01)
        finally:
            if one.ready == "redis-client":
                await client.aclose()

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()


@pytest.fixture
async def world(fake: FakeSendcloud, tmp_path: Path, redis: Redis) -> AsyncIterator[World]:
    fake.seed(integrations=2, logs_per_integration=30, seed=5)
    place = World(fake, tmp_path, redis)
    try:
        yield place
    finally:
        place.close()


@pytest.mark.parametrize("one", CASES)
async def test_each_run_ends_with_the_status_the_table_gives(world: World, one: Case) -> None:
    """Run the command to its outcome; the status is the table's (and nothing was sent on usage)."""
    argv = world.argv(one)
    env = world.env(one)
    if one.fake == "slow":
        for path in ROUTES:
            world.fake.inject("GET", path, Fault.delay(30))
    want = expected(argv, one.outcome)
    proc = await start(*argv, env=env, preexec_fn=small_disk if one.small_disk else None)
    if one.outcome in SIGNALS:
        await world.ready(proc, one)
        proc.send_signal(SIGNALS[one.outcome])
    _, raw_err = await asyncio.wait_for(proc.communicate(), 60)
    err = raw_err.decode()
    assert proc.returncode == want, f"{one.outcome}: {proc.returncode} != {want}\n{err}"
    assert "Traceback" not in err
    assert SECRET_KEY not in err
    if one.outcome == "usage":
        assert world.fake.requests == []
