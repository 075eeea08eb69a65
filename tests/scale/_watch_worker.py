"""A watch worker for the multi-process test: holds its share of the accounts through Redis.

    python -m tests.scale._watch_worker '{"redis": ..., "base_url": ..., "accounts": [...]}'

It prints one JSON line per lease event (``{"t": monotonic, "event": ..., "account": ...,
"token": ...}``, ``event`` what happened to the lease: ``claimed``, ``released``, ``lost``
or ``refused``), one per other coordinator event (``{"t": ..., "event": "redis_down"}``:
its name), ``{"event": "ready"}`` once set up, and
a summary line after SIGTERM
(a clean stop). ``"worker_id"`` names the worker (default: ``HOST:PID:RANDOM``).
With ``"pause_at": N`` it stops itself with SIGSTOP right before its N-th write of
new logs (after its own lease check: the worst moment), and once continued sends
that stale write anyway and prints what the fence said.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from typing import Any

import sendcloud_async as sc
from sendcloud_async import events
from sendcloud_async.redis import (
    CoordinatorEvent,
    LeaseLostError,
    RedisState,
    RedisWatchCoordinator,
    RedisWatchStore,
    describe_event,
    logs_watch,
)

#: A lease's events, and what happened to the lease by the class of its event.
LeaseChange = events.LeaseClaimed | events.LeaseReleased | events.LeaseLost | events.LeaseRefused
LEASE_KINDS: dict[type[CoordinatorEvent], str] = {
    events.LeaseClaimed: "claimed",
    events.LeaseReleased: "released",
    events.LeaseLost: "lost",
    events.LeaseRefused: "refused",
}


def emit(event: str, **fields: Any) -> None:
    """One JSON line on stdout, at once."""
    print(json.dumps({"t": time.monotonic(), "event": event, **fields}), flush=True)


class PausingStore(RedisWatchStore):
    """A store whose ``pause_at``-th write of logs is made after a SIGSTOP."""

    pause_at = 0
    writes = 0
    stale: asyncio.Future[int] | None = None

    async def commit(self, *args: Any, **kwargs: Any) -> int:
        if args[2]:
            type(self).writes += 1
            if type(self).writes == self.pause_at:
                emit("pausing", account=args[0][0], token=args[0][1])
                os.kill(os.getpid(), signal.SIGSTOP)
                emit("resumed")
                # Whatever the worker decides now, this write is already on its way.
                stale = asyncio.ensure_future(super().commit(*args, **kwargs))
                stale.add_done_callback(_report_stale)
                type(self).stale = stale
                return await asyncio.shield(stale)
        return await super().commit(*args, **kwargs)


def _report_stale(future: asyncio.Future[int]) -> None:
    exc = None if future.cancelled() else future.exception()
    if isinstance(exc, LeaseLostError):
        emit("stale-write-refused", message=str(exc))
    else:
        emit("stale-write-accepted", result=repr(exc or future.result()))


async def main(config: dict[str, Any]) -> dict[str, Any]:
    """Run the worker until SIGTERM; the summary printed at the end."""
    limits = sc.RateLimits(**config["limits"])
    auths: dict[str, sc.BasicAuth | sc.OAuth2ClientCredentials] = {}
    integrations: dict[str, int] = {}
    for account in config["accounts"]:
        name = account["name"]
        integrations[name] = account["integration"]
        if "basic" in account:
            auths[name] = sc.BasicAuth(*account["basic"])
        else:
            auths[name] = sc.OAuth2ClientCredentials(
                *account["oauth2"], token_url=config["token_url"]
            )
    PausingStore.pause_at = config.get("pause_at") or 0
    async with (
        RedisState.from_url(
            config["redis"], namespace=config["namespace"], retry_interval=0.25
        ) as state,
        sc.AccountPool(base_url=config["base_url"], rate_limit=limits, state=state) as pool,
        PausingStore.from_url(
            config["redis"],
            namespace=config["namespace"],
            stream_prefix=config["prefix"],
            lease=config["lease"],
            worker_id=config.get("worker_id"),
        ) as store,
    ):
        watch = logs_watch(
            lambda name: pool.client(auths[name]),
            integration_id=integrations.__getitem__,
            start="all",
            interval=config["interval"],
        )

        def on_event(event: CoordinatorEvent) -> None:
            if isinstance(event, LeaseChange):
                emit(LEASE_KINDS[type(event)], account=event.account, token=event.token)
            else:
                emit(describe_event(event)[0])

        coordinator = RedisWatchCoordinator(store, list(auths), watch, on_event=on_event)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, coordinator.stop)
        emit("ready", worker=store.worker_id)
        await coordinator.run()
        if PausingStore.stale is not None and not PausingStore.stale.done():
            await asyncio.wait([PausingStore.stale], timeout=5)
        tokens = sum(pool.client(a).token_requests for a in auths.values())
    return {"token_requests": tokens, "refused": coordinator.refused, "claims": coordinator.claims}


if __name__ == "__main__":
    summary = asyncio.run(main(json.loads(sys.argv[1])))
    emit("summary", **summary)
