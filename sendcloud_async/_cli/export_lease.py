"""One account's lease in a many-worker export (``logs export --redis``): the done state
it leaves in Redis, and the fence each write of its export awaits.

The lease itself is the Redis watch's (``_redis._watch``: claim, renew, release, a
fencing token per claim); see ``export_workers`` for how they make the export exactly
once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

import msgspec

from .._checkpoint import START_OVER
from .._errors import StateUnavailableError

if TYPE_CHECKING:
    from .._redis._watch import RedisWatchStore, WatchLease

__all__ = ["DoneState", "LeaseFence", "done_state", "is_done", "without_restart"]


class DoneState(msgspec.Struct, kw_only=True):
    """The state of an account whose export is complete (the watch state's ``state`` field)."""

    done: bool
    records: int
    worker: str


_DECODE_DONE: Final = msgspec.json.Decoder(DoneState)


def done_state(records: int, worker: str) -> bytes:
    """The state that marks an account's export complete: ``records`` written, by ``worker``."""
    return msgspec.json.encode(DoneState(done=True, records=records, worker=worker))


def is_done(state: bytes | None) -> bool:
    """Whether ``state`` (an account's watch state, ``None``: none) says its export is done."""
    if not state:
        return False
    try:
        return _DECODE_DONE.decode(state).done
    except (msgspec.DecodeError, msgspec.ValidationError):
        return False


class LeaseFence:
    """The fence of one held account: awaited before each write of its export.

    It renews the lease with its fencing token (one round trip, the heartbeat
    too) and returns when Redis says the lease is still this one; otherwise it
    raises ``LeaseLostError`` and the write does not happen. It also raises,
    without asking, once the lease's time is up as this worker counts it
    (``deadline``, monotonic: a process paused past its lease finds out at once
    when it wakes), and when a renewal's reply comes back after that time. While
    Redis is unreachable it asks again every ``retry`` seconds until then.
    """

    __slots__ = ("_on_unreachable", "deadline", "lease", "lost", "retry", "store")

    def __init__(
        self,
        store: RedisWatchStore,
        lease: WatchLease,
        *,
        claimed_at: float,
        retry: float = 0.5,
        on_unreachable: Callable[[StateUnavailableError], None] | None = None,
    ) -> None:
        self.store = store
        self.lease = lease
        #: When this worker must count the lease as gone (monotonic).
        self.deadline = claimed_at + store.lease
        self.retry = retry
        #: The lease lapsed or was taken over: nothing more is written, it is not released.
        self.lost = False
        self._on_unreachable = on_unreachable

    def renewed(self, sent: float) -> None:
        """A renewal sent at ``sent`` (monotonic) succeeded: the lease lasts from then."""
        self.deadline = max(self.deadline, sent + self.store.lease)

    async def __call__(self) -> None:
        from .._redis._watch import LeaseLostError

        while True:
            if self.lost or time.monotonic() > self.deadline:
                self.lost = True
                raise LeaseLostError(
                    f"account {self.lease.account}: the lease of fencing token "
                    f"{self.lease.token} is no longer this worker's; nothing more was written"
                )
            sent = time.monotonic()
            try:
                _, lost, _ = await self.store.renew([self.lease])
            except StateUnavailableError as exc:
                if self._on_unreachable is not None:
                    self._on_unreachable(exc)
                await asyncio.sleep(self.retry)
                continue
            if lost:
                self.lost = True
                continue
            self.renewed(sent)
            # A reply that took longer than the lease may be about a lease since taken over.
            if time.monotonic() <= sent + self.store.lease:
                return
            self.lost = True


def without_restart(message: str) -> str:
    """A refusal's advice to start over, as it goes with ``--redis`` (no ``--restart``)."""
    return message.replace(
        START_OVER, "--restart does not go with --redis: export into another place to start over"
    )
