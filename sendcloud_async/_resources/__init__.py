"""Thin resource classes: check the arguments, name the operation, one transport call."""

from .integrations import Integrations
from .logs import Logs
from .shop_order_statuses import ShopOrderStatuses

__all__ = ["Integrations", "Logs", "ShopOrderStatuses"]
