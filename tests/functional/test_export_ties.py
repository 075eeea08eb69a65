"""Exports of logs that share a ``created_at`` across page boundaries: none lost, none twice.

``FakeSendcloud(unique_log_times=False)`` keeps the ``created_at`` a log is added
with, and pages "strictly after" (oldest-first) or "strictly before" (newest-first)
the cursor of its next-page link: following that link alone loses the rest of a
group of logs whose instant a page ends inside. The exports list the boundary's
instant again (``_sources._ties``), and their checkpoints record the ids delivered at it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import msgspec
import pytest

import sendcloud_async as sc
from sendcloud_async._checkpoint import Checkpoint, checkpoint_path
from sendcloud_async._export import LogExport, export_logs
from sendcloud_async._export_walks import WalksCheckpoint, export_logs_per_integration
from sendcloud_async._pagination import PaginationError
from sendcloud_async.testing import FakeSendcloud, ScriptedResponse

ORDERS = ["oldest_first", "newest_first"]
PAGE = 3
START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
#: One group a second: the integrations of the logs that share its ``created_at``.
GROUPS = (
    (1,), (1,), (1, 1, 1), (1, 2, 2), (1, 2), (2, 1, 2), (1, 1, 1), (1, 2, 2), (2, 1),
    (2, 2, 2), (2, 2), (1, 1), (1,),
)  # fmt: skip


def at(second: int) -> datetime:
    return START + timedelta(seconds=second)


def seed(fake: FakeSendcloud, groups: Sequence[Sequence[int]] = GROUPS) -> None:
    for ident in sorted({owner for group in groups for owner in group}):
        fake.add_integration(id=ident)
    for second, owners in enumerate(groups):
        for owner in owners:
            fake.add_log(owner, created_at=at(second).isoformat())


def listing(fake: FakeSendcloud, integration_id: int | None = None) -> list[tuple[int, datetime]]:
    """``(id, created_at)`` of the listed logs (of one integration), in the listing's order."""
    logs = [
        (int(r["id"]), datetime.fromisoformat(str(r["created_at"])))
        for r in fake.logs
        if integration_id is None or r["integration_id"] == integration_id
    ]
    return logs if fake.log_order == "oldest_first" else logs[::-1]


def straddles(logs: list[tuple[int, datetime]]) -> int:
    """How many page boundaries fall inside a group of logs that share a ``created_at``."""
    return sum(1 for k in range(PAGE, len(logs), PAGE) if logs[k - 1][1] == logs[k][1])


def ids(path: Path) -> list[int]:
    return [int(msgspec.json.decode(line)["id"]) for line in path.read_bytes().splitlines()]


def client(fake: FakeSendcloud) -> sc.SendcloudClient:
    return sc.SendcloudClient(auth=fake.basic_auth, base_url=fake.base_url)


@pytest.fixture(params=ORDERS)
async def tied(request: pytest.FixtureRequest) -> AsyncIterator[FakeSendcloud]:
    """A fake whose listings (each order) have groups straddling page boundaries."""
    async with FakeSendcloud(
        log_order=request.param, unique_log_times=False, validate_spec=True
    ) as fake:
        seed(fake)
        for integration in (None, 1, 2):
            assert straddles(listing(fake, integration)) >= 2, integration
        yield fake
        assert fake.spec_violations == []


async def test_the_account_export_keeps_every_tied_log_once_in_order(
    tied: FakeSendcloud, tmp_path: Path
) -> None:
    out = tmp_path / "logs.jsonl"
    async with client(tied) as c:
        stats = await export_logs(c, out, page_size=PAGE)
    assert ids(out) == [ident for ident, _ in listing(tied)]
    assert stats.done
    assert stats.records == len(tied.logs)
    state = msgspec.json.decode(checkpoint_path(out).read_bytes(), type=Checkpoint)
    last_id, last_at = listing(tied)[-1]
    assert not isinstance(state.boundary, msgspec.UnsetType)
    assert state.boundary.at == last_at
    assert last_id in state.boundary.ids
    assert state.boundary.order == tied.log_order


async def test_the_per_integration_export_keeps_every_tied_log_once_in_order(
    tied: FakeSendcloud, tmp_path: Path
) -> None:
    out = tmp_path / "logs.jsonl"
    async with client(tied) as c:
        stats = await export_logs_per_integration(c, out, page_size=PAGE, concurrency=2)
    written = ids(out)
    assert sorted(written) == sorted(int(r["id"]) for r in tied.logs)
    for integration in (1, 2):
        mine = [ident for ident, _ in listing(tied, integration)]
        assert [i for i in written if i in set(mine)] == mine
    assert stats.done
    assert stats.records == len(tied.logs)
    state = msgspec.json.decode(checkpoint_path(out).read_bytes(), type=WalksCheckpoint)
    for walk in state.walks:  # every walk's boundary: its listing's last log
        last_id, last_at = listing(tied, walk.integration_id)[-1]
        assert not isinstance(walk.boundary, msgspec.UnsetType)
        assert walk.boundary.at == last_at
        assert last_id in walk.boundary.ids


@pytest.mark.parametrize("per_integration", [False, True], ids=["account", "per-integration"])
async def test_a_ranged_export_keeps_every_tied_log_in_its_range(
    tied: FakeSendcloud, tmp_path: Path, per_integration: bool
) -> None:
    """``[since, until)`` cuts the listing; the ties inside it are all kept, in either order."""
    since, until = at(2), at(11)
    out = tmp_path / "logs.jsonl"
    async with client(tied) as c:
        if per_integration:
            await export_logs_per_integration(
                c, out, page_size=PAGE, concurrency=2, since=since, until=until
            )
        else:
            await export_logs(c, out, page_size=PAGE, since=since, until=until)
    wanted = [ident for ident, created in listing(tied) if since <= created < until]
    if per_integration:
        assert sorted(ids(out)) == sorted(wanted)
    else:
        assert ids(out) == wanted
    state = msgspec.json.decode(checkpoint_path(out).read_bytes(), type=Checkpoint)
    assert state.order == tied.log_order


async def progress_states(
    fake: FakeSendcloud, out: Path, *, per_integration: bool
) -> list[tuple[bytes, bytes]]:
    """Run an export, keeping (checkpoint, output up to its offset) after every commit."""
    states: list[tuple[bytes, bytes]] = []

    def progress(_: object) -> None:
        raw = checkpoint_path(out).read_bytes()
        offset = int(msgspec.json.decode(raw)["offset"])
        states.append((raw, out.read_bytes()[:offset]))

    async with client(fake) as c:
        if per_integration:
            await export_logs_per_integration(
                c, out, page_size=PAGE, concurrency=1, progress=progress
            )
        else:
            await export_logs(c, out, page_size=PAGE, progress=progress)
    return states


def mid_tie(fake: FakeSendcloud, raw: bytes) -> bool:
    """Whether a checkpoint stands inside a group: logs at its boundary not delivered yet."""
    state = msgspec.json.decode(raw)
    boundaries = [w.get("boundary") for w in state.get("walks", [])] or [state.get("boundary")]
    for boundary in boundaries:
        if boundary is None:
            continue
        instant = datetime.fromisoformat(boundary["at"])
        group = {ident for ident, created in listing(fake) if created == instant}
        if set(boundary["ids"]) < group:
            return True
    return False


@pytest.mark.parametrize("per_integration", [False, True], ids=["account", "per-integration"])
async def test_a_resume_from_a_checkpoint_inside_a_group_yields_exactly_the_rest(
    tied: FakeSendcloud, tmp_path: Path, per_integration: bool
) -> None:
    full = tmp_path / "full.jsonl"
    states = await progress_states(tied, full, per_integration=per_integration)
    inside = [k for k, (raw, _) in enumerate(states) if mid_tie(tied, raw)]
    assert inside, "no checkpoint inside a group"
    for k in inside:
        raw, kept = states[k]
        out = tmp_path / f"resumed-{k}.jsonl"
        out.write_bytes(kept)
        checkpoint_path(out).write_bytes(raw)
        async with client(tied) as c:
            if per_integration:
                await export_logs_per_integration(
                    c, out, page_size=PAGE, concurrency=1, resume=True
                )
            else:
                await export_logs(c, out, page_size=PAGE, resume=True)
        assert out.read_bytes().startswith(kept)
        if per_integration:
            assert sorted(ids(out)) == sorted(ids(full)) == sorted(i for i, _ in listing(tied))
        else:
            assert ids(out) == ids(full) == [ident for ident, _ in listing(tied)]


@pytest.mark.parametrize("order", ORDERS)
async def test_a_whole_page_at_one_instant_moves_on(order: str, tmp_path: Path) -> None:
    """Three logs at one instant fill a page: kept, once; the walk moves on past them.

    Five at one instant (more than a page): the server cannot list the two beyond
    the page, the walk follows its link past the instant (the documented limit).
    """
    groups = ((1,), (1, 1, 1), (1,), (1, 1, 1, 1, 1), (1,), (1,))
    async with FakeSendcloud(log_order=order, unique_log_times=False) as fake:
        seed(fake, groups)
        out = tmp_path / "logs.jsonl"
        async with client(fake) as c:
            stats = await export_logs(c, out, page_size=PAGE)
        every = [ident for ident, _ in listing(fake)]
        crowd = [ident for ident, created in listing(fake) if created == at(3)]
        assert stats.done
        written = ids(out)
        assert len(written) == len(set(written))
        assert written == [i for i in every if i not in crowd[PAGE:]]
        assert len(fake.requests) <= 12


async def test_a_server_link_that_repeats_itself_stops_the_export(tmp_path: Path) -> None:
    """A page at one instant whose link lists the same page again: an error, not a loop."""
    async with FakeSendcloud(unique_log_times=False, validate_spec=True) as fake:
        fake.add_integration(id=1)
        for _ in range(PAGE):
            fake.add_log(1, created_at=at(0).isoformat())
        cursor = quote(at(0).isoformat(), safe=":")
        # Not the URL asked for (its query in another order), but the same cursor.
        link = f'<{fake.base_url}/integrations/logs?page_size={PAGE}&cursor={cursor}>; rel="next"'
        page = ScriptedResponse(body={"data": fake.logs}, headers={"Link": link})
        fake.script("GET", "/integrations/logs", page, page, page)
        out = tmp_path / "logs.jsonl"
        async with client(fake) as c:
            with pytest.raises(PaginationError, match="repeats the cursor") as raised:
                await export_logs(c, out, page_size=PAGE)
        assert "\n" not in str(raised.value)
        assert len(fake.requests) == 2
        assert ids(out) == [int(r["id"]) for r in fake.logs]  # the first page, once
        state = msgspec.json.decode(checkpoint_path(out).read_bytes(), type=Checkpoint)
        assert state.records == PAGE
        assert not state.done
        assert fake.spec_violations == []


async def test_the_next_page_is_asked_for_while_a_page_is_written(
    tied: FakeSendcloud, tmp_path: Path
) -> None:
    """Read-ahead: when a page's commit begins, the request of the next one is out."""
    seen: list[int] = []

    async def fence() -> None:  # awaited before every write: the start, then each commit
        await asyncio.sleep(0.05)
        seen.append(len(tied.requests))

    tied.clear_requests()
    job = LogExport(tmp_path / "logs.jsonl", base_url=tied.base_url, page_size=PAGE)
    job.fence = fence
    async with client(tied) as c:
        with job:
            stats = await job.run(c)
    pages = stats.pages
    assert pages >= 5
    assert len(tied.requests) == pages
    # When commit k (1-based) begins, at least k + 1 requests are out (but for the last).
    commits = seen[1:]
    assert len(commits) == pages
    assert all(out >= min(k + 1, pages) for k, out in enumerate(commits, start=1)), commits


@pytest.mark.parametrize(
    ("boundary", "said"),
    [
        ({"at": "2023-03-01T00:00:00", "ids": [1]}, "Expected `datetime` with a timezone"),
        ({"at": "2023-03-01T00:00:00+00:00", "ids": ["1"]}, "Expected `int`, got `str`"),
        ({"at": "2023-03-01T00:00:00+00:00", "order": "sideways"}, "Invalid enum value"),
    ],
    ids=["naive-instant", "text-id", "unknown-order"],
)
async def test_a_checkpoint_with_a_bad_boundary_is_refused_before_any_request(
    boundary: dict[str, object], said: str, tmp_path: Path
) -> None:
    """A damaged ``boundary`` is one clear error: nothing is asked for, nothing written."""
    async with FakeSendcloud(unique_log_times=False) as fake:
        seed(fake)
        out = tmp_path / "logs.jsonl"
        async with client(fake) as c:
            await export_logs(c, out, page_size=PAGE)
        raw = msgspec.json.decode(checkpoint_path(out).read_bytes())
        raw["done"] = False
        raw["boundary"] = boundary
        checkpoint_path(out).write_bytes(msgspec.json.encode(raw))
        before = (out.read_bytes(), checkpoint_path(out).read_bytes())
        fake.clear_requests()
        async with client(fake) as c:
            with pytest.raises(sc.SendcloudError) as caught:
                await export_logs(c, out, page_size=PAGE, resume=True)
        assert fake.requests == []
    message = str(caught.value)
    assert message.startswith(f"the checkpoint {checkpoint_path(out)} is damaged (")
    assert said in message
    assert message.endswith("--restart (instead of --resume) starts over")
    assert "\n" not in message
    assert (out.read_bytes(), checkpoint_path(out).read_bytes()) == before
