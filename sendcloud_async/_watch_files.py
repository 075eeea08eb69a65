"""The ``LogWatcher`` stores on files: ``FileWatchStore`` and ``DirectoryWatchStore``.

``FileWatchStore`` appends each account's new logs to a file, exactly once.

Each account's ``FILE`` (``DIR/NAME.jsonl``, ``DIR/NAME.csv``, or a path given for
it) has its watch state beside it, ``FILE.watch.json``: a ``WatchFile``, the
``AccountState`` of ``LogWatcher`` plus ``offset``, the bytes of ``FILE`` that
hold committed logs, and ``records``, how many logs those are. Each ``save`` is
a ``FileSink`` commit (``_sinks``): the logs written at ``offset`` and fsync-ed,
then the state replaced atomically. Whatever instant the process dies at, the
first ``offset`` bytes of ``FILE`` hold exactly the logs of the state on disk;
opening the file again cuts it back to ``offset`` (the bytes after it are a batch
whose state was never saved, fetched again). Every log lands in ``FILE`` once.

The files are those ``sendcloud-async logs watch --out``/``--out-dir`` writes (the
command runs on this store): either continues what the other wrote.

Opening an account (``open``, or the first ``load``) reads and checks its state,
locks ``FILE`` (a second writer is refused while this one holds it) and cuts it
back to the state; nothing is sent. The errors are one-line ``InvalidInputError``
s naming the file. A write that fails (a full disk) leaves ``FILE`` cut back to the
committed logs. No file may be named as a state (``X.watch.json``), two accounts of
one store may not share a file, and a ``source`` carries no credentials.
"""

from __future__ import annotations

import asyncio
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar, Final
from urllib.parse import quote

import msgspec
from yarl import URL

from . import _validate as check
from ._account_state import AccountState, check_account_state, decode_account_state
from ._aio import finish
from ._defaults import DEFAULT_BASE_URL, FORMATS
from ._errors import InvalidInputError
from ._fileio import TEMPORARY_SUFFIX, atomic_write, create_directory
from ._lifecycle import Lifecycle
from ._models import IntegrationLog
from ._records import csv_header, encode_csv, encode_jsonl
from ._sinks import FileSink, SinkError
from ._sinks._base import ENCODER

__all__ = [
    "STATE_SUFFIX",
    "WATCH_FILE_VERSION",
    "DirectoryWatchStore",
    "FileWatchStore",
    "WatchFile",
    "state_path",
]

#: The watch state of ``FILE`` is ``FILE`` + this.
STATE_SUFFIX: Final = ".watch.json"
#: The names of a state, and of the temporary file ``atomic_write`` writes it through.
_STATE_ENDINGS: Final = (STATE_SUFFIX, STATE_SUFFIX + TEMPORARY_SUFFIX)
WATCH_FILE_VERSION: Final = 1


class WatchFile(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``FILE.watch.json``: the first ``offset`` bytes of ``FILE`` hold ``records`` logs."""

    version: int = WATCH_FILE_VERSION
    source: str
    format: str
    offset: int
    records: int
    state: AccountState


def state_path(out: Path) -> Path:
    """The watch state of the output ``out``: ``out + ".watch.json"``."""
    return out.with_name(out.name + STATE_SUFFIX)


def _not_a_state(path: Path) -> Path:
    """``path``, refused if its name is a watch state's (``X.watch.json``, or its
    temporary file): its logs and another file's state would overwrite each other."""
    if path.name.lower().endswith(_STATE_ENDINGS):
        raise InvalidInputError(
            f"{path} names a watch state (each file's state is kept beside it as "
            f"FILE{STATE_SUFFIX}, written through FILE{_STATE_ENDINGS[1]}); pick another file"
        )
    return path


def _file_keys(path: Path) -> list[object]:
    """What identifies the file ``path``: its absolute path, and its device and inode if it
    exists (a symlink, a hard link or another spelling of an opened file is that file)."""
    keys: list[object] = [os.path.abspath(path)]
    try:
        found = path.stat()
    except OSError:
        return keys
    keys.append((found.st_dev, found.st_ino))
    return keys


class _File:
    """One account's file: its sink, and the lock its writes and its closing take turns on."""

    __slots__ = ("lock", "sink")

    def __init__(self, sink: FileSink[IntegrationLog, WatchFile]) -> None:
        self.sink = sink
        self.lock = threading.Lock()

    @property
    def records(self) -> int:
        saved = self.sink.state
        return 0 if saved is None else saved.records


class FileWatchStore(Lifecycle):
    """A ``WatchStore`` that appends each account's new logs to a file: exactly once.

    ::

        async with (
            sc.AccountPool(base_url=base_url) as pool,
            sc.FileWatchStore("watch", source=base_url) as store,
        ):
            watcher = sc.LogWatcher(pool, accounts, store=store)
            await watcher.run()            # DIR/NAME.jsonl and DIR/NAME.jsonl.watch.json

    ``directory``: where account ``NAME``'s file is ``NAME.jsonl`` (``NAME.csv``),
    created if missing; ``NAME`` must be 1 to 100 letters, digits, ``.``, ``_`` or
    ``-``. ``paths`` maps an account to its file instead (any name but a state's,
    ``X.watch.json``; one of the two is needed); two accounts given the same file
    (a path twice, a symlink, a hard link) are refused when the second is opened.
    ``format``: ``"jsonl"`` or ``"csv"`` (with its header row). ``source``: what the
    logs are read from (the pool's base URL, normalised as ``base_url`` is; spaces
    around it dropped, credentials refused), saved in each state; a state of another
    source or format is refused.

    ``open(account, integration_id=...)`` checks and opens an account's file
    before any request (and its integration against the state); the watcher's
    first ``load`` of the account opens it otherwise (a refusal there is the
    account's ``AccountFailed``, still before any request of it). ``records``
    says how many logs each opened file holds. ``close()`` or ``aclose()`` (or
    leaving ``async with``) unlocks every file, after a write in flight; the
    store cannot be used after it.
    """

    kind: ClassVar[str] = "file watch store"
    #: After ``FILE holds csv, not jsonl; ``: what to do about it.
    _format_advice: ClassVar[str] = "pass format={held!r} or pick another output"

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        format: str = "jsonl",  # as --format and the state's "format"
        source: str | URL = DEFAULT_BASE_URL,
        paths: Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> None:
        super().__init__()
        self.format = check.choice(format, "format", FORMATS)
        self.source = _source(source)
        if directory is not None and not isinstance(directory, str | os.PathLike):
            raise InvalidInputError(
                f"directory must be a path (str or os.PathLike), not {type(directory).__name__}"
            )
        #: Where ``NAME.jsonl`` (``NAME.csv``) of each account not in ``paths`` goes.
        self.directory = None if directory is None else Path(directory)
        self._paths = _paths(paths)
        if self.directory is None and not self._paths:
            raise InvalidInputError("give a directory for the files, or paths for the accounts")
        self._files: dict[str, _File] = {}
        #: The accounts of the opened files, by ``_file_keys``.
        self._owners: dict[object, str] = {}
        self._opening = threading.Lock()

    def __repr__(self) -> str:
        where = "" if self.directory is None else f" directory={str(self.directory)!r}"
        state = " closed" if self._closed else ""
        return (
            f"<FileWatchStore{state}{where} format={self.format!r} source={self.source!r} "
            f"open={sorted(self._files)!r}>"
        )

    # -- where ------------------------------------------------------------------------------

    def path(self, account: str) -> Path:
        """The file of ``account``'s logs (its state is ``state_path``: beside it)."""
        given = self._paths.get(check.non_empty_str(account, "account"))
        if given is not None:
            return given
        if self.directory is None:
            raise InvalidInputError(f"account {account!r} has no file: it is not in paths")
        try:
            name = check.account_name(account, "account")
        except InvalidInputError as exc:
            raise InvalidInputError(f"{exc} (it names its file); give its file in paths") from None
        return _not_a_state(self.directory / f"{name}.{self.format}")

    def state_path(self, account: str) -> Path:
        """The watch state of ``account``'s file: ``FILE.watch.json``."""
        return state_path(self.path(account))

    @property
    def records(self) -> dict[str, int]:
        """How many logs each opened account's file holds, as its committed state says."""
        return {account: file.records for account, file in dict(self._files).items()}

    # -- opening ----------------------------------------------------------------------------

    def open(self, account: str, *, integration_id: int | None = None) -> None:
        """Check ``account``'s state, lock its file and cut it back to the state. Sends nothing.

        ``integration_id``: the one integration this account's watch reads (as in
        ``LogWatcher(integrations=...)``; ``None``: all of them); a state of another
        is refused. Blocking (a few file operations); idempotent.
        """
        self.check_open()
        if integration_id is not None:
            check.integration_id(integration_id, "integration_id")
        file = self._open(account, (integration_id,))
        _check_integration(file.sink.state, file.sink.state_path, integration_id)

    def _open(self, account: str, integration: tuple[int | None] | None = None) -> _File:
        """``account``'s file, opened if it is not (``integration``: checked then)."""
        with self._opening:
            self.check_open()
            file = self._files.get(account)
            if file is None:
                path = self.path(account)
                owner = next(filter(None, map(self._owners.get, _file_keys(path))), None)
                if owner is not None:
                    raise InvalidInputError(
                        f"accounts {owner!r} and {account!r} are given the same file {path}"
                    )
                sink = self._open_sink(path, integration)
                file = self._files[account] = _File(sink)
                self._owners.update(dict.fromkeys(_file_keys(path), account))
            return file

    def _open_sink(
        self, path: Path, integration: tuple[int | None] | None
    ) -> FileSink[IntegrationLog, WatchFile]:
        sink: FileSink[IntegrationLog, WatchFile] = FileSink(
            path,
            state_path(path),
            state=WatchFile,
            encode=encode_csv if self.format == "csv" else encode_jsonl,
            header=csv_header() if self.format == "csv" else b"",
            writer="watch",
            state_name="the watch state",
            describe=lambda saved: "appending the new logs",
        )
        try:
            if self.directory is not None and path.parent == self.directory:
                problem = create_directory(self.directory)
                if problem is not None:
                    raise InvalidInputError(problem)
            saved = self._read(sink)
            if integration is not None:
                _check_integration(saved, sink.state_path, integration[0])
            try:
                size = sink.open()
            except SinkError as exc:  # not a regular file, or locked by another watch
                raise InvalidInputError(str(exc)) from None
            except OSError as exc:
                raise InvalidInputError(f"cannot write {path}: {exc.strerror or exc}") from None
            if saved is None:
                # No state: the logs go after what the file holds (the CSV header first).
                if size:
                    sink.cut(size)
                else:
                    sink.restart()
            elif size < saved.offset:
                raise InvalidInputError(
                    f"{path} has {size:,} bytes but its watch state says {saved.offset:,} "
                    "were written; it was changed behind the watch's back"
                )
            else:
                sink.cut(saved.offset, saved)
        except BaseException:
            sink.close()
            raise
        return sink

    def _read(self, sink: FileSink[IntegrationLog, WatchFile]) -> WatchFile | None:
        """The saved state of ``sink``'s file, checked against this store's."""
        where = sink.state_path
        damaged = f"the watch state {where} is damaged"
        start_over = "move it away to start over"
        saved = _reading(sink, sink.read)
        if saved is None:
            return None
        if saved.version != WATCH_FILE_VERSION or saved.records < 0:
            raise InvalidInputError(damaged)
        try:
            check_account_state(saved.state, where)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{exc}; {start_over}") from None
        if saved.source != self.source:
            raise InvalidInputError(
                f"{where} is the state of a watch of {saved.source}, not of {self.source}; "
                "pick another output"
            )
        if saved.format != self.format:
            advice = self._format_advice.format(held=saved.format)
            raise InvalidInputError(
                f"{sink.path} holds {saved.format}, not {self.format}; {advice}"
            )
        return saved

    # -- WatchStore -------------------------------------------------------------------------

    async def load(self, account: str) -> AccountState | None:
        """The saved state of ``account`` (``None``: none), its file opened if it was not."""
        file = await self._opened(account)
        saved = file.sink.state
        if file.sink.save_failed:  # it may have landed: the state on disk says
            saved = await asyncio.to_thread(self._committed, file)
        return None if saved is None else saved.state

    @staticmethod
    def _committed(file: _File) -> WatchFile | None:
        with file.lock:
            return _reading(file.sink, file.sink.committed)

    async def save(self, account: str, state: AccountState, logs: Sequence[IntegrationLog]) -> None:
        """Append ``logs`` to ``account``'s file, then save ``state`` past them (one commit).

        Finished even if the caller is cancelled meanwhile: the state matches the file.
        A failed write raises the ``OSError`` naming the file (``cannot write FILE
        (appending the new logs): ...``) and cuts the file back to what was committed
        before, which stays valid; a later save appends right after it.
        """
        file = await self._opened(account)
        loop = asyncio.get_running_loop()
        await finish(loop.run_in_executor(None, self._commit, file, state, logs))

    async def _opened(self, account: str) -> _File:
        self.check_open()
        file = self._files.get(account)
        if file is None:
            file = await asyncio.to_thread(self._open, account)
        return file

    def _commit(self, file: _File, state: AccountState, logs: Sequence[IntegrationLog]) -> None:
        with file.lock:
            self.check_open()
            saved = WatchFile(
                source=self.source,
                format=self.format,
                offset=0,  # the sink puts the end of the logs here
                records=file.records + len(logs),
                state=state,
            )
            file.sink.write(logs, saved)

    # -- closing ----------------------------------------------------------------------------

    def close(self) -> None:
        """Unlock and close every file (idempotent), after a write in flight has finished."""
        with self._opening:
            self._closed = True  # from here on, no file is opened
        for file in list(self._files.values()):
            with file.lock:
                file.sink.close()

    async def _close(self) -> None:
        await asyncio.to_thread(self.close)


def _reading(
    sink: FileSink[IntegrationLog, WatchFile], read: Callable[[], WatchFile | None]
) -> WatchFile | None:
    """``read()`` of ``sink``'s state, its failures said as the store says them: one line
    naming the state file (``InvalidInputError``)."""
    where = sink.state_path
    try:
        return read()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {where}: {exc.strerror or exc}") from None
    except SinkError as exc:
        raise InvalidInputError(
            f"the watch state {where} is damaged ({exc.reason}); move it away to start over"
        ) from None


def _check_integration(saved: WatchFile | None, where: Path, integration_id: int | None) -> None:
    """``InvalidInputError`` if ``saved`` is the state of a watch of another integration."""
    if saved is not None and saved.state.logs.integration_id != integration_id:
        raise InvalidInputError(f"{where} watches another integration; pick another output")


#: What comes before the host of anything that looks like a URL (``https://``, ``https:/``,
#: ``ftp:``, ``//``), and the authority after it, up to its path, query or fragment.
_AUTHORITY: Final = re.compile(r"((?:[A-Za-z][A-Za-z0-9+.-]*:)?[/\\]*)([^/?#]*)")
#: The refusal of a source with user info (it never repeats the source).
_CREDENTIALS: Final = (
    "source must not contain credentials: it names where the logs come from "
    "(as the pool's base URL), without them"
)


def _source(value: object) -> str:
    """``source`` checked: an http(s) URL normalised as a base URL is (no trailing slash),
    or any other non-empty name of where the logs come from; surrounding spaces dropped.

    It is saved in every state, shown in ``repr`` and in refusals: one with user info
    (``https://user:password@host``, however it is spelt) is refused without repeating it;
    a name with an ``@`` that is no URL (``ops@example.com``) is a name.
    """
    given = str(value) if isinstance(value, URL) else value
    source = check.non_empty_str(given, "source").strip()
    authority = _AUTHORITY.match(source)
    if authority is not None and "@" in authority.group(2):
        head, user = authority.group(1), authority.group(2).rpartition("@")[0]
        if head or ":" in user:  # a URL's user info; "ops@example.com" is a name
            raise InvalidInputError(_CREDENTIALS)
    if isinstance(value, URL) or source.lower().startswith(("http:", "https:")):
        return str(check.normalize_base_url(source, name="source"))
    return check.non_empty_str(source, "source")


def _paths(paths: object) -> dict[str, Path]:
    """``paths`` checked: account name to file, no file twice."""
    if paths is None:
        return {}
    if not isinstance(paths, Mapping):
        raise InvalidInputError(
            f"paths must be a mapping of account to file, not {type(paths).__name__}"
        )
    found: dict[str, Path] = {}
    seen: dict[str, str] = {}
    for account, given in paths.items():
        check.non_empty_str(account, "an account of paths")
        if not isinstance(given, str | os.PathLike):
            raise InvalidInputError(
                f"paths[{account!r}] must be a path (str or os.PathLike), "
                f"not {type(given).__name__}"
            )
        path = _not_a_state(Path(given))
        key = os.path.abspath(path)
        if key in seen:
            raise InvalidInputError(f"paths gives {path} to both {seen[key]!r} and {account!r}")
        seen[key] = account
        found[account] = path
    return found


class DirectoryWatchStore:
    """One ``NAME.json`` per account in ``directory``, replaced atomically and fsync-ed.

    The state only (``AccountState``): a batch whose state was not saved is delivered
    again (at least once); ``FileWatchStore`` keeps the logs too, exactly once.

    Account names are percent-encoded into file names. The directory is created
    if missing. Reads and writes run in a worker thread; a ``save`` finishes its
    write even if the caller is cancelled meanwhile (``run()`` does not return
    while a state is still being written).
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def path(self, account: str) -> Path:
        """The file of ``account``."""
        return self.directory / (quote(check.non_empty_str(account, "account"), safe="") + ".json")

    def _load(self, account: str) -> AccountState | None:
        where = self.path(account)
        try:
            raw = where.read_bytes()
        except FileNotFoundError:
            return None
        return decode_account_state(raw, where)

    def _save(self, account: str, state: AccountState) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path(account), ENCODER.encode(state) + b"\n")

    async def load(self, account: str) -> AccountState | None:
        return await asyncio.to_thread(self._load, account)

    async def save(self, account: str, state: AccountState, logs: Sequence[IntegrationLog]) -> None:
        loop = asyncio.get_running_loop()
        await finish(loop.run_in_executor(None, self._save, account, state))
