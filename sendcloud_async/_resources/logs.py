"""``client.logs``: page through and create integration exception logs."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

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
    cursor_to_str,
    encode_query_value,
    find_next_link,
    next_page,
)
from .._transport import encode_json

if TYPE_CHECKING:
    from .._transport import Transport


_T = TypeVar("_T")


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
    ) -> AsyncGenerator[LogPage, None]:
        """GET /integrations/logs or /integrations/{id}/logs — page by page.

        Each ``LogPage`` carries ``next_cursor``: pass it back as ``cursor=`` to
        resume exactly after that page. Arguments are checked when called,
        before any request.
        """
        return self._walk(self._first_url(integration_id, cursor, page_size))

    def iter(
        self,
        *,
        integration_id: int | None = None,
        cursor: str | datetime | None = None,
        page_size: int | None = None,
    ) -> AsyncGenerator[IntegrationLog, None]:
        """GET /integrations/logs or /integrations/{id}/logs — log by log, across pages."""
        return self._items(self._walk(self._first_url(integration_id, cursor, page_size)))

    async def _items(
        self, pages: AsyncGenerator[LogPage, None]
    ) -> AsyncGenerator[IntegrationLog, None]:
        async with aclosing(pages):
            async for page in pages:
                for item in page.items:
                    yield item

    async def _walk(self, url: URL) -> AsyncGenerator[LogPage, None]:
        transport = self._transport
        origin = transport.config.origin
        seen = {hash(str(url))}
        while True:
            resp = await transport.request("GET", url)
            items = resp.decode(LOG_LIST_DECODER).data
            target = find_next_link(resp.headers.getall("Link", ()))
            if target is None:
                yield LogPage(items=items)
                return
            url, cursor = next_page(target, response_url=resp.url, origin=origin)
            key = hash(str(url))
            if key in seen:
                raise PaginationError(
                    f"the server sent a next-page link that was already visited ({url}); "
                    "stopping instead of looping"
                )
            seen.add(key)
            yield LogPage(items=items, next_cursor=cursor, next_url=str(url))

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
            if response_code is not None and (
                isinstance(response_code, bool)
                or not isinstance(response_code, int)
                or response_code < 0
            ):
                raise InvalidInputError("response_code must be an int of 0 or more, or None")
            body.response_code = response_code
        if response is not UNSET:
            body.response = _as(response, LogResponse, "response")
        if request is not UNSET:
            body.request = _as(request, LogRequest, "request")
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


def _as(value: object, typ: type[_T], name: str) -> _T | None:
    if value is None or isinstance(value, typ):
        return value
    if isinstance(value, Mapping):
        try:
            return msgspec.convert(value, typ)
        except msgspec.ValidationError as exc:
            raise InvalidInputError(f"{name}: {exc}") from None
    raise InvalidInputError(f"{name} must be a {typ.__name__}, a dict or None")
