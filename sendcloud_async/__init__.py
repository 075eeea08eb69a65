"""sendcloud-async: an asyncio-first SDK for the Sendcloud Integrations API v3.

Public names are re-exported here; everything in underscore modules is private.
"""

from . import webhooks
from ._auth import BasicAuth
from ._client import SendcloudClient
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    DecodeError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    SendcloudError,
    ServerError,
)
from ._models import (
    ErrorObject,
    Integration,
    IntegrationLog,
    LogPage,
    LogRequest,
    LogResponse,
    ShopOrderStatus,
    ShopOrderStatusInput,
    StatusMapping,
    StatusMappingEntry,
    StatusTranslation,
)
from ._oauth2 import OAuth2ClientCredentials
from ._pool import AccountPool
from ._ratelimit import RateLimits
from ._state import MemoryState
from ._version import __version__

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AccountPool",
    "AuthenticationError",
    "BadRequestError",
    "BasicAuth",
    "DecodeError",
    "ErrorObject",
    "Integration",
    "IntegrationLog",
    "InvalidInputError",
    "LogPage",
    "LogRequest",
    "LogResponse",
    "MemoryState",
    "NotFoundError",
    "OAuth2ClientCredentials",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimits",
    "SendcloudClient",
    "SendcloudError",
    "ServerError",
    "ShopOrderStatus",
    "ShopOrderStatusInput",
    "StatusMapping",
    "StatusMappingEntry",
    "StatusTranslation",
    "__version__",
    "webhooks",
]
