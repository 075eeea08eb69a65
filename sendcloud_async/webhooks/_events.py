"""The typed webhook events ``parse_event`` returns: msgspec Structs, one per ``action``.

Integration events use the webhook's v2-style field names; parcel fields are typed
for what is sent in practice; every field the spec does not require is optional,
and fields the models do not know are ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, TypeAlias, get_args

import msgspec

from .._time import as_utc

#: Where event times count from: ``timestamp`` numbers are seconds (or ms) since then.
EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class WebhookIntegration(msgspec.Struct, kw_only=True):
    """The integration in an integration event, with the webhook's (v2-style) field names.

    These differ from ``sendcloud_async.Integration``: ``system`` is its ``type``,
    ``failing_since`` its ``started_failing_at``, ``last_fetch`` its
    ``last_fetched_at`` and ``last_updated_at`` its ``updated_at``.
    """

    id: int | None = None
    shop_name: str | None = None
    shop_url: str | None = None
    system: str | None = None
    failing_since: datetime | None = None
    last_fetch: datetime | None = None
    last_updated_at: datetime | None = None
    service_point_enabled: bool | None = None
    service_point_carriers: list[str] = msgspec.field(default_factory=list)
    webhook_active: bool | None = None
    webhook_url: str | None = None

    def __post_init__(self) -> None:
        self.failing_since = as_utc(self.failing_since)
        self.last_fetch = as_utc(self.last_fetch)
        self.last_updated_at = as_utc(self.last_updated_at)


class ParcelAddressDivided(msgspec.Struct, kw_only=True):
    """The recipient's street and house number (``house_number`` arrives as string or int)."""

    street: str | None = None
    house_number: str | int | None = None


class ParcelLabel(msgspec.Struct, kw_only=True):
    """Label download URLs."""

    normal_printer: list[str] | None = None
    label_printer: str | None = None


class ParcelStatus(msgspec.Struct, kw_only=True):
    """A parcel status: Sendcloud's id and its description."""

    id: int | None = None
    message: str | None = None


class ParcelCountry(msgspec.Struct, kw_only=True):
    """The recipient's country."""

    iso_2: str | None = None
    iso_3: str | None = None
    name: str | None = None


class ParcelShipment(msgspec.Struct, kw_only=True):
    """The shipping method of a parcel."""

    id: int | None = None
    name: str | None = None


class Parcel(msgspec.Struct, kw_only=True):
    """The parcel in a ``parcel_status_changed`` event; every field is optional.

    ``weight`` is a string in the spec (``"2.000"``) but may be a number;
    ``date_created`` is kept as sent because its format differs between API
    versions. Fields not listed here are ignored.
    """

    id: int | None = None
    name: str | None = None
    company_name: str | None = None
    address: str | None = None
    address_divided: ParcelAddressDivided | None = None
    city: str | None = None
    postal_code: str | None = None
    telephone: str | None = None
    email: str | None = None
    date_created: str | None = None
    tracking_number: str | None = None
    weight: str | float | None = None
    label: ParcelLabel | None = None
    customs_declaration: dict[str, Any] | None = None
    status: ParcelStatus | None = None
    data: dict[str, Any] | list[Any] | None = None
    country: ParcelCountry | None = None
    shipment: ParcelShipment | None = None
    order_number: str | None = None
    shipment_uuid: str | None = None
    external_order_id: str | None = None
    external_shipment_id: str | None = None


class ReturnItem(msgspec.Struct, kw_only=True):
    """One returned item; ``quantity`` is required by the spec."""

    quantity: int
    item_id: str | int | None = None
    description: str | None = None
    sku: str | None = None
    hs_code: str | None = None
    return_reason_id: int | None = None


class ReturnData(msgspec.Struct, kw_only=True):
    """The return in a ``return_created`` event; ``id`` is required by the spec."""

    id: int
    brand_id: int | None = None
    order_number: str | None = None
    return_reason_id: int | None = None
    return_address_id: int | None = None
    paid_return: bool | None = None
    delivery_choice: str | None = None
    refund_type: str | None = None
    items: list[ReturnItem] = msgspec.field(default_factory=list)


class _IntegrationEvent(msgspec.Struct, kw_only=True):
    action: str
    timestamp: datetime
    timestamp_raw: int | float
    integration: WebhookIntegration | None = None


class IntegrationConnected(_IntegrationEvent, kw_only=True):
    """``integration_connected``: the integration was created in Sendcloud."""

    action: str = "integration_connected"


class IntegrationUpdated(_IntegrationEvent, kw_only=True):
    """``integration_updated`` (the spec's ``IntegrationModified``): its settings changed."""

    action: str = "integration_updated"


class IntegrationDeleted(_IntegrationEvent, kw_only=True):
    """``integration_deleted``: the integration was removed from Sendcloud."""

    action: str = "integration_deleted"


class ParcelStatusChanged(msgspec.Struct, kw_only=True):
    """``parcel_status_changed``: a parcel of this integration moved to another status.

    ``carrier_status_change_timestamp`` is when the carrier recorded the change
    (same unit rule as ``timestamp``), ``None`` if not sent.
    """

    action: str = "parcel_status_changed"
    timestamp: datetime
    timestamp_raw: int | float
    carrier_status_change_timestamp: datetime | None = None
    carrier_status_change_timestamp_raw: int | float | None = None
    parcel: Parcel | None = None


class ReturnCreated(msgspec.Struct, kw_only=True):
    """``return_created``: a return was created (API or Return Portal) for a parcel."""

    action: str = "return_created"
    timestamp: datetime
    timestamp_raw: int | float
    data: ReturnData


class UnknownEvent(msgspec.Struct, kw_only=True):
    """An event whose ``action`` this SDK does not know; ``payload`` is the whole JSON object.

    ``timestamp`` is ``None`` when the payload has no usable numeric ``timestamp``.
    """

    action: str
    timestamp: datetime | None = None
    timestamp_raw: int | float | None = None
    payload: dict[str, Any] = msgspec.field(default_factory=dict)


WebhookEvent: TypeAlias = (
    IntegrationConnected
    | IntegrationUpdated
    | IntegrationDeleted
    | ParcelStatusChanged
    | ReturnCreated
    | UnknownEvent
)
"""Everything ``parse_event`` can return."""


#: The classes of ``WebhookEvent``, for ``isinstance``.
EVENT_TYPES: Final[tuple[type, ...]] = get_args(WebhookEvent)


def object_scope(event: WebhookEvent) -> str | None:
    """What an event is about: ``parcel:ID``, ``integration:ID``, ``return:ID``, or ``None``."""
    match event:
        case ParcelStatusChanged(parcel=Parcel(id=int() as ident)):
            return f"parcel:{ident}"
        case (
            IntegrationConnected(integration=WebhookIntegration(id=int() as ident))
            | IntegrationUpdated(integration=WebhookIntegration(id=int() as ident))
            | IntegrationDeleted(integration=WebhookIntegration(id=int() as ident))
        ):
            return f"integration:{ident}"
        case ReturnCreated(data=ReturnData(id=ident)):
            return f"return:{ident}"
    return None
