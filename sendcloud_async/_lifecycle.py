"""The lifecycle of every async resource of the SDK, written once.

A resource (the client, the pool, each Redis piece, ``FakeSendcloud``) is open
from its construction until ``aclose()``; ``aclose()`` runs its cleanup once (a
second call does nothing); every use after it raises ``ClientClosedError``
naming the resource; ``async with`` checks it is open on entry and closes it on
exit. What a resource holds is either its own (made by it: closed with it) or
borrowed (given to it: never closed by it) — ``Held`` says which, once. A public
object whose lifecycle is another object's (the client's is its transport's, a
Redis piece's is its connection handle's) is a ``Facade`` of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import ClassVar, Generic, Self, TypeVar

from ._errors import ClientClosedError

__all__ = ["Closing", "Facade", "Held", "Lifecycle"]

_T = TypeVar("_T")


class Closing:
    """``async with`` for anything with ``aclose()``: ``_enter()`` in, ``aclose()`` out."""

    __slots__ = ()

    async def aclose(self) -> None:
        raise NotImplementedError

    async def _enter(self) -> None:
        """What entering ``async with`` does (nothing by default)."""

    async def __aenter__(self) -> Self:
        await self._enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class Lifecycle(Closing):
    """Open until ``aclose()``; ``ClientClosedError`` after; ``async with``.

    A subclass names itself in ``kind`` (for the error), releases what it owns in
    ``_close()`` (called once) and, if entering needs work (making a session in
    the running loop), does it in ``_enter()``. Its methods call
    ``check_open()`` before they use what ``_close()`` releases.
    """

    # ``_closed`` is the subclass's slot (or in its ``__dict__``): this base adds no
    # slot, so it combines with any other slotted base.
    __slots__ = ()
    _closed: bool

    #: How the error names the resource: "this <kind> is closed; ...".
    kind: ClassVar[str] = "resource"

    def __init__(self) -> None:
        self._closed = False  # type: ignore[misc]  # the subclass's slot (see above)

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` was called."""
        return self._closed

    def check_open(self) -> None:
        """Raise ``ClientClosedError`` if ``aclose()`` was called."""
        if self._closed:
            raise ClientClosedError(f"this {self.kind} is closed; create a new one to use it")

    async def aclose(self) -> None:
        """Release what this resource owns (never what it borrowed). Idempotent."""
        if self._closed:
            return
        self._closed = True  # type: ignore[misc]  # the subclass's slot (see above)
        await self._close()

    async def _close(self) -> None:
        """Release what this resource owns (called once, by ``aclose()``)."""

    async def __aenter__(self) -> Self:
        self.check_open()  # then ``_enter()``: what a subclass does on the way in
        return await super().__aenter__()


class Facade(Closing):
    """The public face of a ``Lifecycle`` held elsewhere (``_lifecycle()``).

    ``closed``, ``aclose()`` and ``async with`` act on that one lifecycle; a
    subclass may do more on entry (``_enter``) or close less (override ``aclose``).
    """

    __slots__ = ()

    def _lifecycle(self) -> Lifecycle:
        raise NotImplementedError

    @property
    def closed(self) -> bool:
        """Whether ``aclose()`` was called."""
        return self._lifecycle().closed

    async def aclose(self) -> None:
        """Release what it owns (never what it borrowed); every use after raises
        ``ClientClosedError``. Idempotent."""
        await self._lifecycle().aclose()

    async def _enter(self) -> None:
        self._lifecycle().check_open()


class Held(Generic[_T]):
    """Something a resource uses: its own (closed with it) or borrowed (never closed by it)."""

    __slots__ = ("owned", "value")

    def __init__(self, value: _T | None, *, owned: bool) -> None:
        self.value = value
        self.owned = owned

    @classmethod
    def borrowed_or_own(cls, given: _T | None) -> Held[_T]:
        """``given`` borrowed; or, when ``None``, one to be made here (owned)."""
        return cls(given, owned=given is None)

    async def release(self, close: Callable[[_T], Awaitable[object]]) -> None:
        """Close the value with ``close`` if it is owned; forget it either way."""
        value, self.value = self.value, None
        if value is not None and self.owned:
            await close(value)
