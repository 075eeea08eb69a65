"""A real S3-compatible server on 127.0.0.1: moto in server mode, in a process of its own.

``S3Server`` starts ``python -m moto.server -p PORT -H 127.0.0.1`` on a free port,
waits until it answers, and gives the environment a client reads its endpoint and
credentials from (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...). Buckets are
made with a plain HTTP ``PUT /BUCKET`` (moto accepts any credentials), so nothing
but the standard library is needed here. Used by the parts tests and by
``benchmarks/storage.py``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

__all__ = ["S3Server", "running_s3_server"]

#: Credentials moto accepts (it accepts any); distinctive, so a leak into an error is found.
ACCESS_KEY = "AKIATESTPARTSKEY0001"
SECRET_KEY = "parts-secret-Zq8uWv3rT0p"
REGION = "us-east-1"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class S3Server:
    """A moto server process; ``env`` points a client at it."""

    def __init__(self, process: subprocess.Popen[bytes], port: int) -> None:
        self.process = process
        self.port = port
        self.endpoint = f"http://127.0.0.1:{port}"

    @property
    def env(self) -> dict[str, str]:
        """What a client's environment needs to reach this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ALLOW_HTTP": "true",
        }

    def _request(self, method: str, path: str) -> int:
        request = urllib.request.Request(f"{self.endpoint}{path}", method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status: int = response.status
                return status
        except urllib.error.HTTPError as exc:
            return exc.code

    def create_bucket(self, name: str) -> None:
        status = self._request("PUT", f"/{name}")
        if status != 200:
            raise RuntimeError(f"cannot create bucket {name}: HTTP {status}")

    def reset(self) -> None:
        """Forget every bucket and object (moto's reset endpoint)."""
        self._request("POST", "/moto-api/reset")


@contextlib.contextmanager
def running_s3_server(startup: float = 60.0) -> Iterator[S3Server]:
    """Start a moto server, yield it once it answers, stop it on the way out."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
    )
    server = S3Server(process, port)
    try:
        deadline = time.monotonic() + startup
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"moto server exited with status {process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
