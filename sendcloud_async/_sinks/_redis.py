"""``RedisSink``: one account's stream and state in Redis, written through its lease's fence.

An adapter over ``RedisWatchStore``: the first use claims the account's lease
(``SinkInUseError`` while another worker holds it), a task renews it every third
of its length, and each ``commit`` is ``RedisWatchStore.commit``: the records
``XADD``-ed to the account's stream and the state written in one Lua script that
checks the fencing token first. A commit after the lease was lost writes nothing
(``LeaseLostError``). ``aclose()`` stops the renewal and releases the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

import msgspec

from .._aio import stop_task
from .._errors import StateUnavailableError
from .._lifecycle import Lifecycle
from ._base import ENCODER, SinkInUseError, decode_state

if TYPE_CHECKING:
    from .._redis._watch import RedisWatchStore, WatchLease

__all__ = ["RedisSink"]

R = TypeVar("R")
S = TypeVar("S")


class RedisSink(Lifecycle, Generic[R, S]):
    """A ``Sink`` over ``account``'s keys in ``store`` (borrowed: never closed here).

    Records are kept as their msgspec JSON (one stream entry each), the state as
    its JSON in the account's state hash.
    """

    kind: ClassVar[str] = "Redis sink"

    def __init__(self, store: RedisWatchStore, account: str, *, state: type[S]) -> None:
        from .._validate import account_name

        super().__init__()
        self.store = store
        self.account = account_name(account)
        self._decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(state)
        self._lease: WatchLease | None = None
        self._seq = 0
        self._state: bytes | None = None
        self._renewal: asyncio.Task[None] | None = None

    async def _held(self) -> tuple[str, int, int]:
        self.check_open()
        if self._lease is None:
            held, others = await self.store.claim([self.account])
            if not held:
                left = others.get(self.account, 0.0)
                raise SinkInUseError(
                    f"account {self.account} is held by another worker "
                    f"(its lease ends in {left:.1f} s unless renewed)"
                )
            self._lease = lease = held[0]
            self._seq, self._state = lease.seq, lease.state
            self._renewal = asyncio.get_running_loop().create_task(self._renew(lease))
        return self._lease.account, self._lease.token, self._seq

    async def _renew(self, lease: WatchLease) -> None:
        while True:
            await asyncio.sleep(self.store.lease / 3)
            with contextlib.suppress(StateUnavailableError):  # the fence keeps it safe
                _, lost, _ = await self.store.renew([lease])
                if lost:
                    return  # the next commit is refused by the fence: LeaseLostError

    async def load(self) -> S | None:
        await self._held()
        raw = self._state
        where = f"of account {self.account} in Redis"
        return None if raw is None else decode_state(self._decoder, raw, where)

    async def commit(self, records: Sequence[R], state: S, /) -> None:
        lease = await self._held()
        raw = ENCODER.encode(state)
        self._seq = await self.store.commit(lease, raw, [ENCODER.encode(r) for r in records])
        self._state = raw

    async def _close(self) -> None:
        renewal, self._renewal = self._renewal, None
        await stop_task(renewal)
        lease, self._lease = self._lease, None
        if lease is not None:
            with contextlib.suppress(StateUnavailableError):  # it lapses on its own then
                await self.store.release([lease])
