"""sendcloud-async: an asyncio-first SDK for the Sendcloud Integrations API v3.

Public names are re-exported here; everything in underscore modules is private.
"""

import logging as _logging

from . import webhooks
from ._auth import BasicAuth
from ._client import SendcloudClient
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    DecodeError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseTooLargeError,
    SendcloudError,
    ServerError,
    StateUnavailableError,
)
from ._export import ExportError
from ._export_walks import export_logs_per_integration
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
from ._pagination import PaginationError
from ._pool import AccountPool
from ._ratelimit import GateBlockedError, RateLimits
from ._state import MemoryState
from ._version import __version__
from ._watch import LateLog, LogBatch, WatchState
from ._watchers import (
    AccountFailed,
    AccountPolled,
    AccountState,
    DirectoryWatchStore,
    IntegrationFailing,
    IntegrationRecovered,
    LogWatcher,
    MemoryWatchStore,
    NewLogs,
    WatchEvent,
    WatchStore,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AccountFailed",
    "AccountPolled",
    "AccountPool",
    "AccountState",
    "AuthenticationError",
    "BadRequestError",
    "BasicAuth",
    "ClientClosedError",
    "DecodeError",
    "DirectoryWatchStore",
    "ErrorObject",
    "ExportError",
    "GateBlockedError",
    "Integration",
    "IntegrationFailing",
    "IntegrationLog",
    "IntegrationRecovered",
    "InvalidInputError",
    "LateLog",
    "LogBatch",
    "LogPage",
    "LogRequest",
    "LogResponse",
    "LogWatcher",
    "MemoryState",
    "MemoryWatchStore",
    "NewLogs",
    "NotFoundError",
    "OAuth2ClientCredentials",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimits",
    "ResponseTooLargeError",
    "SendcloudClient",
    "SendcloudError",
    "ServerError",
    "ShopOrderStatus",
    "ShopOrderStatusInput",
    "StateUnavailableError",
    "StatusMapping",
    "StatusMappingEntry",
    "StatusTranslation",
    "WatchEvent",
    "WatchState",
    "WatchStore",
    "__version__",
    "export_logs_per_integration",
    "webhooks",
]


def _show_public_module() -> None:
    """Public classes say ``sendcloud_async.Name`` in reprs, tracebacks and the reference."""
    namespace = globals()
    for name in __all__:
        value = namespace[name]
        if isinstance(value, type) and value.__module__.startswith("sendcloud_async._"):
            value.__module__ = __name__


_show_public_module()

# Library etiquette: log records go nowhere unless the application configures logging.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
