"""What one worker of a many-worker export (``logs export --redis``) tries to claim, and
when it reads every unfinished account again.

A round does not ask Redis about every account. It learns which are done from the
run's record of finished accounts (``export_finished``) and tries to claim only as
many accounts as it has free slots, walking one order: its own accounts first (those
rendezvous hashing over the live workers gives it, ``_members``, in the accounts
file's order), then the others by its place in their ranking. The order is kept
until the live workers change. An account another worker holds is not tried again
before the time its lease had left then (``busy``; ``--lease`` when every worker gives
the same), unless the live workers change (a worker that leaves lets its leases go).

Every ``SWEEP_LEASES`` leases (and at a worker's first round) a full sweep reads the
done mark of every account still unfinished here: a done mark whose record entry was
lost (a worker killed between the two writes) is seen within that time, and every
``busy`` mark is forgotten, so no lost update leaves an account unclaimed for longer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from .._redis._watch._members import Membership

__all__ = ["SWEEP_LEASES", "ClaimPlan"]

#: A full sweep at least every this many leases.
SWEEP_LEASES: Final = 4


class ClaimPlan:
    """One worker's order of the accounts to claim, the accounts held elsewhere, and the
    sweeps' times."""

    __slots__ = (
        "_busy",
        "_names",
        "_order",
        "_ranked",
        "_stale",
        "membership",
        "sweep_every",
        "swept_at",
    )

    def __init__(self, me: str, accounts: Sequence[str], lease: float) -> None:
        from .._redis._watch._members import Membership  # here: it loads the redis extra

        self._names = tuple(accounts)
        self.membership: Membership = Membership(me, self._names)
        #: The accounts in the order this worker claims them (``_rank``).
        self._order: list[str] = []
        #: Whether ``_order`` was ranked (once compacted, it may be empty).
        self._ranked = False
        #: Entries of ``_order`` known done or failed since it was last compacted.
        self._stale = 0
        #: Accounts another worker held when last tried: not tried again before (monotonic).
        self._busy: dict[str, float] = {}
        self.sweep_every = SWEEP_LEASES * lease
        #: When the last full sweep was made (monotonic; ``None``: never).
        self.swept_at: float | None = None

    def update(self, live: Iterable[str]) -> None:
        """The live workers of this round: a change ranks the accounts anew and forgets
        the ``busy`` marks (a worker that left released its leases)."""
        before = self.membership.workers
        self.membership.update(live)
        if self.membership.workers != before or not self._ranked:
            self._rank()
            self._busy.clear()

    def _rank(self) -> None:
        membership = self.membership
        mine = [name for name in self._names if membership.mine(name)]
        others = [name for name in self._names if not membership.mine(name)]
        others.sort(key=lambda name: (membership.rank(name), name))
        self._order = mine + others
        self._stale = 0
        self._ranked = True

    def candidates(self, room: int, skip: Callable[[str], bool]) -> list[str]:
        """At most ``room`` accounts to try to claim now, in this worker's order: those
        ``skip`` does not leave out (done, held, failed here) and not ``busy``."""
        if room <= 0:
            return []
        now = time.monotonic()
        found: list[str] = []
        for name in self._order:
            if skip(name) or self._busy.get(name, 0.0) > now:
                continue
            found.append(name)
            if len(found) == room:
                break
        return found

    def busy(self, others: Mapping[str, float]) -> None:
        """Claims refused: each account's lease had ``others[name]`` seconds left."""
        now = time.monotonic()
        for name, left in others.items():
            self._busy[name] = now + left

    def finished(self, names: int, keep: Callable[[str], bool]) -> None:
        """``names`` more accounts are done or failed here: once they are a good part of
        the order, it keeps only the accounts ``keep`` says (the walk stays short)."""
        self._stale += names
        if self._stale * 2 > len(self._order):
            self._order = [name for name in self._order if keep(name)]
            self._stale = 0

    def sweep_due(self) -> bool:
        """Whether this round makes a full sweep (the first, or ``sweep_every`` after the last)."""
        return self.swept_at is None or time.monotonic() - self.swept_at >= self.sweep_every

    def swept(self) -> None:
        """A full sweep was made: the next is due ``sweep_every`` from now; ``busy`` is reset."""
        self.swept_at = time.monotonic()
        self._busy.clear()
