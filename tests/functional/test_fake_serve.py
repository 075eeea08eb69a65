"""``sendcloud-async fake serve``: the console script as a real process, used over HTTP."""

from __future__ import annotations

import asyncio
import signal
import socket
import stat
import time
from pathlib import Path

import pytest

import sendcloud_async as sc
from sendcloud_async._cli.accounts import Account, load_accounts
from sendcloud_async._cli.fake_serve import fake_accounts
from tests.functional.test_cli import assert_one_error_line, base_env, run, start


async def _accounts_from_stdout(proc: asyncio.subprocess.Process, count: int) -> str:
    """The accounts file the command prints, read until its ``count`` tables are complete."""
    assert proc.stdout is not None
    lines: list[str] = []
    while sum(line.startswith("integration = ") for line in lines) < count:
        line = await asyncio.wait_for(proc.stdout.readline(), 20)
        assert line, "stdout ended before the accounts file did"
        lines.append(line.decode())
    return "".join(lines)


async def _stop(proc: asyncio.subprocess.Process, signum: int) -> tuple[int, str]:
    """Send ``signum``; the exit status and stderr (within 10 s)."""
    proc.send_signal(signum)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def _ids(account: Account) -> list[int]:
    """The ids of every log the account's integration has, through the SDK."""
    async with sc.SendcloudClient(auth=account.auth(), base_url=account.base_url) as client:
        return [
            log.id
            async for log in client.logs.iter(integration_id=account.integration_id, page_size=100)
            if log.id is not None
        ]


async def test_prints_a_usable_accounts_file_produces_at_the_rate_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    """The printed TOML loads as an accounts file; each account reads its own integration
    with its own key pair (a wrong one gets 401); the logs come at about --rate; SIGTERM
    ends it with status 0 and a summary."""
    proc = await start("fake", "serve", "--accounts", "3", "--rate", "60", env=base_env())
    try:
        text = await _accounts_from_stdout(proc, 3)
        began = time.monotonic()
        path = tmp_path / "accounts.toml"
        path.write_text(text, encoding="utf-8")
        accounts = load_accounts(path, {})
        assert [a.name for a in accounts] == ["shop-1", "shop-2", "shop-3"]
        assert [a.integration_id for a in accounts] == [1, 2, 3]
        assert len({a.basic for a in accounts}) == 3
        assert text.startswith(f"# FakeSendcloud at {accounts[0].base_url}: 3 accounts")
        first = [await _ids(a) for a in accounts]
        await asyncio.sleep(2.0)
        second = [await _ids(a) for a in accounts]
        elapsed = time.monotonic() - began
        new = sum(len(b) - len(a) for a, b in zip(first, second, strict=True))
        assert 0.5 * 60 * 2.0 <= new <= 60 * elapsed + 3, (new, elapsed)
        for before, after in zip(first, second, strict=True):
            assert after[: len(before)] == before  # the earlier logs stay, new ones follow
        every = [i for ids in second for i in ids]
        assert len(every) == len(set(every))  # each log belongs to one account
        assert accounts[0].basic is not None
        wrong = sc.BasicAuth(accounts[0].basic[0], "not-the-secret")
        async with sc.SendcloudClient(auth=wrong, base_url=accounts[0].base_url) as client:
            with pytest.raises(sc.AuthenticationError):
                await client.integrations.list()
        code, err = await _stop(proc, signal.SIGTERM)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, err
    assert "stopped after" in err
    assert "logs produced" in err
    assert "Traceback" not in err


async def test_write_accounts_oauth2_initial_logs_and_ctrl_c(tmp_path: Path) -> None:
    """--write-accounts writes the file (0600, missing directories made) once the server
    listens; OAuth2 clients get tokens from the fake; --initial-logs are there; the same
    --seed gives the same credentials; Ctrl-C ends it with status 0."""
    target = tmp_path / "new" / "accounts.toml"
    args = ["fake", "serve", "--accounts", "2", "--rate", "5", "--auth", "oauth2"]
    args += ["--initial-logs", "7", "--seed", "9", "--write-accounts", str(target)]
    proc = await start(*args, env=base_env())
    try:
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode()
        assert first.startswith("FakeSendcloud at http://127.0.0.1:")
        assert target.exists()
        assert stat.S_IMODE(target.stat().st_mode) == 0o600
        accounts = load_accounts(target, {})
        assert [a.oauth2 is not None and a.basic is None for a in accounts] == [True, True]
        for account in accounts:
            ids = await _ids(account)
            assert len(ids) >= 7
        expected = fake_accounts(2, 9, "oauth2")
        assert [a.oauth2[:2] for a in accounts if a.oauth2] == [(e.key, e.secret) for e in expected]
        code, err = await _stop(proc, signal.SIGINT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert code == 0, err
    assert "stopped after" in err


def test_credentials_depend_on_the_seed_only() -> None:
    """The same seed, the same credentials; another seed, other secrets."""
    assert fake_accounts(3, 1, "basic") == fake_accounts(3, 1, "basic")
    assert [a.secret for a in fake_accounts(3, 1, "basic")] != [
        a.secret for a in fake_accounts(3, 2, "basic")
    ]
    assert len({a.secret for a in fake_accounts(50, 1, "basic")}) == 50


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--accounts", "0"), "--accounts: the value must be"),
        (("--accounts", "1001"), "--accounts must be 1 to 1,000"),
        (("--rate", "-1"), "the rate must be 0 to 10,000"),
        (("--rate", "nan"), "the rate must be 0 to 10,000"),
        (("--rate", "20000"), "the rate must be 0 to 10,000"),
        (("--rate", "fast"), "not a number: 'fast'"),
        (("--port", "70000"), "--port must be 0 to 65535"),
        (("--port", "-1"), "--port"),
        (("--keep", "0"), "--keep"),
        (("--initial-logs", "200000"), "--initial-logs must be 0 to 100,000"),
        (("--accounts", "4", "--initial-logs", "5", "--keep", "10"), "--keep 10 would drop"),
        (("--write-accounts", "-"), "--write-accounts needs a file"),
        (("--auth", "token"), "--auth: invalid choice"),
        (("--bogus",), "unrecognized arguments: --bogus"),
    ],
)
async def test_bad_options_are_one_usage_line(args: tuple[str, ...], needle: str) -> None:
    """Exit 2, one error line, before anything listens."""
    result = await run("fake", "serve", *args, env=base_env())
    assert_one_error_line(result, 2, needle)
    assert result.out == ""


async def test_a_directory_as_the_accounts_file_is_refused(tmp_path: Path) -> None:
    """--write-accounts naming a directory: exit 2 with one line."""
    result = await run("fake", "serve", "--write-accounts", str(tmp_path), env=base_env())
    assert_one_error_line(result, 2, "is a directory")


async def test_a_port_in_use_is_one_error_line() -> None:
    """Something already listens on --port: exit 1 with one line naming the address."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = await run("fake", "serve", "--port", str(port), env=base_env())
    assert_one_error_line(result, 1, f"cannot listen on 127.0.0.1:{port}")
    assert result.out == ""
