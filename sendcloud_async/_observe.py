"""Watching the one request path: what a client is doing and waiting for, as it happens.

A progress display (the command line's) installs an ``Observer`` for the code it
runs; the request path reports to it::

    with observing(my_observer):
        await client.logs.list()      # my_observer.on_event(...) is called meanwhile

Every call of the request path makes one ``Call`` (``begin``) and reports, in order:

* ``Waiting``: the request is held back before an attempt, by the account's rate
  gate (``reason="rate_limit"``) or by the retry policy's backoff
  (``reason="retry"``, with the failed attempt's ``status`` or ``error``).
  ``seconds`` is how long the wait is expected to last (``None``: not known);
* ``Sending``: an attempt starts, past the rate gate (``attempt`` counts from 1);
* ``Finished``: that attempt ended with a response (``status``) or an error
  (``error``, the exception's class name), after ``duration`` seconds;
* ``CallEnded``: the call is over (``ended``, from ``run``): always the last
  event of a call, also when it raised or was cancelled.

The event classes are public (``sendcloud_async.events``). Two kinds of observer
see them: the one ``observing(...)`` installs for a block of code (a context
variable: the CLI's progress line, ``events.capture_responses()``) and the
process-wide subscribers of ``events.subscribe`` (the hub, one global). Events
that are not a call's (a token request, an export page, a watch's batches, a
Redis lease) go to the subscribers only, through ``emit``, ``token_fetched`` and
the ``relay_*`` functions, which build nothing when nobody subscribed.

With no observer installed and no subscriber, ``begin`` returns ``NO_CALL``,
whose methods do nothing: the cost is one ``ContextVar.get`` and one global read
per call. Events carry the method and the URL as shown in logs (never user info,
never a request header; ``CallEnded`` has the answer's response headers, through
``_redact.shown_headers``: the call's credential masked, ``Set-Cookie`` left out), and the
operation's name (``"logs.list"``) and path template
(``"/integrations/{id}/logs"``, OpenTelemetry's ``url.template``): a tracer or
a display can group requests by them without parsing URLs. An observer
that raises is ignored: it can never break a request. The observer is a context
variable, so tasks started inside ``observing(...)`` report to it too (an observer
installed inside another's block adds to it, not replaces it), and code
that cannot see the call (a rate gate deep in the stack) reaches it through
``current_call()``.

OpenTelemetry (the ``otel`` extra) is one more subscriber: the transport
installs it when the application has imported OpenTelemetry and configured a
provider (checked when a client is created; the core never imports it).
"""

from __future__ import annotations

import contextvars
import itertools
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Final, ParamSpec, Protocol, TypeVar

from yarl import URL

from ._event_types import (
    CallEnded,
    Finished,
    Sending,
    TokenFetched,
    Waiting,
    WaitReason,
)
from ._event_types import Event as AnyEvent
from ._redact import Redactor, shown_headers

__all__ = [
    "NO_CALL",
    "Call",
    "Event",
    "Finished",
    "Hub",
    "Observer",
    "Sending",
    "WaitReason",
    "Waiting",
    "begin",
    "current",
    "current_call",
    "emit",
    "listening",
    "observing",
    "publish",
    "set_hub",
    "token_fetched",
]

_P = ParamSpec("_P")
_T = TypeVar("_T")


#: The events of a call of the request path (what an ``Observer`` receives).
Event = Waiting | Sending | Finished | CallEnded


class Observer(Protocol):
    """Receives the events of the calls made while it is installed."""

    def on_event(self, event: Event) -> None: ...


class Hub(Protocol):
    """The process-wide subscribers: every event, the calls' and the others'."""

    def on_event(self, event: AnyEvent) -> None: ...


_observer: Final[contextvars.ContextVar[Observer | None]] = contextvars.ContextVar(
    "sendcloud_async_observer", default=None
)
_call: Final[contextvars.ContextVar[Call | None]] = contextvars.ContextVar(
    "sendcloud_async_call", default=None
)
_ids: Final = itertools.count(1)
#: The process-wide subscribers (``events.subscribe``); ``None`` when there are none.
_hub: Hub | None = None


def set_hub(hub: Hub | None) -> None:
    """Install (or, with ``None``, remove) the process-wide subscribers."""
    global _hub
    _hub = hub


class _Both:
    """Two observers as one: each gets every event; one that raises does not stop the other."""

    __slots__ = ("first", "second")

    def __init__(self, first: Observer, second: Observer) -> None:
        self.first = first
        self.second = second

    def on_event(self, event: Event) -> None:
        with suppress(Exception):
            self.first.on_event(event)
        with suppress(Exception):
            self.second.on_event(event)


@contextmanager
def observing(observer: Observer) -> Iterator[Observer]:
    """Report the calls made inside the block (and in tasks started there) to ``observer``.

    An observer installed around the block keeps getting them too.
    """
    outer = _observer.get()
    token = _observer.set(observer if outer is None else _Both(outer, observer))
    try:
        yield observer
    finally:
        _observer.reset(token)


def current() -> Observer | None:
    """The observer installed for the running code, if any."""
    return _observer.get()


class Call:
    """The events of one call of the request path, sent to one observer."""

    __slots__ = (
        "_attempt",
        "_observer",
        "_sent_at",
        "_started",
        "account",
        "id",
        "method",
        "operation",
        "redactor",
        "template",
        "url",
    )

    def __init__(
        self,
        observer: Observer | None,
        method: str,
        url: str,
        operation: str = "",
        template: str = "",
    ) -> None:
        self._observer = observer
        self.id = next(_ids) if observer is not None else 0
        self.method = method
        self.url = url
        self.operation = operation
        self.template = template
        #: The public part of the account's identity (``"basic:<public key>"``).
        self.account = ""
        #: What masks the credential the call sent (asked when it ends, if observed).
        self.redactor: Callable[[], Redactor | None] = _no_redactor
        self._started = time.monotonic()
        self._sent_at = self._started
        self._attempt = 0

    def _emit(self, kind: Callable[..., Event], *fields: object) -> None:
        """Send the observer a ``kind`` event of this call with ``fields`` after its own."""
        observer = self._observer
        if observer is None:
            return
        event = kind(
            self.id,
            self.method,
            self.url,
            *fields,
            operation=self.operation,
            template=self.template,
        )
        with suppress(Exception):  # a display must never break a request
            observer.on_event(event)

    def waiting(
        self,
        reason: WaitReason,
        seconds: float | None,
        *,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        """The request waits (for the rate gate or before a retry), ``seconds`` if known."""
        if self._observer is not None:
            self._emit(Waiting, reason, seconds, time.monotonic(), status, error)

    def sending(self, attempt: int) -> None:
        """Attempt number ``attempt`` (from 1) starts."""
        if self._observer is not None:
            self._attempt = attempt
            self._sent_at = now = time.monotonic()
            self._emit(Sending, attempt, now)

    def finished(
        self, attempt: int, *, status: int | None = None, error: str | None = None
    ) -> None:
        """Attempt ``attempt`` ended with ``status`` or ``error``."""
        if self._observer is not None:
            now = time.monotonic()
            self._emit(Finished, attempt, now, status, error, now - self._sent_at)

    def ended(
        self,
        *,
        status: int | None = None,
        error: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The call is over: its last answer's ``status`` and ``headers``, or its ``error``.

        The headers are shown by the one rule (``shown_headers``), whether the call
        succeeded or raised.
        """
        if self._observer is not None:
            elapsed = time.monotonic() - self._started
            if headers is not None:
                headers = (
                    shown_headers(headers, self.redactor())
                    if isinstance(headers, Mapping)
                    else None
                )
            self._emit(CallEnded, self._attempt, elapsed, status, error, headers, self.account)

    async def run(self, work: Awaitable[_T]) -> _T:
        """Await ``work`` (the call's attempts) with this call current; then ``CallEnded``."""
        token = _call.set(self)
        try:
            answer = await work
        except BaseException as exc:
            self.ended(
                status=getattr(exc, "status", None),
                error=type(exc).__name__,
                headers=getattr(exc, "headers", None),
            )
            raise
        finally:
            _call.reset(token)
        self.ended(status=getattr(answer, "status", None), headers=getattr(answer, "headers", None))
        return answer

    @contextmanager
    def active(self) -> Iterator[Call]:
        """Make this call ``current_call()`` inside the block."""
        if self._observer is None:
            yield self
            return
        token = _call.set(self)
        try:
            yield self
        finally:
            _call.reset(token)


def _no_redactor() -> Redactor | None:
    return None


#: What ``begin`` returns when nobody observes: every method does nothing.
NO_CALL: Final = Call(None, "", "")


def begin(
    method: str, url: str | Callable[[], str], operation: str = "", template: str = ""
) -> Call:
    """A ``Call`` reporting to the current observers (``NO_CALL`` when there are none).

    ``url`` is the URL as shown, or a function that gives it: called only when
    someone observes.
    """
    observer = _observer.get()
    hub = _hub
    if observer is None:
        if hub is None:
            return NO_CALL
        observer = hub
    elif hub is not None:
        observer = _Both(observer, hub)
    return Call(observer, method, url if isinstance(url, str) else url(), operation, template)


def current_call() -> Call:
    """The call being made in this context (``NO_CALL`` outside one, or unobserved)."""
    return _call.get() or NO_CALL


# -- events that are not a call's ------------------------------------------------------------


def emit(kind: Callable[_P, AnyEvent], /, *args: _P.args, **kwargs: _P.kwargs) -> None:
    """Build ``kind(*args, **kwargs)`` for the subscribers, if there are any (else nothing)."""
    listener = _hub
    if listener is None:
        return
    event = kind(*args, **kwargs)
    with suppress(Exception):
        listener.on_event(event)


def token_fetched(url: str, outcome: int | BaseException, sent_at: float) -> None:
    """An OAuth2 token request sent at ``sent_at`` got ``outcome``: a status, or an error."""
    listener = _hub
    if listener is None:
        return
    if "@" in url:  # never user info
        url = str(URL(url).with_user(None))
    if isinstance(outcome, int):
        event = TokenFetched(url, outcome, None, time.monotonic() - sent_at)
    else:
        event = TokenFetched(url, None, type(outcome).__name__, time.monotonic() - sent_at)
    with suppress(Exception):
        listener.on_event(event)


def publish(event: AnyEvent) -> None:
    """Give an event built by its emitter to the subscribers (an error of theirs is ignored)."""
    listener = _hub
    if listener is not None:
        with suppress(Exception):
            listener.on_event(event)


def listening() -> bool:
    """Whether anyone subscribed: an emitter builds its events only then."""
    return _hub is not None
