"""A worker process for the multi-process test: polls every account through a shared Redis.

    python -m tests.scale._worker '{"base_url": ..., "token_url": ..., "redis": ..., ...}'

It prints ``ready`` once set up, waits for a line on stdin (so that all workers
start together), makes its calls, and prints one JSON line with what it saw.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import sendcloud_async as sc
from sendcloud_async.redis import RedisState


async def main(config: dict[str, Any]) -> dict[str, Any]:
    """Run the worker; the summary printed at the end."""
    limits = sc.RateLimits(**config["limits"])
    accounts: int = config["accounts"]
    gets: int = config["gets"]
    patches: int = config["patches"]
    async with (
        RedisState.from_url(config["redis"], namespace=config["namespace"]) as state,
        sc.AccountPool(base_url=config["base_url"], rate_limit=limits, state=state) as pool,
    ):
        auths = [
            sc.OAuth2ClientCredentials(f"client-{n}", f"secret-{n}", token_url=config["token_url"])
            for n in range(accounts)
        ]
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

        async def account(auth: sc.OAuth2ClientCredentials) -> None:
            client = pool.client(auth)
            await asyncio.gather(
                *(client.integrations.get(1) for _ in range(gets)),
                *(client.integrations.update(1, shop_name="worker") for _ in range(patches)),
            )

        results = await asyncio.gather(*(account(a) for a in auths), return_exceptions=True)
        token_requests = sum(pool.client(a).token_requests for a in auths)
    return {
        "errors": [repr(r) for r in results if isinstance(r, BaseException)],
        "token_requests": token_requests,
    }


if __name__ == "__main__":
    summary = asyncio.run(main(json.loads(sys.argv[1])))
    print(json.dumps(summary), flush=True)
