"""What the SDK is doing, as typed events: subscribe to them, or capture responses.

Every event is a frozen, slotted dataclass. A subscriber is any callable taking
one event; it is called synchronously where the event happens (in the task that
made the request, the watch's or the export's; clients used from several threads
call it from each), so it must be quick and must not block::

    from sendcloud_async import events

    def on_event(event: events.Event) -> None:
        if isinstance(event, events.Waiting) and event.reason == "retry":
            print(f"retrying {event.operation} in {event.seconds:.1f} s after {event.status}")

    unsubscribe = events.subscribe(on_event)     # process-wide, every client
    ...
    unsubscribe()                                # or: with events.subscribe(on_event): ...

With no subscriber the SDK pays one context-variable read and one global read per
request and builds no event. A subscriber that raises is ignored: it can never
break a request, a watch or an export.

Subscribers get every event of the process. ``capture_responses()`` and the CLI's
progress line see the events of the calls made in their block only.

The request path (every API call):

* ``Waiting``: held back before an attempt, by the account's rate gate
  (``reason="rate_limit"``) or because a retry is scheduled (``reason="retry"``,
  the failed attempt's ``status`` or ``error`` is the cause, ``seconds`` the delay);
* ``Sending``: an attempt starts (``attempt`` counts from 1);
* ``Finished``: that attempt ended with a response (``status``) or an error
  (``error``), after ``duration`` seconds;
* ``CallEnded``: the call is over (``attempts``, ``elapsed``, ``status``/``error``,
  the answer's ``headers``): always the call's last event, also when it was cancelled.

Besides: ``TokenFetched`` (an OAuth2 token request), ``PageCommitted`` (an export
page on disk), ``BatchDelivered``, ``LatenessSeen``, ``PollCompleted``,
``AccountFailing`` and ``AccountRecovered`` (watches), ``LeaseClaimed``,
``LeaseReleased``, ``LeaseLost``, ``LeaseRefused``, ``RedisDown`` and ``RedisUp``
(the Redis watch, whose ``on_event`` gets the same objects).

``capture_responses()`` keeps a ``ResponseInfo`` (status, headers, rate-limit
headers, request id, attempts, elapsed) of every call made inside its block::

    with events.capture_responses() as seen:
        page = await client.logs.list()
    seen.last.status, seen.last.request_id, seen.last.attempts

Events never carry a credential, a request header or a URL's user info.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Final

from . import _observe
from ._event_types import (
    AccountFailing,
    AccountRecovered,
    BatchDelivered,
    CallEnded,
    Event,
    Finished,
    LatenessSeen,
    LeaseClaimed,
    LeaseLost,
    LeaseRefused,
    LeaseReleased,
    PageCommitted,
    PollCompleted,
    RedisDown,
    RedisUp,
    Sending,
    TokenFetched,
    Waiting,
    WaitReason,
)
from ._public import show_public_module
from ._redact import shown_headers

__all__ = [
    "AccountFailing",
    "AccountRecovered",
    "BatchDelivered",
    "CallEnded",
    "Event",
    "Finished",
    "LatenessSeen",
    "LeaseClaimed",
    "LeaseLost",
    "LeaseRefused",
    "LeaseReleased",
    "PageCommitted",
    "PollCompleted",
    "RateLimitInfo",
    "RedisDown",
    "RedisUp",
    "ResponseInfo",
    "Responses",
    "Sending",
    "Subscription",
    "TokenFetched",
    "WaitReason",
    "Waiting",
    "capture_responses",
    "subscribe",
]

# -- subscribing ----------------------------------------------------------------------------


class Subscription:
    """What ``subscribe`` returns: call it (or leave its ``with`` block) to unsubscribe."""

    __slots__ = ("_callback", "_done")

    def __init__(self, callback: Callable[[Event], object]) -> None:
        self._callback = callback
        self._done = False

    def __call__(self) -> None:
        """Stop delivering events to the callback (a second call does nothing)."""
        if not self._done:
            self._done = True
            _hub.remove(self._callback)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self()

    def __repr__(self) -> str:
        return f"<Subscription {'ended' if self._done else 'active'}>"


class _Hub:
    """Every process-wide subscriber: the observer the request path sees when any exists."""

    __slots__ = ("_lock", "callbacks")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.callbacks: tuple[Callable[[Event], object], ...] = ()

    def on_event(self, event: Event) -> None:
        for callback in self.callbacks:
            try:
                callback(event)
            except Exception:  # noqa: S112 - a subscriber never breaks the SDK
                continue

    def add(self, callback: Callable[[Event], object]) -> None:
        with self._lock:
            self.callbacks = (*self.callbacks, callback)
            _observe.set_hub(self)

    def remove(self, callback: Callable[[Event], object]) -> None:
        with self._lock:
            callbacks = list(self.callbacks)
            if callback in callbacks:
                callbacks.remove(callback)
            self.callbacks = tuple(callbacks)
            _observe.set_hub(self if callbacks else None)


_hub: Final = _Hub()


def subscribe(callback: Callable[[Event], object]) -> Subscription:
    """Deliver every event of this process to ``callback`` until unsubscribed.

    Returns a ``Subscription``: call it, or use it as a context manager, to stop.
    Something that cannot be called raises ``InvalidInputError`` (a ``ValueError``)
    and subscribes nothing.
    """
    # Here, not at the top: importing the events does not load the validators.
    from . import _validate as check

    _hub.add(check.callback(callback, "callback"))
    return Subscription(callback)


# -- response metadata ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    """The rate-limit headers of an answer, where the server sent them (``None``: absent)."""

    limit: int | None
    remaining: int | None
    #: Seconds until the budget resets, as the server said.
    reset: float | None


@dataclass(frozen=True, slots=True)
class ResponseInfo:
    """What one call got back: the last answer's status and headers, and how it went.

    ``status`` is ``None`` when no answer came (a timeout, a dropped connection);
    ``error`` is the class name of what the call raised (``None`` on success).
    ``headers`` are the response headers (case-insensitive, a name may repeat;
    ``Set-Cookie`` left out), ``request_id`` the
    server's request id (``X-Request-Id`` or ``Request-Id``), ``rate_limit`` the
    ``RateLimit-*`` / ``X-RateLimit-*`` headers if any were sent.
    """

    operation: str
    method: str
    url: str
    status: int | None
    error: str | None
    headers: Mapping[str, str]
    request_id: str | None
    rate_limit: RateLimitInfo | None
    attempts: int
    elapsed: float

    @classmethod
    def of(cls, event: CallEnded) -> ResponseInfo:
        """The metadata of the call ``event`` ended."""
        # What the request path puts in a CallEnded is shown by its one rule already
        # (``Set-Cookie`` left out, the credential masked); one built by hand goes
        # through the same rule here.
        headers = shown_headers(event.headers or {}, None)
        return cls(
            operation=event.operation,
            method=event.method,
            url=event.url,
            status=event.status,
            error=event.error,
            headers=headers,
            request_id=_header(headers, "x-request-id", "request-id"),
            rate_limit=_rate_limit(headers),
            attempts=event.attempts,
            elapsed=event.elapsed,
        )


def _header(headers: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = headers.get(name)
        if value is not None:
            return value
    return None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.split(",")[0].strip())
    except ValueError:
        return None
    return value if value >= 0 else None


def _rate_limit(headers: Mapping[str, str]) -> RateLimitInfo | None:
    found = [
        _number(_header(headers, f"ratelimit-{part}", f"x-ratelimit-{part}"))
        for part in ("limit", "remaining", "reset")
    ]
    if all(value is None for value in found):
        return None
    limit, remaining, reset = found
    return RateLimitInfo(
        None if limit is None else int(limit),
        None if remaining is None else int(remaining),
        reset,
    )


class Responses:
    """The ``ResponseInfo`` of every call made inside ``capture_responses()``, in order."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: list[ResponseInfo] = []

    def on_event(self, event: Event) -> None:
        if type(event) is CallEnded:
            self._items.append(ResponseInfo.of(event))

    @property
    def last(self) -> ResponseInfo:
        """The latest call's (``LookupError`` if no call ended yet)."""
        if not self._items:
            raise LookupError("no call has ended inside capture_responses() yet")
        return self._items[-1]

    def __iter__(self) -> Iterator[ResponseInfo]:
        return iter(list(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> ResponseInfo:
        return self._items[index]

    def __repr__(self) -> str:
        return f"<Responses {len(self._items)}>"


@contextmanager
def capture_responses() -> Iterator[Responses]:
    """Keep the ``ResponseInfo`` of every call made in the block (and in tasks started there).

    Scoped to the running context, not the process: concurrent tasks outside the
    block are not captured, and nothing is kept after it.
    """
    responses = Responses()
    with _observe.observing(responses):
        yield responses


show_public_module(__name__, globals(), __all__)
