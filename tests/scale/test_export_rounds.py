"""``logs export --redis``: what one round of a worker costs in Redis, and how a worker
learns which accounts are done (the run's record of finished accounts, the full sweep).

Workers are driven round by round in this process (``Worker._round``) on a real
``redis-server`` of the test's own, so that ``INFO commandstats`` counts only their
commands; the damaged-record cases run the console script.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio

from sendcloud_async._checkpoint import checkpoint_path
from sendcloud_async._cli.accounts import load_accounts
from sendcloud_async._cli.context import Context
from sendcloud_async._cli.export_finished import FinishedRecord
from sendcloud_async._cli.export_lease import DoneState, done_state
from sendcloud_async._cli.export_plan import SWEEP_LEASES, ClaimPlan
from sendcloud_async._cli.export_rounds import Worker
from sendcloud_async._cli.many_accounts import account_pools
from sendcloud_async._cli.parser import build_parser, command_of
from sendcloud_async._redis._conn import RedisConnection
from sendcloud_async._redis._watch import RedisWatchStore, ranking
from sendcloud_async._redis._watch._members import Membership
from sendcloud_async.testing import FakeSendcloud, Fault
from tests.functional.test_cli import base_env, run

from ._proxy import TcpProxy
from .conftest import RedisServer
from .test_export_workers import _assert_complete_once, _export_args, _state_key
from .test_redis_watch_cli import _accounts_file

#: What one round may cost in Redis commands (every command, those the scripts run
#: included): a constant, plus a few for each lease it renews and each claim it tries.
#: The constant: the heartbeat script (its call and 7 commands), ``SCRIPT EXISTS`` of the
#: pipeline, the record's ``XRANGE``; each renewal: its call and 2 commands; each claim
#: tried: its call and at most 8 commands.
ROUND_BASE = 12
PER_HELD = 3
PER_CLAIM = 9


async def _commands(client: redis.asyncio.Redis) -> int:
    """Every command Redis ran so far but ``INFO`` (the count's own)."""
    stats: dict[str, Any] = await client.info("commandstats")
    return sum(int(v["calls"]) for k, v in stats.items() if k != "cmdstat_info")


async def _round_cost(worker: Worker, client: redis.asyncio.Redis) -> tuple[int, bool | None]:
    """The Redis commands one round of ``worker`` costs, and what the round returned."""
    before = await _commands(client)
    finished = await worker._round()
    return await _commands(client) - before, finished


@contextlib.asynccontextmanager
async def _worker(
    url: str,
    accounts: Path,
    out_dir: Path,
    run_name: str,
    *extra: str,
    lease: float = 30.0,
    socket_timeout: float = 2.0,
) -> AsyncIterator[Worker]:
    """A worker of ``logs export --accounts ACCOUNTS --out-dir OUT_DIR --redis URL``, as the
    command makes it (``export_workers._work``), whose rounds the test runs."""
    args = build_parser(lazy=True).parse_args(
        list(_export_args(accounts, out_dir, url, "--run", run_name, "--lease", str(lease), *extra))
    )
    command = command_of(args)
    assert command is not None
    check = command.load().check
    assert check is not None
    check(args)
    ctx = Context(base_env(), io.StringIO(), io.StringIO(), False)
    await asyncio.to_thread(out_dir.mkdir, exist_ok=True)
    async with (
        RedisConnection.from_url(url, socket_timeout=socket_timeout) as connection,
        RedisWatchStore(connection, stream_prefix=f"export:{run_name}", lease=lease) as store,
        account_pools(args) as pools,
    ):
        worker = Worker(args, ctx, store, load_accounts(accounts, ctx.env), run_name, pools)
        try:
            yield worker
        finally:
            await worker._stop()


def _said(worker: Worker) -> list[str]:
    """The lines the worker wrote on stderr."""
    stderr = worker.ctx.stderr
    assert isinstance(stderr, io.StringIO)
    return stderr.getvalue().splitlines()


async def _template(fake: FakeSendcloud, tmp_path: Path) -> Path:
    """A complete export of an account with no logs (its file and checkpoint), made by the
    command: copied, it is the output of any account of the fake already done."""
    (tmp_path / "one").mkdir()
    accounts = tmp_path / "one" / "accounts.toml"
    accounts.write_text(
        f'[accounts.shop-0]\npublic_key = "pk-0"\nsecret_key = "sk-0"\n'
        f'base_url = "{fake.base_url}"\n',
        encoding="utf-8",
    )
    accounts.chmod(0o600)
    out_dir = tmp_path / "one" / "out"
    result = await run(
        "logs", "export", "--accounts", str(accounts), "--out-dir", str(out_dir), env=base_env()
    )
    assert result.code == 0, result.err
    return out_dir / "shop-0.jsonl"


def _complete(template: Path, out_dir: Path, names: list[str]) -> None:
    """Give each of ``names`` a complete output in ``out_dir`` (copies of ``template``)."""
    out_dir.mkdir(exist_ok=True)
    for name in names:
        shutil.copyfile(template, out_dir / f"{name}.jsonl")
        shutil.copyfile(checkpoint_path(template), checkpoint_path(out_dir / f"{name}.jsonl"))


async def _mark_done(store: RedisWatchStore, names: list[str], *, record: bool = True) -> None:
    """What a worker does once the outputs of ``names`` are complete: the fenced done mark,
    then the record's entries (``record=False``: killed between the two), then the release."""
    leases, others = await store.claim(names)
    assert not others, others
    state = done_state(0, store.worker_id)
    for start in range(0, len(leases), 200):
        await asyncio.gather(*(store.commit(x, state, []) for x in leases[start : start + 200]))
    if record:
        await FinishedRecord(store).add(names)
    await store.release(leases)


# -- what a round costs ------------------------------------------------------------------------


async def test_a_round_at_5000_accounts_costs_a_few_commands_whatever_is_left(
    fake: FakeSendcloud, own_redis: RedisServer, tmp_path: Path
) -> None:
    """5,000 accounts, a worker holding 4 (their exports wait for the API): a round costs
    the same few Redis commands with 4,996 accounts unfinished, in the round that takes
    4,990 newly done ones in (one ``XRANGE`` per 1,000 of them), and once they are done.
    Reading every unfinished account's state and lease, as a round did before, cost
    15,021, 5,041 and 51 commands in these three rounds (22, 26 and 22 now)."""
    count = 5000
    accounts = _accounts_file(tmp_path, fake, count)
    template = await _template(fake, tmp_path)
    fake.inject("GET", "/integrations/logs", *[Fault.delay(30)] * 8)  # the 4 exports wait
    out_dir = tmp_path / "out"
    url = own_redis.url
    client = redis.asyncio.Redis.from_url(url)
    other = RedisWatchStore.from_url(url, stream_prefix="export:count", worker_id="other")
    async with _worker(url, accounts, out_dir, "count", "--concurrency", "4") as worker, other:
        await other.heartbeat()  # two live workers
        assert await worker._round() is False  # it joins: a full sweep, and 4 claims
        held = sorted(worker.held)
        assert len(held) == 4
        await asyncio.sleep(0.5)  # their exports are under way, waiting for their first page
        costs = {}
        costs["4,996 unfinished"], finished = await _round_cost(worker, client)
        assert finished is False
        # Another worker marks 4,990 accounts done and holds the last 6.
        rest = [f"shop-{n}" for n in range(count) if f"shop-{n}" not in held]
        _complete(template, out_dir, rest[:4990])
        await _mark_done(other, rest[:4990])
        await other.claim(rest[4990:])
        costs["4,990 newly done"], finished = await _round_cost(worker, client)
        assert finished is False
        assert len(worker.done) == 4990
        costs["6 unfinished"], finished = await _round_cost(worker, client)
        assert finished is False
        assert sorted(worker.held) == held
    await client.aclose()
    bound = ROUND_BASE + PER_HELD * len(held)
    print(f"Redis commands a round at {count:,} accounts: {costs}")
    assert costs["4,996 unfinished"] <= bound, costs
    assert costs["4,990 newly done"] <= bound + 5, costs  # 5 pages of the record
    assert costs["6 unfinished"] <= bound, costs


async def test_a_round_tries_only_as_many_claims_as_it_has_free_slots(
    fake: FakeSendcloud, own_redis: RedisServer, tmp_path: Path
) -> None:
    """1,000 free accounts, --concurrency 3: the joining round (a full sweep: one read
    per account) tries 3 claims, its own accounts first, not 1,000; a claim another
    worker refused is not tried again while that lease runs, so the next round, with
    one slot, tries one other account."""
    count = 1000
    accounts = _accounts_file(tmp_path, fake, count)
    fake.inject("GET", "/integrations/logs", *[Fault.delay(30)] * 8)  # the exports wait
    url = own_redis.url
    client = redis.asyncio.Redis.from_url(url)
    other = RedisWatchStore.from_url(url, stream_prefix="export:claims", worker_id="other")
    async with (
        _worker(url, accounts, tmp_path / "out", "claims", "--concurrency", "3") as worker,
        other,
    ):
        await other.heartbeat()
        worker.plan.update([worker.store.worker_id, "other"])
        first = worker.plan.candidates(3, lambda name: False)
        assert all(worker.plan.membership.mine(name) for name in first)
        await other.claim(first[:1])  # one of them is the other worker's now
        cost, _ = await _round_cost(worker, client)
        assert sorted(worker.held) == sorted(first[1:])
        assert cost <= ROUND_BASE + count + PER_CLAIM * 3, cost
        await asyncio.sleep(0.3)
        cost, _ = await _round_cost(worker, client)
        assert len(worker.held) == 3
        assert first[0] not in worker.held
        assert cost <= ROUND_BASE + PER_HELD * 2 + PER_CLAIM, cost
    await client.aclose()


def test_the_claim_order_is_kept_until_the_live_workers_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The order is ranked once per set of live workers: own accounts first (in the file's
    order), then the others by this worker's place in their ranking; a worker joining
    ranks anew, moves only the accounts it now owns, and forgets the claims refused."""
    names = [f"shop-{n}" for n in range(300)]
    ranked: list[str] = []
    rank = Membership.rank

    def counted(self: Membership, account: str) -> int:
        ranked.append(account)
        return rank(self, account)

    monkeypatch.setattr(Membership, "rank", counted)
    plan = ClaimPlan("a", names, lease=1.0)
    plan.update(["a"])
    assert plan.candidates(300, lambda name: False) == names  # alone: all its own
    plan.update(["a", "b"])
    mine = [name for name in names if ranking(name, ["a", "b"])[0] == "a"]
    order = plan.candidates(300, lambda name: False)
    assert order == mine + [name for name in sorted(names) if name not in mine]
    assert len(ranked) == len(names) - len(mine)
    before = len(ranked)
    for _ in range(3):  # the same live workers, in any order: not ranked again
        plan.update(["b", "a"])
        assert plan.candidates(300, lambda name: False) == order
    assert len(ranked) == before
    plan.busy({mine[0]: 30.0})  # its claim was refused: another holds it for 30 s
    assert plan.candidates(1, lambda name: False) == [mine[1]]
    assert plan.candidates(2, lambda name: name == mine[1]) == [mine[2], mine[3]]
    plan.update(["a", "b", "c"])  # a worker joins
    assert len(ranked) > before
    now_mine = [name for name in names if ranking(name, ["a", "b", "c"])[0] == "a"]
    assert set(now_mine) <= set(mine)
    assert all(ranking(name, ["a", "b", "c"])[0] == "c" for name in set(mine) - set(now_mine))
    assert plan.candidates(len(now_mine), lambda name: False) == now_mine  # busy forgotten


async def test_a_lone_worker_drops_what_it_finished_from_its_claim_order(
    fake: FakeSendcloud, own_redis: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker alone learns of no account done elsewhere: the accounts it exported, and
    those that failed here, leave the order each round walks (not walked again at every
    claim of a long run), and every account is exported or failed once."""
    count = 12
    fake.seed(integrations=1, logs_per_integration=3)
    accounts = _accounts_file(tmp_path, fake, count)
    text = accounts.read_text(encoding="utf-8")
    accounts.write_text(text.replace('secret_key = "sk-0"', 'secret_key = "wrong"'), "utf-8")
    walked: list[int] = []
    async with _worker(
        own_redis.url, accounts, tmp_path / "out", "lone", "--concurrency", "2"
    ) as worker:
        candidates = ClaimPlan.candidates

        def counted(plan: ClaimPlan, room: int, skip: Callable[[str], bool]) -> list[str]:
            walked.append(len(plan._order))
            return candidates(plan, room, skip)

        monkeypatch.setattr(ClaimPlan, "candidates", counted)
        deadline = time.monotonic() + 30
        while await worker._round() is not True:
            assert time.monotonic() < deadline, (worker.done, worker.failed)
            await asyncio.sleep(0.02)
    assert sorted(worker.failed) == ["shop-0"]
    assert len(worker.done) == count - 1
    assert walked[0] == count
    assert len(worker.plan._order) < count // 2, walked


# -- what is learned, and when -----------------------------------------------------------------


async def test_a_done_mark_whose_record_entry_was_lost_is_found_by_the_next_sweep(
    fake: FakeSendcloud, own_redis: RedisServer, tmp_path: Path
) -> None:
    """An account marked done by a worker killed before its record entry, and an account
    another worker held (its claim refused for the 30 s its lease had left) and then
    released: the first is seen done, and the second claimed and exported, at the first
    full sweep, SWEEP_LEASES leases after the last one -- not before, not later."""
    lease = 0.5
    accounts = _accounts_file(tmp_path, fake, 4)
    template = await _template(fake, tmp_path)
    out_dir = tmp_path / "out"
    url = own_redis.url
    other = RedisWatchStore.from_url(url, stream_prefix="export:sweep", lease=30, worker_id="o")
    async with (
        _worker(url, accounts, out_dir, "sweep", "--concurrency", "4", lease=lease) as worker,
        other,
    ):
        await other.claim(["shop-2", "shop-3"])  # held elsewhere when the worker joins
        assert await worker._round() is False
        joined = worker.plan.swept_at
        assert joined is not None
        # shop-2 is done without its record entry; shop-3 is let go.
        _complete(template, out_dir, ["shop-2"])
        leases, _ = await other.claim(["shop-2"])
        await other.commit(leases[0], done_state(0, "o"), [])
        (held,), _ = await other.claim(["shop-3"])
        await other.release([held])
        seen: dict[str, float] = {}
        deadline = time.monotonic() + SWEEP_LEASES * lease + 3
        while time.monotonic() < deadline and len(seen) < 2:
            finished = await worker._round()
            now = time.monotonic()
            if "shop-2" in worker.done:
                seen.setdefault("shop-2", now)
            if "shop-3" in worker.held or "shop-3" in worker.done:
                seen.setdefault("shop-3", now)
            await asyncio.sleep(0.05)
        sweep = joined + SWEEP_LEASES * lease
        for name in ("shop-2", "shop-3"):
            assert name in seen, (name, worker.done, worker.held)
            assert sweep <= seen[name] <= sweep + 1.0, (name, seen[name] - joined)
        while finished is not True and time.monotonic() < deadline + 10:
            finished = await worker._round()
            await asyncio.sleep(0.05)
        assert finished is True
    for n in range(4):
        assert f"shop-{n}" in worker.done


async def test_redis_unreachable_mid_round_loses_nothing(
    fake: FakeSendcloud, own_redis: RedisServer, tmp_path: Path
) -> None:
    """The reply to the record's read lost on the way (the round ends, one warning line),
    then the path to Redis cut while done accounts wait for their record entries: the
    next rounds read the same entries again and add the waiting ones; every account ends
    done, and the record names each."""
    fake.seed(integrations=1, logs_per_integration=5, seed=3)
    accounts = _accounts_file(tmp_path, fake, 6)
    template = await _template(fake, tmp_path)
    out_dir = tmp_path / "out"
    names = [f"shop-{n}" for n in range(6)]
    other = RedisWatchStore.from_url(own_redis.url, stream_prefix="export:cut", worker_id="o")
    async with TcpProxy(own_redis.port) as proxy, other:
        url = f"redis://127.0.0.1:{proxy.port}/0"
        await other.claim(names[3:])  # held elsewhere: the worker exports the first 3
        async with _worker(
            url, accounts, out_dir, "cut", "--concurrency", "4", socket_timeout=0.5
        ) as worker:
            assert await worker._round() is False
            while worker.held:  # its 3 exports finish (each wakes the rounds as it ends)
                await asyncio.wait_for(worker.wake.wait(), 30)
                worker.wake.clear()
            # The other worker finishes its 3 meanwhile.
            _complete(template, out_dir, names[3:])
            await _mark_done(other, names[3:])
            proxy.cut()  # the done accounts' entries and releases wait
            assert await worker._round() is None
            assert worker.to_record
            proxy.heal()
            proxy.swallow(b"XRANGE")  # the record's entries reach nobody
            assert await worker._round() is None
            assert proxy.seen == 1
            assert not worker.to_record  # added before the read failed
            assert set(worker.done) == set(names[:3])
            assert await worker._round() is True  # read again from the same place
            assert set(worker.done) == set(names)
            said = _said(worker)
    warnings = [line for line in said if "Redis is unreachable" in line]
    assert len(warnings) == 1, said  # said once per outage
    assert any("Redis answers again" in line for line in said), said
    assert all("Traceback" not in line for line in said)
    async with RedisWatchStore.from_url(own_redis.url, stream_prefix="export:cut") as store:
        assert set(await FinishedRecord(store).read(set(names))) == set(names)
        states = await store.read_many(names)
    assert all(msgspec.json.decode(s or b"null", type=DoneState).done for s in states.values())


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("a string", "is not a Redis stream; every round reads every unfinished account"),
        ("an entry without an account", "holds 1 entries without an account name"),
    ],
)
async def test_a_damaged_record_is_one_warning_line_and_every_account_is_exported_once(
    fake: FakeSendcloud,
    redis_server: RedisServer,
    redis_client: redis.asyncio.Redis,
    namespace: str,
    tmp_path: Path,
    damage: str,
    message: str,
) -> None:
    """The run's record of finished accounts is another type of key, or holds an entry
    that names no account: one warning line, then every account is exported once and
    marked done, exit 0."""
    fake.seed(integrations=1, logs_per_integration=9, seed=11)
    expected = [log["id"] for log in fake.logs]
    accounts = _accounts_file(tmp_path, fake, 3)
    out_dir = tmp_path / "out"
    key = f"sendcloud-async:watch:{{export:{namespace}}}:finished"
    if damage == "a string":
        await redis_client.set(key, "not a stream")
    else:
        await redis_client.xadd(key, {"shop": "shop-0"})
    args = _export_args(accounts, out_dir, redis_server.url, "--run", namespace, "--page-size", "4")
    result = await run(*args, env=base_env())
    assert result.code == 0, result.err
    warnings = [line for line in result.err_lines if "WARNING" in line]
    assert len(warnings) == 1, result.err
    assert message in warnings[0], warnings[0]
    assert key in warnings[0]
    assert "3 of 3 accounts of run" in result.out, result.out
    _assert_complete_once(out_dir, 3, expected)
    for n in range(3):
        saved: Any = await redis_client.hget(_state_key(namespace, f"shop-{n}"), "state")
        assert msgspec.json.decode(saved, type=DoneState).done
