"""Reading exports for a report: the export's own JSON Lines and CSV, and every bad input."""

from __future__ import annotations

import gzip
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from sendcloud_async import IntegrationLog, LogResponse
from sendcloud_async._records import csv_header, encode_csv, encode_jsonl
from sendcloud_async._report import READERS, ReportInputError, open_source, read_export, to_json
from sendcloud_async._report._json import from_json

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


def logs(n: int = 50) -> list[IntegrationLog]:
    """Logs as the SDK decodes them (so as the export writes them)."""
    return [
        IntegrationLog(
            id=i + 1,
            integration_id=1 + i % 3,
            base_url="https://shop.example.com",
            full_url=f"https://shop.example.com/api/orders/{1000 + i}",
            method="POST",
            response_code=(404, 500, None)[i % 3],
            created_at=T0 + timedelta(minutes=7 * i),
            exception_type=("requests.exceptions.HTTPError", None)[i % 2],
            exception=f"404 Client Error: Not Found for url: https://shop.example.com/o/{i}\nmore",
            additional_data={"order": str(i)} if i % 5 == 0 else "",
        )
        for i in range(n)
    ]


def shape(spec: str, **kwargs: object) -> dict[str, object]:
    """A report as JSON, without what names its source and its time."""
    data = msgspec.json.decode(to_json(read_export(spec, **kwargs)))  # type: ignore[arg-type]
    del data["source"], data["generated_at"]
    return data  # type: ignore[no-any-return]


def test_jsonl_and_csv_exports_give_the_same_report(tmp_path: Path) -> None:
    """The export's two formats, read back, give one report (also via a file:// URL)."""
    items = logs()
    jsonl = tmp_path / "logs.jsonl"
    jsonl.write_bytes(encode_jsonl(items[:20]) + encode_jsonl(items[20:]))
    csv = tmp_path / "logs.csv"
    csv.write_bytes(csv_header() + encode_csv(items))
    report = read_export(str(jsonl))
    assert report.logs == 50
    assert report.source == str(jsonl)
    assert shape(str(jsonl)) == shape(str(csv)) == shape(jsonl.as_uri())
    assert (
        report.messages[0].value == "404 Client Error: Not Found for url: https://<host>/o/<n> more"
    )


def test_the_format_comes_from_the_content_when_the_name_says_nothing(tmp_path: Path) -> None:
    """A file without a known extension is recognised by its first bytes; --format forces."""
    items = logs(10)
    plain = tmp_path / "export.txt"
    plain.write_bytes(csv_header() + encode_csv(items))
    assert open_source(str(plain))[1] is READERS["csv"]
    plain.write_bytes(encode_jsonl(items))
    assert open_source(str(plain))[1] is READERS["jsonl"]
    assert open_source(str(plain), "jsonl")[1] is READERS["jsonl"]
    assert read_export(str(plain)).logs == 10


def test_standard_input(tmp_path: Path) -> None:
    """``-`` reads standard input (a pipe from ``logs export --out -``), sniffing the format."""
    data = csv_header() + encode_csv(logs(12))
    report = read_export("-", stdin=io.BytesIO(data))
    assert (report.logs, report.source) == (12, "standard input")
    assert read_export("-", stdin=io.BytesIO(encode_jsonl(logs(7)))).logs == 7


def test_blank_lines_extra_columns_and_an_empty_export(tmp_path: Path) -> None:
    """Blank lines are skipped; CSV columns may be reordered or added; no logs is a report."""
    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(b"\n" + encode_jsonl(logs(3)) + b"\n   \n")
    assert read_export(str(jsonl)).logs == 3
    csv = tmp_path / "b.csv"
    csv.write_text(
        "note,created_at,integration_id,base_url,full_url,method,response_code,exception_type,"
        "exception\r\nx,2024-03-01T00:00:00Z,4,https://a.example,,GET,,,boom\r\n",
        encoding="utf-8",
    )
    report = read_export(str(csv))
    assert (report.logs, report.integrations[0].integration_id) == (1, 4)
    empty = tmp_path / "c.jsonl"
    empty.write_bytes(b"")
    assert read_export(str(empty)).logs == 0
    header_only = tmp_path / "d.csv"
    header_only.write_bytes(csv_header())
    assert read_export(str(header_only)).logs == 0


def test_a_large_csv_field_is_read(tmp_path: Path) -> None:
    """A response body over csv's default field limit (128 KiB) does not stop the report."""
    item = logs(1)[0]
    item.response = LogResponse(body="x" * 300_000)
    csv = tmp_path / "big.csv"
    csv.write_bytes(csv_header() + encode_csv([item]))
    assert read_export(str(csv)).logs == 1


def test_the_report_json_round_trips(tmp_path: Path) -> None:
    """--json decodes back into the same Report."""
    path = tmp_path / "logs.jsonl"
    path.write_bytes(encode_jsonl(logs()))
    report = read_export(str(path))
    assert from_json(to_json(report)) == report


BAD = [
    ("missing.jsonl", None, None, "missing.jsonl: no such file"),
    (
        "bad.jsonl",
        b'{"base_url": "x"}\n{"base_url": "y", "integration_id": "seven"}\n',
        None,
        "bad.jsonl, line 2: not an exception log: Expected `int | null`, got `str`",
    ),
    (
        "bad.jsonl",
        b'{"base_url": "x"}\n\n{"base_url": "y"\n',
        None,
        "bad.jsonl, line 3: not JSON (Input data was truncated)",
    ),
    ("bad.jsonl", b'{"base_url": "x"}\n[1, 2]\n', None, "line 2: not an exception log"),
    ("bad.jsonl", b'{"no": "base_url"}\n', None, "missing required field `base_url`"),
    ("notes.txt", b"hello world\n", None, "cannot tell the format of {dir}/notes.txt"),
    (
        "wrong.csv",
        b"id,name\r\n1,x\r\n",
        None,
        "wrong.csv is not a CSV export of logs: its header has no integration_id, base_url",
    ),
    (
        "cols.csv",
        csv_header() + b"1,2,3\r\n",
        None,
        "cols.csv, line 2: 3 fields where the header has 15",
    ),
    (
        "num.csv",
        b"integration_id,base_url,full_url,method,response_code,created_at,exception_type,"
        b"exception\r\nseven,x,,,,,,\r\n",
        None,
        "num.csv, line 2: integration_id is not an integer",
    ),
    (
        "time.csv",
        b"integration_id,base_url,full_url,method,response_code,created_at,exception_type,"
        b"exception\r\n7,x,,,,yesterday,,\r\n",
        None,
        "created_at is not an ISO 8601 time",
    ),
    ("latin.csv", csv_header() + b"1,2,\xff\r\n", None, "latin.csv, byte"),
    (
        "logs.parquet",
        b"PAR1....",
        None,
        "logs.parquet: a Parquet file; logs report reads JSON Lines",
    ),
    ("logs.bin", b"PAR1....", None, "logs.bin: a Parquet file"),
    ("logs.jsonl.gz", gzip.compress(b"{}\n", mtime=0), None, "logs.jsonl.gz is gzip-compressed"),
    ("logs.jsonl", b"{}\n", "parquet", "--format parquet; logs report reads JSON Lines and CSV"),
    ("logs.jsonl", b"{}\n", "xml", "unknown format 'xml' (known: jsonl, csv)"),
]


@pytest.mark.parametrize(("name", "content", "fmt", "needle"), BAD)
def test_bad_inputs_are_one_clear_line(
    tmp_path: Path, name: str, content: bytes | None, fmt: str | None, needle: str
) -> None:
    """Each bad input is a ReportInputError of one line naming the file (and the line)."""
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ReportInputError) as caught:
        read_export(str(path), fmt=fmt)
    text = str(caught.value)
    assert "\n" not in text
    assert needle.format(dir=tmp_path) in text


@pytest.mark.parametrize(
    ("spec", "needle"),
    [
        ("s3://bucket/exports", "s3:// exports are directories of Parquet parts"),
        ("gs://bucket/x", "gs:// exports are directories of Parquet parts"),
        ("https://example.com/logs.jsonl", "not a https:// URL"),
        ("file://elsewhere/logs.jsonl", "a file:// URL must name a local file"),
    ],
)
def test_urls_that_are_not_local_files(spec: str, needle: str) -> None:
    """Only local paths and file:// URLs are read; Parquet directories are refused, saying so."""
    with pytest.raises(ReportInputError) as caught:
        open_source(spec)
    assert needle in str(caught.value)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    """A directory (where a Parquet export would be) is refused with the reason."""
    with pytest.raises(ReportInputError, match="a directory"):
        open_source(str(tmp_path))


def test_a_path_that_cannot_be_read(tmp_path: Path) -> None:
    """A path through a file (not a directory) names the path and the reason."""
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(ReportInputError, match=r"cannot read .*file/logs\.jsonl: Not a directory"):
        read_export(str(tmp_path / "file" / "logs.jsonl"))
