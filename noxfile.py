"""Developer tasks: ``nox`` runs tests, lint and typing; ``nox -s docs`` builds the docs site.

``nox -s wheel`` builds the wheel and the sdist, installs the wheel into a fresh venv
and runs the sdist's test suite against the installed package, on every Python the
package supports that this machine has (3.11, 3.12, 3.13); ``nox -s bench`` runs the
benchmarks.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tarfile
from pathlib import Path

import nox

nox.options.sessions = ["tests", "lint", "typing"]
nox.options.reuse_existing_virtualenvs = True
# The version matrix runs where the interpreters exist and is skipped (with a message)
# where they do not; nox would otherwise make a missing one an error on CI.
nox.options.error_on_missing_interpreters = False

ROOT = Path(__file__).resolve().parent
PYTHONS = ["3.11", "3.12", "3.13"]  # keep in step with the classifiers in pyproject.toml
LINT_DEPS = ["ruff==0.17.6"]  # pinned: formatting (README code blocks too) must not drift
# The benchmarks are type-checked too; their contenders import httpx and pydantic.
TYPING_DEPS = ["mypy==2.4.1", "types-PyYAML", "nox", "httpx>=0.28", "pydantic>=2.7"]


def _pyenv_interpreters() -> None:
    """Let pyenv's shims answer ``python3.12`` and ``python3.13`` when pyenv has them.

    A pyenv shim exists for every version pyenv installed but runs only the versions
    selected in ``PYENV_VERSION`` (which pyenv sets to the running one). The selected
    versions stay first, so ``python3`` is unchanged; the newest installed release
    of each missing minor version is added after them.
    """
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    if not root.is_dir():
        return
    current = ".".join(map(str, sys.version_info[:3]))
    selected = [v for v in os.environ.get("PYENV_VERSION", current).split(":") if v]
    for minor in PYTHONS:
        if any(v == minor or v.startswith(minor + ".") for v in selected):
            continue
        found = [
            p.name
            for p in root.glob(f"{minor}.*")
            if re.fullmatch(r"\d+\.\d+\.\d+", p.name) and (p / "bin" / f"python{minor}").exists()
        ]
        if found:
            selected.append(max(found, key=lambda name: [int(x) for x in name.split(".")]))
    os.environ["PYENV_VERSION"] = ":".join(selected)


_pyenv_interpreters()


@nox.session
def tests(session: nox.Session) -> None:
    """Run the whole test suite against a real FakeSendcloud on 127.0.0.1."""
    session.install("-e", ".", "-r", "requirements-test.txt")
    # Four workers (pytest-xdist): most tests wait on sockets, processes and timers, not
    # on the CPU, so four share two cores well (SENDCLOUD_TEST_WORKERS=0: one process).
    # Tests marked ``alone`` bound wall-clock gaps; under four workers' load their
    # bounds measure the neighbours, so they run afterwards, one at a time.
    workers = os.environ.get("SENDCLOUD_TEST_WORKERS", "4")
    if workers == "0":
        session.run("pytest", *session.posargs)
        return
    session.run("pytest", "-n", workers, "-m", "not alone", *session.posargs)
    # Exit status 5: the selection holds no such test (e.g. one file was asked for).
    session.run("pytest", "-m", "alone", *session.posargs, success_codes=[0, 5])


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
def docs(session: nox.Session) -> None:
    """Build the docs site with mkdocs --strict (broken links and references fail)."""
    session.install("-r", "requirements-docs.txt")  # the reference is read from the source
    site = Path(session.create_tmp()) / "site"
    session.run("mkdocs", "build", "--strict", "--site-dir", str(site), *session.posargs)
    session.log(f"site built in {site}")


@nox.session(python=PYTHONS, reuse_venv=False)
def wheel(session: nox.Session) -> None:
    """Test the built wheel, installed in a fresh venv, with the sdist's own test suite.

    The tests run from the unpacked sdist with its ``sendcloud_async/`` removed, so
    every ``import sendcloud_async`` (and the pytest plugin) comes from site-packages.
    """
    tmp = Path(session.create_tmp())
    dist = tmp / "dist"
    shutil.rmtree(dist, ignore_errors=True)
    session.install("build")
    session.run("python", "-m", "build", "--outdir", str(dist), str(ROOT))
    (wheel_file,) = dist.glob("*.whl")
    (sdist_file,) = dist.glob("*.tar.gz")

    tree = tmp / "sdist"
    shutil.rmtree(tree, ignore_errors=True)
    with tarfile.open(sdist_file) as archive:
        archive.extractall(tree, filter="data")
    (source,) = tree.iterdir()
    shutil.rmtree(source / "sendcloud_async")

    session.install(f"{wheel_file}[redis,testing]", "-r", str(source / "requirements-test.txt"))
    with session.chdir(source):
        installed = session.run(
            "python",
            "-c",
            "import sendcloud_async, importlib.metadata as m; "
            "print(sendcloud_async.__file__, m.version('sendcloud-async'))",
            silent=True,
        )
        if installed is None or "site-packages" not in installed:
            session.error(f"sendcloud_async does not come from site-packages: {installed}")
        session.log(f"testing the installed package: {installed.strip()}")
        session.run("pytest", "-p", "no:cacheprovider", *session.posargs)


def _newest_python() -> str:
    """The newest of ``PYTHONS`` this machine has (pyenv's included); else the running one."""
    for minor in reversed(PYTHONS):
        if shutil.which(f"python{minor}"):
            return minor
    return f"{sys.version_info.major}.{sys.version_info.minor}"


@nox.session(name="wheel-newest", python=_newest_python(), reuse_venv=False)
def wheel_newest(session: nox.Session) -> None:
    """``wheel`` once, on the newest supported Python this machine has (what CI runs)."""
    wheel(session)


@nox.session
def bench(session: nox.Session) -> None:
    """Bulk-export, many-accounts and report benchmarks (benchmarks/README.md); CI: -- --smoke."""
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
    session.run(
        "python",
        "-m",
        "benchmarks.report",
        *(["--smoke"] if smoke else ["--json", "benchmarks/_results/report.json"]),
    )


@nox.session
def conformance(session: nox.Session) -> None:
    """Schemathesis drives FakeSendcloud with every operation of the spec (about a minute)."""
    session.install("-e", ".", "-r", "requirements-test.txt", "schemathesis>=4.0")
    session.run("python", "tests/spec_conformance/run_schemathesis.py", *session.posargs)
