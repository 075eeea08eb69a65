"""The one request path: every API call goes through ``Transport.send``.

A resource names an ``Operation`` (name, method, path template, response type;
the table is ``_operations``) and passes its checked arguments; the transport
builds the URL (``Transport.url``: every value is percent-encoded there and
nowhere else), sends and decodes (``Transport.call``). Paging asks for the read
response instead (``Transport.send``) and decodes each page when it is used.

``send`` is a short loop: wait for the account's rate gate, make one attempt,
and on a failure ask ``RetryPolicy.decide`` whether and when to try again. The
call's one ``_Request`` carries what is sent (the same for every attempt) and
how far the current attempt got; it is also the attempt's aiohttp middleware,
which applies auth. An attempt (``_send``) reads the body within the size limit
(``_body.BodyLimit``) and turns what happened into a ``Response`` or a
``_Failure``.

Resilience, in short (the README's "Retries, timeouts and errors" has the table):

* Each attempt is bounded by the client's ``timeout`` (an aiohttp ``total``
  timeout: waiting for a pooled connection, connecting, sending and reading the
  whole body all count). A call makes at most ``1 + max_retries`` attempts.
* Whether a request may be repeated follows from its operation (by default its
  method, ``_retry.is_idempotent``); a POST is repeated only when it was
  certainly not sent, unless its operation says repeating it changes nothing.
  "Not sent" is known, not guessed: the auth flow raises ``NotSent`` when the
  token could not be had, aiohttp raises ``ClientConnectorError`` when no
  connection could be made, and aiohttp's public tracing signals
  (``on_connection_create_end``, ``on_connection_reuseconn``) tell whether the
  attempt ever got a connection before its timeout fired. The SDK's sessions
  carry that ``TraceConfig``; a borrowed session gets it appended once (it acts
  only on the SDK's own requests). Anything not known counts as sent.
* Only ``2xx`` is success: a ``3xx`` that reaches the SDK (redirects to the same
  origin are followed by aiohttp) is an ``APIError``.
* Cancelling the calling task at any point leaves nothing behind: ``async with``
  on the response releases or closes the connection.
* Errors never chain an aiohttp exception (it can hold the request's headers):
  their ``__cause__`` is ``UnderlyingError``, the same text without the object.
* Logging (logger ``sendcloud_async``): DEBUG per attempt (method, URL, status or
  error, elapsed, attempt), INFO per retry of a 429 and WARNING per other retry
  (reason and wait). URLs are shown without user info; no header is ever logged.
  Each record also carries the operation's name and path template as the
  attributes ``operation`` and ``url_template`` (for a formatter or a tracer);
  the observer's events (``_observe``) carry them too.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Generic, Protocol, TypeVar

import aiohttp
import msgspec
from aiohttp import hdrs
from aiohttp.http_exceptions import ContentEncodingError
from multidict import CIMultiDictProxy
from yarl import URL

from . import _observe
from ._errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    ClientClosedError,
    DecodeError,
    RateLimitError,
    Redactor,
    SendcloudError,
    UnderlyingError,
    build_api_error,
    parse_retry_after,
    sanitized_cause,
)
from ._flows import AuthFlow, NotSent
from ._lifecycle import Held, Lifecycle
from ._pagination import encode_query_value
from ._retry import RETRYABLE_STATUSES, RetryEvent, RetryPolicy, is_idempotent, retry_testing
from ._version import __version__

if TYPE_CHECKING:
    from ._auth import Secret
    from ._options import ClientOptions
    from ._ratelimit import RateGate

__all__ = [
    "NO_CONTENT",
    "Operation",
    "QueryValue",
    "Response",
    "Transport",
    "display_url",
    "encode_json",
]

logger: Final = logging.getLogger("sendcloud_async")

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)


class _Decoder(Protocol[_T_co]):
    """A msgspec decoder, or anything with the same ``decode``."""

    def decode(self, buf: bytes, /) -> _T_co: ...


class _NoContent:
    """The decoder of an operation whose answer carries nothing the caller reads."""

    __slots__ = ()

    def decode(self, buf: bytes, /) -> None:
        return None


#: The response type of an operation that returns nothing (``None``).
NO_CONTENT: Final = _NoContent()


@dataclass(frozen=True, slots=True)
class Operation(Generic[_T]):
    """One operation of the API: what the transport needs besides a call's arguments.

    ``name`` is the SDK's (``"logs.list"``), ``template`` the path below the base
    URL with ``{name}`` placeholders (``"/integrations/{id}/logs"``), ``decoder``
    reads a 2xx body into the response type (``NO_CONTENT``: nothing to read).
    ``idempotent`` says whether the request may be repeated after it may have
    been sent; by default what the method says (``_retry.is_idempotent``). Name
    and template travel with every request, for logs and the observer's events
    (the template is OpenTelemetry's ``url.template``).
    """

    name: str
    method: str
    template: str
    decoder: _Decoder[_T]
    idempotent: bool | None = None
    #: ``idempotent``, or what the method says when it is ``None``.
    repeatable: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        repeatable = is_idempotent(self.method) if self.idempotent is None else self.idempotent
        object.__setattr__(self, "repeatable", repeatable)


#: A query value: a string (percent-encoded), an int, a bool (``true``/``false``) or
#: ``None`` (the parameter is left out).
QueryValue = str | int | bool | None


def _encoded(value: str | int | bool) -> str:
    """One path or query value as it goes on the wire: the one encoding rule."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    return encode_query_value(value)


USER_AGENT: Final = f"sendcloud-async/{__version__} aiohttp/{aiohttp.__version__}"
_GET_HEADERS: Final = {"Accept": "application/json", "User-Agent": USER_AGENT}
_JSON_HEADERS: Final = {**_GET_HEADERS, "Content-Type": "application/json"}


def display_url(url: URL) -> str:
    """The URL as shown in errors and logs: never with user info."""
    if url.user is not None or url.password is not None:
        url = url.with_user(None)
    return str(url)


class Response:
    """A fully read response: nothing stays open once the caller has it."""

    __slots__ = ("body", "headers", "method", "status", "url")

    def __init__(
        self, method: str, url: URL, status: int, headers: CIMultiDictProxy[str], body: bytes
    ) -> None:
        self.method = method
        self.url = url
        self.status = status
        self.headers = headers
        self.body = body

    def decode(self, decoder: _Decoder[_T]) -> _T:
        """The body decoded by ``decoder``; ``DecodeError`` if it does not fit."""
        try:
            return decoder.decode(self.body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            reason = "it is nested too deeply" if isinstance(exc, RecursionError) else str(exc)
            failure = DecodeError(
                f"could not decode the {self.status} response: {reason[:300]}",
                method=self.method,
                url=display_url(self.url),
                status=self.status,
            )
        raise failure


# -- knowing whether an attempt got a connection: aiohttp's public tracing signals --------


async def _on_request_start(
    session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestStartParams
) -> None:
    request = ctx.trace_request_ctx
    if type(request) is _Request:
        request.traced = True


async def _on_connection(session: aiohttp.ClientSession, ctx: Any, params: object) -> None:
    request = ctx.trace_request_ctx
    if type(request) is _Request:
        request.connected = True


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_on_request_start)
    config.on_connection_create_end.append(_on_connection)
    config.on_connection_reuseconn.append(_on_connection)
    config.freeze()
    return config


TRACE_CONFIG: Final = _trace_config()


#: The attempt in flight in this task, for ``_Connector`` (set by ``_send``).
_ATTEMPT: Final[contextvars.ContextVar[_Request | None]] = contextvars.ContextVar(
    "sendcloud_async_attempt", default=None
)


class _Connector(aiohttp.TCPConnector):
    """The connector of the sessions the SDK makes: it tells the attempt it got a connection.

    What the tracing signals tell on a borrowed session, without their cost: aiohttp
    builds and sends every signal of every ``TraceConfig`` on every request (about a
    sixth of a small request's client CPU), where this is one context lookup.
    """

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Any],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature
    ) -> Any:
        request = _ATTEMPT.get()
        if request is not None:
            request.traced = True
        conn = await super().connect(req, traces, timeout)
        if request is not None:
            request.connected = True
        return conn


def sdk_connector(*, limit: int, limit_per_host: int, **options: Any) -> aiohttp.TCPConnector:
    """A connector for a session the SDK makes (see ``_Connector``)."""
    return _Connector(limit=limit, limit_per_host=limit_per_host, **options)


def traced(session: aiohttp.ClientSession) -> aiohttp.ClientSession:
    """``session`` with the SDK's ``TraceConfig`` (appended once to a borrowed session).

    A session on the SDK's own connector needs none (``_Connector``).
    """
    if isinstance(session.connector, _Connector):
        return session
    configs = session.trace_configs
    if TRACE_CONFIG not in configs:
        configs.append(TRACE_CONFIG)
    return session


def new_session(
    timeout: aiohttp.ClientTimeout, connector: aiohttp.BaseConnector
) -> aiohttp.ClientSession:
    """A session as the SDK makes them: no cookies; the SDK's tracing unless on its connector."""
    session = aiohttp.ClientSession(
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=connector,
    )
    return traced(session)


class _Request:
    """One call of the request path, from its first attempt to its last.

    What is sent (operation, URL, body) is fixed when the call starts and the
    same for every attempt. The rest says how far the current attempt got
    (``waiting`` for credentials, whether the tracing signals ran and saw a
    connection), which tells a timeout that fired before anything was sent from
    one that may have been sent; ``attempt`` resets it. The request is also the
    attempt's aiohttp middleware, which scopes the credentials to the API's
    origin. One object per call, whatever the number of attempts.
    """

    __slots__ = (
        "attempt",
        "body",
        "config",
        "connected",
        "flow",
        "op",
        "session",
        "shown",
        "traced",
        "url",
        "used",
        "waiting",
    )

    def __init__(
        self,
        op: Operation[Any],
        url: URL,
        body: bytes | None,
        config: ClientOptions,
        flow: AuthFlow,
        session: aiohttp.ClientSession,
    ) -> None:
        self.op = op
        self.url = url
        #: The URL as errors and logs show it, computed once for every attempt.
        self.shown = display_url(url)
        self.body = body
        self.config = config
        self.flow = flow
        self.session = session
        self.attempt = 0
        self.waiting = False
        self.traced = False
        self.connected = False
        #: The ``Authorization`` value last written into the request.
        self.used: Secret | None = None

    def next_attempt(self) -> int:
        """Start the next attempt (numbered from 1) with nothing known about it yet."""
        self.attempt += 1
        self.waiting = False
        self.traced = False
        self.connected = False
        self.used = None
        return self.attempt

    @property
    def sent(self) -> bool:
        """Whether the attempt may have reached the server (``True`` when unknown)."""
        if self.waiting:
            return False
        return self.connected or not self.traced

    async def __call__(
        self, req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        url = req.url
        if (url.scheme, url.host, url.port) != self.config.origin:
            # Not the API's origin: only a redirect gets here (next-page links are
            # checked before). Following it would send the session's own headers
            # (aiohttp strips only Authorization) and a 307/308 body there, and take
            # its answer for the API's: refuse, as for a foreign Link.
            raise SendcloudError(
                "refusing to follow a redirect to another origin "
                f"({url.scheme}://{url.host}:{url.port}); no request was sent there"
            )
        flow = self.flow
        value = flow.at_hand()  # static credentials: nothing to wait for
        if value is None:
            value = await self._authorization()
        else:
            self.used = value
        req.headers[hdrs.AUTHORIZATION] = value.get_secret_value()
        resp = await handler(req)
        if resp.status != 401 or not flow.refreshable or not await flow.invalidate(value):
            return resp
        resp.release()
        value = await self._authorization()
        req.headers[hdrs.AUTHORIZATION] = value.get_secret_value()
        return await handler(req)

    async def _authorization(self) -> Secret:
        self.waiting = True
        config = self.config
        value = self.used = await self.flow.authorization(
            self.session, config.timeout, config.body_limit
        )
        self.waiting = False
        return value

    def redactor(self) -> Redactor | None:
        """What to mask in an error built from the answer: the credential that was sent."""
        used = self.used
        return None if used is None else Redactor.for_authorization(used.get_secret_value())

    def extra(self) -> dict[str, str]:
        """The operation's name and path template, as attributes of a log record."""
        return {"operation": self.op.name, "url_template": self.op.template}


@dataclass(slots=True)
class _Failure:
    """A failed attempt, as the retry policy sees it."""

    error: SendcloudError
    sent: bool = True
    status: int | None = None
    retry_after: float | None = None
    final: bool = False
    shared: bool = False  # one error object raised to every caller awaiting a token


class _Shared(Lifecycle):
    """What a client shares with every client ``with_options`` derives from it.

    The aiohttp session (created on first use, or borrowed: then never closed),
    the account's auth flow and rate gate, and the client's lifecycle (closing the
    original closes every derived client with it).
    """

    __slots__ = ("_closed", "_session", "flow", "gate", "timeout")
    kind = "SendcloudClient"

    def __init__(
        self,
        flow: AuthFlow,
        session: aiohttp.ClientSession | None,
        gate: RateGate | None,
        timeout: aiohttp.ClientTimeout,
    ) -> None:
        super().__init__()
        self.flow = flow
        self.gate = gate
        self._session = Held.borrowed_or_own(None if session is None else traced(session))
        #: The default timeout of a session made here (every request passes its own).
        self.timeout = timeout
        flow.attach()
        _autoinstrument()  # OpenTelemetry, if the application configured it

    def open_session(self) -> aiohttp.ClientSession:
        """The session, created on first use (inside the running loop)."""
        self.check_open()
        session = self._session.value
        if session is None:
            connector = sdk_connector(limit=100, limit_per_host=0)
            session = self._session.value = new_session(self.timeout, connector)
        elif session.closed:
            raise ClientClosedError(
                "the aiohttp.ClientSession given to this SendcloudClient is closed"
            )
        return session

    async def _close(self) -> None:
        self.flow.detach()
        await self._session.release(aiohttp.ClientSession.close)


class Transport:
    """Sends the requests of one client, under its ``ClientOptions``."""

    __slots__ = ("_config", "_derived", "_flow", "_gate", "_shared")

    def __init__(self, config: ClientOptions, shared: _Shared, *, derived: bool = False) -> None:
        self._config = config
        self._shared = shared
        #: The account's auth flow and rate gate (``rate_limit=``; None: no gate).
        self._flow = shared.flow
        self._gate = shared.gate
        #: Made by ``derive``: owns nothing, its ``aclose()`` does nothing.
        self._derived = derived

    @classmethod
    def open(
        cls,
        config: ClientOptions,
        flow: AuthFlow,
        session: aiohttp.ClientSession | None = None,
        *,
        gate: RateGate | None = None,
    ) -> Transport:
        """A transport that owns its lifecycle (and ``session`` unless one is given)."""
        return cls(config, _Shared(flow, session, gate, config.timeout))

    def derive(self, config: ClientOptions) -> Transport:
        """A transport with other options that shares this one's session, auth and lifecycle."""
        return Transport(config, self._shared, derived=True)

    @property
    def config(self) -> ClientOptions:
        return self._config

    @property
    def flow(self) -> AuthFlow:
        return self._flow

    @property
    def closed(self) -> bool:
        return self._shared.closed

    @property
    def lifecycle(self) -> Lifecycle:
        """The client's lifecycle, shared with every transport ``derive`` made from it."""
        return self._shared

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use (inside the running loop)."""
        return self._shared.open_session()

    async def aclose(self) -> None:
        """Close the session if this transport created it; never a borrowed one.

        A derived transport owns nothing: closing it does nothing.
        """
        if not self._derived:
            await self._shared.aclose()

    def url(
        self,
        op: Operation[Any],
        path: Mapping[str, str | int] | None = None,
        query: Iterable[tuple[str, QueryValue]] = (),
    ) -> URL:
        """The URL of ``op``: ``path`` fills its template, ``query`` follows in order.

        Every value is percent-encoded here (``+`` as ``%2B``, ``/`` in a path
        value as ``%2F``); a query value of ``None`` is left out.
        """
        template = op.template
        if path is None:
            text = self._config.base + template
        else:
            text = self._config.base + template.format_map(
                {name: _encoded(value) for name, value in path.items()}
            )
        params = [f"{name}={_encoded(value)}" for name, value in query if value is not None]
        if params:
            text = f"{text}?{'&'.join(params)}"
        return URL(text, encoded=True)

    async def call(
        self,
        op: Operation[_T],
        path: Mapping[str, str | int] | None = None,
        query: Iterable[tuple[str, QueryValue]] = (),
        *,
        body: object = None,
    ) -> _T:
        """Send ``op`` and return its answer decoded (``DecodeError`` if it does not fit).

        ``body`` (a Struct, a dict, ...) is sent as JSON; ``None``: no body.
        """
        encoded = None if body is None else encode_json(body)
        resp = await self.send(op, self.url(op, path, query), body=encoded)
        return resp.decode(op.decoder)

    async def send(self, op: Operation[Any], url: URL, *, body: bytes | None = None) -> Response:
        """Send ``op`` to ``url`` (retrying per policy) and return the read response.

        Raises an ``APIError`` subclass for an error status, ``APIConnectionError``
        or ``APITimeoutError`` when the server could not be reached in time.
        """
        request = _Request(op, url, body, self._config, self._flow, self.session())
        # NO_CALL (does nothing) when nobody observes
        call = _observe.begin(op.method, request.shown, op.name, op.template)
        if call is _observe.NO_CALL:
            return await self._attempts(call, request)
        call.account = ":".join(self._flow.credentials.identity)  # public: never a secret
        # current_call() inside (the rate gate reports its waits there); CallEnded after
        return await call.run(self._attempts(call, request))

    async def _attempts(self, call: _observe.Call, request: _Request) -> Response:
        """The attempt loop: one attempt, then the policy's word on the next."""
        policy = self._config.retry
        while True:
            attempt = request.next_attempt()
            outcome = await self._gated(request, call, attempt)
            if type(outcome) is Response:
                call.finished(attempt, status=outcome.status)
                return outcome
            assert isinstance(outcome, _Failure)
            call.finished(attempt, status=outcome.status, error=type(outcome.error).__name__)
            wait = None
            if not outcome.final:
                wait = policy.decide(
                    attempt=attempt,
                    idempotent=request.op.repeatable or not outcome.sent,
                    status=outcome.status,
                    retry_after=outcome.retry_after,
                    sent=outcome.sent,
                )
            if wait is None:
                if not outcome.shared:
                    _explain(outcome.error, attempt, outcome.retry_after, policy)
                # A fresh traceback: a token error is shared by every waiter, and the
                # frames it came through hold the response that may echo a credential.
                raise outcome.error.with_traceback(None)
            error = outcome.error
            if outcome.shared and isinstance(error, APIConnectionError | APIError | DecodeError):
                # The token request failed: say so, not the API call it held back.
                _before_retry(request, error.method or request.op.method, error.url, error, wait)
            else:
                _before_retry(request, request.op.method, request.shown, error, wait)
            call.waiting(
                "retry",
                wait,
                status=outcome.status,
                error=None if outcome.status is not None else _reason(error),
            )
            await asyncio.sleep(0 if retry_testing.instant else wait)

    async def _gated(
        self, request: _Request, call: _observe.Call, attempt: int
    ) -> Response | _Failure:
        """One attempt through the account's rate gate (its wait is outside the timeout).

        ``Sending`` is reported once past the gate: an attempt's duration is the request's.
        """
        gate = self._gate
        if gate is None:
            call.sending(attempt)
            return await _send(request)
        lease = await gate.acquire(request.op.method)
        call.sending(attempt)
        try:
            outcome = await _send(request)
            if (
                isinstance(outcome, _Failure)
                and isinstance(outcome.error, RateLimitError)
                and outcome.retry_after is not None
            ):
                gate.block(outcome.retry_after)  # every request of the account waits
        finally:
            gate.release(lease)
        return outcome


async def _send(request: _Request) -> Response | _Failure:
    """One attempt: a ``Response`` for a 2xx, else what went wrong."""
    method = request.op.method
    shown = request.shown
    session = request.session
    config = request.config
    body = request.body
    started = time.monotonic()
    failure: _Failure
    in_flight = _ATTEMPT.set(request)  # for the SDK's connector (``_Connector``)
    try:
        async with session.request(
            method,
            request.url,
            data=body,
            headers=_GET_HEADERS if body is None else _JSON_HEADERS,
            timeout=config.timeout,
            middlewares=(request,),
            raise_for_status=False,
            trace_request_ctx=request,
        ) as resp:
            payload = await config.body_limit.read(resp, method=method, url=shown)
            status = resp.status
            _log_attempt(request, status, started)
            if 200 <= status < 300:
                return Response(method, resp.url, status, resp.headers, payload)
            failure = _status_failure(method, shown, status, resp, payload, request.redactor())
    except (NotSent, TimeoutError, aiohttp.ClientError, RuntimeError, ValueError) as exc:
        if isinstance(exc, SendcloudError) or (
            isinstance(exc, RuntimeError) and not session.closed
        ):
            raise  # ours already (InvalidInputError is a ValueError), or not aiohttp's
        cause = exc.error if isinstance(exc, NotSent) else exc
        _log_attempt(request, type(cause).__name__, started)
        failure = _failure_of(exc, request)
    finally:
        _ATTEMPT.reset(in_flight)
    return failure


def _before_retry(
    request: _Request, method: str, shown: str | None, error: Exception, wait: float
) -> None:
    """Log (and, under ``instant_retries``, record) a retry about to happen."""
    reason = _reason(error)
    level = logging.INFO if isinstance(error, RateLimitError) else logging.WARNING
    attempt = request.attempt
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "%s %s failed (%s); retrying in %.2f s (retry %d of %d)",
            method,
            shown,
            reason,
            wait,
            attempt,
            request.config.retry.max_retries,
            extra=request.extra(),
        )
    events = retry_testing.events
    if events is not None:
        events.append(RetryEvent(method, shown or "", attempt, reason, wait))


def _failure_of(exc: Exception, request: _Request) -> _Failure:
    """What an exception raised by one attempt amounts to: the one mapping of them all."""
    method, shown = request.op.method, request.shown
    if isinstance(exc, NotSent):
        error = exc.error
        return _Failure(
            error,
            sent=False,
            status=error.status if isinstance(error, APIError) else None,
            retry_after=error.retry_after if isinstance(error, RateLimitError) else None,
            final=exc.final,
            shared=True,
        )
    if isinstance(exc, TimeoutError):
        message = f"the request timed out after {request.attempt} attempt(s)"
        return _Failure(
            _connection_error(APITimeoutError, message, method, shown, exc),
            sent=request.sent and not isinstance(exc, aiohttp.ConnectionTimeoutError),
        )
    if isinstance(exc, _FATAL_CLIENT_ERRORS):
        # Retrying cannot help: a certificate the system does not trust, a bad URL.
        message = f"the connection failed: {type(exc).__name__}: {exc}"
        return _Failure(
            _connection_error(APIConnectionError, message, method, shown, exc), final=True
        )
    if isinstance(exc, aiohttp.ClientConnectorError):
        message = f"could not connect to {exc.host}:{exc.port} ({exc.os_error or exc})"
        return _Failure(
            _connection_error(APIConnectionError, message, method, shown, exc), sent=False
        )
    if isinstance(exc, aiohttp.ClientPayloadError) and isinstance(
        exc.__cause__, ContentEncodingError
    ):
        # The body arrived but does not inflate: a retry gets the same bytes.
        message = "could not decode the response: its Content-Encoding does not match its body"
        return _Failure(DecodeError(message, method=method, url=shown), final=True)
    if isinstance(exc, aiohttp.ClientError):  # dropped, reset, cut short
        message = f"the connection failed: {type(exc).__name__}: {_plain(exc)}"
        return _Failure(
            _connection_error(APIConnectionError, message, method, shown, exc), sent=request.sent
        )
    if isinstance(exc, RuntimeError):  # the session was closed under the request
        message = "the aiohttp session was closed while a request was in flight"
        return _Failure(ClientClosedError(message), final=True)
    # A ValueError from aiohttp refusing to build the request: not retryable.
    message = f"the request could not be built: {type(exc).__name__}"
    return _Failure(SendcloudError(message), final=True)


def _status_failure(
    method: str,
    shown: str,
    status: int,
    resp: aiohttp.ClientResponse,
    payload: bytes,
    redact: Redactor | None,
) -> _Failure:
    """What an answer other than 2xx amounts to (a 3xx included: never success)."""
    error = build_api_error(
        status,
        body=payload,
        method=method,
        url=shown,
        headers=resp.headers,
        reason=resp.reason,
        redact=redact,
    )
    retry_after: float | None = None
    if isinstance(error, RateLimitError):
        retry_after = error.retry_after
    elif status in RETRYABLE_STATUSES:
        # RFC 9110: Retry-After also applies to 503 (and is honoured on any retryable
        # status that carries it).
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    return _Failure(error, status=status, retry_after=retry_after)


def _connection_error(
    cls: type[APIConnectionError], message: str, method: str, shown: str, exc: BaseException
) -> APIConnectionError:
    error = cls(message, method=method, url=shown)
    error.__cause__ = sanitized_cause(exc)
    return error


def _plain(exc: BaseException) -> str:
    """``exc``'s message, unless it is one that prints its request (headers included)."""
    return "" if hasattr(exc, "request_info") else str(exc)[:300]


def _log_attempt(request: _Request, outcome: object, started: float) -> None:
    """DEBUG: ``-> 200 in 1.2 ms`` for an answer, ``-> ErrorName after 1.2 ms`` for a failure."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "%s %s -> %s in %.1f ms (attempt %d)"
            if isinstance(outcome, int)
            else "%s %s -> %s after %.1f ms (attempt %d)",
            request.op.method,
            request.shown,
            outcome,
            (time.monotonic() - started) * 1000,
            request.attempt,
            extra=request.extra(),
        )


def _explain(
    error: Exception, attempt: int, retry_after: float | None, policy: RetryPolicy
) -> None:
    """Say on the exception why it was not retried (shown by tracebacks)."""
    if retry_after is not None and retry_after > policy.max_retry_after:
        error.add_note(
            f"Not retried: Retry-After ({retry_after:g} s) is above the SDK's "
            f"{policy.max_retry_after:g} s cap; retry later yourself."
        )
    elif attempt > 1:
        error.add_note(f"Gave up after {attempt} attempts.")


def _reason(error: Exception) -> str:
    if isinstance(error, RateLimitError) and error.retry_after is not None:
        return f"status 429, Retry-After {error.retry_after:g} s"
    if isinstance(error, APIError):
        return f"status {error.status}"
    if isinstance(error, APITimeoutError):
        return "timeout"
    cause = error.__cause__
    if isinstance(cause, UnderlyingError):
        return str(cause).rsplit(".", 1)[-1]
    return type(cause or error).__name__


# Client errors a retry cannot fix (also ClientConnectorErrors, so listed before them).
_FATAL_CLIENT_ERRORS: Final = (
    aiohttp.ClientConnectorCertificateError,
    aiohttp.InvalidURL,
    aiohttp.TooManyRedirects,
)


def encode_json(value: Any) -> bytes:
    """JSON-encode a request body (Structs, dicts, datetimes) with msgspec."""
    return msgspec.json.encode(value)


def _autoinstrument() -> None:
    """Report to OpenTelemetry if the application configured it (never imports it otherwise)."""
    if "opentelemetry.trace" not in sys.modules and "opentelemetry.metrics" not in sys.modules:
        return
    try:
        from . import otel
    except ImportError:  # the API is only partly there: nothing to report to
        return
    otel.instrument_if_configured()
