"""The engine every multi-account and multi-walk job runs on: items due at times, run
at most ``concurrency`` at once, a failing one backed off while the others go on.

A job is a composition: a *source* (a walk of a listing, ``client.logs.watch``,
``LogWatcher.poll``, a held account's Redis watch) run by a ``Runner`` (``run_due``
for a fixed set of items) for each of its items (accounts or walks),
committing into a *sink* (``sendcloud_async._sinks``). ``Backoff`` is the one
decision on a failure: wait (and how long), or stop the run.

The modules: ``_backoff`` (``Backoff``), ``_events`` (``Failed``, ``Recovered``),
``_runner`` (``Runner``, ``run_due``). docs/architecture.md draws where each job sits.
"""

from ._backoff import Backoff
from ._events import Failed, Recovered, RunEvent
from ._runner import Runner, run_due

__all__ = ["Backoff", "Failed", "Recovered", "RunEvent", "Runner", "run_due"]
