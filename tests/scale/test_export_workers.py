"""``logs export --accounts FILE --out-dir DIR --redis URL``: workers sharing an export.

Real worker processes of the console script on one real ``redis-server``, against a
FakeSendcloud serving in the test's event loop; kills and pauses are real signals.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import pytest
import redis.asyncio

import sendcloud_async as sc
from sendcloud_async._checkpoint import Checkpoint, checkpoint_path
from sendcloud_async._cli.export_lease import DoneState, LeaseFence
from sendcloud_async._errors import ExportInUseError
from sendcloud_async._export import LogExport
from sendcloud_async._redis._watch import LeaseLostError, RedisWatchStore
from sendcloud_async.testing import FakeSendcloud, Fault
from tests._s3server import S3Server
from tests.functional.test_cli import assert_one_error_line, base_env, ids, run, start

from .conftest import RedisServer, free_port, redis_binary
from .test_redis_watch_cli import _accounts_file

_NS = "sendcloud-async"


def _lease_key(run_name: str, account: str) -> str:
    return f"{_NS}:watch:{{export:{run_name}:{account}}}:lease"


def _state_key(run_name: str, account: str) -> str:
    return f"{_NS}:watch:{{export:{run_name}:{account}}}:state"


def _checkpoint(out: Path) -> Checkpoint | None:
    try:
        return msgspec.json.decode(checkpoint_path(out).read_bytes(), type=Checkpoint)
    except (OSError, msgspec.DecodeError):
        return None


def _export_args(accounts: Path, out_dir: Path, url: str, *extra: str) -> tuple[str, ...]:
    return ("logs", "export", "--accounts", str(accounts), "--out-dir", str(out_dir),
            "--redis", url, *extra)  # fmt: skip


def _assert_complete_once(out_dir: Path, count: int, expected: list[int]) -> None:
    """Every account's file holds every log once, in order, and its checkpoint agrees."""
    for n in range(count):
        out = out_dir / f"shop-{n}.jsonl"
        assert ids(out) == expected, f"shop-{n}"
        state = _checkpoint(out)
        assert state is not None
        assert state.done
        assert state.records == len(expected)
        assert state.offset == out.stat().st_size


# -- bad inputs: one line, nothing written, nothing sent -----------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--run", "no spaces"), "--run must be 1 to 64 letters"),
        (("--restart",), "--restart cannot be used with --redis"),
        (("--fake",), "--fake cannot be used with --redis"),
        (("--lease", "0"), "--lease"),
    ],
)
async def test_options_that_do_not_go_with_redis_are_refused(
    fake: FakeSendcloud,
    redis_server: RedisServer,
    tmp_path: Path,
    extra: tuple[str, ...],
    message: str,
) -> None:
    accounts = _accounts_file(tmp_path, fake, 2)
    out_dir = tmp_path / "out"
    result = await run(*_export_args(accounts, out_dir, redis_server.url, *extra), env=base_env())
    assert_one_error_line(result, 2, message)
    assert not out_dir.exists()
    assert fake.requests == []


async def test_redis_options_need_redis_and_accounts(fake: FakeSendcloud, tmp_path: Path) -> None:
    """--redis without --accounts, --lease or --run without --redis, a URL that is not Redis."""
    accounts = _accounts_file(tmp_path, fake, 1)
    out_dir = tmp_path / "out"
    for args, message in (
        (("--out", str(tmp_path / "x.jsonl"), "--redis", "redis://127.0.0.1:1/0"),
         "--redis needs --accounts"),
        (("--accounts", str(accounts), "--out-dir", str(out_dir), "--lease", "5"),
         "--lease goes with --redis"),
        (("--accounts", str(accounts), "--out-dir", str(out_dir), "--run", "x"),
         "--run goes with --redis"),
        (("--accounts", str(accounts), "--out-dir", str(out_dir), "--redis", "http://127.0.0.1/"),
         "--redis must be a redis://"),
        (("--accounts", str(accounts), "--out-dir", str(out_dir), "--redis",
          "redis://127.0.0.1:6379/abc"), "--redis"),
    ):  # fmt: skip
        result = await run("logs", "export", *args, env=base_env())
        assert_one_error_line(result, 2, message)
    assert not out_dir.exists()
    assert not (tmp_path / "x.jsonl").exists()
    assert fake.requests == []


async def test_a_password_redis_refuses_is_one_line_and_nothing_is_written(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A wrong password: exit 1 with one line that does not show it; no directory, no request."""
    server = RedisServer(
        redis_binary(), free_port(), tmp_path, extra=("--requirepass", "the-right-one")
    )
    server.start()
    try:
        accounts = _accounts_file(tmp_path, fake, 2)
        out_dir = tmp_path / "out"
        url = f"redis://:a-wrong-password@127.0.0.1:{server.port}/0"
        result = await run(*_export_args(accounts, out_dir, url), env=base_env())
    finally:
        server.stop()
    assert_one_error_line(result, 1, "password")
    assert "a-wrong-password" not in result.err + result.out
    assert not out_dir.exists()
    assert fake.requests == []


def test_the_missing_redis_extra_names_the_pip_install(tmp_path: Path) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text(
        '[accounts.shop]\npublic_key = "pk"\nsecret_key = "sk"\n'
        'base_url = "https://panel.sendcloud.sc/api/v3"\n',
        encoding="utf-8",
    )
    accounts.chmod(0o600)
    out_dir = tmp_path / "out"
    code = (
        "import sys\n"
        "sys.modules['redis'] = None\n"
        "from sendcloud_async._cli import main\n"
        f"sys.exit(main(['logs', 'export', '--accounts', {str(accounts)!r}, "
        f"'--out-dir', {str(out_dir)!r}, '--redis', 'redis://127.0.0.1:6379/0']))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=base_env()
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].endswith("pip install 'sendcloud-async[redis]'"), lines[0]
    assert not out_dir.exists()


# -- the fence, step by step -----------------------------------------------------------------


async def test_the_fence_refuses_a_lease_taken_over_even_when_the_clock_here_says_it_holds(
    redis_server: RedisServer, namespace: str
) -> None:
    """The token decides, not the local clock: after a takeover the old holder's fence raises."""
    a = RedisWatchStore.from_url(
        redis_server.url, namespace=namespace, stream_prefix="export:t", lease=0.3, worker_id="a"
    )
    b = RedisWatchStore.from_url(
        redis_server.url, namespace=namespace, stream_prefix="export:t", lease=0.3, worker_id="b"
    )
    async with a, b:
        (mine,), _ = await a.claim(["shop"])
        fence = LeaseFence(a, mine, claimed_at=time.monotonic())
        await fence()  # held: renewed
        await asyncio.sleep(0.5)  # lapsed
        (theirs,), _ = await b.claim(["shop"])
        assert theirs.how == "takeover"
        assert theirs.token > mine.token
        fence.renewed(time.monotonic())  # as if the clock here had not seen the pause
        with pytest.raises(LeaseLostError, match="nothing more was written"):
            await fence()
        assert fence.lost
        with pytest.raises(LeaseLostError):  # and it stays refused
            await fence()
        await LeaseFence(b, theirs, claimed_at=time.monotonic())()  # the new holder writes


async def test_a_paused_holder_writes_nothing_after_the_takeover_and_the_next_continues_once(
    fake: FakeSendcloud, redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """Holder A stalls past its lease (its third page answers late), B takes the lease over:
    A's next commit is refused with nothing written, B cannot open the output while A holds
    its lock, and once A lets go B continues from A's checkpoint: every log once."""
    fake.seed(integrations=2, logs_per_integration=20, seed=4)
    expected = [log["id"] for log in fake.logs]
    out = tmp_path / "shop.jsonl"
    stores = [
        RedisWatchStore.from_url(
            redis_server.url,
            namespace=namespace,
            stream_prefix="export:p",
            lease=0.8,
            worker_id=worker,
        )
        for worker in ("a", "b")
    ]
    # The first two pages come at once; the third answers well past the lease.
    fake.inject("GET", "/integrations/logs", Fault.delay(0), Fault.delay(0), Fault.delay(2.5))
    async with (
        stores[0],
        stores[1],
        sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client,
    ):
        (lease_a,), _ = await stores[0].claim(["shop"])
        job_a = LogExport(out, base_url=fake.base_url, page_size=5, resume=True)
        job_a.fence = LeaseFence(stores[0], lease_a, claimed_at=time.monotonic())
        job_a.open()
        run_a = asyncio.create_task(job_a.run(client))
        await asyncio.sleep(1.4)  # A waits for its third page; its lease has lapsed
        (lease_b,), _ = await stores[1].claim(["shop"])
        assert lease_b.how == "takeover"
        job_b = LogExport(out, base_url=fake.base_url, page_size=5, resume=True)
        job_b.fence = LeaseFence(stores[1], lease_b, claimed_at=time.monotonic())
        with pytest.raises(ExportInUseError):  # A still holds the output's lock
            job_b.open()
        with pytest.raises(LeaseLostError):
            await run_a
        job_a.close()
        state = _checkpoint(out)
        assert state is not None
        # Nothing of the third page (5 + 4: the second lists the first's last log again).
        assert (state.pages, state.records) == (2, 9)
        assert ids(out) == expected[:9]
        # B let the lease go when the output was locked; it claims again and continues.
        (lease_b,), _ = await stores[1].claim(["shop"])
        job_b.fence = LeaseFence(stores[1], lease_b, claimed_at=time.monotonic())
        job_b.open()
        try:
            stats = await job_b.run(client)
        finally:
            job_b.close()
    assert stats.resumed
    assert stats.run_records == len(expected) - 9
    assert ids(out) == expected


async def test_a_lost_lease_publishes_nothing_of_what_the_parts_export_buffered(
    fake: FakeSendcloud, redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """Holder A buffers two pages of parts, then waits for its third past its lease; B
    takes the lease over, and A's renewal round finds out and stops A's export as the
    worker does (``lost`` set, the task cancelled). A publishes nothing: no part, the
    manifest's checkpoint as it was; B continues from there and every log is once."""
    fake.seed(integrations=2, logs_per_integration=20, seed=4)
    expected = sorted(log["id"] for log in fake.logs)
    out = tmp_path / "lake"
    stores = [
        RedisWatchStore.from_url(
            redis_server.url,
            namespace=namespace,
            stream_prefix="export:l",
            lease=0.8,
            worker_id=worker,
        )
        for worker in ("a", "b")
    ]
    fake.inject("GET", "/integrations/logs", Fault.delay(0), Fault.delay(0), Fault.delay(2.5))

    def job() -> LogExport:
        return LogExport(
            str(out), base_url=fake.base_url, fmt="parquet", page_size=5, resume=True,
            account="shop", part_seconds=3600,
        )  # fmt: skip

    async with (
        stores[0],
        stores[1],
        sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client,
    ):
        (lease_a,), _ = await stores[0].claim(["shop"])
        job_a = job()
        fence = LeaseFence(stores[0], lease_a, claimed_at=time.monotonic())
        job_a.fence = fence
        job_a.open()
        pages: list[int] = []
        run_a = asyncio.create_task(job_a.run(client, progress=lambda s: pages.append(s.pages)))
        await asyncio.sleep(1.4)  # two pages buffered; A waits for its third; lease lapsed
        assert pages == [1, 2]
        (lease_b,), _ = await stores[1].claim(["shop"])
        assert lease_b.how == "takeover"
        _, lost, _ = await stores[0].renew([lease_a])  # A's round
        assert lost
        fence.lost = True
        run_a.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run_a
        await job_a.aclose()
        manifest = msgspec.json.decode((out / "account=shop" / "_manifest.json").read_bytes())
        assert (manifest["records"], manifest["parts"]) == (0, [])
        assert manifest["state"] is None or manifest["state"]["records"] == 0
        assert not list(out.rglob("*.parquet"))
        assert not list(out.rglob("*.tmp"))
        job_b = job()
        job_b.fence = LeaseFence(stores[1], lease_b, claimed_at=time.monotonic())
        job_b.open()
        try:
            stats = await job_b.run(client)
        finally:
            await job_b.aclose()
    assert stats.done
    rows = duckdb.sql(f"select id from read_parquet('{out}/**/*.parquet')").fetchall()  # type: ignore[union-attr]
    assert sorted(r[0] for r in rows) == expected


# -- many workers ------------------------------------------------------------------------------


def test_the_run_is_named_after_the_accounts_and_the_directory(tmp_path: Path) -> None:
    from argparse import Namespace

    from sendcloud_async._cli.accounts import Account
    from sendcloud_async._cli.export_workers import run_name
    from sendcloud_async._cli.resume import Query

    def named(names: list[str], out_dir: Path, run: str | None = None) -> str:
        accounts = [Account(name, "https://x.example/api/v3", None) for name in names]
        args = Namespace(run=run, out=None, out_dir=str(out_dir), query=Query())
        return run_name(args, accounts)

    first = named(["a", "b"], tmp_path / "out")
    assert first == named(["b", "a"], tmp_path / "out")  # the file's order does not matter
    assert first != named(["a", "b"], tmp_path / "other")
    assert first != named(["a", "c"], tmp_path / "out")
    assert named(["a"], tmp_path / "out", run="nightly") == "nightly"


async def _holding(client: redis.asyncio.Redis, run_name: str, pid: int, out_dir: Path) -> str:
    """An account worker ``pid`` holds whose export is under way (within 30 s)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for n in range(30):
            name = f"shop-{n}"
            value: Any = await client.get(_lease_key(run_name, name))
            if value is None or f":{pid}:" not in value.decode():
                continue
            state = _checkpoint(out_dir / f"{name}.jsonl")
            if state is not None and state.records > 0 and not state.done:
                return name
        await asyncio.sleep(0.02)
    raise AssertionError(f"worker {pid} held no account under way within 30 s")


@pytest.mark.alone
@pytest.mark.timeout(240)
async def test_three_workers_two_kills_and_a_pause_export_every_account_exactly_once(
    fake: FakeSendcloud, redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """30 accounts, 3 workers; one SIGKILLed (a fresh one joins), then another, and one
    SIGSTOPped past its lease, then SIGCONT: every account's file holds every log once,
    its checkpoint agrees, Redis says every account done, and every live worker exits 0."""
    fake.seed(integrations=2, logs_per_integration=50, seed=5)
    fake.enforce_rate_limits(sc.RateLimits(get=10**6, unsafe=10**6, window=1.0), latency=0.015)
    expected = [log["id"] for log in fake.logs]
    accounts = _accounts_file(tmp_path, fake, 30)
    out_dir = tmp_path / "out"
    run_name = namespace
    lease = 1.5
    args = _export_args(
        accounts, out_dir, redis_server.url,
        "--run", run_name, "--lease", str(lease), "--page-size", "4", "--concurrency", "2",
    )  # fmt: skip
    client = redis.asyncio.Redis.from_url(redis_server.url)
    workers = [await start(*args, env=base_env()) for _ in range(3)]
    outputs: dict[int, tuple[bytes, bytes]] = {}
    try:
        killed = []
        for victim in (0, 1):
            await _holding(client, run_name, workers[victim].pid, out_dir)
            workers[victim].send_signal(signal.SIGKILL)
            outputs[victim] = await workers[victim].communicate()
            killed.append(workers[victim].pid)
            workers.append(await start(*args, env=base_env()))  # a fresh worker joins
        paused = workers[2]
        stalled = await _holding(client, run_name, paused.pid, out_dir)
        paused.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(lease + 2.0)  # its lease and its heartbeat lapse
        finally:
            paused.send_signal(signal.SIGCONT)
        for n in (2, 3, 4):
            outputs[n] = await asyncio.wait_for(workers[n].communicate(), 120)
    finally:
        for worker in workers:
            if worker.returncode is None:
                os.kill(worker.pid, signal.SIGCONT)
                worker.kill()
                await worker.wait()
    errors = {n: outputs[n][1].decode() for n in outputs}
    for n in (2, 3, 4):
        assert workers[n].returncode == 0, errors[n]
        assert "30 of 30 accounts of run" in outputs[n][0].decode(), outputs[n][0].decode()
        assert "Traceback" not in errors[n]
    _assert_complete_once(out_dir, 30, expected)
    # The killed workers' accounts were taken over and continued from their checkpoints.
    takeovers = "".join(errors[n] for n in (2, 3, 4))
    for pid in killed:
        assert f":{pid}:" in takeovers, takeovers
    # The paused worker found out when it woke, and wrote nothing more for that lease.
    assert f"account {stalled}: lost the lease" in errors[2], errors[2]
    for n in range(30):
        state = await client.get(_lease_key(run_name, f"shop-{n}"))
        assert state is None  # every lease released
        saved: Any = await client.hget(_state_key(run_name, f"shop-{n}"), "state")
        assert saved is not None
        assert msgspec.json.decode(saved, type=DoneState).done
    # The same command again: nothing left to do, no request sent.
    sent = len(fake.requests)
    again = await run(*args, env=base_env())
    assert again.code == 0, again.err
    assert "exported 0 records of 0 accounts" in again.out
    assert "30 of 30 accounts" in again.out
    assert len(fake.requests) == sent
    await client.aclose()


async def test_sigterm_releases_the_leases_and_the_same_command_finishes_the_rest(
    fake: FakeSendcloud, redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """SIGTERM mid-export: exit 143, leases released at once (no lapse to wait for),
    checkpoints consistent; the same command then completes every account exactly once."""
    fake.seed(integrations=2, logs_per_integration=40, seed=6)
    fake.enforce_rate_limits(sc.RateLimits(get=10**6, unsafe=10**6, window=1.0), latency=0.01)
    expected = [log["id"] for log in fake.logs]
    accounts = _accounts_file(tmp_path, fake, 4)
    out_dir = tmp_path / "out"
    args = _export_args(
        accounts, out_dir, redis_server.url, "--run", namespace, "--page-size", "4",
        "--concurrency", "2",
    )  # fmt: skip
    client = redis.asyncio.Redis.from_url(redis_server.url)
    try:
        worker = await start(*args, env=base_env())
        await _holding(client, namespace, worker.pid, out_dir)
        worker.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(worker.communicate(), 30)
        assert worker.returncode == 143, err.decode()
        assert "stopped; leases released" in err.decode()
        for n in range(4):
            assert await client.get(_lease_key(namespace, f"shop-{n}")) is None
        for n in range(4):
            state = _checkpoint(out_dir / f"shop-{n}.jsonl")
            if state is not None:
                written = ids(out_dir / f"shop-{n}.jsonl")
                assert written[: state.records] == expected[: state.records]
        started = time.monotonic()
        again = await run(*args, env=base_env())
        assert again.code == 0, again.err
        assert time.monotonic() - started < 20  # no lease had to lapse first
    finally:
        await client.aclose()
    _assert_complete_once(out_dir, 4, expected)


async def test_a_failing_account_is_one_line_and_the_others_are_done(
    fake: FakeSendcloud, redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """Wrong credentials for one account: its line on stderr (no secret), the others done,
    exit 1; fixed, the same command exports it and leaves the others alone."""
    fake.seed(integrations=2, logs_per_integration=10, seed=7)
    expected = [log["id"] for log in fake.logs]
    accounts = _accounts_file(tmp_path, fake, 3)
    accounts.write_text(accounts.read_text().replace('"sk-1"', '"not-the-secret"'))
    out_dir = tmp_path / "out"
    args = _export_args(accounts, out_dir, redis_server.url, "--run", namespace)
    result = await run(*args, env=base_env())
    assert result.code == 1, result.err
    failed = [line for line in result.err_lines if "failed" in line]
    assert len(failed) == 1, result.err
    assert "account shop-1: failed" in failed[0]
    assert "401" in failed[0]
    assert "not-the-secret" not in result.err + result.out
    assert "shop-1 failed here" in result.out
    for n in (0, 2):
        assert ids(out_dir / f"shop-{n}.jsonl") == expected
    accounts.write_text(accounts.read_text().replace('"not-the-secret"', '"sk-1"'))
    sent = len(fake.requests)
    again = await run(*args, env=base_env())
    assert again.code == 0, again.err
    assert "3 of 3 accounts" in again.out
    _assert_complete_once(out_dir, 3, expected)
    # Only the fixed account was asked for again.
    shop_1 = "Basic " + base64.b64encode(b"pk-1:sk-1").decode()
    assert {r.headers.get("Authorization") for r in fake.requests[sent:]} == {shop_1}


async def test_a_done_mark_without_its_output_is_exported_again(
    fake: FakeSendcloud, redis_server: RedisServer, namespace: str, tmp_path: Path
) -> None:
    """Redis says done but the file was removed: the same command exports it again, once."""
    fake.seed(integrations=1, logs_per_integration=12, seed=8)
    expected = [log["id"] for log in fake.logs]
    accounts = _accounts_file(tmp_path, fake, 2)
    out_dir = tmp_path / "out"
    args = _export_args(accounts, out_dir, redis_server.url, "--run", namespace)
    first = await run(*args, env=base_env())
    assert first.code == 0, first.err
    (out_dir / "shop-0.jsonl").unlink()
    checkpoint_path(out_dir / "shop-0.jsonl").unlink()
    again = await run(*args, env=base_env())
    assert again.code == 0, again.err
    assert "exported 12 records of 1 accounts" in again.out, again.out
    _assert_complete_once(out_dir, 2, expected)


# -- into a bucket -----------------------------------------------------------------------------


def _bucket_objects(bucket: str) -> dict[str, bytes]:
    """Every object of ``bucket``: key -> bytes (obstore's blocking calls)."""
    import obstore
    from obstore.store import S3Store

    store = S3Store(bucket, client_options={"allow_http": True})
    keys = [str(meta["path"]) for chunk in obstore.list(store) for meta in chunk]
    return {key: bytes(obstore.get(store, key).bytes()) for key in keys}


@pytest.mark.alone
@pytest.mark.timeout(240)
async def test_workers_into_a_bucket_with_a_kill_commit_every_log_once(
    fake: FakeSendcloud,
    redis_server: RedisServer,
    s3_server: S3Server,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two workers into s3:// parts, one SIGKILLed mid-account and a fresh one joining:
    every account's manifest lists parts that hold every log once, and nothing else
    is left in its folder."""
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    bucket = f"workers-{namespace}"
    s3_server.create_bucket(bucket)
    fake.seed(integrations=2, logs_per_integration=50, seed=8)
    fake.enforce_rate_limits(sc.RateLimits(get=10**6, unsafe=10**6, window=1.0), latency=0.015)
    expected = sorted(log["id"] for log in fake.logs)
    accounts = _accounts_file(tmp_path, fake, 6)
    args = (
        "logs", "export", "--accounts", str(accounts), "--out", f"s3://{bucket}/logs",
        "--format", "jsonl", "--redis", redis_server.url, "--run", namespace,
        "--lease", "1.5", "--page-size", "4", "--concurrency", "2",
    )  # fmt: skip
    env = base_env(**s3_server.env)
    client = redis.asyncio.Redis.from_url(redis_server.url)
    workers = [await start(*args, env=env) for _ in range(2)]
    try:
        deadline = time.monotonic() + 30
        victim = workers[0]
        while time.monotonic() < deadline:  # the victim holds an account: kill it then
            held = [
                n
                for n in range(6)
                if f":{victim.pid}:".encode()
                in (await client.get(_lease_key(namespace, f"shop-{n}")) or b"")
            ]
            if held:
                await asyncio.sleep(0.2)  # some pages in
                break
            await asyncio.sleep(0.02)
        assert held, "the first worker never held an account"
        victim.send_signal(signal.SIGKILL)
        await victim.communicate()
        workers.append(await start(*args, env=env))
        outputs = [await asyncio.wait_for(w.communicate(), 120) for w in workers[1:]]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        await client.aclose()
    for worker, (out, err) in zip(workers[1:], outputs, strict=True):
        assert worker.returncode == 0, err.decode()
        assert "6 of 6 accounts of run" in out.decode(), out.decode()
    # The killed worker's accounts were taken over (from their manifests).
    said = "".join(err.decode() for _, err in outputs).splitlines()
    assert any("taken over from worker" in line and f":{victim.pid}:" in line for line in said)
    objects = await asyncio.to_thread(_bucket_objects, bucket)
    for n in range(6):
        folder = f"logs/account=shop-{n}/"
        manifest = msgspec.json.decode(objects[folder + "_manifest.json"])
        listed = [part["key"] for part in manifest["parts"]]
        ids_in_parts = [
            msgspec.json.decode(line)["id"]
            for key in listed
            for line in objects[f"logs/{key}" if not key.startswith("logs/") else key].splitlines()
        ]
        assert sorted(ids_in_parts) == expected, f"shop-{n}"
        left = {key for key in objects if key.startswith(folder) and key.endswith(".jsonl")}
        assert left == {k if k.startswith("logs/") else f"logs/{k}" for k in listed}, f"shop-{n}"


#: The seed of the moments of the kills in the bucket test below (said when it fails).
_BUCKET_KILL_SEED = 20261206


def _manifest_of(bucket: str, key: str) -> dict[str, Any] | None:
    """The manifest at ``key`` of ``bucket`` decoded, or ``None`` while there is none."""
    import obstore
    from obstore.store import S3Store

    store = S3Store(bucket, client_options={"allow_http": True})
    try:
        raw = bytes(obstore.get(store, key).bytes())
    except FileNotFoundError:
        return None
    manifest: dict[str, Any] = msgspec.json.decode(raw)
    return manifest


async def _held_by(client: redis.asyncio.Redis, run_name: str, pid: int, count: int) -> list[str]:
    """The accounts whose lease worker ``pid`` holds now."""
    names = [f"shop-{n}" for n in range(count)]
    values: list[Any] = await client.mget([_lease_key(run_name, name) for name in names])
    return [
        name
        for name, value in zip(names, values, strict=True)
        if value is not None and f":{pid}:" in value.decode()
    ]


async def _unfinished(client: redis.asyncio.Redis, run_name: str, names: list[str]) -> list[str]:
    """Those of ``names`` Redis does not mark done."""
    left = []
    for name in names:
        saved: Any = await client.hget(_state_key(run_name, name), "state")
        if saved is None or not msgspec.json.decode(saved, type=DoneState).done:
            left.append(name)
    return left


async def _under_way_in_bucket(
    client: redis.asyncio.Redis,
    run_name: str,
    pid: int,
    bucket: str,
    count: int,
    *,
    at_least: int = 1,
    at_most: int | None = None,
) -> str | None:
    """An account worker ``pid`` holds whose manifest lists ``at_least`` (and at most
    ``at_most``) of its logs and is not done, or ``None``."""
    for name in await _held_by(client, run_name, pid, count):
        manifest = await asyncio.to_thread(
            _manifest_of, bucket, f"logs/account={name}/_manifest.json"
        )
        if manifest is None or (manifest["state"] or {}).get("done"):
            continue
        if at_least <= manifest["records"] and (at_most is None or manifest["records"] <= at_most):
            return name
    return None


async def _wait_under_way_in_bucket(
    client: redis.asyncio.Redis,
    run_name: str,
    pid: int,
    bucket: str,
    count: int,
    *,
    at_least: int = 1,
    at_most: int | None = None,
) -> str:
    """``_under_way_in_bucket``, waited for (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        name = await _under_way_in_bucket(
            client, run_name, pid, bucket, count, at_least=at_least, at_most=at_most
        )
        if name is not None:
            return name
        await asyncio.sleep(0.01)
    raise AssertionError(
        f"worker {pid} held no account with {at_least} to {at_most} logs published within 30 s"
    )


def _part_rows(files: list[Path]) -> list[tuple[int, str, str, str]]:
    """``(id, account, date, file)`` of every row of the Parquet ``files`` (DuckDB, their
    Hive folders read as columns)."""
    import duckdb

    listed = ", ".join(f"'{file}'" for file in files)
    rows: list[tuple[int, str, str, str]] = duckdb.sql(
        f"select id, account, cast(date as varchar), filename from read_parquet([{listed}], "
        "hive_partitioning=true, filename=true)"
    ).fetchall()  # type: ignore[union-attr]
    return rows


@pytest.mark.alone
async def test_three_workers_into_a_bucket_two_kills_and_a_pause_commit_every_log_once(
    fake: FakeSendcloud,
    redis_server: RedisServer,
    redis_client: redis.asyncio.Redis,
    s3_server: S3Server,
    namespace: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """30 accounts into Parquet parts in a bucket, 3 workers: one SIGKILLed within its first
    second, another mid-account at a random point (a fresh worker joins after each), and
    one SIGSTOPped past its lease, then SIGCONT. Every account's manifest lists parts that
    hold exactly its logs, each once; no part outside a manifest is left; the accounts
    the killed and the paused workers held were taken over; every live worker exits 0."""
    seed = _BUCKET_KILL_SEED
    rng = random.Random(seed)
    for name, value in s3_server.env.items():
        monkeypatch.setenv(name, value)
    bucket = f"workers-{namespace}"
    s3_server.create_bucket(bucket)
    fake.seed(integrations=2, logs_per_integration=50, seed=9)
    fake.enforce_rate_limits(sc.RateLimits(get=10**6, unsafe=10**6, window=1.0), latency=0.015)
    expected = sorted(log["id"] for log in fake.logs)
    count = 30
    accounts = _accounts_file(tmp_path, fake, count)
    run_name = namespace
    lease = 1.5
    args = (
        "logs", "export", "--accounts", str(accounts), "--out", f"s3://{bucket}/logs",
        "--format", "parquet", "--roll-records", "12", "--redis", redis_server.url,
        "--run", run_name, "--lease", str(lease), "--page-size", "4", "--concurrency", "2",
    )  # fmt: skip
    env = base_env(**s3_server.env)
    client = redis_client
    workers = [await start(*args, env=env) for _ in range(3)]
    outputs: dict[int, tuple[bytes, bytes]] = {}
    #: The accounts a killed or paused worker held unfinished: another must take each over.
    orphaned: dict[int, list[str]] = {}
    try:
        # The first kill: a random moment of the first worker's first second.
        await asyncio.sleep(rng.uniform(0.2, 1.0))
        victim = workers[0]
        victim.send_signal(signal.SIGKILL)
        outputs[0] = await victim.communicate()
        held = await _held_by(client, run_name, victim.pid, count)
        orphaned[victim.pid] = await _unfinished(client, run_name, held)
        workers.append(await start(*args, env=env))  # a fresh worker joins
        # The second: mid-account, once a random share of one of its accounts is published.
        victim = workers[1]
        target = rng.randint(1, 80)
        await _wait_under_way_in_bucket(
            client, run_name, victim.pid, bucket, count, at_least=target
        )
        victim.send_signal(signal.SIGKILL)
        outputs[1] = await victim.communicate()
        held = await _held_by(client, run_name, victim.pid, count)
        orphaned[victim.pid] = await _unfinished(client, run_name, held)
        assert orphaned[victim.pid], f"seed {seed}: the second kill hit no account under way"
        workers.append(await start(*args, env=env))
        # The pause: while it holds an account under way, past its lease.
        paused = workers[2]
        for _ in range(50):
            await _wait_under_way_in_bucket(client, run_name, paused.pid, bucket, count)
            paused.send_signal(signal.SIGSTOP)
            # What it held unfinished as it stopped: it can change nothing more now.
            stalled = await _under_way_in_bucket(client, run_name, paused.pid, bucket, count)
            if stalled is not None:
                break
            paused.send_signal(signal.SIGCONT)  # it finished that one meanwhile: again
        else:
            raise AssertionError(f"seed {seed}: the paused worker was never stopped mid-account")
        try:
            held = await _held_by(client, run_name, paused.pid, count)
            orphaned[paused.pid] = await _unfinished(client, run_name, held)
            await asyncio.sleep(lease + 2.0)  # its lease and its heartbeat lapse
        finally:
            paused.send_signal(signal.SIGCONT)
        for n in (2, 3, 4):
            outputs[n] = await asyncio.wait_for(workers[n].communicate(), 120)
    finally:
        for worker in workers:
            if worker.returncode is None:
                os.kill(worker.pid, signal.SIGCONT)
                worker.kill()
                await worker.wait()
    errors = {n: outputs[n][1].decode() for n in outputs}
    for n in (0, 1):
        assert workers[n].returncode == -signal.SIGKILL, f"seed {seed}: {errors[n]}"
    for n in (2, 3, 4):
        out = outputs[n][0].decode()
        assert workers[n].returncode == 0, f"seed {seed}: {errors[n]}"
        assert f"{count} of {count} accounts of run" in out, f"seed {seed}: {out}"
        assert "Traceback" not in errors[n], f"seed {seed}: {errors[n]}"
    # What a killed or paused worker held unfinished was taken over by another.
    said = "\n".join(errors.values()).splitlines()
    for pid, names in orphaned.items():
        for name in names:
            assert any(
                f"account {name}: taken over from worker" in line and f":{pid}:" in line
                for line in said
            ), f"seed {seed}: {name} of worker {pid} was not taken over:\n" + "\n".join(said)
    # The paused worker found out when it woke, for every account it held unfinished.
    assert stalled in orphaned[paused.pid]
    for name in orphaned[paused.pid]:
        assert f"account {name}: lost the lease" in errors[2], f"seed {seed}: {errors[2]}"
    for n in range(count):
        assert await client.get(_lease_key(run_name, f"shop-{n}")) is None  # every one released
        saved: Any = await client.hget(_state_key(run_name, f"shop-{n}"), "state")
        assert saved is not None
        assert msgspec.json.decode(saved, type=DoneState).done
    # The bucket, read back: every account's manifest lists parts that hold exactly its
    # logs, each once, as the manifest counts them; nothing else is left.
    objects = await asyncio.to_thread(_bucket_objects, bucket)
    local = tmp_path / "bucket"  # a local copy of the bucket, read with DuckDB
    for key, data in objects.items():
        (local / key).parent.mkdir(parents=True, exist_ok=True)
        (local / key).write_bytes(data)
    listed_keys = set()
    for n in range(count):
        name = f"shop-{n}"
        folder = f"logs/account={name}/"
        manifest = msgspec.json.decode(objects[folder + "_manifest.json"])
        assert manifest["state"]["done"], f"seed {seed}: {name}"
        assert manifest["records"] == len(expected), f"seed {seed}: {name}"
        entries = {f"logs/{part['key']}": part for part in manifest["parts"]}
        assert len(entries) == len(manifest["parts"]), f"seed {seed}: {name} lists a part twice"
        assert sum(part["records"] for part in entries.values()) == len(expected)
        files = []
        for key, part in entries.items():
            assert key.startswith(f"{folder}date={part['date']}/"), f"seed {seed}: {key}"
            assert key.endswith(".parquet"), f"seed {seed}: {key}"
            assert len(objects[key]) == part["bytes"], f"seed {seed}: {key}"
            files.append(local / key)
        rows = _part_rows(files)
        assert sorted(row[0] for row in rows) == expected, f"seed {seed}: {name}"
        assert {row[1] for row in rows} == {name}, f"seed {seed}: {name}"
        for key, part in entries.items():
            in_part = [row for row in rows if row[3] == str(local / key)]
            assert len(in_part) == part["records"], f"seed {seed}: {key}"
            assert {row[2] for row in in_part} == {part["date"]}, f"seed {seed}: {key}"
        listed_keys |= set(entries) | {folder + "_manifest.json"}
    left_over = sorted(set(objects) - listed_keys)
    accounts_left = {key.split("/")[1].removeprefix("account=") for key in left_over}
    assert not left_over, (
        f"seed {seed}: parts outside every manifest: {left_over}; held when killed or "
        f"paused: {orphaned}; what the workers said of them:\n"
        + "\n".join(line for line in said if any(f"{a}:" in line for a in accounts_left))
    )
    # Read as a data team reads it, every part of the folder: each log of each account once.
    everything = _part_rows(sorted(local.glob("logs/account=*/date=*/*.parquet")))
    assert sorted((account, ident) for ident, account, _, _ in everything) == sorted(
        (f"shop-{n}", ident) for n in range(count) for ident in expected
    ), f"seed {seed}"
    # The same command again: nothing left to do, no request sent, nothing changed.
    sent = len(fake.requests)
    again = await run(*args, env=env)
    assert again.code == 0, again.err
    assert "exported 0 records of 0 accounts" in again.out, again.out
    assert f"{count} of {count} accounts" in again.out, again.out
    assert len(fake.requests) == sent
    assert await asyncio.to_thread(_bucket_objects, bucket) == objects
