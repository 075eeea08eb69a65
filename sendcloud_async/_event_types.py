"""The SDK's event classes (public as ``sendcloud_async.events``, which adds subscribing).

A leaf module: the request path (``_observe``) and every emitter build these
without importing the subscription machinery.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import Final, Literal, TypeAlias

WaitReason = Literal["rate_limit", "retry"]
#: Characters of an error's text kept in an event.
_ERROR_CHARS: Final = 300


def error_text(exc: BaseException) -> str:
    """``exc`` as one line of at most ``_ERROR_CHARS`` characters: ``"Class: what it says"``."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= _ERROR_CHARS else text[: _ERROR_CHARS - 1] + "…"


# -- the request path -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _CallEvent:
    """What every event of a call says about it: which one, and what it asks for."""

    #: The call's number (one per call of the request path while observed).
    call: int
    method: str
    #: The URL as logs show it (never with user info).
    url: str
    _: KW_ONLY
    #: The operation's name (``"logs.list"``) and path template (``"/integrations/logs"``).
    operation: str = ""
    template: str = ""


@dataclass(frozen=True, slots=True)
class Waiting(_CallEvent):
    """A request is held back before its next attempt: a rate-gate wait or a scheduled retry."""

    reason: WaitReason
    #: Expected length of the wait in seconds (a retry's delay); ``None`` if not known.
    seconds: float | None
    #: ``time.monotonic()`` when the wait began.
    at: float
    #: For a retry, its cause: the failed attempt's status, or the class name of its error.
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Sending(_CallEvent):
    """An attempt of a request starts (past the rate gate)."""

    attempt: int
    #: ``time.monotonic()`` when it started.
    at: float


@dataclass(frozen=True, slots=True)
class Finished(_CallEvent):
    """An attempt ended: a response (``status``) or an error (``error``)."""

    attempt: int
    #: ``time.monotonic()`` when it ended.
    at: float
    status: int | None = None
    error: str | None = None
    #: Seconds from its ``Sending`` to now.
    duration: float = 0.0


@dataclass(frozen=True, slots=True)
class CallEnded(_CallEvent):
    """A call of the request path is over: its answer, or the error it raised.

    ``status`` is the last answer's (a 2xx on success, the error's status for an
    ``APIError``); ``error`` the class name of what the call raised (``None`` on
    success; ``"CancelledError"`` if it was cancelled). ``headers`` are the last
    answer's response headers (``None`` without one). ``account`` is the public part
    of the account's identity (``"basic:<public key>"``, ``"oauth2:<client id>"``).
    """

    attempts: int
    #: Seconds from the call's start to its end, waits included.
    elapsed: float
    status: int | None = None
    error: str | None = None
    headers: Mapping[str, str] | None = None
    account: str = ""


# -- other clients' and commands' events ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class TokenFetched:
    """An OAuth2 token request ended: ``status`` (any answer) or ``error``, in ``duration`` s."""

    #: The token endpoint, without user info.
    url: str
    status: int | None
    error: str | None
    duration: float


@dataclass(frozen=True, slots=True)
class PageCommitted:
    """An export page is on disk, its checkpoint past it."""

    path: str
    #: Records in this page; pages and records in the file so far.
    records: int
    total_pages: int
    total_records: int


@dataclass(frozen=True, slots=True)
class BatchDelivered:
    """A watch delivered ``count`` new logs of ``account`` (a page at most).

    ``lag`` is how long after its creation the newest of them was delivered
    (seconds; ``None`` if the logs carry no ``created_at``).
    """

    account: str
    count: int
    lag: float | None


@dataclass(frozen=True, slots=True)
class LatenessSeen:
    """``count`` logs of a batch became visible behind the account's high-water mark."""

    account: str
    count: int
    #: How far behind the latest of them was, in seconds.
    seconds: float


@dataclass(frozen=True, slots=True)
class PollCompleted:
    """A poll of ``account`` finished: it is caught up (``new_logs`` were delivered)."""

    account: str
    new_logs: int


@dataclass(frozen=True, slots=True)
class AccountFailing:
    """A watch of ``account`` failed after the client's own retries; tried again in
    ``retry_in`` seconds.

    ``error`` is the class of what it met, ``detail`` that error on one line
    (``"ServerError: …"``, at most 300 characters). A ``LogWatcher`` reports every
    failed poll; the Redis watch reports the first failure of a failing stretch only,
    with ``since`` (when it began), and gives the account up (``LeaseReleased``,
    ``reason="stalled"``) if it goes on failing for ``stall_after``.
    """

    account: str
    error: str
    #: Failures in a row so far (0: not counted by the watch that saw it).
    failures: int
    retry_in: float
    detail: str = ""
    #: When the failing stretch began (``None``: not known to the watch that saw it).
    since: datetime | None = None


def account_failing(
    account: str,
    error: BaseException,
    failures: int,
    retry_in: float,
    since: datetime | None = None,
) -> AccountFailing:
    """The ``AccountFailing`` of ``account`` for ``error``: its class and its one-line text."""
    return AccountFailing(
        account, type(error).__name__, failures, retry_in, error_text(error), since
    )


@dataclass(frozen=True, slots=True)
class AccountRecovered:
    """A failing account's watch works again (a poll or a write succeeded).

    The Redis watch says since when it was failing (``failing_since``) and after how
    many failed attempts (``failures``); ``None`` and 0 when the watch did not count.
    """

    account: str
    failing_since: datetime | None = None
    failures: int = 0


@dataclass(frozen=True, slots=True)
class LeaseClaimed:
    """This Redis watch worker took ``account``'s lease, with fencing token ``token``.

    ``how``: ``"free"`` (nobody held it, or its holder released it), ``"own"`` (the
    lease was this worker's already: a claim whose reply was lost), ``"takeover"``
    (the lease of worker ``previous`` lapsed: it died, stalled or lost Redis) or
    ``"adopted"`` (``previous`` gave it up because its polls failed).
    """

    account: str
    token: int
    how: str
    #: The worker that held it before (a takeover or an adoption).
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class LeaseReleased:
    """This worker let ``account``'s lease go.

    ``reason``: ``"stop"`` (a clean stop), ``"rebalance"`` (the account now belongs
    to another live worker, e.g. one that joined) or ``"stalled"`` (its polls kept
    failing for ``stall_after``: a worker that can poll it takes it over).
    """

    account: str
    token: int
    reason: str


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """This worker lost ``account``'s lease: ``reason`` ``"expired"`` (not renewed in
    time here; its watch stopped) or ``"gone"`` (Redis no longer has it as this worker's)."""

    account: str
    token: int
    reason: str


@dataclass(frozen=True, slots=True)
class LeaseRefused:
    """The fence refused a write of ``account``: another worker holds it; nothing was written."""

    account: str
    token: int


@dataclass(frozen=True, slots=True)
class RedisDown:
    """The Redis watch's Redis stopped answering (refused, reset, timed out) at ``since``.

    The worker writes nothing and takes no account until ``RedisUp``; its leases
    lapse meanwhile. ``error`` is what the first failed call met (redis-py's words,
    which never hold the URL's password); Redis is asked again every ``retry_every``
    seconds.
    """

    since: datetime
    error: str
    retry_every: float


@dataclass(frozen=True, slots=True)
class RedisUp:
    """Redis answers again: it was unreachable from ``since`` for ``down_for`` seconds."""

    since: datetime
    down_for: float


Event: TypeAlias = (
    Waiting
    | Sending
    | Finished
    | CallEnded
    | TokenFetched
    | PageCommitted
    | BatchDelivered
    | LatenessSeen
    | PollCompleted
    | AccountFailing
    | AccountRecovered
    | LeaseClaimed
    | LeaseReleased
    | LeaseLost
    | LeaseRefused
    | RedisDown
    | RedisUp
)
