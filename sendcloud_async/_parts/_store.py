"""Where parts go: a directory (no extra needed) or an object store (the ``storage`` extra).

``open_store(url)`` is the one place a destination is parsed: a plain path or a
``file://`` URL is a ``LocalStore``; ``s3://``, ``s3a://``, ``gs://``, ``az://``,
``abfs://`` and ``abfss://`` are an ``ObjectStore`` (``_objstore``, through obstore).
Any other scheme, credentials inside the URL (any ``@`` before its query), and an
object store's bucket that is not a bucket name are refused with a one-line error
before anything is written. ``shown_url(url)`` is the one rule that says a storage
URL in a message (here, and in ``logs report``): never anything before an ``@``,
nor a query or fragment, nor a host that is not a host name.

A store moves whole objects only. ``publish(spool, key)`` makes a finished part
file visible under ``key`` in one step: for files ``_fileio.atomic_move`` (an
``fsync``, an atomic ``os.replace`` in the same directory, an ``fsync`` of the
directory); for an object store a single PUT, or a multipart upload that the store
completes only once every byte is in. ``replace(key, data, expected=...)`` writes a
small object (the manifest) atomically (files: ``_fileio.atomic_write``), and, on an
object store, only if it still is the version ``expected`` (``None``: only if there
is none): a second writer is refused there; a ``LocalStore`` relies on its lock
instead (``lock``).
"""

from __future__ import annotations

import asyncio
import builtins
import os
import re
from pathlib import Path
from typing import Final, Protocol
from urllib.parse import unquote, urlsplit

from .._errors import ExportError, ExportInputError, SecondWriterError
from .._fileio import atomic_move, atomic_write, lock_exclusively, writing
from ._errors import clean

__all__ = ["OBJECT_SCHEMES", "LocalStore", "Store", "open_store", "shown_url"]

#: The URL schemes of object stores (``ObjectStore``); obstore reads each one's URL.
OBJECT_SCHEMES = ("s3", "s3a", "gs", "az", "abfs", "abfss")


class Store(Protocol):
    """What the parts sink needs of a destination (see the module docstring)."""

    #: The destination as shown in messages: never with credentials.
    url: str

    async def check(self) -> None:
        """Raise ``ExportInputError`` if the destination cannot be written (missing bucket)."""

    def spool(self, key: str) -> Path:
        """A new local file to write the part ``key`` into before ``publish``."""

    async def publish(self, spool: Path, key: str) -> None:
        """Make the finished ``spool`` file the object ``key``, whole or not at all."""

    async def read(self, key: str) -> tuple[bytes, str | None] | None:
        """``key``'s bytes and version (``None`` if there is no such object)."""

    async def replace(self, key: str, data: bytes, *, expected: str | None) -> str | None:
        """Write ``key`` atomically if it is still at version ``expected``; its new version."""

    async def list(self, prefix: str) -> list[str]:
        """Every key under ``prefix`` (a folder: ``"account=a/"``), sorted."""

    async def delete(self, key: str) -> None:
        """Remove ``key`` (nothing if it is gone)."""

    async def lock(self, key: str) -> None:
        """Keep a second writer off (files: an exclusive lock; object stores: nothing)."""

    async def aclose(self) -> None:
        """Release the lock and local files. Idempotent."""


class LocalStore:
    """A directory: parts are renamed into place, the manifest replaced atomically."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.url = str(root)
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"LocalStore({self.url!r})"

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*key.split("/"))

    async def check(self) -> None:
        if self.root.exists() and not self.root.is_dir():
            raise ExportInputError(f"cannot write parts into {self.url}: it is not a directory")
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportInputError(f"cannot write parts into {self.url}: {clean(exc)}") from None

    def spool(self, key: str) -> Path:
        path = self._path(key + ".tmp")
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    async def publish(self, spool: Path, key: str) -> None:
        await asyncio.to_thread(self._publish, spool, self._path(key))

    @staticmethod
    def _publish(spool: Path, final: Path) -> None:
        with writing(final, "publishing a part"):
            atomic_move(spool, final)

    async def read(self, key: str) -> tuple[bytes, str | None] | None:
        try:
            data = await asyncio.to_thread(self._path(key).read_bytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ExportError(f"cannot read {self._path(key)}: {clean(exc)}") from None
        return data, None

    async def replace(self, key: str, data: bytes, *, expected: str | None) -> str | None:
        await asyncio.to_thread(self._replace, self._path(key), data)
        return None

    @staticmethod
    def _replace(path: Path, data: bytes) -> None:
        with writing(path, "replacing the manifest"):
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)

    async def list(self, prefix: str) -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    def _list(self, prefix: str) -> builtins.list[str]:
        base = self._path(prefix.rstrip("/")) if prefix.strip("/") else self.root
        found = []
        for folder, _dirs, files in os.walk(base):
            for name in files:
                found.append(Path(folder, name).relative_to(self.root).as_posix())
        return sorted(found)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self._path(key).unlink, missing_ok=True)

    async def lock(self, key: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        if not lock_exclusively(fd):
            os.close(fd)
            raise SecondWriterError(
                f"another export is writing {path.parent} (it holds {path.name}); "
                "wait for it to end"
            )
        self._lock_fd = fd

    async def aclose(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)


#: A URL's scheme, and the ``//`` before its host if it has one.
_SCHEME: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):(//)?")
#: A host a message may show: a name or an address, with a port.
_HOST: Final = re.compile(r"(?:[\w.-]*|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")
#: A bucket (S3, GCS) or container (Azure) name: never a ``:``, an ``@`` or a ``/``.
_BUCKET: Final = re.compile(r"[A-Za-z0-9][\w.-]{0,221}")
#: What stands for a host that cannot be shown.
_HIDDEN: Final = "**********"


def _head(url: str) -> tuple[str, str, str] | None:
    """``url``'s scheme (lower case), ``"//"`` or ``""``, and what follows up to its query or
    fragment; ``None`` for a path."""
    match = _SCHEME.match(url)
    if match is None:
        return None
    rest = url[match.end() :]
    for mark in "?#":
        rest = rest.partition(mark)[0]
    return match.group(1).lower(), match.group(2) or "", rest


def shown_url(url: str) -> str:
    """``url`` as a message may show it: scheme, host and path, and no secret.

    Nothing before the last ``@`` before the query (user info, even a password
    holding ``/``, which ``urlsplit`` takes for the path), no query or fragment (a
    SAS token), and no host that is not a host name (``**********`` instead, and no
    path). A path (no scheme) is shown as it is.
    """
    head = _head(url)
    if head is None:
        return url
    scheme, slashes, rest = head
    rest = rest.rpartition("@")[2]
    host, slash, path = rest.partition("/")
    if slashes and _HOST.fullmatch(host) is None:
        return f"{scheme}://{_HIDDEN}"
    return f"{scheme}:{slashes}{host}{slash}{path}"


def _refuse(url: str, reason: str) -> ExportInputError:
    return ExportInputError(f"cannot write parts to {shown_url(url)}: {reason}")


def _credentials(scheme: str) -> str:
    if scheme in ("az", "abfs", "abfss"):
        where = f" (for Azure: {scheme}://CONTAINER/PREFIX and AZURE_STORAGE_ACCOUNT_NAME)"
    elif scheme == "gs":
        where = " (for GCS: GOOGLE_SERVICE_ACCOUNT)"
    elif scheme in ("s3", "s3a"):
        where = " (for S3: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)"
    else:
        where = ""
    return (
        "credentials in the URL are not accepted (it holds an '@'); the storage's own "
        f"environment gives them{where}"
    )


def open_store(url: str | os.PathLike[str]) -> Store:
    """The store ``url`` names (see the module docstring); ``ExportInputError`` if none."""
    text = os.fspath(url)
    if not text:
        raise ExportInputError(
            "the output URL is empty: give a path, file://, s3://, gs:// or az://"
        )
    head = _head(text)
    try:
        parts = urlsplit(text)
    except ValueError:  # an unbalanced "[" or "]" in the host
        raise _refuse(text, "not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme == "" or (len(scheme) == 1 and os.name == "nt"):
        return LocalStore(Path(text))
    if parts.username is not None or (scheme != "file" and head and "@" in head[2]):
        raise _refuse(text, _credentials(scheme))
    if parts.query or parts.fragment:
        raise _refuse(text, "a storage URL takes no query or fragment")
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise _refuse(text, "a file:// URL names a local path (file:///PATH)")
        return LocalStore(Path(unquote(parts.path)))
    if scheme in OBJECT_SCHEMES:
        if _BUCKET.fullmatch(parts.netloc) is None:
            raise _refuse(
                text,
                f"a {scheme}:// URL names a bucket ({scheme}://BUCKET/PREFIX; a bucket name "
                "holds letters, digits, '.', '-' and '_' only)",
            )
        from ._objstore import ObjectStore

        return ObjectStore(scheme, parts.netloc, parts.path.strip("/"))
    raise _refuse(
        text,
        f"unknown scheme {scheme!r}; use a path, file://, s3://, gs:// or az://",
    )
