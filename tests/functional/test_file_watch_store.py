"""``FileWatchStore``: a ``LogWatcher``'s logs in a file per account, exactly once.

Over a real ``FakeSendcloud``: runs that continue each other, a child process
SIGKILLed at random moments, refusals (a second writer, a damaged or foreign
state, a cut file) that write and send nothing, the lifecycle, and files the
command line wrote continued by the library (and the reverse).

Run as ``python -m tests.functional.test_file_watch_store DIR BASE_URL NAME...``,
this module is the child the kill test SIGKILLs: a watch of the accounts
``NAME`` (keys ``pk-NAME``, ``sk-NAME``) into ``DIR``, until it is killed.
"""

from __future__ import annotations

import asyncio
import csv
import fcntl
import io
import json
import os
import random
import signal
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import msgspec
import pytest
from yarl import URL

import sendcloud_async as sc
from sendcloud_async._sinks import _file as file_sink_module
from sendcloud_async._watch_files import WatchFile, state_path
from sendcloud_async.testing import FakeSendcloud
from tests.contract.test_sink_contract import landed_then_failed
from tests.functional.test_cli import accounts_file, fake_env, run
from tests.functional.test_watch_cli import feed, ids_in

ROOT = Path(__file__).resolve().parents[2]


def accounts_of(fake: FakeSendcloud, *names: str) -> dict[str, sc.BasicAuth]:
    """Accounts the fake accepts, with the keys the child uses (``pk-NAME``, ``sk-NAME``)."""
    return {name: fake.add_account(f"pk-{name}", f"sk-{name}") for name in names}


async def watch_once(
    fake: FakeSendcloud,
    store: sc.FileWatchStore,
    accounts: dict[str, sc.BasicAuth],
    **options: object,
) -> list[sc.WatchEvent]:
    """One ``once=True`` run of a ``LogWatcher`` into ``store``; its events."""
    seen: list[sc.WatchEvent] = []
    async with sc.AccountPool(base_url=fake.base_url) as pool:
        watcher = sc.LogWatcher(
            pool,
            accounts,
            store=store,
            start="all",
            page_size=7,
            **options,  # type: ignore[arg-type]
        )
        await watcher.run(seen.append, once=True)
    return seen


def saved(out: Path) -> WatchFile:
    """The watch state beside ``out``."""
    return msgspec.json.decode(state_path(out).read_bytes(), type=WatchFile)


def csv_ids(path: Path) -> list[int]:
    """The ``id`` of every row of a CSV file after its header."""
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    assert rows[0][0] == "id"
    return [int(row[0]) for row in rows[1:]]


def snapshot(*paths: Path) -> dict[Path, bytes | None]:
    """The bytes of each file (``None``: missing), to show a refusal changed nothing."""
    return {p: p.read_bytes() if p.is_file() else None for p in paths}


# -- runs that continue each other -----------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_two_accounts_get_every_log_once_and_a_second_run_only_the_new(
    fake: FakeSendcloud, tmp_path: Path, fmt: str
) -> None:
    """Two accounts into DIR/NAME.FORMAT: every log once, offsets at the end; then only new."""
    fake.seed(integrations=2, logs_per_integration=15, seed=7)
    accounts = accounts_of(fake, "shop-a", "shop.b")
    directory = tmp_path / "not" / "yet"
    async with sc.FileWatchStore(directory, format=fmt, source=fake.base_url) as store:
        await watch_once(fake, store, accounts)  # opened by the watcher's load
        assert store.records == dict.fromkeys(accounts, 30)
    ids = ids_in if fmt == "jsonl" else csv_ids
    every = [r["id"] for r in fake.logs]
    for name in accounts:
        out = directory / f"{name}.{fmt}"
        assert ids(out) == every
        state = saved(out)
        assert (state.offset, state.records, state.format) == (out.stat().st_size, 30, fmt)
        assert state.source == fake.base_url
    fake.add_log(1)
    fake.add_log(2)
    async with sc.FileWatchStore(directory, format=fmt, source=fake.base_url) as again:
        for name in accounts:
            again.open(name)
        assert again.records == dict.fromkeys(accounts, 30)
        events = await watch_once(fake, again, accounts)
        assert again.records == dict.fromkeys(accounts, 32)
    new = [e for e in events if isinstance(e, sc.NewLogs)]
    assert Counter(e.account for e in new for _ in e.items) == dict.fromkeys(accounts, 2)
    every = [r["id"] for r in fake.logs]
    for name in accounts:
        out = directory / f"{name}.{fmt}"
        assert ids(out) == every
        assert saved(out).offset == out.stat().st_size


async def test_an_account_of_one_integration_in_a_file_of_its_own(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """``paths`` gives an account any file; ``open(integration_id=)`` is that account's watch."""
    fake.seed(integrations=2, logs_per_integration=6)
    out = tmp_path / "only two.jsonl"
    store = sc.FileWatchStore(source=fake.base_url, paths={"shop/with a slash": str(out)})
    try:
        store.open("shop/with a slash", integration_id=2)
        accounts = {"shop/with a slash": fake.basic_auth}
        await watch_once(fake, store, accounts, integrations={"shop/with a slash": 2})
        store.open("shop/with a slash", integration_id=2)  # again: the same file, checked
    finally:
        await store.aclose()
    assert ids_in(out) == [r["id"] for r in fake.logs if r["integration_id"] == 2]
    assert saved(out).state.logs.integration_id == 2


# -- SIGKILL at random moments -----------------------------------------------------------------


async def _child(directory: str, base_url: str, names: list[str]) -> None:
    accounts = {name: sc.BasicAuth(f"pk-{name}", f"sk-{name}") for name in names}
    async with sc.FileWatchStore(directory, source=base_url) as store:
        for name in names:
            store.open(name)
        print("ready", flush=True)
        async with sc.AccountPool(base_url=base_url) as pool:
            watcher = sc.LogWatcher(
                pool, accounts, store=store, start="all", interval=0.02, page_size=7
            )
            await watcher.run()


async def test_sigkills_at_random_moments_leave_every_log_once_in_each_file(
    tmp_path: Path,
) -> None:
    """A child watching two accounts, SIGKILLed 12 times (some in its first 100 ms) while
    logs keep coming: after a last run, each file holds every log exactly once."""
    rng = random.Random(2026)
    names = ["shop-a", "shop-b"]
    async with FakeSendcloud(validate_spec=True, unique_log_times=False) as fake:
        fake.seed(integrations=2, logs_per_integration=40)
        accounts = accounts_of(fake, *names)
        feeder = asyncio.create_task(feed(fake, rng))
        outs = [tmp_path / f"{name}.jsonl" for name in names]
        hit_running = 0
        try:
            for kill in range(12):
                child = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "tests.functional.test_file_watch_store",
                    str(tmp_path), fake.base_url, *names,
                    cwd=ROOT, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
                )  # fmt: skip
                assert child.stdout is not None
                if kill % 3 == 0:  # in the interpreter's start
                    await asyncio.sleep(rng.uniform(0.0, 0.1))
                else:
                    line = await asyncio.wait_for(child.stdout.readline(), 60)
                    assert line == b"ready\n"
                    if kill % 3 == 1:  # in the first 100 ms of the watch
                        await asyncio.sleep(rng.uniform(0.0, 0.1))
                    else:  # once it has committed, somewhere in the stream of commits
                        for _ in range(600):
                            if all(state_path(out).exists() for out in outs):
                                break
                            await asyncio.sleep(0.05)
                        await asyncio.sleep(rng.uniform(0.0, 0.6))
                        hit_running += child.returncode is None
                child.send_signal(signal.SIGKILL)
                assert await child.wait() == -signal.SIGKILL
        finally:
            feeder.cancel()
        assert hit_running >= 3
        assert len(fake.logs) > 80 + 50  # logs kept coming while it was being killed
        async with sc.FileWatchStore(tmp_path, source=fake.base_url) as store:
            await watch_once(fake, store, accounts)
            assert store.records == dict.fromkeys(names, len(fake.logs))
        assert fake.spec_violations == []
    every = Counter(r["id"] for r in fake.logs)
    for out in outs:
        written = ids_in(out)
        assert Counter(written) == every
        assert (saved(out).offset, saved(out).records) == (out.stat().st_size, len(written))


# -- refusals ----------------------------------------------------------------------------------


async def test_a_second_store_on_the_same_file_is_refused_and_writes_nothing(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Another store (here, or in another process) holds the file: refused, nothing written."""
    fake.seed(integrations=1, logs_per_integration=5)
    accounts = accounts_of(fake, "shop")
    out = tmp_path / "shop.jsonl"
    async with sc.FileWatchStore(tmp_path, source=fake.base_url) as first:
        await watch_once(fake, first, accounts)
        before = snapshot(out, state_path(out))
        second = sc.FileWatchStore(tmp_path, source=fake.base_url)
        with pytest.raises(sc.InvalidInputError) as refused:
            second.open("shop")
        assert str(refused.value) == f"another watch is writing {out} (it is locked)"
        fake.clear_requests()
        events = await watch_once(fake, second, accounts)  # opened lazily: the same refusal
        (failed,) = [e for e in events if isinstance(e, sc.AccountFailed)]
        assert str(failed.error) == str(refused.value)
        assert fake.requests == []
        assert snapshot(out, state_path(out)) == before
        await second.aclose()
    other = tmp_path / "held.jsonl"
    with other.open("wb") as held:  # another process's lock looks the same
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        store = sc.FileWatchStore(source=fake.base_url, paths={"shop": other})
        with pytest.raises(sc.InvalidInputError, match=r"another watch is writing .* locked"):
            store.open("shop")
    assert other.read_bytes() == b""
    assert not state_path(other).exists()
    store.open("shop")  # the lock is gone: the refusal kept nothing open
    store.close()


async def test_an_open_account_opened_again_for_another_integration_is_refused(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """``open`` of an account already open checks the integration again: another one is
    refused, and the file and its state stay as they were."""
    fake.seed(integrations=2, logs_per_integration=3)
    out = tmp_path / "shop.jsonl"
    async with sc.FileWatchStore(tmp_path, source=fake.base_url) as store:
        await watch_once(fake, store, {"shop": fake.basic_auth})
        before = snapshot(out, state_path(out))
        store.open("shop")  # already open: nothing happens
        with pytest.raises(sc.InvalidInputError) as refused:
            store.open("shop", integration_id=1)
        assert str(refused.value) == (
            f"{state_path(out)} watches another integration; pick another output"
        )
        assert snapshot(out, state_path(out)) == before
        assert store.records == {"shop": 6}


def _damaged(out: Path) -> str:
    state_path(out).write_bytes(b'{"version": 1, "source"')
    return f"the watch state {state_path(out)} is damaged ("


def _negative_records(out: Path) -> str:
    raw = state_path(out).read_bytes()
    state_path(out).write_bytes(raw.replace(b'"records":6', b'"records":-1'))
    return f"the watch state {state_path(out)} is damaged"


def _other_version(out: Path) -> str:
    raw = state_path(out).read_bytes()
    state_path(out).write_bytes(raw.replace(b'{"version":1,', b'{"version":2,', 1))
    return f"the watch state {state_path(out)} is damaged"


def _inner_version(out: Path) -> str:
    raw = state_path(out).read_bytes()
    state_path(out).write_bytes(raw.replace(b'"state":{"version":1,', b'"state":{"version":7,'))
    return "has version 7; this sendcloud-async reads version 1"


def _log_watch_version(out: Path) -> str:
    saved = msgspec.json.decode(state_path(out).read_bytes())
    saved["state"]["logs"]["version"] = 3  # a newer release's WatchState
    state_path(out).write_bytes(msgspec.json.encode(saved))
    return (
        f"the watch state {state_path(out)} holds an unreadable log watch (state is not a "
        "valid WatchState: version 3; this sendcloud-async reads versions 1 and 2); "
        "move it away to start over"
    )


def _unreadable(out: Path) -> str:
    raw = state_path(out).read_bytes()
    state_path(out).unlink()
    state_path(out).mkdir()  # a state the store cannot read
    (state_path(out) / "kept").write_bytes(raw)
    return f"cannot read {state_path(out)}: Is a directory"


def _cut(out: Path) -> str:
    size = out.stat().st_size
    out.write_bytes(out.read_bytes()[:10])
    return f"{out} has 10 bytes but its watch state says {size:,} were written; it was changed"


@pytest.mark.parametrize(
    ("change", "options", "open_with", "message"),
    [
        (_damaged, {}, {}, None),
        (_negative_records, {}, {}, None),
        (_other_version, {}, {}, None),
        (_inner_version, {}, {}, None),
        (_log_watch_version, {}, {}, None),
        (_unreadable, {}, {}, None),
        (_cut, {}, {}, None),
        (None, {"source": "https://panel.sendcloud.sc/api/v3"}, {}, "is the state of a watch of"),
        (None, {"format": "csv"}, {}, "holds jsonl, not csv; pass format='jsonl' or pick another"),
        (None, {}, {"integration_id": 1}, "watches another integration; pick another output"),
    ],
    ids=[
        "damaged",
        "negative-records",
        "other-version",
        "inner-version",
        "log-watch-version",
        "unreadable",
        "cut",
        "source",
        "format",
        "integration",
    ],
)
async def test_a_state_that_does_not_fit_is_refused_before_any_request(
    fake: FakeSendcloud,
    tmp_path: Path,
    change: object,
    options: dict[str, str],
    open_with: dict[str, int],
    message: str | None,
) -> None:
    """Each problem: one line naming the file; the file and the state stay as they were."""
    fake.seed(integrations=2, logs_per_integration=3)
    out = tmp_path / "shop.jsonl"
    accounts = {"shop": fake.basic_auth}
    async with sc.FileWatchStore(tmp_path, source=fake.base_url) as store:
        await watch_once(fake, store, accounts)
    if callable(change):
        message = change(out)
    assert message is not None
    before = snapshot(out, state_path(out))
    store = sc.FileWatchStore(
        source=options.get("source", fake.base_url),
        format=options.get("format", "jsonl"),
        paths={"shop": out},  # a directory's CSV file would be shop.csv
    )
    fake.clear_requests()
    with pytest.raises(sc.InvalidInputError) as refused:
        store.open("shop", **open_with)
    text = str(refused.value)
    assert message in text
    assert "\n" not in text
    assert str(out) in text or str(state_path(out)) in text
    assert snapshot(out, state_path(out)) == before
    assert fake.requests == []
    assert store.records == {}
    store.close()


async def test_bad_arguments_are_refused_when_given(tmp_path: Path) -> None:
    """Bad arguments: ``InvalidInputError`` at once, nothing created."""
    cases: list[tuple[dict[str, object], str]] = [
        ({}, "give a directory for the files, or paths for the accounts"),
        ({"directory": tmp_path, "format": "parquet"}, "format must be one of jsonl, csv"),
        ({"directory": tmp_path, "source": ""}, "source must not be empty"),
        ({"directory": tmp_path, "source": "https://u:pw@example.com"}, "source must not"),
        ({"directory": 3}, "directory must be a path"),
        ({"paths": ["a"]}, "paths must be a mapping"),
        ({"paths": {"a": 3}}, "paths['a'] must be a path (str or os.PathLike), not int"),
        ({"paths": {"a": tmp_path / "x", "b": tmp_path / "." / "x"}}, "to both 'a' and 'b'"),
    ]
    for arguments, message in cases:
        with pytest.raises(sc.InvalidInputError) as refused:
            sc.FileWatchStore(**arguments)  # type: ignore[arg-type]
        assert message in str(refused.value)
        assert "pw" not in str(refused.value)
    store = sc.FileWatchStore(tmp_path / "dir", paths={"a": tmp_path / "a.jsonl"})
    with pytest.raises(sc.InvalidInputError, match=r"'shop/a b' is not allowed.*give its file"):
        store.open("shop/a b")
    lone = sc.FileWatchStore(paths={"a": tmp_path / "a.jsonl"})
    with pytest.raises(sc.InvalidInputError, match="account 'b' has no file"):
        await lone.load("b")
    with pytest.raises(sc.InvalidInputError, match="integration_id"):
        lone.open("a", integration_id=0)
    assert os.listdir(tmp_path) == []


async def test_a_file_that_cannot_be_written_is_refused(tmp_path: Path) -> None:
    """A directory where the file should be, or no directory to create it in: one line."""
    (tmp_path / "shop.jsonl").mkdir()
    store = sc.FileWatchStore(tmp_path, paths={"gone": tmp_path / "no" / "such.jsonl"})
    with pytest.raises(sc.InvalidInputError, match=r"shop\.jsonl: it is a directory"):
        store.open("shop")
    with pytest.raises(sc.InvalidInputError, match=r"cannot write .*such\.jsonl: No such file"):
        store.open("gone")
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"")
    nested = sc.FileWatchStore(blocker / "sub")
    with pytest.raises(sc.InvalidInputError, match="cannot create the directory"):
        nested.open("shop")
    store.close()
    nested.close()


async def test_a_file_named_as_a_watch_state_is_refused_when_given(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A file named as a watch state (``X.watch.json``, another account's state included, or
    the temporary ``X.watch.json.tmp`` it is written through): one line, nothing created."""
    names = [
        "z.jsonl.watch.json",  # the state of the directory account z
        "z.jsonl.watch.json.tmp",
        "logs.WATCH.json",
        "logs.watch.json.TMP",
    ]
    for name in names:
        given = tmp_path / name
        with pytest.raises(sc.InvalidInputError) as refused:
            sc.FileWatchStore(tmp_path, paths={"y": given})
        assert str(refused.value) == (
            f"{given} names a watch state (each file's state is kept beside it as "
            "FILE.watch.json, written through FILE.watch.json.tmp); pick another file"
        )
    assert os.listdir(tmp_path) == []
    fake.seed(integrations=1, logs_per_integration=2)
    out = tmp_path / "x.jsonl.watch.json"
    result = await run("logs", "watch", "--out", str(out), "--once", env=fake_env(fake))
    assert result.code == 2
    assert f"{out} names a watch state" in result.err
    assert fake.requests == []
    assert os.listdir(tmp_path) == []
    store = sc.FileWatchStore(tmp_path, source=fake.base_url)  # a name ending in .watch
    store.open("a.watch")
    assert os.listdir(tmp_path) == ["a.watch.jsonl"]
    store.close()


async def test_a_source_with_credentials_is_refused_without_repeating_them(
    tmp_path: Path,
) -> None:
    """``source`` with user info, however it is spelt: refused in one line that never repeats
    it; nothing is written. Spaces around a source are dropped."""
    secret = "s3cret-Value"
    sources: list[str | URL] = [
        f"https://user:{secret}@panel.sendcloud.sc/api/v3",
        URL(f"https://user:{secret}@h.example/x"),
        f"HTTPS://user:{secret}@h.example",
        f" https://user:{secret}@h.example",
        f"\thttp://user:{secret}@10.0.0.1/\n",
        f"https:/user:{secret}@h.example",
        f"https:user:{secret}@h.example",
        f"ftp://user:{secret}@h.example",
        f"https://{secret}@h.example",  # a token as the user
        f"user:{secret}@h.example",
        f"//user:{secret}@h.example/api",
        f"https:\\\\user:{secret}@h.example",
        f"ftp://us\\er:{secret}@h.example",
    ]
    for source in sources:
        with pytest.raises(sc.InvalidInputError) as refused:
            sc.FileWatchStore(tmp_path, source=source)
        assert str(refused.value) == (
            "source must not contain credentials: it names where the logs come from "
            "(as the pool's base URL), without them"
        )
        assert secret not in repr(refused.value)
    assert os.listdir(tmp_path) == []
    store = sc.FileWatchStore(tmp_path, source="  https://h.example/api/v3/ \n")
    assert store.source == "https://h.example/api/v3"
    assert repr(store).endswith("source='https://h.example/api/v3' open=[]>")
    assert sc.FileWatchStore(tmp_path, source=" nightly mirror ").source == "nightly mirror"
    with pytest.raises(sc.InvalidInputError, match=r"^source must not be empty$"):
        sc.FileWatchStore(tmp_path, source=" \t")
    with pytest.raises(sc.InvalidInputError, match=r"^source must be an absolute http"):
        sc.FileWatchStore(tmp_path, source="https:/h.example")  # a URL spelt wrong
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["ops@example.com", "mirror of api@eu", "shop@eu/prod"])
def test_a_source_named_with_an_at_sign_is_a_name(tmp_path: Path, name: str) -> None:
    """An ``@`` that is no URL's user info (no scheme, no ``//``, no ``:`` before it)."""
    assert sc.FileWatchStore(tmp_path, source=name).source == name


async def test_two_accounts_given_one_file_are_told_so(fake: FakeSendcloud, tmp_path: Path) -> None:
    """The directory's file given in ``paths``, another spelling, a symlink, a hard link:
    each second account is refused naming both accounts; nothing of it is written or sent."""
    fake.seed(integrations=1, logs_per_integration=3)
    out = tmp_path / "a.jsonl"
    (tmp_path / "link.jsonl").symlink_to(out)  # dangling until a's file is created
    paths = {"b": out, "d": tmp_path / "link.jsonl", "e": tmp_path / "hard.jsonl"}
    async with sc.FileWatchStore(tmp_path, source=fake.base_url, paths=paths) as store:
        store.open("a")
        os.link(out, tmp_path / "hard.jsonl")
        for account in paths:
            with pytest.raises(sc.InvalidInputError) as refused:
                store.open(account)
            assert str(refused.value) == (
                f"accounts 'a' and {account!r} are given the same file {paths[account]}"
            )
        accounts = dict.fromkeys(["a", "b"], fake.basic_auth)
        events = await watch_once(fake, store, accounts)
        (failed,) = [e for e in events if isinstance(e, sc.AccountFailed)]
        assert (failed.account, str(failed.error)) == (
            "b",
            f"accounts 'a' and 'b' are given the same file {out}",
        )
        assert store.records == {"a": 3}
    assert ids_in(out) == [r["id"] for r in fake.logs]
    assert sorted(os.listdir(tmp_path)) == [
        "a.jsonl",
        "a.jsonl.watch.json",
        "hard.jsonl",
        "link.jsonl",
    ]
    spelt = tmp_path / "no" / ".." / "a.jsonl"  # no such directory: the same absolute path
    async with sc.FileWatchStore(tmp_path, source=fake.base_url, paths={"c": spelt}) as store:
        store.open("a")
        with pytest.raises(sc.InvalidInputError) as refused:
            store.open("c")
        assert str(refused.value) == f"accounts 'a' and 'c' are given the same file {spelt}"
    other = tmp_path / "other"
    async with sc.FileWatchStore(
        other, source=fake.base_url, paths={"b": other / "a.jsonl"}
    ) as store:
        store.open("b")  # the other order: the account of paths first
        with pytest.raises(sc.InvalidInputError) as refused:
            store.open("a")
        assert (
            str(refused.value)
            == f"accounts 'b' and 'a' are given the same file {other / 'a.jsonl'}"
        )
    assert os.listdir(other) == ["a.jsonl"]  # b's (opened: no state saved yet)


# -- a write that fails midway -----------------------------------------------------------------

#: The child of the failed-write test (argv: the directory, the source): a save of account
#: ``shop`` over ``RLIMIT_FSIZE`` (part of it written, then EFBIG), then a smaller one. It
#: prints, as JSON, the error and, right after it, the file's size, its state and records.
SHORT_WRITE_CHILD = """
import asyncio, json, resource, signal, sys
import sendcloud_async as sc

def log(n):
    return sc.IntegrationLog(base_url="https://shop.example", id=n, exception="x" * 200)

async def main(directory, source):
    async with sc.FileWatchStore(directory, source=source) as store:
        state = await store.load("shop")
        out = store.path("shop")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (out.stat().st_size + 1500, hard))
        try:
            await store.save("shop", state, [log(n) for n in range(1000, 1040)])
            error = None
        except OSError as exc:
            error = str(exc)
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        report = {
            "error": error,
            "size": out.stat().st_size,
            "state": store.state_path("shop").read_text(),
            "records": store.records,
        }
        print(json.dumps(report), flush=True)
        await store.save("shop", state, [log(2000)])

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def test_a_save_that_fails_midway_leaves_nothing_after_the_committed_logs(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A short write (over ``RLIMIT_FSIZE``, in a child): the error names the file, the file
    is cut back to the committed logs at once, the state is unchanged, and a later save
    appends right after them; read after the child closed, the file holds each log once."""
    fake.seed(integrations=1, logs_per_integration=12)
    out = tmp_path / "shop.jsonl"
    async with sc.FileWatchStore(tmp_path, source=fake.base_url) as store:
        await watch_once(fake, store, {"shop": fake.basic_auth})
    committed, state = out.stat().st_size, state_path(out).read_text()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SHORT_WRITE_CHILD, str(tmp_path), fake.base_url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(child.communicate(), 60)
    assert child.returncode == 0, stderr.decode()
    assert json.loads(stdout) == {
        "error": f"cannot write {out} (appending the new logs): File too large",
        "size": committed,
        "state": state,
        "records": {"shop": 12},
    }
    assert ids_in(out) == [r["id"] for r in fake.logs] + [2000]
    assert (saved(out).offset, saved(out).records) == (out.stat().st_size, 13)
    async with sc.FileWatchStore(tmp_path, source=fake.base_url) as again:
        again.open("shop")
        assert again.records == {"shop": 13}
    assert out.stat().st_size == saved(out).offset


# -- lifecycle ---------------------------------------------------------------------------------


async def test_close_twice_is_fine_and_every_use_after_it_raises(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """close() and aclose() are idempotent; they unlock; load, save, open then raise."""
    fake.seed(integrations=1, logs_per_integration=2)
    store = sc.FileWatchStore(tmp_path, source=fake.base_url)
    await watch_once(fake, store, {"shop": fake.basic_auth})
    state = await store.load("shop")
    assert state is not None
    assert "closed" not in repr(store)
    store.close()
    store.close()
    await store.aclose()
    assert store.closed
    assert "closed" in repr(store)
    assert store.records == {"shop": 2}  # what it held is still known
    before = snapshot(tmp_path / "shop.jsonl", tmp_path / "shop.jsonl.watch.json")
    with pytest.raises(sc.ClientClosedError, match="file watch store is closed"):
        await store.load("shop")
    with pytest.raises(sc.ClientClosedError):
        await store.save("shop", state, [])
    with pytest.raises(sc.ClientClosedError):
        store.open("shop")
    with pytest.raises(sc.ClientClosedError):
        async with store:
            pass
    assert snapshot(tmp_path / "shop.jsonl", tmp_path / "shop.jsonl.watch.json") == before
    async with sc.FileWatchStore(tmp_path, source=fake.base_url) as again:
        again.open("shop")  # the lock went with close()
        assert again.records == {"shop": 2}


# -- the command line's files ----------------------------------------------------------------


async def test_the_commands_files_are_continued_by_the_store_and_the_reverse(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """``logs watch --out-dir`` writes, the store continues, the command continues again:
    every log once, in one file per account, the state in the command's shape."""
    fake.seed(integrations=2, logs_per_integration=5)
    accounts = accounts_of(fake, "shop-a", "shop-b")
    toml = "".join(
        f'[accounts.{name}]\npublic_key = "pk-{name}"\nsecret_key = "sk-{name}"\n'
        f'base_url = "{fake.base_url}"\n\n'
        for name in accounts
    )
    listed = accounts_file(tmp_path / "accounts.toml", toml)
    out_dir = tmp_path / "out"
    command = ("logs", "watch", "--accounts", str(listed), "--out-dir", str(out_dir), "--once")
    first = await run(*command, "--start", "all", env=fake_env(fake))
    assert first.code == 0, first.err
    fake.add_log(1)
    async with sc.FileWatchStore(out_dir, source=fake.base_url) as store:
        await watch_once(fake, store, accounts)
        assert store.records == dict.fromkeys(accounts, 11)
    fake.add_log(2)
    last = await run(*command, env=fake_env(fake))
    assert last.code == 0, last.err
    assert "appended 2 new logs (24 in all)" in last.out + last.err
    for name in accounts:
        out = out_dir / f"{name}.jsonl"
        assert ids_in(out) == [r["id"] for r in fake.logs]
        assert saved(out).offset == out.stat().st_size


async def test_the_command_says_the_stores_refusals_in_its_own_words(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A CSV watch over a JSON Lines file: exit 2, the command's advice, nothing sent."""
    fake.seed(integrations=1, logs_per_integration=2)
    out = tmp_path / "logs.txt"  # a name that implies no format
    async with sc.FileWatchStore(source=fake.base_url, paths={"x": out}) as store:
        await watch_once(fake, store, {"x": fake.basic_auth})
    fake.clear_requests()
    result = await run(
        "logs", "watch", "--out", str(out), "--format", "csv", "--once", env=fake_env(fake)
    )
    assert result.code == 2
    assert f"{out} holds jsonl, not csv; drop --format or pick another output" in result.err
    assert fake.requests == []


if __name__ == "__main__":
    os.environ.pop("PYTHONASYNCIODEBUG", None)
    asyncio.run(_child(sys.argv[1], sys.argv[2], sys.argv[3:]))


# -- a save that raises after it committed -----------------------------------------------------


async def test_a_run_cancelled_while_a_batch_is_saved_and_run_again_appends_nothing_twice(
    tmp_path: Path,
) -> None:
    """The save finishes in its worker thread although the run was cancelled meanwhile:
    the same watcher, run again, continues from what the store committed."""
    async with FakeSendcloud() as fake:
        fake.seed(integrations=1, logs_per_integration=10)
        async with (
            sc.AccountPool(base_url=fake.base_url) as pool,
            sc.FileWatchStore(tmp_path, source=fake.base_url) as store,
        ):
            watcher = sc.LogWatcher(
                pool, {"shop": fake.basic_auth}, store=store, start="all", page_size=4
            )
            task: asyncio.Task[None] | None = None

            def cancel_at_the_first_batch(event: sc.WatchEvent) -> None:
                if isinstance(event, sc.NewLogs) and store.records.get("shop", 0) == 0:
                    assert task is not None
                    asyncio.get_running_loop().call_soon(task.cancel)  # during save()

            task = asyncio.create_task(watcher.run(cancel_at_the_first_batch, once=True))
            with pytest.raises(asyncio.CancelledError):
                await task
            assert store.records == {"shop": 4}  # committed although cancelled
            await watcher.run(once=True)
            assert store.records == {"shop": 10}
    assert ids_in(tmp_path / "shop.jsonl") == [r["id"] for r in fake.logs]


class _CommitsThenFails(sc.MemoryWatchStore):
    """A store whose first save of logs commits and then raises (a reply lost after the write)."""

    def __init__(self) -> None:
        super().__init__()
        self.logs: list[int | None] = []
        self.failed = False

    async def save(
        self, account: str, state: sc.AccountState, logs: Sequence[sc.IntegrationLog]
    ) -> None:
        await super().save(account, state, logs)
        self.logs += [log.id for log in logs]
        if logs and not self.failed:
            self.failed = True
            raise sc.StateUnavailableError("the reply was lost")


async def test_a_poll_whose_save_raised_loads_the_state_again() -> None:
    async with FakeSendcloud() as fake:
        fake.seed(integrations=1, logs_per_integration=10)
        store = _CommitsThenFails()
        async with sc.AccountPool(base_url=fake.base_url) as pool:
            watcher = sc.LogWatcher(
                pool, {"shop": fake.basic_auth}, store=store, start="all", page_size=4
            )
            with pytest.raises(sc.StateUnavailableError):
                await watcher.poll("shop")
            await watcher.poll("shop")
    assert store.logs == [r["id"] for r in fake.logs]  # each log saved once, in order


async def test_a_save_that_landed_although_it_raised_is_where_the_next_poll_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state's rename landed, then the save raised (the directory's ``fsync``,
    injected): the store loads the state on disk, so the next poll asks only for what
    came after it and every log is in the file once."""
    async with FakeSendcloud() as fake:
        fake.seed(integrations=1, logs_per_integration=4)
        async with (
            sc.AccountPool(base_url=fake.base_url) as pool,
            sc.FileWatchStore(tmp_path, source=fake.base_url) as store,
        ):
            watcher = sc.LogWatcher(
                pool, {"shop": fake.basic_auth}, store=store, start="all", page_size=10
            )
            await watcher.poll("shop")
            assert store.records == {"shop": 4}
            for _ in range(3):
                fake.add_log(1)
            monkeypatch.setattr(file_sink_module, "atomic_write", landed_then_failed)
            with pytest.raises(OSError, match="Input/output error"):
                await watcher.poll("shop")
            monkeypatch.undo()
            landed = await store.load("shop")
            assert landed is not None
            assert store.records == {"shop": 7}  # the state that landed, not the one before
            fake.add_log(1)
            seen = len(fake.requests)
            await watcher.poll("shop")
            asked = [r.query for r in fake.requests[seen:] if r.path.endswith("/logs")]
            assert asked
            assert all("cursor" in query for query in asked), asked
            assert store.records == {"shop": 8}
    assert ids_in(tmp_path / "shop.jsonl") == [r["id"] for r in fake.logs]


async def test_a_state_changed_after_a_failed_save_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a save that raised, the store reads the state on disk again: one that points
    past what the store wrote is refused in one line naming it, and nothing is sent."""
    async with FakeSendcloud() as fake:
        fake.seed(integrations=1, logs_per_integration=4)
        async with (
            sc.AccountPool(base_url=fake.base_url) as pool,
            sc.FileWatchStore(tmp_path, source=fake.base_url) as store,
        ):
            watcher = sc.LogWatcher(
                pool, {"shop": fake.basic_auth}, store=store, start="all", page_size=10
            )
            await watcher.poll("shop")
            fake.add_log(1)
            monkeypatch.setattr(file_sink_module, "atomic_write", landed_then_failed)
            with pytest.raises(OSError, match="Input/output error"):
                await watcher.poll("shop")
            monkeypatch.undo()
            out = tmp_path / "shop.jsonl"
            where = state_path(out)
            state = json.loads(where.read_text())
            state["offset"] = out.stat().st_size + 100  # changed behind the store's back
            where.write_text(json.dumps(state))
            seen = len(fake.requests)
            with pytest.raises(sc.InvalidInputError) as refused:
                await watcher.poll("shop")
            assert str(refused.value) == (
                f"the watch state {where} is damaged ({where} was changed behind the "
                "watch's back); move it away to start over"
            )
            assert len(fake.requests) == seen
