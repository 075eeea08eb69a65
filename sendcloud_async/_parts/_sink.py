"""``PartsSink``: an export's logs as immutable parts and a manifest, exactly once.

The sink protocol of the export engine (``load``, ``commit``, ``aclose``)::

    async with PartsSink("s3://bucket/logs", account="shop-a", format="parquet") as sink:
        state = await sink.load()              # None, or the state to resume from
        async for page in source(after=state):
            await sink.commit(page.items, page.state)
    # leaving the block publishes what is buffered

How ``commit`` and durability fit together: ``commit(records, state)`` writes the
records into the current part group (local files, see ``_group``) and remembers
``state`` as the state after them. When the group reaches ``part_records`` logs or
``part_bytes`` bytes, or on ``flush()`` or ``aclose()``, its parts are published
(each whole: ``_store``) and only then is the manifest replaced, with the parts
added and the state of the last commit in them. So the committed state always
goes with exactly the logs of the committed parts: a kill loses the buffered
commits *and* their state together (both or neither), and ``load()`` gives the
state to restart the source from. A group always ends at a commit, so no log is
split from its state.

``load()`` also removes what a killed writer left: any object under the account's
folder that the manifest does not list (parts published before the manifest was
replaced, spool files). A second writer is refused: on files by an exclusive lock
held from ``load()`` to ``aclose()``; on an object store by conditional writes of
the manifest (``load()`` claims it, each flush replaces it only if it is still the
version this writer wrote): the writer that did not claim it last (the earlier
one) gets ``SecondWriterError`` at its next flush and commits nothing. Object
stores have no lock, so a writer refused that way may have published one part
group before it found out: it removes those of its parts the manifest does not
list. A part's name holds a digest of its writer's token (``_layout.part_key``),
so two writers never share a name and a writer only ever removes its own
objects. Several workers must not be given the same account: the many-worker
export splits the accounts with a Redis lease for that.

Every blocking step (a part group's ``add``/``finish``/``discard`` in a worker
thread, each store write) runs to its end even when the caller is cancelled
(``_step``, through ``_aio.finish``): a worker thread cannot be stopped, so a
cancel waits for the step and is raised after it, and what the step did counts (a
commit whose ``add`` ended is buffered; a part that was published is remembered).
A cancel leaves the sink usable: ``aclose()`` (a stop) goes on from where the
cancel left the flush and publishes what was committed; ``abandon()`` publishes
nothing and removes the parts it published that the manifest does not list. No
thread of the sink is running once ``aclose()`` returns, and no spool file is
left.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Awaitable, Sequence
from contextlib import suppress
from typing import Any, Final, TypeVar

import msgspec

from .. import _validate as check
from .._aio import finish
from .._errors import ExportError, ExportInputError, InvalidInputError, SecondWriterError
from .._lifecycle import Lifecycle
from .._models import IntegrationLog
from ._encode import DEFAULT_ROW_GROUP, part_format
from ._errors import clean
from ._group import FinishedPart, PartGroup
from ._layout import LOCK_NAME, MANIFEST_NAME, account_prefix, lock_key, manifest_key, part_key
from ._manifest import NULL, Manifest, PartEntry, decode_manifest, encode_manifest
from ._store import open_store

__all__ = ["DEFAULT_PART_BYTES", "DEFAULT_PART_RECORDS", "PartsSink"]

DEFAULT_PART_RECORDS: Final = 1_000_000
DEFAULT_PART_BYTES: Final = 256 * 1024 * 1024

_T = TypeVar("_T")


def _positive(value: object, name: str) -> int:
    try:
        return check.positive_int(value, name)
    except InvalidInputError as exc:
        raise ExportInputError(str(exc)) from None


class PartsSink(Lifecycle):
    """Parts of one account under ``out`` (a path, ``file://``, ``s3://``, ``gs://``, ``az://``)."""

    kind = "parts sink"

    def __init__(
        self,
        out: str | os.PathLike[str],
        *,
        account: str = "default",
        format: str = "parquet",  # the export's own name for it
        compression: str | None = None,
        row_group_records: int = DEFAULT_ROW_GROUP,
        part_records: int = DEFAULT_PART_RECORDS,
        part_bytes: int = DEFAULT_PART_BYTES,
        account_column: bool = False,
        state_type: Any = None,
    ) -> None:
        super().__init__()
        try:
            self.account = check.account_name(account, "account")
        except InvalidInputError as exc:
            raise ExportInputError(str(exc)) from None
        self.format = part_format(format, compression, row_group_records=row_group_records)
        self._part_records = _positive(part_records, "part_records")
        self._part_bytes = _positive(part_bytes, "part_bytes")
        self._account_column = bool(account_column)
        self._state_type = state_type
        self._store = open_store(out)
        self.url = self._store.url
        self._manifest: Manifest | None = None
        self._version: str | None = None
        self._group: PartGroup | None = None
        self._pending: bytes | None = None
        #: The current group's parts published but not yet in the manifest.
        self._published: list[PartEntry] = []
        self._failed = False
        self._writer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"

    def __repr__(self) -> str:
        return (
            f"PartsSink({self.url!r}, account={self.account!r}, format={self.format.name!r}, "
            f"compression={self.format.compression!r})"
        )

    # -- what is committed ---------------------------------------------------

    @property
    def committed_records(self) -> int:
        """Logs in the committed parts (0 before ``load()``)."""
        return 0 if self._manifest is None else self._manifest.records

    @property
    def parts(self) -> list[str]:
        """The keys of the committed parts, in commit order."""
        return [] if self._manifest is None else [p.key for p in self._manifest.parts]

    @property
    def committed_bytes(self) -> int:
        """Bytes in the committed parts (0 before ``load()``)."""
        return 0 if self._manifest is None else sum(p.bytes for p in self._manifest.parts)

    async def peek(self) -> msgspec.Raw | None:
        """The committed state as its JSON, read without taking the manifest (``None``: none).

        Neither locks nor claims anything, so it may be asked before deciding whether to
        ``load()`` (continue) or ``restart()``; ``ExportInputError`` if the manifest
        is damaged.
        """
        self.check_open()
        where = f"{self.url}/{manifest_key(self.account)}"
        found = await self._store.read(manifest_key(self.account))
        if found is None:
            return None
        manifest = decode_manifest(found[0], where)
        return None if bytes(manifest.state) == bytes(NULL) else manifest.state

    async def restart(self) -> None:
        """Start the account over: an empty manifest, then every other object removed.

        Instead of ``load()``, or after it (before any commit); takes the manifest the
        same way (lock, claim). The manifest goes first, so a kill in between leaves
        parts no manifest lists, which the next writer removes; any format may have
        been there before.
        """
        self.check_open()
        if self._failed or self._pending is not None or self._group is not None:
            raise ExportError(f"restart() the sink of {self.url} before writing to it")
        store = self._store
        expected = self._version
        if self._manifest is None:
            await store.check()
            await store.lock(lock_key(self.account))
            found = await store.read(manifest_key(self.account))
            expected = None if found is None else found[1]
        manifest = Manifest(
            account=self.account,
            format=self.format.name,
            compression=self.format.compression,
            writer=self._writer,
        )
        self._version = await self._step(
            store.replace(manifest_key(self.account), encode_manifest(manifest), expected=expected),
            failing=False,
        )
        keep = {MANIFEST_NAME, LOCK_NAME}
        prefix = account_prefix(self.account)
        for key in await store.list(prefix):
            if key[len(prefix) :] not in keep:
                await self._step(store.delete(key), failing=False)
        self._manifest = manifest

    async def load(self) -> Any:
        """The committed state (``None``: nothing committed yet); opens the sink."""
        manifest = await self._opened()
        if bytes(manifest.state) == bytes(NULL):
            return None
        if self._state_type is None:
            return msgspec.json.decode(manifest.state)
        return msgspec.json.decode(manifest.state, type=self._state_type)

    async def _opened(self) -> Manifest:
        self.check_open()
        if self._failed:
            raise ExportError(f"an earlier write to {self.url} failed; this sink is unusable")
        if self._manifest is not None:
            return self._manifest
        store = self._store
        await store.check()
        await store.lock(lock_key(self.account))
        where = f"{self.url}/{manifest_key(self.account)}"
        found = await store.read(manifest_key(self.account))
        if found is None:
            manifest = Manifest(
                account=self.account, format=self.format.name, compression=self.format.compression
            )
        else:
            manifest = decode_manifest(found[0], where)
            self._check_same(manifest, where)
        expected = None if found is None else found[1]
        # Claim it: a writer that read it before now fails its next conditional write.
        manifest.writer = self._writer
        self._version = await self._step(
            store.replace(manifest_key(self.account), encode_manifest(manifest), expected=expected),
            failing=False,
        )
        listed = {part.key for part in manifest.parts}
        keep = {MANIFEST_NAME, LOCK_NAME}
        prefix = account_prefix(self.account)
        for key in await store.list(prefix):
            if key not in listed and key[len(prefix) :] not in keep:
                await self._step(store.delete(key), failing=False)
        self._manifest = manifest
        return manifest

    def _check_same(self, manifest: Manifest, where: str) -> None:
        mine = (self.account, self.format.name, self.format.compression)
        theirs = (manifest.account, manifest.format, manifest.compression)
        if mine != theirs:
            raise ExportInputError(
                f"{where} holds {theirs[1]} parts ({theirs[2]}) of account {theirs[0]!r}; "
                f"this export writes {mine[1]} ({mine[2]}) of {mine[0]!r}: use the same "
                "format and compression, or another destination"
            )

    # -- writing -------------------------------------------------------------

    async def _step(self, action: Awaitable[_T], *, failing: bool = True) -> _T:
        """Run ``action`` (a worker thread's step, a store write) to its end, even through
        a cancel, which is raised after it (``_aio.finish``).

        With ``failing``, an error of the step makes the sink unusable. A cancelled
        caller never sees the step's result, so a step whose effect must count records
        it on the sink itself (``_add``, ``_publish``, ``_replace``).
        """

        async def run() -> _T:
            try:
                return await action
            except BaseException:
                if failing:
                    self._failed = True
                raise

        future = asyncio.ensure_future(run())
        await finish(future)
        return future.result()

    async def commit(self, records: Sequence[IntegrationLog], state: Any) -> None:
        """Add ``records`` and the ``state`` after them; durable with the group they are in.

        Cancelled once the records are written into the group, the commit counts: it is
        published with the group (by ``aclose()``, say) like any other.
        """
        manifest = await self._opened()
        if self._group is not None and self._group.finished is not None:
            # A flush a cancel interrupted: it ends first, and these go into a new group.
            await self._flush(manifest)
            manifest = await self._opened()
        encoded = msgspec.json.encode(state)
        if self._group is None:
            self._group = PartGroup(
                self.format,
                self._store,
                self.account,
                manifest.next_seq,
                account_column=self._account_column,
            )
        group = self._group
        if group.only_holds(len(records)):
            group.add(records)  # a list append: not worth a thread
            self._pending = encoded
        else:
            await self._step(self._add(group, records, encoded))
        if group.rows >= self._part_records or group.size() >= self._part_bytes:
            await self.flush()

    async def _add(self, group: PartGroup, records: Sequence[IntegrationLog], state: bytes) -> None:
        try:
            await asyncio.to_thread(group.add, records)
        except OSError as exc:  # the disk of the part files (full, too large a file)
            raise self._write_error(exc) from None
        self._pending = state  # the logs are in the group: buffered, with their state

    async def flush(self) -> None:
        """Publish the buffered parts, then the manifest with the last commit's state."""
        await self._flush(await self._opened())

    async def _flush(self, manifest: Manifest) -> None:
        """Finish the group, publish its parts, replace the manifest: each step once, so a
        flush a cancel interrupted goes on from the step it reached."""
        pending, group = self._pending, self._group
        if pending is None:
            return
        finished: list[FinishedPart] = []
        if group is not None and group.rows:
            if group.finished is None:
                await self._step(self._finish(group))
            finished = group.finished or []
            before = bytes(manifest.state)
            for part in finished[len(self._published) :]:
                key = part_key(
                    self.account,
                    part.date,
                    group.seq,
                    before,
                    pending,
                    self._writer,
                    self.format.extension,
                )
                await self._step(self._publish(part, key))
        entries = list(self._published)
        updated = msgspec.structs.replace(
            manifest,
            state=msgspec.Raw(pending),
            next_seq=manifest.next_seq + (1 if entries else 0),
            records=manifest.records + sum(e.records for e in entries),
            parts=[*manifest.parts, *entries],
        )
        await self._step(self._replace(updated))

    async def _finish(self, group: PartGroup) -> None:
        try:
            await asyncio.to_thread(group.finish)  # it keeps its parts in ``finished``
        except OSError as exc:
            raise self._write_error(exc) from None

    async def _publish(self, part: FinishedPart, key: str) -> None:
        await self._store.publish(part.spool, key)
        self._published.append(
            PartEntry(key=key, date=part.date, records=part.records, bytes=part.bytes)
        )

    async def _replace(self, updated: Manifest) -> None:
        key = manifest_key(self.account)
        try:
            version = await self._store.replace(
                key, encode_manifest(updated), expected=self._version
            )
        except SecondWriterError:
            await self._unpublish()
            raise
        self._version = version
        self._manifest = updated
        self._pending = None
        self._group = None
        self._published = []

    async def _unpublish(self) -> None:
        """Remove the parts this writer published that the manifest does not list (another
        writer took the manifest, or the flush failed or was abandoned).

        A part's name holds its writer's token (``part_key``): they are nobody else's.
        The manifest is read first, as a write whose outcome is unknown may have listed
        them; if it cannot be read, nothing is removed (the next ``load()`` removes what
        the manifest does not list).
        """
        entries, self._published = self._published, []
        where = f"{self.url}/{manifest_key(self.account)}"
        try:
            found = await self._store.read(manifest_key(self.account))
            listed = (
                set() if found is None else {p.key for p in decode_manifest(found[0], where).parts}
            )
        except Exception:  # the refusal (or the first failure) is the error to report
            return
        for entry in entries:
            if entry.key not in listed:
                with suppress(Exception):
                    await self._store.delete(entry.key)

    def _write_error(self, exc: OSError) -> ExportError:
        return ExportError(f"cannot write a part file for {self.url}: {clean(exc)}")

    async def abandon(self) -> None:
        """Close without publishing: the buffered records (and their state) are dropped,
        and parts a flush published that the manifest does not list are removed."""
        self._failed = True
        await self.aclose()

    async def _close(self) -> None:
        try:
            if self._manifest is not None and not self._failed:
                await self._flush(self._manifest)
        finally:
            try:
                if self._published:  # a flush that failed, was abandoned or cut short
                    await self._step(self._unpublish(), failing=False)
            finally:
                try:
                    group, self._group = self._group, None
                    if group is not None:
                        await self._step(asyncio.to_thread(group.discard), failing=False)
                finally:
                    await self._step(self._store.aclose(), failing=False)
