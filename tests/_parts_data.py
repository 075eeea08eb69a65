"""Logs and an export loop for the parts tests (and the child process they kill).

``python -m tests._parts_data OUT
LOGS FORMAT`` runs ``export`` (resuming from the manifest), then prints ``done``.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache

import msgspec

from sendcloud_async._models import IntegrationLog
from sendcloud_async._parts import PartsSink
from sendcloud_async.testing import FailurePatterns

PAGE = 50


@cache
def make_logs(count: int, seed: int = 7) -> tuple[IntegrationLog, ...]:
    """``count`` logs over three days, oldest first, ids 1..count (deterministic)."""
    patterns = FailurePatterns(datetime(2026, 11, 1, tzinfo=UTC), days=3, seed=seed)
    per_day = -(-count // 6)
    patterns.steady(1, per_day=per_day).steady(2, per_day=per_day, kind="timeout")
    records = patterns.records()[:count]
    return tuple(msgspec.convert(records, list[IntegrationLog]))


def by_place(files: Mapping[str, bytes]) -> dict[str, bytes]:
    """``files`` (a part's key: its bytes) keyed by where each part stands (its folders and
    sequence number), without its name's digest: that holds its writer's token, so two
    runs name the same part apart."""
    placed = {
        re.sub(r"/part-(\d{6})-[0-9a-f]{16}\.", r"/part-\1.", key): data
        for key, data in files.items()
    }
    assert len(placed) == len(files), sorted(files)  # two parts in one place
    return placed


async def export(
    out: str,
    logs: tuple[IntegrationLog, ...],
    *,
    format: str = "parquet",
    compression: str | None = None,
    part_records: int = 300,
    account: str = "shop-a",
    account_column: bool = False,
) -> PartsSink:
    """Export ``logs`` page by page into ``out``, resuming from its manifest."""
    async with PartsSink(
        out,
        account=account,
        format=format,
        compression=compression,
        part_records=part_records,
        row_group_records=128,
        account_column=account_column,
    ) as sink:
        state = await sink.load()
        start = 0 if state is None else state["next"]
        for begin in range(start, len(logs), PAGE):
            end = min(begin + PAGE, len(logs))
            await sink.commit(logs[begin:end], {"next": end})
    return sink


if __name__ == "__main__":
    out, count, fmt = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    asyncio.run(export(out, make_logs(count), format=fmt))
    print("done", flush=True)
