"""``FakeSendcloud``: a real aiohttp server on loopback that speaks the Integrations API v3.

It is a test tool shipped with the package: point a ``SendcloudClient`` at
``fake.base_url`` with ``auth=fake.basic_auth`` and the client talks HTTP over a
real socket to an in-memory Sendcloud. Every request is journalled in
``fake.requests``; ``fake.script`` queues canned responses (errors, delays) for a
route.

How a request is handled, in this order:

1. it is read and appended to ``fake.requests`` (always, whatever follows);
1a. a fault queued by ``fake.inject`` or drawn by ``fake.chaos`` is applied, if
   any (an answer, a delay, a dropped connection; see ``_faults.py``);
2. a scripted response queued for its method and path is served, if any
   (before authentication, so a test can script a 401 as easily as a 503);
3. an unknown path gets 404, a request without valid credentials 401, a method
   the path does not allow 405;
4. the route answers from the in-memory state, as the spec describes.

Choices where the spec is silent, made to keep the fake strict but predictable:

* Query values are read from the raw query string with ``urllib.parse.unquote``.
  For the logs ``cursor`` a raw ``+`` is rejected (400): in a query string it
  means a space to most servers, so a client must send ``%2B``.
* ``created_at`` of log records is unique: a created log whose ``created_at`` is
  taken is moved forward by microseconds. Paging is "strictly after the cursor".
  ``FakeSendcloud(unique_log_times=False)`` keeps a taken instant instead (logs
  then share it, and a page boundary inside such a group skips the rest of it,
  as a date-time cursor does); ``log_order="newest_first"`` serves the listing
  newest-first, paging "strictly before the cursor".
* Deleting an integration keeps its exception logs (they still show in
  ``GET /integrations/logs``) but drops its shop order statuses and mapping.
* Shop order statuses work for every integration type, not only Prestashop V2.
* Field errors of the Pydantic-style endpoints (PATCH integration, POST log)
  point at ``body/<field>`` with an integer ``status``; those of the shop order
  status endpoints use JSON pointers (``/statuses/0/external_id``) and a string
  ``status``, as the spec's examples for each do.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final, Self
from urllib.parse import quote, unquote

import msgspec
from aiohttp import web

from .._auth import BasicAuth
from .._oauth2 import OAuth2ClientCredentials
from ._faults import Fault, FaultInjection, FaultInjector
from ._limits import AccountsAndLimits
from ._oauth import TokenIssuer
from ._spec import SpecCheck, is_uri
from ._store import (
    FEEDBACK_TYPES,
    LANGUAGES,
    STATUS_CATEGORIES,
    Record,
    Store,
    format_utc,
    parse_aware,
)
from ._webhooks import (
    WebhookDelivery,
    WebhookSender,
    event_payload,
    integration_payload,
    timestamp_ms,
)

__all__ = ["API_PREFIX", "TOKEN_PATH", "FakeSendcloud", "RecordedRequest", "ScriptedResponse"]

#: Where the API lives on the fake's origin.
API_PREFIX: Final = "/api/v3"
#: Where the OAuth2 token endpoint lives on the fake's origin.
TOKEN_PATH: Final = "/oauth2/token/"

_DEFAULT_PAGE_SIZE: Final = 25
_MAX_PAGE_SIZE: Final = 100
_LOG_ORDERS: Final = ("oldest_first", "newest_first")
_MAX_SHOP_NAME: Final = 250
_MAX_TRANSLATIONS: Final = 7

_ENCODER: Final = msgspec.json.Encoder()
_JSON: Final = "application/json"

_INTEGRATION_NOT_FOUND: Final = "The Integration could not be found with the search criteria given"
_SORT_FIELDS: Final = {
    "integration_type": "type",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "last_fetch": "last_fetched_at",
    "failing_since": "started_failing_at",
}
_DEFAULT_SORT: Final = (("last_fetched_at", False), ("created_at", False))
_TITLES: Final = {
    "invalid": "Invalid",
    "invalid_choice": "Invalid choice",
    "required": "Required",
    "not_a_list": "Not a list",
    "extra_forbidden": "Extra Forbidden",
}
_LOG_CREATE_FIELDS: Final = frozenset(
    {
        "base_url",
        "full_url",
        "method",
        "response_code",
        "response",
        "request",
        "created_at",
        "exception_type",
        "exception",
    }
)


# -- public value types ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScriptedResponse:
    """A canned answer queued with ``FakeSendcloud.script``.

    ``body`` as ``bytes`` or ``str`` is sent as is (a ``str`` as UTF-8 text/plain
    unless ``headers`` name a Content-Type); any other value but ``None`` is
    JSON-encoded with msgspec and sent as application/json. ``None`` sends no
    body. ``delay`` seconds pass before the answer is sent.
    """

    status: int = 200
    _: KW_ONLY
    body: bytes | str | object | None = None
    headers: Mapping[str, str] | None = None
    delay: float = 0.0
    _payload: bytes = field(init=False, repr=False, compare=False, default=b"")
    _content_type: str | None = field(init=False, repr=False, compare=False, default=None)

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise TypeError(f"status must be an int, not {type(self.status).__name__}")
        if not 100 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP status (100..599), got {self.status}")
        if isinstance(self.delay, bool) or not isinstance(self.delay, int | float):
            raise TypeError(f"delay must be a number, not {type(self.delay).__name__}")
        if not self.delay >= 0:
            raise ValueError(f"delay must be >= 0, got {self.delay}")
        body = self.body
        content_type: str | None = None
        if body is None:
            payload = b""
        elif isinstance(body, bytes):
            payload = body
        elif isinstance(body, str):
            payload = body.encode()
            content_type = "text/plain; charset=utf-8"
        else:
            payload = _ENCODER.encode(body)  # fails now, not when served
            content_type = _JSON
        if self.headers and any(k.lower() == "content-type" for k in self.headers):
            content_type = None
        object.__setattr__(self, "_payload", payload)
        object.__setattr__(self, "_content_type", content_type)

    def _as_fault(self) -> Fault:
        """This answer as an entry of the fake's one queue of canned answers and faults."""
        return Fault.scripted(
            self.status,
            headers=tuple((str(k), str(v)) for k, v in (self.headers or {}).items()),
            payload=self._payload,
            content_type=self._content_type,
            delay=float(self.delay),
        )


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """One request as the fake received it.

    ``path`` is decoded and relative to the API base (``/integrations/5``); for a
    request outside it (the token endpoint) it is the whole path. ``raw_path`` is
    the request target exactly as sent. ``query`` holds the raw query's values
    decoded with ``unquote`` (a ``+`` stays a ``+``). ``headers`` are a copy as
    received, Authorization included; ``header()`` looks one up in any case.
    """

    method: str
    path: str
    raw_path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    auth_scheme: str | None

    @property
    def json(self) -> Any:
        """The body decoded as JSON (``None`` for an empty body)."""
        if not self.body:
            return None
        return msgspec.json.decode(self.body)

    def header(self, name: str) -> str | None:
        """The value of header ``name``, matched case-insensitively."""
        value = self.headers.get(name)
        if value is not None:
            return value
        lowered = name.lower()
        for key, val in self.headers.items():
            if key.lower() == lowered:
                return val
        return None


# -- small helpers -----------------------------------------------------------


def _json(status: int, obj: object, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=_ENCODER.encode(obj), content_type=_JSON, headers=headers
    )


def _err(
    status: int | str,
    code: str,
    detail: str,
    *,
    title: str | None = None,
    pointer: str | None = None,
    parameter: str | None = None,
) -> Record:
    error: Record = {
        "status": status,
        "code": code,
        "title": title or _TITLES.get(code, code.replace("_", " ").capitalize()),
        "detail": detail,
    }
    if pointer is not None:
        error["source"] = {"pointer": pointer}
    elif parameter is not None:
        error["source"] = {"parameter": parameter}
    return error


def _errors(
    status: int, errors: list[Record], headers: Mapping[str, str] | None = None
) -> web.Response:
    return _json(status, {"errors": errors}, headers)


def _not_found_integration() -> web.Response:
    return _errors(404, [_err(404, "not_found", _INTEGRATION_NOT_FOUND, title="Not Found")])


def _wrong_format() -> web.Response:
    return _errors(
        400,
        [
            _err(
                "400",
                "non_field_errors",
                "Wrong request format, expected object",
                title="Wrong format",
            )
        ],
    )


def _decode_json(body: bytes) -> tuple[Any, bool]:
    """``(value, True)`` for a JSON body, ``(None, False)`` for an empty or broken one."""
    if not body:
        return None, False
    try:
        return msgspec.json.decode(body), True
    except msgspec.DecodeError:
        return None, False


def _query_pairs(raw_query: str) -> dict[str, str]:
    """Query names (decoded) to raw values, the last occurrence winning."""
    pairs: dict[str, str] = {}
    if raw_query:
        for part in raw_query.split("&"):
            if part:
                key, _, value = part.partition("=")
                pairs[unquote(key)] = value
    return pairs


def _auth_scheme(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme = authorization.split(" ", 1)[0].lower()
    return scheme if scheme in ("basic", "bearer") else None


def _positive_int(text: str) -> int | None:
    if text.isascii() and text.isdigit():
        value = int(text)
        if value >= 1:
            return value
    return None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean"}.get(
        type(value), type(value).__name__
    )


# Checks of PATCH /integrations/{id} fields: each returns (code, detail) or None.
_Problem = tuple[str, str] | None


def _check_shop_name(value: object) -> _Problem:
    if not isinstance(value, str):
        return "invalid", "Input should be a valid string"
    if not 1 <= len(value) <= _MAX_SHOP_NAME:
        return "invalid", f"String should have 1 to {_MAX_SHOP_NAME} characters"
    return None


def _check_shop_url(value: object) -> _Problem:
    if not isinstance(value, str) or not is_uri(value):  # spec: format uri, minLength 1
        return "invalid", "Input should be a non-empty URL string"
    return None


def _check_bool(value: object) -> _Problem:
    if not isinstance(value, bool):
        return "invalid", "Input should be a valid boolean"
    return None


def _check_carriers(value: object) -> _Problem:
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        return "invalid", "Input should be a valid list of strings"
    return None


def _check_webhook_url(value: object) -> _Problem:
    if value is not None and (not isinstance(value, str) or not is_uri(value)):
        return "invalid", "Input should be a URL string or null"  # spec: format uri, minLength 1
    return None


def _check_feedback_type(value: object) -> _Problem:
    if value not in FEEDBACK_TYPES:
        return "invalid_choice", "Input should be 'eager', 'delayed' or 'none'"
    return None


_PATCH_CHECKS: Final[dict[str, Callable[[object], _Problem]]] = {
    "shop_name": _check_shop_name,
    "shop_url": _check_shop_url,
    "service_point_enabled": _check_bool,
    "service_point_carriers": _check_carriers,
    "webhook_active": _check_bool,
    "webhook_url": _check_webhook_url,
    "feedback_type": _check_feedback_type,
}


def _check_log_create(payload: dict[str, Any]) -> list[Record]:
    """The errors of a POST /integrations/{id}/logs body (``integration-log-create``)."""
    errors: list[Record] = []

    def bad(name: str, detail: str, code: str = "invalid") -> None:
        errors.append(_err(400, code, detail, pointer=f"body/{name}"))

    for name in payload:
        if name not in _LOG_CREATE_FIELDS:
            bad(name, "Extra inputs are not permitted", "extra_forbidden")
    if "base_url" not in payload or payload["base_url"] is None:
        bad("base_url", "Field required", "required")
    elif not isinstance(payload["base_url"], str) or not payload["base_url"]:
        bad("base_url", "Input should be a non-empty string")
    for name in ("full_url", "method", "exception_type", "exception"):
        value = payload.get(name)
        if value is not None and not isinstance(value, str):
            bad(name, "Input should be a valid string or null")
    code = payload.get("response_code")
    if code is not None and (not _is_int(code) or code < 0):
        bad("response_code", "Input should be an integer >= 0 or null")
    for name, header_types, body_key, body_types in (
        ("response", (dict,), "body", (str, dict)),
        ("request", (dict, str), "payload", (str, dict)),
    ):
        part = payload.get(name)
        if part is None:
            continue
        if not isinstance(part, dict):
            bad(name, "Input should be a valid object or null")
            continue
        headers = part.get("headers")
        if headers is not None and not isinstance(headers, header_types):
            bad(f"{name}/headers", f"Input should not be {_type_name(headers)}")
        inner = part.get(body_key)
        if inner is not None and not isinstance(inner, body_types):
            bad(f"{name}/{body_key}", f"Input should not be {_type_name(inner)}")
    created = payload.get("created_at")
    if created is not None:
        if not isinstance(created, str) or _datetime_or_none(created) is None:
            bad("created_at", "Input should be a valid datetime")
        elif parse_aware(created) is None:
            bad("created_at", "Input should have timezone info")
    return errors


def _datetime_or_none(value: str) -> datetime | None:
    """``value`` parsed as an ISO 8601 date-time (aware or not), or ``None``."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def _check_statuses_body(payload: dict[str, Any]) -> list[Record]:
    """The errors of a POST /shop-order-statuses body (``post-shop-order-statuses``)."""
    errors: list[Record] = []

    def bad(pointer: str, detail: str, code: str = "invalid") -> None:
        errors.append(_err("400", code, detail, pointer=pointer))

    _check_integration_id_field(payload, bad)
    if "statuses" not in payload:
        bad("/statuses", "This field is required.", "required")
        return errors
    statuses = payload["statuses"]
    if not isinstance(statuses, list):
        bad(
            "/statuses",
            f'Expected a list of items but got type "{_type_name(statuses)}".',
            "not_a_list",
        )
        return errors
    seen: set[str] = set()
    for i, status in enumerate(statuses):
        at = f"/statuses/{i}"
        if not isinstance(status, dict):
            bad(at, f"Invalid data. Expected an object, but got {_type_name(status)}.")
            continue
        external_id = status.get("external_id")
        if "external_id" not in status:
            bad(f"{at}/external_id", "This field is required.", "required")
        elif not isinstance(external_id, str) or not external_id:
            bad(f"{at}/external_id", "A non-empty string is required.")
        elif external_id in seen:
            bad(f"{at}/external_id", f"Duplicate external_id {external_id!r}.")
        else:
            seen.add(external_id)
        if "translations" not in status:
            bad(f"{at}/translations", "This field is required.", "required")
            continue
        translations = status["translations"]
        if not isinstance(translations, list):
            bad(
                f"{at}/translations",
                f'Expected a list of items but got type "{_type_name(translations)}".',
                "not_a_list",
            )
            continue
        if not 1 <= len(translations) <= _MAX_TRANSLATIONS:
            bad(f"{at}/translations", f"Ensure this field has 1 to {_MAX_TRANSLATIONS} elements.")
        languages: set[str] = set()
        for j, translation in enumerate(translations):
            tat = f"{at}/translations/{j}"
            if not isinstance(translation, dict):
                bad(tat, f"Invalid data. Expected an object, but got {_type_name(translation)}.")
                continue
            if "status" not in translation:
                bad(f"{tat}/status", "This field is required.", "required")
            elif not isinstance(translation["status"], str) or not translation["status"]:
                bad(f"{tat}/status", "A non-empty string is required.")
            language = translation.get("language")
            if "language" not in translation:
                bad(f"{tat}/language", "This field is required.", "required")
            elif language not in LANGUAGES:
                bad(f"{tat}/language", f'"{language}" is not a valid choice.', "invalid_choice")
            elif language in languages:
                bad(f"{tat}/language", f'Duplicate language "{language}".')
            else:
                languages.add(language)
    return errors


def _check_mapping_body(payload: dict[str, Any]) -> list[Record]:
    """The errors of a POST /shop-order-statuses/mapping body."""
    errors: list[Record] = []

    def bad(pointer: str, detail: str, code: str = "invalid") -> None:
        errors.append(_err("400", code, detail, pointer=pointer))

    _check_integration_id_field(payload, bad)
    if "mapping" not in payload:
        bad("/mapping", "This field is required.", "required")
        return errors
    mapping = payload["mapping"]
    if not isinstance(mapping, list):
        bad(
            "/mapping",
            f'Expected a list of items but got type "{_type_name(mapping)}".',
            "not_a_list",
        )
        return errors
    if len(mapping) != len(STATUS_CATEGORIES):
        bad(
            "/mapping",
            f"Ensure this field has exactly {len(STATUS_CATEGORIES)} elements, "
            "one per status category.",
        )
    seen: set[str] = set()
    for i, entry in enumerate(mapping):
        at = f"/mapping/{i}"
        if not isinstance(entry, dict):
            bad(at, f"Invalid data. Expected an object, but got {_type_name(entry)}.")
            continue
        category = entry.get("status_category")
        if "status_category" not in entry:
            bad(f"{at}/status_category", "This field is required.", "required")
        elif category not in STATUS_CATEGORIES:
            bad(f"{at}/status_category", f'"{category}" is not a valid choice.', "invalid_choice")
        elif category in seen:
            bad(f"{at}/status_category", f'Status category "{category}" appears twice.')
        else:
            seen.add(category)
        if "external_id" not in entry:
            bad(f"{at}/external_id", "This field is required.", "required")
        elif entry["external_id"] is not None and not isinstance(entry["external_id"], str):
            bad(f"{at}/external_id", "A string or null is required.")
    return errors


def _check_integration_id_field(
    payload: dict[str, Any], bad: Callable[[str, str, str], None]
) -> None:
    if "integration_id" not in payload:
        bad("/integration_id", "This field is required.", "required")
    elif not _is_int(payload["integration_id"]):
        bad("/integration_id", "A valid integer is required.", "invalid")


# -- the server ----------------------------------------------------------------

_Handler = Callable[[RecordedRequest, "int | None"], web.Response]


class FakeSendcloud(FaultInjection, AccountsAndLimits):
    """An in-memory Sendcloud Integrations API v3 on a real loopback socket.

    Use it as an async context manager (or call ``start()`` and ``close()``).
    The state (``integrations``, ``logs``, ``shop_order_statuses``,
    ``status_mappings``) is live: tests may read and change it directly.
    """

    def __init__(
        self,
        *,
        public_key: str = "fake-public-key",
        secret_key: str = "fake-secret-key",
        client_id: str = "fake-client-id",
        client_secret: str = "fake-client-secret",
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_secret: str = "fake-webhook-secret",
        validate_spec: bool | None = None,
        log_order: str = "oldest_first",
        unique_log_times: bool = True,
    ) -> None:
        if log_order not in _LOG_ORDERS:
            raise ValueError(
                f"log_order must be one of {', '.join(_LOG_ORDERS)}, got {log_order!r}"
            )
        self._basic_auth = BasicAuth(public_key, secret_key)
        self._webhooks = WebhookSender(webhook_secret)
        #: The Basic key pair the fake accepts (a test tool: not hidden).
        self.public_key = public_key
        self.secret_key = secret_key
        self._basic_credentials = f"{public_key}:{secret_key}".encode()
        #: More accounts and per-account rate limits (see ``_limits.py``).
        self._init_accounts(public_key, secret_key)
        self.client_id = client_id
        self.client_secret = client_secret
        self._tokens = TokenIssuer(client_id, client_secret)
        #: Bearer tokens the API accepts (filled by the token endpoint; discard = revoke).
        self._bearer_tokens: set[str] = self._tokens.active
        self._host = host
        self._port = port
        self._origin: str | None = None
        self._runner: web.AppRunner | None = None
        self._store = Store()
        self._store.log_order = log_order
        self._store.unique_log_times = bool(unique_log_times)
        self._requests: list[RecordedRequest] = []
        #: Injected faults: ``inject``, ``chaos``, ``fault_counts`` (see ``_faults.py``).
        self._faults = FaultInjector(self._tokens.revoke, self._tokens.is_valid)
        #: Checks traffic against the OpenAPI spec when ``validate_spec`` (see ``_spec.py``).
        self.spec = SpecCheck(validate_spec)
        #: Requests the SDK sent and responses the fake gave that break the spec.
        self.spec_violations: list[str] = self.spec.violations
        self._routes: dict[str, dict[str, _Handler]] = {
            "/integrations": {"GET": self._list_integrations},
            "/integrations/logs": {"GET": self._list_all_logs},
            "/integrations/{id}": {
                "GET": self._get_integration,
                "PATCH": self._patch_integration,
                "DELETE": self._delete_integration,
            },
            "/integrations/{id}/logs": {
                "GET": self._list_integration_logs,
                "POST": self._create_log,
            },
            "/shop-order-statuses": {
                "GET": self._list_statuses,
                "POST": self._replace_statuses,
            },
            "/shop-order-statuses/mapping": {
                "GET": self._get_mapping,
                "POST": self._set_mapping,
            },
        }

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (a no-op if already started)."""
        if self._runner is not None:
            return
        app = web.Application(
            middlewares=[
                self._faults.middleware,
                self._limits_middleware,
                *self.spec.middlewares(),
            ]
        )
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, self._host, self._port)
            await site.start()
            port = runner.addresses[0][1]
        except BaseException:
            await runner.cleanup()
            raise
        host = f"[{self._host}]" if ":" in self._host else self._host
        self._origin = f"http://{host}:{port}"
        self._port = port
        self._runner = runner

    async def close(self) -> None:
        """Finish webhook deliveries, stop listening and drop open connections (idempotent)."""
        await self._webhooks.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
        if exc is None:
            self.spec.raise_for_violations()

    def __repr__(self) -> str:
        where = self._origin or "not started"
        return f"<FakeSendcloud {where} integrations={len(self._store.integrations)}>"

    # -- addresses and credentials ---------------------------------------------

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._origin is None:
            raise RuntimeError("FakeSendcloud is not started; use `async with` or start()")
        return self._origin

    @property
    def port(self) -> int:
        """The port the server listens on (once started)."""
        if self._origin is None:
            raise RuntimeError("FakeSendcloud is not started; use `async with` or start()")
        return self._port

    @property
    def base_url(self) -> str:
        """The API base URL to give a client: ``http://127.0.0.1:PORT/api/v3``."""
        return self.origin + API_PREFIX

    @property
    def token_url(self) -> str:
        """The OAuth2 token endpoint URL: ``http://127.0.0.1:PORT/oauth2/token/``."""
        return self.origin + TOKEN_PATH

    @property
    def basic_auth(self) -> BasicAuth:
        """A ``BasicAuth`` with the key pair the fake accepts."""
        return self._basic_auth

    @property
    def oauth2_credentials(self) -> OAuth2ClientCredentials:
        """A new ``OAuth2ClientCredentials`` for the client id/secret the fake accepts.

        Each access makes a new object (with its own token cache); keep one to share it.
        """
        return OAuth2ClientCredentials(self.client_id, self.client_secret, token_url=self.token_url)

    # -- webhooks ----------------------------------------------------------------

    @property
    def webhook_secret(self) -> str:
        """The secret webhook bodies are signed with (settable)."""
        return self._webhooks.secret

    @webhook_secret.setter
    def webhook_secret(self, value: str) -> None:
        self._webhooks.secret = value

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Every webhook delivery attempt, oldest first."""
        return self._webhooks.deliveries

    async def drain_webhooks(self) -> None:
        """Wait until every webhook the fake has scheduled has been delivered (or failed)."""
        await self._webhooks.drain()

    def _notify(self, integration: Record, action: str) -> None:
        # Like Sendcloud: an integration with an active webhook hears about its changes.
        url = integration.get("webhook_url")
        if integration.get("webhook_active") and url:
            payload = {
                "action": action,
                "timestamp": timestamp_ms(),
                "integration": integration_payload(integration),
            }
            self._webhooks.schedule(url, payload)

    async def send_webhook(
        self, integration_id: int, action: str, **fields: Any
    ) -> WebhookDelivery:
        """Deliver an event to an integration's ``webhook_url`` now, whatever its state.

        ``action`` is e.g. ``"parcel_status_changed"`` (pass ``parcel={...}``) or
        ``"return_created"`` (pass ``data={...}``); integration events get the
        integration in the payload. ``timestamp`` defaults to now in milliseconds.
        """
        integration = self._store.integrations[integration_id]
        url = integration.get("webhook_url")
        if not url:
            raise ValueError(f"integration {integration_id} has no webhook_url")
        payload: dict[str, Any] = {"action": action, "timestamp": timestamp_ms()}
        if action.startswith("integration_"):
            payload["integration"] = integration_payload(integration)
        payload.update(fields)
        return await self._webhooks.deliver(url, payload)

    @property
    def webhook_retry_scale(self) -> float:
        """Sendcloud's retry delays (5 minutes to an hour) times this; default 1e-4 (settable)."""
        return self._webhooks.retry_scale

    @webhook_retry_scale.setter
    def webhook_retry_scale(self, value: float) -> None:
        self._webhooks.retry_scale = value

    async def deliver_webhooks(
        self,
        integration_id: int,
        events: list[dict[str, Any]],
        *,
        duplicates: float = 0.0,
        late: float = 0.0,
        shuffle: bool = True,
        retry: bool = True,
        concurrency: int = 8,
        seed: int = 0,
        urls: list[str] | None = None,
    ) -> list[WebhookDelivery]:
        """Deliver ``events`` to the integration's ``webhook_url`` the way Sendcloud may.

        Each event is a dict with at least ``"action"`` (``"timestamp"`` defaults to
        now in milliseconds; integration events get the integration). The stream is
        shuffled, ``duplicates`` (0 to 1) of the events arrive twice, ``late`` of
        the deliveries come after all the others, and a delivery that is not
        answered 2xx is retried on Sendcloud's schedule times ``webhook_retry_scale``
        (``retry=False``: once only). ``urls`` replaces the ``webhook_url`` with
        several receivers, a random one per attempt (a load balancer). Returns
        every attempt; they are also in ``webhook_deliveries``.
        """
        integration = self._store.integrations[integration_id]
        targets: str | list[str] | None = urls or integration.get("webhook_url")
        if not targets:
            raise ValueError(f"integration {integration_id} has no webhook_url")
        payloads = [event_payload(integration, event) for event in events]
        return await self._webhooks.deliver_stream(
            targets,
            payloads,
            duplicates=duplicates,
            late=late,
            shuffle=shuffle,
            retry=retry,
            concurrency=concurrency,
            seed=seed,
        )

    # -- OAuth2 ------------------------------------------------------------------

    @property
    def token_expires_in(self) -> float | None:
        """``expires_in`` of new tokens, in seconds (``None``: omitted, never expire)."""
        return self._tokens.expires_in

    @token_expires_in.setter
    def token_expires_in(self, value: float | None) -> None:
        self._tokens.expires_in = value

    @property
    def token_requests(self) -> int:
        """How many requests reached the token endpoint."""
        return self._tokens.requests

    @property
    def token_auth_methods(self) -> list[str]:
        """How each token request authenticated the client, in order
        (``client_secret_basic``, ``client_secret_post`` or ``none``)."""
        return self._tokens.auth_methods

    @property
    def issued_tokens(self) -> list[str]:
        """Every access token issued so far, oldest first."""
        return self._tokens.issued

    def revoke_tokens(self, token: str | None = None) -> int:
        """Revoke one access token, or all of them; returns how many were revoked."""
        return self._tokens.revoke(token)

    # -- state -------------------------------------------------------------------

    @property
    def integrations(self) -> dict[int, Record]:
        """The integrations by id (live, spec-shaped dicts)."""
        return self._store.integrations

    @property
    def logs(self) -> list[Record]:
        """Every exception log the listing shows now, ascending by ``created_at`` (live)."""
        self._store.publish()
        return self._store.logs

    @property
    def hidden_logs(self) -> list[Record]:
        """Logs added but not visible yet (``add_log(visible_after=…)``, ``commit_delay``)."""
        self._store.publish()
        return [record for _, _, record in sorted(self._store.hidden)]

    @property
    def commit_delay(self) -> tuple[float, float] | None:
        """``(low, high)`` seconds: logs added from now on are listed after a random delay.

        Rehearses logs that become visible late, as rows of a database transaction
        do when it commits: each log keeps the ``created_at`` (and id) it got when it
        was added, while newer logs may be listed before it. ``None`` (the default):
        every log is listed at once. The delays come from a seeded generator, so a
        run is repeatable; ``add_log(visible_after=…)`` sets one log's delay.
        """
        return self._store.commit_delay

    @commit_delay.setter
    def commit_delay(self, value: tuple[float, float] | None) -> None:
        if value is not None:
            low, high = value
            if not 0 <= low <= high:
                raise ValueError(f"commit_delay must be (low, high) with 0 <= low <= high: {value}")
            value = (float(low), float(high))
        self._store.commit_delay = value

    @property
    def shop_order_statuses(self) -> dict[int, list[Record]]:
        """Stored statuses by integration id: ``{external_id, deleted_at, translations}``."""
        return self._store.shop_order_statuses

    @property
    def status_mappings(self) -> dict[int, list[Record]]:
        """Stored mappings by integration id: ``[{status_category, external_id}, ...]``."""
        return self._store.status_mappings

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received, oldest first."""
        return self._requests

    def clear_requests(self) -> None:
        """Empty the request journal."""
        self._requests.clear()

    def seed(self, integrations: int = 3, logs_per_integration: int = 1000, seed: int = 0) -> None:
        """Replace all state with deterministic data (the same arguments, the same data).

        Integrations get ids 1..N, eight shop order statuses (one deleted, one
        without en-gb) and a mapping whose CANCEL points at the deleted status.
        Logs are interleaved across integrations, ``created_at`` strictly
        increasing from 2023-03-01T00:00:00+01:00 in steps of 1 to 6 seconds.
        """
        self._store.seed(
            integrations=integrations, logs_per_integration=logs_per_integration, seed=seed
        )

    def add_integration(self, **fields: Any) -> Record:
        """Store an integration; fields are the spec's, unset ones get defaults."""
        return self._store.add_integration(fields)

    def add_log(
        self, integration_id: int, *, visible_after: float | None = None, **fields: Any
    ) -> Record:
        """Store a log for an existing integration; ``created_at`` defaults to after the last.

        ``visible_after`` (seconds): the listing shows the log only from then on,
        although its ``created_at`` and id are those of now (see ``commit_delay``).
        """
        if visible_after is not None and not visible_after >= 0:
            raise ValueError(f"visible_after must be seconds >= 0, got {visible_after!r}")
        return self._store.add_log(integration_id, fields, visible_after)

    @property
    def log_order(self) -> str:
        """How the logs listing is served: ``"oldest_first"`` or ``"newest_first"``."""
        return self._store.log_order

    def start_failing(self, integration_id: int, at: datetime | None = None) -> Record:
        """Give an integration a ``started_failing_at`` (now by default), as Sendcloud does."""
        integration = self._store.integrations[integration_id]
        when = datetime.now(UTC) if at is None else at
        if when.tzinfo is None or when.utcoffset() is None:
            raise ValueError("at must be an aware datetime")
        integration["started_failing_at"] = format_utc(when)
        return integration

    def stop_failing(self, integration_id: int) -> Record:
        """Clear an integration's ``started_failing_at`` (it works again)."""
        integration = self._store.integrations[integration_id]
        integration["started_failing_at"] = None
        return integration

    # -- scripting -----------------------------------------------------------------

    def script(self, method: str, path: str, *responses: ScriptedResponse) -> None:
        """Queue responses for ``method path``; each matching request takes the next one.

        ``path`` is relative to the API base, a concrete one (``/integrations/5``)
        or a route template (``/integrations/{id}``); a concrete path's queue is
        used first. A path outside the API (``/oauth2/token/``) is matched as is.
        Scripted responses and injected faults (``inject``) are one queue per route,
        taken in the order they were queued.
        """
        if not path.startswith("/") or "?" in path:
            raise ValueError(f"path must start with '/' and hold no query: {path!r}")
        for response in responses:
            if not isinstance(response, ScriptedResponse):
                raise TypeError(f"expected ScriptedResponse, got {type(response).__name__}")
        self._faults.inject(method, path, tuple(r._as_fault() for r in responses))

    # -- dispatch ----------------------------------------------------------------------

    def _resolve(self, rel: str) -> tuple[str | None, str | None]:
        """(route template, raw id segment) for a path relative to the API base."""
        if rel in self._routes:
            return rel, None
        parts = rel.split("/")
        if len(parts) == 3 and parts[1] == "integrations":
            return "/integrations/{id}", parts[2]
        if len(parts) == 4 and parts[1] == "integrations" and parts[3] == "logs":
            return "/integrations/{id}/logs", parts[2]
        return None, None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        raw_path = request.raw_path
        path_part, _, query_part = raw_path.partition("?")
        path = unquote(path_part)
        in_api = path.startswith(API_PREFIX + "/")
        rel = path[len(API_PREFIX) :] if in_api else path
        headers: dict[str, str] = {}
        for key, value in request.headers.items():
            name = str(key)
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        authorization = request.headers.get("Authorization")
        record = RecordedRequest(
            method=request.method,
            path=rel,
            raw_path=raw_path,
            query={k: unquote(v) for k, v in _query_pairs(query_part).items()},
            headers=headers,
            body=body,
            auth_scheme=_auth_scheme(authorization),
        )
        self._requests.append(record)

        template, id_segment = self._resolve(rel) if in_api else (None, None)
        if self._faults.active:  # an injected fault may answer instead (see _faults.py)
            faulted = await self._faults.apply(request, record, template)
            if faulted is not None:
                return faulted
        if template is None:
            if path == TOKEN_PATH:
                return self._tokens.handle(record.method, authorization, body)
            return _errors(
                404, [_err(404, "not_found", f"No route for {path}.", title="Not Found")]
            )
        if self._authenticate(request) is None:
            return self._unauthorized(authorization)
        if self._limiter is not None:  # per-account rate limits (enforce_rate_limits)
            throttled = await self._rate_limit(request, record.method, authorization)
            if throttled is not None:
                return throttled
        handler = self._routes[template].get(record.method)
        if handler is None:
            allowed = ", ".join(self._routes[template])
            return _errors(
                405,
                [
                    _err(
                        405,
                        "method_not_allowed",
                        f'Method "{record.method}" not allowed.',
                        title="Method Not Allowed",
                    )
                ],
                headers={"Allow": allowed},
            )
        ident: int | None = None
        if id_segment is not None:
            ident = _positive_int(id_segment)
            if ident is None or ident not in self._store.integrations:
                return _not_found_integration()
        return handler(record, ident)

    # -- authentication ----------------------------------------------------------------

    def _authenticate(self, request: web.BaseRequest) -> str | None:
        """The scheme (``"basic"`` or ``"bearer"``) of valid credentials, else ``None``."""
        value = request.headers.get("Authorization")
        if not value:
            return None
        scheme, _, credentials = value.partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "basic":
            try:
                decoded = base64.b64decode(credentials, validate=True)
            except (binascii.Error, ValueError):
                return None
            if hmac.compare_digest(decoded, self._basic_credentials):
                return "basic"
            if decoded in self._basic_accounts:  # add_account()
                return "basic"
            return None
        if scheme == "bearer" and credentials and self._tokens.is_valid(credentials):
            return "bearer"
        return None

    def _unauthorized(self, authorization: str | None) -> web.Response:
        if not authorization:
            error = _err(
                "401",
                "authentication_failed",
                "Authentication credentials were not provided.",
                title="No credentials",
            )
        else:
            error = _err(
                "401",
                "authentication_failed",
                "The username or password provided is incorrect. "
                "Please make a request with the valid credentials.",
                title="Invalid username/password.",
            )
        return _errors(401, [error], headers={"WWW-Authenticate": 'Basic realm="api"'})

    # -- integrations ------------------------------------------------------------------

    def _list_integrations(self, record: RecordedRequest, _: int | None) -> web.Response:
        raw = record.query.get("sort")
        order: list[tuple[str, bool]] = list(_DEFAULT_SORT)
        if raw:
            order = []
            for item in raw.split(","):
                descending = item.startswith("-")
                name = item[1:] if descending else item
                field_name = _SORT_FIELDS.get(name)
                if field_name is None:
                    return _errors(
                        400,
                        [
                            _err(
                                400,
                                "invalid",
                                f"Cannot sort by {item!r}; use one of "
                                f"{', '.join(_SORT_FIELDS)}, optionally prefixed with '-'.",
                                parameter="sort",
                            )
                        ],
                    )
                order.append((field_name, descending))
        return _json(200, {"data": self._store.sorted_integrations(order)})

    def _get_integration(self, record: RecordedRequest, ident: int | None) -> web.Response:
        assert ident is not None
        return _json(200, {"data": self._store.integrations[ident]})

    def _delete_integration(self, record: RecordedRequest, ident: int | None) -> web.Response:
        assert ident is not None
        integration = self._store.integrations[ident]
        self._store.delete_integration(ident)
        self._notify(integration, "integration_deleted")
        return web.Response(status=204)

    def _patch_integration(self, record: RecordedRequest, ident: int | None) -> web.Response:
        assert ident is not None
        payload, ok = _decode_json(record.body)
        if not ok or not isinstance(payload, dict):
            return _errors(
                400, [_err(400, "invalid", "Input should be a valid object", pointer="body")]
            )
        errors: list[Record] = []
        for name, value in payload.items():
            check = _PATCH_CHECKS.get(name)
            if check is None:
                errors.append(
                    _err(
                        400,
                        "extra_forbidden",
                        "Extra inputs are not permitted",
                        pointer=f"body/{name}",
                    )
                )
                continue
            problem = check(value)
            if problem is not None:
                errors.append(_err(400, problem[0], problem[1], pointer=f"body/{name}"))
        if errors:
            return _errors(400, errors)
        integration = self._store.integrations[ident]
        active = payload.get("webhook_active", integration.get("webhook_active"))
        url = payload.get("webhook_url", integration.get("webhook_url"))
        if active and not url:
            return _errors(
                400,
                [
                    _err(
                        "400",
                        "invalid",
                        "Webhook URL required when enable webhook is set to true",
                        title="Invalid",
                    )
                ],
            )
        integration.update(payload)
        integration["updated_at"] = format_utc(datetime.now(UTC))
        self._notify(integration, "integration_updated")
        return web.Response(status=204)

    # -- exception logs ----------------------------------------------------------------

    def _list_all_logs(self, record: RecordedRequest, _: int | None) -> web.Response:
        return self._logs_page(record, None)

    def _list_integration_logs(self, record: RecordedRequest, ident: int | None) -> web.Response:
        assert ident is not None
        return self._logs_page(record, ident)

    def _logs_page(self, record: RecordedRequest, integration_id: int | None) -> web.Response:
        path_part, _, query_part = record.raw_path.partition("?")
        raw = _query_pairs(query_part)
        size = _DEFAULT_PAGE_SIZE
        if "page_size" in raw:
            text = unquote(raw["page_size"])
            parsed = _positive_int(text)
            if parsed is None or parsed > _MAX_PAGE_SIZE:
                return _errors(
                    400,
                    [
                        _err(
                            400,
                            "invalid",
                            f"page_size must be an integer from 1 to {_MAX_PAGE_SIZE}, "
                            f"got {text!r}",
                            parameter="page_size",
                        )
                    ],
                )
            size = parsed
        after: datetime | None = None
        if "cursor" in raw:
            raw_cursor = raw["cursor"]
            # A raw '+' reads as a space in a query string: such a cursor never parses.
            cursor = unquote(raw_cursor.replace("+", " "))
            after = parse_aware(cursor) if "+" not in raw_cursor else None
            if after is None:
                hint = " (a raw '+' in a query string means a space; send it as %2B)"
                return _errors(
                    400,
                    [
                        _err(
                            400,
                            "invalid",
                            f"Invalid cursor {cursor!r}: expected an ISO 8601 date-time "
                            "with a UTC offset" + (hint if "+" in raw_cursor else ""),
                            parameter="cursor",
                        )
                    ],
                )
        page, more = self._store.logs_page(after=after, integration_id=integration_id, size=size)
        headers: dict[str, str] | None = None
        if more and page:
            last = str(page[-1]["created_at"])
            url = f"{self.origin}{path_part}?cursor={quote(last, safe=':')}&page_size={size}"
            headers = {"Link": f'<{url}>; rel="next"'}
        return _json(200, {"data": page}, headers)

    def _create_log(self, record: RecordedRequest, ident: int | None) -> web.Response:
        assert ident is not None
        payload, ok = _decode_json(record.body)
        if not ok or not isinstance(payload, dict):
            return _errors(
                400, [_err(400, "invalid", "Input should be a valid object", pointer="body")]
            )
        errors = _check_log_create(payload)
        if errors:
            return _errors(400, errors)
        created = payload.get("created_at")
        wanted = parse_aware(created) if isinstance(created, str) else None
        when = self._store.next_created_at(wanted)
        created_at = created if wanted is not None and when == wanted else when.isoformat()
        log: Record = {
            "id": 0,
            "integration_id": ident,
            "base_url": payload["base_url"],
            "full_url": payload.get("full_url"),
            "method": payload.get("method") or "",
            "response_code": payload.get("response_code"),
            "response": payload.get("response"),
            "request": payload.get("request"),
            "created_at": created_at,
            "exception_type": payload.get("exception_type"),
            "exception": payload.get("exception"),
            "protected": False,
            "additional_data": "",
        }
        self._store.insert_log(log)
        return _json(201, {"data": log})

    # -- shop order statuses ---------------------------------------------------------

    def _query_integration(self, record: RecordedRequest) -> int | web.Response:
        """The ``integration_id`` query parameter of an existing integration, or an error."""
        raw = record.query.get("integration_id", "")
        if not (raw.isascii() and raw.isdigit()):
            return _errors(
                400,
                [
                    _err(
                        "400",
                        "non_field_errors",
                        "Integration ID is a required GET parameter",
                        title="integration ID",
                    )
                ],
            )
        ident = int(raw)
        if ident not in self._store.integrations:
            return _not_found_integration()
        return ident

    def _list_statuses(self, record: RecordedRequest, _: int | None) -> web.Response:
        ident = self._query_integration(record)
        if isinstance(ident, web.Response):
            return ident
        language = record.query.get("language")
        if language is not None and language not in LANGUAGES:
            return _errors(
                400,
                [
                    _err(
                        "400",
                        "invalid_choice",
                        f'"{language}" is not a valid choice; use one of {", ".join(LANGUAGES)}.',
                        parameter="language",
                    )
                ],
            )
        show_deleted = False
        raw_flag = record.query.get("show_deleted")
        if raw_flag is not None:
            flag = raw_flag.lower()
            if flag in ("true", "1"):
                show_deleted = True
            elif flag not in ("false", "0"):
                return _errors(
                    400,
                    [
                        _err(
                            "400",
                            "invalid",
                            f'"{raw_flag}" is not a valid boolean; use true or false.',
                            parameter="show_deleted",
                        )
                    ],
                )
        data = self._store.visible_statuses(ident, language=language, show_deleted=show_deleted)
        return _json(200, {"data": data})

    def _replace_statuses(self, record: RecordedRequest, _: int | None) -> web.Response:
        payload, ok = _decode_json(record.body)
        if not ok or not isinstance(payload, dict):
            return _wrong_format()
        errors = _check_statuses_body(payload)
        if errors:
            return _errors(400, errors)
        ident = payload["integration_id"]
        if ident not in self._store.integrations:
            return _not_found_integration()
        self._store.replace_statuses(ident, payload["statuses"])
        return _json(200, None)

    def _get_mapping(self, record: RecordedRequest, _: int | None) -> web.Response:
        ident = self._query_integration(record)
        if isinstance(ident, web.Response):
            return ident
        data = {"integration_id": ident, "mapping": self._store.mapping(ident)}
        return _json(200, {"data": data})

    def _set_mapping(self, record: RecordedRequest, _: int | None) -> web.Response:
        payload, ok = _decode_json(record.body)
        if not ok or not isinstance(payload, dict):
            return _wrong_format()
        errors = _check_mapping_body(payload)
        if errors:
            return _errors(400, errors)
        ident = payload["integration_id"]
        if ident not in self._store.integrations:
            return _not_found_integration()
        self._store.set_mapping(ident, payload["mapping"])
        return _json(200, None)
