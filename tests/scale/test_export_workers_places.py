"""``logs export --accounts --redis`` and where the accounts go: a bucket in ``--out-dir``,
a destination holding another export. Real worker processes, a real ``redis-server``,
FakeSendcloud and an S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path

import pytest
import redis.asyncio

from sendcloud_async._checkpoint import checkpoint_path
from sendcloud_async.testing import FakeSendcloud
from tests.functional.test_cli import Result, assert_one_error_line, base_env, start

from .conftest import RedisServer
from .test_export_workers import _bucket_objects
from .test_redis_watch_cli import _accounts_file


async def _run_in(cwd: Path, *args: str, env: dict[str, str]) -> Result:
    await asyncio.to_thread(cwd.mkdir, parents=True, exist_ok=True)
    proc = await start(*args, env=env, cwd=cwd)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def _files(root: Path) -> dict[Path, bytes]:
    return {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}


async def test_a_bucket_in_out_dir_is_one_run_from_any_directory_and_nothing_local(
    fake: FakeSendcloud, redis_server: RedisServer, bucket: str, tmp_path: Path
) -> None:
    """Two workers started from two directories: one run; no local folder named after the URL."""
    fake.seed(integrations=1, logs_per_integration=30, seed=41)
    accounts = _accounts_file(tmp_path, fake, 2)
    env = base_env(**{k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    runs = []
    for name in ("w1", "w2"):
        result = await _run_in(
            tmp_path / name,
            "logs", "export", "--accounts", str(accounts), "--out-dir", f"s3://{bucket}/logs",
            "--format", "jsonl", "--redis", redis_server.url, "--lease", "2",
            env=env,
        )  # fmt: skip
        assert result.code == 0, result.err
        [joined] = re.findall(r"joined export run (\S+)", result.err)
        runs.append(joined)
        assert list((tmp_path / name).iterdir()) == []
    assert runs[0] == runs[1]
    objects = await asyncio.to_thread(_bucket_objects, bucket)
    for n in range(2):
        manifest = json.loads(objects[f"logs/account=shop-{n}/_manifest.json"])
        assert manifest["records"] == 30
        assert manifest["state"]["done"] is True


def test_the_run_of_a_bucket_does_not_depend_on_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from argparse import Namespace

    from sendcloud_async._cli.accounts import Account
    from sendcloud_async._cli.export_workers import run_name
    from sendcloud_async._cli.resume import Query

    accounts = [Account("a", "https://x.example/api/v3", None)]
    names = set()
    for cwd in (tmp_path, tmp_path.parent):
        monkeypatch.chdir(cwd)
        names.add(
            run_name(Namespace(run=None, out=None, out_dir="s3://b/logs", query=Query()), accounts)
        )
    assert len(names) == 1
    other = Namespace(run=None, out=None, out_dir="s3://b/other", query=Query())
    assert run_name(other, accounts) not in names


async def test_a_manifest_of_another_query_is_refused_before_anything_is_claimed(
    fake: FakeSendcloud, redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    fake.seed(integrations=1, logs_per_integration=30, seed=42)
    accounts = _accounts_file(tmp_path, fake, 1)
    lake = tmp_path / "lake"
    first = await _run_in(
        tmp_path, "logs", "export", "--accounts", str(accounts), "--out", str(lake),
        "--format", "parquet", "--page-size", "7", env=base_env(),
    )  # fmt: skip
    assert first.code == 0, first.err
    where = lake / "account=shop-0" / "_manifest.json"
    data = json.loads(where.read_text())
    data["state"]["done"] = False  # an unfinished export of page size 7
    where.write_text(json.dumps(data))
    before = _files(lake)
    fake.clear_requests()
    refused = await _run_in(
        tmp_path, "logs", "export", "--accounts", str(accounts), "--out", str(lake),
        "--format", "parquet", "--redis", redis_server.url, "--run", namespace,
        env=base_env(),
    )  # fmt: skip
    assert_one_error_line(
        refused,
        2,
        f"account shop-0: cannot resume: the checkpoint {where} is for another export "
        "(page_size 100 here but 7 in the checkpoint); --restart does not go with --redis: "
        "export into another place to start over, or pick another output",
    )
    assert _files(lake) == before
    assert fake.requests == []
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        assert await client.keys(f"*{namespace}*") == []
    finally:
        await client.aclose()


async def test_a_file_checkpoint_of_another_query_is_refused_without_advising_restart(
    fake: FakeSendcloud, redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """Refused before anything is claimed or sent (status 2), with the advice to start
    over that goes with ``--redis``, which refuses ``--restart``."""
    fake.seed(integrations=1, logs_per_integration=30, seed=42)
    accounts = _accounts_file(tmp_path, fake, 1)
    out = tmp_path / "out"
    first = await _run_in(
        tmp_path, "logs", "export", "--accounts", str(accounts), "--out-dir", str(out),
        "--page-size", "7", env=base_env(),
    )  # fmt: skip
    assert first.code == 0, first.err
    where = checkpoint_path(out / "shop-0.jsonl")
    data = json.loads(where.read_text())
    data["done"] = False  # an unfinished export of page size 7
    where.write_text(json.dumps(data))
    before = _files(out)
    fake.clear_requests()
    refused = await _run_in(
        tmp_path, "logs", "export", "--accounts", str(accounts), "--out-dir", str(out),
        "--page-size", "9", "--redis", redis_server.url, "--run", namespace, env=base_env(),
    )  # fmt: skip
    assert_one_error_line(
        refused,
        2,
        f"account shop-0: cannot resume: the checkpoint {where} is for another export "
        "(page_size 9 here but 7 in the checkpoint); drop --page-size to continue it as the "
        "checkpoint says, or --restart does not go with --redis: export into another place "
        "to start over with it",
    )
    assert "--restart (instead of --resume)" not in refused.err
    assert _files(out) == before
    assert fake.requests == []


async def test_a_damaged_file_checkpoint_fails_its_account_without_advising_restart(
    fake: FakeSendcloud, redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """A file output is opened when its account is claimed (another worker may hold its
    lock until then): a damaged checkpoint fails that account, and the advice to start
    over is the one that goes with ``--redis``; nothing is written."""
    fake.seed(integrations=1, logs_per_integration=30, seed=42)
    accounts = _accounts_file(tmp_path, fake, 1)
    out = tmp_path / "out"
    first = await _run_in(
        tmp_path, "logs", "export", "--accounts", str(accounts), "--out-dir", str(out),
        env=base_env(),
    )  # fmt: skip
    assert first.code == 0, first.err
    where = checkpoint_path(out / "shop-0.jsonl")
    where.write_text("{not json")
    before = _files(out)
    refused = await _run_in(
        tmp_path, "logs", "export", "--accounts", str(accounts), "--out-dir", str(out),
        "--redis", redis_server.url, "--run", namespace, env=base_env(),
    )  # fmt: skip
    assert refused.code == 1, refused.err
    failed = [line for line in refused.err.splitlines() if "account shop-0: failed:" in line]
    assert len(failed) == 1, refused.err
    assert failed[0].endswith(
        "--restart does not go with --redis: export into another place to start over"
    ), failed[0]
    assert "(instead of --resume)" not in refused.err
    assert _files(out) == before
