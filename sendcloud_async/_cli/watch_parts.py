"""``logs watch`` into parts: new logs as Parquet, JSON Lines or CSV parts, exactly once.

A watch whose output is parts (``_defaults.writes_parts``, the rule of ``logs export``
too: ``--out`` or ``--out-dir`` a URL, or ``--format parquet``) gets a ``PartsStore``:
one ``PartsSink`` (``_parts``) per account, ``account=NAME/`` under the output
(``default`` for ``--out``). Each batch
is committed to its account's sink with the account's state (``WatchPartsState``);
the sink publishes a part group, then replaces the manifest with the state after
its last log. A part group is published

- when it holds ``--roll-records`` logs (or the sink's byte limit),
- at most ``--roll-seconds`` after its first log (a timer per account, started by
  the first log of a group), so a watch that sees few logs still publishes them,
- when the watch ends: ``--once``, Ctrl-C, SIGTERM (``watching`` closes every sink,
  which publishes what is buffered).

A state without logs (the first poll's, or a change of failing integrations) is
published at once when no log is buffered (a manifest write): a restart then keeps
the ``--start`` of the first run. After a kill, the manifest holds the state of the
last published part group, and the restarted watch fetches again exactly the logs
that were buffered: each log is in exactly one published part.

A failed write of the parts stops the watch (exit status 1): its buffered logs are
lost with their state, which a restart fetches again. It is not a poll failure
retried later, since the watch's state in memory has moved past them.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, TypeVar

import msgspec

from .._account_state import AccountState, check_account_state
from .._aio import finish, stop_task
from .._errors import InvalidInputError, MissingExtraError, SendcloudError
from .._models import IntegrationLog
from .._parts import DEFAULT_PART_RECORDS, ExportInputError, PartsSink, SecondWriterError
from .common import UsageError

__all__ = ["WATCH_PARTS_VERSION", "PartsStore", "WatchPartsState"]

_T = TypeVar("_T")

WATCH_PARTS_VERSION: Final = 1


class WatchPartsState(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A watch's state in an account's parts manifest: whose logs, and the ``AccountState``."""

    version: int = WATCH_PARTS_VERSION
    source: str
    state: AccountState


class _StorageFailed(Exception):
    """A write of the parts failed during a poll: it stops the run (see the module docstring).

    ``LogWatcher`` retries an account whose poll raised a ``SendcloudError``, which the
    sink's errors are; this wrapper carries one past it to ``PartsStore.watching``.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _Partition:
    """One account's parts: its sink, the logs buffered in it, the timer of the time roll."""

    def __init__(
        self,
        sink: PartsSink,
        *,
        source: str,
        label: str,
        roll_seconds: float,
        failed: Callable[[BaseException], None],
    ) -> None:
        self.sink = sink
        self.source = source
        self.label = label
        self._roll_seconds = roll_seconds
        self._failed = failed
        self.integration_id: int | None = None
        self.saved: AccountState | None = None
        #: Logs committed to the sink and not yet published.
        self.buffered = 0
        self._lock = asyncio.Lock()  # commits and the timer's publish take turns
        self._timer: asyncio.Task[None] | None = None

    @property
    def where(self) -> str:
        return f"{self.sink.url}/account={self.sink.account}"

    @property
    def records(self) -> int:
        """The logs in the published parts."""
        return self.sink.committed_records

    def open(self, integration_id: int | None) -> None:
        """Remember the integration watched (checked against the manifest by ``load``)."""
        self.integration_id = integration_id

    async def load(self) -> None:
        """Open the sink (lock, claim the manifest, remove a killed writer's parts); check it."""
        try:
            saved = await self.sink.load()
        except (msgspec.ValidationError, msgspec.DecodeError):
            raise UsageError(
                f"{self.label}{self.where} holds parts that a watch did not write (an "
                "export's?); pick another output"
            ) from None
        except SecondWriterError:
            raise UsageError(
                f"{self.label}another watch or export is writing {self.where}; wait for it "
                "to end, or pick another output"
            ) from None
        except ExportInputError as exc:
            raise UsageError(f"{self.label}{exc}") from None
        if saved is None:
            return
        assert isinstance(saved, WatchPartsState)
        if saved.version != WATCH_PARTS_VERSION:
            raise UsageError(
                f"{self.label}the watch state in {self.where} has version {saved.version}; "
                f"this sendcloud-async reads version {WATCH_PARTS_VERSION}"
            )
        try:
            state = check_account_state(saved.state, self.where)
        except InvalidInputError as exc:
            raise UsageError(f"{self.label}{exc}") from None
        if saved.source != self.source:
            raise UsageError(
                f"{self.label}{self.where} holds a watch of {saved.source}, not of "
                f"{self.source}; pick another output"
            )
        if state.logs.integration_id != self.integration_id:
            raise UsageError(
                f"{self.label}{self.where} holds a watch of another integration; "
                "pick another output"
            )
        self.saved = state

    async def commit(self, logs: Sequence[IntegrationLog], state: AccountState) -> None:
        """Buffer ``logs`` with ``state``; publish when a roll says so (see the module)."""
        async with self._lock:
            published = self.sink.committed_records
            await self.sink.commit(logs, WatchPartsState(source=self.source, state=state))
            if self.sink.committed_records != published:  # the size roll published them
                self.buffered = 0
                self._stop_timer()
            elif logs:
                self.buffered += len(logs)
                if self._timer is None:
                    self._timer = asyncio.create_task(self._roll_after(self._roll_seconds))
            elif not self.buffered:
                await self.sink.flush()  # only a state: in the manifest at once

    def _stop_timer(self) -> None:
        timer, self._timer = self._timer, None
        if timer is not None and timer is not asyncio.current_task():
            timer.cancel()  # it waits for the sleep or the lock: it never held the lock

    async def _roll_after(self, delay: float) -> None:
        """Publish the buffered logs ``delay`` seconds after the first of them."""
        await asyncio.sleep(delay)
        try:
            async with self._lock:
                self._timer = None
                if self.buffered:
                    # Finished even if the watch is stopped meanwhile (then it is a no-op).
                    await finish(asyncio.ensure_future(self._publish()))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # reported to the run, which stops
            self._failed(exc)

    async def _publish(self) -> None:
        await self.sink.flush()
        self.buffered = 0

    async def aclose(self) -> None:
        """Stop the timer, publish what is buffered (unless a write failed), release."""
        timer, self._timer = self._timer, None
        await stop_task(timer)
        await self.sink.aclose()
        self.buffered = 0


class PartsStore:
    """The ``WatchStore`` of a watch into parts: one ``_Partition`` per account."""

    #: What the summary says was done with the new logs.
    verb: Final = "published"

    def __init__(self, args: argparse.Namespace) -> None:
        self.outputs: dict[str, _Partition] = {}
        self._format: str = args.format
        self._compression: str | None = args.compression
        self._roll_records: int = args.roll_records or DEFAULT_PART_RECORDS
        self._roll_seconds: float = args.roll_seconds
        self._error: BaseException | None = None
        self._main: asyncio.Task[object] | None = None

    def add(self, name: str, out: str, *, source: str, label: str, account_column: bool) -> None:
        """The partition of account ``name`` under ``out``; ``UsageError`` if refused.

        Nothing is written or sent yet: the URL, the format and its extra are checked.
        """
        try:
            sink = PartsSink(
                out,
                account=name,
                format=self._format,
                compression=self._compression,
                part_records=self._roll_records,
                account_column=account_column,
                state_type=WatchPartsState,
            )
        except (ExportInputError, MissingExtraError) as exc:
            raise UsageError(str(exc)) from None
        self.outputs[name] = _Partition(
            sink,
            source=source,
            label=label,
            roll_seconds=self._roll_seconds,
            failed=self._fail,
        )

    # -- WatchStore ----------------------------------------------------------------------------

    async def load(self, account: str) -> AccountState | None:
        return self.outputs[account].saved

    async def save(self, account: str, state: AccountState, logs: Sequence[IntegrationLog]) -> None:
        commit = asyncio.ensure_future(self.outputs[account].commit(logs, state))
        try:
            # Finished even if the watch is being stopped: the sink stays usable, and
            # closing it publishes this batch too.
            await finish(commit)
        except SendcloudError as exc:
            raise _StorageFailed(exc) from None

    # -- the run -----------------------------------------------------------------------------

    def _fail(self, error: BaseException) -> None:
        """A timer's publish failed: stop the run with that error."""
        if self._error is None:
            self._error = error
        if self._main is not None and not self._main.done():
            self._main.cancel()

    async def watching(self, watch: Callable[[], Awaitable[_T]]) -> _T:
        """Open every partition (``UsageError`` before any request), run ``watch()``, close.

        Closing publishes what is buffered, also when the watch was stopped (Ctrl-C,
        SIGTERM) or failed; a failed write ends the run with its error.
        """
        self._main = asyncio.current_task()
        try:
            for output in self.outputs.values():
                await output.load()
            try:
                result = await watch()
            except asyncio.CancelledError:
                if self._error is None or self._main is None:
                    raise
                self._main.uncancel()  # the run's own stop: its error, not a cancel
                raise self._error from None
            except _StorageFailed as exc:
                raise (self._error or exc.error) from None
        except BaseException:
            # The error (or the stop) in flight is what the run ends with.
            await finish(asyncio.ensure_future(self._close_all()), check=False)
            raise
        await finish(asyncio.ensure_future(self._close_all()))
        return result

    async def _close_all(self) -> None:
        """Close every partition (each publishes its buffer); raise the first error after."""
        first: BaseException | None = None
        for output in self.outputs.values():
            try:
                await output.aclose()
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first

    def close(self) -> None:
        """Nothing left to release: ``watching`` closed every sink it opened."""
