"""``client.integrations``: list, get, update and delete integrations."""

from __future__ import annotations

import builtins
from typing import TYPE_CHECKING

import msgspec
from msgspec import UNSET, UnsetType

from .. import _validate as check
from .._errors import InvalidInputError
from .._models import Integration
from .._operations import (
    INTEGRATIONS_DELETE,
    INTEGRATIONS_GET,
    INTEGRATIONS_LIST,
    INTEGRATIONS_UPDATE,
)

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

    async def list(self, sort: str | None = None) -> builtins.list[Integration]:
        """GET /integrations — every integration of the account.

        ``sort`` names a field (``created_at``, ``updated_at``, ``last_fetch``,
        ``failing_since``, ``integration_type``), with a ``-`` prefix for descending.
        """
        order = None if sort is None else check.non_empty_str(sort, "sort")
        return (await self._transport.call(INTEGRATIONS_LIST, query=(("sort", order),))).data

    async def get(self, integration_id: int) -> Integration:
        """GET /integrations/{id} — one integration."""
        iid = check.integration_id(integration_id)
        return (await self._transport.call(INTEGRATIONS_GET, {"id": iid})).data

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
        await self._transport.call(INTEGRATIONS_UPDATE, {"id": iid}, body=patch)

    async def delete(self, integration_id: int) -> None:
        """DELETE /integrations/{id} — delete an integration."""
        iid = check.integration_id(integration_id)
        await self._transport.call(INTEGRATIONS_DELETE, {"id": iid})
