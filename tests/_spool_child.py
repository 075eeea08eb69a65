"""A writer that spools parts into a bucket until its stdin closes (the spool tests' child).

``python -m tests._spool_child s3://BUCKET/PREFIX`` spools a part it holds to the end
(``held``, 1 MiB, under ``PREFIX``), prints ``spooling FOLDER`` (its spool folder),
then spools and publishes parts of 256 KiB one after another. When its stdin closes
it publishes the held part, closes the store (which removes its folder) and prints
``published N``. Any storage error (a part file removed under it, say) ends it with a
traceback.
"""

from __future__ import annotations

import asyncio
import sys
import threading

from sendcloud_async._parts._objstore import ObjectStore

HELD = b"held-part " * 104_858  # about 1 MiB
PART = b"p" * 262_144


def _wait_for_stdin(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    sys.stdin.read()
    loop.call_soon_threadsafe(stop.set)


async def main(url: str) -> None:
    scheme, _, rest = url.partition("://")
    bucket, _, prefix = rest.partition("/")  # the store puts keys under the prefix
    store = ObjectStore(scheme, bucket, prefix)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    threading.Thread(target=_wait_for_stdin, args=(loop, stop), daemon=True).start()
    published = 0
    try:
        held = await asyncio.to_thread(store.spool, "held")
        await asyncio.to_thread(held.write_bytes, HELD)
        print(f"spooling {held.parent}", flush=True)
        while not stop.is_set():
            key = f"part-{published:06d}"
            spool = await asyncio.to_thread(store.spool, key)
            await asyncio.to_thread(spool.write_bytes, PART)
            await store.publish(spool, key)
            published += 1
            await asyncio.sleep(0.02)
        await store.publish(held, "held")
    finally:
        await store.aclose()
    print(f"published {published}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
