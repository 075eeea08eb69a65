"""``SendcloudClient``: configuration, session ownership, lifecycle and resources."""

from __future__ import annotations

import dataclasses
import math
from types import TracebackType
from typing import Final

import aiohttp
from yarl import URL

from ._auth import Auth
from ._body import DEFAULT_MAX_RESPONSE_SIZE, BodyLimit
from ._errors import InvalidInputError
from ._ratelimit import RateGate, RateLimits
from ._resources import Integrations, Logs, ShopOrderStatuses
from ._retry import RetryPolicy
from ._state import StateBackend, account_key, default_state
from ._transport import Transport, TransportConfig
from ._validate import http_url, non_negative_int, optional_session, positive_int

__all__ = ["DEFAULT_BASE_URL", "DEFAULT_TIMEOUT", "SendcloudClient"]

DEFAULT_BASE_URL: Final = "https://panel.sendcloud.sc/api/v3"
#: Seconds one attempt may take, from asking the pool for a connection to reading the
#: last byte of the response. A call makes at most ``1 + max_retries`` attempts.
DEFAULT_TIMEOUT: Final = 30.0
DEFAULT_MAX_RETRIES: Final = 3


def normalize_base_url(value: str | URL, *, name: str = "base_url") -> URL:
    """An absolute http(s) URL without user info, query or trailing slash.

    Plain ``http`` is only allowed for loopback hosts (tests, FakeSendcloud):
    credentials never travel unencrypted over a network.
    """
    url = http_url(value, name, credentials_hint="pass them as auth=")
    if url.query_string or url.fragment:
        raise InvalidInputError(f"{name} must not have a query or fragment")
    path = url.raw_path.rstrip("/")
    return url.with_path(path, encoded=True) if path != url.raw_path else url


def normalize_timeout(value: float | aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    """A ``ClientTimeout`` from seconds (one whole attempt, pool wait included) or as given."""
    if isinstance(value, aiohttp.ClientTimeout):
        return value
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value > 0
        or not math.isfinite(value)
    ):
        raise InvalidInputError(
            f"timeout must be a positive number of seconds or an aiohttp.ClientTimeout, "
            f"got {value!r}"
        )
    return aiohttp.ClientTimeout(total=float(value))


def check_max_retries(value: int) -> int:
    """``max_retries`` as given, if it is an int of 0 or more."""
    return non_negative_int(value, "max_retries")


class SendcloudClient:
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

    __slots__ = ("_auth", "_transport", "integrations", "logs", "shop_order_statuses")

    integrations: Integrations
    logs: Logs
    shop_order_statuses: ShopOrderStatuses

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
        if not isinstance(auth, Auth):
            raise InvalidInputError(
                "auth must be a sendcloud_async.BasicAuth or OAuth2ClientCredentials, "
                f"not {type(auth).__name__}"
            )
        check_max_retries(max_retries)
        optional_session(session)
        config = TransportConfig(
            base_url=normalize_base_url(base_url),
            timeout=normalize_timeout(timeout),
            retry=RetryPolicy(max_retries=max_retries),
            body_limit=BodyLimit(positive_int(max_response_size, "max_response_size")),
        )
        if rate_limit is not None and not isinstance(rate_limit, RateLimits):
            raise InvalidInputError(
                f"rate_limit must be a sendcloud_async.RateLimits or None, "
                f"not {type(rate_limit).__name__}"
            )
        if state is not None and not isinstance(state, StateBackend):
            raise InvalidInputError(
                "state must be a sendcloud_async.MemoryState, a "
                f"sendcloud_async.redis.RedisState or None, not {type(state).__name__}"
            )
        backend = state or default_state()
        gate: RateGate | None = None
        if rate_limit is not None:
            gate = backend.gate(account_key(auth, config.base_url), rate_limit)
        self._auth = auth
        self._transport = Transport(config, backend.flow(auth), session, gate=gate)
        self.integrations = Integrations(self._transport)
        self.logs = Logs(self._transport)
        self.shop_order_statuses = ShopOrderStatuses(self._transport)

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
        config = transport.config
        if timeout is not None:
            config = dataclasses.replace(config, timeout=normalize_timeout(timeout))
        if max_retries is not None:
            retry = dataclasses.replace(config.retry, max_retries=check_max_retries(max_retries))
            config = dataclasses.replace(config, retry=retry)
        derived = object.__new__(SendcloudClient)
        derived._auth = self._auth
        derived._transport = transport.derive(config)
        derived.integrations = Integrations(derived._transport)
        derived.logs = Logs(derived._transport)
        derived.shop_order_statuses = ShopOrderStatuses(derived._transport)
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

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` was called."""
        return self._transport.closed

    async def aclose(self) -> None:
        """Close the session the client created (never a borrowed one). Idempotent.

        On a client made by ``with_options`` it does nothing: close the original.
        """
        await self._transport.aclose()

    async def __aenter__(self) -> SendcloudClient:
        self._transport.session()  # fail fast if closed; create the session in this loop
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = " closed" if self.closed else ""
        return f"<SendcloudClient{state} base_url={str(self.base_url)!r} auth={self._auth!r}>"
