"""What ``run_due`` reports about its items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

__all__ = ["Failed", "Recovered", "RunEvent"]

K = TypeVar("K")


@dataclass(frozen=True, slots=True)
class Failed(Generic[K]):
    """A run of ``item`` raised ``error``: its ``failures``-th in a row; next in ``retry_in`` s.

    ``retrying``: whether the item runs again. Under ``once`` it does not
    (``retrying=False``), and ``retry_in`` only says when it would.
    """

    item: K
    error: Exception
    failures: int
    retry_in: float
    retrying: bool = True


@dataclass(frozen=True, slots=True)
class Recovered(Generic[K]):
    """A run of ``item`` succeeded after ``failures`` failed runs in a row."""

    item: K
    failures: int


RunEvent: TypeAlias = Failed[K] | Recovered[K]
