"""Logs that keep coming: ``FakeSendcloud.produce(rate)`` and the ``LogProducer`` it returns.

A watch is only interesting while logs arrive. ``fake.produce(rate=20)`` adds 20
logs a second in all, round-robin over the fake's integrations (or the ones
given), each one like a seeded log (an SSL error, a 404 from the shop, a read
timeout, ...) created *now*: its ``created_at`` is the current time, or just
after the newest log when that one is later, so the listing stays in order and a
watch started with ``start="now"`` sees every produced log.

The producer is a task of the running event loop. It keeps the rate on average:
each wake-up adds the logs that are due by then (at most a second's worth, so a
loop that was blocked for a while does not add a flood), and wakes up every
``1 / rate`` seconds, or every 10 ms when that is shorter. ``keep=N`` bounds the
fake's memory for a long run: after each wake-up only the newest ``N`` logs stay
(older ones are dropped as if deleted; keep ``N`` well above what the slowest
reader lags behind). ``await producer.stop()`` (or leaving ``async with``, or
closing the fake) stops it.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Final, Protocol

from .._aio import sleep_until, stop_task
from .._lifecycle import Closing
from ._store import CET, Record, _created_key, _seed_log

__all__ = ["LogProducer", "LogProduction"]

#: The shortest pause between two wake-ups of a producer.
_MIN_PAUSE: Final = 0.01
_TICK: Final = timedelta(microseconds=1)


class _Host(Protocol):
    """What a producer needs of the fake (``FakeSendcloud`` is one)."""

    _producers: set[LogProducer]

    @property
    def integrations(self) -> dict[int, Record]: ...

    @property
    def logs(self) -> list[Record]: ...

    def add_log(self, integration_id: int, **fields: Any) -> Record: ...


def _rate(value: object) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not value > 0
        or not math.isfinite(value)
    ):
        raise ValueError(f"rate must be a positive number of logs a second, got {value!r}")
    return float(value)


class LogProducer(Closing):
    """Adds logs to a ``FakeSendcloud`` at a steady rate until stopped (see ``produce``)."""

    def __init__(
        self,
        host: _Host,
        rate: float,
        integrations: Sequence[int] | None,
        rng: random.Random,
        keep: int | None,
        on_stop: Callable[[LogProducer], None],
    ) -> None:
        #: Logs a second, in all.
        self.rate = rate
        self._host = host
        self._integrations = None if integrations is None else list(integrations)
        self._rng = rng
        self._keep = keep
        self._on_stop = on_stop
        self._counts: Counter[int] = Counter()
        self._produced = 0
        self._turn = 0
        #: The ``created_at`` of the last log it added (the next one is later).
        self._last: datetime | None = None
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._run())

    @property
    def produced(self) -> int:
        """How many logs it has added so far."""
        return self._produced

    @property
    def by_integration(self) -> dict[int, int]:
        """How many logs it has added to each integration, a copy."""
        return dict(self._counts)

    @property
    def running(self) -> bool:
        """Whether it still adds logs (``False`` once stopped, or if it failed)."""
        return not self._task.done()

    async def stop(self) -> None:
        """Stop adding logs (idempotent); a failure of the producer is raised here."""
        self._stopping.set()
        task = self._task
        if not task.done():
            await stop_task(task)
        elif not task.cancelled():
            error = task.exception()
            if error is not None:
                raise error

    async def aclose(self) -> None:
        """``stop()``, under the name ``async with`` (and every resource of the SDK) uses."""
        await self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<LogProducer {self.rate:g} logs/s, {self._produced} produced, {state}>"

    # -- the task -------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        origin = loop.time()
        done = 0  # logs due since ``origin`` that were added (or skipped: no integration)
        try:
            while not self._stopping.is_set():
                now = loop.time()
                due = math.floor((now - origin) * self.rate) - done
                if due > self.rate:  # the loop was blocked: no flood, start the count again
                    origin, done, due = now - 1.0, 0, math.floor(self.rate)
                if due > 0:
                    self._add(due)
                    done += due
                next_at = origin + (done + 1) / self.rate
                await sleep_until(self._stopping, max(_MIN_PAUSE, next_at - loop.time()))
        finally:
            self._on_stop(self)

    def _targets(self) -> list[int]:
        existing = self._host.integrations
        if self._integrations is None:
            return sorted(existing)
        return [i for i in self._integrations if i in existing]

    def _add(self, count: int) -> None:
        targets = self._targets()
        if not targets:
            return
        logs = self._host.logs
        when = datetime.now(CET)
        for newest in (_created_key(logs[-1]) if logs else None, self._last):
            if newest is not None and when <= newest:
                when = newest + _TICK
        for _ in range(count):
            ident = targets[self._turn % len(targets)]
            self._turn += 1
            record = _seed_log(self._rng, 0, self._host.integrations[ident], when)
            fields = {k: v for k, v in record.items() if k not in ("id", "integration_id")}
            self._host.add_log(ident, **fields)
            self._counts[ident] += 1
            self._produced += 1
            self._last = when
            when += _TICK
        keep = self._keep
        if keep is not None and len(logs) > keep:
            del logs[: len(logs) - keep]


class LogProduction:
    """``FakeSendcloud.produce``: logs that keep coming (see this module's docstring)."""

    _producers: set[LogProducer]

    def _init_production(self) -> None:
        self._producers = set()

    def produce(
        self: _Host,
        rate: float,
        *,
        integrations: Sequence[int] | None = None,
        seed: int | None = None,
        keep: int | None = None,
    ) -> LogProducer:
        """Keep adding logs, ``rate`` a second in all, until the producer is stopped.

        The logs go round-robin to ``integrations`` (every integration of the
        fake, as it is at each moment, by default), each made like a seeded log
        and created now. ``seed`` makes their contents reproducible (not their
        times). ``keep`` drops the oldest logs beyond that many (``None``: keep
        all). Call it from the event loop the fake serves on; stop the producer
        with ``await producer.stop()`` or ``async with fake.produce(...):``.
        Closing the fake stops its producers too.
        """
        value = _rate(rate)
        chosen: list[int] | None = None
        if integrations is not None:
            chosen = list(integrations)
            if not chosen:
                raise ValueError("integrations must name at least one integration (or be None)")
            missing = [i for i in chosen if i not in self.integrations]
            if missing:
                raise ValueError(f"no integration with id {missing[0]!r}")
        elif not self.integrations:
            raise ValueError("the fake has no integrations: seed() or add_integration() first")
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 1):
            raise ValueError(f"keep must be an int >= 1 or None, got {keep!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int or None, not {type(seed).__name__}")
        producer = LogProducer(
            self, value, chosen, random.Random(seed), keep, self._producers.discard
        )
        self._producers.add(producer)
        return producer

    async def _stop_producers(self: _Host) -> None:
        """Stop every producer of the fake; the first failure of one is raised after."""
        failure: Exception | None = None
        for producer in list(self._producers):
            try:
                await producer.stop()
            except Exception as exc:  # a producer's own bug: reported once all are stopped
                failure = failure or exc
        if failure is not None:
            raise failure
