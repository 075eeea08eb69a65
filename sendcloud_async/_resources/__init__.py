"""Thin resource classes: validate, build the path, one transport call, name the response type."""

from .integrations import Integrations
from .logs import Logs
from .shop_order_statuses import ShopOrderStatuses

__all__ = ["Integrations", "Logs", "ShopOrderStatuses"]
