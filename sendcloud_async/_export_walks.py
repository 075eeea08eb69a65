"""Per-integration export: one walk per integration, side by side, into one file, exactly once.

A cursor-paged listing is a chain: page N+1's URL comes from page N, so one walk
costs one round trip per page whatever the client does. The per-integration
listing (``GET /integrations/{id}/logs``) gives one chain per integration; this
engine walks up to ``concurrency`` of them at once, every request through the
client's rate gate, and writes every page into one file::

    stats = await export_logs_per_integration(client, "logs.jsonl", concurrency=8)
    # killed? run the same call again with resume=True

How exactly-once is kept (the pieces are ``_export.LogExport``'s):

1. The integrations are listed once, when the export starts; the first
   checkpoint records one walk per integration (its cursor ``None``), before any
   log is written. A resume walks the recorded integrations, never a new list.
2. Walks put whole pages into one bounded queue; **one writer** takes every
   page waiting there, appends them with one ``pwrite`` at the checkpoint's
   offset and ``fsync``-s the file (a group commit: concurrent walks share one
   ``fsync``).
3. Only then is the checkpoint replaced atomically. It records the byte offset
   where the file's complete pages end and, for every walk, the cursor after
   its last written page (and whether it is done).
4. A resume truncates the file to the offset and continues every unfinished
   walk from its cursor.

So the file's bytes up to ``offset`` hold, for each integration, exactly its
logs before its cursor, each once. Pages of different integrations interleave
in the order they arrived; within one integration the order is the listing's.

The per-integration listing cannot return logs that belong to no current
integration (a deleted one's logs stay in the account-wide listing), so the
account-wide export stays the default. An integration deleted while the export
runs (its listing answers 404) ends its walk; the stats count it in
``walks_gone``.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import deque
from collections.abc import Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

import msgspec

from . import _validate as check
from ._errors import InvalidInputError, NotFoundError
from ._export import (
    CHECKPOINT_VERSION,
    Checkpoint,
    ExportError,
    ExportInputError,
    ExportStats,
    LogExport,
    _complete,
    _write_all,
    csv_header,
)
from ._fileio import writing

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._client import SendcloudClient
    from ._models import IntegrationLog

__all__ = [
    "DEFAULT_WALKS",
    "LISTING",
    "PerIntegrationExport",
    "WalkCursor",
    "WalksCheckpoint",
    "WalksStats",
    "export_logs_per_integration",
]

#: Integrations walked at once by default.
DEFAULT_WALKS: Final = 8
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


class WalksCheckpoint(Checkpoint, kw_only=True):
    """``Checkpoint`` plus every walk's cursor; the inherited ``cursor`` stays ``None``."""

    walks: list[WalkCursor] = msgspec.field(default_factory=list)


_WALKS_DECODER: Final = msgspec.json.Decoder(WalksCheckpoint)


@dataclass(frozen=True, slots=True)
class WalksStats(ExportStats):
    """``ExportStats`` plus the walks: how many, how many finished, how many integrations gone."""

    walks: int = 0
    walks_done: int = 0
    walks_gone: int = 0


class _Page:
    """A page on its way from a walk to the writer."""

    __slots__ = ("done", "gone", "index", "items", "next_cursor")

    def __init__(
        self,
        index: int,
        items: list[IntegrationLog],
        next_cursor: str | None,
        *,
        gone: bool = False,
    ) -> None:
        self.index = index
        self.items = items
        self.next_cursor = next_cursor
        self.done = next_cursor is None
        self.gone = gone


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


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
    Use it like ``LogExport``::

        job = PerIntegrationExport("logs.jsonl", base_url=str(client.base_url), concurrency=8)
        with job:                 # checks everything, takes the lock; no request yet
            stats = await job.run(client)
    """

    def __init__(
        self,
        out_path: str | os.PathLike[str],
        *,
        base_url: str,
        fmt: str = "jsonl",
        integration_id: int | None = None,
        page_size: int | None = None,
        concurrency: int = DEFAULT_WALKS,
        resume: bool = False,
    ) -> None:
        super().__init__(
            out_path,
            base_url=base_url,
            fmt=fmt,
            integration_id=integration_id,
            page_size=page_size,
            resume=resume,
        )
        self.concurrency = _concurrency(concurrency)
        self.query = msgspec.structs.replace(self.query, listing=LISTING)

    def _decode_checkpoint(self, raw: bytes) -> Checkpoint:
        return _WALKS_DECODER.decode(raw)

    @property
    def _walks_state(self) -> WalksCheckpoint:
        state = self._state
        assert isinstance(state, WalksCheckpoint)
        return state

    # -- disk (worker thread) ---------------------------------------------------------------

    def _begin(self, integration_ids: list[int] | None) -> None:
        """A fresh start with these walks (``integration_ids``), or a resume's truncation."""
        fd = self._fd
        assert fd is not None
        if integration_ids is not None:
            # The checkpoint goes first: killed after it, a resume starts over.
            state = WalksCheckpoint(
                version=CHECKPOINT_VERSION,
                query=self.query,
                cursor=None,
                offset=0,
                records=0,
                pages=0,
                done=not integration_ids,
                walks=[WalkCursor(integration_id=i) for i in integration_ids],
            )
            self._write_checkpoint(state)
            # (a failed checkpoint write inside names the checkpoint, not the file)
            with writing(self.path, "emptying it for a new export"):
                os.ftruncate(fd, 0)
                if self.query.format == "csv":
                    header = csv_header()
                    _write_all(fd, header, 0)
                    state.offset = len(header)
                    if state.done:
                        self._write_checkpoint(state)
                os.fsync(fd)
            self._state = state
        else:
            state = self._walks_state
            if not state.done:
                with writing(self.path, "cutting it back to its checkpoint"):
                    os.ftruncate(fd, state.offset)
                    os.fsync(fd)
        self._started = True

    def _commit_pages(self, batch: list[_Page]) -> None:
        """Append whole pages, then move the checkpoint past them (runs in a worker thread)."""
        fd = self._fd
        assert fd is not None
        state = self._walks_state
        walks = [msgspec.structs.replace(w) for w in state.walks]
        chunks: list[bytes] = []
        records = 0
        for page in batch:
            walk = walks[page.index]
            if page.items:
                chunks.append(self._encode(page.items))
                records += len(page.items)
            walk.records += len(page.items)
            walk.pages += 0 if page.gone else 1
            walk.gone = page.gone
            walk.done = page.done
            if not page.done:
                walk.cursor = page.next_cursor
        data = b"".join(chunks)
        if data:
            with writing(self.path, f"appending {len(batch)} page(s) of the walks"):
                _write_all(fd, data, state.offset)
                os.fsync(fd)
        new = WalksCheckpoint(
            version=CHECKPOINT_VERSION,
            query=self.query,
            cursor=None,
            offset=state.offset + len(data),
            records=state.records + records,
            pages=state.pages + sum(0 if p.gone else 1 for p in batch),
            done=all(w.done for w in walks),
            walks=walks,
        )
        self._write_checkpoint(new)
        self._state = new

    # -- statistics ----------------------------------------------------------------------------

    def _walk_stats(self, base: Checkpoint, started: float) -> WalksStats:
        stats = self._stats(base, started)
        walks = self._walks_state.walks
        return WalksStats(
            **{name: getattr(stats, name) for name in ExportStats.__dataclass_fields__},
            walks=len(walks),
            walks_done=sum(1 for w in walks if w.done),
            walks_gone=sum(1 for w in walks if w.gone),
        )

    # -- the run ---------------------------------------------------------------------------------

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
        if self._fd is None:
            self.open()
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        if self.already_complete:
            return self._walk_stats(self._walks_state, started)
        if not self._started:
            state = self._state
            ids: list[int] | None = None
            if state is None or state.pages == 0:
                if self.query.integration_id is not None:
                    ids = [self.query.integration_id]
                else:
                    ids = [integration.id for integration in await client.integrations.list()]
            await _complete(loop.run_in_executor(None, self._begin, ids))
        state = self._walks_state
        base = msgspec.structs.replace(state)
        todo = deque(i for i, walk in enumerate(state.walks) if not walk.done)
        queue: asyncio.Queue[_Page | _Failed | None] = asyncio.Queue(maxsize=2 * self.concurrency)
        walkers = [
            loop.create_task(self._walker(client, state.walks, todo, queue))
            for _ in range(min(self.concurrency, len(todo)))
        ]
        supervisor = loop.create_task(_supervise(walkers, queue))
        try:
            while True:
                item = await queue.get()
                batch: list[_Page] = []
                failure: BaseException | None = None
                while True:
                    if item is None:
                        break
                    if isinstance(item, _Failed):
                        failure = item.error
                        break
                    batch.append(item)
                    if len(batch) >= _MAX_BATCH or queue.empty():
                        break
                    item = queue.get_nowait()
                if batch:
                    await _complete(loop.run_in_executor(None, self._commit_pages, batch))
                    if progress is not None:
                        progress(self._walk_stats(base, started))
                if failure is not None:
                    raise failure
                if item is None:
                    break
        finally:
            if not supervisor.done():
                supervisor.cancel()
            await asyncio.wait((supervisor,))
            if not supervisor.cancelled():
                supervisor.exception()
        return self._walk_stats(base, started)

    async def _walker(
        self,
        client: SendcloudClient,
        walks: list[WalkCursor],
        todo: deque[int],
        queue: asyncio.Queue[_Page | _Failed | None],
    ) -> None:
        """Take walks from ``todo`` until none is left; each walk's pages go to ``queue`` in order.

        ``walks`` are the walks as this run found them (a walk starts from its cursor there).
        """
        page_size = self.query.page_size
        while todo:
            index = todo.popleft()
            walk = walks[index]
            pages = client.logs.pages(
                integration_id=walk.integration_id, cursor=walk.cursor, page_size=page_size
            )
            try:
                async with aclosing(pages):
                    async for page in pages:
                        if page.next_url is not None and page.next_cursor is None:
                            raise ExportError(
                                f"the server's next-page link has no cursor ({page.next_url}); "
                                "the export cannot be checkpointed"
                            )
                        await queue.put(_Page(index, page.items, page.next_cursor))
            except NotFoundError:
                # The integration was deleted: its logs are no longer listed per integration.
                await queue.put(_Page(index, [], None, gone=True))


async def _supervise(
    walkers: Sequence[asyncio.Task[None]], queue: asyncio.Queue[_Page | _Failed | None]
) -> None:
    """Wait for the walkers; on the first failure stop the others. Ends the queue either way."""
    try:
        if walkers:
            done, _ = await asyncio.wait(walkers, return_when=asyncio.FIRST_EXCEPTION)
            failed = next((t for t in done if not t.cancelled() and t.exception()), None)
            if failed is not None:
                for task in walkers:
                    task.cancel()
                await asyncio.wait(walkers)
                error = failed.exception()
                assert error is not None
                await queue.put(_Failed(error))
                return
    except asyncio.CancelledError:
        for task in walkers:
            task.cancel()
        if walkers:
            await asyncio.wait(walkers)
        raise
    await queue.put(None)


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
) -> WalksStats:
    """Export the exception logs of every integration ``client`` sees to ``out_path``, exactly once.

    Lists the integrations, then walks each one's logs (``GET /integrations/{id}/logs``),
    at most ``concurrency`` at once, through the client's rate gate (create the
    client with ``rate_limit=RateLimits()`` so that the walks together stay within
    the account's budget). ``resume=True`` continues from ``out_path``'s checkpoint.
    Arguments are checked before any request: ``ExportInputError``.
    """
    job = PerIntegrationExport(
        out_path,
        base_url=str(client.base_url) if base_url is None else base_url,
        fmt=fmt,
        integration_id=integration_id,
        page_size=page_size,
        concurrency=concurrency,
        resume=resume,
    )
    with job:
        return await job.run(client, progress=progress)
