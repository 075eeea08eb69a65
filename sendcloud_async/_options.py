"""``ClientOptions``: everything a client is configured with but its credentials and session.

``SendcloudClient(...)`` and ``AccountPool(...)`` take the same keywords and turn
them into one ``ClientOptions`` here, checked and normalised once; a pool hands
its value to every client it makes, ``with_options`` replaces fields of it, and
the transport reads it on every request. The defaults live in ``_defaults``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from ._body import BodyLimit
from ._errors import InvalidInputError
from ._ratelimit import RateLimits
from ._retry import RetryPolicy
from ._state import StateBackend
from ._validate import non_negative_int, normalize_base_url, positive_int

__all__ = [
    "ClientOptions",
    "Origin",
    "check_max_retries",
    "normalize_base_url",
    "normalize_timeout",
    "origin_of",
]

#: (scheme, host, port), the port made explicit: what "same origin" compares.
Origin = tuple[str, str | None, int | None]


def origin_of(url: URL) -> Origin:
    """The origin of ``url``: credentials go to the API's origin and nowhere else."""
    return (url.scheme, url.host, url.port)


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


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """A client's configuration in its checked, normalised form (see the module docstring).

    ``retry`` carries ``max_retries`` and ``body_limit`` carries
    ``max_response_size``: the forms the request path uses. ``base`` and
    ``origin`` are worked out from ``base_url`` once, not per request.
    """

    base_url: URL
    timeout: aiohttp.ClientTimeout
    retry: RetryPolicy
    body_limit: BodyLimit
    rate_limit: RateLimits | None = None
    state: StateBackend | None = None
    #: ``base_url`` as an encoded string without a trailing slash, to append paths to.
    base: str = field(init=False, repr=False, compare=False)
    #: The origin of ``base_url``: the only one the client sends credentials to.
    origin: Origin = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "base", str(self.base_url))
        object.__setattr__(self, "origin", origin_of(self.base_url))

    @classmethod
    def create(
        cls,
        *,
        base_url: str | URL,
        timeout: float | aiohttp.ClientTimeout,
        max_retries: int,
        rate_limit: RateLimits | None,
        state: StateBackend | None,
        max_response_size: int,
    ) -> ClientOptions:
        """The options from what a caller passed; ``InvalidInputError`` names a bad one."""
        retry = RetryPolicy(max_retries=check_max_retries(max_retries))
        url = normalize_base_url(base_url)
        per_attempt = normalize_timeout(timeout)
        limit = BodyLimit(positive_int(max_response_size, "max_response_size"))
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
        return cls(url, per_attempt, retry, limit, rate_limit, state)

    @property
    def max_retries(self) -> int:
        return self.retry.max_retries

    @property
    def max_response_size(self) -> int:
        return self.body_limit.max_bytes

    def replace(
        self,
        *,
        timeout: float | aiohttp.ClientTimeout | None = None,
        max_retries: int | None = None,
    ) -> ClientOptions:
        """These options with another ``timeout`` or ``max_retries``; ``None`` keeps one.

        Every other field (the retry policy's backoff included) is kept as it is.
        """
        per_attempt = self.timeout if timeout is None else normalize_timeout(timeout)
        retry = self.retry
        if max_retries is not None:
            retry = dataclasses.replace(retry, max_retries=check_max_retries(max_retries))
        return dataclasses.replace(self, timeout=per_attempt, retry=retry)
