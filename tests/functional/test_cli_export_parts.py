"""``logs export`` into parts (a directory, a bucket), compressed files, and ``--since/--until``.

The installed script as a subprocess, against FakeSendcloud and a real S3 server
(moto) on 127.0.0.1; what it wrote is read back with DuckDB (a bucket is
downloaded first: DuckDB cannot reach S3 here), gzip and zstandard.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import json
import random
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import msgspec
import obstore
import pytest
import zstandard
from obstore.store import S3Store

import sendcloud_async as sc
from sendcloud_async._checkpoint import Checkpoint
from sendcloud_async._errors import ExportInputError
from sendcloud_async._export import export_logs
from sendcloud_async._parts import PartsSink
from sendcloud_async.testing import FakeSendcloud
from tests._parts_data import by_place
from tests._s3server import ACCESS_KEY, SECRET_KEY, S3Server

from .test_cli import (
    PUBLIC_KEY,
    Result,
    assert_one_error_line,
    base_env,
    fake_env,
    run,
    start,
)
from .test_cli import SECRET_KEY as FAKE_SECRET
from .test_parts_s3 import download

# -- reading what was written ---------------------------------------------------------------


def parquet_rows(root: Path, columns: str = "*") -> list[tuple[Any, ...]]:
    """Every row of the parts under ``root`` (Hive columns included), sorted."""
    rows = duckdb.sql(
        f"select {columns} from read_parquet('{root}/**/*.parquet', hive_partitioning=true)"
    ).fetchall()  # type: ignore[union-attr]
    return sorted(rows, key=repr)


def jsonl_lines(root: Path) -> list[bytes]:
    """Every line of the JSON Lines parts under ``root``, sorted."""
    return sorted(line for p in root.rglob("*.jsonl") for line in p.read_bytes().splitlines())


def parquet_parts(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*.parquet")}


def manifest(root: Path, account: str = "default") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / f"account={account}" / "_manifest.json").read_text())
    return data


def unzstd(data: bytes) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data), read_across_frames=True)
    return reader.read()


def nothing_written(root: Path) -> bool:
    return not root.exists() or not any(root.iterdir())


def accounts_file(path: Path, fake: FakeSendcloud) -> Path:
    """Two accounts on the fake: ``one`` sees every integration, ``two`` integration 2."""
    fake.add_account(f"{PUBLIC_KEY}-2", FAKE_SECRET)
    path.write_text(
        f'[accounts.one]\npublic_key = "{PUBLIC_KEY}"\nsecret_key = "{FAKE_SECRET}"\n'
        f'base_url = "{fake.base_url}"\n'
        f'[accounts.two]\npublic_key = "{PUBLIC_KEY}-2"\nsecret_key = "{FAKE_SECRET}"\n'
        f'base_url = "{fake.base_url}"\nintegration = 2\n'
    )
    return path


# -- kills ------------------------------------------------------------------------------------


Progress = Callable[[], int]


async def kill_and_resume(
    args: list[str], env: dict[str, str], seed: int, progress: Progress, total: int, logs: int
) -> int:
    """Ten SIGKILLs, each run with --resume, then a run to the end; how many kills hit.

    Three in the first 100 ms; seven once ``progress()`` (what is committed) passes a
    random point between 5 % and 90 % of ``total`` (in increasing order, so each
    resumed run has work left), a random instant up to 20 ms later. ``logs``: how
    many the whole export holds.
    """
    rng = random.Random(seed)
    targets = sorted(rng.uniform(0.05, 0.9) * total for _ in range(7))
    hits = 0
    for kill in range(10):
        proc = await start(
            *args, "--resume", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        if kill < 3:
            await asyncio.sleep(rng.uniform(0.0, 0.1))
        else:
            target = targets[kill - 3]
            while proc.returncode is None:
                if await asyncio.to_thread(progress) >= target:
                    break
                await asyncio.sleep(0.005)
            await asyncio.sleep(rng.uniform(0.0, 0.02))
        if proc.returncode is None:
            proc.send_signal(signal.SIGKILL)
            hits += 1
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode in (0, -signal.SIGKILL), err.decode()
    final = await run(*args, "--resume", env=env)
    assert final.code == 0, final
    # The last run continued from what the killed ones committed: it had less to do.
    assert "already complete" in final.out or run_records(final) < logs, final.out
    return hits


def run_records(result: Result) -> int:
    """The logs a run exported itself, from its summary (``exported N records``)."""
    found = re.search(r"exported ([\d,]+) records", result.out)
    assert found is not None, result.out
    return int(found.group(1).replace(",", ""))


def local_progress(root: Path) -> Progress:
    """The logs the manifests under ``root`` list."""

    def records() -> int:
        total = 0
        for path in root.glob("account=*/_manifest.json"):
            with contextlib.suppress(OSError, ValueError):  # being replaced right now
                total += int(json.loads(path.read_bytes())["records"])
        return total

    return records


def bucket_progress(bucket: str, prefix: str, accounts: list[str]) -> Progress:
    """The logs the manifests of ``accounts`` under ``prefix`` list."""
    store = S3Store(bucket, client_options={"allow_http": True})

    def records() -> int:
        total = 0
        for account in accounts:
            try:
                data = obstore.get(store, f"{prefix}/account={account}/_manifest.json").bytes()
            except FileNotFoundError:
                continue
            total += int(json.loads(bytes(data))["records"])
        return total

    return records


def file_progress(path: Path) -> Progress:
    def size() -> int:
        return path.stat().st_size if path.exists() else 0

    return size


async def clean_run(args: list[str], env: dict[str, str]) -> Result:
    result = await run(*args, env=env)
    assert result.code == 0, result
    return result


# -- one account ------------------------------------------------------------------------------


async def test_parquet_into_a_directory_holds_every_log_once(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    fake.seed(integrations=3, logs_per_integration=200, seed=31)
    out = tmp_path / "lake"
    result = await run(
        "logs", "export", "--out", str(out), "--format", "parquet", "--roll-records", "150",
        "--page-size", "40", env=fake_env(fake),
    )  # fmt: skip
    assert result.code == 0, result
    assert "exported 600 records" in result.out
    assert str(out) in result.out
    rows = parquet_rows(out, "id, integration_id, created_at, account")
    assert [r[0] for r in sorted(rows)] == sorted(r["id"] for r in fake.logs)
    assert {r[3] for r in rows} == {"default"}  # the Hive folder of the one account
    by_id = {r["id"]: r for r in fake.logs}
    for ident, integration, created, _ in rows:
        assert integration == by_id[ident]["integration_id"]
        assert created == datetime.fromisoformat(by_id[ident]["created_at"])
    state = manifest(out)
    assert state["records"] == 600
    assert len(state["parts"]) >= 4  # published every 150 logs
    assert state["state"]["done"] is True
    # Run again with --resume: already complete, nothing written, nothing asked but the manifest.
    before = parquet_parts(out)
    fake.clear_requests()
    again = await run(
        "logs", "export", "--out", str(out), "--format", "parquet", "--roll-records", "150",
        "--page-size", "40", "--resume", env=fake_env(fake),
    )  # fmt: skip
    assert again.code == 0, again
    assert "already complete" in again.out
    assert parquet_parts(out) == before
    assert fake.requests == []


@pytest.mark.timeout(300)
async def test_sigkills_then_resume_into_a_bucket_give_the_clean_parts(
    fake: FakeSendcloud, bucket: str, s3_server: S3Server, tmp_path: Path
) -> None:
    """Parquet into S3: ten kill -9, --resume each time: the very parts of a clean run."""
    fake.seed(integrations=4, logs_per_integration=500, seed=32)
    env = fake_env(fake, **s3_server.env)
    common = ["logs", "export", "--format", "parquet", "--roll-records", "120", "--page-size", "20"]
    clean_dir = tmp_path / "clean"
    await clean_run([*common, "--out", str(clean_dir)], env)
    progress = bucket_progress(bucket, "logs", ["default"])
    hits = await kill_and_resume(
        [*common, "--out", f"s3://{bucket}/logs"], env, 41, progress, 2000, 2000
    )
    assert hits >= 9
    root = await download(bucket, "logs", tmp_path / "s3")
    ids = [r[0] for r in parquet_rows(root, "id")]
    assert sorted(ids) == sorted(r["id"] for r in fake.logs)
    assert len(set(ids)) == len(ids) == 2000
    # The same parts, byte for byte (their names' digests hold each run's writer token).
    assert by_place(parquet_parts(root)) == by_place(parquet_parts(clean_dir))
    assert manifest(root)["records"] == 2000


@pytest.mark.timeout(300)
async def test_sigkills_then_resume_jsonl_parts_per_integration_in_a_directory(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """JSON Lines parts, --per-integration, into file://: ten kill -9 and --resume."""
    fake.seed(integrations=4, logs_per_integration=400, seed=33)
    env = fake_env(fake)
    common = [
        "logs", "export", "--format", "jsonl", "--roll-records", "100", "--page-size", "15",
        "--per-integration", "--concurrency", "3",
    ]  # fmt: skip
    clean_dir = tmp_path / "clean"
    await clean_run([*common, "--out", clean_dir.as_uri()], env)
    killed = tmp_path / "killed"
    hits = await kill_and_resume(
        [*common, "--out", killed.as_uri()], env, 42, local_progress(killed), 1600, 1600
    )
    assert hits >= 9
    lines = jsonl_lines(killed)
    assert len(lines) == len(set(lines)) == 1600
    assert lines == jsonl_lines(clean_dir)
    assert not [p for p in killed.rglob("*") if p.name.endswith(".tmp")]


# -- several accounts ------------------------------------------------------------------------


@pytest.mark.timeout(300)
async def test_accounts_into_one_bucket_with_sigkills(
    fake: FakeSendcloud, bucket: str, s3_server: S3Server, tmp_path: Path
) -> None:
    """--accounts into one bucket: account=NAME folders and column, exactly once across kills."""
    fake.seed(integrations=3, logs_per_integration=300, seed=34)
    accounts = accounts_file(tmp_path / "accounts.toml", fake)
    env = base_env(**s3_server.env)
    common = [
        "logs", "export", "--accounts", str(accounts), "--format", "parquet",
        "--roll-records", "100", "--page-size", "15", "--per-integration",
    ]  # fmt: skip
    await clean_run([*common, "--out-dir", str(tmp_path / "clean")], env)
    progress = bucket_progress(bucket, "all", ["one", "two"])
    hits = await kill_and_resume(
        [*common, "--out", f"s3://{bucket}/all"], env, 43, progress, 1200, 1200
    )
    assert hits >= 9
    root = await download(bucket, "all", tmp_path / "s3")
    rows = parquet_rows(root, "id, integration_id, account")
    assert len(rows) == len(set(rows))
    expected = sorted(
        [(r["id"], r["integration_id"], "one") for r in fake.logs]
        + [(r["id"], 2, "two") for r in fake.logs if r["integration_id"] == 2],
        key=repr,
    )
    assert rows == expected
    assert rows == parquet_rows(tmp_path / "clean", "id, integration_id, account")
    # The column and the folder agree (the column is in the files, not only in the path).
    counts = duckdb.sql(
        f"select account, count(*) from read_parquet('{root}/**/*.parquet') "
        "group by account order by account"
    ).fetchall()  # type: ignore[union-attr]
    assert counts == [("one", 900), ("two", 300)]


# -- resume, restart, refusals ---------------------------------------------------------------


async def test_unfinished_parts_are_refused_without_resume_and_restart_starts_over(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    fake.seed(integrations=2, logs_per_integration=100, seed=35)
    out = tmp_path / "lake"
    # An unfinished export: a manifest whose checkpoint is not done, and a stray part.
    first = await run(
        "logs", "export", "--out", str(out), "--format", "parquet", env=fake_env(fake)
    )
    assert first.code == 0, first
    raw = (out / "account=default" / "_manifest.json").read_bytes()
    data = json.loads(raw)
    data["state"]["done"] = False
    (out / "account=default" / "_manifest.json").write_text(json.dumps(data))
    before = parquet_parts(out)
    fake.clear_requests()
    refused = await run(
        "logs", "export", "--out", str(out), "--format", "parquet", env=fake_env(fake)
    )
    assert_one_error_line(refused, 2, "unfinished export (200 records so far)", "--resume")
    assert parquet_parts(out) == before
    assert fake.requests == []
    stray = out / "account=default" / "date=2023-03-01" / "part-000099-0000000000000000.parquet"
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"left by someone")
    restarted = await run(
        "logs", "export", "--out", str(out), "--format", "parquet", "--restart",
        "--integration", "1", env=fake_env(fake),
    )  # fmt: skip
    assert restarted.code == 0, restarted
    assert not stray.exists()
    rows = parquet_rows(out, "id, integration_id")
    assert sorted(rows) == sorted((r["id"], 1) for r in fake.logs if r["integration_id"] == 1)
    assert manifest(out)["records"] == 100


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"not json at all", "is not a parts manifest: JSON is malformed"),
        (
            b'{"version":1,"account":"default","format":"parquet","compression":"zstd",'
            b'"state":{"version":1,"query":42},"next_seq":0,"records":0,"parts":[]}',
            "is damaged (Expected `object`, got `int` - at `$.query`)",
        ),
    ],
)
async def test_restart_starts_over_from_a_damaged_manifest(
    fake: FakeSendcloud, tmp_path: Path, content: bytes, said: str
) -> None:
    fake.seed(integrations=1, logs_per_integration=50, seed=37)
    out = tmp_path / "lake"
    where = out / "account=default" / "_manifest.json"
    where.parent.mkdir(parents=True)
    where.write_bytes(content)
    for refused_with in ((), ("--resume",)):  # refused, nothing sent or written
        refused = await run(
            "logs", "export", "--out", str(out), "--format", "parquet", *refused_with,
            env=fake_env(fake),
        )  # fmt: skip
        assert_one_error_line(refused, 2, str(where), said)
        assert where.read_bytes() == content
        assert fake.requests == []
    restarted = await run(
        "logs", "export", "--out", str(out), "--format", "parquet", "--restart",
        env=fake_env(fake),
    )  # fmt: skip
    assert restarted.code == 0, restarted
    assert sorted(parquet_rows(out, "id")) == sorted((r["id"],) for r in fake.logs)
    assert manifest(out)["records"] == 50
    assert manifest(out)["state"]["done"] is True


async def test_a_resume_with_another_range_is_refused(fake: FakeSendcloud, tmp_path: Path) -> None:
    fake.seed(integrations=2, logs_per_integration=100, seed=36)
    times = sorted(datetime.fromisoformat(r["created_at"]) for r in fake.logs)
    since = times[20].isoformat()
    out = tmp_path / "lake"
    first = await run(
        "logs", "export", "--out", str(out), "--format", "parquet", "--since", since,
        env=fake_env(fake),
    )  # fmt: skip
    assert first.code == 0, first
    data = json.loads((out / "account=default" / "_manifest.json").read_text())
    data["state"]["done"] = False
    (out / "account=default" / "_manifest.json").write_text(json.dumps(data))
    fake.clear_requests()
    other = times[30].isoformat()
    refused = await run(
        "logs", "export", "--out", str(out), "--format", "parquet", "--since", other,
        "--resume", env=fake_env(fake),
    )  # fmt: skip
    assert_one_error_line(refused, 2, "cannot resume", "since", "--restart")
    assert fake.requests == []


async def test_a_second_writer_fails_with_one_line(fake: FakeSendcloud, tmp_path: Path) -> None:
    fake.seed(integrations=1, logs_per_integration=10, seed=37)
    out = tmp_path / "lake"
    holder = PartsSink(out, account="default", format="parquet", state_type=Checkpoint)
    await holder.load()  # holds the directory's lock
    try:
        result = await run(
            "logs", "export", "--out", str(out), "--format", "parquet", env=fake_env(fake)
        )
    finally:
        await holder.aclose()
    assert_one_error_line(result, 1, "another export is writing")


# -- compressed files ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "plain", "unpack"),
    [
        ("logs.jsonl.gz", "logs.jsonl", gzip.decompress),
        ("logs.csv.gz", "logs.csv", gzip.decompress),
        ("logs.jsonl.zst", "logs.jsonl", unzstd),
        ("logs.csv.zst", "logs.csv", unzstd),
    ],
)
async def test_compressed_files_hold_the_plain_export(
    fake: FakeSendcloud, tmp_path: Path, name: str, plain: str, unpack: Any
) -> None:
    fake.seed(integrations=2, logs_per_integration=150, seed=38)
    env = fake_env(fake)
    reference = await run("logs", "export", "--out", str(tmp_path / plain), env=env)
    assert reference.code == 0, reference
    result = await run(
        "logs", "export", "--out", str(tmp_path / name), "--page-size", "25", env=env
    )
    assert result.code == 0, result
    packed = (tmp_path / name).read_bytes()
    assert len(packed) < (tmp_path / plain).stat().st_size / 2  # really compressed
    assert unpack(packed) == (tmp_path / plain).read_bytes()


@pytest.mark.timeout(300)
async def test_sigkills_then_resume_a_gzip_file(fake: FakeSendcloud, tmp_path: Path) -> None:
    """Each page is a whole gzip member: a kill and --resume leave one valid stream, once."""
    fake.seed(integrations=4, logs_per_integration=500, seed=39)
    env = fake_env(fake)
    reference = tmp_path / "reference.jsonl"
    await clean_run(["logs", "export", "--out", str(reference), "--page-size", "10"], env)
    packed = tmp_path / "clean.jsonl.gz"
    await clean_run(["logs", "export", "--out", str(packed), "--page-size", "10"], env)
    out = tmp_path / "logs.jsonl.gz"
    args = ["logs", "export", "--out", str(out), "--page-size", "10"]
    size = packed.stat().st_size
    hits = await kill_and_resume(args, env, 44, file_progress(out), size, 2000)
    assert hits >= 9
    assert out.read_bytes() == packed.read_bytes()  # the same members, byte for byte
    with gzip.open(out, "rb") as stream:  # the reader a user has: one stream, every member
        assert stream.read() == reference.read_bytes()
    state = msgspec.json.decode(out.with_name(out.name + ".checkpoint.json").read_bytes())
    assert state["offset"] == out.stat().st_size
    assert state["query"]["compression"] == "gzip"


# -- a range of dates -------------------------------------------------------------------------


def _logs_paths(fake: FakeSendcloud) -> list[str]:
    return [r.path for r in fake.requests if r.path.endswith("/logs")]


@pytest.mark.parametrize("order", ["oldest_first", "newest_first"])
async def test_since_until_exports_the_range_and_stops_early(order: str, tmp_path: Path) -> None:
    async with FakeSendcloud(validate_spec=True, log_order=order) as fake:
        fake.seed(integrations=3, logs_per_integration=400, seed=40)
        times = sorted(datetime.fromisoformat(r["created_at"]) for r in fake.logs)
        since, until = times[300], times[450]  # 150 logs: since included, until not
        out = tmp_path / "range.jsonl"
        result = await run(
            "logs", "export", "--out", str(out), "--page-size", "20",
            "--since", since.isoformat(), "--until", until.isoformat(), env=fake_env(fake),
        )  # fmt: skip
        assert result.code == 0, result
        got = [msgspec.json.decode(line)["id"] for line in out.read_bytes().splitlines()]
        wanted = [
            r["id"] for r in fake.logs if since <= datetime.fromisoformat(r["created_at"]) < until
        ]
        assert sorted(got) == sorted(wanted)
        assert len(got) == 150
        # 150 logs in pages of 20: 8 pages, and one more at each end at most, the probe of
        # the listing's order and one page read ahead; not the 60 pages of the account.
        assert len(_logs_paths(fake)) <= 13, len(_logs_paths(fake))
        assert fake.spec_violations == []


async def test_since_until_with_parts_per_integration(fake: FakeSendcloud, tmp_path: Path) -> None:
    fake.seed(integrations=3, logs_per_integration=200, seed=45)
    times = sorted(datetime.fromisoformat(r["created_at"]) for r in fake.logs)
    since, until = times[100], times[400]
    out = tmp_path / "lake"
    result = await run(
        "logs", "export", "--out", str(out), "--format", "parquet", "--per-integration",
        "--page-size", "10", "--since", since.isoformat(), "--until", until.isoformat(),
        env=fake_env(fake),
    )  # fmt: skip
    assert result.code == 0, result
    wanted = sorted(
        r["id"] for r in fake.logs if since <= datetime.fromisoformat(r["created_at"]) < until
    )
    assert sorted(r[0] for r in parquet_rows(out, "id")) == wanted
    state = manifest(out)["state"]
    assert state["query"]["since"] is not None
    assert state["order"] == "oldest_first"
    # Each integration's walk stops past the range: far fewer pages than its 20.
    per_integration = [p for p in _logs_paths(fake) if p != "/integrations/logs"]
    assert len(per_integration) <= 3 * 12, len(per_integration)


# -- bad input: one line, exit 2, nothing written or sent -------------------------------------


@pytest.mark.parametrize(
    ("argv", "needles"),
    [
        (
            ["--out", "OUT", "--format", "parquet", "--since", "2026-11-01T00:00:00"],
            ["aware datetime", "2026-11-01T00:00:00"],
        ),
        (
            [
                "--out",
                "OUT/l.jsonl",
                "--since",
                "2026-11-02T00:00Z",
                "--until",
                "2026-11-01T00:00Z",
            ],
            ["--until (2026-11-01T00:00:00+00:00) must be later than --since"],
        ),
        (["--out", "OUT/l.jsonl", "--until", "tomorrow"], ["not an ISO 8601 date-time"]),
        (["--out", "ftp://host/logs"], ["unknown scheme 'ftp'"]),
        (["--out", "s3://AKIAXX:hunter2secret@bucket/x"], ["credentials in the URL"]),
        (["--out", "OUT/logs.parquet.gz"], ["directory of parts", ".gz"]),
        (["--out", "OUT/logs.jsonl", "--compression", "gzip"], ["contradicts", "logs.jsonl.gz"]),
        (["--out", "OUT", "--format", "parquet", "--compression", "lz4"], ["invalid choice"]),
        (["--out", "OUT", "--format", "csv", "--compression", "snappy"], ["snappy"]),
        (["--out", "-", "--format", "parquet"], ["--format parquet writes parts"]),
        (["--out", "-", "--compression", "gzip"], ["--compression needs"]),
        (["--out", "OUT/logs.jsonl", "--roll-records", "5"], ["--roll-records goes with parts"]),
    ],
)
async def test_bad_input_is_one_line_and_nothing_is_written(
    fake: FakeSendcloud, tmp_path: Path, argv: list[str], needles: list[str]
) -> None:
    fake.seed(integrations=1, logs_per_integration=5, seed=46)
    root = tmp_path / "out"
    args = [a.replace("OUT", str(root)) for a in argv]
    result = await run("logs", "export", *args, env=fake_env(fake))
    assert_one_error_line(result, 2, *needles)
    assert "hunter2secret" not in result.err
    assert nothing_written(root)
    assert fake.requests == []


_BLOCKED = (
    "import sys\n"
    "for name in {names!r}: sys.modules[name] = None\n"
    "from sendcloud_async._cli import main\n"
    "sys.exit(main({argv!r}))\n"
)


@pytest.mark.parametrize(
    ("names", "out", "extra"),
    [
        (["pyarrow"], "DIR", "parquet"),
        (["obstore"], "s3://bucket/x", "storage"),
        (["zstandard"], "DIR/logs.jsonl.zst", "zstd"),
    ],
)
async def test_a_missing_extra_is_one_line_with_the_pip_install(
    fake: FakeSendcloud, tmp_path: Path, names: list[str], out: str, extra: str
) -> None:
    root = tmp_path / "out"
    target = out.replace("DIR", str(root))
    argv = ["logs", "export", "--out", target]
    if extra != "zstd":
        argv += ["--format", "parquet" if extra == "parquet" else "jsonl"]
    code = _BLOCKED.format(names=names, argv=argv)
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env=fake_env(fake, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY),
    )
    result = Result(done.returncode, done.stdout, done.stderr)
    assert_one_error_line(result, 2, f"pip install 'sendcloud-async[{extra}]'")
    assert nothing_written(root)
    assert fake.requests == []


# -- the library --------------------------------------------------------------------------------


async def test_the_library_exports_a_range_into_parts(fake: FakeSendcloud, tmp_path: Path) -> None:
    """``export_logs`` takes the URL, the format, the account and the range; resumes from
    the manifest; refuses a naive date-time before anything is written or sent."""
    fake.seed(integrations=2, logs_per_integration=150, seed=47)
    times = sorted(datetime.fromisoformat(r["created_at"]) for r in fake.logs)
    since, until = times[50], times[250]
    out = tmp_path / "lake"
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url) as client:
        stats = await export_logs(
            client, out.as_uri(), fmt="parquet", account="shop-a", since=since, until=until,
            page_size=30, part_records=70,
        )  # fmt: skip
        assert stats.done
        assert stats.records == 200
        assert stats.destination == out.as_uri()
        again = await export_logs(
            client, out.as_uri(), fmt="parquet", account="shop-a", since=since, until=until,
            page_size=30, part_records=70, resume=True,
        )  # fmt: skip
        assert again.already_complete
        fake.clear_requests()
        with pytest.raises(ExportInputError, match="since must be an aware datetime"):
            await export_logs(client, tmp_path / "x.jsonl", since=datetime(2026, 11, 1))
        with pytest.raises(ExportInputError, match="must be later than since"):
            await export_logs(client, tmp_path / "x.jsonl", since=until, until=since)
    assert fake.requests == []
    assert not (tmp_path / "x.jsonl").exists()
    rows = parquet_rows(out, "id, account")
    wanted = [
        r["id"] for r in fake.logs if since <= datetime.fromisoformat(r["created_at"]) < until
    ]
    assert sorted(r[0] for r in rows) == sorted(wanted)
    assert {r[1] for r in rows} == {"shop-a"}
    assert len(manifest(out, "shop-a")["parts"]) >= 3


@pytest.mark.timeout(300)
async def test_sigterm_publishes_every_page_committed_before_it(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """SIGTERM at random moments of a JSON Lines parts export (nothing is published
    before the stop: --roll-seconds is a minute): each stop publishes every page
    committed before it, leaves no spool file, and --resume ends with every log once."""
    fake.seed(integrations=2, logs_per_integration=3000, seed=35)
    env = fake_env(fake)
    out = tmp_path / "lake"
    args = ["logs", "export", "--out", f"file://{out}", "--format", "jsonl", "--page-size", "50"]
    rng = random.Random(35)

    def served() -> int:
        return sum(1 for r in fake.requests if r.path == "/integrations/logs")

    before = 0
    for _stop in range(6):
        fake.clear_requests()
        proc = await start(
            *args, "--resume", env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        target = rng.randint(5, 25)
        while proc.returncode is None:
            if served() >= target:
                break
            await asyncio.sleep(0.002)
        at_stop = served()
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 143, err.decode()
        records = manifest(out)["records"]
        # Every page served was committed, but for the one being fetched and one written.
        assert records >= before + (at_stop - 2) * 50, (before, at_stop, records)
        assert manifest(out)["state"]["records"] == records
        lines = jsonl_lines(out)
        assert len(lines) == records == len({json.loads(line)["id"] for line in lines})
        assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
        before = records
    final = await run(*args, "--resume", env=env)
    assert final.code == 0, final
    ids = [json.loads(line)["id"] for line in jsonl_lines(out)]
    assert sorted(ids) == sorted(r["id"] for r in fake.logs)
    assert len(set(ids)) == len(ids) == 6000
