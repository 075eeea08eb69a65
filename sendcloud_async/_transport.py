"""The one request path: every API call goes through ``Transport.request``.

``request`` is a short loop: wait for the account's rate gate, make one attempt,
and on a failure ask ``RetryPolicy.decide`` whether and when to try again. An
attempt (``_send``) applies auth through a per-attempt aiohttp middleware
(``_Attempt``), reads the body within the size limit (``_body.BodyLimit``) and
turns what happened into a ``Response`` or a ``_Failure``.

Resilience, in short (the README's "Retries, timeouts and errors" has the table):

* Each attempt is bounded by the client's ``timeout`` (an aiohttp ``total``
  timeout: waiting for a pooled connection, connecting, sending and reading the
  whole body all count). A call makes at most ``1 + max_retries`` attempts.
* Whether a request may be repeated follows from its method
  (``_retry.is_idempotent``); a POST is repeated only when it was certainly not
  sent. "Not sent" is known, not guessed: the auth flow raises ``NotSent`` when
  the token could not be had, aiohttp raises ``ClientConnectorError`` when no
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
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

import aiohttp
import msgspec
from aiohttp import hdrs
from aiohttp.http_exceptions import ContentEncodingError
from multidict import CIMultiDictProxy
from yarl import URL

from . import _observe
from ._body import BodyLimit
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
from ._retry import RETRYABLE_STATUSES, RetryEvent, RetryPolicy, is_idempotent, retry_testing
from ._version import __version__

if TYPE_CHECKING:
    from ._auth import Secret
    from ._ratelimit import RateGate

__all__ = ["Response", "Transport", "TransportConfig", "display_url", "origin_of"]

logger: Final = logging.getLogger("sendcloud_async")

_T = TypeVar("_T")
_T_co = TypeVar("_T_co", covariant=True)

Origin = tuple[str, str | None, int | None]


class _Decoder(Protocol[_T_co]):
    """A msgspec decoder, or anything with the same ``decode``."""

    def decode(self, buf: bytes, /) -> _T_co: ...


USER_AGENT: Final = f"sendcloud-async/{__version__} aiohttp/{aiohttp.__version__}"
_GET_HEADERS: Final = {"Accept": "application/json", "User-Agent": USER_AGENT}
_JSON_HEADERS: Final = {**_GET_HEADERS, "Content-Type": "application/json"}


def origin_of(url: URL) -> Origin:
    """(scheme, host, port) with the port made explicit: what "same origin" compares."""
    return (url.scheme, url.host, url.port)


def display_url(url: URL) -> str:
    """The URL as shown in errors and logs: never with user info."""
    if url.user is not None or url.password is not None:
        url = url.with_user(None)
    return str(url)


_DEFAULT_LIMIT: Final = BodyLimit()


@dataclass(frozen=True, slots=True)
class TransportConfig:
    """Client configuration, normalised and validated once."""

    base_url: URL
    timeout: aiohttp.ClientTimeout
    retry: RetryPolicy
    body_limit: BodyLimit = _DEFAULT_LIMIT

    @property
    def base(self) -> str:
        """``base_url`` as an encoded string without a trailing slash, to append paths to."""
        return str(self.base_url)

    @property
    def origin(self) -> Origin:
        return origin_of(self.base_url)


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
    attempt = ctx.trace_request_ctx
    if type(attempt) is _Attempt:
        attempt.traced = True


async def _on_connection(session: aiohttp.ClientSession, ctx: Any, params: object) -> None:
    attempt = ctx.trace_request_ctx
    if type(attempt) is _Attempt:
        attempt.connected = True


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_on_request_start)
    config.on_connection_create_end.append(_on_connection)
    config.on_connection_reuseconn.append(_on_connection)
    config.freeze()
    return config


TRACE_CONFIG: Final = _trace_config()


def traced(session: aiohttp.ClientSession) -> aiohttp.ClientSession:
    """``session`` with the SDK's ``TraceConfig`` (appended once to a borrowed session)."""
    configs = session.trace_configs
    if TRACE_CONFIG not in configs:
        configs.append(TRACE_CONFIG)
    return session


def new_session(
    timeout: aiohttp.ClientTimeout, connector: aiohttp.BaseConnector
) -> aiohttp.ClientSession:
    """A session as the SDK makes them: no cookies, the SDK's tracing."""
    return aiohttp.ClientSession(
        timeout=timeout,
        cookie_jar=aiohttp.DummyCookieJar(),
        connector=connector,
        trace_configs=[TRACE_CONFIG],
    )


class _Attempt:
    """One attempt's aiohttp middleware: scopes the credentials to the API's origin.

    It also records how far the attempt got (``waiting`` for credentials, whether
    the tracing signals ran and saw a connection), which tells a timeout that
    fired before anything was sent from one that may have been sent.
    """

    __slots__ = (
        "connected",
        "flow",
        "limit",
        "origin",
        "session",
        "timeout",
        "traced",
        "used",
        "waiting",
    )

    def __init__(
        self,
        flow: AuthFlow,
        origin: Origin,
        session: aiohttp.ClientSession,
        timeout: aiohttp.ClientTimeout,
        limit: BodyLimit,
    ) -> None:
        self.flow = flow
        self.origin = origin
        self.session = session
        self.timeout = timeout
        self.limit = limit
        self.waiting = False
        self.traced = False
        self.connected = False
        #: The ``Authorization`` value last written into the request.
        self.used: Secret | None = None

    @property
    def sent(self) -> bool:
        """Whether the request may have reached the server (``True`` when unknown)."""
        if self.waiting:
            return False
        return self.connected or not self.traced

    async def __call__(
        self, req: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        url = req.url
        if (url.scheme, url.host, url.port) != self.origin:
            # Not the API's origin: only a redirect gets here (next-page links are
            # checked before). Following it would send the session's own headers
            # (aiohttp strips only Authorization) and a 307/308 body there, and take
            # its answer for the API's: refuse, as for a foreign Link.
            raise SendcloudError(
                "refusing to follow a redirect to another origin "
                f"({url.scheme}://{url.host}:{url.port}); no request was sent there"
            )
        flow = self.flow
        value = await self._authorization()
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
        value = self.used = await self.flow.authorization(self.session, self.timeout, self.limit)
        self.waiting = False
        return value

    def redactor(self) -> Redactor | None:
        """What to mask in an error built from the answer: the credential that was sent."""
        used = self.used
        return None if used is None else Redactor.for_authorization(used.get_secret_value())


@dataclass(slots=True)
class _Failure:
    """A failed attempt, as the retry policy sees it."""

    error: SendcloudError
    sent: bool = True
    status: int | None = None
    retry_after: float | None = None
    final: bool = False
    shared: bool = False  # one error object raised to every caller awaiting a token


class Transport:
    """Sends requests for one client."""

    __slots__ = ("_closed", "_config", "_flow", "_gate", "_owns_session", "_root", "_session")

    def __init__(
        self,
        config: TransportConfig,
        flow: AuthFlow,
        session: aiohttp.ClientSession | None = None,
        *,
        gate: RateGate | None = None,
    ) -> None:
        self._config = config
        self._flow = flow
        #: The account's rate gate (``SendcloudClient(rate_limit=...)``); None: no gate.
        self._gate = gate
        self._session = None if session is None else traced(session)
        self._owns_session = session is None
        self._closed = False
        #: The transport owning the session; ``self`` unless made by ``derive``.
        self._root = self
        flow.attach()

    def derive(self, config: TransportConfig) -> Transport:
        """A transport with another config that shares this one's session, auth and lifecycle."""
        root = self._root
        derived = object.__new__(Transport)
        derived._config = config
        derived._flow = root._flow
        derived._session = None
        derived._owns_session = False
        derived._closed = False
        derived._root = root
        derived._gate = root._gate
        return derived

    @property
    def config(self) -> TransportConfig:
        return self._config

    @property
    def flow(self) -> AuthFlow:
        return self._flow

    @property
    def closed(self) -> bool:
        return self._root._closed

    def session(self) -> aiohttp.ClientSession:
        """The session, created on first use (inside the running loop)."""
        if self._root is not self:
            return self._root.session()
        if self._closed:
            raise ClientClosedError(
                "this SendcloudClient is closed; create a new one to make more requests"
            )
        session = self._session
        if session is None:
            connector = aiohttp.TCPConnector(limit=100, limit_per_host=0)
            session = self._session = new_session(self._config.timeout, connector)
        elif session.closed:
            raise ClientClosedError(
                "the aiohttp.ClientSession given to this SendcloudClient is closed"
            )
        return session

    async def aclose(self) -> None:
        """Close the session if this transport created it; never a borrowed one.

        A derived transport owns nothing: closing it does nothing.
        """
        if self._closed or self._root is not self:
            return
        self._closed = True
        self._flow.detach()
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    async def request(
        self,
        method: str,
        url: URL,
        *,
        body: bytes | None = None,
        idempotent: bool | None = None,
        timeout: aiohttp.ClientTimeout | None = None,  # noqa: ASYNC109
        max_retries: int | None = None,
    ) -> Response:
        """Send ``method url`` (retrying per policy) and return the read response.

        ``idempotent`` defaults to what the method says (``_retry.is_idempotent``).
        Raises an ``APIError`` subclass for an error status, ``APIConnectionError``
        or ``APITimeoutError`` when the server could not be reached in time.
        """
        session = self.session()
        repeatable = is_idempotent(method) if idempotent is None else idempotent
        timeout = timeout or self._config.timeout
        shown = display_url(url)
        call = _observe.begin(method, shown)  # NO_CALL (does nothing) when nobody observes
        if call is _observe.NO_CALL:
            return await self._attempts(
                call, session, method, url, shown, body, timeout, repeatable, max_retries
            )
        with call.active():  # the rate gate reports its waits through current_call()
            return await self._attempts(
                call, session, method, url, shown, body, timeout, repeatable, max_retries
            )

    async def _attempts(
        self,
        call: _observe.Call,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        shown: str,
        body: bytes | None,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
        repeatable: bool,
        max_retries: int | None,
    ) -> Response:
        """The attempt loop: one attempt, then the policy's word on the next."""
        policy = self._config.retry
        attempt = 0
        while True:
            attempt += 1
            call.sending(attempt)
            outcome = await self._gated(session, method, url, shown, body, timeout, attempt)
            if type(outcome) is Response:
                call.finished(attempt, status=outcome.status)
                return outcome
            assert isinstance(outcome, _Failure)
            call.finished(attempt, status=outcome.status, error=type(outcome.error).__name__)
            wait = None
            if not outcome.final:
                wait = policy.decide(
                    attempt=attempt,
                    idempotent=repeatable or not outcome.sent,
                    status=outcome.status,
                    retry_after=outcome.retry_after,
                    sent=outcome.sent,
                    max_retries=max_retries,
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
                self._before_retry(
                    error.method or method, error.url, attempt, error, wait, max_retries
                )
            else:
                self._before_retry(method, shown, attempt, error, wait, max_retries)
            call.waiting(
                "retry",
                wait,
                status=outcome.status,
                error=None if outcome.status is not None else _reason(error),
            )
            await asyncio.sleep(0 if retry_testing.instant else wait)

    async def _gated(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        shown: str,
        body: bytes | None,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
        attempt: int,
    ) -> Response | _Failure:
        """One attempt through the account's rate gate (its wait is outside the timeout)."""
        gate = self._gate
        if gate is None:
            return await self._send(session, method, url, shown, body, timeout, attempt)
        lease = await gate.acquire(method)
        try:
            outcome = await self._send(session, method, url, shown, body, timeout, attempt)
            if (
                isinstance(outcome, _Failure)
                and isinstance(outcome.error, RateLimitError)
                and outcome.retry_after is not None
            ):
                gate.block(outcome.retry_after)  # every request of the account waits
        finally:
            gate.release(lease)
        return outcome

    async def _send(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        shown: str,
        body: bytes | None,
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109
        attempt: int,
    ) -> Response | _Failure:
        """One attempt: a ``Response`` for a 2xx, else what went wrong."""
        config = self._config
        state = _Attempt(self._flow, config.origin, session, timeout, config.body_limit)
        started = time.monotonic()
        failure: _Failure
        try:
            async with session.request(
                method,
                url,
                data=body,
                headers=_GET_HEADERS if body is None else _JSON_HEADERS,
                timeout=timeout,
                middlewares=(state,),
                raise_for_status=False,
                trace_request_ctx=state,
            ) as resp:
                payload = await config.body_limit.read(resp, method=method, url=shown)
                status = resp.status
                _log_attempt(method, shown, status, started, attempt)
                if 200 <= status < 300:
                    return Response(method, resp.url, status, resp.headers, payload)
                failure = _status_failure(method, shown, status, resp, payload, state.redactor())
        except (NotSent, TimeoutError, aiohttp.ClientError, RuntimeError, ValueError) as exc:
            if isinstance(exc, SendcloudError) or (
                isinstance(exc, RuntimeError) and not session.closed
            ):
                raise  # ours already (InvalidInputError is a ValueError), or not aiohttp's
            cause = exc.error if isinstance(exc, NotSent) else exc
            _log_attempt(method, shown, type(cause).__name__, started, attempt)
            failure = _failure_of(exc, state, method, shown, attempt)
        return failure

    def _before_retry(
        self,
        method: str,
        shown: str | None,
        attempt: int,
        error: Exception,
        wait: float,
        max_retries: int | None,
    ) -> None:
        """Log (and, under ``instant_retries``, record) a retry about to happen."""
        reason = _reason(error)
        level = logging.INFO if isinstance(error, RateLimitError) else logging.WARNING
        if logger.isEnabledFor(level):
            limit = self._config.retry.max_retries if max_retries is None else max_retries
            logger.log(
                level,
                "%s %s failed (%s); retrying in %.2f s (retry %d of %d)",
                method,
                shown,
                reason,
                wait,
                attempt,
                limit,
            )
        events = retry_testing.events
        if events is not None:
            events.append(RetryEvent(method, shown or "", attempt, reason, wait))


def _failure_of(exc: Exception, state: _Attempt, method: str, shown: str, attempt: int) -> _Failure:
    """What an exception raised by one attempt amounts to: the one mapping of them all."""
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
        message = f"the request timed out after {attempt} attempt(s)"
        return _Failure(
            _connection_error(APITimeoutError, message, method, shown, exc),
            sent=state.sent and not isinstance(exc, aiohttp.ConnectionTimeoutError),
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
            _connection_error(APIConnectionError, message, method, shown, exc), sent=state.sent
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


def _log_attempt(method: str, shown: str, outcome: object, started: float, attempt: int) -> None:
    """DEBUG: ``-> 200 in 1.2 ms`` for an answer, ``-> ErrorName after 1.2 ms`` for a failure."""
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "%s %s -> %s in %.1f ms (attempt %d)"
            if isinstance(outcome, int)
            else "%s %s -> %s after %.1f ms (attempt %d)",
            method,
            shown,
            outcome,
            (time.monotonic() - started) * 1000,
            attempt,
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
