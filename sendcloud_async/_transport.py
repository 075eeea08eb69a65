"""The one request path: every API call goes through ``Transport.send``.

A resource names an ``Operation`` (name, method, path template, response type;
the table is ``_operations``) and passes its checked arguments; the transport
builds the URL (``Transport.url``: every value is percent-encoded there and
nowhere else), sends and decodes (``Transport.call``). Paging asks for the read
response instead (``Transport.send``) and decodes each page when it is used.

``send`` is a short loop: wait for the account's rate gate, make one attempt,
and on a failure ask ``RetryPolicy.decide`` whether and when to try again. The
call's one ``_request.Request`` carries what is sent (the same for every attempt)
and how far the current attempt got; it is also the attempt's aiohttp middleware,
which applies auth, except on a GET with static credentials on the SDK's own
session (``Request.direct``): that one carries its ``Authorization`` header itself,
aiohttp does not follow its redirect, and ``_send`` follows it by aiohttp's rules,
the rest of the attempt through the middleware. An attempt (``_send``) reads the
body within the size limit (``_body.BodyLimit``) and turns what happened into a
``Response`` or a ``_failures.Failure``. The sessions and what they tell an
attempt are ``_sessions``'.

Resilience, in short (the README's "Retries, timeouts and errors" has the table):

* Each attempt is bounded by the client's ``timeout`` (an aiohttp ``total``
  timeout: waiting for a pooled connection, connecting, sending and reading the
  whole body all count). A call makes at most ``1 + max_retries`` attempts.
* Whether a request may be repeated follows from its operation (by default its
  method, ``_retry.is_idempotent``); a POST is repeated only when it was
  certainly not sent, unless its operation says repeating it changes nothing.
  "Not sent" is known, not guessed: the auth flow raises ``NotSent`` when the
  token could not be had, aiohttp raises ``ClientConnectorError`` when no
  connection could be made, and the session tells whether the attempt ever got a
  connection before its timeout fired (``_sessions``). Anything not known counts
  as sent.
* Only ``2xx`` is success: a ``3xx`` that reaches the SDK (redirects to the same
  origin are followed, by aiohttp's rules; another origin is refused before anything
  is sent there) is an ``APIError``.
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
import logging
import time
from collections.abc import Awaitable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, TypeVar

import aiohttp
import msgspec
from aiohttp import hdrs
from yarl import URL

from . import _observe
from ._errors import APIConnectionError, APIError, DecodeError, RateLimitError, SendcloudError
from ._failures import Failure, explain, failure_of, reason, status_failure
from ._flows import AuthFlow, NotSent
from ._lifecycle import Lifecycle
from ._pagination import encode_query_value
from ._ratelimit import MemoryGate
from ._request import Decoder, Operation, Request, Response
from ._retry import RetryEvent, retry_testing
from ._sessions import Shared
from ._version import __version__

if TYPE_CHECKING:
    from ._auth import Secret
    from ._options import ClientOptions
    from ._ratelimit import RateGate

__all__ = ["USER_AGENT", "QueryValue", "Transport", "encode_json"]

logger: Final = logging.getLogger("sendcloud_async")

_T = TypeVar("_T")

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
#: aiohttp's default ``max_redirects``: an attempt follows at most this many hops.
_MAX_REDIRECTS: Final = 10


class Transport:
    """Sends the requests of one client, under its ``ClientOptions``."""

    __slots__ = ("_config", "_derived", "_flow", "_gate", "_memory_gate", "_shared")

    def __init__(self, config: ClientOptions, shared: Shared, *, derived: bool = False) -> None:
        self._config = config
        self._shared = shared
        #: The account's auth flow and rate gate (``rate_limit=``; None: no gate).
        self._flow = shared.flow
        gate = self._gate = shared.gate
        #: The gate again if it is in memory: its fast path (``take_now``) goes first.
        self._memory_gate = gate if isinstance(gate, MemoryGate) else None
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
        return cls(config, Shared(flow, session, gate, config.timeout))

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

    def call(
        self,
        op: Operation[_T],
        path: Mapping[str, str | int] | None = None,
        query: Iterable[tuple[str, QueryValue]] = (),
        *,
        body: object = None,
    ) -> Awaitable[_T]:
        """Send ``op``: await it for its answer decoded (``DecodeError`` if it does not fit).

        ``body`` (a Struct, a dict, ...) is sent as JSON; ``None``: no body. Not a
        coroutine function itself (as ``send``): unobserved, what it returns is the
        call's one coroutine, which decodes the answer as well.
        """
        encoded = None if body is None else encode_json(body)
        call, request = self._begin(op, self.url(op, path, query), encoded)
        if call is _observe.NO_CALL:
            return self._attempts(call, request, op.decoder)
        return _decoded(call.run(self._attempts(call, request)), op.decoder)

    def send(
        self, op: Operation[Any], url: URL, *, body: bytes | None = None
    ) -> Awaitable[Response]:
        """Send ``op`` to ``url`` (retrying per policy): await it for the read response.

        Raises an ``APIError`` subclass for an error status, ``APIConnectionError``
        or ``APITimeoutError`` when the server could not be reached in time, and
        ``ClientClosedError`` (when called) once the client is closed. Not a coroutine
        function itself: what it returns is the call's one coroutine.
        """
        call, request = self._begin(op, url, body)
        if call is _observe.NO_CALL:
            return self._attempts(call, request)
        # current_call() inside (the rate gate reports its waits there); CallEnded after
        return call.run(self._attempts(call, request))

    def _begin(
        self, op: Operation[Any], url: URL, body: bytes | None
    ) -> tuple[_observe.Call, Request]:
        """The call's ``Request``, and its observed call (``NO_CALL`` when nobody observes)."""
        shared = self._shared
        request = Request(op, url, body, self._config, self._flow, shared.open_session())
        request.attempts = shared.attempts
        # NO_CALL (does nothing) when nobody observes; the URL is shown only then
        call = _observe.begin(op.method, request.display, op.name, op.template)
        if call is not _observe.NO_CALL:
            call.account = ":".join(self._flow.credentials.identity)  # public: never a secret
            call.redactor = request.redactor  # masks the answer's headers in CallEnded
        return call, request

    async def _attempts(
        self, call: _observe.Call, request: Request, decoder: Decoder[Any] | None = None
    ) -> Any:
        """The attempt loop: through the account's rate gate, one attempt, then the
        policy's word on the next. The read ``Response``, or decoded by ``decoder``.

        The gate's wait is outside the attempt's timeout; ``Sending`` is reported once
        past the gate: an attempt's duration is the request's.
        """
        policy = self._config.retry
        gate = self._gate
        memory = self._memory_gate
        while True:
            attempt = request.next_attempt()
            if gate is None:
                call.sending(attempt)
                outcome = await _send(request)
            else:
                lease = None if memory is None else memory.take_now(request.op.method)
                if lease is None:
                    lease = await gate.acquire(request.op.method)
                call.sending(attempt)
                try:
                    outcome = await _send(request)
                    if (
                        type(outcome) is Failure
                        and isinstance(outcome.error, RateLimitError)
                        and outcome.retry_after is not None
                    ):
                        gate.block(outcome.retry_after)  # every request of the account waits
                finally:
                    gate.release(lease)
            if type(outcome) is Response:
                call.finished(attempt, status=outcome.status)
                return outcome if decoder is None else outcome.decode(decoder)
            assert isinstance(outcome, Failure)
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
                    explain(outcome.error, attempt, outcome.retry_after, policy)
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
                error=None if outcome.status is not None else reason(error),
            )
            await asyncio.sleep(0 if retry_testing.instant else wait)


async def _send(request: Request) -> Response | Failure:
    """One attempt: a ``Response`` for a 2xx, else what went wrong."""
    method = request.op.method
    session = request.session
    config = request.config
    body = request.body
    limit = config.body_limit
    started = time.monotonic()
    failure: Failure
    url, timeout, hops = request.url, config.timeout, _MAX_REDIRECTS
    # Static credentials on a GET go without the middleware (a closure and two
    # coroutines less per request); aiohttp does not follow their redirect: we do, once,
    # and the rest of the attempt goes through the middleware, as a followed hop would.
    credential = request.direct()
    try:
        while True:
            direct = credential is not None
            async with session.request(
                method,
                url,
                data=body,
                headers=_headers(body, credential),
                timeout=timeout,
                middlewares=() if direct else (request,),
                allow_redirects=not direct,
                max_redirects=hops,
                raise_for_status=False,
                trace_request_ctx=request,
            ) as resp:
                if direct:
                    target = request.redirect(resp, session.requote_redirect_url)
                    if target is not None:
                        # The hop aiohttp would follow, within the attempt's timeout; the
                        # middleware refuses another origin before anything goes there.
                        url, credential, hops = target, None, hops - 1
                        timeout = _rest(timeout, started)
                        continue
                if limit.at_once(resp):
                    payload = await resp.read()
                else:
                    payload = await limit.read(resp, method=method, url=request.shown)
                status = resp.status
                if logger.isEnabledFor(logging.DEBUG):
                    _log_attempt(request, status, started)
                if 200 <= status < 300:
                    return Response(method, resp.url, status, resp.headers, payload)
                failure = status_failure(
                    method, request.shown, status, resp, payload, request.redactor()
                )
                break
    except (NotSent, TimeoutError, aiohttp.ClientError, RuntimeError, ValueError) as exc:
        if isinstance(exc, SendcloudError) or (
            isinstance(exc, RuntimeError) and not session.closed
        ):
            raise  # ours already (InvalidInputError is a ValueError), or not aiohttp's
        cause = exc.error if isinstance(exc, NotSent) else exc
        if logger.isEnabledFor(logging.DEBUG):
            _log_attempt(request, type(cause).__name__, started)
        failure = failure_of(exc, request)
    return failure


async def _decoded(sent: Awaitable[Response], decoder: Decoder[_T]) -> _T:
    """The answer of an observed call, decoded once the call has ended."""
    return (await sent).decode(decoder)


def _headers(body: bytes | None, credential: Secret | None) -> Mapping[str, str]:
    """The headers of an attempt: with ``credential`` only when it goes without the middleware."""
    if credential is None:
        return _GET_HEADERS if body is None else _JSON_HEADERS
    return {**_GET_HEADERS, hdrs.AUTHORIZATION: credential.get_secret_value()}


def _rest(timeout: aiohttp.ClientTimeout, started: float) -> aiohttp.ClientTimeout:
    """What is left of an attempt's ``timeout`` (its ``total``) since ``started``."""
    total = timeout.total
    if total is None:
        return timeout
    left = total - (time.monotonic() - started)
    if left <= 0:
        raise TimeoutError
    return aiohttp.ClientTimeout(
        total=left,
        connect=timeout.connect,
        sock_read=timeout.sock_read,
        sock_connect=timeout.sock_connect,
        ceil_threshold=timeout.ceil_threshold,
    )


def _before_retry(
    request: Request, method: str, shown: str | None, error: Exception, wait: float
) -> None:
    """Log (and, under ``instant_retries``, record) a retry about to happen."""
    why = reason(error)
    level = logging.INFO if isinstance(error, RateLimitError) else logging.WARNING
    attempt = request.attempt
    if logger.isEnabledFor(level):
        logger.log(
            level,
            "%s %s failed (%s); retrying in %.2f s (retry %d of %d)",
            method,
            shown,
            why,
            wait,
            attempt,
            request.config.retry.max_retries,
            extra=request.extra(),
        )
    events = retry_testing.events
    if events is not None:
        events.append(RetryEvent(method, shown or "", attempt, why, wait))


def _log_attempt(request: Request, outcome: object, started: float) -> None:
    """DEBUG: ``-> 200 in 1.2 ms`` for an answer, ``-> ErrorName after 1.2 ms`` for a failure."""
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


def encode_json(value: Any) -> bytes:
    """JSON-encode a request body (Structs, dicts, datetimes) with msgspec."""
    return msgspec.json.encode(value)
