"""``logs report`` end to end: FakeSendcloud seeded with known failure patterns, read through
the API, through exports of both formats and standard input; the table, the page, the JSON;
bad inputs; memory that does not grow with the logs; the demo's report."""

from __future__ import annotations

import asyncio
import io
import random
import re
import resource
import signal
import tracemalloc
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from sendcloud_async import SendcloudClient
from sendcloud_async._cli import main as cli_main
from sendcloud_async._cli.exits import EXIT_FAILURE, EXIT_OK, EXIT_USAGE
from sendcloud_async._records import csv_header
from sendcloud_async._report import Report, ReportInputError, from_json, read_account, read_export
from sendcloud_async._report._readers import _NEEDED
from sendcloud_async.testing import FailurePatterns, FakeSendcloud
from tests._pty import on_pty
from tests.functional.test_cli import (
    NOWHERE,
    SCRIPT,
    Result,
    assert_one_error_line,
    base_env,
    fake_env,
    run,
    start,
)

START = datetime(2024, 3, 1, tzinfo=UTC)
#: The logs of each integration of ``scenario()``.
EXPECTED = {1: 360, 2: 360, 3: 240, 4: 216, 5: 1_200, 6: 360}
TIMEOUT_MESSAGE = "HTTPSConnectionPool(host=<host>, port=<n>): Read timed out. (read timeout=<n>)"


def scenario() -> FailurePatterns:
    """30 days: #3 fails from day 10, #4 recovers on day 18, #5's timeouts dominate."""
    patterns = FailurePatterns(START, days=30, seed=7)
    patterns.steady(1, per_day=12)
    patterns.steady(2, per_day=12)
    patterns.failing_from(3, day=10, per_day=12)
    patterns.recovering(4, until_day=18, per_day=12)
    patterns.steady(5, per_day=40, kind="timeout")
    patterns.steady(6, per_day=12)
    return patterns


@pytest.fixture
async def seeded(fake: FakeSendcloud) -> list[dict[str, Any]]:
    """The fake with the scenario's integrations and logs; the logs as the fake holds them."""
    assert scenario().apply(fake) == sum(EXPECTED.values())
    return [dict(record) for record in fake.logs]


def check(report: Report, records: list[dict[str, Any]]) -> None:
    """The report's numbers and findings are the seeded patterns'."""
    assert report.logs == sum(EXPECTED.values()) == len(records)
    assert {i.integration_id: i.logs for i in report.integrations} == EXPECTED
    times: dict[int, list[datetime]] = {}
    for record in records:
        times.setdefault(record["integration_id"], []).append(
            datetime.fromisoformat(record["created_at"])
        )
    for item in report.integrations:
        assert item.integration_id is not None
        assert item.first_seen == min(times[item.integration_id])
        assert item.last_seen == max(times[item.integration_id])
    status = {i.integration_id: i.status for i in report.integrations}
    assert status == {
        1: "ongoing",
        2: "ongoing",
        3: "started",
        4: "stopped",
        5: "ongoing",
        6: "ongoing",
    }
    assert [i.integration_id for i in report.integrations if i.unusual] == [5]
    trends = {i.integration_id: i.trend for i in report.integrations}
    assert (trends[3].direction, trends[3].first_third, trends[3].change) == ("rising", 0, None)
    assert (trends[4].direction, trends[4].last_third, trends[4].change) == ("falling", 0, -1.0)
    assert {trends[n].direction for n in (1, 2, 5, 6)} == {"steady"}
    assert [(f.kind, f.integration_id) for f in report.findings] == [
        ("started_failing", 3),
        ("stopped_failing", 4),
        ("unusual", 5),
    ]
    started, stopped, _ = report.findings
    assert started.at == min(times[3])
    assert started.at is not None
    assert started.at.date().isoformat() == "2024-03-11"  # day 10
    assert started.quiet_seconds is not None
    assert started.quiet_seconds > 9 * 86_400
    assert stopped.at == max(times[4])
    assert stopped.at is not None
    assert stopped.at.date().isoformat() == "2024-03-18"  # the last day before day 18
    kinds = Counter(record["exception_type"] or "" for record in records)
    assert [(r.value, r.count) for r in report.exception_types] == sorted(
        kinds.items(), key=lambda kv: (-kv[1], kv[0])
    )
    assert report.exception_types[0].value == "requests.exceptions.ReadTimeout"  # dominant
    assert report.exception_types[0].share > 0.5
    codes = Counter("" if r["response_code"] is None else str(r["response_code"]) for r in records)
    assert {r.value: r.count for r in report.response_codes} == dict(codes.most_common(10))
    assert (report.messages[0].value, report.messages[0].count) == (
        TIMEOUT_MESSAGE,
        kinds["requests.exceptions.ReadTimeout"],
    )
    assert sum(report.series) == report.logs
    assert [sum(i.series) for i in report.integrations] == [i.logs for i in report.integrations]


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    """A --json report without what names where it came from and when."""
    data = dict(data)
    del data["source"], data["generated_at"]
    data["integrations"] = [{**i, "name": None} for i in data["integrations"]]
    data["findings"] = [
        {**f, "text": re.sub(r"(#\d+) Shop \d+", r"\1", f["text"])} for f in data["findings"]
    ]
    return data


# -- the numbers and findings ----------------------------------------------------------------------


async def test_the_report_of_the_account_finds_the_seeded_patterns(
    seeded: list[dict[str, Any]], client: SendcloudClient
) -> None:
    """Read through the API: counts, first and last seen, started and stopped failing, the
    dominant exception type, trends and the unusual integration, with the shop names."""
    report = await read_account(client, source="the account", page_size=100)
    check(report, seeded)
    assert {i.integration_id: i.name for i in report.integrations}[3] == "Shop 3"
    assert report.findings[0].text.startswith("#3 Shop 3 started failing at 2024-03-11 ")


async def test_every_way_in_gives_the_same_report(
    seeded: list[dict[str, Any]], fake: FakeSendcloud, tmp_path: Path
) -> None:
    """The account, a JSON Lines export, a CSV export and standard input: one report."""
    env = fake_env(fake)
    jsonl, csv = tmp_path / "logs.jsonl", tmp_path / "logs.csv"
    for out in (jsonl, csv):
        exported = await run("logs", "export", "--out", str(out), env=env)
        assert exported.code == 0, exported
    reports = {}
    for name, argv in {
        "account": ("logs", "report", "--json"),
        "jsonl": ("logs", "report", str(jsonl), "--json"),
        "csv": ("logs", "report", str(csv), "--json", "--format", "csv"),
        "url": ("logs", "report", csv.as_uri(), "--json"),
    }.items():
        result = await run(*argv, env=env)
        assert result.code == 0, result
        reports[name] = msgspec.json.decode(result.out)
        check(from_json(result.out), seeded)
    with jsonl.open("rb") as stdin:
        proc = await asyncio.create_subprocess_exec(
            str(SCRIPT), "logs", "report", "-", "--json", env=env, stdin=stdin,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        piped, problem = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, problem
    reports["stdin"] = msgspec.json.decode(piped)
    first = comparable(reports["account"])
    for name, data in reports.items():
        assert comparable(data) == first, name
    assert reports["account"]["source"] == f"the account at {fake.base_url}"
    assert reports["stdin"]["source"] == "standard input"


# -- what the command prints -----------------------------------------------------------------------


async def test_the_table_fits_80_columns_without_colour(
    seeded: list[dict[str, Any]], fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Into a pipe: no colour, every line at most 80 columns; the summary is on stderr."""
    page = tmp_path / "pages" / "report.html"
    result = await run("logs", "report", "--html", str(page), env=fake_env(fake))
    assert result.code == EXIT_OK, result
    assert "\x1b" not in result.out
    lines = result.out.splitlines()
    assert max(len(line) for line in lines) <= 80
    assert lines[0] == "What is failing: 2,736 exception logs of 6 integrations"
    assert any(line.startswith("#5 Shop 5 ") and "43.9%" in line for line in lines)
    assert any("started failing" in line for line in lines)
    assert "  • #3 Shop 3 started failing at 2024-03-11" in result.out
    assert len(result.err_lines) == 1
    assert f"wrote the page {page} (" in result.err
    html = page.read_text(encoding="utf-8")
    assert "#3 Shop 3 started failing at 2024-03-11" in html
    assert "<svg" in html


async def _on_a_terminal(argv: list[str], env: dict[str, str]) -> str:
    """stdout of the command with stdout on a pseudo-terminal."""
    code, chunks, _ = await on_pty(*argv, env=env, stream="stdout", columns=None)
    assert code == 0
    return b"".join(chunk for _, chunk in chunks).decode()


async def test_colour_on_a_terminal_unless_no_color(
    seeded: list[dict[str, Any]], fake: FakeSendcloud
) -> None:
    """On a terminal the headings are bold; NO_COLOR turns every colour off."""
    coloured = await _on_a_terminal(["logs", "report"], fake_env(fake, TERM="xterm"))
    assert "\x1b[1mINTEGRATION" in coloured
    plain = await _on_a_terminal(["logs", "report"], fake_env(fake, TERM="xterm", NO_COLOR="1"))
    assert "\x1b[" not in plain
    assert "INTEGRATION" in plain
    visible = re.sub(r"\x1b\[[0-9;]*m", "", coloured).replace("\r\n", "\n")
    assert max(len(line) for line in visible.splitlines()) <= 80


async def test_the_embedded_fake_needs_no_credentials() -> None:
    """--fake: the demo's data, without credentials or network."""
    result = await run("logs", "report", "--fake", "--json", "--top", "3", env=base_env())
    assert result.code == 0, result
    data = msgspec.json.decode(result.out)
    assert data["logs"] == 30_000
    assert [i["logs"] for i in data["integrations"]] == [7_500] * 4
    assert len(data["exception_types"]) == 3
    assert data["source"] == "the embedded FakeSendcloud (--fake)"


async def test_wrong_credentials_fail_with_one_line(
    seeded: list[dict[str, Any]], fake: FakeSendcloud
) -> None:
    """Sendcloud's 401 is one error line and exit status 1; no secret is shown."""
    env = fake_env(fake)
    env["SENDCLOUD_SECRET_KEY"] = "a-wrong-secret"
    result = await run("logs", "report", env=env)
    assert_one_error_line(result, EXIT_FAILURE, "401")
    assert result.out == ""


# -- bad inputs ------------------------------------------------------------------------------------


def in_process(*argv: str, env: dict[str, str]) -> Result:
    """Run the command line's ``main()`` in this process (for runs that send no request)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    code = cli_main(list(argv), env=env, stdout=stdout, stderr=stderr)
    return Result(code, stdout.getvalue(), stderr.getvalue())


def _write(path: Path, data: bytes) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return str(path)


BAD = [
    ("missing", lambda d: [str(d / "nowhere.jsonl")], "nowhere.jsonl: no such file"),
    (
        "malformed-line",
        lambda d: [_write(d / "bad.jsonl", b'{"base_url": "a"}\n{"base_url": "a"\n')],
        "bad.jsonl, line 2: not JSON",
    ),
    (
        "unknown-format",
        lambda d: [_write(d / "notes.txt", b"dear diary\n")],
        "cannot tell the format of",
    ),
    (
        "csv-wrong-header",
        lambda d: [_write(d / "sheet.csv", b"order,status\r\n12,late\r\n")],
        "sheet.csv is not a CSV export of logs: its header has no integration_id",
    ),
    (
        "parquet",
        lambda d: [_write(d / "logs.parquet", b"PAR1")],
        "a Parquet file; logs report reads JSON Lines and CSV exports",
    ),
    ("s3", lambda d: ["s3://bucket/logs"], "s3:// exports are directories of Parquet parts"),
    (
        "fake-and-file",
        lambda d: [_write(d / "a.jsonl", b""), "--fake"],
        "give FILE_OR_URL or --fake, not both",
    ),
    (
        "page-size-and-file",
        lambda d: [_write(d / "a.jsonl", b""), "--page-size", "10"],
        "--page-size is for reading the account",
    ),
    ("format-without-file", lambda d: ["--format", "csv"], "--format is the format of FILE_OR_URL"),
    (
        "html-is-a-directory",
        lambda d: [_write(d / "a.jsonl", b""), "--html", str(d)],
        "it is a directory",
    ),
    (
        "html-is-the-input",
        lambda d: [_write(d / "a.jsonl", b""), "--html", str(d / "a.jsonl")],
        "is the export being read",
    ),
    ("bad-format", lambda d: ["x.jsonl", "--format", "xml"], "invalid choice: 'xml'"),
]


@pytest.mark.parametrize(("name", "argv", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_input_is_one_line_and_status_2(
    tmp_path: Path, name: str, argv: Any, needle: str
) -> None:
    """Each is one line, exit 2, before any request (the base URL listens nowhere: a request
    would fail with 1), and no page is written."""
    env = base_env(SENDCLOUD_BASE_URL=NOWHERE, SENDCLOUD_PUBLIC_KEY="fake-public-key")
    env["SENDCLOUD_SECRET_KEY"] = "fake-secret-key"
    result = in_process("logs", "report", *argv(tmp_path), env=env)
    assert_one_error_line(result, EXIT_USAGE, needle)
    assert result.out == ""
    assert not list(tmp_path.rglob("*.html"))


def test_a_page_that_cannot_be_written_fails_with_one_line(tmp_path: Path) -> None:
    """The page's directory cannot be made (a file is in the way): status 2, found before the
    export is read."""
    export = tmp_path / "logs.jsonl"
    export.write_bytes(b"")
    (tmp_path / "taken").write_bytes(b"")
    result = in_process(
        "logs", "report", str(export), "--html", str(tmp_path / "taken" / "r.html"), env=base_env()
    )
    assert_one_error_line(result, EXIT_USAGE, "taken/r.html: Not a directory")


def _small_disk() -> None:
    """In the child: files may not grow past 64 KiB (a write past it fails: EFBIG)."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (65_536, 65_536))


async def test_a_failed_write_of_the_page_is_one_line_and_status_1(
    seeded: list[dict[str, Any]], fake: FakeSendcloud, tmp_path: Path
) -> None:
    """The page cannot be written (the disk is full): one line naming it, exit 1, and no
    half page or temporary file left behind."""
    page = tmp_path / "out" / "report.html"
    proc = await start(
        "logs", "report", "--html", str(page), env=fake_env(fake), preexec_fn=_small_disk
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    result = Result(proc.returncode or 0, out.decode(), err.decode())
    assert_one_error_line(result, EXIT_FAILURE, f"cannot write {page} (writing the report)")
    assert list(page.parent.iterdir()) == []


# -- memory ----------------------------------------------------------------------------------------

_WORDS = [f"w{n}" for n in range(3_000)]


def _export(path: Path, count: int, seed: int) -> None:
    """An export of ``count`` logs: 60 integrations, 5,000 exception types and thousands of
    messages (more than any top-k keeps), one every 13 s (the span grows with the count)."""
    rng = random.Random(seed)
    encoder = msgspec.json.Encoder()
    with path.open("wb") as stream:
        batch = []
        for n in range(count):
            ident = 1 + rng.randrange(60)
            batch.append(
                {
                    "id": n + 1,
                    "integration_id": ident,
                    "base_url": f"https://shop-{ident}.example.com",
                    "full_url": f"https://shop-{ident}.example.com/orders/{rng.randrange(10**6)}",
                    "method": "POST",
                    "response_code": rng.choice((None, 404, 429, 500)),
                    "created_at": (START + timedelta(seconds=13 * n)).isoformat(),
                    "exception_type": f"app.errors.E{rng.randrange(5_000)}",
                    "exception": f"order {rng.randrange(10**6)} {rng.choice(_WORDS)} "
                    f"{rng.choice(_WORDS)} failed",
                }
            )
            if len(batch) == 5_000:
                stream.write(encoder.encode_lines(batch))
                batch = []
        stream.write(encoder.encode_lines(batch))


def _peak(path: Path) -> tuple[int, Report]:
    tracemalloc.start()
    try:
        report = read_export(str(path))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak, report


@pytest.mark.timeout(300)
def test_memory_does_not_grow_with_the_logs(tmp_path: Path) -> None:
    """The peak of Python's allocations over 200,000 logs is that of 50,000 (within a
    quarter): the report streams, whatever the number of logs."""
    small, large = tmp_path / "small.jsonl", tmp_path / "large.jsonl"
    _export(small, 50_000, seed=1)
    _export(large, 200_000, seed=2)
    small_peak, small_report = _peak(small)
    large_peak, large_report = _peak(large)
    assert (small_report.logs, large_report.logs) == (50_000, 200_000)
    assert not large_report.exact  # the sketches were full: the bound held under pressure
    assert large_report.timeline is not None
    assert large_report.timeline.count <= 400
    assert large_peak < small_peak * 1.25, (small_peak, large_peak)
    assert large_peak < 64 * 1024 * 1024


# -- the demo --------------------------------------------------------------------------------------


async def test_the_demo_ends_with_the_report(tmp_path: Path) -> None:
    """The demo prints the report, writes its page to the cache directory (its own files are
    removed), and ends with the page's path."""
    scratch, cache = tmp_path / "tmp", tmp_path / "cache"
    scratch.mkdir()
    result = await run("demo", env=base_env(TMPDIR=str(scratch), XDG_CACHE_HOME=str(cache)))
    assert result.code == 0, result
    page = cache / "sendcloud-async" / "demo-report.html"
    lines = result.out.splitlines()
    assert lines[-1].startswith(f"the report's page: {page} (")
    assert lines[-1].endswith("open it in a browser")
    assert "What is failing: 30,000 exception logs of 4 integrations" in result.out
    assert page.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert list(scratch.iterdir()) == []


async def test_the_demo_keeps_the_page_beside_a_kept_export(tmp_path: Path) -> None:
    """--keep DIR: the page is DIR/report.html, and the printed report command writes it."""
    kept = tmp_path / "kept"
    result = await run("demo", "--keep", str(kept), env=base_env())
    assert result.code == 0, result
    assert (kept / "report.html").exists()
    assert f"$ sendcloud-async logs report {kept / 'logs.jsonl'} --html {kept / 'report.html'}" in (
        result.out
    )


def test_the_scenario_counts_and_refusals() -> None:
    """FailurePatterns counts what it makes and refuses what makes no sense."""
    patterns = scenario()
    assert patterns.count() == sum(EXPECTED.values())
    assert patterns.count(3, day=9) == 0
    assert patterns.count(3, day=10) == 12
    assert patterns.count(4, day=17) == 12
    assert patterns.count(4, day=18) == 0
    records = patterns.records()
    assert [r["id"] for r in records] == list(range(1, len(records) + 1))
    assert len({r["created_at"] for r in records}) == len(records)
    with pytest.raises(ValueError, match="unknown kind"):
        patterns.steady(9, per_day=1, kind="meteor")
    with pytest.raises(ValueError, match="day must be an int from 0 to 30"):
        patterns.failing_from(9, day=31, per_day=1)
    with pytest.raises(ValueError, match="aware"):
        FailurePatterns(datetime(2024, 1, 1))
    with pytest.raises(ValueError, match="integration_id"):
        patterns.steady(0, per_day=1)


def test_csv_header_is_what_the_report_reads() -> None:
    """The CSV reader's columns are the export's (a guard against the two drifting apart)."""
    header = csv_header().decode().strip().split(",")
    assert set(_NEEDED) <= set(header)


#: URLs holding a secret, the one-line refusal each gets, and the secret (never shown).
SECRET_URLS = [
    (
        "s3://AKIAEXAMPLE:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY@bucket/exports",
        "s3://bucket/exports: s3:// exports are directories of Parquet parts",
        "wJalrXUtnFEMI",
    ),
    (
        "https://user:HttpPassw0rd-xyz@example.com/logs.jsonl",
        "https://example.com/logs.jsonl: logs report reads an export file (a path or a "
        "file:// URL), not a https:// URL",
        "HttpPassw0rd-xyz",
    ),
    (
        "az://container/exports?sv=2024&sig=SASsignatureSECRET%3D",
        "az://container/exports: az:// exports are directories of Parquet parts",
        "SASsignatureSECRET",
    ),
    (
        "file://user:pw-secret-1@remotehost/x.jsonl",
        "file://remotehost/x.jsonl: a file:// URL must name a local file (no host, no credentials)",
        "pw-secret-1",
    ),
    (
        "file:///tmp/x.jsonl?sig=FileSigSECRET",
        "file:///tmp/x.jsonl: a file:// URL takes no query or fragment",
        "FileSigSECRET",
    ),
    (
        "https://u:Secr3t-pw@[::1/logs.jsonl",
        "https://**********: not a valid URL",
        "Secr3t-pw",
    ),
]


@pytest.mark.parametrize(("url", "refusal", "secret"), SECRET_URLS)
def test_a_url_is_refused_without_its_secret(
    tmp_path: Path, url: str, refusal: str, secret: str
) -> None:
    """The refusal shows the URL through the storage-URL rule: nothing before an ``@``, no
    query; not in the text line, the JSON line, nor the library's exception."""
    env = base_env(SENDCLOUD_BASE_URL=NOWHERE, SENDCLOUD_PUBLIC_KEY="fake-public-key")
    env["SENDCLOUD_SECRET_KEY"] = "fake-secret-key"
    text = in_process("logs", "report", url, env=env)
    assert_one_error_line(text, EXIT_USAGE, refusal)
    as_json = in_process("--log-format", "json", "logs", "report", url, env=env)
    assert as_json.code == EXIT_USAGE
    lines = [msgspec.json.decode(line) for line in as_json.err.splitlines() if line.strip()]
    assert [line["message"] for line in lines] == [
        text.err_lines[0].removeprefix("sendcloud-async: error: ")
    ]
    with pytest.raises(ReportInputError) as caught:
        read_export(url)
    assert str(caught.value) == text.err_lines[0].removeprefix("sendcloud-async: error: ")
    error = caught.value
    seen = [text.out, text.err, as_json.out, as_json.err, str(error), repr(error)]
    seen += [repr(error.args), repr(error.__cause__), repr(error.__context__)]
    for shown in seen:
        assert secret not in shown
    assert not list(tmp_path.iterdir())


#: Messages holding a token with fewer than two digits (one per shop: the token differs),
#: and the masked message all of a kind is counted as.
TOKEN_MESSAGES = [
    (
        "Authorization failed: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJzaG9wIn0.{token}",
        "Authorization failed: Bearer <secret>",
    ),
    ("Invalid API key shpat_{token}", "Invalid API key <secret>"),
    ("Unauthorized: Basic {token}", "Unauthorized: Basic <secret>"),
    ("Token sk_live_{token} was revoked", "Token <secret> was revoked"),
    (
        "Request headers: {{'X-Shopify-Access-Token': 'shpat{token}'}}",
        "Request headers: {'X-Shopify-Access-Token': '<secret>'}",
    ),
    ("cannot connect to ftp password={token}!", "cannot connect to ftp password=<secret>"),
    ("Shop key {token} was refused", "Shop key <id> was refused"),
]
#: One token per shop: letters only but for the second (one digit).
SHOP_TOKENS = ["aBcDeFgHiJkLmNoPqRsTuVwXyZ", "AbCdEfGhIjKlMnOp9QrStUv", "ZyXwVuTsRqPoNmLkJiHg"]


def test_the_report_holds_no_token_of_a_log(tmp_path: Path) -> None:
    """Tokens without two digits, and values after a credential word, are masked in the JSON,
    the page and the table (messages and endpoints), and each kind is still one group."""
    records = []
    for kind, (template, _) in enumerate(TOKEN_MESSAGES):
        for shop, token in enumerate(SHOP_TOKENS):
            records.append(
                {
                    "base_url": "https://shop.example.com",
                    "id": kind * 10 + shop,
                    "integration_id": shop + 1,
                    "full_url": f"https://shop.example.com/api/shops/{token}/orders.json",
                    "method": "GET",
                    "response_code": 401,
                    "response": None,
                    "request": None,
                    "created_at": f"2024-03-01T00:0{shop}:0{kind}+00:00",
                    "exception_type": "requests.exceptions.HTTPError",
                    "exception": template.format(token=token),
                    "protected": False,
                    "additional_data": "",
                }
            )
    export = tmp_path / "logs.jsonl"
    export.write_bytes(b"".join(msgspec.json.encode(r) + b"\n" for r in records))
    env = base_env(SENDCLOUD_BASE_URL=NOWHERE, COLUMNS="250")
    as_json = in_process("logs", "report", str(export), "--json", env=env)
    assert as_json.code == EXIT_OK, as_json.err
    page = tmp_path / "report.html"
    as_page = in_process("logs", "report", str(export), "--html", str(page), env=env)
    assert as_page.code == EXIT_OK, as_page.err
    table = in_process("logs", "report", str(export), env=env)
    assert table.code == EXIT_OK, table.err
    data = msgspec.json.decode(as_json.out)
    assert {m["value"]: m["count"] for m in data["messages"]} == {
        masked: len(SHOP_TOKENS) for _, masked in TOKEN_MESSAGES
    }
    assert [e["value"] for e in data["endpoints"]] == ["GET /api/shops/<id>/orders.json"]
    written = [as_json.out, as_json.err, as_page.out, as_page.err, table.out, table.err]
    written.append(page.read_text())
    for shown in written:
        for token in SHOP_TOKENS:
            assert token[:12] not in shown
        assert "eyJhbGciOiJIUzI1NiJ9" not in shown
