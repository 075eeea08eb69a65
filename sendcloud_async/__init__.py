"""sendcloud-async: an asyncio-first SDK for the Sendcloud Integrations API v3.

Public names are re-exported here; everything in underscore modules is private.

They are imported on first use (PEP 562): ``import sendcloud_async`` loads nothing
but this module and the version, so that a program (and ``sendcloud-async
--version``) that does not use the client does not pay for importing aiohttp.
``from sendcloud_async import X`` and ``sendcloud_async.X`` work as usual; a type
checker sees the imports below.
"""

import importlib as _importlib
import logging as _logging
import sys as _sys
import typing as _typing

from ._version import __version__

if _typing.TYPE_CHECKING:
    from . import events, webhooks
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
        ExportError,
        ExportInputError,
        ExportInUseError,
        InvalidInputError,
        MissingExtraError,
        NotFoundError,
        PermissionDeniedError,
        RateLimitError,
        ResponseTooLargeError,
        SecondWriterError,
        SendcloudError,
        ServerError,
        StateConfigurationError,
        StateUnavailableError,
    )
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
    from ._sources._watch_state import LateLog, LogBatch, WatchState
    from ._state import MemoryState
    from ._watch_files import DirectoryWatchStore, FileWatchStore
    from ._watchers import (
        AccountFailed,
        AccountPolled,
        AccountState,
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
    "ExportInUseError",
    "ExportInputError",
    "FileWatchStore",
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
    "MissingExtraError",
    "NewLogs",
    "NotFoundError",
    "OAuth2ClientCredentials",
    "PaginationError",
    "PermissionDeniedError",
    "RateLimitError",
    "RateLimits",
    "ResponseTooLargeError",
    "SecondWriterError",
    "SendcloudClient",
    "SendcloudError",
    "ServerError",
    "ShopOrderStatus",
    "ShopOrderStatusInput",
    "StateConfigurationError",
    "StateUnavailableError",
    "StatusMapping",
    "StatusMappingEntry",
    "StatusTranslation",
    "WatchEvent",
    "WatchState",
    "WatchStore",
    "__version__",
    "events",
    "export_logs_per_integration",
    "webhooks",
]

#: Where each public name is defined (``"webhooks"``: the public subpackage).
_DEFINED_IN: dict[str, str] = {
    "APIConnectionError": "._errors",
    "APIError": "._errors",
    "APITimeoutError": "._errors",
    "AccountFailed": "._watchers",
    "AccountPolled": "._watchers",
    "AccountPool": "._pool",
    "AccountState": "._watchers",
    "AuthenticationError": "._errors",
    "BadRequestError": "._errors",
    "BasicAuth": "._auth",
    "ClientClosedError": "._errors",
    "DecodeError": "._errors",
    "DirectoryWatchStore": "._watch_files",
    "ErrorObject": "._models",
    "ExportError": "._errors",
    "ExportInUseError": "._errors",
    "ExportInputError": "._errors",
    "FileWatchStore": "._watch_files",
    "GateBlockedError": "._ratelimit",
    "Integration": "._models",
    "IntegrationFailing": "._watchers",
    "IntegrationLog": "._models",
    "IntegrationRecovered": "._watchers",
    "InvalidInputError": "._errors",
    "LateLog": "._sources._watch_state",
    "LogBatch": "._sources._watch_state",
    "LogPage": "._models",
    "LogRequest": "._models",
    "LogResponse": "._models",
    "LogWatcher": "._watchers",
    "MemoryState": "._state",
    "MemoryWatchStore": "._watchers",
    "MissingExtraError": "._errors",
    "NewLogs": "._watchers",
    "NotFoundError": "._errors",
    "OAuth2ClientCredentials": "._oauth2",
    "PaginationError": "._pagination",
    "PermissionDeniedError": "._errors",
    "RateLimitError": "._errors",
    "RateLimits": "._ratelimit",
    "ResponseTooLargeError": "._errors",
    "SendcloudClient": "._client",
    "SecondWriterError": "._errors",
    "SendcloudError": "._errors",
    "ServerError": "._errors",
    "ShopOrderStatus": "._models",
    "ShopOrderStatusInput": "._models",
    "StateConfigurationError": "._errors",
    "StateUnavailableError": "._errors",
    "StatusMapping": "._models",
    "StatusMappingEntry": "._models",
    "StatusTranslation": "._models",
    "WatchEvent": "._watchers",
    "WatchState": "._sources._watch_state",
    "WatchStore": "._watchers",
    "events": ".events",
    "export_logs_per_integration": "._export_walks",
    "webhooks": ".webhooks",
}


def _show_public_module() -> None:
    """Public classes say ``sendcloud_async.Name`` in reprs, tracebacks and the reference.

    Done for every module of ``_DEFINED_IN`` loaded so far, each time a public name
    is first looked up: a class the SDK raised before anyone named it says so too,
    as its module was loaded by then.
    """
    namespace = globals()
    for name, module in _DEFINED_IN.items():
        loaded = _sys.modules.get(__name__ + module)
        if loaded is None or name not in loaded.__dict__:
            continue
        value = loaded.__dict__[name]
        # In the namespace too: a renamed class's string annotations (msgspec reads
        # them on first use) are resolved in the module it now names.
        namespace[name] = value
        if isinstance(value, type) and value.__module__.startswith(__name__ + "._"):
            value.__module__ = __name__


if not _typing.TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        module = _DEFINED_IN.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        loaded = _importlib.import_module(module, __name__)
        value = loaded if name in ("events", "webhooks") else getattr(loaded, name)
        _show_public_module()
        globals()[name] = value
        return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


# Library etiquette: log records go nowhere unless the application configures logging.
_logging.getLogger(__name__).addHandler(_logging.NullHandler())
