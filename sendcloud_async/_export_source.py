"""An export's source: its walks of cursor-paged listings, as batches of whole pages.

Each walk lists one integration's logs (or the account's) from its cursor;
``run_due`` runs up to ``concurrency`` walks at once, each putting its pages in
order into one bounded queue, and ``walk_batches`` yields what waits there to the
export's one writer. On the first failure of a walk the others stop, the pages
fetched before it are yielded, then the error is raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from ._aio import stop_task
from ._engine import run_due
from ._errors import ExportError, NotFoundError
from ._export_range import in_range, start_cursor

if TYPE_CHECKING:
    from ._checkpoint import CheckpointQuery
    from ._client import SendcloudClient
    from ._models import IntegrationLog

__all__ = ["Walk", "WalkPage", "walk_batches"]

#: A walk as a checkpoint records it: the integration listed (``None``: all), its cursor, done.
Walk: TypeAlias = tuple[int | None, str | None, bool]


@dataclass(slots=True)
class WalkPage:
    """A page of the walk ``walks[index]`` on its way to the writer (``gone``: a 404)."""

    index: int
    items: list[IntegrationLog]
    next_cursor: str | None
    gone: bool = False

    @property
    def done(self) -> bool:
        return self.next_cursor is None


async def walk_batches(
    client: SendcloudClient,
    walks: Sequence[Walk],
    query: CheckpointQuery,
    *,
    order: str | None,
    concurrency: int,
    batch: int,
    gone_on_404: bool,
) -> AsyncGenerator[list[WalkPage], None]:
    """The pages of the unfinished ``walks`` of ``query``, in batches of up to ``batch``.

    ``order`` is the listing's, as the checkpoint recorded it (``_export_range``).
    ``gone_on_404``: a listing that answers 404 (its integration deleted) ends its
    walk with a ``gone`` page instead of failing the export.
    """
    ranged = query.since is not None or query.until is not None
    queue: asyncio.Queue[WalkPage | BaseException | None] = asyncio.Queue(maxsize=2 * concurrency)

    async def walk(index: int) -> None:
        integration_id, cursor, _ = walks[index]
        if cursor is None:  # a walk not begun: a range begins it at its near end
            cursor = start_cursor(order, query.since, query.until)
        pages = client.logs.pages(
            integration_id=integration_id, cursor=cursor, page_size=query.page_size
        )
        try:
            async with aclosing(pages):
                async for page in pages:
                    if page.next_url is not None and page.next_cursor is None:
                        raise ExportError(
                            f"the server's next-page link has no cursor ({page.next_url}); "
                            "the export cannot be checkpointed"
                        )
                    if not ranged:
                        await queue.put(WalkPage(index, page.items, page.next_cursor))
                        continue
                    kept, beyond = in_range(page.items, order, query.since, query.until)
                    await queue.put(WalkPage(index, kept, None if beyond else page.next_cursor))
                    if beyond:  # the range's far end: the rest of the listing is beyond
                        break
        except NotFoundError:
            if not gone_on_404:
                raise
            # The integration was deleted: its logs are no longer listed per integration.
            await queue.put(WalkPage(index, [], None, gone=True))

    async def feed() -> None:
        """The walks into ``queue``; it ends with ``None``, or with the first failure."""
        todo = [index for index, (_, _, done) in enumerate(walks) if not done]
        try:
            await run_due(todo, walk, concurrency=concurrency)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # raised by the writer after the pages before it
            await queue.put(exc)
        else:
            await queue.put(None)

    supervisor = asyncio.get_running_loop().create_task(feed())
    try:
        while True:
            item = await queue.get()
            pages: list[WalkPage] = []
            while isinstance(item, WalkPage):
                pages.append(item)
                if len(pages) >= batch or queue.empty():
                    break
                item = queue.get_nowait()
            if pages:
                yield pages
            if isinstance(item, BaseException):
                raise item
            if item is None:
                return
    finally:
        await stop_task(supervisor)
