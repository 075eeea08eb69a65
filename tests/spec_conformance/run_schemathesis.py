"""Schema-driven testing of FakeSendcloud with schemathesis (the ``conformance`` nox session).

Run: ``python tests/spec_conformance/run_schemathesis.py [--max-examples N] [--seed S]``
(schemathesis must be installed; the default test run does not need it).

It starts a seeded ``FakeSendcloud(validate_spec=True)`` on loopback in a
background thread and points the schemathesis CLI at it with the spec as this
project validates it (``patched_spec()``: the official document plus the
patches of ``KNOWN_SPEC_DEVIATIONS``, the one list of the spec's
contradictions). Schemathesis generates valid and invalid requests for every
operation and runs all its checks: no 5xx, documented statuses, content types
and headers, response bodies that match their schema, invalid requests
rejected, valid ones accepted (a 400 is accepted only on the operations a
deviation names as ``lenient``), missing credentials refused. Independently,
the fake's own validator checks every response it gave; any violation fails
the run too. Exit status 0 only if both are clean.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from sendcloud_async.testing import FakeSendcloud
from sendcloud_async.testing._spec import KNOWN_SPEC_DEVIATIONS, patched_spec

PUBLIC_KEY = "fake-public-key"
SECRET_KEY = "fake-secret-key"


class FakeInThread:
    """A FakeSendcloud served by its own event loop in a daemon thread."""

    def __init__(self) -> None:
        self.fake = FakeSendcloud(validate_spec=True, public_key=PUBLIC_KEY, secret_key=SECRET_KEY)
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="fake-sendcloud", daemon=True)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        await self.fake.start()
        # Integrations 1..3 with statuses, mappings and logs: ids the examples can hit.
        self.fake.seed(integrations=3, logs_per_integration=40, seed=1)
        for ident in (251, 252345, 23452345):  # the ids of the spec's examples
            self.fake.add_integration(id=ident)
        self._ready.set()
        await self._stop.wait()
        await self.fake.close()

    def __enter__(self) -> FakeSendcloud:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("FakeSendcloud did not start")
        return self.fake

    def __exit__(self, *exc: object) -> None:
        stop = self._stop
        assert stop is not None
        self._loop.call_soon_threadsafe(stop.set)
        self._thread.join(30)


def schemathesis_config() -> str:
    """A schemathesis.toml: 400 is an accepted answer to valid data on lenient operations."""
    lines = []
    for deviation in KNOWN_SPEC_DEVIATIONS:
        for operation in deviation.lenient:
            method, path = operation.split(" ", 1)
            lines += [
                f"# {deviation.name}",
                "[[operations]]",
                f'include-method = "{method}"',
                f'include-path = "{path}"',
                "[operations.checks.positive_data_acceptance]",
                'expected-statuses = ["2xx", "400", "401", "403", "404", "409", "429"]',
                "",
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run schemathesis against a fresh fake; 0 if schemathesis and the validator are clean."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--max-examples", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-time", type=int, default=60)
    args, extra = parser.parse_known_args(argv)
    cli = Path(sys.executable).with_name("schemathesis")
    if not cli.exists():
        print(f"schemathesis is not installed next to {sys.executable}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        spec_file = Path(tmp) / "sendcloud-v3-integrations-openapi.json"
        spec_file.write_text(json.dumps(patched_spec()), encoding="utf-8")
        config_file = Path(tmp) / "schemathesis.toml"
        config_file.write_text(schemathesis_config(), encoding="utf-8")
        with FakeInThread() as fake:
            command = [
                str(cli),
                "--config-file",
                str(config_file),
                "run",
                str(spec_file),
                "--url",
                fake.base_url,
                "--auth",
                f"{PUBLIC_KEY}:{SECRET_KEY}",
                "--checks",
                "all",
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                str(args.max_examples),
                "--max-time",
                str(args.max_time),
                "--seed",
                str(args.seed),
                "--workers",
                "1",
                "--request-timeout",
                "10",
                *extra,
            ]
            result = subprocess.run(command, check=False, cwd=tmp)
            requests = len(fake.requests)
        violations = list(fake.spec_violations)
        off_spec = len(fake.spec.off_spec_requests)
    print(
        f"\nFakeSendcloud answered {requests} requests "
        f"({off_spec} of them off-spec on purpose, schemathesis's negative cases); "
        f"{len(violations)} of its responses broke the spec."
    )
    for violation in violations[:50]:
        print(f"  - {violation}")
    if result.returncode != 0:
        print(f"schemathesis failed (exit status {result.returncode})")
    return 1 if violations or result.returncode != 0 else 0


if __name__ == "__main__":
    sys.exit(main())
