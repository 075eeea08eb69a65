"""Fault injection for ``FakeSendcloud``: scripted faults per route and a seeded chaos mode.

Two ways to make the fake misbehave, for the SDK's tests and for yours::

    from sendcloud_async.testing import Fault, FakeSendcloud

    async with FakeSendcloud() as fake:
        # scripted: each matching request takes the next fault, in order
        fake.inject("GET", "/integrations/logs", Fault.status(503), Fault.drop_after_read())
        # chaos: every API request draws a fault at these rates (reproducible per seed)
        fake.chaos(seed=7, rates={"status_503": 0.1, "drop_before_read": 0.05})
        ...
        fake.chaos(None)                  # stop
        print(fake.fault_counts)          # {"status_503": 12, "drop_before_read": 4}

The kinds of fault (``Fault.name`` is the key in ``rates`` and ``fault_counts``):

===================  ====================================================================
``status_<code>``    ``Fault.status(code, headers=, body=)``: answer with that status (a
                     JSON:API error body unless ``body`` is given), not processing the
                     request. A 429 or 503 gets ``Retry-After`` only if ``headers`` say so.
``delay``            ``Fault.delay(seconds)``: wait, then process and answer normally.
``drop_before_read`` ``Fault.drop_before_read()``: close the connection without processing
                     the request or answering (nothing is stored).
``drop_after_read``  ``Fault.drop_after_read()``: process the request (a POSTed log *is*
                     stored), then close the connection instead of answering.
``truncated_body``   ``Fault.truncated_body()``: process the request, send the real status
                     and headers with the real ``Content-Length`` but only half the body,
                     then close the connection.
``revoke_token``     ``Fault.revoke_token()``: revoke the request's OAuth2 bearer token just
                     before it is checked (so it gets a 401). Only requests that carry a
                     valid bearer token are affected; others are not faulted or counted.
===================  ====================================================================

Rules, where a choice had to be made:

* Every faulted request is still journalled in ``fake.requests`` (the fake reads
  it first, so ``drop_before_read`` means "before the fake looked at it"; the
  request's bytes were on the wire either way).
* Scripted faults come before chaos, and both before ``fake.script`` responses.
  Paths match like ``fake.script``: relative to the API base, concrete
  (``/integrations/5``) before template (``/integrations/{id}``); a path outside
  the API (``/oauth2/token/``) as is.
* Chaos, without ``routes``, applies to requests for the API's routes only (not
  the token endpoint); with ``routes`` (``"GET /integrations/logs"`` or a bare
  path for any method) only to those. Each eligible request draws one number
  from ``random.Random(seed)``, so the same requests in the same order get the
  same faults.
* Fault responses are exempt from spec validation: they are off-spec on purpose.
* ``fake.fault_counts`` counts faults by name; ``fake.injected_faults`` lists
  them in order with the method and path. ``fake.clear_faults()`` drops queued
  faults, stops chaos and resets both.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn

import msgspec
from aiohttp import hdrs, web

from ._request import RecordedRequest, read_authorization
from ._spec import exempt_from_spec

__all__ = ["FAULT_KINDS", "Fault", "FaultInjection", "FaultInjector", "InjectedFault"]

#: Fault kinds other than ``status_<code>``.
FAULT_KINDS: Final = frozenset(
    {"delay", "drop_before_read", "drop_after_read", "truncated_body", "revoke_token"}
)
_LATE: Final = frozenset({"drop_after_read", "truncated_body"})
#: A canned answer queued by ``FakeSendcloud.script``: served like a ``status`` fault
#: (after its delay), but not counted as a fault.
_SCRIPTED: Final = "scripted"
_API_PREFIX: Final = "/api/v3"
_ENCODER: Final = msgspec.json.Encoder()
#: Where a late fault waits on the request for the middleware (``web.RequestKey`` where
#: aiohttp has it: a plain string key warns there).
_LATE_FAULT: Final[Any] = (
    web.RequestKey("sendcloud_async_fault", object)
    if hasattr(web, "RequestKey")
    else "sendcloud_async_fault"
)
# Headers of a handler's response not copied onto a truncated one.
_FRAMING: Final = frozenset({"content-length", "transfer-encoding", "content-encoding"})


@dataclass(frozen=True, slots=True)
class Fault:
    """One way for the fake to fail a request. Build it with the class methods."""

    kind: str
    code: int | None = None
    seconds: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    _payload: bytes = field(default=b"", repr=False)
    _content_type: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS and not (
            self.kind in ("status", _SCRIPTED) and self.code is not None
        ):
            raise ValueError(
                f"unknown fault kind {self.kind!r}; build faults with Fault.status() etc."
            )

    @property
    def name(self) -> str:
        """``status_<code>`` or the kind: the key in chaos ``rates`` and ``fault_counts``."""
        return f"status_{self.code}" if self.kind == "status" else self.kind

    @classmethod
    def status(
        cls,
        code: int,
        *,
        headers: Mapping[str, str] | None = None,
        body: bytes | str | object | None = None,
    ) -> Fault:
        """Answer with status ``code`` instead of processing the request.

        ``body`` as ``bytes`` or ``str`` is sent as is (``str`` as text/plain), any
        other value JSON-encoded; ``None`` sends a JSON:API error object.
        """
        if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
            raise ValueError(f"code must be an HTTP status (100..599), got {code!r}")
        content_type: str | None = "application/json"
        if body is None:
            payload = _ENCODER.encode(
                {
                    "errors": [
                        {
                            "status": str(code),
                            "code": "injected_fault",
                            "title": "Injected fault",
                            "detail": f"FakeSendcloud injected a {code} response",
                        }
                    ]
                }
            )
        elif isinstance(body, bytes):
            payload, content_type = body, None
        elif isinstance(body, str):
            payload, content_type = body.encode(), "text/plain; charset=utf-8"
        else:
            payload = _ENCODER.encode(body)
        pairs = tuple((str(k), str(v)) for k, v in (headers or {}).items())
        if any(k.lower() == "content-type" for k, _ in pairs):
            content_type = None
        return cls("status", code=code, headers=pairs, _payload=payload, _content_type=content_type)

    @classmethod
    def delay(cls, seconds: float) -> Fault:
        """Wait ``seconds``, then process and answer the request normally."""
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise TypeError(f"seconds must be a number, not {type(seconds).__name__}")
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"seconds must be finite and >= 0, got {seconds!r}")
        return cls("delay", seconds=float(seconds))

    @classmethod
    def drop_before_read(cls) -> Fault:
        """Close the connection without processing the request or answering it."""
        return cls("drop_before_read")

    @classmethod
    def drop_after_read(cls) -> Fault:
        """Process the request (its effects happen), then close without answering."""
        return cls("drop_after_read")

    @classmethod
    def truncated_body(cls) -> Fault:
        """Process the request, then send half the body under the full Content-Length and close."""
        return cls("truncated_body")

    @classmethod
    def revoke_token(cls) -> Fault:
        """Revoke the request's OAuth2 bearer token just before it is checked."""
        return cls("revoke_token")

    @classmethod
    def scripted(
        cls,
        status: int,
        *,
        headers: tuple[tuple[str, str], ...],
        payload: bytes,
        content_type: str | None,
        delay: float,
    ) -> Fault:
        """A ``ScriptedResponse`` as a queue entry (built by ``FakeSendcloud.script``)."""
        return cls(
            _SCRIPTED,
            code=status,
            seconds=delay,
            headers=headers,
            _payload=payload,
            _content_type=content_type,
        )

    def _response(self) -> web.Response:
        headers = dict(self.headers)
        if self._content_type is not None:
            headers["Content-Type"] = self._content_type
        assert self.code is not None
        response = web.Response(status=self.code, body=self._payload or None, headers=headers)
        exempt_from_spec(response)
        return response


@dataclass(frozen=True, slots=True)
class InjectedFault:
    """A fault the fake injected: the request's method and path, and the fault's name."""

    method: str
    path: str
    fault: str


class _Chaos:
    __slots__ = ("rng", "routes", "table")

    def __init__(
        self,
        seed: int,
        table: list[tuple[float, Fault]],
        routes: frozenset[tuple[str | None, str]] | None,
    ) -> None:
        self.rng = random.Random(seed)
        self.table = table
        self.routes = routes

    def eligible(self, method: str, path: str, template: str | None) -> bool:
        if self.routes is None:
            return template is not None
        for candidate in (path, template):
            if candidate is not None and (
                (method, candidate) in self.routes or (None, candidate) in self.routes
            ):
                return True
        return False

    def draw(self) -> Fault | None:
        point = self.rng.random()
        for threshold, fault in self.table:
            if point < threshold:
                return fault
        return None


def _norm_path(path: str) -> str:
    if not isinstance(path, str) or not path.startswith("/") or "?" in path:
        raise ValueError(f"path must start with '/' and hold no query: {path!r}")
    if path.startswith(_API_PREFIX + "/"):
        path = path[len(_API_PREFIX) :]
    return path


def _chaos_fault(name: str, *, delay: float, retry_after: str | None) -> Fault:
    if name.startswith("status_"):
        digits = name[len("status_") :]
        if not (digits.isascii() and digits.isdigit()):
            raise ValueError(f"unknown fault kind {name!r}")
        code = int(digits)
        headers = (
            {"Retry-After": retry_after} if retry_after is not None and code in (429, 503) else None
        )
        return Fault.status(code, headers=headers)
    if name == "delay":
        return Fault.delay(delay)
    if name in FAULT_KINDS:
        return Fault(name)
    raise ValueError(
        f"unknown fault kind {name!r}; use status_<code> or one of {', '.join(sorted(FAULT_KINDS))}"
    )


async def _drop(request: web.BaseRequest) -> NoReturn:
    """Close the connection under the handler and end it, answering nothing."""
    transport = request.transport
    if transport is not None:
        transport.close()
    # aiohttp treats a cancelled handler as a client that went away: nothing is written
    # and nothing is logged above DEBUG.
    raise asyncio.CancelledError


class FaultInjector:
    """The fake's fault state: queued faults per route, chaos, and what was injected."""

    def __init__(self, revoke: Callable[[str], int], is_valid_token: Callable[[str], bool]) -> None:
        self._revoke = revoke
        self._is_valid_token = is_valid_token
        self._queues: dict[tuple[str, str], deque[Fault]] = {}
        self._chaos: _Chaos | None = None
        self.counts: Counter[str] = Counter()
        self.injected: list[InjectedFault] = []

    @property
    def active(self) -> bool:
        """Whether a request may be faulted (checked on every request: keep it cheap)."""
        return self._chaos is not None or bool(self._queues)

    @property
    def scripted_left(self) -> int:
        """How many scripted answers are queued and not yet served."""
        return sum(f.kind == _SCRIPTED for queue in self._queues.values() for f in queue)

    def drop_scripts(self) -> None:
        """Forget the scripted answers not served yet (faults stay queued)."""
        for key in list(self._queues):
            kept = deque(f for f in self._queues[key] if f.kind != _SCRIPTED)
            if kept:
                self._queues[key] = kept
            else:
                del self._queues[key]

    def inject(self, method: str, path: str, faults: tuple[Fault, ...]) -> None:
        path = _norm_path(path)
        for fault in faults:
            if not isinstance(fault, Fault):
                raise TypeError(f"expected Fault, got {type(fault).__name__}")
        if faults:
            self._queues.setdefault((method.upper(), path), deque()).extend(faults)

    def chaos(
        self,
        seed: int | None,
        rates: Mapping[str, float] | None,
        routes: Iterable[str] | None,
        delay: float,
        retry_after: float | str | None,
    ) -> None:
        if seed is None:
            self._chaos = None
            return
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int (or None to stop), not {type(seed).__name__}")
        if not rates:
            raise ValueError("chaos needs rates, e.g. {'status_503': 0.1}")
        after = None if retry_after is None else str(retry_after)
        table: list[tuple[float, Fault]] = []
        total = 0.0
        for name in sorted(rates):  # sorted: the same seed gives the same faults
            rate = rates[name]
            if isinstance(rate, bool) or not isinstance(rate, int | float) or not 0 <= rate <= 1:
                raise ValueError(f"rate of {name!r} must be a number from 0 to 1, got {rate!r}")
            fault = _chaos_fault(name, delay=delay, retry_after=after)
            if rate:
                total += rate
                table.append((total, fault))
        if total > 1 + 1e-9:
            raise ValueError(f"fault rates add up to {total:g}; at most 1")
        parsed: frozenset[tuple[str | None, str]] | None = None
        if routes is not None:
            if isinstance(routes, str):
                raise TypeError("routes must be an iterable of strings, not one string")
            items: set[tuple[str | None, str]] = set()
            for route in routes:
                method, _, path = route.strip().rpartition(" ")
                items.add((method.strip().upper() or None, _norm_path(path)))
            parsed = frozenset(items)
        self._chaos = _Chaos(seed, table, parsed)

    def clear(self) -> None:
        self._queues.clear()
        self._chaos = None
        self.counts.clear()
        self.injected.clear()

    def _pick(self, method: str, path: str, template: str | None) -> Fault | None:
        if self._queues:
            for candidate in (path, template):
                if candidate is None:
                    continue
                key = (method, candidate)
                queue = self._queues.get(key)
                if queue:
                    fault = queue.popleft()
                    if not queue:
                        del self._queues[key]
                    return fault
        chaos = self._chaos
        if chaos is not None and chaos.eligible(method, path, template):
            return chaos.draw()
        return None

    async def apply(
        self, request: web.Request, record: RecordedRequest, template: str | None
    ) -> web.StreamResponse | None:
        """Called by the fake once a request is journalled; a response ends it there."""
        fault = self._pick(record.method, record.path, template)
        if fault is None:
            return None
        kind = fault.kind
        if kind == _SCRIPTED:
            if fault.seconds:
                await asyncio.sleep(fault.seconds)
            return fault._response()
        if kind == "revoke_token":
            token = read_authorization(request.headers.get(hdrs.AUTHORIZATION)).bearer
            if token is None or not self._is_valid_token(token):
                return None  # nothing to revoke: not a fault
            self._revoke(token)
        self.counts[fault.name] += 1
        self.injected.append(InjectedFault(record.method, record.path, fault.name))
        if kind == "status":
            return fault._response()
        if kind == "delay":
            await asyncio.sleep(fault.seconds)
        elif kind == "drop_before_read":
            await _drop(request)
        elif kind in _LATE:
            request[_LATE_FAULT] = fault
        return None

    @web.middleware
    async def middleware(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
    ) -> web.StreamResponse:
        """Applies the faults that need the handler's response: drops and truncation."""
        response = await handler(request)
        fault = request.get(_LATE_FAULT)
        if fault is None:
            return response
        if fault.kind == "truncated_body":
            await _truncate(request, response)
        return await _drop(request)


async def _truncate(request: web.Request, response: web.StreamResponse) -> None:
    """Send ``response``'s status and headers, the full Content-Length, half the body."""
    body = response.body if isinstance(response, web.Response) else None
    full = body if isinstance(body, bytes) else b""
    status = response.status if response.status not in (204, 304) else 200
    declared = len(full) if len(full) >= 2 else 64
    stream = web.StreamResponse(status=status, reason=response.reason)
    for name, value in response.headers.items():
        if name.lower() not in _FRAMING:
            stream.headers.add(name, value)
    stream.content_length = declared
    await stream.prepare(request)
    await stream.write(full[: len(full) // 2])


class FaultInjection:
    """``FakeSendcloud``'s fault-injection methods (see ``sendcloud_async.testing._faults``)."""

    _faults: FaultInjector

    def inject(self, method: str, path: str, *faults: Fault) -> None:
        """Queue faults for ``method path``; each matching request takes the next one.

        ``path`` is relative to the API base, concrete (``/integrations/5``) or a
        route template (``/integrations/{id}``; a concrete path's queue is used
        first), or outside the API as is (``/oauth2/token/``). Faults and ``script``
        responses share one queue per route, taken in the order they were queued,
        before chaos.
        """
        self._faults.inject(method, path, faults)

    def chaos(
        self,
        seed: int | None,
        rates: Mapping[str, float] | None = None,
        *,
        routes: Iterable[str] | None = None,
        delay: float = 1.0,
        retry_after: float | str | None = None,
    ) -> None:
        """Fault requests at random, reproducibly; ``chaos(None)`` stops.

        ``rates`` maps fault names (``status_503``, ``delay``, ``drop_before_read``,
        ``drop_after_read``, ``truncated_body``, ``revoke_token``) to probabilities
        adding up to at most 1; each eligible request draws once from
        ``random.Random(seed)``. ``routes`` (``"GET /integrations/logs"``, or a bare
        path for any method; templates allowed) limits chaos to those; by default
        it covers every API route but not the token endpoint. ``delay`` is the
        seconds a ``delay`` fault waits; ``retry_after``, if given, is sent as the
        ``Retry-After`` of chaos 429s and 503s.
        """
        self._faults.chaos(seed, rates, routes, delay, retry_after)

    def clear_faults(self) -> None:
        """Drop queued faults, stop chaos and reset ``fault_counts`` and ``injected_faults``."""
        self._faults.clear()

    @property
    def fault_counts(self) -> dict[str, int]:
        """How many faults of each name were injected (a copy)."""
        return dict(self._faults.counts)

    @property
    def injected_faults(self) -> list[InjectedFault]:
        """Every injected fault, oldest first (live)."""
        return self._faults.injected
