"""The ``Commit`` a held account's watch writes through: the fenced write, retried while
Redis is unreachable, and polls reported as progress."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..._errors import StateUnavailableError
from ._leases import WatchLease
from ._store import RedisWatchStore


@dataclass(slots=True)
class _Held:
    lease: WatchLease
    #: When this worker must consider the lease gone (monotonic), from the last renewal.
    deadline: float
    #: The state and seq written last (what a restarted watch continues from).
    state: bytes | None = None
    seq: int = 0
    #: Ends the watch at ``deadline`` unless a renewal moves it (see ``_arm``).
    timer: asyncio.TimerHandle | None = None
    #: When the account last made progress here (monotonic): claimed, polled or written.
    ok_at: float = 0.0
    #: Failed watches since then, and when the first of them failed (monotonic, and UTC).
    failed: int = 0
    failing_since: float | None = None
    failing_at: datetime | None = None
    #: Until then (monotonic) it is kept whoever owns it: adopted from a worker that gave it up.
    adopted_until: float = 0.0
    #: Claimed for an owner that did not claim it: kept until the account's owner changes.
    fallback: bool = False
    #: Held while a batch is written: a hand-over waits for the write in flight.
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)


class _Coordinator(Protocol):
    """What a commit needs of the coordinator holding the account."""

    store: RedisWatchStore
    retry_interval: float

    @property
    def _held(self) -> Mapping[str, _Held]: ...

    def _unreachable(self, exc: StateUnavailableError) -> None: ...

    def _progress(self, held: _Held) -> None: ...


class _Committer:
    """The ``Commit`` of one held account: fenced writes, and polls reported as progress."""

    __slots__ = ("_coordinator", "_held")

    def __init__(self, coordinator: _Coordinator, held: _Held) -> None:
        self._coordinator = coordinator
        self._held = held

    async def __call__(self, state: bytes, logs: Sequence[bytes], /) -> None:
        coordinator, held = self._coordinator, self._held
        lease = held.lease
        while True:
            async with held.writing:
                if coordinator._held.get(lease.account) is not held:
                    raise _Overdue  # dropped (handed over, lost): the batch is not written
                if time.monotonic() > held.deadline:
                    raise _Overdue  # the lease may have lapsed: the tick drops the account
                try:
                    held.seq = await coordinator.store.commit(
                        (lease.account, lease.token, held.seq), state, list(logs)
                    )
                except StateUnavailableError as exc:
                    coordinator._unreachable(exc)
                else:
                    held.state = state
                    coordinator._progress(held)
                    return
            await asyncio.sleep(coordinator.retry_interval)

    def polled(self) -> None:
        self._coordinator._progress(self._held)


class _Overdue(Exception):
    """The lease was not renewed in time, or the account was dropped: the batch in hand
    is not written."""
