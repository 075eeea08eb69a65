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
* ``Sending``: an attempt starts (``attempt`` counts from 1);
* ``Finished``: that attempt ended with a response (``status``) or an error
  (``error``, the exception's class name).

With no observer installed, ``begin`` returns ``NO_CALL``, whose methods do
nothing: the cost is one ``ContextVar.get`` per call. Events carry the method
and the URL as shown in logs (never user info, never a header), and the
operation's name (``"logs.list"``) and path template
(``"/integrations/{id}/logs"``, OpenTelemetry's ``url.template``): a tracer or
a display can group requests by them without parsing URLs. An observer
that raises is ignored: it can never break a request. The observer is a context
variable, so tasks started inside ``observing(...)`` report to it too, and code
that cannot see the call (a rate gate deep in the stack) reaches it through
``current_call()``.
"""

from __future__ import annotations

import contextvars
import itertools
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import KW_ONLY, dataclass
from typing import Final, Literal, Protocol

__all__ = [
    "NO_CALL",
    "Call",
    "Event",
    "Finished",
    "Observer",
    "Sending",
    "WaitReason",
    "Waiting",
    "begin",
    "current",
    "current_call",
    "observing",
]

WaitReason = Literal["rate_limit", "retry"]


@dataclass(frozen=True, slots=True)
class _CallEvent:
    """What every event says about its call: which one, and what it asks for."""

    #: The call's number (one per call of the request path while observed).
    call: int
    method: str
    #: The URL as logs show it.
    url: str
    _: KW_ONLY
    #: The operation's name (``"logs.list"``) and path template (``"/integrations/logs"``).
    operation: str = ""
    template: str = ""


@dataclass(frozen=True, slots=True)
class Waiting(_CallEvent):
    """A request is held back before its next attempt."""

    reason: WaitReason
    #: Expected length of the wait in seconds; ``None`` if not known.
    seconds: float | None
    #: ``time.monotonic()`` when the wait began.
    at: float
    #: For a retry: the failed attempt's status, or the class name of its error.
    status: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Sending(_CallEvent):
    """An attempt of a request starts."""

    attempt: int
    at: float


@dataclass(frozen=True, slots=True)
class Finished(_CallEvent):
    """An attempt ended: a response (``status``) or an error (``error``)."""

    attempt: int
    at: float
    status: int | None = None
    error: str | None = None


Event = Waiting | Sending | Finished


class Observer(Protocol):
    """Receives the events of the calls made while it is installed."""

    def on_event(self, event: Event) -> None: ...


_observer: Final[contextvars.ContextVar[Observer | None]] = contextvars.ContextVar(
    "sendcloud_async_observer", default=None
)
_call: Final[contextvars.ContextVar[Call | None]] = contextvars.ContextVar(
    "sendcloud_async_call", default=None
)
_ids: Final = itertools.count(1)


@contextmanager
def observing(observer: Observer) -> Iterator[Observer]:
    """Report the calls made inside the block (and in tasks started there) to ``observer``."""
    token = _observer.set(observer)
    try:
        yield observer
    finally:
        _observer.reset(token)


def current() -> Observer | None:
    """The observer installed for the running code, if any."""
    return _observer.get()


class Call:
    """The events of one call of the request path, sent to one observer."""

    __slots__ = ("_observer", "id", "method", "operation", "template", "url")

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
            self._emit(Sending, attempt, time.monotonic())

    def finished(
        self, attempt: int, *, status: int | None = None, error: str | None = None
    ) -> None:
        """Attempt ``attempt`` ended with ``status`` or ``error``."""
        if self._observer is not None:
            self._emit(Finished, attempt, time.monotonic(), status, error)

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


#: What ``begin`` returns when nobody observes: every method does nothing.
NO_CALL: Final = Call(None, "", "")


def begin(method: str, url: str, operation: str = "", template: str = "") -> Call:
    """A ``Call`` reporting to the current observer (``NO_CALL`` when there is none)."""
    observer = _observer.get()
    if observer is None:
        return NO_CALL
    return Call(observer, method, url, operation, template)


def current_call() -> Call:
    """The call being made in this context (``NO_CALL`` outside one, or unobserved)."""
    return _call.get() or NO_CALL
