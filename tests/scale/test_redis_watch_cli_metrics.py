"""``logs watch --redis … --metrics``: a worker's page, scraped over a real socket.

A console-script worker against a real ``redis-server`` and a ``FakeSendcloud``:
``/readyz`` turns 200 once it holds leases, ``/metrics`` counts them and parses
with Prometheus' parser.
"""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from sendcloud_async.testing import FakeSendcloud
from tests.functional.test_cli import base_env, start

from .conftest import RedisServer
from .test_redis_watch_cli_events import _accounts_file


async def test_a_redis_worker_serves_its_leases_on_the_metrics_page(
    redis_server: RedisServer, tmp_path: Path, namespace: str
) -> None:
    """Ready while it holds leases; sendcloud_watch_leases counts the 3 accounts it holds."""
    async with FakeSendcloud(validate_spec=False) as fake:
        fake.seed(integrations=3, logs_per_integration=2)
        for n in range(1, 4):
            fake.add_account(f"pk-{n}", f"sk-{n}")
        accounts = _accounts_file(tmp_path / "a.toml", fake.base_url, 3)
        worker = await start(
            "logs", "watch", "--accounts", str(accounts), "--redis", redis_server.url,
            "--stream", f"{namespace}:metrics", "--lease", "2", "--interval", "0.2",
            "--log-format", "json", "--metrics", "127.0.0.1:0",
            env=base_env(),
        )  # fmt: skip
        assert worker.stderr is not None
        try:
            async with asyncio.timeout(30):
                port = None
                while port is None:
                    line = await worker.stderr.readline()
                    assert line, "the worker ended before serving its metrics"
                    record = json.loads(line)
                    if record.get("event") == "metrics":
                        port = record["port"]
                base = f"http://127.0.0.1:{port}"
                async with aiohttp.ClientSession() as session:
                    while True:
                        async with session.get(f"{base}/readyz") as resp:
                            if resp.status == 200:
                                assert "holding" in await resp.text()
                                break
                            assert resp.status == 503
                            assert "holds no account's lease" in await resp.text()
                        await asyncio.sleep(0.1)
                    held = 0.0
                    while held < 3:
                        async with session.get(f"{base}/metrics") as resp:
                            page = await resp.text()
                        families = {f.name: f for f in text_string_to_metric_families(page)}
                        leases = families.get("sendcloud_watch_leases")
                        held = leases.samples[0].value if leases is not None else 0.0
                        await asyncio.sleep(0.1)
            assert held == 3
        finally:
            if worker.returncode is None:
                worker.send_signal(signal.SIGTERM)
            await asyncio.wait_for(worker.communicate(), 30)
        assert worker.returncode == 0
