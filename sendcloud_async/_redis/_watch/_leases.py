"""Leases in Redis: claim, renew, release, give up; the heartbeat that makes a worker live.

``LeaseStore`` is the part of ``RedisWatchStore`` that decides who holds an account:
every operation is one of the scripts of ``_lua``, and several go in one pipeline
(one round trip). Each may be repeated safely: the connection tries a call once more
on a fresh connection after a dead one.
"""

from __future__ import annotations

import math
import os
import re
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from ..._errors import InvalidInputError
from ..._validate import account_name, positive_seconds
from .._conn import RedisConnection, RedisPiece, borrow
from .._rules import check_namespace
from ._events import ClaimKind
from ._lua import SCRIPTS

if TYPE_CHECKING:
    import redis.asyncio as aioredis
    from redis.asyncio.client import Pipeline
    from redis.commands.core import AsyncScript

_PREFIX: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,99}")
_WORKER: Final = re.compile(r"[A-Za-z0-9._:-]{1,100}")
_KINDS: Final[dict[str, ClaimKind]] = {"own": "own", "takeover": "takeover", "adopted": "adopted"}
#: A script call: its name in ``_lua.SCRIPTS``, its keys and its arguments.
_Call = tuple[str, list[str], list[Any]]


@dataclass(frozen=True, slots=True)
class WatchLease:
    """An account this worker holds: its fencing token and the state written last.

    ``state`` is ``None`` when the account was never written (the watch starts
    fresh); ``seq`` counts the writes made so far (any worker), the store's check
    that a retried write is not applied twice. ``how`` and ``previous`` say whose
    it was: ``"free"``, ``"own"`` (already this worker's: a claim whose reply was
    lost), ``"takeover"`` (the lease of worker ``previous`` lapsed) or
    ``"adopted"`` (``previous`` gave it up because its polls failed).
    """

    account: str
    token: int
    state: bytes | None
    seq: int
    how: ClaimKind = "free"
    previous: str | None = None


def ms(seconds: float) -> int:
    """``seconds`` in whole milliseconds, at least 1."""
    return max(1, math.ceil(seconds * 1000))


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _default_worker_id() -> str:
    host = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:60] or "host"
    return f"{host}:{os.getpid()}:{secrets.token_hex(4)}"


class LeaseStore(RedisPiece):
    """The keys of a shared watch, and who holds which account (see ``RedisWatchStore``)."""

    __slots__ = (
        "_connection",
        "_scripts",
        "lease",
        "namespace",
        "state_ttl",
        "stream_prefix",
        "worker_id",
    )

    def __init__(
        self,
        client: aioredis.Redis | RedisConnection,
        *,
        stream_prefix: str,
        namespace: str,
        lease: float,
        state_ttl: float,
        worker_id: str | None,
    ) -> None:
        connection = borrow(client, "RedisWatchStore")
        if connection.client.connection_pool.connection_kwargs.get("decode_responses"):
            raise InvalidInputError("client must return bytes: make it without decode_responses")
        if not isinstance(stream_prefix, str) or not _PREFIX.fullmatch(stream_prefix):
            raise InvalidInputError(
                "stream_prefix must be 1 to 100 letters, digits, '.', '_', ':' or '-' "
                f"(starting with a letter or digit), got {stream_prefix!r}"
            )
        check_namespace(namespace)
        if worker_id is not None and (
            not isinstance(worker_id, str) or not _WORKER.fullmatch(worker_id)
        ):
            raise InvalidInputError(
                "worker_id must be 1 to 100 letters, digits, '.', '_', ':' or '-'"
            )
        self._connection = connection
        self.stream_prefix = stream_prefix
        self.namespace = namespace
        self.lease = positive_seconds(lease, "lease")
        self.state_ttl = positive_seconds(state_ttl, "state_ttl")
        if self.state_ttl < self.lease:
            raise InvalidInputError("state_ttl must be at least as long as the lease")
        #: Who this worker is in lease values and the workers set (no secret).
        self.worker_id = worker_id or _default_worker_id()
        self._scripts: dict[str, AsyncScript] = {
            name: connection.register_script(text) for name, text in SCRIPTS.items()
        }

    # -- keys ---------------------------------------------------------------------

    def stream_key(self, account: str) -> str:
        """The stream of ``account``'s logs: ``PREFIX:NAME``."""
        return f"{self.stream_prefix}:{account_name(account)}"

    def key(self, account: str, suffix: Literal["lease", "fence", "state"]) -> str:
        """One of ``account``'s keys: ``NS:watch:{PREFIX:NAME}:SUFFIX``."""
        return f"{self.namespace}:watch:{{{self.stream_key(account)}}}:{suffix}"

    @property
    def workers_key(self) -> str:
        """The sorted set of live workers: ``NS:watch:{PREFIX}:workers``."""
        return f"{self.namespace}:watch:{{{self.stream_prefix}}}:workers"

    @property
    def orphans_key(self) -> str:
        """The sorted set of accounts given up as failing: ``NS:watch:{PREFIX}:orphans``."""
        return f"{self.namespace}:watch:{{{self.stream_prefix}}}:orphans"

    # -- round trips ----------------------------------------------------------------

    async def _pipeline(self, fill: Callable[[Pipeline], Any]) -> list[Any]:
        """Run what ``fill`` queues on a pipeline, in one round trip; the replies in order."""

        async def run() -> list[Any]:
            async with self.client.pipeline(transaction=False) as pipe:
                await fill(pipe)
                results: list[Any] = await pipe.execute()
                return results

        return await self._connection.call(run)

    async def _many(self, calls: Sequence[_Call]) -> list[Any]:
        """Run scripts in one pipeline (one round trip); their results in order."""
        if not calls:
            return []

        async def fill(pipe: Pipeline) -> None:
            for name, keys, args in calls:
                await self._scripts[name](keys=keys, args=args, client=pipe)

        return await self._pipeline(fill)

    async def check(self) -> None:
        """Ask Redis once (``PING``), on a connection made with the URL's credentials and database.

        ``StateConfigurationError`` if Redis refuses them, ``StateUnavailableError``
        if it cannot be reached: a worker can tell a wrong URL from an outage
        before it starts.
        """
        await self._connection.call(self.client.ping)

    # -- membership -----------------------------------------------------------------

    def _heartbeat_call(self) -> _Call:
        keys = [self.workers_key, self.orphans_key]
        return ("heartbeat", keys, [self.worker_id, ms(self.lease)])

    def _leave_call(self) -> _Call:
        return ("leave", [self.workers_key], [self.worker_id])

    async def heartbeat(self) -> int:
        """Say this worker is alive for ``lease`` more seconds; the number of live workers."""
        (result,) = await self._many([self._heartbeat_call()])
        return len(result[0])

    async def leave(self) -> None:
        """Take this worker out of the live workers (a clean stop)."""
        await self._many([self._leave_call()])

    # -- leases ---------------------------------------------------------------------

    async def claim(self, accounts: Sequence[str]) -> tuple[list[WatchLease], dict[str, float]]:
        """Take the leases of ``accounts`` that are free (or already this worker's).

        Every lease taken gets a new fencing token, even one this worker held:
        a write still on its way from an earlier watch is refused. Returns the
        leases now held (``WatchLease.how`` says whose they were), and for each
        account held by another worker how many seconds its lease has left.
        """
        names = [account_name(a) for a in accounts]
        args = [self.worker_id, ms(self.lease), ms(self.state_ttl)]
        keys = [[self.key(n, "lease"), self.key(n, "fence"), self.key(n, "state")] for n in names]
        results = await self._many([("claim", k, args) for k in keys])
        held: list[WatchLease] = []
        others: dict[str, float] = {}
        for name, (token, state, seq, pttl, how, previous) in zip(names, results, strict=True):
            if int(token) > 0:
                before = _text(previous) if previous else None
                kind = _KINDS.get(_text(how), "free")
                held.append(WatchLease(name, int(token), state, int(seq), kind, before))
            else:
                others[name] = max(0, int(pttl)) / 1000
        return held, others

    async def _leases(self, accounts: Sequence[str]) -> dict[str, tuple[float, bool]]:
        """Per account: seconds left on its lease (0: free), and whether it is this worker's."""
        names = [account_name(a) for a in accounts]
        if not names:
            return {}
        mine = f"{self.worker_id} ".encode()

        async def fill(pipe: Pipeline) -> None:
            for name in names:
                pipe.get(self.key(name, "lease"))
                pipe.pttl(self.key(name, "lease"))

        results = await self._pipeline(fill)
        return {
            name: (max(0, int(pttl)) / 1000, isinstance(value, bytes) and value.startswith(mine))
            for name, value, pttl in zip(names, results[::2], results[1::2], strict=True)
        }

    async def probe(self, accounts: Sequence[str]) -> dict[str, float]:
        """Seconds left on each account's lease (0 for a free account), without claiming."""
        return {name: left for name, (left, _) in (await self._leases(accounts)).items()}

    async def renew(self, leases: Sequence[WatchLease]) -> tuple[int, set[str], float | None]:
        """Renew ``leases`` and the heartbeat in one round trip.

        Returns the number of live workers, the accounts whose lease is gone
        (expired or taken over), and the seconds until the soonest heartbeat of
        another worker ends (``None``: no other worker).
        """
        live, lost, soonest, _ = await self._renew(leases)
        return len(live), lost, soonest

    async def renew_live(self, leases: Sequence[WatchLease]) -> tuple[list[str], set[str]]:
        """``renew``, with the live workers themselves (this one included), not their number."""
        live, lost, _, _ = await self._renew(leases)
        return live, lost

    async def _renew(
        self, leases: Sequence[WatchLease]
    ) -> tuple[list[str], set[str], float | None, dict[str, float]]:
        """``renew``, with the live workers themselves and the orphans (accounts given
        up as failing, with the seconds they stay orphans)."""
        calls = [self._heartbeat_call()]
        calls += [
            ("renew", [self.key(x.account, "lease")], [self.worker_id, x.token, ms(self.lease)])
            for x in leases
        ]
        (live, soonest, flat), *renewed = await self._many(calls)
        lost = {lease.account for lease, ok in zip(leases, renewed, strict=True) if not int(ok)}
        orphans = {
            _text(name): max(0, int(left)) / 1000
            for name, left in zip(flat[::2], flat[1::2], strict=True)
        }
        soon = None if int(soonest) < 0 else int(soonest) / 1000
        return [_text(worker) for worker in live], lost, soon, orphans

    def _release_call(self, lease: WatchLease, stalled: bool) -> _Call:
        keys = [self.key(lease.account, "lease"), self.key(lease.account, "state")]
        args = [self.worker_id, lease.token, "1" if stalled else "", ms(self.state_ttl)]
        return ("release", keys, args)

    async def release(self, leases: Sequence[WatchLease], *, leave: bool = False) -> None:
        """Give ``leases`` up (only those still this worker's); their accounts are free at once.

        ``leave=True`` takes this worker out of the live workers in the same round trip.
        """
        calls = [self._release_call(lease, False) for lease in leases]
        await self._many([*calls, self._leave_call()] if leave else calls)

    async def give_up(self, leases: Sequence[WatchLease], cooldown: float) -> None:
        """Release ``leases`` because this worker's polls of them fail: they become orphans.

        For ``cooldown`` seconds a healthy worker takes an orphan even beyond its
        share; its claim says ``"adopted"``, with this worker as ``previous``.
        """
        left = ms(positive_seconds(cooldown, "cooldown"))
        calls = [self._release_call(lease, True) for lease in leases]
        calls += [("orphan", [self.orphans_key], [lease.account, left]) for lease in leases]
        await self._many(calls)
