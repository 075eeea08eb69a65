"""The export engine: writers, checkpoint, resume and refusal rules (in-process, FakeSendcloud)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
import pytest

import sendcloud_async as sc
from sendcloud_async._checkpoint import Checkpoint, checkpoint_path
from sendcloud_async._errors import ExportError, ExportInputError
from sendcloud_async._export import ExportStats, LogExport, export_logs
from sendcloud_async._records import CSV_COLUMNS, csv_header, encode_csv, encode_jsonl
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse

# -- helpers -----------------------------------------------------------------------------------


def expected_line(record: dict[str, Any]) -> dict[str, Any]:
    """A server record as the README documents a JSON Lines line (null sub-fields left out)."""
    line = dict(record)
    for part in ("request", "response"):
        if isinstance(line.get(part), dict):
            line[part] = {k: v for k, v in line[part].items() if v is not None}
    line["created_at"] = datetime.fromisoformat(line["created_at"])
    return line


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The file's lines decoded, ``created_at`` parsed."""
    lines = []
    for raw in path.read_bytes().splitlines():
        item = msgspec.json.decode(raw)
        item["created_at"] = datetime.fromisoformat(item["created_at"])
        lines.append(item)
    return lines


def cell(value: Any) -> str:
    """The documented CSV flattening, written independently of the implementation."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return str(value)


def expected_row(record: dict[str, Any]) -> dict[str, str]:
    """A server record as the documented CSV row."""
    response = record.get("response") or {}
    request = record.get("request") or {}
    flat = {
        **record,
        "response_headers": response.get("headers"),
        "response_body": response.get("body"),
        "request_headers": request.get("headers"),
        "request_payload": request.get("payload"),
    }
    return {column: cell(flat.get(column)) for column in CSV_COLUMNS}


def read_checkpoint(out: Path) -> Checkpoint:
    """The checkpoint beside ``out``."""
    return msgspec.json.decode(checkpoint_path(out).read_bytes(), type=Checkpoint)


def make_log(**fields: Any) -> sc.IntegrationLog:
    """An IntegrationLog with defaults for the required bits."""
    base: dict[str, Any] = {"base_url": "https://shop.example", "id": 1, "integration_id": 2}
    base.update(fields)
    return msgspec.convert(base, sc.IntegrationLog, strict=False)


# -- writers -----------------------------------------------------------------------------------


def test_jsonl_lines_round_trip() -> None:
    """Each log is one line that decodes back to the same IntegrationLog."""
    logs = [
        make_log(
            id=1, created_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=1)))
        ),
        make_log(id=2, request={"headers": "A: b\r\nC: d", "payload": {"x": [1, 2]}}),
    ]
    data = encode_jsonl(logs)
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 2
    decoded = [msgspec.json.decode(line, type=sc.IntegrationLog) for line in data.splitlines()]
    assert decoded == logs
    assert b'"created_at":"2024-01-02T03:04:05+01:00"' in data
    assert encode_jsonl([]) == b""


def test_csv_flattening_of_every_shape() -> None:
    """Objects become compact JSON, strings stay raw, null is empty, newlines and quotes survive."""
    when = datetime(2024, 5, 6, 7, 8, 9, 123000, tzinfo=UTC)
    logs = [
        make_log(
            id=10,
            response_code=500,
            response={"headers": {"Server": "nginx"}, "body": '<h1>"Oops"</h1>\n<p>é</p>'},
            request={"headers": {"A": "b"}, "payload": {"note": "ok, fine"}},
            created_at=when,
            protected=True,
            additional_data={"attempt": 3},
        ),
        make_log(id=11, response={"body": {"error": "x"}}, request={"headers": "raw: yes"}),
        make_log(id=12, response=None, request=None, additional_data=""),
    ]
    text = (csv_header() + encode_csv(logs)).decode()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert list(rows[0]) == list(CSV_COLUMNS)
    first, second, third = rows
    assert first["response_headers"] == '{"Server":"nginx"}'
    assert first["response_body"] == '<h1>"Oops"</h1>\n<p>é</p>'
    assert first["request_payload"] == '{"note":"ok, fine"}'
    assert first["created_at"] == "2024-05-06T07:08:09.123000Z"
    assert first["protected"] == "true"
    assert first["additional_data"] == '{"attempt":3}'
    assert first["response_code"] == "500"
    assert second["response_headers"] == ""
    assert second["response_body"] == '{"error":"x"}'
    assert second["request_headers"] == "raw: yes"
    assert second["request_payload"] == ""
    assert third["response_body"] == third["request_headers"] == third["additional_data"] == ""
    assert third["protected"] == "false"
    assert text.count("\r\n") >= 4  # RFC 4180 line ends
    assert encode_csv([]) == b""


# -- exporting ---------------------------------------------------------------------------------


async def test_jsonl_export_equals_server_and_checkpoint_says_done(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """Every log is written once, in order, and the checkpoint records the finished state."""
    fake.seed(integrations=2, logs_per_integration=60, seed=1)
    out = tmp_path / "logs.jsonl"
    seen: list[ExportStats] = []
    stats = await export_logs(client, out, page_size=25, progress=seen.append)
    assert read_jsonl(out) == [expected_line(r) for r in fake.logs]
    assert stats.records == stats.run_records == 120
    assert stats.pages == 5
    assert stats.done
    assert not stats.resumed
    assert stats.bytes == out.stat().st_size
    # Each page after the first lists the last log of the one before again (ties).
    assert [s.records for s in seen] == [25, 49, 73, 97, 120]
    state = read_checkpoint(out)
    assert state.done
    assert state.records == 120
    assert state.offset == out.stat().st_size
    assert state.query.base_url == fake.base_url
    assert state.query.page_size == 25
    assert state.query.format == "jsonl"
    assert not checkpoint_path(out).with_name(checkpoint_path(out).name + ".tmp").exists()


async def test_csv_export_equals_server(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """The CSV has one header and one row per log, flattened as documented."""
    fake.seed(integrations=3, logs_per_integration=30, seed=2)
    out = tmp_path / "logs.csv"
    await export_logs(client, out, fmt="csv", page_size=40)
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [expected_row(r) for r in fake.logs]


async def test_one_integration_only(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """integration_id= exports that integration's logs only."""
    fake.seed(integrations=3, logs_per_integration=20, seed=3)
    out = tmp_path / "two.jsonl"
    stats = await export_logs(client, out, integration_id=2, page_size=7)
    assert read_jsonl(out) == [expected_line(r) for r in fake.logs if r["integration_id"] == 2]
    assert stats.records == 20


async def test_empty_account_gives_an_empty_finished_file(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """No logs at all: an empty file and a done checkpoint (CSV keeps its header)."""
    out = tmp_path / "none.csv"
    stats = await export_logs(client, out, fmt="csv")
    assert out.read_bytes() == csv_header()
    assert stats.done
    assert stats.records == 0
    assert read_checkpoint(out).done


async def test_fresh_run_replaces_an_old_file(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """Without resume the output starts from scratch, whatever the file held."""
    fake.seed(integrations=1, logs_per_integration=5, seed=4)
    out = tmp_path / "logs.jsonl"
    out.write_bytes(b"old contents that must go\n" * 100)
    await export_logs(client, out)
    assert [line["id"] for line in read_jsonl(out)] == [r["id"] for r in fake.logs]


# -- resuming ----------------------------------------------------------------------------------


async def test_cancelled_run_resumes_exactly_once(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """Cancelling mid-way leaves file and checkpoint in agreement; resume completes exactly once."""
    fake.seed(integrations=2, logs_per_integration=100, seed=5)
    out = tmp_path / "logs.csv"
    job = LogExport(out, base_url=str(client.base_url), fmt="csv", page_size=9)
    job.open()
    pages_seen = 0
    task: asyncio.Task[ExportStats]

    def stop_after_some(stats: ExportStats) -> None:
        nonlocal pages_seen
        pages_seen += 1
        if pages_seen == 5:
            task.cancel()

    task = asyncio.create_task(job.run(client, progress=stop_after_some))
    with pytest.raises(asyncio.CancelledError):
        await task
    job.close()
    state = read_checkpoint(out)
    assert not state.done
    # Five pages at least: the first brings 9 logs, each later one 8 (it lists again the
    # previous page's last log, which the export drops: docs/export.md, ties).
    assert state.records >= 9 + 4 * 8
    assert state.offset == out.stat().st_size
    stats = await export_logs(client, out, fmt="csv", page_size=9, resume=True)
    assert stats.resumed
    assert stats.records == 200
    assert stats.run_records == 200 - state.records
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [expected_row(r) for r in fake.logs]


async def test_resume_truncates_a_partial_tail(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """Bytes after the checkpoint's offset (a page written, then killed) are dropped on resume."""
    fake.seed(integrations=1, logs_per_integration=50, seed=6)
    out = tmp_path / "logs.jsonl"
    job = LogExport(out, base_url=str(client.base_url), page_size=10)
    job.open()
    task: asyncio.Task[ExportStats]

    def stop(stats: ExportStats) -> None:
        if stats.pages == 2:
            task.cancel()

    task = asyncio.create_task(job.run(client, progress=stop))
    with pytest.raises(asyncio.CancelledError):
        await task
    job.close()
    with out.open("ab") as handle:
        handle.write(b'{"id": 999999, "half a line')
    stats = await export_logs(client, out, page_size=10, resume=True)
    assert stats.discarded_bytes == len(b'{"id": 999999, "half a line')
    assert [line["id"] for line in read_jsonl(out)] == [r["id"] for r in fake.logs]


async def test_failed_page_keeps_checkpoint_and_resume_completes(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A 503 mid-way raises ServerError; the pages before it stay; resume finishes the job."""
    fake.seed(integrations=1, logs_per_integration=100, seed=7)
    out = tmp_path / "logs.jsonl"
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, max_retries=0
    ) as client:
        job = LogExport(out, base_url=str(client.base_url), page_size=10)
        job.open()

        def break_server(stats: ExportStats) -> None:
            if stats.pages == 2:
                fake.script("GET", "/integrations/logs", ScriptedResponse(503))

        with pytest.raises(sc.ServerError):
            await job.run(client, progress=break_server)
        job.close()
        saved = read_checkpoint(out)
        # the SDK may read a page or two ahead of the writer before the fault is queued
        assert 20 <= saved.records < 100
        assert saved.offset == out.stat().st_size
        await export_logs(client, out, page_size=10, resume=True)
    assert [line["id"] for line in read_jsonl(out)] == [r["id"] for r in fake.logs]


async def test_resume_of_a_finished_export_sends_nothing(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """A done checkpoint: the run returns at once, already_complete, without a request."""
    fake.seed(integrations=1, logs_per_integration=10, seed=8)
    out = tmp_path / "logs.jsonl"
    await export_logs(client, out)
    before = out.read_bytes()
    fake.clear_requests()
    stats = await export_logs(client, out, resume=True)
    assert stats.already_complete
    assert stats.records == 10
    assert stats.run_records == 0
    assert fake.requests == []
    assert out.read_bytes() == before


async def test_checkpoint_of_a_run_without_pages_starts_over(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """Killed right after the first checkpoint (old bytes still there): resume starts afresh."""
    fake.seed(integrations=1, logs_per_integration=12, seed=9)
    out = tmp_path / "logs.csv"
    job = LogExport(out, base_url=str(client.base_url), fmt="csv")
    out.write_bytes(b"stale,bytes\r\n" * 10)
    state = Checkpoint(
        version=1, query=job.query, cursor=None, offset=0, records=0, pages=0, done=False
    )
    checkpoint_path(out).write_bytes(msgspec.json.encode(state))
    await export_logs(client, out, fmt="csv", resume=True)
    with out.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [expected_row(r) for r in fake.logs]


# -- refusals (before any request) -------------------------------------------------------------


async def _finished_export(client: sc.SendcloudClient, out: Path) -> None:
    await export_logs(client, out, page_size=5, integration_id=1)
    # an unfinished checkpoint, so that a matching resume would go on
    state = read_checkpoint(out)
    state.done = False
    checkpoint_path(out).write_bytes(msgspec.json.encode(state))


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"integration_id": 2}, "integration_id 2 here but 1 in the checkpoint"),
        ({"integration_id": None}, "integration_id all here but 1"),
        ({"fmt": "csv"}, "format csv here but jsonl"),
        ({"page_size": 6}, "page_size 6 here but 5"),
        ({"base_url": "https://panel.sendcloud.sc/api/v3"}, "base_url https://panel"),
    ],
)
async def test_resume_with_another_query_is_refused(
    fake: FakeSendcloud,
    client: sc.SendcloudClient,
    tmp_path: Path,
    changes: dict[str, Any],
    reason: str,
) -> None:
    """A checkpoint for another integration, format, page size or base URL is refused."""
    fake.seed(integrations=2, logs_per_integration=5, seed=10)
    out = tmp_path / "logs.jsonl"
    await _finished_export(client, out)
    kwargs: dict[str, Any] = {
        "base_url": str(client.base_url),
        "fmt": "jsonl",
        "integration_id": 1,
        "page_size": 5,
    }
    kwargs.update(changes)
    job = LogExport(out, resume=True, **kwargs)
    with pytest.raises(ExportInputError, match="for another export") as info:
        job.open()
    assert reason in str(info.value)


def test_resume_without_checkpoint_is_refused(tmp_path: Path) -> None:
    """--resume where data lies that no checkpoint describes is refused; nothing is lost."""
    out = tmp_path / "x.jsonl"
    out.write_bytes(b'{"id": 1}\n')
    job = LogExport(out, base_url="b", resume=True)
    with pytest.raises(ExportInputError, match="no checkpoint"):
        job.open()
    assert out.read_bytes() == b'{"id": 1}\n'


@pytest.mark.parametrize("existing", [None, b""])
def test_resume_with_nothing_written_yet_opens_a_new_export(
    tmp_path: Path, existing: bytes | None
) -> None:
    """--resume with no output (or an empty one) and no checkpoint simply starts."""
    out = tmp_path / "x.jsonl"
    if existing is not None:
        out.write_bytes(existing)
    job = LogExport(out, base_url="b", resume=True)
    job.open()
    job.close()
    assert not job.resume
    assert not job.already_complete


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{not json", "damaged"),
        (b'{"version": 1}', "damaged"),
        (
            b'{"version": 99, "query": {"base_url": "b", "integration_id": null, '
            b'"format": "jsonl", "page_size": null}, "cursor": null, "offset": 0, '
            b'"records": 0, "pages": 0, "done": false}',
            "version 99",
        ),
    ],
)
def test_damaged_checkpoint_is_refused(tmp_path: Path, content: bytes, match: str) -> None:
    """A checkpoint that does not decode, or of another version, is refused."""
    out = tmp_path / "x.jsonl"
    out.write_bytes(b"")
    checkpoint_path(out).write_bytes(content)
    with pytest.raises(ExportInputError, match=match):
        LogExport(out, base_url="b", resume=True).open()


async def test_output_shorter_than_checkpoint_is_refused(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """A file cut below the checkpoint's offset cannot be resumed exactly once."""
    fake.seed(integrations=1, logs_per_integration=5, seed=11)
    out = tmp_path / "logs.jsonl"
    await _finished_export(client, out)
    out.write_bytes(out.read_bytes()[:10])
    with pytest.raises(ExportInputError, match="has 10 bytes"):
        LogExport(
            out, base_url=str(client.base_url), integration_id=1, page_size=5, resume=True
        ).open()
    out.unlink()
    with pytest.raises(ExportInputError, match="does not exist"):
        LogExport(
            out, base_url=str(client.base_url), integration_id=1, page_size=5, resume=True
        ).open()


def test_unwritable_outputs_are_refused(tmp_path: Path) -> None:
    """A missing directory or a directory as the output is refused with a reason."""
    with pytest.raises(ExportInputError, match="does not exist"):
        LogExport(tmp_path / "missing" / "x.jsonl", base_url="b").open()
    with pytest.raises(ExportInputError, match="is a directory"):
        LogExport(tmp_path, base_url="b").open()
    (tmp_path / "file").write_text("")
    with pytest.raises(ExportInputError, match="cannot write"):
        LogExport(tmp_path / "file" / "x.jsonl", base_url="b").open()


def test_bad_arguments_are_refused() -> None:
    """Unknown format, page size out of 1..100, integration below 1."""
    with pytest.raises(ExportInputError, match="format"):
        LogExport("x", base_url="b", fmt="xml")
    with pytest.raises(ExportInputError, match="page_size"):
        LogExport("x", base_url="b", page_size=101)
    with pytest.raises(ExportInputError, match="integration"):
        LogExport("x", base_url="b", integration_id=0)


def test_second_writer_is_locked_out(tmp_path: Path) -> None:
    """Two jobs on one file: the second is refused while the first holds it."""
    out = tmp_path / "x.jsonl"
    first = LogExport(out, base_url="b")
    first.open()
    try:
        with pytest.raises(ExportInputError, match="another export"):
            LogExport(out, base_url="b").open()
    finally:
        first.close()
    second = LogExport(out, base_url="b")
    second.open()
    second.close()


async def test_next_link_without_cursor_is_an_error(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """A next link the export could not checkpoint stops it with ExportError."""
    fake.seed(integrations=1, logs_per_integration=3, seed=12)
    body = {"data": fake.logs[:1]}
    link = f'<{fake.base_url}/integrations/logs?page_size=1&offset=1>; rel="next"'
    fake.script(
        "GET", "/integrations/logs", ScriptedResponse(200, body=body, headers={"Link": link})
    )
    with pytest.raises(ExportError, match="no cursor"):
        await export_logs(client, tmp_path / "x.jsonl")
