"""Parts into a local directory: formats, compression, layout, names, resume, bad input."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import random
import re
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import duckdb
import msgspec
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import zstandard

from sendcloud_async._fileio import FileWriteError
from sendcloud_async._models import IntegrationLog, LogRequest, LogResponse
from sendcloud_async._parts import ExportInputError, PartsSink, SecondWriterError, _schema
from sendcloud_async._parts._layout import date_of
from sendcloud_async._parts._schema import JSON_COLUMNS
from sendcloud_async._records import CSV_COLUMNS, csv_header, encode_csv, encode_jsonl
from tests._parts_data import by_place, export, make_logs

LOGS = make_logs(1000)


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "_manifest.lock"
    }


def _parquet_files(root: Path) -> list[Path]:
    return sorted(root.rglob("*.parquet"))


def _manifest(root: Path, account: str = "shop-a") -> dict[str, object]:
    data: dict[str, object] = json.loads(
        (root / f"account={account}" / "_manifest.json").read_text()
    )
    return data


async def test_parquet_round_trip_schema_types_and_zstd(tmp_path: Path) -> None:
    sink = await export(str(tmp_path), LOGS)
    files = _parquet_files(tmp_path)
    assert files
    assert all("account=shop-a/date=2026-11-0" in f.as_posix() for f in files)
    table = pq.read_table(files[0])
    schema = table.schema
    assert schema.names == list(CSV_COLUMNS)
    assert schema.field("id").type == pa.int64()
    assert schema.field("integration_id").type == pa.int64()
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("response_body").type == pa.string()
    meta = pq.ParquetFile(files[0]).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert meta.row_group(0).num_rows <= 128
    # Every log once, values as the model has them.
    rows = duckdb.sql(
        f"select * from read_parquet('{tmp_path}/**/*.parquet', hive_partitioning=true) order by id"
    ).fetchall()  # type: ignore[union-attr]
    assert len(rows) == len(LOGS) == sink.committed_records
    for row, log in zip(rows, LOGS, strict=True):
        response, request = log.response, log.request
        assert row[:6] == (
            log.id,
            log.integration_id,
            log.base_url,
            log.full_url,
            log.method,
            log.response_code,
        )
        nested = [json.loads(v) if v is not None else None for v in row[6:10]]
        assert nested == [
            None if response is None else response.headers,
            None if response is None else response.body,
            None if request is None else request.headers,
            None if request is None else request.payload,
        ]
        assert row[10] == log.created_at
        assert row[10] is not None
        assert row[11:14] == (log.exception_type, log.exception, log.protected)
        assert json.loads(row[14]) == log.additional_data
        assert row[15:] == ("shop-a", row[10].astimezone(UTC).date())


async def test_account_column_and_hive_reading_agree(tmp_path: Path) -> None:
    await export(str(tmp_path), LOGS[:200], account="shop-a", account_column=True)
    await export(str(tmp_path), LOGS[200:400], account="shop-b", account_column=True)
    rows = duckdb.sql(
        f"select account, count(*) from read_parquet('{tmp_path}/**/*.parquet', "
        "hive_partitioning=true) group by account order by account"
    ).fetchall()  # type: ignore[union-attr]
    assert rows == [("shop-a", 200), ("shop-b", 200)]
    part = _parquet_files(tmp_path)[0]
    assert pq.read_schema(part).names == [*CSV_COLUMNS, "account"]


@pytest.mark.parametrize(("compression", "suffix"), [("gzip", ".gz"), ("zstd", ".zst")])
@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
async def test_text_parts_are_really_compressed(
    tmp_path: Path, fmt: str, compression: str, suffix: str
) -> None:
    await export(str(tmp_path), LOGS, format=fmt, compression=compression, part_records=2000)
    manifest = _manifest(tmp_path)
    parts = manifest["parts"]
    assert isinstance(parts, list)
    raw = b""
    for entry in parts:
        path = tmp_path / entry["key"]
        assert path.name.endswith(f".{fmt}{suffix}")
        data = path.read_bytes()
        assert data[:2] == b"\x1f\x8b" if compression == "gzip" else data[:4] == b"\x28\xb5\x2f\xfd"
        plain = gzip.decompress(data) if compression == "gzip" else _unzstd(data)
        assert len(data) < len(plain) / 3  # really compressed
        raw += plain
    if fmt == "jsonl":
        by_date = sorted(LOGS, key=lambda log: str(log.created_at.date() if log.created_at else ""))
        assert sorted(raw.splitlines()) == sorted(encode_jsonl(by_date).splitlines())
    else:
        header = csv_header()
        assert raw.startswith(header)
        body = raw.replace(header, b"")
        assert sorted(body.split(b"\r\n")) == sorted(encode_csv(LOGS).split(b"\r\n"))


def _unzstd(data: bytes) -> bytes:
    reader = zstandard.ZstdDecompressor().stream_reader(data)
    return reader.read()


async def test_part_bytes_are_deterministic_and_names_are_the_writers_own(
    tmp_path: Path,
) -> None:
    """The same logs give the same parts, byte for byte, in the same places; the names'
    digests hold each writer's token, so two writers never share a part's name."""
    await export(str(tmp_path / "one"), LOGS)
    await export(str(tmp_path / "two"), LOGS)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    parts_one = {k: v for k, v in one.items() if "manifest" not in k}
    parts_two = {k: v for k, v in two.items() if "manifest" not in k}
    assert len(parts_one) >= 3
    assert by_place(parts_one) == by_place(parts_two)
    assert not parts_one.keys() & parts_two.keys()
    names = [k for k in one if k.endswith(".parquet")]
    assert all(re.fullmatch(r"part-0000\d\d-[0-9a-f]{16}\.parquet", Path(n).name) for n in names)


async def test_resume_after_a_clean_end_writes_nothing_and_orphans_are_removed(
    tmp_path: Path,
) -> None:
    await export(str(tmp_path), LOGS)
    orphan = tmp_path / "account=shop-a" / "date=2026-11-01" / "part-999999-0000.parquet"
    orphan.write_bytes(b"left by a kill")
    spool = tmp_path / "account=shop-a" / "date=2026-11-01" / "part-000009.tmp"
    spool.write_bytes(b"half a part")
    left = orphan.relative_to(tmp_path).as_posix()
    before = {k: v for k, v in _files(tmp_path).items() if k != left}
    sink = await export(str(tmp_path), LOGS)
    assert not orphan.exists()
    assert not spool.exists()
    after = _files(tmp_path)
    assert {k for k in after if "part-" in k} == {
        k for k in before if "part-" in k and "999999" not in k and not k.endswith(".tmp")
    }
    assert sink.committed_records == len(LOGS)


async def test_unflushed_commits_are_not_committed(tmp_path: Path) -> None:
    sink = PartsSink(tmp_path, account="shop-a", part_records=10_000)
    assert await sink.load() is None
    await sink.commit(LOGS[:100], {"next": 100})
    assert sink.committed_records == 0
    assert not _parquet_files(tmp_path)
    assert _manifest(tmp_path)["state"] is None
    await sink.flush()
    assert sink.committed_records == 100
    assert _manifest(tmp_path)["state"] == {"next": 100}
    await sink.aclose()
    await sink.aclose()  # idempotent


async def test_a_second_writer_is_refused(tmp_path: Path) -> None:
    async with PartsSink(tmp_path, account="shop-a") as first:
        await first.load()
        second = PartsSink(tmp_path, account="shop-a")
        with pytest.raises(SecondWriterError, match="another export is writing"):
            await second.load()
        await second.aclose()
        async with PartsSink(tmp_path, account="shop-b") as other:  # another account: fine
            await other.load()


async def test_a_resume_with_another_format_is_refused(tmp_path: Path) -> None:
    await export(str(tmp_path), LOGS[:100])
    before = _files(tmp_path)
    sink = PartsSink(tmp_path, account="shop-a", format="jsonl", compression="gzip")
    with pytest.raises(ExportInputError, match=r"holds parquet parts \(zstd\).*jsonl \(gzip\)"):
        await sink.load()
    await sink.aclose()
    assert _files(tmp_path) == before


@pytest.mark.parametrize(
    ("out", "kwargs", "message"),
    [
        ("ftp://host/x", {}, r"^cannot write parts to ftp://host/x: unknown scheme 'ftp'"),
        ("s3://", {}, r"names a bucket"),
        ("file://remote/x", {}, r"file:///PATH"),
        ("s3://bucket/x?region=eu", {}, r"no query"),
        (".", {"format": "orc"}, r"unknown parts format 'orc'"),
        (".", {"format": "jsonl", "compression": "brotli"}, r"cannot be compressed with"),
        (".", {"account": "../x"}, r"account '../x' is not allowed"),
        (".", {"part_records": 0}, r"part_records must be an int of 1 or more"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    out: str,
    kwargs: dict[str, object],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ExportInputError, match=message) as caught:
        PartsSink(out, **kwargs)  # type: ignore[arg-type]
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_credentials_in_the_url_are_refused_and_never_shown() -> None:
    with pytest.raises(ExportInputError, match="credentials in the URL are not accepted") as caught:
        PartsSink("s3://AKIAXX:s3cr3tvalue@bucket/prefix")
    assert "s3cr3tvalue" not in str(caught.value)
    assert "AKIAXX" not in str(caught.value)
    assert "s3://bucket/prefix" in str(caught.value)


def test_file_url_and_plain_path_are_the_same_place(tmp_path: Path) -> None:
    assert PartsSink(tmp_path.as_uri()).url == PartsSink(str(tmp_path)).url == str(tmp_path)


_BLOCK = (
    "import sys, asyncio\n"
    "for name in {names!r}: sys.modules[name] = None\n"
    "from sendcloud_async._parts import PartsSink, MissingExtraError\n"
    "try:\n"
    "    PartsSink({out!r}, **{kwargs!r})\n"
    "except MissingExtraError as exc:\n"
    "    print(exc)\n"
)


@pytest.mark.parametrize(
    ("names", "out", "kwargs", "extra"),
    [
        (["pyarrow"], "DIR", {}, "parquet"),
        (["zstandard"], "DIR", {"format": "jsonl", "compression": "zstd"}, "zstd"),
        (["obstore"], "s3://bucket/x", {"format": "jsonl"}, "storage"),
    ],
)
def test_a_missing_extra_names_the_pip_install(
    tmp_path: Path, names: list[str], out: str, kwargs: dict[str, object], extra: str
) -> None:
    target = str(tmp_path / "out") if out == "DIR" else out
    code = _BLOCK.format(names=names, out=target, kwargs=kwargs)
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 1, result.stdout + result.stderr
    assert lines[0].endswith(f"pip install 'sendcloud-async[{extra}]'")
    assert not (tmp_path / "out").exists()


async def test_memory_is_bounded_by_the_row_group(tmp_path: Path) -> None:
    sink = PartsSink(tmp_path, account="shop-a", row_group_records=64, part_records=10**6)
    await sink.load()
    for begin in range(0, len(LOGS), 50):
        await sink.commit(LOGS[begin : begin + 50], {"next": begin + 50})
        group = sink._group
        assert group is not None
        assert group.pending() < 64
    await sink.aclose()
    assert sink.committed_records == len(LOGS)


# -- Parquet columns, exactly --------------------------------------------------

_PLUS_TWO = timezone(timedelta(hours=2))
_MINUS_FIVE_THIRTY = timezone(-timedelta(hours=5, minutes=30))


def _log(ident: int, created: datetime | None, **fields: Any) -> IntegrationLog:
    return IntegrationLog(base_url="https://shop.example", id=ident, created_at=created, **fields)


#: Values a column-at-a-time encoder could get wrong: newlines, quotes, the string
#: "null" against null, non-ASCII, numbers, offsets that change the UTC date.
AWKWARD = (
    _log(
        1,
        datetime(2026, 11, 1, 23, 30, tzinfo=_MINUS_FIVE_THIRTY),  # 2026-11-02 in UTC
        response=LogResponse(headers={"X-Note": "line\nbreak"}, body="null"),
        request=LogRequest(headers="plain text", payload={"q": 'say "hi" – ünï 😀'}),
        exception='multi\nline "quoted" \\ back',
        additional_data=None,
    ),
    _log(2, None, request=LogRequest(payload=None), additional_data={"k": [1, 2.5, True, None]}),
    _log(
        3,
        datetime(2026, 11, 2, 1, 0, 0, 1, tzinfo=_PLUS_TWO),  # 2026-11-01 in UTC
        response=LogResponse(body={"errors": []}),
        method="GET",
        response_code=404,
        protected=True,
    ),
    _log(4, datetime(2026, 11, 2, 0, 0, tzinfo=UTC), response=LogResponse(headers={})),
    _log(5, datetime(2026, 11, 1, 12, 0, 0, 500000, tzinfo=UTC), additional_data='{"a": 1}'),
)
#: Zones JSON cannot write exactly (a zone database's, an offset with seconds).
ZONED = (
    _log(6, datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Amsterdam"))),
    _log(7, datetime(2026, 11, 1, 0, 0, 30, tzinfo=timezone(timedelta(seconds=3723)))),
)


def _expected(log: IntegrationLog, account: str | None) -> dict[str, Any]:
    """A row as each value is encoded on its own (what the columns must equal)."""

    def text(value: Any) -> str | None:
        return None if value is None else msgspec.json.encode(value).decode()

    response, request = log.response, log.request
    row = {name: getattr(log, name) for name in CSV_COLUMNS if hasattr(log, name)}
    row.update(
        response_headers=text(None if response is None else response.headers),
        response_body=text(None if response is None else response.body),
        request_headers=text(None if request is None else request.headers),
        request_payload=text(None if request is None else request.payload),
        additional_data=text(log.additional_data),
        created_at=None if log.created_at is None else log.created_at.astimezone(UTC),
    )
    if account is not None:
        row["account"] = account
    return row


@pytest.mark.parametrize("logs", [AWKWARD, AWKWARD + ZONED, ZONED, AWKWARD[1:2]])
@pytest.mark.parametrize("account", [None, "shop-a"])
@pytest.mark.parametrize("halves", [False, True])
def test_parquet_columns_hold_each_value_exactly(
    monkeypatch: pytest.MonkeyPatch,
    logs: tuple[IntegrationLog, ...],
    account: str | None,
    halves: bool,
) -> None:
    if halves:  # a column past Arrow's 32-bit offsets is built in halves, then chunked
        monkeypatch.setattr(_schema, "_MAX_STRING_DATA", 16)
    schema = _schema.arrow_schema(pa, account_column=account is not None)
    table = _schema.arrow_table(pa, pc, schema, logs, account)
    assert table.schema == schema
    rows = table.to_pylist()
    assert rows == [_expected(log, account) for log in logs]
    for row in rows:
        assert all(row[name] is None or isinstance(row[name], str) for name in JSON_COLUMNS)


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
async def test_each_log_is_in_the_part_of_its_utc_date(tmp_path: Path, fmt: str) -> None:
    # Dates interleaved within one row group (3, 1, 4, 5: 11-01, 11-02, 11-02, 11-01).
    logs = (AWKWARD[2], AWKWARD[0], AWKWARD[3], AWKWARD[4], AWKWARD[1], *ZONED)
    sink = PartsSink(tmp_path, account="shop-a", format=fmt, row_group_records=4)
    await sink.load()
    await sink.commit(logs[:3], {"next": 3})
    await sink.commit(logs[3:], {"next": len(logs)})
    await sink.aclose()
    found: dict[int, str] = {}
    for key in sink.parts:
        date = key.split("/")[1].removeprefix("date=")
        path = tmp_path / key
        if fmt == "parquet":
            ids = pq.read_table(path, columns=["id"]).column("id").to_pylist()
        else:
            ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
        found.update(dict.fromkeys(ids, date))
    assert found == {log.id: date_of(log) for log in logs}
    assert found[2] == "__HIVE_DEFAULT_PARTITION__"
    assert (found[1], found[3]) == ("2026-11-02", "2026-11-01")


_FULL_DISK = """
import asyncio, resource, signal, sys
from sendcloud_async._parts import ExportError, PartsSink
from tests._parts_data import make_logs

async def main(out):
    logs = make_logs(3000)
    sink = PartsSink(out, account="shop-a", row_group_records=500, part_records=10**6)
    await sink.load()
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (8_000, 8_000))  # the disk is "full"
    try:
        for begin in range(0, len(logs), 100):
            await sink.commit(logs[begin : begin + 100], {"next": begin + 100})
        await sink.flush()
    except ExportError as exc:
        print(exc)
    await sink.aclose()

asyncio.run(main(sys.argv[1]))
"""


def test_a_part_that_cannot_be_written_is_one_line_and_nothing_is_committed(
    tmp_path: Path,
) -> None:
    # A real process whose files may not grow past 8 kB: a row group written on the
    # writer's thread fails there, and the failure reaches the export.
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(out)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    assert line.startswith(f"cannot write a part file for {out}: ")
    assert "File too large" in line
    assert _manifest(out)["parts"] == []
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "_manifest.json",
        "_manifest.lock",
    ]


async def test_a_manifest_that_cannot_be_replaced_names_it_and_commits_nothing(
    tmp_path: Path,
) -> None:
    """The failed replacement names the manifest; the committed one stays, and the
    writer removes, as it closes, the parts it published for the one never written."""
    await export(str(tmp_path), LOGS[:300])
    manifest = tmp_path / "account=shop-a" / "_manifest.json"
    parts = _manifest(tmp_path)["parts"]
    assert isinstance(parts, list)
    assert parts
    listed = {part["key"] for part in parts}
    sink = PartsSink(tmp_path, account="shop-a", part_records=10_000)
    assert await sink.load() == {"next": 300}
    committed = manifest.read_bytes()  # as the load claimed it
    blocker = manifest.with_name("_manifest.json.tmp")
    blocker.mkdir()  # the manifest's temporary file cannot be created
    await sink.commit(LOGS[300:400], {"next": 400})
    with pytest.raises(FileWriteError) as caught:
        await sink.flush()
    assert str(caught.value) == f"cannot write {manifest} (replacing the manifest): Is a directory"
    await sink.aclose()
    assert manifest.read_bytes() == committed
    assert {k for k in _files(tmp_path) if "part-" in k} == listed
    blocker.rmdir()
    resumed = PartsSink(tmp_path, account="shop-a")
    assert await resumed.load() == {"next": 300}
    await resumed.aclose()
    assert {k for k in _files(tmp_path) if "part-" in k} == listed


def _no_part_threads() -> bool:
    """No thread of a part writer is left (the Parquet writers name theirs)."""
    return not [t for t in threading.enumerate() if t.name.startswith("parquet-part")]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
async def test_a_cancel_at_random_moments_publishes_every_finished_commit(
    tmp_path: Path, fmt: str
) -> None:
    """Cancel a task committing pages (parts published every third page) at 12 random
    moments, then close the sink as a stopped export does: the manifest holds every
    commit that returned, plus the one the cancel landed in if its logs were written;
    the parts hold exactly those logs; no spool file or writer thread is left, and
    nothing changes on disk afterwards."""
    logs = make_logs(12_000)
    page = 1000

    async def committing(sink: PartsSink, done: list[int]) -> None:
        for begin in range(0, len(logs), page):
            await sink.commit(logs[begin : begin + page], {"next": begin + page})
            done.append(begin + page)

    started = time.monotonic()
    await committing(sink := PartsSink(tmp_path / "whole", format=fmt, part_records=2500), [])
    await sink.aclose()
    lifetime = time.monotonic() - started
    rng = random.Random(17 if fmt == "parquet" else 18)
    hits = 0
    for run in range(12):
        out = tmp_path / f"run{run}"
        sink = PartsSink(
            out, account="shop-a", format=fmt, part_records=2500, row_group_records=4096
        )
        await sink.load()
        done: list[int] = []
        task = asyncio.create_task(committing(sink, done))
        await asyncio.sleep(rng.uniform(0.0, 0.7 * lifetime))
        if not task.done():
            hits += 1
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sink.aclose()
        published = cast("dict[str, int] | None", _manifest(out)["state"])
        last = done[-1] if done else 0
        assert published is not None or last == 0
        reached = 0 if published is None else published["next"]
        assert reached in (last, last + page), (run, last, reached)
        assert _manifest(out)["records"] == reached
        if fmt == "parquet":
            ids = [r[0] for r in duckdb.sql(
                f"select id from read_parquet('{out}/**/*.parquet') order by id"
            ).fetchall()]  # type: ignore[union-attr]  # fmt: skip
        else:
            ids = sorted(
                json.loads(line)["id"]
                for p in out.rglob("*.jsonl")
                for line in p.read_bytes().splitlines()
            )
        assert ids == sorted(cast(int, log.id) for log in logs[:reached])
        files = _files(out)
        assert not [k for k in files if k.endswith(".tmp")]
        assert _no_part_threads()
        await asyncio.sleep(0.05)
        assert _files(out) == files  # no thread goes on writing
    assert hits >= 6
