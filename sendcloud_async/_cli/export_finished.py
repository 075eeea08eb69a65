"""The record of a many-worker export's finished accounts (``logs export --redis``): one
Redis stream per run, which each round reads from where the last one stopped.

The stream is ``NS:watch:{export:RUN}:finished`` (in the slot of the run's live
workers); each entry is ``account NAME``. An entry is added only after the
account's done mark was committed through its lease's fence (``export_rounds``),
so the record never names an account Redis does not mark done. A worker killed
between the two writes (or a Redis that lost the entry in a failover) leaves a
done mark without its entry: the rounds' full sweep (``export_plan``) finds those.
The stream lives as long as the done marks (the store's ``state_ttl`` after its
last entry) and is never trimmed: it holds about one entry per account.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Container, Sequence
from typing import TYPE_CHECKING, Any, Final, TypeVar

if TYPE_CHECKING:
    from .._redis._watch import RedisWatchStore

__all__ = ["DamagedRecordError", "FinishedRecord"]

_T = TypeVar("_T")

#: Entries read per ``XRANGE`` (one command); a round that finds more reads on.
PAGE: Final = 1000


class DamagedRecordError(Exception):
    """The run's record of finished accounts cannot be used (its key is not a stream)."""


class FinishedRecord:
    """The accounts of one export run that are done, in the order their marks were made.

    ``cursor`` is the id of the last entry read (``""``: none yet, read from the
    start); ``read`` moves it on. Every call is one ``RedisConnection.call`` of the
    store's connection (``StateUnavailableError`` when Redis cannot be reached);
    a key that is not a stream is ``DamagedRecordError``.
    """

    __slots__ = ("_connection", "_ttl", "cursor", "key", "malformed")

    def __init__(self, store: RedisWatchStore) -> None:
        from .._redis._watch._leases import ms  # here: the module loads no redis extra

        self._connection = store.connection
        self._ttl = ms(store.state_ttl)  # as the done marks
        self.key = f"{store.namespace}:watch:{{{store.stream_prefix}}}:finished"
        self.cursor = ""
        #: Entries read that name no account (no ``account`` field): skipped.
        self.malformed = 0

    async def add(self, names: Sequence[str]) -> None:
        """Add an entry for each of ``names`` (done marks already committed), in one round trip.

        Repeating it after ``StateUnavailableError`` may add an entry twice: a reader
        takes an account done once.
        """
        if not names:
            return
        client, key = self._connection.client, self.key

        async def run() -> list[Any]:
            async with client.pipeline(transaction=True) as pipe:
                for name in names:
                    pipe.xadd(key, {"account": name})
                pipe.pexpire(key, self._ttl)
                replies: list[Any] = await pipe.execute()
                return replies

        await self._call(run)

    async def read(self, known: Container[str]) -> list[str]:
        """The accounts of ``known`` named by the entries added since the last ``read``.

        One ``XRANGE`` when fewer than ``PAGE`` entries are new; ``cursor`` moves on
        only once every new entry is read, so a read that fails is repeated whole.
        """
        client, key = self._connection.client, self.key
        cursor, malformed = self.cursor, 0
        names: list[str] = []
        while True:
            start = f"({cursor}" if cursor else "-"

            async def page(start: str = start) -> list[Any]:
                found: Any = await client.xrange(key, start, "+", count=PAGE)
                return list(found or [])

            entries = await self._call(page)
            for entry_id, fields in entries:
                cursor = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                name = fields.get(b"account") if isinstance(fields, dict) else None
                try:
                    text = name.decode() if isinstance(name, bytes) else None
                except UnicodeDecodeError:
                    text = None
                if text is None:
                    malformed += 1
                elif text in known:
                    names.append(text)
            if len(entries) < PAGE:
                break
        self.cursor = cursor
        self.malformed += malformed
        return names

    def damage(self) -> str | None:
        """What is wrong with the entries read so far (``None``: nothing)."""
        if not self.malformed:
            return None
        return (
            f"the run's record of finished accounts ({self.key}) holds {self.malformed} "
            "entries without an account name; they are skipped"
        )

    async def _call(self, command: Callable[[], Awaitable[_T]]) -> _T:
        """``command`` through the connection; a key of another type is ``DamagedRecordError``."""
        from redis.exceptions import ResponseError

        try:
            return await self._connection.call(command)
        except ResponseError as exc:
            if "WRONGTYPE" not in str(exc):
                raise
            raise DamagedRecordError(
                f"the run's record of finished accounts ({self.key}) is not a Redis stream"
            ) from None
