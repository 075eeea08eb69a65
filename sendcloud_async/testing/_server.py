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
* Request bodies are checked against their schemas in the spec, then against
  the rules a schema cannot express (see ``_bodies.py``). Field errors of the
  Pydantic-style endpoints (PATCH integration, POST log) point at
  ``body/<field>`` with an integer ``status``; those of the shop order status
  endpoints use JSON pointers (``/statuses/0/external_id``) and a string
  ``status``, as the spec's examples for each do.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote, unquote

import msgspec
from aiohttp import web

from .._auth import BasicAuth
from .._lifecycle import Lifecycle
from .._oauth2 import OAuth2ClientCredentials
from ._answers import JSON, error, errors_response, json_response
from ._bodies import BodyCheckUnavailable, read_body
from ._faults import Fault, FaultInjection, FaultInjector
from ._limits import AccountsAndLimits
from ._oauth import TokenIssuer
from ._produce import LogProduction
from ._request import Authorization, RecordedRequest, read_authorization
from ._spec import SpecCheck, exempt_from_spec
from ._store import LANGUAGES, Record, Store, format_utc, parse_aware
from ._webhooks import WebhookEvents, WebhookSender

__all__ = ["API_PREFIX", "TOKEN_PATH", "FakeSendcloud", "RecordedRequest", "ScriptedResponse"]

#: Where the API lives on the fake's origin.
API_PREFIX: Final = "/api/v3"
#: Where the OAuth2 token endpoint lives on the fake's origin.
TOKEN_PATH: Final = "/oauth2/token/"

_DEFAULT_PAGE_SIZE: Final = 25
_MAX_PAGE_SIZE: Final = 100
_LOG_ORDERS: Final = ("oldest_first", "newest_first")

_ENCODER: Final = msgspec.json.Encoder()

_INTEGRATION_NOT_FOUND: Final = "The Integration could not be found with the search criteria given"
_SORT_FIELDS: Final = {
    "integration_type": "type",
    "created_at": "created_at",
    "updated_at": "updated_at",
    "last_fetch": "last_fetched_at",
    "failing_since": "started_failing_at",
}
_DEFAULT_SORT: Final = (("last_fetched_at", False), ("created_at", False))


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
            content_type = JSON
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


# -- small helpers -----------------------------------------------------------


def _not_found_integration() -> web.Response:
    return errors_response(
        404, [error(404, "not_found", _INTEGRATION_NOT_FOUND, title="Not Found")]
    )


def _query_pairs(raw_query: str) -> dict[str, str]:
    """Query names (decoded) to raw values, the last occurrence winning."""
    pairs: dict[str, str] = {}
    if raw_query:
        for part in raw_query.split("&"):
            if part:
                key, _, value = part.partition("=")
                pairs[unquote(key)] = value
    return pairs


def _positive_int(text: str) -> int | None:
    if text.isascii() and text.isdigit():
        value = int(text)
        if value >= 1:
            return value
    return None


def _whole(value: Any) -> Any:
    """A JSON number the schema accepts as an integer (``200.0``) as an int, else as is."""
    return int(value) if isinstance(value, float) else value


# -- the server ----------------------------------------------------------------

_Handler = Callable[[RecordedRequest, "int | None"], web.Response]


class FakeSendcloud(Lifecycle, FaultInjection, AccountsAndLimits, LogProduction, WebhookEvents):
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
        Lifecycle.__init__(self)
        self._basic_auth = BasicAuth(public_key, secret_key)
        self._webhooks = WebhookSender(webhook_secret)
        #: The Basic key pair the fake accepts (a test tool: not hidden).
        self.public_key = public_key
        self.secret_key = secret_key
        #: More accounts and per-account rate limits (see ``_limits.py``).
        self._init_accounts(public_key, secret_key)
        #: Logs that keep coming: ``produce`` (see ``_produce.py``).
        self._init_production()
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

    kind = "FakeSendcloud"

    async def start(self) -> None:
        """Start listening (a no-op if already started; ``ClientClosedError`` once closed)."""
        self.check_open()
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
        """Stop producing logs, finish webhook deliveries, stop listening and drop open
        connections (idempotent; the same as ``aclose()``)."""
        await self.aclose()

    async def _close(self) -> None:
        await self._stop_producers()
        await self._webhooks.close()
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _enter(self) -> None:
        await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await super().__aexit__(exc_type, exc, tb)
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

    # -- webhooks: see WebhookEvents (``_webhooks.py``) ----------------------------

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
            problem = f"commit_delay must be (low, high) with 0 <= low <= high: {value!r}"
            try:
                if isinstance(value, str | bytes):
                    raise TypeError
                low, high = (float(bound) for bound in value)
            except (TypeError, ValueError):
                raise ValueError(problem) from None
            if not 0 <= low <= high:
                raise ValueError(problem)
            value = (low, high)
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
        authorization = read_authorization(request.headers.get("Authorization"))
        record = RecordedRequest(
            method=request.method,
            path=rel,
            raw_path=raw_path,
            query={k: unquote(v) for k, v in _query_pairs(query_part).items()},
            headers=headers,
            body=body,
            auth_scheme=authorization.known_scheme,
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
            return errors_response(
                404, [error(404, "not_found", f"No route for {path}.", title="Not Found")]
            )
        account = self._account(authorization)
        if account is None:
            return self._unauthorized(authorization)
        if self._limiter is not None:  # per-account rate limits (enforce_rate_limits)
            throttled = await self._rate_limit(request, record.method, account)
            if throttled is not None:
                return throttled
        handler = self._routes[template].get(record.method)
        if handler is None:
            allowed = ", ".join(self._routes[template])
            return errors_response(
                405,
                [
                    error(
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
        try:
            return handler(record, ident)
        except BodyCheckUnavailable as exc:  # the fake cannot read bodies: say why
            return exempt_from_spec(
                errors_response(
                    500, [error("500", "server_error", str(exc), title="Missing package")]
                )
            )

    # -- authentication ----------------------------------------------------------------

    def _unauthorized(self, authorization: Authorization) -> web.Response:
        if not authorization.present:
            problem = error(
                "401",
                "authentication_failed",
                "Authentication credentials were not provided.",
                title="No credentials",
            )
        else:
            problem = error(
                "401",
                "authentication_failed",
                "The username or password provided is incorrect. "
                "Please make a request with the valid credentials.",
                title="Invalid username/password.",
            )
        return errors_response(401, [problem], headers={"WWW-Authenticate": 'Basic realm="api"'})

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
                    return errors_response(
                        400,
                        [
                            error(
                                400,
                                "invalid",
                                f"Cannot sort by {item!r}; use one of "
                                f"{', '.join(_SORT_FIELDS)}, optionally prefixed with '-'.",
                                parameter="sort",
                            )
                        ],
                    )
                order.append((field_name, descending))
        return json_response(200, {"data": self._store.sorted_integrations(order)})

    def _get_integration(self, record: RecordedRequest, ident: int | None) -> web.Response:
        assert ident is not None
        return json_response(200, {"data": self._store.integrations[ident]})

    def _delete_integration(self, record: RecordedRequest, ident: int | None) -> web.Response:
        assert ident is not None
        integration = self._store.integrations[ident]
        self._store.delete_integration(ident)
        self._notify(integration, "integration_deleted")
        return web.Response(status=204)

    def _patch_integration(self, record: RecordedRequest, ident: int | None) -> web.Response:
        assert ident is not None
        payload, errors = read_body("PATCH /integrations/{id}", record.body)
        if errors:
            return errors_response(400, errors)
        integration = self._store.integrations[ident]
        active = payload.get("webhook_active", integration.get("webhook_active"))
        url = payload.get("webhook_url", integration.get("webhook_url"))
        if active and not url:
            return errors_response(
                400,
                [
                    error(
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
                return errors_response(
                    400,
                    [
                        error(
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
                return errors_response(
                    400,
                    [
                        error(
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
        return json_response(200, {"data": page}, headers)

    def _create_log(self, record: RecordedRequest, ident: int | None) -> web.Response:
        assert ident is not None
        payload, errors = read_body("POST /integrations/{id}/logs", record.body)
        if errors:
            return errors_response(400, errors)
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
            "response_code": _whole(payload.get("response_code")),
            "response": payload.get("response"),
            "request": payload.get("request"),
            "created_at": created_at,
            "exception_type": payload.get("exception_type"),
            "exception": payload.get("exception"),
            "protected": False,
            "additional_data": "",
        }
        self._store.insert_log(log)
        return json_response(201, {"data": log})

    # -- shop order statuses ---------------------------------------------------------

    def _query_integration(self, record: RecordedRequest) -> int | web.Response:
        """The ``integration_id`` query parameter of an existing integration, or an error."""
        raw = record.query.get("integration_id", "")
        if not (raw.isascii() and raw.isdigit()):
            return errors_response(
                400,
                [
                    error(
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
            return errors_response(
                400,
                [
                    error(
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
                return errors_response(
                    400,
                    [
                        error(
                            "400",
                            "invalid",
                            f'"{raw_flag}" is not a valid boolean; use true or false.',
                            parameter="show_deleted",
                        )
                    ],
                )
        data = self._store.visible_statuses(ident, language=language, show_deleted=show_deleted)
        return json_response(200, {"data": data})

    def _replace_statuses(self, record: RecordedRequest, _: int | None) -> web.Response:
        return self._write_for_integration(
            record, "POST /shop-order-statuses", "statuses", self._store.replace_statuses
        )

    def _get_mapping(self, record: RecordedRequest, _: int | None) -> web.Response:
        ident = self._query_integration(record)
        if isinstance(ident, web.Response):
            return ident
        data = {"integration_id": ident, "mapping": self._store.mapping(ident)}
        return json_response(200, {"data": data})

    def _set_mapping(self, record: RecordedRequest, _: int | None) -> web.Response:
        return self._write_for_integration(
            record, "POST /shop-order-statuses/mapping", "mapping", self._store.set_mapping
        )

    def _write_for_integration(
        self,
        record: RecordedRequest,
        operation: str,
        field_name: str,
        write: Callable[[int, Any], None],
    ) -> web.Response:
        """A POST whose body names an ``integration_id``: ``write`` gets it and the field."""
        payload, errors = read_body(operation, record.body)
        if errors:
            return errors_response(400, errors)
        ident = int(payload["integration_id"])  # 7.0 is 7, as the API reads it
        if ident not in self._store.integrations:
            return _not_found_integration()
        write(ident, payload[field_name])
        return json_response(200, None)
