"""``client.integrations``: list, get, update and delete integrations."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

import msgspec
from msgspec import UNSET, UnsetType
from yarl import URL

from .. import _validate as check
from .._errors import InvalidInputError
from .._models import INTEGRATION_DECODER, INTEGRATION_LIST_DECODER, Integration
from .._pagination import encode_query_value
from .._transport import encode_json

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .._transport import Transport


class _IntegrationPatch(msgspec.Struct, kw_only=True, omit_defaults=True):
    # UNSET fields are omitted; an explicit None is sent as null.
    shop_name: str | UnsetType = UNSET
    shop_url: str | UnsetType = UNSET
    service_point_enabled: bool | UnsetType = UNSET
    service_point_carriers: list[str] | UnsetType = UNSET
    webhook_active: bool | UnsetType = UNSET
    webhook_url: str | UnsetType | None = UNSET
    feedback_type: str | UnsetType = UNSET


class Integrations:
    """The integrations of the account."""

    __slots__ = ("_transport",)

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def _url(self, path: str) -> URL:
        return URL(f"{self._transport.config.base}{path}", encoded=True)

    async def list(self, sort: str | None = None) -> builtins.list[Integration]:
        """GET /integrations — every integration of the account.

        ``sort`` names a field (``created_at``, ``updated_at``, ``last_fetch``,
        ``failing_since``, ``integration_type``), with a ``-`` prefix for descending.
        """
        path = "/integrations"
        if sort is not None:
            path += f"?sort={encode_query_value(check.non_empty_str(sort, 'sort'))}"
        resp = await self._transport.request("GET", self._url(path))
        return resp.decode(INTEGRATION_LIST_DECODER).data

    async def get(self, integration_id: int) -> Integration:
        """GET /integrations/{id} — one integration."""
        iid = check.integration_id(integration_id)
        resp = await self._transport.request("GET", self._url(f"/integrations/{iid}"))
        return resp.decode(INTEGRATION_DECODER).data

    async def update(
        self,
        integration_id: int,
        *,
        shop_name: str | UnsetType = UNSET,
        shop_url: str | UnsetType = UNSET,
        service_point_enabled: bool | UnsetType = UNSET,
        service_point_carriers: Sequence[str] | UnsetType = UNSET,
        webhook_active: bool | UnsetType = UNSET,
        webhook_url: str | UnsetType | None = UNSET,
        feedback_type: str | UnsetType = UNSET,
    ) -> None:
        """PATCH /integrations/{id} — change only the fields passed.

        ``webhook_url=None`` sends ``null``; a field not passed is not sent.
        """
        iid = check.integration_id(integration_id)
        patch = _IntegrationPatch()
        if shop_name is not UNSET:
            patch.shop_name = check.non_empty_str(
                shop_name, "shop_name", max_len=check.MAX_SHOP_NAME
            )
        if shop_url is not UNSET:
            patch.shop_url = check.non_empty_str(shop_url, "shop_url")
        if service_point_enabled is not UNSET:
            patch.service_point_enabled = check.boolean(
                service_point_enabled, "service_point_enabled"
            )
        if service_point_carriers is not UNSET:
            patch.service_point_carriers = check.string_list(
                service_point_carriers, "service_point_carriers"
            )
        if webhook_active is not UNSET:
            patch.webhook_active = check.boolean(webhook_active, "webhook_active")
        if webhook_url is not UNSET:
            patch.webhook_url = (
                None if webhook_url is None else check.non_empty_str(webhook_url, "webhook_url")
            )
        if feedback_type is not UNSET:
            patch.feedback_type = check.choice(feedback_type, "feedback_type", check.FEEDBACK_TYPES)
        if patch == _IntegrationPatch():
            raise InvalidInputError("update() needs at least one field to change")
        if patch.webhook_active is True and patch.webhook_url is None:
            raise InvalidInputError("webhook_active=True needs a webhook_url, not None")
        await self._transport.request(
            "PATCH", self._url(f"/integrations/{iid}"), body=encode_json(patch)
        )

    async def delete(self, integration_id: int) -> None:
        """DELETE /integrations/{id} — delete an integration."""
        iid = check.integration_id(integration_id)
        await self._transport.request("DELETE", self._url(f"/integrations/{iid}"))
