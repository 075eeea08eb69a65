"""Where a report's logs come from: an export file (``read_export``) or an account
(``read_account``, page by page through the client, its retries and its rate gate)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, BinaryIO

from ._model import Report
from ._readers import Source, open_source
from ._stats import ReportBuilder

if TYPE_CHECKING:
    from .._client import SendcloudClient

__all__ = ["read_account", "read_export"]


def read_export(
    spec: str,
    *,
    fmt: str | None = None,
    integration_id: int | None = None,
    top: int = 10,
    stdin: BinaryIO | None = None,
    progress: Callable[[Source, int], None] | None = None,
) -> Report:
    """The report of an export file (a path, a ``file://`` URL, or ``-``: ``stdin``).

    ``progress(source, logs)`` is called after every batch. A problem with the file
    raises ``ReportInputError`` (before anything is counted, or at the bad line).
    """
    source, reader = open_source(spec, fmt, stdin=stdin)
    builder = ReportBuilder(source=source.name, integration_id=integration_id)
    for batch in reader.read(source):
        builder.add_many(batch)
        if progress is not None:
            progress(source, builder.logs)
    return builder.finish(top=top)


async def read_account(
    client: SendcloudClient,
    *,
    source: str,
    integration_id: int | None = None,
    page_size: int | None = None,
    top: int = 10,
    progress: Callable[[int, int], None] | None = None,
) -> Report:
    """The report of an account's logs, read through ``client`` (its integrations' shop
    names first, then every page of logs); ``progress(logs, pages)`` after every page."""
    names = {i.id: i.shop_name for i in await client.integrations.list() if i.shop_name}
    builder = ReportBuilder(source=source, names=names, integration_id=integration_id)
    pages = client.logs.pages(integration_id=integration_id, page_size=page_size)
    count = 0
    try:
        async for page in pages:
            builder.add_many(page.items)
            count += 1
            if progress is not None:
                progress(builder.logs, count)
    finally:
        await pages.aclose()
    return builder.finish(top=top)
