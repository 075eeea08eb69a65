"""Many accounts and Sendcloud's rate limits, for ``FakeSendcloud``.

Accounts: besides the key pair and OAuth2 client it is created with, the fake
accepts any number of others (``add_account``, ``add_oauth_client``). They all
see the same data; what tells them apart is the rate budget.

Rate limits (off until ``enforce_rate_limits`` is called), checked per account
after authentication, like Sendcloud:

* a **strict sliding window**: a GET is answered 429 if ``limits.get`` GETs of
  the same account arrived in the last ``limits.window`` seconds (``unsafe``
  for POST, PATCH, PUT and DELETE) — the strictest reading of "N a minute", so
  a client that passes here passes a fixed-window server too;
* a **concurrency cap**: an unsafe request is answered 429 while
  ``limits.unsafe_concurrency`` unsafe requests of the account are being
  processed (``latency`` makes processing take time, so the cap can bite);
* a 429 does not count against the budget, carries ``Retry-After`` (seconds,
  with decimals: when the oldest request leaves the window; ``window / 60`` for
  the concurrency cap) and is counted in ``throttled`` and ``throttled_by_account``.

An account is ``basic:<public key>`` or ``oauth2:<client id>`` (a bearer token
belongs to the client it was issued to).
"""

from __future__ import annotations

import asyncio
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import web

from .._auth import BasicAuth
from .._ratelimit import RateLimits
from ._answers import error, errors_response
from ._request import Authorization
from ._spec import exempt_from_spec

# Sendcloud's published limits count these as reads; every other method is "unsafe".
# Written here, not imported from the SDK: the fake is the referee of the SDK's gate.
_READS: Final = frozenset({"GET", "HEAD", "OPTIONS"})

if TYPE_CHECKING:
    from ._oauth import TokenIssuer

__all__ = ["AccountsAndLimits", "ServerLimiter"]

#: Where ``ServerLimiter.admit`` leaves the request's slot for the middleware to free.
_SLOT: Final[Any] = (
    web.RequestKey("sendcloud_async_rate_slot", object)
    if hasattr(web, "RequestKey")
    else "sendcloud_async_rate_slot"
)


def _throttled(retry_after: float, detail: str) -> web.Response:
    response = errors_response(
        429,
        [error("429", "throttled", detail, title="Too Many Requests")],
        headers={"Retry-After": f"{max(retry_after, 0.001):.3f}"},
    )
    exempt_from_spec(response)  # not in the spec: the fake's own limits
    return response


class _Budget:
    __slots__ = ("arrivals", "in_flight")

    def __init__(self) -> None:
        self.arrivals: deque[float] = deque()
        self.in_flight = 0


class ServerLimiter:
    """The fake's enforcement of one ``RateLimits`` (see the module docstring)."""

    def __init__(self, limits: RateLimits, latency: float = 0.0) -> None:
        self.limits = limits
        self.latency = latency
        self._budgets: dict[tuple[str, bool], _Budget] = {}
        self.throttled: Counter[str] = Counter()
        #: The most unsafe requests of one account processed at once, per account.
        self.peak_unsafe_concurrency: Counter[str] = Counter()

    async def admit(
        self, account: str, method: str, request: web.BaseRequest
    ) -> web.Response | None:
        """``None`` if the request may be processed (then its slot is held), else the 429."""
        limits = self.limits
        unsafe = method not in _READS
        budget = self._budgets.get((account, unsafe))
        if budget is None:
            budget = self._budgets[(account, unsafe)] = _Budget()
        now = asyncio.get_running_loop().time()
        arrivals = budget.arrivals
        edge = now - limits.window
        while arrivals and arrivals[0] <= edge:
            arrivals.popleft()
        limit = limits.unsafe if unsafe else limits.get
        if len(arrivals) >= limit:
            self.throttled[account] += 1
            kind = "unsafe" if unsafe else "GET"
            return _throttled(
                arrivals[0] - edge,
                f"Rate limit exceeded: {limit} {kind} requests per {limits.window:g} s",
            )
        if unsafe and budget.in_flight >= limits.unsafe_concurrency:
            self.throttled[account] += 1
            return _throttled(
                limits.window / 60,
                f"Too many concurrent requests: at most {limits.unsafe_concurrency}",
            )
        arrivals.append(now)
        budget.in_flight += 1
        if unsafe and budget.in_flight > self.peak_unsafe_concurrency[account]:
            self.peak_unsafe_concurrency[account] = budget.in_flight
        request[_SLOT] = budget
        if self.latency:
            await asyncio.sleep(self.latency)
        return None


class AccountsAndLimits:
    """``FakeSendcloud``'s accounts and rate-limit methods (see this module's docstring)."""

    _tokens: TokenIssuer
    _basic_accounts: dict[bytes, str]
    _limiter: ServerLimiter | None

    def _init_accounts(self, public_key: str, secret_key: str) -> None:
        self._basic_accounts = {f"{public_key}:{secret_key}".encode(): public_key}
        self._limiter = None

    def add_account(self, public_key: str, secret_key: str) -> BasicAuth:
        """Accept another Basic key pair (another account); returns its ``BasicAuth``."""
        auth = BasicAuth(public_key, secret_key)
        self._basic_accounts[f"{public_key}:{secret_key}".encode()] = public_key
        return auth

    def add_oauth_client(self, client_id: str, client_secret: str) -> None:
        """Accept another OAuth2 client at the token endpoint (another account)."""
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret must be non-empty")
        self._tokens.add_client(client_id, client_secret)

    def enforce_rate_limits(
        self, limits: RateLimits | None = None, *, latency: float = 0.0
    ) -> None:
        """Answer 429 past ``limits`` per account (Sendcloud's by default); ``None`` stops.

        ``latency`` seconds pass while a request holds its slot (so the unsafe
        concurrency cap can be reached). Counters start again from zero.
        """
        if limits is None:
            self._limiter = None
            return
        if not isinstance(limits, RateLimits):
            raise TypeError(f"limits must be a RateLimits, not {type(limits).__name__}")
        if isinstance(latency, bool) or not isinstance(latency, int | float) or latency < 0:
            raise ValueError(f"latency must be a number of seconds >= 0, got {latency!r}")
        self._limiter = ServerLimiter(limits, float(latency))

    @property
    def rate_limits(self) -> RateLimits | None:
        """The limits being enforced, if any."""
        return None if self._limiter is None else self._limiter.limits

    @property
    def throttled(self) -> int:
        """How many requests the rate limits answered with 429."""
        return 0 if self._limiter is None else sum(self._limiter.throttled.values())

    @property
    def throttled_by_account(self) -> dict[str, int]:
        """429s per account (``basic:<public key>`` or ``oauth2:<client id>``), a copy."""
        return {} if self._limiter is None else dict(self._limiter.throttled)

    @property
    def peak_unsafe_concurrency(self) -> dict[str, int]:
        """The most unsafe requests of each account processed at once, a copy."""
        return {} if self._limiter is None else dict(self._limiter.peak_unsafe_concurrency)

    @property
    def token_requests_by_client(self) -> dict[str, int]:
        """Tokens issued per OAuth2 client id, a copy."""
        return dict(self._tokens.requests_by_client)

    def _account(self, authorization: Authorization) -> str | None:
        """The account valid credentials belong to (``basic:<public key>`` or
        ``oauth2:<client id>``); ``None`` when they are not valid: the one place that
        decides who may call the API."""
        token = authorization.bearer
        if token is not None:
            return (
                "oauth2:" + self._tokens.owner_of(token) if self._tokens.is_valid(token) else None
            )
        public_key = self._basic_accounts.get(authorization.basic or b"")
        return None if public_key is None else "basic:" + public_key

    async def _rate_limit(
        self, request: web.BaseRequest, method: str, account: str
    ) -> web.Response | None:
        limiter = self._limiter
        if limiter is None:
            return None
        return await limiter.admit(account, method, request)

    @web.middleware
    async def _limits_middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Frees the slot ``ServerLimiter.admit`` took once the request is processed."""
        try:
            return await handler(request)
        finally:
            budget = request.get(_SLOT)
            if isinstance(budget, _Budget):
                budget.in_flight -= 1
