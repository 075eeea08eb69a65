"""``client.shop_order_statuses``: a shop's order statuses and their mapping onto Sendcloud's."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from yarl import URL

from .. import _validate as check
from .._models import (
    SHOP_ORDER_STATUS_LIST_DECODER,
    STATUS_MAPPING_DECODER,
    ShopOrderStatus,
    ShopOrderStatusInput,
    StatusMapping,
    StatusMappingEntry,
)
from .._transport import encode_json

if TYPE_CHECKING:
    from .._transport import Transport


class _StatusesBody(msgspec.Struct):
    integration_id: int
    statuses: builtins.list[ShopOrderStatusInput]


class _MappingBody(msgspec.Struct):
    integration_id: int
    mapping: builtins.list[StatusMappingEntry]


class ShopOrderStatuses:
    """Shop order statuses of an integration (Prestashop v2 only, per Sendcloud)."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _url(self, path: str) -> URL:
        return URL(f"{self._transport.config.base}{path}", encoded=True)

    async def list(
        self,
        integration_id: int,
        *,
        language: str | None = None,
        show_deleted: bool | None = None,
    ) -> builtins.list[ShopOrderStatus]:
        """GET /shop-order-statuses — the statuses, in ``language`` (default en-gb)."""
        query = f"integration_id={check.integration_id(integration_id)}"
        if language is not None:
            query += f"&language={check.choice(language, 'language', check.LANGUAGES)}"
        if show_deleted is not None:
            deleted = check.boolean(show_deleted, "show_deleted")
            query += f"&show_deleted={'true' if deleted else 'false'}"
        resp = await self._transport.request("GET", self._url(f"/shop-order-statuses?{query}"))
        return resp.decode(SHOP_ORDER_STATUS_LIST_DECODER).data

    async def replace(
        self,
        integration_id: int,
        statuses: Sequence[ShopOrderStatusInput | Mapping[str, Any]],
        *,
        allow_empty: bool = False,
    ) -> None:
        """POST /shop-order-statuses — make ``statuses`` the complete set.

        Statuses not listed are deleted on the server; an empty list (which
        deletes them all) needs ``allow_empty=True``.
        """
        iid = check.integration_id(integration_id)
        body = _StatusesBody(iid, check.shop_order_statuses(statuses, allow_empty=allow_empty))
        await self._transport.request(
            "POST",
            self._url("/shop-order-statuses"),
            body=encode_json(body),
            idempotent=True,  # it replaces the whole set: repeating it changes nothing
        )

    async def get_mapping(self, integration_id: int) -> StatusMapping:
        """GET /shop-order-statuses/mapping — status categories mapped onto shop statuses."""
        iid = check.integration_id(integration_id)
        resp = await self._transport.request(
            "GET", self._url(f"/shop-order-statuses/mapping?integration_id={iid}")
        )
        return resp.decode(STATUS_MAPPING_DECODER).data

    async def set_mapping(
        self,
        integration_id: int,
        mapping: Mapping[str, str | None] | Sequence[StatusMappingEntry],
    ) -> None:
        """POST /shop-order-statuses/mapping — map all four status categories.

        ``mapping`` is ``{"READY_TO_SEND": "11", "IN_TRANSIT": "11", "DELIVERED": "12",
        "CANCEL": None}`` or a sequence of ``StatusMappingEntry``.
        """
        iid = check.integration_id(integration_id)
        body = _MappingBody(iid, check.status_mapping(mapping))
        await self._transport.request(
            "POST",
            self._url("/shop-order-statuses/mapping"),
            body=encode_json(body),
            idempotent=True,  # it sets all four categories: repeating it changes nothing
        )
