"""``client.logs``: page through and create integration exception logs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from datetime import datetime
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET, UnsetType
from yarl import URL

from .. import _validate as check
from .._errors import InvalidInputError
from .._models import (
    LOG_DECODER,
    LOG_LIST_DECODER,
    IntegrationLog,
    LogPage,
    LogRequest,
    LogResponse,
)
from .._pagination import (
    PaginationError,
    cursor_in,
    cursor_to_str,
    encode_query_value,
    find_next_link,
    follow_link,
)
from .._transport import encode_json

if TYPE_CHECKING:
    from .._transport import Response, Transport


#: Pages fetched ahead of the consumer by default (0 turns read-ahead off).
DEFAULT_READ_AHEAD = 1
MAX_READ_AHEAD = 16


def _read_ahead(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInputError(f"read_ahead must be an int, not {type(value).__name__}")
    if not 0 <= value <= MAX_READ_AHEAD:
        raise InvalidInputError(f"read_ahead must be between 0 and {MAX_READ_AHEAD}, got {value}")
    return value


class _Fetched:
    """A page's response, read but not decoded, and where the next page is."""

    __slots__ = ("next_url", "resp")

    def __init__(self, resp: Response, next_url: URL | None) -> None:
        self.resp = resp
        self.next_url = next_url

    def items(self) -> list[IntegrationLog]:
        return self.resp.decode(LOG_LIST_DECODER).data

    def page(self) -> LogPage:
        # The cursor is decoded here, not while walking: iter() never needs it.
        items = self.items()
        next_url = self.next_url
        if next_url is None:
            return LogPage(items=items)
        return LogPage(items=items, next_cursor=cursor_in(next_url), next_url=str(next_url))


class _LogCreate(msgspec.Struct, kw_only=True, omit_defaults=True):
    # integration-log-create has additionalProperties: false; UNSET fields are omitted.
    base_url: str
    full_url: str | UnsetType | None = UNSET
    method: str | UnsetType | None = UNSET
    response_code: int | UnsetType | None = UNSET
    response: LogResponse | UnsetType | None = UNSET
    request: LogRequest | UnsetType | None = UNSET
    created_at: datetime | UnsetType | None = UNSET
    exception_type: str | UnsetType | None = UNSET
    exception: str | UnsetType | None = UNSET


class Logs:
    """Integration exception logs, paged by a date-time cursor through ``Link`` headers."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _first_url(
        self, integration_id: int | None, cursor: str | datetime | None, page_size: int | None
    ) -> URL:
        base = self._transport.config.base
        if integration_id is None:
            path = f"{base}/integrations/logs"
        else:
            path = f"{base}/integrations/{check.integration_id(integration_id)}/logs"
        query = []
        size = check.page_size(page_size)
        if cursor is not None:
            query.append(f"cursor={encode_query_value(cursor_to_str(cursor))}")
        if size is not None:
            query.append(f"page_size={size}")
        return URL(f"{path}?{'&'.join(query)}" if query else path, encoded=True)

    def pages(
        self,
        *,
        integration_id: int | None = None,
        cursor: str | datetime | None = None,
        page_size: int | None = None,
        read_ahead: int = DEFAULT_READ_AHEAD,
    ) -> AsyncGenerator[LogPage, None]:
        """GET /integrations/logs or /integrations/{id}/logs — page by page.

        Each ``LogPage`` carries ``next_cursor``: pass it back as ``cursor=`` to
        resume exactly after that page. Arguments are checked when called,
        before any request. ``read_ahead`` pages are fetched while you consume
        the current one (0: strictly one request at a time).
        """
        return self._pages(self._walker(integration_id, cursor, page_size, read_ahead))

    def iter(
        self,
        *,
        integration_id: int | None = None,
        cursor: str | datetime | None = None,
        page_size: int | None = None,
        read_ahead: int = DEFAULT_READ_AHEAD,
    ) -> AsyncGenerator[IntegrationLog, None]:
        """GET /integrations/logs or /integrations/{id}/logs — log by log, across pages."""
        return self._items(self._walker(integration_id, cursor, page_size, read_ahead))

    def _walker(
        self,
        integration_id: int | None,
        cursor: str | datetime | None,
        page_size: int | None,
        read_ahead: int,
    ) -> AsyncGenerator[_Fetched, None]:
        url = self._first_url(integration_id, cursor, page_size)
        depth = _read_ahead(read_ahead)
        return self._walk_ahead(url, depth) if depth else self._walk(url)

    @staticmethod
    async def _pages(walk: AsyncGenerator[_Fetched, None]) -> AsyncGenerator[LogPage, None]:
        async with aclosing(walk):
            async for fetched in walk:
                yield fetched.page()

    @staticmethod
    async def _items(
        walk: AsyncGenerator[_Fetched, None],
    ) -> AsyncGenerator[IntegrationLog, None]:
        async with aclosing(walk):
            async for fetched in walk:
                for item in fetched.items():
                    yield item

    async def _fetch(self, url: URL, seen: set[int]) -> _Fetched:
        """GET one page and work out where the next one is (without decoding the items)."""
        resp = await self._transport.request("GET", url)
        target = find_next_link(resp.headers.getall("Link", ()))
        if target is None:
            return _Fetched(resp, None)
        next_url = follow_link(target, response_url=resp.url, origin=self._transport.config.origin)
        key = hash(str(next_url))
        if key in seen:
            raise PaginationError(
                f"the server sent a next-page link that was already visited ({next_url}); "
                "stopping instead of looping"
            )
        seen.add(key)
        return _Fetched(resp, next_url)

    async def _walk(self, url: URL) -> AsyncGenerator[_Fetched, None]:
        # Strictly sequential: one request, yield, next request.
        seen = {hash(str(url))}
        while True:
            fetched = await self._fetch(url, seen)
            yield fetched
            if fetched.next_url is None:
                return
            url = fetched.next_url

    async def _walk_ahead(self, url: URL, depth: int) -> AsyncGenerator[_Fetched, None]:
        # A producer task follows the links, fetching at most ``depth`` pages (raw
        # bodies) beyond the one the consumer is handling: it takes a slot before each
        # request and the consumer gives one back as it takes a page. Errors travel
        # through the queue, after the pages fetched before them.
        queue: asyncio.Queue[_Fetched | Exception] = asyncio.Queue()
        slots = asyncio.Semaphore(depth)
        producer = asyncio.get_running_loop().create_task(self._produce(url, queue, slots))
        try:
            while True:
                fetched = await queue.get()
                slots.release()
                if isinstance(fetched, Exception):
                    raise fetched
                if fetched.next_url is not None:
                    # Let the producer put the next request on the wire before we hand
                    # this page over: a consumer that never awaits (decoding, writing)
                    # would otherwise keep the loop from running it until the next page
                    # is asked for, and nothing would overlap.
                    await asyncio.sleep(0)
                yield fetched
                if fetched.next_url is None:
                    return
        finally:
            if not producer.done():
                producer.cancel()
            # Wait for the producer to let go of its connection; never swallow our
            # own cancellation (if we are being cancelled, re-raise after cleanup).
            await asyncio.wait((producer,))
            if not producer.cancelled():
                producer.exception()  # retrieved: an error after our exit is moot

    async def _produce(
        self,
        url: URL,
        queue: asyncio.Queue[_Fetched | Exception],
        slots: asyncio.Semaphore,
    ) -> None:
        seen = {hash(str(url))}
        try:
            while True:
                await slots.acquire()
                fetched = await self._fetch(url, seen)
                queue.put_nowait(fetched)
                if fetched.next_url is None:
                    return
                url = fetched.next_url
        except Exception as exc:  # delivered in order; CancelledError is not caught
            queue.put_nowait(exc)

    async def create(
        self,
        integration_id: int,
        *,
        base_url: str,
        full_url: str | UnsetType | None = UNSET,
        method: str | UnsetType | None = UNSET,
        response_code: int | UnsetType | None = UNSET,
        response: LogResponse | Mapping[str, Any] | UnsetType | None = UNSET,
        request: LogRequest | Mapping[str, Any] | UnsetType | None = UNSET,
        created_at: datetime | UnsetType | None = UNSET,
        exception_type: str | UnsetType | None = UNSET,
        exception: str | UnsetType | None = UNSET,
    ) -> IntegrationLog:
        """POST /integrations/{id}/logs — record an exception log; returns the stored log.

        Not idempotent: it is retried only when the server certainly did not process it.
        """
        iid = check.integration_id(integration_id)
        body = _LogCreate(base_url=check.non_empty_str(base_url, "base_url"))
        if full_url is not UNSET:
            body.full_url = check.optional_str(full_url, "full_url")
        if method is not UNSET:
            body.method = check.optional_str(method, "method")
        if response_code is not UNSET:
            body.response_code = check.optional_non_negative_int(response_code, "response_code")
        if response is not UNSET:
            body.response = check.optional_struct(response, LogResponse, "response")
        if request is not UNSET:
            body.request = check.optional_struct(request, LogRequest, "request")
        if created_at is not UNSET:
            body.created_at = (
                None if created_at is None else check.aware_datetime(created_at, "created_at")
            )
        if exception_type is not UNSET:
            body.exception_type = check.optional_str(exception_type, "exception_type")
        if exception is not UNSET:
            body.exception = check.optional_str(exception, "exception")
        resp = await self._transport.request(
            "POST",
            URL(f"{self._transport.config.base}/integrations/{iid}/logs", encoded=True),
            body=encode_json(body),
            idempotent=False,
        )
        return resp.decode(LOG_DECODER).data
