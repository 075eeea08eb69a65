"""Every source over one seeded ``FakeSendcloud`` world, for the source contract tests.

A source is where a job's records come from, with a state that says how far it got.
Each adapter says how to run its source from a state with a fresh client and how to
read the state after each step, through the seam the SDK gives a job that resumes:

* ``account-export``: the account-wide listing (``GET /integrations/logs``, paged by
  a date-time cursor) as ``export_logs`` walks it. The state:
  the checkpoint beside the output after each committed page (with the output's
  bytes up to its offset); a resume is ``resume=True`` over those two files.
* ``per-integration-export``: one walk per integration, side by side
  (``export_logs_per_integration``). The state: the checkpoint after each group
  commit, holding every walk's cursor.
* ``watch-oldest-first``, ``watch-newest-first``: ``client.logs.watch`` over a
  listing of either order. The state: the ``WatchState`` of each ``LogBatch``,
  saved as its JSON bytes; a resume passes them back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar, Final, NamedTuple

import msgspec

import sendcloud_async as sc
from sendcloud_async._checkpoint import checkpoint_path
from sendcloud_async._export import export_logs
from sendcloud_async.testing import FakeSendcloud

#: A log as the battery compares it: ``(id, integration_id)``.
Record = tuple[int, int]

PAGE_SIZE: Final = 3
INTEGRATIONS: Final = (1, 2, 3)
#: The seeded logs: one group a second, each the integrations of the logs that share
#: its ``created_at``. Chosen so that groups straddle page boundaries of the
#: account-wide listing and of every integration's own (``straddles`` checks it).
GROUPS: Final = (
    (3,), (2, 3), (2, 3), (3,), (2, 2, 3), (2, 1, 2), (2, 2), (2, 3), (1, 3),
    (1, 1), (1,), (1, 1), (1, 2), (3, 2, 3), (3,), (3,), (1, 1), (3, 3, 1),
)  # fmt: skip
#: The watch: logs created after the seeded ones, arriving between two polls.
ARRIVALS: Final = ((2, 1), (3, 3, 1), (2,))
#: The watch: a log of integration 2 created between the first groups but committed
#: (listed) only after the first poll passed it, ``LATE_AFTER`` seconds later.
LATE_AT: Final = timedelta(seconds=4.5)
LATE_AFTER: Final = 0.2
#: Every poll re-reads this far behind its mark: the whole world.
LOOKBACK: Final = 600.0


def straddles(listing: Sequence[tuple[int, datetime]], size: int = PAGE_SIZE) -> int:
    """How many page boundaries of ``listing`` (``(id, created_at)``) fall inside a group."""
    return sum(1 for k in range(size, len(listing), size) if listing[k - 1][1] == listing[k][1])


@dataclass
class World:
    """The fake's logs, and fresh clients and output paths for the sources."""

    fake: FakeSendcloud
    tmp: Path
    start: datetime = field(
        default_factory=lambda: datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=120)
    )
    #: Each log's stage: 0 seeded, 1 arrived between polls, 2 committed late (by id).
    stages: dict[int, int] = field(default_factory=dict)
    _paths: int = 0

    def seed(self) -> None:
        for ident in INTEGRATIONS:
            self.fake.add_integration(id=ident)
        for n, owners in enumerate(GROUPS):
            self.add_group(n, owners, stage=0)

    def add_group(self, second: int, owners: Sequence[int], *, stage: int) -> None:
        at = (self.start + timedelta(seconds=second)).isoformat()
        for owner in owners:
            record = self.fake.add_log(owner, created_at=at, exception=f"at {second}")
            self.stages[int(record["id"])] = stage

    def arrive(self) -> None:
        """The logs created after the seeded ones."""
        for n, owners in enumerate(ARRIVALS, start=len(GROUPS)):
            self.add_group(n, owners, stage=1)

    def add_late(self) -> int:
        """A log behind every seeded group but the first five, listed ``LATE_AFTER`` s from now."""
        at = (self.start + LATE_AT).isoformat()
        record = self.fake.add_log(2, created_at=at, exception="late", visible_after=LATE_AFTER)
        self.stages[int(record["id"])] = 2
        return int(record["id"])

    async def published(self) -> None:
        """Wait until every log committed late is listed."""
        async with asyncio.timeout(10):
            while self.fake.hidden_logs:  # noqa: ASYNC110 (the fake has no event for it)
                await asyncio.sleep(0.02)

    def client(self) -> sc.SendcloudClient:
        """A fresh client of the fake."""
        return sc.SendcloudClient(auth=self.fake.basic_auth, base_url=self.fake.base_url)

    def path(self) -> Path:
        """A fresh output path."""
        self._paths += 1
        return self.tmp / f"out-{self._paths}.jsonl"

    def listing(self) -> list[Record]:
        """Every listed log, in the account-wide listing's order."""
        logs = [(int(r["id"]), int(r["integration_id"])) for r in self.fake.logs]
        return logs if self.fake.log_order == "oldest_first" else logs[::-1]

    def stamps(self, integration_id: int | None = None) -> list[tuple[int, datetime]]:
        """``(id, created_at)`` of the listed logs (of one integration), in the listing's order."""
        stamps = [
            (int(r["id"]), datetime.fromisoformat(str(r["created_at"])))
            for r in self.fake.logs
            if integration_id is None or r["integration_id"] == integration_id
        ]
        return stamps if self.fake.log_order == "oldest_first" else stamps[::-1]


class Step(NamedTuple):
    """What one step of a source gave: its records, and the state just after them."""

    records: list[Record]
    state: Any


@dataclass(frozen=True)
class Run:
    """A source's full run: the state it began from and every step."""

    initial: Any
    steps: list[Step]
    #: Ids the source delivered behind its mark (the watch's ``LogBatch.late``).
    late: frozenset[int] = frozenset()
    #: Each log's stage in the world (``World.stages``) when the run ended.
    stages: dict[int, int] = field(default_factory=dict)

    @property
    def states(self) -> list[Any]:
        """Every state the run went through: the initial one, then one per step."""
        return [self.initial, *(step.state for step in self.steps)]

    def after(self, k: int) -> list[Record]:
        """The records of the steps after state ``k`` (``states[k]``)."""
        return [record for step in self.steps[k:] for record in step.records]

    @property
    def records(self) -> list[Record]:
        return self.after(0)


class Source:
    """One source of the battery: how to run it, resume it, and damage its state."""

    name: str
    log_order: str = "oldest_first"
    #: The listings the source walks: ``None`` the account-wide one, else an integration's.
    listings: tuple[int | None, ...] = (None,)
    #: The error a refused state raises, and its message for each kind of damage.
    refused: ClassVar[type[Exception]]
    messages: ClassVar[dict[str, str]]

    def __repr__(self) -> str:
        return self.name

    def project(self, records: Sequence[Record], run: Run) -> object:
        """What the source's order fixes of ``records``: here the whole sequence."""
        return list(records)

    async def run(self, world: World) -> Run:
        raise NotImplementedError

    async def resume(self, world: World, state: Any) -> list[Record]:
        """Everything the source yields from ``state``, with a fresh client."""
        raise NotImplementedError

    def damage(self, state: Any, kind: str) -> Any:
        """``state`` made unreadable: ``kind`` is ``"damaged"`` or ``"unknown-version"``."""
        raise NotImplementedError


def _jsonl(data: bytes) -> list[Record]:
    rows = [msgspec.json.decode(line) for line in data.splitlines()]
    return [(int(row["id"]), int(row["integration_id"])) for row in rows]


class Saved(NamedTuple):
    """An export's state: its checkpoint, and the output up to the checkpoint's offset."""

    checkpoint: bytes
    output: bytes


Progress = Callable[[object], None]


class AccountExport(Source):
    """The account-wide listing, walked and resumed by ``export_logs``."""

    name = "account-export"
    refused = sc.ExportInputError
    messages: ClassVar[dict[str, str]] = {
        "damaged": (
            r"^the checkpoint \S+ is damaged \(.+\); --restart \(instead of --resume\) "
            r"starts over$"
        ),
        "unknown-version": (
            r"^the checkpoint \S+ has version 99, this sendcloud-async writes version 1; "
            r"--restart \(instead of --resume\) starts over$"
        ),
    }

    def export(
        self, client: sc.SendcloudClient, out: Path, *, resume: bool, progress: Progress | None
    ) -> Awaitable[object]:
        return export_logs(client, out, page_size=PAGE_SIZE, resume=resume, progress=progress)

    async def run(self, world: World) -> Run:
        out = world.path()
        steps: list[Step] = []
        taken = 0

        def progress(_: object) -> None:  # after each commit: the checkpoint on disk
            nonlocal taken
            raw = checkpoint_path(out).read_bytes()
            offset = int(msgspec.json.decode(raw)["offset"])
            data = out.read_bytes()[:offset]
            steps.append(Step(_jsonl(data[taken:]), Saved(raw, data)))
            taken = offset

        async with world.client() as client:
            await self.export(client, out, resume=False, progress=progress)
        assert out.read_bytes() == steps[-1].state.output
        return Run(None, steps, stages=dict(world.stages))

    async def resume(self, world: World, state: Saved | None) -> list[Record]:
        out = world.path()
        kept = b"" if state is None else state.output
        if state is not None:
            out.write_bytes(state.output)
            checkpoint_path(out).write_bytes(state.checkpoint)
        try:
            async with world.client() as client:
                await self.export(client, out, resume=state is not None, progress=None)
        except sc.ExportInputError:
            assert state is not None
            assert out.read_bytes() == kept, "a refused resume changed the output"
            assert checkpoint_path(out).read_bytes() == state.checkpoint
            raise
        data = out.read_bytes()
        assert data.startswith(kept), "the resume changed what the state accounts for"
        return _jsonl(data[len(kept) :])

    def damage(self, state: Saved, kind: str) -> Saved:
        raw = state.checkpoint
        if kind == "damaged":
            return Saved(raw[: len(raw) // 2], state.output)
        fields = msgspec.json.decode(raw)
        fields["version"] = 99
        return Saved(msgspec.json.encode(fields), state.output)


class PerIntegrationExport(AccountExport):
    """Every integration's listing, walked side by side by ``export_logs_per_integration``."""

    name = "per-integration-export"
    listings = INTEGRATIONS

    def export(
        self, client: sc.SendcloudClient, out: Path, *, resume: bool, progress: Progress | None
    ) -> Awaitable[object]:
        # Two walks at once for three integrations: states with a walk not begun yet,
        # walks in the middle and walks done.
        return sc.export_logs_per_integration(
            client, out, page_size=PAGE_SIZE, concurrency=2, resume=resume, progress=progress
        )

    def project(self, records: Sequence[Record], run: Run) -> object:
        """Each integration's logs in its listing's order; the walks interleave freely."""
        return {ident: [r for r in records if r[1] == ident] for ident in INTEGRATIONS}


class Watch(Source):
    """``client.logs.watch`` from each batch's ``WatchState``, saved as JSON bytes."""

    refused = sc.InvalidInputError
    messages: ClassVar[dict[str, str]] = {
        "damaged": r"^state is not a valid WatchState: \S",
        "unknown-version": (
            r"^state is not a valid WatchState: version 99; this sendcloud-async reads versions "
        ),
    }

    def __init__(self, order: str) -> None:
        self.log_order = order
        self.name = "watch-" + order.replace("_", "-")

    def project(self, records: Sequence[Record], run: Run) -> object:
        """The logs of each stage of the world in the listing's order.

        A poll delivers the logs it finds in the listing's order, so logs listed
        together keep it; logs that arrived later come in a later poll of the run
        but in the same poll of a resume (newest-first: before the older ones).
        A log delivered behind the mark (``run.late``) comes where it became
        visible, not where the listing has it: it counts, but not its place.
        """
        by_stage: dict[int, list[Record]] = {}
        for record in records:
            if record[0] not in run.late:
                by_stage.setdefault(run.stages[record[0]], []).append(record)
        return by_stage

    async def _poll(self, client: sc.SendcloudClient, state: bytes) -> tuple[list[Step], set[int]]:
        steps: list[Step] = []
        late: set[int] = set()
        batches = client.logs.watch(state, page_size=PAGE_SIZE, once=True, lookback=LOOKBACK)
        async with aclosing(batches):
            async for batch in batches:
                assert batch.items, "a batch is never empty"
                records = [(int(log.id or 0), int(log.integration_id or 0)) for log in batch.items]
                steps.append(Step(records, msgspec.json.encode(batch.state)))
                late.update(int(log.id or 0) for log in batch.late)
        return steps, late

    async def run(self, world: World) -> Run:
        initial = msgspec.json.encode(sc.WatchState.initial("all"))
        async with world.client() as client:
            steps, late = await self._poll(client, initial)  # the seeded logs
            late_id = world.add_late()
            world.arrive()
            more, late_now = await self._poll(client, steps[-1].state)
            steps += more
            await world.published()
            more, late_last = await self._poll(client, steps[-1].state)
            steps += more
        delivered = late | late_now | late_last
        assert delivered == {late_id}, (
            f"the late log was not delivered behind the mark: {delivered}"
        )
        return Run(initial, steps, frozenset(delivered), dict(world.stages))

    async def resume(self, world: World, state: bytes) -> list[Record]:
        async with world.client() as client:
            steps, _ = await self._poll(client, state)
        return [record for step in steps for record in step.records]

    def damage(self, state: bytes, kind: str) -> bytes:
        if kind == "damaged":
            return state[: len(state) // 2]
        fields = msgspec.json.decode(state)
        fields["version"] = 99
        return msgspec.json.encode(fields)


SOURCES: Final[list[Source]] = [
    AccountExport(),
    PerIntegrationExport(),
    Watch("oldest_first"),
    Watch("newest_first"),
]
