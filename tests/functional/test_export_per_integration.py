"""Per-integration export (``_export_walks``): walks side by side into one file, exactly once."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest

import sendcloud_async as sc
from sendcloud_async._checkpoint import Checkpoint, checkpoint_path
from sendcloud_async._errors import ExportInputError
from sendcloud_async._export import LogExport
from sendcloud_async._export_walks import (
    LISTING,
    PerIntegrationExport,
    WalksCheckpoint,
    export_logs_per_integration,
)
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse

_KILLED_EXPORT = """
import asyncio, sys
import sendcloud_async as sc
from sendcloud_async._export_walks import export_logs_per_integration

async def main() -> None:
    base_url, out, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    auth = sc.BasicAuth("fake-public-key", "fake-secret-key")
    async with sc.SendcloudClient(auth=auth, base_url=base_url) as client:
        await export_logs_per_integration(
            client, out, page_size=7, concurrency=3, resume=resume
        )

asyncio.run(main())
"""


def lines(path: Path) -> list[bytes]:
    """The file's lines (one log each)."""
    return path.read_bytes().splitlines()


def ids(path: Path) -> list[int]:
    """The log ids of a JSON Lines file, in file order."""
    return [msgspec.json.decode(line)["id"] for line in lines(path)]


def walks_checkpoint(out: Path) -> WalksCheckpoint:
    """The checkpoint beside ``out``."""
    return msgspec.json.decode(checkpoint_path(out).read_bytes(), type=WalksCheckpoint)


async def listing(client: sc.SendcloudClient, integration_id: int) -> list[int]:
    """The log ids of one integration's listing, in its order."""
    return [log.id async for log in client.logs.iter(integration_id=integration_id) if log.id]


def by_integration(path: Path) -> dict[int, list[int]]:
    """The file's log ids grouped by integration, in file order."""
    groups: dict[int, list[int]] = {}
    for line in lines(path):
        item = msgspec.json.decode(line)
        groups.setdefault(item["integration_id"], []).append(item["id"])
    return groups


async def test_export_equals_the_union_of_the_per_integration_listings(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """Every integration's listing, each log once, in its listing's order; every walk done."""
    fake.seed(integrations=5, logs_per_integration=120, seed=3)
    out = tmp_path / "logs.jsonl"
    stats = await export_logs_per_integration(client, out, page_size=9, concurrency=3)
    expected = {i: await listing(client, i) for i in fake.integrations}
    assert by_integration(out) == expected
    assert Counter(ids(out)) == Counter(r["id"] for r in fake.logs)
    assert (stats.records, stats.walks, stats.walks_done, stats.done) == (600, 5, 5, True)
    # 1 + ceil((120 - 9) / 8) pages per integration: each page after the first lists
    # the last log of the one before again (ties at page boundaries)
    assert stats.pages == 5 * 15
    state = walks_checkpoint(out)
    assert state.done
    assert state.query.listing == LISTING
    assert state.offset == out.stat().st_size
    assert sorted(w.integration_id for w in state.walks) == [1, 2, 3, 4, 5]
    assert all(w.done and w.records == 120 and w.pages == 15 for w in state.walks)


async def test_pages_of_different_integrations_interleave(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """With several walks at once the file is not one integration after another."""
    fake.seed(integrations=3, logs_per_integration=60, seed=4)
    out = tmp_path / "logs.jsonl"
    await export_logs_per_integration(client, out, page_size=5, concurrency=3)
    owners = [msgspec.json.decode(line)["integration_id"] for line in lines(out)]
    changes = sum(1 for a, b in itertools.pairwise(owners) if a != b)
    assert changes > 3


async def test_csv_export_writes_the_header_once(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """CSV: one header row, then every log of every integration."""
    fake.seed(integrations=3, logs_per_integration=30, seed=5)
    out = tmp_path / "logs.csv"
    stats = await export_logs_per_integration(client, out, fmt="csv", page_size=10)
    data = out.read_bytes()
    assert data.count(b"id,integration_id,base_url") == 1
    assert stats.records == 90
    assert walks_checkpoint(out).offset == len(data)


async def test_at_most_concurrency_walks_at_once(fake: FakeSendcloud, tmp_path: Path) -> None:
    """``concurrency=2``: never more than two listing requests in flight, all integrations done."""
    fake.seed(integrations=6, logs_per_integration=20, seed=6)
    fake.enforce_rate_limits(sc.RateLimits(get=100_000, window=1.0), latency=0.01)
    in_flight = peak = 0

    async def started(*_: Any) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)

    async def ended(*_: Any) -> None:
        nonlocal in_flight
        in_flight -= 1

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(started)
    trace.on_request_end.append(ended)
    trace.on_request_exception.append(ended)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url, session=session) as c,
    ):
        stats = await export_logs_per_integration(
            c, tmp_path / "logs.jsonl", page_size=5, concurrency=2
        )
    assert stats.records == 120
    assert stats.walks_done == 6
    assert peak == 2


async def test_rate_gate_keeps_the_walks_within_the_budget(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """Eight walks against a 20-GET-per-0.5-s budget: no 429, every log once."""
    fake.seed(integrations=8, logs_per_integration=25, seed=7)
    limits = sc.RateLimits(get=20, window=0.5)
    fake.enforce_rate_limits(limits, latency=0.005)
    async with sc.SendcloudClient(
        auth=fake.basic_auth, base_url=fake.base_url, rate_limit=limits, max_retries=0
    ) as c:
        stats = await export_logs_per_integration(c, tmp_path / "logs.jsonl", page_size=5)
    assert stats.records == 200
    assert fake.throttled == 0


async def test_one_integration_only_needs_no_listing(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """``integration_id``: one walk, no GET /integrations."""
    fake.seed(integrations=3, logs_per_integration=15, seed=8)
    out = tmp_path / "logs.jsonl"
    stats = await export_logs_per_integration(client, out, integration_id=2, page_size=4)
    assert by_integration(out) == {2: await listing(client, 2)}
    assert stats.walks == 1
    assert not any(r.path == "/integrations" for r in fake.requests)


async def test_no_integrations_gives_an_empty_finished_export(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """An account without integrations: an empty file, a finished checkpoint, one request."""
    out = tmp_path / "logs.jsonl"
    stats = await export_logs_per_integration(client, out)
    assert out.read_bytes() == b""
    assert stats.done
    assert stats.walks == 0
    assert walks_checkpoint(out).done
    assert [r.path for r in fake.requests] == ["/integrations"]


async def test_a_failing_walk_stops_the_others_and_resume_completes(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """A walk's 500: ServerError raised, the file matches its checkpoint; --resume finishes."""
    fake.seed(integrations=4, logs_per_integration=50, seed=9)
    out = tmp_path / "logs.jsonl"
    async with sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url, max_retries=0) as c:
        first = [log.id async for log in c.logs.iter(integration_id=3, page_size=5)]
        fake.clear_requests()
        # The integration's first page fails; the other walks' pages so far are written.
        fake.script("GET", "/integrations/3/logs", ScriptedResponse(500, body={"errors": []}))
        with pytest.raises(sc.ServerError):
            await export_logs_per_integration(c, out, page_size=5, concurrency=4)
        state = walks_checkpoint(out)
        assert not state.done
        assert state.offset == out.stat().st_size
        assert state.records == len(lines(out))
        stats = await export_logs_per_integration(c, out, page_size=5, resume=True)
    assert stats.resumed
    assert stats.done
    assert Counter(ids(out)) == Counter(r["id"] for r in fake.logs)
    assert by_integration(out)[3] == first


async def test_a_deleted_integration_ends_its_walk(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """An integration deleted while the export runs: 404 ends its walk, counted as gone."""
    fake.seed(integrations=5, logs_per_integration=10, seed=10)
    out = tmp_path / "logs.jsonl"
    job = PerIntegrationExport(out, base_url=str(client.base_url), page_size=2, concurrency=1)
    deleted: list[int] = []

    def delete_the_last_walk(_: object) -> None:
        if not deleted:  # after the first pages: one walk at a time, the last not started yet
            deleted.append(job._walks_state.walks[-1].integration_id)
            del fake.integrations[deleted[0]]

    with job:
        stats = await job.run(client, progress=delete_the_last_walk)
    assert (stats.walks, stats.walks_done, stats.walks_gone) == (5, 5, 1)
    assert sorted(by_integration(out)) == sorted(set(range(1, 6)) - set(deleted))
    gone = [w.integration_id for w in walks_checkpoint(out).walks if w.gone]
    assert gone == deleted
    assert stats.records == 40


@pytest.mark.parametrize("concurrency", [0, -1, 257, 1.5, True])
async def test_bad_concurrency_is_refused_before_any_request(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path, concurrency: object
) -> None:
    """``concurrency`` outside 1..256: ExportInputError, no file, nothing sent."""
    out = tmp_path / "logs.jsonl"
    with pytest.raises(ExportInputError, match="concurrency must be"):
        await export_logs_per_integration(client, out, concurrency=concurrency)  # type: ignore[arg-type]
    assert not out.exists()
    assert fake.requests == []


async def test_resume_refuses_a_checkpoint_of_the_other_listing(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """Account-wide checkpoint, per-integration resume (and the reverse): refused, nothing sent."""
    fake.seed(integrations=2, logs_per_integration=10, seed=11)
    account_wide = tmp_path / "a.jsonl"
    per_integration = tmp_path / "p.jsonl"
    with LogExport(account_wide, base_url=str(client.base_url)) as job:
        await job.run(client)
    await export_logs_per_integration(client, per_integration)
    before = (account_wide.read_bytes(), per_integration.read_bytes())
    fake.clear_requests()
    with pytest.raises(ExportInputError) as caught:
        await export_logs_per_integration(client, account_wide, resume=True)
    assert "listing per-integration here but account in the checkpoint" in str(caught.value)
    with pytest.raises(ExportInputError) as caught:
        LogExport(per_integration, base_url=str(client.base_url), resume=True).open()
    assert "listing account here but per-integration in the checkpoint" in str(caught.value)
    assert fake.requests == []
    assert (account_wide.read_bytes(), per_integration.read_bytes()) == before


async def test_resume_of_a_finished_export_sends_nothing(
    fake: FakeSendcloud, client: sc.SendcloudClient, tmp_path: Path
) -> None:
    """A finished export resumed: already complete, the file untouched, no request."""
    fake.seed(integrations=2, logs_per_integration=10, seed=12)
    out = tmp_path / "logs.jsonl"
    await export_logs_per_integration(client, out)
    before = out.read_bytes()
    fake.clear_requests()
    stats = await export_logs_per_integration(client, out, resume=True)
    assert stats.already_complete
    assert stats.run_records == 0
    assert fake.requests == []
    assert out.read_bytes() == before


async def _start_export(fake: FakeSendcloud, out: Path, resume: bool) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-c", _KILLED_EXPORT, fake.base_url, str(out), "1" if resume else "0",
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=dict(os.environ),
    )  # fmt: skip


async def test_ten_sigkills_then_resume_give_exactly_the_records_of_a_clean_run(
    fake: FakeSendcloud, tmp_path: Path
) -> None:
    """SIGKILL at ten random moments, resume after each: the same records as a clean run."""
    fake.seed(integrations=4, logs_per_integration=400, seed=13)
    rng = random.Random(17)
    reference = tmp_path / "reference.jsonl"
    clean = await _start_export(fake, reference, resume=False)
    _, err = await asyncio.wait_for(clean.communicate(), 60)
    assert clean.returncode == 0, err.decode()
    total = reference.stat().st_size
    targets = sorted(rng.uniform(0.02, 0.9) * total for _ in range(10))
    out = tmp_path / "logs.jsonl"
    kills = 0
    for target in targets:
        proc = await _start_export(fake, out, resume=checkpoint_path(out).exists())
        while proc.returncode is None:
            size = out.stat().st_size if out.exists() else 0
            if size >= target:
                await asyncio.sleep(rng.uniform(0, 0.01))
                break
            await asyncio.sleep(0.001)
        if proc.returncode is None:
            proc.kill()
            kills += 1
        assert await proc.wait() in (-signal.SIGKILL, 0)
    assert kills == 10
    final = await _start_export(fake, out, resume=True)
    _, err = await asyncio.wait_for(final.communicate(), 60)
    assert final.returncode == 0, err.decode()
    assert sorted(lines(out)) == sorted(lines(reference))
    assert len(set(ids(out))) == len(fake.logs) == 1600
    assert by_integration(out) == by_integration(reference)
    state = walks_checkpoint(out)
    assert state.done
    assert state.offset == out.stat().st_size


def test_checkpoint_is_a_checkpoint_with_walks() -> None:
    """The walks checkpoint extends the account-wide one (same fields, plus ``walks``)."""
    assert set(Checkpoint.__struct_fields__) < set(WalksCheckpoint.__struct_fields__)
    assert set(WalksCheckpoint.__struct_fields__) - set(Checkpoint.__struct_fields__) == {"walks"}
