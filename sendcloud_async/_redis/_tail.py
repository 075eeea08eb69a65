"""Reading the Redis watch's streams back: one consumer of a consumer group over every stream.

The Redis watch (``_redis._watch``) appends each new log of an account to the
stream ``PREFIX:NAME`` (field ``log``: the log's JSON), exactly once. A
``StreamTail`` reads all of those streams as one consumer of a consumer group:

* **discovery**: ``SCAN`` for stream keys ``PREFIX:NAME`` whose ``NAME`` is an
  account name (letters, digits, ``.``, ``_``, ``-``; a key with a further ``:``
  belongs to a longer prefix); the group is created on each new stream, from its
  first entry (``start="all"``) or from the moment the tail started
  (``start="now"``, Redis's clock: a stream that appears later is read whole);
* **reading**: ``XREADGROUP >`` over every known stream, in one round trip;
* **acknowledging**: ``XACK`` of what the caller says it wrote out; an entry read
  but not acknowledged stays pending, in this consumer's name;
* **recovery**: the entries pending for this consumer (a run of the same
  consumer that was killed) are read first (``XREADGROUP 0``); entries pending
  for another consumer for ``claim_idle`` seconds (a tail that died) are taken
  over with ``XAUTOCLAIM``.

So every entry reaches the caller at least once per group: one that was read but
whose acknowledgement was lost (a kill between writing and ``XACK``) comes again.
Entries trimmed from a stream before they were read are gone; an entry pending
when it was trimmed comes back without its fields (``TailEntry.log`` is ``None``).

Every call goes through the ``RedisConnection`` of the ``RedisWatchStore`` (the
same timeouts and the same "unreachable" rule as the watch and every other Redis
piece), so it raises ``StateUnavailableError`` when Redis cannot be reached and
``ClientClosedError`` once the store is closed.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar

from redis import exceptions as redis_errors

from .._errors import InvalidInputError
from .._validate import ACCOUNT_NAME
from ._rules import redis_failure
from ._watch import RedisWatchStore

__all__ = ["GROUP_NAME", "StreamTail", "TailEntry"]

_T = TypeVar("_T")

#: A group or consumer name: what the tail accepts (Redis would take more).
GROUP_NAME: Final = re.compile(r"[A-Za-z0-9._:-]{1,100}")
_MAX_ID_SEQ: Final = 2**64 - 1


@dataclass(frozen=True, slots=True)
class TailEntry:
    """One stream entry: the account it belongs to, its ID, and the log's JSON bytes
    (``None`` when the entry was trimmed while pending; ``b""`` when it has no ``log``)."""

    account: str
    entry_id: str
    log: bytes | None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _failure(error: Exception) -> Exception:
    """What the error of one command of a pipeline means (``redis_failure`` decides)."""
    return redis_failure(error) or error


class StreamTail:
    """One consumer of ``group`` over every ``PREFIX:NAME`` stream of ``store``'s prefix."""

    def __init__(
        self,
        store: RedisWatchStore,
        *,
        group: str,
        consumer: str,
        start: Literal["all", "now"] = "all",
        claim_idle: float = 60.0,
        count: int = 100,
    ) -> None:
        for what, value in (("group", group), ("consumer", consumer)):
            if not isinstance(value, str) or not GROUP_NAME.fullmatch(value):
                raise InvalidInputError(
                    f"the {what} name must be 1 to 100 letters, digits, '.', '_', ':' or '-', "
                    f"got {value!r}"
                )
        if start not in ("all", "now"):
            raise InvalidInputError(f"start must be 'all' or 'now', got {start!r}")
        self.store = store
        self.group = group
        self.consumer = consumer
        self.start = start
        self.claim_idle = claim_idle
        self.count = count
        #: The accounts whose stream has the group, by stream key.
        self.streams: dict[str, str] = {}
        #: Where a group created by this tail starts ("0": the first entry).
        self._start_id = "0"
        self._started = False

    @property
    def accounts(self) -> list[str]:
        """The accounts whose streams this tail reads, sorted."""
        return sorted(self.streams.values())

    async def _call(self, call: Callable[[], Awaitable[_T]]) -> _T:
        return await self.store.connection.call(call)

    async def open(self) -> None:
        """Check that Redis answers; with ``start="now"``, note the moment (Redis's clock)."""
        client = self.store.client
        await self._call(client.ping)
        if self.start == "now" and not self._started:
            seconds, micros = await self._call(client.time)
            ms = int(seconds) * 1000 + int(micros) // 1000
            # Entries from this millisecond on are new: the group starts just before it.
            self._start_id = f"{ms - 1}-{_MAX_ID_SEQ}" if ms > 0 else "0"
        self._started = True

    # -- discovery ---------------------------------------------------------------------

    def account_of(self, key: str) -> str | None:
        """The account of the stream key ``key`` (``None``: not one of this prefix)."""
        head = self.store.stream_prefix + ":"
        if not key.startswith(head):
            return None
        name = key[len(head) :]
        return name if ACCOUNT_NAME.fullmatch(name) else None

    async def discover(self) -> list[str]:
        """Find the streams that are new since the last call and give them the group.

        Returns the new accounts, sorted.
        """
        new: dict[str, str] = {}
        async for keys in self.store.connection.scan(
            self.store.stream_prefix + ":", key_type="stream"
        ):
            for key in keys:
                account = self.account_of(key)
                if account is not None and key not in self.streams:
                    new[key] = account
        return await self._join(new, start_id=self._start_id)

    async def _join(self, streams: dict[str, str], *, start_id: str) -> list[str]:
        """Create the group on ``streams`` (kept if it exists); the accounts that have it."""
        if not streams:
            return []
        client = self.store.client

        async def create() -> list[Any]:
            async with client.pipeline(transaction=False) as pipe:
                for key in streams:
                    pipe.xgroup_create(key, self.group, id=start_id)
                results: list[Any] = await pipe.execute(raise_on_error=False)
                return results

        joined = []
        for (key, account), result in zip(streams.items(), await self._call(create), strict=True):
            if isinstance(result, redis_errors.ResponseError):
                message = str(result)
                if message.startswith("BUSYGROUP"):
                    pass  # the group exists: it goes on from where it is
                elif "requires the key to exist" in message:
                    self.streams.pop(key, None)  # gone since the scan
                    continue
                else:
                    raise _failure(result)
            elif isinstance(result, Exception):
                raise _failure(result)
            self.streams[key] = account
            joined.append(account)
        return sorted(joined)

    async def regroup(self) -> None:
        """After ``NOGROUP`` (a stream deleted, or the group destroyed): give every known
        stream the group again, from its first entry, and forget the streams that are gone."""
        known, self.streams = dict(self.streams), {}
        await self._join(known, start_id="0")

    # -- reading -----------------------------------------------------------------------

    def _entries(self, response: Iterable[Any]) -> list[TailEntry]:
        entries = []
        for key, items in response:
            account = self.streams.get(_text(key))
            if account is None:
                continue
            for entry_id, fields in items:
                # Empty fields: the entry was trimmed; no ``log`` field: b"" (not a log).
                log = fields.get(b"log", b"") if fields else None
                entries.append(TailEntry(account, _text(entry_id), log))
        return entries

    async def pending(self, accounts: Sequence[str] | None = None) -> list[TailEntry]:
        """The entries pending for this consumer (read before, never acknowledged), oldest
        first per stream, for ``accounts`` (every known one by default)."""
        client = self.store.client
        wanted = None if accounts is None else set(accounts)
        after = {key: "0" for key, name in self.streams.items() if wanted is None or name in wanted}
        found: list[TailEntry] = []
        while after:
            ids = dict(after)

            async def read(ids: dict[Any, Any] = ids) -> Any:
                return await client.xreadgroup(self.group, self.consumer, ids, count=self.count)

            response = await self._call(read) or []
            seen = {_text(key): items for key, items in response}
            after = {}
            for key in ids:
                items = seen.get(key) or []
                if len(items) >= self.count:  # there may be more: go on after the last one
                    after[key] = _text(items[-1][0])
            found.extend(self._entries(response))
        return found

    async def claim(self) -> list[TailEntry]:
        """Take over the entries pending for ``claim_idle`` seconds or more, whoever read
        them (a consumer that died, or this one after a lost acknowledgement)."""
        client = self.store.client
        idle_ms = max(0, int(self.claim_idle * 1000))
        cursors = dict.fromkeys(self.streams, "0-0")
        found: list[TailEntry] = []
        while cursors:
            batch = dict(cursors)

            async def claim(batch: dict[str, str] = batch) -> list[Any]:
                async with client.pipeline(transaction=False) as pipe:
                    for key, cursor in batch.items():
                        pipe.xautoclaim(
                            key, self.group, self.consumer, idle_ms, cursor, count=self.count
                        )
                    results: list[Any] = await pipe.execute(raise_on_error=False)
                    return results

            cursors = {}
            for (key, _), result in zip(batch.items(), await self._call(claim), strict=True):
                if isinstance(result, redis_errors.ResponseError):
                    if str(result).startswith("NOGROUP"):
                        continue  # the stream went away; the next discovery sees to it
                    raise _failure(result)
                if isinstance(result, Exception):
                    raise _failure(result)
                cursor, items = _text(result[0]), result[1]
                found.extend(self._entries([(key, [(i, f) for i, f in items if f is not None])]))
                if cursor != "0-0":
                    cursors[key] = cursor
        return found

    async def read(self, block: float | None) -> list[TailEntry]:
        """New entries of every known stream (``block`` seconds at most when there are none;
        ``None``: do not wait). ``ResponseError`` ``NOGROUP`` when a stream lost its group."""
        if not self.streams:
            return []
        client = self.store.client
        ids: dict[Any, Any] = dict.fromkeys(self.streams, ">")
        block_ms = None if block is None else max(1, int(block * 1000))

        async def read() -> Any:
            return await client.xreadgroup(
                self.group, self.consumer, ids, count=self.count, block=block_ms
            )

        return self._entries(await self._call(read) or [])

    async def ack(self, entries: Sequence[TailEntry]) -> None:
        """Acknowledge ``entries``: they leave the group's pending list."""
        by_key: dict[str, list[str]] = {}
        for entry in entries:
            by_key.setdefault(self.store.stream_key(entry.account), []).append(entry.entry_id)
        if not by_key:
            return
        client = self.store.client

        async def ack() -> None:
            async with client.pipeline(transaction=False) as pipe:
                for key, ids in by_key.items():
                    pipe.xack(key, self.group, *ids)
                await pipe.execute()

        await self._call(ack)
