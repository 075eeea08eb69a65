"""The aiohttp sessions of the SDK: made or borrowed, and what they tell an attempt.

``Shared`` is what a client shares with every client ``with_options`` derives
from it: the session (made on first use on the SDK's connector, or borrowed and
then never closed), the account's auth flow and rate gate, and the lifecycle.

Whether an attempt got a connection (which tells a timeout that fired before
anything was sent from one that may have been sent) comes from the SDK's
connector (``SDKConnector``) on its own sessions, and from aiohttp's public
tracing signals (``TRACE_CONFIG``, appended once) on a borrowed one.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Final

import aiohttp

from ._errors import ClientClosedError
from ._flows import AuthFlow
from ._lifecycle import Held, Lifecycle
from ._request import Request

if TYPE_CHECKING:
    from ._ratelimit import RateGate

__all__ = [
    "TRACE_CONFIG",
    "SDKConnector",
    "Shared",
    "autoinstrument",
    "new_session",
    "sdk_connector",
    "traced",
]


# -- knowing whether an attempt got a connection: aiohttp's public tracing signals --------


async def _on_request_start(
    session: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestStartParams
) -> None:
    request = ctx.trace_request_ctx
    if type(request) is Request:
        request.traced = True


async def _on_connection(session: aiohttp.ClientSession, ctx: Any, params: object) -> None:
    request = ctx.trace_request_ctx
    if type(request) is Request:
        request.connected = True


def _trace_config() -> aiohttp.TraceConfig:
    config = aiohttp.TraceConfig()
    config.on_request_start.append(_on_request_start)
    config.on_connection_create_end.append(_on_connection)
    config.on_connection_reuseconn.append(_on_connection)
    config.freeze()
    return config


TRACE_CONFIG: Final = _trace_config()


class SDKConnector(aiohttp.TCPConnector):
    """The connector of the sessions the SDK makes: it tells the attempt it got a connection.

    What the tracing signals tell on a borrowed session, without their cost: aiohttp
    builds and sends every signal of every ``TraceConfig`` on every request (about a
    sixth of a small request's client CPU), where this is one dict lookup. The
    attempt's middleware (``Request.__call__``) puts the aiohttp request it hands on
    in ``attempts`` for as long as it is in flight: no object is made per request.
    """

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        #: The SDK's attempt of each aiohttp request in flight on this connector.
        self.attempts: dict[aiohttp.ClientRequest, Request] = {}

    async def connect(
        self,
        req: aiohttp.ClientRequest,
        traces: list[Any],
        timeout: aiohttp.ClientTimeout,  # noqa: ASYNC109 - aiohttp's signature
    ) -> Any:
        request = self.attempts.get(req)
        if request is not None:
            request.traced = True
        conn = await super().connect(req, traces, timeout)
        if request is not None:
            request.connected = True
        return conn


def sdk_connector(*, limit: int, limit_per_host: int, **options: Any) -> aiohttp.TCPConnector:
    """A connector for a session the SDK makes (see ``SDKConnector``)."""
    return SDKConnector(limit=limit, limit_per_host=limit_per_host, **options)


def _attempts(session: aiohttp.ClientSession | None) -> dict[aiohttp.ClientRequest, Request] | None:
    """Where an attempt registers for ``session``'s connector (``None``: not the SDK's)."""
    connector = None if session is None else session.connector
    return connector.attempts if isinstance(connector, SDKConnector) else None


def traced(session: aiohttp.ClientSession) -> aiohttp.ClientSession:
    """``session`` with the SDK's ``TraceConfig`` (appended once to a borrowed session).

    A session on the SDK's own connector needs none (``SDKConnector``).
    """
    if _attempts(session) is not None:
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


class Shared(Lifecycle):
    """What a client shares with every client ``with_options`` derives from it.

    The aiohttp session (created on first use, or borrowed: then never closed),
    the account's auth flow and rate gate, and the client's lifecycle (closing the
    original closes every derived client with it).
    """

    __slots__ = ("_closed", "_session", "attempts", "flow", "gate", "timeout")
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
        #: The connector's ``attempts`` (``SDKConnector``: it tells an attempt it got a
        #: connection), once the session is there: ``None`` on any other connector (a
        #: request then always has its middleware, and tracing tells it).
        self.attempts = _attempts(session)
        #: The default timeout of a session made here (every request passes its own).
        self.timeout = timeout
        flow.attach()
        autoinstrument()  # OpenTelemetry, if the application configured it

    def open_session(self) -> aiohttp.ClientSession:
        """The session, created on first use (inside the running loop)."""
        self.check_open()
        session = self._session.value
        if session is None:
            connector = sdk_connector(limit=100, limit_per_host=0)
            session = self._session.value = new_session(self.timeout, connector)
            self.attempts = _attempts(session)
        elif session.closed:
            raise ClientClosedError(
                "the aiohttp.ClientSession given to this SendcloudClient is closed"
            )
        return session

    async def _close(self) -> None:
        self.flow.detach()
        await self._session.release(aiohttp.ClientSession.close)


def autoinstrument() -> None:
    """Report to OpenTelemetry if the application configured it (never imports it otherwise)."""
    if "opentelemetry.trace" not in sys.modules and "opentelemetry.metrics" not in sys.modules:
        return
    try:
        from . import otel
    except ImportError:  # the API is only partly there: nothing to report to
        return
    otel.instrument_if_configured()
