"""``client.logs``: page through and create integration exception logs."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import UNSET, UnsetType
from yarl import URL

from .. import _validate as check
from .._defaults import DEFAULT_PAGE_SIZE, DEFAULT_WATCH_INTERVAL, DEFAULT_WATCH_START
from .._errors import InvalidInputError
from .._models import IntegrationLog, LogPage, LogRequest, LogResponse, LogStamp
from .._operations import LOGS_CREATE, LOGS_LIST, LOGS_LIST_ONE, LOGS_LIST_STAMPS
from .._pagination import PaginationError, cursor_in, cursor_to_str, find_next_link, follow_link
from .._sources._watch import watch
from .._sources._watch_pages import Page
from .._sources._watch_state import DEFAULT_LOOKBACK, LogBatch, WatchState, begin, check_lookback

if TYPE_CHECKING:
    from .._request import Operation, Response
    from .._transport import Transport


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
        return self.resp.decode(LOGS_LIST.decoder).data

    def stamps(self) -> list[LogStamp]:
        """The page's logs as ``id`` and ``created_at`` only (``items()`` decodes them all)."""
        return self.resp.decode(LOGS_LIST_STAMPS).data

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


class _Seen:
    """A walk: its operation and first URL, the URLs it visited (hashed), the last body."""

    __slots__ = ("first", "last_body", "op", "urls")

    def __init__(self, op: Operation[Any], first: URL) -> None:
        self.op = op
        self.first = first
        #: Hashes of the URLs visited; made at the first next link (most walks of a
        #: watch have none, and a URL's text is not free).
        self.urls: set[int] | None = None
        self.last_body = b""


class _Handoff:
    """Pages from the read-ahead producer to the consumer, at most ``depth`` beyond its own.

    The producer takes a slot before each request (``slot``); a page handed to a
    consumer that is already waiting for it (``put``) frees its slot at once, so
    the producer sends the next request before the consumer even runs: in the
    network-bound case a page costs one task switch, not two. A page that was
    already waiting frees its slot when taken (``take``); ``producer_waits`` then
    says the producer needs a loop turn to use it.
    """

    __slots__ = ("_free", "_giver", "_items", "_taker", "producer_waits")

    def __init__(self, depth: int) -> None:
        self._free = depth
        self._items: deque[_Fetched | Exception] = deque()
        #: The consumer, waiting for a page (set only while the queue is empty).
        self._taker: asyncio.Future[None] | None = None
        #: The producer, waiting for a slot.
        self._giver: asyncio.Future[None] | None = None
        self.producer_waits = False

    async def slot(self) -> None:
        while self._free <= 0:
            giver = self._giver = asyncio.get_running_loop().create_future()
            try:
                await giver
            finally:
                self._giver = None
        self._free -= 1

    def put(self, item: _Fetched | Exception) -> None:
        self._items.append(item)
        taker = self._taker
        if taker is not None:
            self._taker = None
            if not taker.done():
                self._free += 1  # the waiting consumer takes this page: its slot is free
                taker.set_result(None)

    async def take(self) -> _Fetched | Exception:
        if self._items:
            # Waiting here already: its slot comes back now.
            self._free += 1
            giver = self._giver
            self.producer_waits = giver is not None
            if giver is not None and not giver.done():
                giver.set_result(None)
            return self._items.popleft()
        taker = self._taker = asyncio.get_running_loop().create_future()
        try:
            await taker
        finally:
            self._taker = None
        self.producer_waits = False
        return self._items.popleft()


class Logs:
    """Integration exception logs, paged by a date-time cursor through ``Link`` headers."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _first(
        self, integration_id: int | None, cursor: str | datetime | None, page_size: int | None
    ) -> _Seen:
        """A walk from its first page (the account's logs, or one integration's)."""
        path = None if integration_id is None else {"id": check.integration_id(integration_id)}
        op = LOGS_LIST if path is None else LOGS_LIST_ONE
        size = check.page_size(page_size)
        after = None if cursor is None else cursor_to_str(cursor)
        url = self._transport.url(op, path, (("cursor", after), ("page_size", size)))
        return _Seen(op, url)

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
        seen = self._first(integration_id, cursor, page_size)
        depth = _read_ahead(read_ahead)
        return self._walk_ahead(seen, depth) if depth else self._walk(seen)

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

    async def _fetch(self, url: URL, seen: _Seen) -> _Fetched:
        """Ask for one page of ``seen``'s walk and work out where the next one is.

        The items are not decoded here: ``iter()`` and ``pages()`` do it when used.

        A next link already visited, or a page whose body repeats the previous page's
        exactly (the same logs again under a new cursor), stops the walk with
        ``PaginationError`` instead of looping forever.
        """
        resp = await self._transport.send(seen.op, url)
        repeated = resp.body == seen.last_body
        seen.last_body = resp.body
        next_url = self._next_url(resp)
        if next_url is None:
            return _Fetched(resp, None)
        key = hash(str(next_url))
        urls = seen.urls
        if urls is None:
            urls = seen.urls = {hash(str(seen.first))}
        if key in urls:
            raise PaginationError(
                f"the server sent a next-page link that was already visited ({next_url}); "
                "stopping instead of looping"
            )
        if repeated:
            raise PaginationError(
                "the server sent the previous page again under a new cursor; "
                "stopping instead of looping"
            )
        urls.add(key)
        return _Fetched(resp, next_url)

    def _next_url(self, resp: Response) -> URL | None:
        """Where the page after ``resp`` is (its ``Link`` header), checked to be the API's."""
        target = find_next_link(resp.headers.getall("Link", ()))
        if target is None:
            return None
        return follow_link(target, response_url=resp.url, origin=self._transport.config.origin)

    async def _walk(self, seen: _Seen) -> AsyncGenerator[_Fetched, None]:
        # Strictly sequential: one request, yield, next request.
        url = seen.first
        while True:
            fetched = await self._fetch(url, seen)
            yield fetched
            if fetched.next_url is None:
                return
            url = fetched.next_url

    async def _walk_ahead(self, seen: _Seen, depth: int) -> AsyncGenerator[_Fetched, None]:
        # A producer task follows the links, fetching at most ``depth`` pages (raw
        # bodies) beyond the one the consumer is handling (see ``_Handoff``). Errors
        # travel through the hand-off, after the pages fetched before them.
        handoff = _Handoff(depth)
        producer = asyncio.get_running_loop().create_task(self._produce(seen, handoff))
        try:
            while True:
                fetched = await handoff.take()
                if isinstance(fetched, Exception):
                    raise fetched
                if handoff.producer_waits and fetched.next_url is not None:
                    # The page was waiting for us: the producer is held for a slot we
                    # just gave back. Let it put the next request on the wire before we
                    # hand this page over: a consumer that never awaits (decoding,
                    # writing) would otherwise keep it from running until the next page
                    # is asked for, and nothing would overlap. (When we had to wait for
                    # the page, the producer already sent the next request: no turn.)
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

    async def _produce(self, seen: _Seen, handoff: _Handoff) -> None:
        url = seen.first
        try:
            while True:
                await handoff.slot()
                fetched = await self._fetch(url, seen)
                handoff.put(fetched)
                if fetched.next_url is None:
                    return
                url = fetched.next_url
        except Exception as exc:  # delivered in order; CancelledError is not caught
            handoff.put(exc)

    def watch(
        self,
        state: WatchState | bytes | None = None,
        *,
        integration_id: int | None = None,
        start: str | datetime = DEFAULT_WATCH_START,
        interval: float = DEFAULT_WATCH_INTERVAL,
        page_size: int = DEFAULT_PAGE_SIZE,
        once: bool = False,
        lookback: float | timedelta = DEFAULT_LOOKBACK,
    ) -> AsyncGenerator[LogBatch, None]:
        """GET /integrations/logs (or /integrations/{id}/logs) — the new logs, as they come.

        Yields a ``LogBatch`` per page of logs no earlier batch delivered; pass a
        batch's ``state`` back to continue exactly after it. Sleeps ``interval``
        seconds once caught up (``once=True``: stops). ``start`` ("now", "all" or an
        aware datetime) applies only without a ``state``. Every poll also re-reads
        ``lookback`` (seconds or a ``timedelta``, 30 s by default) behind the newest
        log delivered, so that a log that becomes visible late is still delivered
        once (``LogBatch.late`` says which and how late). Arguments are checked when
        called, before any request. See ``_sources/_watch.py`` (and the modules it
        names) for how it works.
        """
        iid = None if integration_id is None else check.integration_id(integration_id)
        size = check.required_page_size(page_size)
        wait = check.positive_seconds(interval, "interval")
        stop = check.boolean(once, "once")
        window = check_lookback(lookback)
        first = begin(state, start=start, integration_id=iid)
        return self._watch(first, iid, size, wait, stop, window)

    def _watch(
        self,
        first: WatchState,
        iid: int | None,
        size: int,
        wait: float,
        stop: bool,
        window: timedelta,
        states: bool = False,
    ) -> AsyncGenerator[LogBatch, None]:
        """``watch`` with every argument checked already (``begin`` made ``first``).

        A ``LogWatcher`` polls through here: it checked its options once, and the
        state it passes is the watch's own (or one it checked when it loaded it).
        ``states``: also yield the state of a poll that delivered nothing, as a batch
        with no logs (``_sources._watch.watch``).
        """

        path = None if iid is None else {"id": iid}
        op = LOGS_LIST if path is None else LOGS_LIST_ONE
        transport = self._transport
        url = transport.url
        send = transport.send

        async def fetch(cursor: str | None) -> Page:
            # Each request stands alone: the watch itself refuses links that loop
            # (``_sources._watch_pages.advance``), and it may ask for the same page twice
            # on purpose.
            # Its arguments were checked when the watch began (``_first`` checks them).
            resp = await send(op, url(op, path, (("cursor", cursor), ("page_size", size))))
            next_url = self._next_url(resp)
            fetched = _Fetched(resp, next_url)
            cursor_next = None if next_url is None else cursor_in(next_url)
            # Stamps first: the watch decodes the logs in full only if it delivers one.
            # The server's ``Date`` goes as sent: the watch reads it once a poll, if at all.
            date = resp.headers.get("Date")
            return Page(fetched.stamps(), next_url is not None, cursor_next, fetched.items, date)

        return watch(fetch, first, interval=wait, once=stop, lookback=window, states=states)

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
        return (await self._transport.call(LOGS_CREATE, {"id": iid}, body=body)).data
