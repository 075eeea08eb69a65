"""Per-integration export: one walk per integration, side by side, into one file, exactly once.

A cursor-paged listing is a chain: page N+1's URL comes from page N, so one walk
costs one round trip per page whatever the client does. The per-integration
listing (``GET /integrations/{id}/logs``) gives one chain per integration; this
engine walks up to ``concurrency`` of them at once, every request through the
client's rate gate, and writes every page into one file::

    stats = await export_logs_per_integration(client, "logs.jsonl", concurrency=8)
    # killed? run the same call again with resume=True

How exactly-once is kept: the integrations are listed once, when the export
starts, and the first checkpoint records one walk per integration (its cursor
``None``); a resume walks the recorded ones, never a new list. Walks put whole
pages into one bounded queue; **one writer** commits every page waiting there
through the job's ``FileSink`` (a group commit: concurrent walks share one
``fsync``), the checkpoint recording every walk's cursor after its last written
page. Pages of different integrations interleave in the order they arrived;
within one integration the order is the listing's.

The per-integration listing cannot return logs that belong to no current
integration (a deleted one's logs stay in the account-wide listing), so the
account-wide export stays the default. An integration deleted while the export
runs (its listing answers 404) ends its walk; the stats count it in
``walks_gone``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Unpack, cast

import msgspec
from msgspec import UNSET, UnsetType

from . import _validate as check
from ._checkpoint import Checkpoint, recorded_boundary
from ._defaults import DEFAULT_WALKS
from ._errors import ExportInputError, InvalidInputError
from ._export import DEFAULT_ACCOUNT, ExportOptions, ExportStats, LogExport, ProgressCallback
from ._sources._ties import Boundary

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from ._client import SendcloudClient
    from ._sources._walks import Walk, WalkPage

__all__ = [
    "DEFAULT_WALKS",
    "LISTING",
    "PerIntegrationExport",
    "WalkCursor",
    "WalksCheckpoint",
    "WalksStats",
    "export_logs_per_integration",
]

#: The most integrations walked at once.
MAX_WALKS: Final = 256
#: ``CheckpointQuery.listing`` of a per-integration export.
LISTING: Final = "per-integration"
#: The most pages one group commit writes.
_MAX_BATCH: Final = 256


class WalkCursor(msgspec.Struct, kw_only=True):
    """One integration's walk in the checkpoint: where it stands in the file."""

    integration_id: int
    #: Pass back as ``cursor=`` to continue after the last written page (``None``: from the start).
    cursor: str | None = None
    done: bool = False
    #: The integration's listing answered 404 (deleted while the export ran).
    gone: bool = False
    records: int = 0
    pages: int = 0
    #: Where the walk's last page ended (``Checkpoint.boundary``); not written before a
    #: log is, and absent from a checkpoint of the first version.
    boundary: Boundary | UnsetType = UNSET


class WalksCheckpoint(Checkpoint, kw_only=True):
    """``Checkpoint`` plus every walk's cursor; the inherited ``cursor`` stays ``None``."""

    walks: list[WalkCursor] = msgspec.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WalksStats(ExportStats):
    """``ExportStats`` plus the walks: how many, how many finished, how many integrations gone."""

    walks: int = 0
    walks_done: int = 0
    walks_gone: int = 0


def _concurrency(value: object) -> int:
    try:
        walks = check.positive_int(value, "concurrency")
    except InvalidInputError as exc:
        raise ExportInputError(str(exc)) from None
    if walks > MAX_WALKS:
        raise ExportInputError(f"concurrency must be at most {MAX_WALKS}, got {walks}")
    return walks


class PerIntegrationExport(LogExport):
    """A ``LogExport`` that walks every integration's listing side by side (module docstring).

    ``integration_id`` restricts the export to one integration (one walk, no
    listing). ``concurrency`` is not part of the query: a resume may change it.
    The other keywords are ``LogExport``'s. Use it like ``LogExport``::

        job = PerIntegrationExport("logs.jsonl", base_url=str(client.base_url), concurrency=8)
        with job:                 # checks everything, takes the lock; no request yet
            stats = await job.run(client)
    """

    _checkpoint = WalksCheckpoint
    _batch = _MAX_BATCH
    _gone_on_404 = True

    def __init__(
        self,
        out_path: str | os.PathLike[str],
        *,
        base_url: str,
        concurrency: int = DEFAULT_WALKS,
        **options: Unpack[ExportOptions],
    ) -> None:
        super().__init__(out_path, base_url=base_url, **options)
        self.concurrency = _concurrency(concurrency)
        self.query = msgspec.structs.replace(self.query, listing=LISTING)

    def _describe(self, state: Checkpoint) -> str:
        return f"appending the walks' pages up to page {state.pages:,}"

    @property
    def _walks_state(self) -> WalksCheckpoint:
        state = self._state
        assert isinstance(state, WalksCheckpoint)
        return state

    def _walks(self, state: Checkpoint) -> list[Walk]:
        assert isinstance(state, WalksCheckpoint)
        return [
            (walk.integration_id, walk.cursor, walk.done, recorded_boundary(walk.boundary))
            for walk in state.walks
        ]

    async def _fresh(self, client: SendcloudClient) -> Checkpoint:
        """One walk per integration (listed now), or the one ``integration_id``."""
        if self.query.integration_id is not None:
            ids = [self.query.integration_id]
        else:
            ids = [integration.id for integration in await client.integrations.list()]
        return WalksCheckpoint(
            **msgspec.structs.asdict(self._new(done=not ids)),
            walks=[WalkCursor(integration_id=i) for i in ids],
        )

    def _positions(self, state: Checkpoint, batch: list[WalkPage]) -> dict[str, Any]:
        """Every walk's cursor after whole pages of the walks (one group commit)."""
        assert isinstance(state, WalksCheckpoint)
        walks = [msgspec.structs.replace(w) for w in state.walks]
        for page in batch:
            walk = walks[page.index]
            walk.records += len(page.items)
            walk.pages += 0 if page.gone else 1
            walk.gone = page.gone
            walk.done = page.done
            if not page.done:
                walk.cursor = page.next_cursor
            if page.boundary is not None:
                walk.boundary = page.boundary
        return {"cursor": None, "done": all(w.done for w in walks), "walks": walks}

    def _result(self, base: Checkpoint, started: float) -> WalksStats:
        walks = self._walks_state.walks
        return WalksStats(
            **self._totals(base, started),
            walks=len(walks),
            walks_done=sum(1 for w in walks if w.done),
            walks_gone=sum(1 for w in walks if w.gone),
        )

    async def run(
        self,
        client: SendcloudClient,
        *,
        progress: Callable[[WalksStats], None] | None = None,
    ) -> WalksStats:
        """Walk every unfinished integration (at most ``concurrency`` at once) into the file.

        ``progress`` is called in the event loop after each group of pages is on
        disk. On the first failure of a walk the others stop, the pages already
        fetched are written, and the error is raised (``SendcloudError``
        subclasses for API failures, ``OSError`` for write failures); a resume
        continues every walk. Cancelling waits for a write in progress to finish.
        """
        stats = await super().run(client, progress=cast("ProgressCallback | None", progress))
        assert isinstance(stats, WalksStats)
        return stats


async def export_logs_per_integration(
    client: SendcloudClient,
    out_path: str | os.PathLike[str],
    *,
    fmt: str = "jsonl",
    integration_id: int | None = None,
    page_size: int | None = None,
    concurrency: int = DEFAULT_WALKS,
    resume: bool = False,
    progress: Callable[[WalksStats], None] | None = None,
    base_url: str | None = None,
    compression: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    account: str = DEFAULT_ACCOUNT,
    part_records: int | None = None,
) -> WalksStats:
    """Export the exception logs of every integration ``client`` sees to ``out_path``, exactly once.

    Lists the integrations, then walks each one's logs (``GET /integrations/{id}/logs``),
    at most ``concurrency`` at once, through the client's rate gate (create the
    client with ``rate_limit=RateLimits()`` so that the walks together stay within
    the account's budget). ``resume=True`` continues from ``out_path``'s checkpoint.
    Arguments are checked before any request: ``ExportInputError``. The destination,
    ``compression``, ``since``, ``until``, ``account`` and ``part_records`` are as for
    ``export_logs``.
    """
    job = PerIntegrationExport(
        out_path,
        base_url=str(client.base_url) if base_url is None else base_url,
        fmt=fmt,
        integration_id=integration_id,
        page_size=page_size,
        concurrency=concurrency,
        resume=resume,
        compression=compression,
        since=since,
        until=until,
        account=account,
        part_records=part_records,
    )
    job.open()
    try:
        return await job.run(client, progress=progress)
    finally:
        await job.aclose()
