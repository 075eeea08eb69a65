"""What ``run_due`` reports about its items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

__all__ = ["Failed", "Recovered", "RunEvent"]

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Failed(Generic[K]):
    """A run of ``item`` raised ``error``: its ``failures``-th in a row; next in ``retry_in`` s.

    Under ``once`` the item is not run again; ``retry_in`` says when it would be.
    """

    item: K
    error: Exception
    failures: int
    retry_in: float


@dataclass(frozen=True, slots=True)
class Recovered(Generic[K]):
    """A run of ``item`` succeeded after ``failures`` failed runs in a row."""

    item: K
    failures: int


RunEvent: TypeAlias = Failed[K] | Recovered[K]
