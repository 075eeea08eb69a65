"""An object store (S3, Google Cloud Storage, Azure Blob) through obstore: the ``storage`` extra.

Why obstore and not fsspec + s3fs (``benchmarks/storage.py``, figures in
``benchmarks/RESULTS.md``): it imports in milliseconds where s3fs takes a third of
a second, it spends a fraction of s3fs's CPU time per request (no botocore), and
conditional writes (``put`` with ``mode="create"``, or an update of a known version:
the ETag on S3 and Azure, the generation on GCS, see ``_version``) are part of its
API, on S3, GCS and Azure alike. One dependency covers all three stores.

Every call is obstore's *blocking* form, run in a worker thread
(``asyncio.to_thread``), never its ``*_async`` form. An ``*_async`` call hands its
result back from one of obstore's own (Rust) threads, which calls into Python to
wake the event loop; when that hand-back is the last thing a process does, the
thread can still be inside the call as the interpreter shuts down, and CPython
ends a thread that asks for the GIL then with ``pthread_exit``, which a Rust
thread cannot survive: the process dies of SIGABRT after its work is done (in a
few percent of short runs). A blocking call runs on the calling thread (which
obstore lets go of the GIL meanwhile), and obstore's threads never touch Python.
The thread hop costs some microseconds on a request that takes milliseconds, a
few per part.

Configuration comes from the store's own environment, never from the command
line: for S3 ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``,
``AWS_SESSION_TOKEN``, ``AWS_DEFAULT_REGION`` (an ``http://`` endpoint, such as a
local MinIO, is allowed); for GCS ``GOOGLE_SERVICE_ACCOUNT`` and its kin; for Azure
``AZURE_STORAGE_ACCOUNT_NAME``, ``AZURE_STORAGE_ACCOUNT_KEY`` and their kin.

Parts are uploaded from a finished local file: obstore sends one PUT up to 5 MiB
and a multipart upload above it, completed only when every chunk is in (a killed
upload leaves an incomplete multipart upload, invisible to readers; a bucket
lifecycle rule ``AbortIncompleteMultipartUpload`` removes it). Each writer spools
its parts in a private temporary folder, removed by ``aclose()``, or by the next
writer on the machine when this one was killed (see ``_new_spool``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import ExportError, ExportInputError, SecondWriterError, require_extra
from .._fileio import try_lock
from ._errors import clean

if TYPE_CHECKING:
    from obstore.store import ObjectStore as _Backend

__all__ = ["ObjectStore"]

_EXTRA = "storage"


class ObjectStore:
    """A bucket and a prefix in an object store."""

    def __init__(self, scheme: str, bucket: str, prefix: str) -> None:
        self.url = f"{scheme}://{bucket}" + (f"/{prefix}" if prefix else "")
        self._obstore: Any = require_extra("obstore", _EXTRA, f"writing to {scheme}://")
        self._exceptions: Any = require_extra(
            "obstore.exceptions", _EXTRA, f"writing to {scheme}://"
        )
        store_module: Any = require_extra("obstore.store", _EXTRA, f"writing to {scheme}://")
        options: dict[str, Any] = {}
        endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
        if scheme in ("s3", "s3a") and endpoint.startswith("http://"):
            options["allow_http"] = True
        try:
            self._store: _Backend = store_module.from_url(self.url, client_options=options or None)
        except Exception as exc:  # obstore's configuration errors: one line, no secret
            refused = ExportInputError(f"cannot write parts to {self.url}: {clean(exc)}")
        else:
            self._spool: Path | None = None
            self._spool_lock: int | None = None
            return
        raise refused  # outside the handler: see _error

    def __repr__(self) -> str:
        return f"ObjectStore({self.url!r})"

    def _error(self, doing: str, key: str, exc: BaseException) -> ExportError:
        """The one-line error of a failed storage call. Raised outside the ``except``
        that caught obstore's error, so it is not even its hidden ``__context__``:
        obstore's text holds the whole answer, which may echo a signature."""
        return ExportError(f"cannot {doing} {self.url}/{key}: {clean(exc)}")

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self._first, None)
        except Exception as exc:
            refused = ExportInputError(f"cannot write parts to {self.url}: {clean(exc)}")
        else:
            return
        raise refused

    def _first(self, prefix: str | None) -> None:
        for _chunk in self._obstore.list(self._store, prefix, chunk_size=1):
            break

    def spool(self, key: str) -> Path:
        if self._spool is None:  # in a worker thread: it sweeps the temporary directory
            self._spool, self._spool_lock = _new_spool()
        return self._spool / key.replace("/", "_")

    async def publish(self, spool: Path, key: str) -> None:
        try:
            # At most 4 chunks of 5 MiB in flight: the upload's memory stays ~20 MiB.
            await asyncio.to_thread(self._obstore.put, self._store, key, spool, max_concurrency=4)
        except Exception as exc:
            failed = self._error("upload the part", key, exc)
        else:
            await asyncio.to_thread(spool.unlink, missing_ok=True)
            return
        raise failed

    async def read(self, key: str) -> tuple[bytes, str | None] | None:
        try:
            return await asyncio.to_thread(self._read, key)
        except (FileNotFoundError, self._exceptions.NotFoundError):  # obstore raises the former
            return None
        except Exception as exc:
            failed = self._error("read", key, exc)
        raise failed

    def _read(self, key: str) -> tuple[bytes, str | None]:
        result = self._obstore.get(self._store, key)
        data = bytes(result.bytes())
        return data, _version(result.meta)

    async def replace(self, key: str, data: bytes, *, expected: str | None) -> str | None:
        mode: Any = "create" if expected is None else _update(expected)
        try:
            result = await asyncio.to_thread(
                self._obstore.put, self._store, key, data, mode=mode, use_multipart=False
            )
        except (self._exceptions.AlreadyExistsError, self._exceptions.PreconditionError):
            raise SecondWriterError(
                f"another writer changed {self.url}/{key} since this export read it; "
                "two exports of one account into one place are not allowed"
            ) from None
        except Exception as exc:
            failed = self._error("write", key, exc)
        else:
            return _version(result)
        raise failed

    async def list(self, prefix: str) -> list[str]:
        try:
            found = await asyncio.to_thread(self._list, prefix)
        except Exception as exc:
            failed = self._error("list", prefix, exc)
        else:
            return sorted(key for key in found if key.startswith(prefix))
        raise failed

    def _list(self, prefix: str) -> builtins.list[str]:
        found: builtins.list[str] = []
        for chunk in self._obstore.list(self._store, prefix.rstrip("/") or None):
            found.extend(str(meta["path"]) for meta in chunk)
        return found

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self._obstore.delete, self._store, key)
        except (FileNotFoundError, self._exceptions.NotFoundError):  # obstore raises the former
            return
        except Exception as exc:
            failed = self._error("delete", key, exc)
        else:
            return
        raise failed

    async def lock(self, key: str) -> None:
        """Nothing: the manifest's conditional writes refuse a second writer instead."""

    async def aclose(self) -> None:
        spool, self._spool = self._spool, None
        lock, self._spool_lock = self._spool_lock, None
        if spool is not None:
            await asyncio.to_thread(shutil.rmtree, spool, ignore_errors=True)
        if lock is not None:
            os.close(lock)  # after the removal: the folder is never unlocked while it exists


# -- the spool folder ----------------------------------------------------------------------

#: A spool folder's name in the temporary directory: this and ``mkdtemp``'s random end.
SPOOL_PREFIX = "sendcloud-async-parts-"
#: The file in a spool folder its writer holds an exclusive lock on while it lives.
SPOOL_LOCK = ".lock"
#: How long a spool folder without its lock file counts as being made (older: its maker died).
SPOOL_GRACE = 10.0
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _new_spool() -> tuple[Path, int]:
    """A new private spool folder, locked for its life, and its lock's file descriptor.

    A writer killed by SIGKILL (or the OOM killer) cannot remove its folder, which can
    hold a part of up to ``part_bytes``; a service restarted after each kill would fill
    the disk. So the folder's lock file is locked (``flock``, released by the kernel
    when its holder dies, however it dies) before anything else is in the folder, and
    each new spool removes the folders beside it that nobody holds (``_sweep``). The
    lock file appears locked: it is made and locked under another name, then renamed.
    Blocking: it runs in the worker thread that writes the first part.
    """
    folder = Path(tempfile.mkdtemp(prefix=SPOOL_PREFIX))
    try:
        making = folder / (SPOOL_LOCK + ".new")
        fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
        try:
            try_lock(fd)  # ``None``: no such locks here, and this folder is never swept
            os.replace(making, folder / SPOOL_LOCK)
        except BaseException:
            os.close(fd)
            raise
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    _sweep(folder)
    return folder, fd


def _sweep(own: Path) -> None:
    """Remove the spool folders beside ``own`` whose writer is dead; silently, never failing.

    Dead: its lock file can be locked here (a live writer holds it), or it has no lock
    file though it is older than ``SPOOL_GRACE`` (its maker died before making one; a
    younger one is still being made). Anything else is left alone: a folder of another
    user, one whose lock cannot be read or taken, a place without such locks (Windows,
    a file system without them), a file or a link by that name.
    """
    if sys.platform == "win32":
        return
    try:
        entries = [entry.name for entry in os.scandir(own.parent)]
    except OSError:
        return
    for name in entries:
        if name.startswith(SPOOL_PREFIX) and name != own.name:
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours: it stays
                _remove_if_dead(own.parent / name)


def _remove_if_dead(folder: Path) -> None:
    info = folder.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        return
    try:
        fd = os.open(folder / SPOOL_LOCK, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        if time.time() - info.st_mtime > SPOOL_GRACE:
            shutil.rmtree(folder, ignore_errors=True)
        return
    try:
        if try_lock(fd) is True:  # held by nobody: its writer is dead
            shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(fd)


# -- an object's version -------------------------------------------------------------------


def _version(meta: Mapping[str, Any]) -> str | None:
    """The version ``replace`` is given back: the object's ETag and its store version, both.

    Each store checks its own half of a conditional update: S3 and Azure the ETag
    (``If-Match``), GCS the generation (``x-goog-if-generation-match``, obstore's
    ``version``; without it obstore refuses the update before sending it). The two
    travel as one opaque string (a JSON pair), as the ``Store`` protocol wants; the
    sink never looks inside it. ``None``: the store said neither.
    """
    etag, version = meta.get("e_tag"), meta.get("version")
    if etag is None and version is None:
        return None
    pair = [None if etag is None else str(etag), None if version is None else str(version)]
    return json.dumps(pair, separators=(",", ":"))


def _update(expected: str) -> dict[str, str]:
    """obstore's update mode for a version ``_version`` made (the halves the store said)."""
    etag, version = json.loads(expected)
    return {
        name: value for name, value in (("e_tag", etag), ("version", version)) if value is not None
    }
