"""A webhook receiver process for the shared-ledger test: aiohttp + a RedisEventLedger.

    python -m tests.scale._webhook_receiver '{"redis": ..., "namespace": ..., "secret": ...}'

It prints ``ready PORT`` once listening, serves until a line arrives on stdin, then
prints one JSON line with its ledger's counts. Its handler applies a parcel event
(``HSET NS:test:state PARCEL TIME``, last write wins), appends ``PARCEL:TIME`` to
``NS:test:handled``, and fails the first call of every event whose time in seconds
is a multiple of ``fail_every`` (remembered in Redis, so a retry landing on another
process succeeds).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from typing import Any

from aiohttp import web

from sendcloud_async import webhooks
from sendcloud_async.redis import RedisEventLedger, RedisState


async def main(config: dict[str, Any]) -> dict[str, int]:
    """Serve until told to stop; the ledger's counts."""
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # the planned failures
    ns: str = config["namespace"]
    fail_every: int = config["fail_every"]
    async with RedisState.from_url(config["redis"], namespace=ns) as state:
        ledger = RedisEventLedger(state)
        redis = state.client

        async def on_event(event: webhooks.WebhookEvent) -> None:
            """Apply the event; fail once for the chosen ones."""
            assert isinstance(event, webhooks.ParcelStatusChanged)
            assert event.parcel is not None
            when = int(event.timestamp_raw)
            key = f"{event.parcel.id}:{when}"
            if when // 1000 % fail_every == 0 and await redis.set(
                f"{ns}:test:failed:{key}", 1, nx=True
            ):
                raise RuntimeError("the database is briefly down")
            await asyncio.sleep(0.002)  # work that takes a while: overlaps without claims
            await redis.hset(f"{ns}:test:state", str(event.parcel.id), str(when))
            await redis.rpush(f"{ns}:test:handled", key)

        app = web.Application()
        app.router.add_post(
            "/hooks", webhooks.aiohttp_handler(config["secret"], on_event, ledger=ledger)
        )
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        print(f"ready {runner.addresses[0][1]}", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        await runner.cleanup()
    return dict(ledger.counts)


if __name__ == "__main__":
    counts = asyncio.run(main(json.loads(sys.argv[1])))
    print(json.dumps(counts), flush=True)
