"""The public names of ``sendcloud_async`` that users call, as fixed by the project's API page.

A copy kept inside ``tests/`` so the surface guard runs from any clone (the API page
lives outside the repository). A name is added here when it lands in the package.
"""

from __future__ import annotations

from typing import Final

#: Names reached as ``sc.NAME`` (``import sendcloud_async as sc``).
API_NAMES: Final = frozenset(
    {
        "APIConnectionError",
        "APIError",
        "APITimeoutError",
        "AuthenticationError",
        "BadRequestError",
        "BasicAuth",
        "DecodeError",
        "ErrorObject",
        "Integration",
        "IntegrationLog",
        "LogPage",
        "LogRequest",
        "LogResponse",
        "NotFoundError",
        "OAuth2ClientCredentials",
        "PermissionDeniedError",
        "RateLimitError",
        "SendcloudClient",
        "SendcloudError",
        "ServerError",
        "ShopOrderStatus",
        "ShopOrderStatusInput",
        "StatusMapping",
        "StatusMappingEntry",
        "StatusTranslation",
        "WatchState",
        "events",
        "webhooks",
    }
)

#: Names of ``sendcloud_async.webhooks`` that users call.
WEBHOOK_NAMES: Final = frozenset(
    {
        "EventLedger",
        "EventTooOldError",
        "IntegrationConnected",
        "IntegrationDeleted",
        "IntegrationUpdated",
        "InvalidSignatureError",
        "ParcelStatusChanged",
        "ReturnCreated",
        "UnknownEvent",
        "parse_event",
        "verify_signature",
    }
)

#: Names of ``sendcloud_async.events`` (public events, response metadata) that users call.
EVENT_NAMES: Final = frozenset(
    {
        "AccountFailing",
        "AccountRecovered",
        "BatchDelivered",
        "CallEnded",
        "Event",
        "Finished",
        "LatenessSeen",
        "LeaseClaimed",
        "LeaseLost",
        "LeaseRefused",
        "LeaseReleased",
        "PageCommitted",
        "PollCompleted",
        "RateLimitInfo",
        "RedisDown",
        "RedisUp",
        "ResponseInfo",
        "Responses",
        "Sending",
        "Subscription",
        "TokenFetched",
        "Waiting",
        "capture_responses",
        "subscribe",
    }
)

#: Names of ``sendcloud_async.otel`` (the ``otel`` extra) that users call.
OTEL_NAMES: Final = frozenset({"instrument", "is_instrumented", "uninstrument"})

#: The commands of ``sendcloud-async`` that users call, with the options the API page
#: names for each (the general and connection options are every command's). Like the
#: names above, a command or option is added here when it lands in the package.
CLI_COMMANDS: Final[dict[tuple[str, ...], frozenset[str]]] = {
    ("demo",): frozenset(),
    ("logs", "export"): frozenset(
        {
            "--out",
            "--format",
            "--integration",
            "--page-size",
            "--resume",
            "--per-integration",
            "--concurrency",
            "--fake",
            "--accounts",
            "--redis",
            "--metrics",
        }
    ),
    ("logs", "watch"): frozenset(
        {
            "--out",
            "--interval",
            "--start",
            "--once",
            "--integration",
            "--format",
            "--fake",
            "--accounts",
            "--out-dir",
            "--concurrency",
            "--redis",
            "--stream",
            "--lease",
            "--lookback",
            "--metrics",
        }
    ),
    ("logs", "tail"): frozenset({"--redis", "--out"}),
    ("logs", "report"): frozenset({"--html", "--json", "--fake"}),
    ("integrations", "list"): frozenset(),
    ("integrations", "get"): frozenset(),
    ("fake", "serve"): frozenset({"--accounts", "--rate", "--port"}),
}

#: Keyword parameters the API page names, per callable (``Logs.watch`` is
#: ``client.logs.watch``; the Redis watch's are in ``sendcloud_async.redis``).
PARAMETERS: Final[dict[str, frozenset[str]]] = {
    "Logs.watch": frozenset(
        {"integration_id", "start", "interval", "page_size", "once", "lookback"}
    ),
    "LogWatcher": frozenset({"lookback"}),
    "redis.logs_watch": frozenset({"lookback"}),
    "redis.log_watcher_watch": frozenset(),  # takes LogWatcher's options (lookback too)
}
