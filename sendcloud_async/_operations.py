"""Every operation of the API the SDK calls: name, method, path template, response type.

The resources name one of these per call and pass their checked arguments;
the transport builds the URL from the template and decodes the answer. The
templates are the OpenAPI document's paths (a test checks each one against it).
"""

from __future__ import annotations

from typing import Final

from ._models import (
    INTEGRATION_DECODER,
    INTEGRATION_LIST_DECODER,
    LOG_DECODER,
    LOG_LIST_DECODER,
    LOG_STAMP_LIST_DECODER,
    SHOP_ORDER_STATUS_LIST_DECODER,
    STATUS_MAPPING_DECODER,
)
from ._request import NO_CONTENT, Operation

__all__ = [
    "ALL",
    "INTEGRATIONS_DELETE",
    "INTEGRATIONS_GET",
    "INTEGRATIONS_LIST",
    "INTEGRATIONS_UPDATE",
    "LOGS_CREATE",
    "LOGS_LIST",
    "LOGS_LIST_ONE",
    "SHOP_ORDER_STATUSES_GET_MAPPING",
    "SHOP_ORDER_STATUSES_LIST",
    "SHOP_ORDER_STATUSES_REPLACE",
    "SHOP_ORDER_STATUSES_SET_MAPPING",
]

INTEGRATIONS_LIST: Final = Operation(
    "integrations.list", "GET", "/integrations", INTEGRATION_LIST_DECODER
)
INTEGRATIONS_GET: Final = Operation(
    "integrations.get", "GET", "/integrations/{id}", INTEGRATION_DECODER
)
INTEGRATIONS_UPDATE: Final = Operation(
    "integrations.update", "PATCH", "/integrations/{id}", NO_CONTENT
)
INTEGRATIONS_DELETE: Final = Operation(
    "integrations.delete", "DELETE", "/integrations/{id}", NO_CONTENT
)

#: The logs of every integration of the account, and of one (``logs.pages``,
#: ``logs.iter``, ``logs.watch``): one operation of the SDK, two paths of the API.
LOGS_LIST: Final = Operation("logs.list", "GET", "/integrations/logs", LOG_LIST_DECODER)
LOGS_LIST_ONE: Final = Operation("logs.list", "GET", "/integrations/{id}/logs", LOG_LIST_DECODER)
#: A page of either read as ``LogStamp`` (``id`` and ``created_at`` only): how a watch
#: looks at a page first, so that it decodes in full only the logs it delivers. A
#: second decoder of those operations, not an operation (so not in ``__all__``).
LOGS_LIST_STAMPS: Final = LOG_STAMP_LIST_DECODER
#: Not idempotent: repeated only when it was certainly not sent.
LOGS_CREATE: Final = Operation("logs.create", "POST", "/integrations/{id}/logs", LOG_DECODER)

SHOP_ORDER_STATUSES_LIST: Final = Operation(
    "shop_order_statuses.list", "GET", "/shop-order-statuses", SHOP_ORDER_STATUS_LIST_DECODER
)
#: A POST that replaces the whole set: repeating it changes nothing.
SHOP_ORDER_STATUSES_REPLACE: Final = Operation(
    "shop_order_statuses.replace", "POST", "/shop-order-statuses", NO_CONTENT, idempotent=True
)
SHOP_ORDER_STATUSES_GET_MAPPING: Final = Operation(
    "shop_order_statuses.get_mapping",
    "GET",
    "/shop-order-statuses/mapping",
    STATUS_MAPPING_DECODER,
)
#: A POST that sets all four categories: repeating it changes nothing.
SHOP_ORDER_STATUSES_SET_MAPPING: Final = Operation(
    "shop_order_statuses.set_mapping",
    "POST",
    "/shop-order-statuses/mapping",
    NO_CONTENT,
    idempotent=True,
)

#: Every operation above, for checks that must cover them all.
ALL: Final = (
    INTEGRATIONS_LIST,
    INTEGRATIONS_GET,
    INTEGRATIONS_UPDATE,
    INTEGRATIONS_DELETE,
    LOGS_LIST,
    LOGS_LIST_ONE,
    LOGS_CREATE,
    SHOP_ORDER_STATUSES_LIST,
    SHOP_ORDER_STATUSES_REPLACE,
    SHOP_ORDER_STATUSES_GET_MAPPING,
    SHOP_ORDER_STATUSES_SET_MAPPING,
)
