"""The shell sessions of the docs run as written: each command a real process.

A shell block titled ``One terminal per line`` (```` ```sh title="One terminal per
line" ````) is a trial the reader runs with each line in a terminal of its own. Its
lines are taken from the page as they are, split like a shell does (``shlex``), and
started in order in a fresh directory, each as a process of its own that runs until
it is stopped; ``sendcloud-async`` is the package's command line (``python -m
sendcloud_async``). The one thing a person does between two terminals is done too:
a command that reads a file (``--accounts FILE``) starts once that file exists.
Only the addresses are swapped: the Redis URL becomes a loopback redis-server of
the test's own. Every line must be a ``sendcloud-async`` command, so a page cannot
quietly grow a step the suite does not run.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shlex
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec

import sendcloud_async as sc
from sendcloud_async._cli.accounts import Account, load_accounts

ROOT = Path(__file__).resolve().parents[2]
TRIAL_PAGE = ROOT / "docs" / "redis-watch.md"
TRIAL_TITLE = "One terminal per line"
SHELL = re.compile(
    r'^```(?:sh|bash|shell)[ \t]+title="(?P<title>[^"]*)"[ \t]*\n(?P<body>.*?)^```[ \t]*$',
    re.M | re.S,
)
REDIS_IN_DOCS = "redis://localhost:6379/0"
STREAM_PREFIX = "sendcloud-async:logs"


def sessions(text: str, title: str) -> list[list[list[str]]]:
    """Each block of ``text`` with ``title``: its commands, one argv per line."""
    found = []
    for match in SHELL.finditer(text):
        if match["title"] != title:
            continue
        commands = []
        for line in match["body"].replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                commands.append(words)
        found.append(commands)
    return found


def test_the_session_parser_reads_lines_continuations_and_comments() -> None:
    """One argv per line; ``\\`` joins lines; comments and blank lines are dropped."""
    text = (
        '```sh title="T"\n# a comment\nsendcloud-async fake serve --port 1\n\n'
        "sendcloud-async logs tail \\\n  --redis 'redis://x:1/0'  # tail\n```\n"
        '```sh title="other"\nls\n```\n'
    )
    assert sessions(text, "T") == [
        [
            ["sendcloud-async", "fake", "serve", "--port", "1"],
            ["sendcloud-async", "logs", "tail", "--redis", "redis://x:1/0"],
        ]
    ]


def _trial() -> list[list[str]]:
    found = sessions(TRIAL_PAGE.read_text(encoding="utf-8"), TRIAL_TITLE)
    assert len(found) == 1, f"{TRIAL_PAGE.name} has no single {TRIAL_TITLE!r} block"
    (commands,) = found
    for words in commands:
        assert words[0] == "sendcloud-async", f"not a sendcloud-async command: {words}"
    return commands


@asynccontextmanager
async def _processes() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """The processes started in the block; any still running at the end is killed."""
    started: list[asyncio.subprocess.Process] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def _files_read(words: list[str]) -> Iterator[str]:
    for option, value in itertools.pairwise(words):
        if option == "--accounts":
            yield value


async def _ids(account: Account) -> set[int]:
    async with sc.SendcloudClient(auth=account.auth(), base_url=account.base_url) as client:
        return {
            log.id
            async for log in client.logs.iter(integration_id=account.integration_id, page_size=100)
            if log.id is not None
        }


def _tailed(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [msgspec.json.decode(line) for line in path.read_bytes().splitlines()]


async def _stop(proc: asyncio.subprocess.Process) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_try_the_many_worker_watch(tmp_path: Path) -> None:
    """fake serve + two logs watch --redis workers + logs tail, exactly as the page has
    them: the workers split the accounts, and the tail's file holds every log the fake
    produced, each once."""
    from tests.scale.conftest import RedisServer, free_port, redis_binary

    commands = _trial()
    assert [w[1:3] for w in commands] == [
        ["fake", "serve"],
        ["logs", "watch"],
        ["logs", "watch"],
        ["logs", "tail"],
    ]
    server = RedisServer(redis_binary(), free_port(), tmp_path / "redis")
    server.workdir.mkdir()
    server.start()
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(server.url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SENDCLOUD_")}
    work = tmp_path / "trial"
    work.mkdir()
    try:
        async with _processes() as started:
            for words in commands:
                args = [server.url if w == REDIS_IN_DOCS else w for w in words[1:]]
                for name in _files_read(words):
                    for _ in range(200):
                        if (work / name).exists():
                            break
                        await asyncio.sleep(0.1)
                started.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable, "-m", "sendcloud_async", *args,
                        cwd=work, env=env, stdin=asyncio.subprocess.DEVNULL,
                        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                    )
                )  # fmt: skip
            fake, *workers, tail = started
            accounts = load_accounts(work / "accounts.toml", {})
            assert len(accounts) == 8
            out = work / "logs.jsonl"
            # The two workers split the accounts: each holds some of the leases.
            holders: set[bytes] = set()
            for _ in range(300):
                leases = [k async for k in client.scan_iter(match="sendcloud-async:watch:*:lease")]
                values: list[Any] = [await client.get(k) for k in leases]
                holders = {v.split(b" ")[0] for v in values if v}
                if len(leases) == 8 and len(holders) == 2:
                    break
                await asyncio.sleep(0.1)
            assert len(holders) == 2, holders
            await asyncio.sleep(3.0)  # logs keep coming and flowing
            produced: set[int] = set()
            for account in accounts:
                produced |= await _ids(account)
            assert len(produced) >= 40
            for _ in range(300):  # everything produced so far reaches the tail's file
                if produced <= {r["log"]["id"] for r in _tailed(out)}:
                    break
                await asyncio.sleep(0.1)
            outcomes = [await _stop(p) for p in (*workers, tail)]
            final: set[int] = set()
            for account in accounts:
                final |= await _ids(account)
            outcomes.append(await _stop(fake))
        for code, err in outcomes:
            assert code == 0, err
            assert "Traceback" not in err
        records = _tailed(out)
        ids = [r["log"]["id"] for r in records]
        assert produced <= set(ids) <= final
        assert [n for n, c in Counter(ids).items() if c > 1] == []  # each log once
        assert len({(r["account"], r["entry"]) for r in records}) == len(records)
        by_account = {a.name: a.integration_id for a in accounts}
        for record in records:
            assert record["log"]["integration_id"] == by_account[record["account"]]
        # The watch wrote each log once into its account's stream.
        streamed = []
        for account in accounts:
            entries: Any = await client.xrange(f"{STREAM_PREFIX}:{account.name}")
            streamed += [msgspec.json.decode(f[b"log"])["id"] for _, f in entries]
        assert len(streamed) == len(set(streamed))
        assert set(ids) <= set(streamed)
    finally:
        await client.aclose()
        server.stop()


def test_every_session_of_the_docs_is_run_by_a_test() -> None:
    """The docs hold one session (``One terminal per line``), on the page this file runs."""
    pages = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    holders = [p.name for p in pages if sessions(p.read_text(encoding="utf-8"), TRIAL_TITLE)]
    assert holders == [TRIAL_PAGE.name]
