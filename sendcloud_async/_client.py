"""``SendcloudClient``: configuration, session ownership, lifecycle and resources."""

from __future__ import annotations

import aiohttp
from yarl import URL

from ._auth import Auth
from ._defaults import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RESPONSE_SIZE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
)
from ._errors import InvalidInputError
from ._lifecycle import Facade, Lifecycle
from ._options import ClientOptions, check_max_retries, normalize_base_url, normalize_timeout
from ._ratelimit import RateGate, RateLimits
from ._resources import Integrations, Logs, ShopOrderStatuses
from ._state import StateBackend, account_key, default_state
from ._transport import Transport
from ._validate import optional_session

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_TIMEOUT",
    "SendcloudClient",
    "check_max_retries",
    "normalize_base_url",
    "normalize_timeout",
]


def _check_auth(auth: object) -> Auth:
    if not isinstance(auth, Auth):
        raise InvalidInputError(
            "auth must be a sendcloud_async.BasicAuth or OAuth2ClientCredentials, "
            f"not {type(auth).__name__}"
        )
    return auth


class SendcloudClient(Facade):
    """An async client for the Sendcloud Integrations API v3.

    Use it as ``async with SendcloudClient(auth=...) as client:`` or call
    ``await client.aclose()`` when done. A ``session`` passed in is borrowed:
    the client never closes it.

    ``rate_limit=RateLimits()`` sends every attempt through its account's rate
    gate (off by default); ``state`` says where gates and auth flows (and so
    OAuth2 tokens) live (this process's memory by default;
    ``sendcloud_async.redis.RedisState`` shares them across processes): every
    client of one state given equal credentials shares one token.
    ``max_response_size`` bounds a response body in decompressed bytes (64 MiB by
    default); a larger one raises ``ResponseTooLargeError``.
    """

    __slots__ = ("_auth", "_integrations", "_logs", "_shop_order_statuses", "_transport")

    def __init__(
        self,
        auth: Auth,
        *,
        base_url: str | URL = DEFAULT_BASE_URL,
        timeout: float | aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        session: aiohttp.ClientSession | None = None,
        rate_limit: RateLimits | None = None,
        state: StateBackend | None = None,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
    ) -> None:
        _check_auth(auth)
        options = ClientOptions.create(
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            rate_limit=rate_limit,
            state=state,
            max_response_size=max_response_size,
        )
        optional_session(session)
        self._bind(auth, _open_transport(auth, options, session))

    @classmethod
    def _of(
        cls, auth: Auth, options: ClientOptions, session: aiohttp.ClientSession
    ) -> SendcloudClient:
        """A client of options already checked (an ``AccountPool``'s) on a borrowed session."""
        client = cls.__new__(cls)
        client._bind(_check_auth(auth), _open_transport(auth, options, session))
        return client

    def _bind(self, auth: Auth, transport: Transport) -> None:
        """The one place a client's fields are set: every way of making one ends here."""
        self._auth = auth
        self._transport = transport
        self._integrations: Integrations | None = None
        self._logs: Logs | None = None
        self._shop_order_statuses: ShopOrderStatuses | None = None

    # A resource is made at its first use (one small object, no I/O) and kept: a
    # client of an ``AccountPool`` that watches 100,000 accounts holds its transport
    # and the resources it uses. A resource holds no state of its own; after
    # ``aclose()`` its calls raise ``ClientClosedError`` (the transport says so).

    @property
    def integrations(self) -> Integrations:
        """The account's integrations (``client.integrations.list()``, ...)."""
        resource = self._integrations
        if resource is None:
            resource = self._integrations = Integrations(self._transport)
        return resource

    @property
    def logs(self) -> Logs:
        """The account's exception logs (``client.logs.iter()``, ``.watch()``, ...)."""
        resource = self._logs
        if resource is None:
            resource = self._logs = Logs(self._transport)
        return resource

    @property
    def shop_order_statuses(self) -> ShopOrderStatuses:
        """The account's shop order statuses and their mapping."""
        resource = self._shop_order_statuses
        if resource is None:
            resource = self._shop_order_statuses = ShopOrderStatuses(self._transport)
        return resource

    def with_options(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> SendcloudClient:
        """A client for the same account with another ``timeout`` or ``max_retries``.

        It shares this client's session, connection pool, credentials (and OAuth2
        token) and lifecycle; creating it is cheap, so do it per call::

            await client.with_options(timeout=5, max_retries=0).integrations.get(42)

        Arguments left as ``None`` keep this client's values. The new client
        borrows the session: its ``aclose()`` does nothing, and once this client
        is closed it is closed too.
        """
        transport = self._transport
        options = transport.config.replace(timeout=timeout, max_retries=max_retries)
        derived = type(self).__new__(type(self))
        derived._bind(self._auth, transport.derive(options))
        return derived

    @property
    def base_url(self) -> URL:
        """The API's base URL, normalised."""
        return self._transport.config.base_url

    @property
    def auth(self) -> Auth:
        """The credentials (a frozen value)."""
        return self._auth

    @property
    def token_requests(self) -> int:
        """How many OAuth2 token requests this account's flow has sent (0 for Basic).

        Every client of one state backend with equal credentials shares the flow,
        and so this count.
        """
        return self._transport.flow.token_requests

    def _lifecycle(self) -> Lifecycle:
        return self._transport.lifecycle

    async def aclose(self) -> None:
        """Close the session the client created (never a borrowed one). Idempotent.

        On a client made by ``with_options`` it does nothing: close the original.
        """
        await self._transport.aclose()

    async def _enter(self) -> None:
        self._transport.session()  # fail fast if closed; create the session in this loop

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<SendcloudClient{state} base_url={str(self.base_url)!r} auth={self._auth!r}>"


def _open_transport(
    auth: Auth, options: ClientOptions, session: aiohttp.ClientSession | None
) -> Transport:
    """The transport of a new client: the account's auth flow and rate gate from its state."""
    backend = options.state or default_state()
    gate: RateGate | None = None
    if options.rate_limit is not None:
        gate = backend.gate(account_key(auth, options.base_url), options.rate_limit)
    return Transport.open(options, backend.flow(auth), session, gate=gate)
