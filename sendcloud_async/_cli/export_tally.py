"""What one worker of a many-worker export (``logs export --redis``) says: the live
line while it works, and the table of the accounts it exported with the run's summary
once every account is done."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .common import EXIT_FAILURE, EXIT_OK
from .context import Context
from .many_accounts import AccountRow, show_results

if TYPE_CHECKING:
    from .._export import ExportStats, LogExport

__all__ = ["Row", "Tally"]


@dataclass(slots=True)
class Row:
    """What this worker did with an account: a row of its table."""

    status: str
    records: int | None
    run_records: int
    path: str
    note: str = ""


class Tally:
    """The records this worker exported, account by account, and what it says of them."""

    def __init__(self, ctx: Context, *, accounts: int, run: str, worker: str) -> None:
        self.ctx = ctx
        self.accounts = accounts
        self.run_name = run
        self.worker = worker
        self.rows: dict[str, Row] = {}
        #: The last progress of each export in progress here.
        self.latest: dict[str, ExportStats] = {}
        self.started = time.monotonic()

    def progress(self, name: str, stats: ExportStats) -> None:
        """The latest progress of ``name``'s export here."""
        self.latest[name] = stats

    def run_records(self) -> int:
        """The records this worker exported so far, exports in progress included."""
        total = sum(row.run_records for row in self.rows.values())
        return total + sum(stats.run_records for stats in self.latest.values())

    def show(self, *, done: int, held: int, failed: int, force: bool = False) -> None:
        """The live line: the records and pages of this run, and the accounts ``done`` (by
        every worker), ``held`` and ``failed`` here."""
        stats = self.latest.values()
        elapsed = time.monotonic() - self.started
        run_records = sum(s.run_records for s in stats)
        rate = run_records / elapsed if elapsed > 0 else 0.0
        extra = f" · accounts {done}/{self.accounts} done, {held} here" + (
            f", {failed} failed here" if failed else ""
        )
        fields = {
            "accounts": self.accounts,
            "accounts_done": done,
            "accounts_held": held,
            "accounts_failed": failed,
        }
        self.ctx.progress.update(
            run_records,
            sum(s.run_pages for s in stats),
            rate,
            elapsed,
            extra=extra,
            fields=fields,
            force=force,
        )

    def row(
        self,
        name: str,
        stats: ExportStats | None,
        job: LogExport | None,
        *,
        status: str | None = None,
        note: str = "",
    ) -> None:
        """Say what this worker did with ``name``: ``stats`` of a finished export, else the
        last progress reported and the records the checkpoint now holds (an export
        stopped, say, by a lost lease after one more write)."""
        before = self.rows.get(name)
        latest = self.latest.pop(name, None) if stats is None else stats
        records = None if latest is None else latest.records
        run_records = 0 if latest is None else latest.run_records
        if stats is None and latest is not None and job is not None:
            records = job.saved_records
            run_records += records - latest.records
        if before is not None:
            run_records += before.run_records
        if status is None:
            status = "ok" if stats is not None else "complete"
            if stats is not None and stats.resumed and stats.records != stats.run_records:
                note = f"continued: +{stats.run_records:,} of {stats.records:,}"
            elif stats is None:
                note = "already complete (checkpoint)"
        path = "-" if job is None else job.destination
        self.rows[name] = Row(status, records, run_records, path, note)

    def report(self, *, done: int, failed: Collection[str]) -> int:
        """The table and the summary; exit 1 when accounts of ``failed`` (failed here and
        not done since) are left, else 0. ``done``: the accounts done by every worker."""
        ctx = self.ctx
        ctx.progress.finish()
        show_results(
            ctx,
            [
                AccountRow(name, row.status, row.records, row.path, row.note, row.run_records)
                for name, row in sorted(self.rows.items())
            ],
        )
        left = sorted(failed)
        total = sum(row.run_records for row in self.rows.values())
        exported = sum(1 for row in self.rows.values() if row.run_records)
        elapsed = time.monotonic() - self.started
        ctx.result(
            f"this worker exported {total:,} records of {exported} accounts in {elapsed:.2f} s; "
            f"{done} of {self.accounts} accounts of run {self.run_name} are done"
            + (f"; {', '.join(left)} failed here" if left else ""),
            event="summary",
            run_records=total,
            accounts=self.accounts,
            accounts_done=done,
            accounts_failed=left,
            run=self.run_name,
            worker=self.worker,
            elapsed=round(elapsed, 3),
        )
        return EXIT_FAILURE if left else EXIT_OK
