"""``AccountPool``: thousands of accounts' clients on one aiohttp session.

A platform that polls many Sendcloud accounts wants one ``SendcloudClient`` per
account (each has its own credentials, token and rate budget) but one
connection pool: every account talks to the same API host, so a pool per
account would hold thousands of idle TLS connections. The pool:

* owns one ``aiohttp.ClientSession`` whose connector allows ``connections``
  connections to the API host and a few more (``TOKEN_CONNECTIONS``) for the
  OAuth2 token host, so token requests never queue behind API calls;
* hands out one client per credential set: ``pool.client(auth)`` returns the
  same client (and so the same OAuth2 token and rate gate) for equal
  credentials, even when the caller builds a new credentials object every
  polling cycle (credentials are values: equal ones hash alike); a client that
  was closed is replaced by a new one;
* closes the session (never one it was given) in ``aclose()``.

Creating a client is cheap (no I/O, a few small objects): nothing happens on the
network until the client's first call.
"""

from __future__ import annotations

from typing import Final

import aiohttp
from yarl import URL

from ._auth import Auth
from ._client import SendcloudClient
from ._defaults import (
    DEFAULT_BASE_URL,
    DEFAULT_MAX_RESPONSE_SIZE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
)
from ._lifecycle import Held, Lifecycle
from ._options import ClientOptions
from ._ratelimit import RateLimits
from ._sessions import new_session, sdk_connector
from ._state import StateBackend
from ._validate import optional_session, positive_int

__all__ = ["DEFAULT_CONNECTIONS", "TOKEN_CONNECTIONS", "AccountPool"]

#: Connections to the API host, shared by every account of a pool.
DEFAULT_CONNECTIONS: Final = 100
#: Connections beyond ``connections``, for the OAuth2 token host.
TOKEN_CONNECTIONS: Final = 10


class AccountPool(Lifecycle):
    """Clients for many accounts sharing one session (see the module docstring).

    ::

        async with sc.AccountPool(rate_limit=sc.RateLimits()) as pool:
            clients = [pool.client(sc.BasicAuth(pk, sk)) for pk, sk in accounts]
            await asyncio.gather(*(poll(c) for c in clients))

    Every option ``SendcloudClient`` takes (``base_url``, ``timeout``,
    ``max_retries``, ``rate_limit``, ``state``, ``max_response_size``) is taken
    here, checked once and given to every client. ``session`` is borrowed if
    passed (its connector's limits are then yours to choose).
    """

    __slots__ = ("_clients", "_closed", "_connections", "_options", "_session")
    kind = "AccountPool"

    def __init__(
        self,
        *,
        base_url: str | URL = DEFAULT_BASE_URL,
        timeout: float | aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        rate_limit: RateLimits | None = None,
        state: StateBackend | None = None,
        max_response_size: int = DEFAULT_MAX_RESPONSE_SIZE,
        connections: int = DEFAULT_CONNECTIONS,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        positive_int(connections, "connections")
        optional_session(session)
        #: What every client of the pool is configured with (one value, shared).
        self._options = ClientOptions.create(
            base_url=base_url,
            timeout=timeout,
            max_retries=max_retries,
            rate_limit=rate_limit,
            state=state,
            max_response_size=max_response_size,
        )
        super().__init__()
        self._connections = connections
        self._session = Held.borrowed_or_own(session)
        self._clients: dict[Auth, SendcloudClient] = {}

    @property
    def session(self) -> aiohttp.ClientSession:
        """The shared session, created on first use (inside the running event loop)."""
        self.check_open()
        session = self._session.value
        if session is None:
            connector = sdk_connector(
                limit=self._connections + TOKEN_CONNECTIONS,
                limit_per_host=self._connections,
                ttl_dns_cache=300,
            )
            session = self._session.value = new_session(self._options.timeout, connector)
        return session

    def client(self, auth: Auth) -> SendcloudClient:
        """The client of the account behind ``auth`` (the same one for equal credentials).

        A client that was closed (``await pool.client(auth).aclose()``) is replaced.
        """
        client = self._clients.get(auth)
        if client is None or client.closed:
            client = SendcloudClient._of(auth, self._options, self.session)
            self._clients[auth] = client
        return client

    def discard(self, auth: Auth) -> None:
        """Forget the client of ``auth`` (its token and, once unused, its gate go with it)."""
        self._clients.pop(auth, None)

    def __len__(self) -> int:
        """How many accounts have a client."""
        return len(self._clients)

    async def _close(self) -> None:
        """The session goes if the pool created it (never a borrowed one)."""
        self._clients.clear()
        await self._session.release(aiohttp.ClientSession.close)

    async def _enter(self) -> None:
        _ = self.session  # created in this loop

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return (
            f"<AccountPool{state} base_url={self._options.base!r} accounts={len(self._clients)} "
            f"connections={self._connections}>"
        )
