"""Which live worker prefers which account: rendezvous (highest-random-weight) hashing.

Every worker computes the same thing from the same inputs -- the account names and
the live workers of the heartbeat set -- without asking anyone: an account's
*owner* is the live worker of the highest ``weight(account, worker)``. A worker
that joins thus becomes the owner of about ``1 / workers`` of the accounts, taken
from the others, and nothing else moves; a worker that leaves hands over only its
own accounts, each to its next-highest worker. Ownership is a preference only:
the lease and its fencing token stay the authority over who writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Iterable, Sequence


def weight(account: str, worker: str) -> int:
    """The weight of ``worker`` for ``account``: a 64-bit hash, the same in every process."""
    digest = hashlib.blake2b(f"{account}\n{worker}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def ranking(account: str, workers: Iterable[str]) -> list[str]:
    """``workers`` from the owner of ``account`` down (ties, never met in practice, by id)."""
    return sorted(workers, key=lambda worker: (weight(account, worker), worker), reverse=True)


def owners(accounts: Iterable[str], workers: Collection[str]) -> dict[str, str]:
    """The owner of each account among ``workers`` (none: an empty mapping)."""
    if not workers:
        return {}
    return {account: ranking(account, workers)[0] for account in accounts}


class Membership:
    """One worker's view of the live workers, and of which accounts are whose."""

    __slots__ = ("_accounts", "_owners", "me", "workers")

    def __init__(self, me: str, accounts: Sequence[str]) -> None:
        self.me = me
        self._accounts = tuple(accounts)
        self.workers: frozenset[str] = frozenset()
        self._owners: dict[str, str] = {}

    def update(self, live: Iterable[str]) -> set[str]:
        """Take ``live`` (this worker is counted in any case) as the live workers.

        Returns the accounts whose owner changed.
        """
        workers = frozenset([*live, self.me])
        if workers == self.workers:
            return set()
        before, self.workers = self._owners, workers
        self._owners = owners(self._accounts, workers)
        return {a for a, owner in self._owners.items() if before.get(a) != owner}

    def mine(self, account: str) -> bool:
        """Whether this worker is the owner of ``account``."""
        return self._owners.get(account, self.me) == self.me

    def rank(self, account: str) -> int:
        """This worker's place in ``account``'s ranking (0: it is the owner)."""
        return ranking(account, self.workers or [self.me]).index(self.me)

    def share(self) -> int:
        """How many accounts this worker owns."""
        if not self._owners:  # no heartbeat yet: alone as far as it knows
            return len(self._accounts)
        return sum(1 for owner in self._owners.values() if owner == self.me)
