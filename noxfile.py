"""Developer tasks: ``nox`` runs tests, lint and typing; ``nox -s bench`` runs the benchmarks."""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True

LINT_DEPS = ["ruff==0.17.6"]  # pinned: formatting (README code blocks too) must not drift
# The benchmarks are type-checked too; their contenders import httpx and pydantic.
TYPING_DEPS = ["mypy==2.4.1", "types-PyYAML", "nox", "httpx>=0.28", "pydantic>=2.7"]


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
    """Bulk-export and many-accounts benchmarks (benchmarks/README.md); CI: -- --smoke."""
    session.install(".[redis]", "-r", "benchmarks/requirements.txt")
    smoke = "--smoke" in session.posargs
    session.run(
        "python",
        "-m",
        "benchmarks.run",
        *(session.posargs or ["--json", "benchmarks/_results/bench.json"]),
    )
    session.run(
        "python",
        "-m",
        "benchmarks.accounts",
        *(["--smoke"] if smoke else ["--json", "benchmarks/_results/accounts.json"]),
    )


@nox.session
def conformance(session: nox.Session) -> None:
    """Schemathesis drives FakeSendcloud with every operation of the spec (about a minute)."""
    session.install("-e", ".", "-r", "requirements-test.txt", "schemathesis>=4.0")
    session.run("python", "tests/spec_conformance/run_schemathesis.py", *session.posargs)
