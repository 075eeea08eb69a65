"""``client.shop_order_statuses``: a shop's order statuses and their mapping onto Sendcloud's."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from .. import _validate as check
from .._models import ShopOrderStatus, ShopOrderStatusInput, StatusMapping, StatusMappingEntry
from .._operations import (
    SHOP_ORDER_STATUSES_GET_MAPPING,
    SHOP_ORDER_STATUSES_LIST,
    SHOP_ORDER_STATUSES_REPLACE,
    SHOP_ORDER_STATUSES_SET_MAPPING,
)

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

    async def list(
        self,
        integration_id: int,
        *,
        language: str | None = None,
        show_deleted: bool | None = None,
    ) -> builtins.list[ShopOrderStatus]:
        """GET /shop-order-statuses — the statuses, in ``language`` (default en-gb)."""
        iid = check.integration_id(integration_id)
        if language is not None:
            language = check.choice(language, "language", check.LANGUAGES)
        if show_deleted is not None:
            show_deleted = check.boolean(show_deleted, "show_deleted")
        query = (("integration_id", iid), ("language", language), ("show_deleted", show_deleted))
        return (await self._transport.call(SHOP_ORDER_STATUSES_LIST, query=query)).data

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
        await self._transport.call(SHOP_ORDER_STATUSES_REPLACE, body=body)

    async def get_mapping(self, integration_id: int) -> StatusMapping:
        """GET /shop-order-statuses/mapping — status categories mapped onto shop statuses."""
        iid = check.integration_id(integration_id)
        query = (("integration_id", iid),)
        return (await self._transport.call(SHOP_ORDER_STATUSES_GET_MAPPING, query=query)).data

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
        await self._transport.call(SHOP_ORDER_STATUSES_SET_MAPPING, body=body)
