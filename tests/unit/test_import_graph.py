"""The package's modules import each other without a cycle, ``testing/`` included."""

from __future__ import annotations

import ast
from pathlib import Path

import sendcloud_async

# The package as installed: the source tree, or site-packages under `nox -s wheel`.
PACKAGE = Path(sendcloud_async.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, name: str) -> set[str]:
    """Every sendcloud_async module ``path`` imports, type-only and function-level included."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("sendcloud_async"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("sendcloud_async"):
                continue
            found.add(target)
            for alias in node.names:  # ``from . import webhooks`` names a module
                candidate = f"{target}.{alias.name}"
                if _path_of(candidate) is not None:
                    found.add(candidate)
    return found


def _path_of(module: str) -> Path | None:
    parts = module.split(".")[1:]
    if not parts:
        return PACKAGE / "__init__.py"
    rel = Path(*parts)
    for candidate in (PACKAGE / rel.with_suffix(".py"), PACKAGE / rel / "__init__.py"):
        if candidate.exists():
            return candidate
    return None


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        edges = _imports(path, name)
        # Importing a.b.c runs a and a.b first: the package __init__ is not an edge we
        # count (it re-exports), only the modules themselves.
        graph[name] = {m for m in edges if m != name and _path_of(m) is not None}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == "sendcloud_async":  # the package namespace itself
                continue
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return cycles


def test_the_graph_is_read() -> None:
    """The parser sees the package's real edges (a guard against a vacuous pass)."""
    graph = _graph()
    assert "sendcloud_async._flows" in graph["sendcloud_async._state"]
    assert "sendcloud_async._auth" in graph["sendcloud_async._flows"]
    assert "sendcloud_async.testing._request" in graph["sendcloud_async.testing._faults"]
    assert "sendcloud_async.testing._faults" in graph["sendcloud_async.testing._server"]
    assert len(graph) > 20


def test_no_import_cycle() -> None:
    """No module of sendcloud_async, testing/ included, reaches itself through its imports
    (type-only imports count: a circle there is a circle in the design)."""
    assert _cycles(_graph()) == []


def test_a_cycle_is_found_when_there_is_one() -> None:
    """The cycle finder reports a made-up circle a → b → a."""
    assert _cycles({"a": {"b"}, "b": {"a"}}) == [["a", "b", "a"]]
