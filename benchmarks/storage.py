"""Object storage for the parts export: obstore against fsspec + s3fs, on a moto server.

    python -m benchmarks.storage                  # 8 parts of 8 MiB, 200 manifests, 3 rounds
    python -m benchmarks.storage --smoke          # 2 parts, 20 manifests, 1 round (seconds)
    python -m benchmarks.storage --parts 16 --rounds 5 --json benchmarks/_results/storage.json

A moto S3 server runs on 127.0.0.1 (``tests/_s3server.py``); each contender runs in
a fresh process of its own, which measures:

* ``import``: wall time to import the library (and make a client for the bucket);
* ``put parts``: ``--parts`` PUTs of 8 MiB of incompressible bytes, one after the
  other (as the sink uploads parts; each library's own choice of single or
  multipart upload for that size);
* ``put manifests``: ``--manifests`` PUTs of a 2 KiB JSON object (the manifest the
  sink replaces after each part);
* ``list``: listing the prefix, ``--manifests`` + ``--parts`` objects, 10 times;
* ``get parts``: reading every part back.

Each phase gives its wall time and the process's CPU time (user + system), so the
client's own cost shows apart from the server's (moto, in Python, dominates the wall
time of large transfers). Figures are medians over ``--rounds`` rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from ._process import ROOT, _env

__all__ = ["main"]

CONTENDERS = ("obstore", "s3fs")
PART = 8 * 1024 * 1024
MANIFEST = 2048


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _phase(results: dict[str, Any], name: str, run: Callable[[], Awaitable[None]]) -> None:
    wall, cpu = time.perf_counter(), _cpu()
    await run()
    results[name] = {"wall_s": time.perf_counter() - wall, "cpu_s": _cpu() - cpu}


async def _obstore(bucket: str, prefix: str, parts: int, manifests: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    wall, cpu = time.perf_counter(), _cpu()
    import obstore
    from obstore.store import S3Store

    store = S3Store(bucket, client_options={"allow_http": True})
    results["import"] = {"wall_s": time.perf_counter() - wall, "cpu_s": _cpu() - cpu}
    data = os.urandom(PART)
    small = b"{" + b" " * (MANIFEST - 2) + b"}"

    async def put_parts() -> None:
        for i in range(parts):
            await obstore.put_async(store, f"{prefix}/part-{i:04d}.bin", data)

    async def put_manifests() -> None:
        for i in range(manifests):
            await obstore.put_async(store, f"{prefix}/m/manifest-{i:04d}.json", small)

    async def listing() -> None:
        for _ in range(10):
            found = await obstore.list(store, prefix).collect_async()
            assert len(found) == parts + manifests, len(found)

    async def get_parts() -> None:
        for i in range(parts):
            got = await obstore.get_async(store, f"{prefix}/part-{i:04d}.bin")
            assert len(await got.bytes_async()) == PART

    await _phase(results, "put parts", put_parts)
    await _phase(results, "put manifests", put_manifests)
    await _phase(results, "list", listing)
    await _phase(results, "get parts", get_parts)
    return results


async def _s3fs(bucket: str, prefix: str, parts: int, manifests: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    wall, cpu = time.perf_counter(), _cpu()
    import s3fs

    fs = s3fs.S3FileSystem(asynchronous=True)
    session = await fs.set_session()
    results["import"] = {"wall_s": time.perf_counter() - wall, "cpu_s": _cpu() - cpu}
    data = os.urandom(PART)
    small = b"{" + b" " * (MANIFEST - 2) + b"}"
    root = f"{bucket}/{prefix}"

    async def put_parts() -> None:
        for i in range(parts):
            await fs._pipe_file(f"{root}/part-{i:04d}.bin", data)

    async def put_manifests() -> None:
        for i in range(manifests):
            await fs._pipe_file(f"{root}/m/manifest-{i:04d}.json", small)

    async def listing() -> None:
        for _ in range(10):
            fs.invalidate_cache()
            found = await fs._find(root)
            assert len(found) == parts + manifests, len(found)

    async def get_parts() -> None:
        for i in range(parts):
            assert len(await fs._cat_file(f"{root}/part-{i:04d}.bin")) == PART

    await _phase(results, "put parts", put_parts)
    await _phase(results, "put manifests", put_manifests)
    await _phase(results, "list", listing)
    await _phase(results, "get parts", get_parts)
    await session.close()
    return results


def _child(contender: str, bucket: str, prefix: str, parts: int, manifests: int) -> None:
    run = _obstore if contender == "obstore" else _s3fs
    results = asyncio.run(run(bucket, prefix, parts, manifests))
    results["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(results))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in ("obstore", "s3fs", "aiobotocore", "fsspec", "moto"):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "missing"
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", type=int, default=8)
    parser.add_argument("--manifests", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--child", nargs=3, metavar=("CONTENDER", "BUCKET", "PREFIX"))
    args = parser.parse_args(argv)
    if args.smoke:
        args.parts, args.manifests, args.rounds = 2, 20, 1
    if args.child:
        contender, bucket, prefix = args.child
        _child(contender, bucket, prefix, args.parts, args.manifests)
        return 0

    sys.path.insert(0, str(ROOT))
    from tests._s3server import running_s3_server

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CONTENDERS}
    with running_s3_server() as server:
        server.create_bucket("bench")
        env = {**_env(), **server.env}
        for round_ in range(args.rounds):
            order = CONTENDERS if round_ % 2 == 0 else CONTENDERS[::-1]
            for name in order:
                print(f"round {round_ + 1}: {name}", file=sys.stderr)
                child = subprocess.run(
                    [sys.executable, "-m", "benchmarks.storage", "--child", name, "bench",
                     f"{name}-{round_}", "--parts", str(args.parts),
                     "--manifests", str(args.manifests)],
                    env=env, cwd=ROOT, capture_output=True, text=True, check=True,
                )  # fmt: skip
                runs[name].append(json.loads(child.stdout))
    phases = ("import", "put parts", "put manifests", "list", "get parts")
    print(
        f"{args.parts} parts of {PART >> 20} MiB, {args.manifests} manifests of "
        f"{MANIFEST} B, {args.rounds} round(s), medians\n"
    )
    print(
        "| contender | " + " | ".join(f"{p} wall s / CPU s" for p in phases) + " | peak RSS MiB |"
    )
    print("|---|" + "---:|" * (len(phases) + 1))
    for name, results in runs.items():
        cells = []
        for phase in phases:
            wall = statistics.median(r[phase]["wall_s"] for r in results)
            cpu = statistics.median(r[phase]["cpu_s"] for r in results)
            cells.append(f"{wall:.3f} / {cpu:.3f}")
        rss = statistics.median(r["peak_rss_mib"] for r in results)
        print(f"| {name} | " + " | ".join(cells) + f" | {rss:.0f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"runs": runs, "versions": _versions(), "python": platform.python_version()},
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
