"""An export's source: its walks of cursor-paged listings, as batches of whole pages.

Each walk lists one integration's logs (or the account's) from its cursor;
``run_due`` runs up to ``concurrency`` walks at once, each putting its pages in
order into one bounded queue, and ``walk_batches`` yields what waits there to the
export's one writer. On the first failure of a walk the others stop, the pages
fetched before it are yielded, then the error is raised.

A walk pages as the watch does (``_ties``): its next cursor lists the instant of
its last log again, and it drops the logs listed before (the ids delivered at that
instant), so that logs sharing a ``created_at`` across a page boundary are neither
lost nor repeated. Its boundary travels with each page into the checkpoint. The
next request is sent as soon as a page is decoded, while the writer handles it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeAlias

from .._aio import stop_task
from .._engine import run_due
from .._errors import ExportError, NotFoundError
from .._pagination import PaginationError
from ._range import in_range, start_cursor
from ._ties import Boundary, next_request, past_boundary
from ._watch_state import Order

if TYPE_CHECKING:
    from .._checkpoint import CheckpointQuery
    from .._client import SendcloudClient
    from .._models import IntegrationLog, LogPage

__all__ = ["Walk", "WalkPage", "walk_batches"]

#: A walk as a checkpoint records it: the integration listed (``None``: all), its cursor,
#: done, and where its last page ended (``None``: nowhere yet, or not recorded).
Walk: TypeAlias = tuple[int | None, str | None, bool, Boundary | None]


@dataclass(slots=True)
class WalkPage:
    """A page of the walk ``walks[index]`` on its way to the writer (``gone``: a 404).

    ``next_cursor``: the walk's next request (``None``: done); ``boundary``: where
    the walk stands after the page.
    """

    index: int
    items: list[IntegrationLog]
    next_cursor: str | None
    gone: bool = False
    boundary: Boundary | None = None

    @property
    def done(self) -> bool:
        return self.next_cursor is None


async def _one_page(
    client: SendcloudClient, integration_id: int | None, cursor: str | None, page_size: int | None
) -> LogPage:
    """The page of the listing at ``cursor`` (one request)."""
    pages = client.logs.pages(
        integration_id=integration_id, cursor=cursor, page_size=page_size, read_ahead=0
    )
    async with aclosing(pages):
        async for page in pages:
            return page
    raise PaginationError("the server answered no page")  # a listing always has one


async def walk_batches(
    client: SendcloudClient,
    walks: Sequence[Walk],
    query: CheckpointQuery,
    *,
    order: Order | None,
    concurrency: int,
    batch: int,
    gone_on_404: bool,
) -> AsyncGenerator[list[WalkPage], None]:
    """The pages of the unfinished ``walks`` of ``query``, in batches of up to ``batch``.

    ``order`` is the listing's, as the checkpoint recorded it (``_range``).
    ``gone_on_404``: a listing that answers 404 (its integration deleted) ends its
    walk with a ``gone`` page instead of failing the export.
    """
    ranged = query.since is not None or query.until is not None
    queue: asyncio.Queue[WalkPage | BaseException | None] = asyncio.Queue(maxsize=2 * concurrency)

    async def walk(index: int) -> None:
        integration_id, cursor, _, boundary = walks[index]
        if cursor is None:  # a walk not begun: a range begins it at its near end
            cursor = start_cursor(order, query.since, query.until)
        loop = asyncio.get_running_loop()
        followed: frozenset[str] = frozenset()
        request = loop.create_task(_one_page(client, integration_id, cursor, query.page_size))
        try:
            while True:
                page = await request
                if page.next_url is not None and page.next_cursor is None:
                    raise ExportError(
                        f"the server's next-page link has no cursor ({page.next_url}); "
                        "the export cannot be checkpointed"
                    )
                kept, after = past_boundary(boundary, page.items, order)
                beyond = False
                if ranged:
                    kept, beyond = in_range(kept, order, query.since, query.until)
                following: str | None = None
                if page.next_cursor is not None and not beyond:
                    cursor, followed = next_request(
                        boundary, after, cursor, page.next_cursor, followed
                    )
                    following = cursor
                    # Read-ahead: the next page is on its way while the writer has this one.
                    request = loop.create_task(
                        _one_page(client, integration_id, cursor, query.page_size)
                    )
                boundary = after
                await queue.put(WalkPage(index, kept, following, boundary=after))
                if following is None:  # the listing's end, or the range's far end
                    return
        except NotFoundError:
            if not gone_on_404:
                raise
            # The integration was deleted: its logs are no longer listed per integration.
            await queue.put(WalkPage(index, [], None, gone=True, boundary=boundary))
        finally:
            await stop_task(request)

    async def feed() -> None:
        """The walks into ``queue``; it ends with ``None``, or with the first failure."""
        todo = [index for index, (_, _, done, _) in enumerate(walks) if not done]
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
