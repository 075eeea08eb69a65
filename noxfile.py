"""Developer tasks: ``nox`` runs tests, lint and typing; ``nox -s bench`` runs the benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

LINT_DEPS = ["ruff>=0.6"]
# The benchmarks are type-checked too; their contenders import httpx and pydantic.
TYPING_DEPS = ["mypy>=1.11", "types-PyYAML", "nox", "httpx>=0.28", "pydantic>=2.7"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite against a real FakeSendcloud on 127.0.0.1."""
    session.install("-e", ".", "-r", "requirements-test.txt")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install(*LINT_DEPS)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typing(session: nox.Session) -> None:
    """mypy --strict over the package, the tests and the benchmarks."""
    session.install("-e", ".", "-r", "requirements-test.txt", *TYPING_DEPS)
    session.run("mypy", "--strict")


@nox.session
def bench(session: nox.Session) -> None:
    """Bulk-export benchmarks, side by side (benchmarks/README.md); CI: nox -s bench -- --smoke."""
    session.install(".", "-r", "benchmarks/requirements.txt")
    session.run(
        "python",
        "-m",
        "benchmarks.run",
        *(session.posargs or ["--json", "benchmarks/_results/bench.json"]),
    )
