"""``--metrics HOST:PORT``: a running command's Prometheus page, /healthz and /readyz.

The command runs as a real process (``logs watch --fake``) and is scraped over a
real socket; the page is read with Prometheus' own parser. A bad address is a
usage error (exit 2); a port already taken ends the command with a one-line error
(exit 1, as for ``fake serve``); in both cases before any request is sent.
"""

from __future__ import annotations

import asyncio
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from sendcloud_async import events
from sendcloud_async._cli import main
from sendcloud_async._cli.metrics import metrics_address
from sendcloud_async._cli.metrics_server import Readiness, Registry

SCRIPT = Path(sys.executable).parent / "sendcloud-async"
_BOUND = re.compile(r"metrics on http://127\.0\.0\.1:(\d+)/metrics")


@asynccontextmanager
async def running(*args: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, int]]:
    """The command, started; yields it and the port its metrics page is on (then stops it)."""
    proc = await asyncio.create_subprocess_exec(
        str(SCRIPT), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    assert proc.stderr is not None
    port = None
    seen: list[str] = []
    try:
        async with asyncio.timeout(30):
            while port is None:
                line = (await proc.stderr.readline()).decode()
                assert line, f"the command ended before serving its metrics: {seen}"
                seen.append(line)
                found = _BOUND.search(line)
                if found:
                    port = int(found.group(1))
        yield proc, port
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), 30)


async def get(session: aiohttp.ClientSession, url: str) -> tuple[int, str, str]:
    async with session.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


async def test_a_running_watch_serves_metrics_health_and_readiness(tmp_path: Path) -> None:
    """Scraped while it runs: Prometheus text that parses, alive, ready once caught up."""
    out = tmp_path / "watch.jsonl"
    args = ("logs", "watch", "--fake", "--out", str(out), "--interval", "0.5")
    async with running(*args, "--metrics", "127.0.0.1:0") as (proc, port):
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            status, _, text = await get(session, f"{base}/healthz")
            assert (status, text) == (200, "ok\n")
            async with asyncio.timeout(20):
                while (await get(session, f"{base}/readyz"))[0] != 200:  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
                families: dict[str, object] = {}
                while "sendcloud_watch_logs" not in families:
                    status, content_type, page = await get(session, f"{base}/metrics")
                    families = {f.name: f for f in text_string_to_metric_families(page)}
                    await asyncio.sleep(0.1)
        assert status == 200
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        kinds = {name: getattr(f, "type", None) for name, f in families.items()}
        assert kinds["http_client_request_duration_seconds"] == "histogram"
        assert kinds["sendcloud_watch_logs"] == "counter"
        assert kinds["sendcloud_watch_lag_seconds"] == "gauge"
        assert kinds["sendcloud_async_info"] == "gauge"
        logs = families["sendcloud_watch_logs"]
        samples = logs.samples  # type: ignore[attr-defined]
        assert [s.labels for s in samples if s.name == "sendcloud_watch_logs_total"] == [
            {"sendcloud_account": "default"}
        ]
        assert all(s.value > 0 for s in samples)
        duration = families["http_client_request_duration_seconds"]
        counts = [
            s
            for s in duration.samples  # type: ignore[attr-defined]
            if s.name.endswith("_count")
        ]
        assert counts
        assert all(s.labels["http_request_method"] == "GET" for s in counts)
        assert {s.labels["url_template"] for s in counts} >= {"/integrations/logs"}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    assert out.exists()


async def test_a_port_already_taken_is_a_one_line_error_before_anything_is_sent(
    tmp_path: Path,
) -> None:
    """Exit 1 (as fake serve's port) and one line naming --metrics; nothing was polled."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            str(SCRIPT),
            "logs",
            "watch",
            "--fake",
            "--out",
            str(tmp_path / "w.jsonl"),
            "--metrics",
            f"127.0.0.1:{port}",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert len(lines) == 1, lines
    assert f"--metrics 127.0.0.1:{port}: cannot listen there" in lines[0]
    assert out == b""
    written = tmp_path / "w.jsonl"
    assert not written.exists() or written.read_bytes() == b""


@pytest.mark.parametrize(
    "value",
    ["", "abc", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:-1", "a b:80", "x@y:80", "::1:80"],
)
def test_a_bad_metrics_address_is_a_usage_error(
    value: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exit 2, one line naming the option; nothing created."""
    out = tmp_path / "w.jsonl"
    code = main(["logs", "watch", "--fake", "--out", str(out), "--metrics", value])
    err = capsys.readouterr().err
    assert code == 2
    assert "--metrics" in err
    assert not out.exists()


def test_metrics_addresses_that_are_accepted() -> None:
    """PORT alone and :PORT listen on 127.0.0.1; a host or [IPv6] may be given."""
    assert metrics_address("9464") == ("127.0.0.1", 9464)
    assert metrics_address(":9464") == ("127.0.0.1", 9464)
    assert metrics_address("0.0.0.0:9464") == ("0.0.0.0", 9464)
    assert metrics_address("[::1]:0") == ("::1", 0)
    assert str(metrics_address("[::1]:80")) == "[::1]:80"


def test_export_takes_metrics_too(capsys: pytest.CaptureFixture[str]) -> None:
    """``logs export --help`` lists --metrics (the watch's is scraped above)."""
    assert main(["logs", "export", "--help"]) == 0
    assert "--metrics HOST:PORT" in capsys.readouterr().out


def test_readiness_of_a_watch_waits_for_every_account() -> None:
    """Not ready until each account was polled up to date once; a Redis watch needs a lease."""
    ready = Readiness(accounts=["a", "b"])
    assert ready.ready() == (False, "not ready: 2 of 2 account(s) not polled up to date yet")
    ready(events.PollCompleted("a", 3))
    assert ready.ready()[0] is False
    ready(events.PollCompleted("b", 0))
    assert ready.ready() == (True, "ready")
    leases = Readiness(leases=True)
    assert leases.ready()[0] is False
    leases(events.LeaseClaimed("a", 7, "free"))
    assert leases.ready() == (True, "ready: holding 1 lease(s)")
    leases(events.LeaseLost("a", 7, "expired"))
    assert leases.ready()[0] is False
    assert Readiness().ready() == (True, "ready")  # an export: ready while it runs


def test_the_page_parses_with_escaped_labels_and_every_kind() -> None:
    """Counters, gauges and histograms; label values with quotes and newlines stay intact."""
    registry = Registry()
    odd = 'shop "north"\nline\\2'
    registry(events.BatchDelivered(odd, 4, 1.5))
    registry(events.LeaseClaimed("a", 1, "takeover", "w1"))
    registry(events.LeaseRefused("a", 2))
    registry(events.PageCommitted("/x", 10, 1, 10))
    registry(events.TokenFetched("https://auth/token", 200, None, 0.2))
    families = {f.name: f for f in text_string_to_metric_families(registry.render())}
    (logs,) = families["sendcloud_watch_logs"].samples
    assert (logs.labels, logs.value) == ({"sendcloud_account": odd}, 4)
    (lag,) = families["sendcloud_watch_lag_seconds"].samples
    assert lag.value == 1.5
    (takeover,) = families["sendcloud_watch_lease_takeovers"].samples
    assert takeover.labels == {"sendcloud_lease_how": "takeover"}
    assert families["sendcloud_watch_fence_refusals"].samples[0].value == 1
    assert families["sendcloud_export_records"].samples[0].value == 10
    assert families["sendcloud_watch_leases"].samples[0].value == 1
    buckets = [
        s
        for s in families["http_client_request_duration_seconds"].samples
        if s.name.endswith("_bucket")
    ]
    assert [s.value for s in buckets if s.labels["le"] in ("0.1", "0.25", "+Inf")] == [0, 1, 1]
    (token,) = families["sendcloud_client_token_requests"].samples
    assert token.labels == {"http_response_status_code": "200"}


def test_an_export_serves_metrics_while_it_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``logs export --metrics``: the page is up while it runs, and the export is whole."""
    out = tmp_path / "export.jsonl"
    code = main(["logs", "export", "--fake", "--out", str(out), "--metrics", "127.0.0.1:0"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert _BOUND.search(err), err
    assert out.stat().st_size > 0
