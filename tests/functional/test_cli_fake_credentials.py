"""``--fake`` checks credentials the same way for every command that takes it.

The embedded fake accepts only its own pair (``fake-public-key``/``fake-secret-key``,
``fake-client-id``/``fake-client-secret``). Credentials a command is given, in the
environment or in an accounts file, are sent to it as to Sendcloud: a wrong pair
gets 401 on every command. With none in the environment a one-account command uses
the fake's own. Run as the installed script.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sendcloud_async.testing import FakeSendcloud

from .test_cli import SECRET_KEY, Result, base_env, ids, run

WRONG = "a-wrong-secret"
BASIC_WRONG = {"SENDCLOUD_PUBLIC_KEY": "fake-public-key", "SENDCLOUD_SECRET_KEY": WRONG}
OAUTH2_WRONG = {"SENDCLOUD_CLIENT_ID": "fake-client-id", "SENDCLOUD_CLIENT_SECRET": WRONG}


def refused(result: Result) -> None:
    """Exit 1, a 401 said on stderr, no secret shown, no traceback."""
    assert result.code == 1, result
    assert "401" in result.err, result.err
    assert "Traceback" not in result.err
    assert WRONG not in result.err + result.out
    assert SECRET_KEY not in result.err + result.out


def accounts_file(tmp_path: Path, **tables: str) -> Path:
    """An accounts file of ``name = "public_key secret_key"`` (or ``"oauth2 id secret"``)."""
    lines = []
    for name, pair in tables.items():
        words = pair.split()
        lines.append(f"[accounts.{name}]")
        if words[0] == "oauth2":
            lines += [f"client_id = '{words[1]}'", f"client_secret = '{words[2]}'"]
        else:
            lines += [f"public_key = '{words[0]}'", f"secret_key = '{words[1]}'"]
    path = tmp_path / "accounts.toml"
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


#: Every command that takes --fake and one account's credentials from the environment.
ONE_ACCOUNT = [
    pytest.param(("logs", "export", "--out", "{tmp}/x.jsonl"), id="export"),
    pytest.param(("logs", "export", "--out", "-"), id="export-stdout"),
    pytest.param(
        ("logs", "export", "--out", "{tmp}/x.jsonl", "--per-integration"),
        id="export-per-integration",
    ),
    pytest.param(("logs", "watch", "--out", "{tmp}/x.jsonl", "--once"), id="watch"),
    pytest.param(("integrations", "list"), id="integrations-list"),
    pytest.param(("integrations", "get", "1"), id="integrations-get"),
    pytest.param(("logs", "report"), id="report"),
]


@pytest.mark.parametrize("credentials", [BASIC_WRONG, OAUTH2_WRONG], ids=["basic", "oauth2"])
@pytest.mark.parametrize("args", ONE_ACCOUNT)
async def test_a_wrong_pair_in_the_environment_gets_401(
    tmp_path: Path, args: tuple[str, ...], credentials: dict[str, str]
) -> None:
    """Every one-account command with --fake: a wrong Basic or OAuth2 pair is refused (401)."""
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    result = await run(*argv, "--fake", env=base_env(**credentials))
    refused(result)
    if "export" in args and "-" not in args:
        out = tmp_path / "x.jsonl"
        assert not out.exists() or out.read_bytes() == b""


@pytest.mark.parametrize(
    "credentials",
    [
        {},
        {"SENDCLOUD_PUBLIC_KEY": "fake-public-key", "SENDCLOUD_SECRET_KEY": SECRET_KEY},
        {"SENDCLOUD_CLIENT_ID": "fake-client-id", "SENDCLOUD_CLIENT_SECRET": "fake-client-secret"},
    ],
    ids=["none", "basic", "oauth2"],
)
async def test_no_credentials_or_the_fakes_own_pass(
    tmp_path: Path, credentials: dict[str, str]
) -> None:
    """None in the environment (the fake's own are used), or the fake's pair: it works."""
    out = tmp_path / "x.jsonl"
    exported = await run(
        "logs", "export", "--fake", "--out", str(out), "--integration", "1",
        env=base_env(**credentials),
    )  # fmt: skip
    assert exported.code == 0, exported
    assert len(ids(out)) == 7_500
    listed = await run("integrations", "list", "--fake", env=base_env(**credentials))
    assert listed.code == 0, listed
    watched = await run(
        "logs", "watch", "--fake", "--once", "--out", str(tmp_path / "w.jsonl"),
        env=base_env(**credentials),
    )  # fmt: skip
    assert watched.code == 0, watched


async def test_oauth2_asks_only_the_fakes_token_endpoint(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """With --fake, SENDCLOUD_TOKEN_URL and SENDCLOUD_BASE_URL are not asked: nothing leaves."""
    env = base_env(
        SENDCLOUD_CLIENT_ID="fake-client-id",
        SENDCLOUD_CLIENT_SECRET="fake-client-secret",
        SENDCLOUD_TOKEN_URL=fake.token_url,
        SENDCLOUD_BASE_URL=fake.base_url,
    )
    result = await run("integrations", "list", "--fake", env=env)
    assert result.code == 0, result
    wrong = await run("integrations", "list", "--fake", env={**env, **OAUTH2_WRONG})
    refused(wrong)
    assert fake.requests == []  # the fixture's server: neither credentials nor a request


@pytest.mark.parametrize("command", ["export", "watch"])
async def test_a_wrong_pair_in_an_accounts_file_gets_401(tmp_path: Path, command: str) -> None:
    """--fake --accounts, export and watch alike: bad accounts fail (401), the good one works."""
    accounts = accounts_file(
        tmp_path,
        good=f"fake-public-key {SECRET_KEY}",
        bad=f"fake-public-key {WRONG}",
        stranger=f"someone {WRONG}",
        token=f"oauth2 fake-client-id {WRONG}",
    )
    out_dir = tmp_path / "out"
    args = ["logs", command, "--fake", "--accounts", str(accounts), "--out-dir", str(out_dir)]
    if command == "watch":
        args += ["--once", "--start", "all"]
    result = await run(*args, env=base_env())
    refused(result)
    for name in ("bad", "stranger", "token"):
        assert f"account {name}: " in result.err
        assert (out_dir / f"{name}.jsonl").read_bytes() == b""
    assert "account good: " not in result.err
    # The fake of ``logs watch --fake`` keeps adding logs while it runs.
    assert len(ids(out_dir / "good.jsonl")) >= 30_000
