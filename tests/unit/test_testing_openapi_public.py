"""sendcloud_async.testing uses openapi-core (and the libraries it validates with) only
through their public names: no underscore module, name, hook, attribute or keyword.

A subclass that overrides a private hook (``_get_parameter``, ``_validate_schema``)
breaks on any release of openapi-core that renames it, silently where the override
only speeds things up. The check reads the source (``ast``), so it also sees imports
made inside functions, where openapi-core is imported lazily.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sendcloud_async.testing

TESTING = Path(sendcloud_async.testing.__file__).resolve().parent
#: openapi-core and the libraries it validates with, whose objects the fake handles.
OPENAPI_PACKAGES = ("openapi_core", "openapi_schema_validator", "jsonschema", "jsonschema_path")


def _private(name: str) -> bool:
    """``_x`` and ``__x`` are private; ``__x__`` (a protocol method) is not."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _root(node: ast.expr) -> ast.expr:
    while isinstance(node, ast.Attribute | ast.Call | ast.Subscript):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node


def offences(source: str) -> list[str]:
    """Every use of a private part of ``OPENAPI_PACKAGES`` in ``source``, one line each."""
    tree = ast.parse(source)
    foreign: set[str] = set()
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in (
            OPENAPI_PACKAGES
        ):
            module = node.module or ""
            if any(_private(part) for part in module.split(".")):
                found.append(f"line {node.lineno}: imports private module {module}")
            for alias in node.names:
                if _private(alias.name):
                    found.append(f"line {node.lineno}: imports {module}.{alias.name}")
                foreign.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in OPENAPI_PACKAGES:
                    if any(_private(part) for part in alias.name.split(".")):
                        found.append(f"line {node.lineno}: imports private module {alias.name}")
                    foreign.add((alias.asname or alias.name).split(".")[0])

    def is_foreign(node: ast.expr) -> bool:
        root = _root(node)
        return isinstance(root, ast.Name) and root.id in foreign

    def is_super(node: ast.expr) -> bool:
        return (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "super"
        )

    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and any(is_foreign(base) for base in node.bases):
            for item in node.body:
                names = (
                    [item.name] if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) else []
                )
                if isinstance(item, ast.Assign | ast.AnnAssign):
                    targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                    names = [t.id for t in targets if isinstance(t, ast.Name)]
                found.extend(
                    f"line {item.lineno}: {node.name} overrides private {name}"
                    for name in names
                    if _private(name)
                )
            found.extend(
                f"line {sub.lineno}: {node.name} uses self.{sub.attr}"
                for sub in ast.walk(node)
                if isinstance(sub, ast.Attribute)
                and _private(sub.attr)
                and isinstance(sub.value, ast.Name)
                and sub.value.id == "self"
            )
        elif isinstance(node, ast.Attribute) and _private(node.attr):
            if is_super(node.value) or is_foreign(node.value):
                found.append(f"line {node.lineno}: uses private attribute {node.attr}")
        elif isinstance(node, ast.Call) and is_foreign(node.func):
            found.extend(
                f"line {node.lineno}: passes private keyword {kw.arg}"
                for kw in node.keywords
                if kw.arg is not None and _private(kw.arg)
            )
    return found


def test_the_fake_uses_only_public_openapi_names() -> None:
    """No module of sendcloud_async.testing subclasses or calls a private part of openapi-core."""
    paths = sorted(TESTING.glob("*.py"))
    assert any(path.name == "_spec.py" for path in paths)
    found = {path.name: offences(path.read_text("utf-8")) for path in paths}
    assert {name: lines for name, lines in found.items() if lines} == {}


def test_the_spec_check_does_use_openapi_core() -> None:
    """The check above reads real imports: _spec.py imports openapi-core's OpenAPI and Config."""
    source = (TESTING / "_spec.py").read_text("utf-8")
    imported = {
        alias.name
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.ImportFrom) and node.module == "openapi_core"
        for alias in node.names
    }
    assert {"Config", "OpenAPI"} <= imported


@pytest.mark.parametrize(
    ("source", "offence"),
    [
        (
            "from openapi_core.validation.request.validators import V31RequestValidator\n"
            "class R(V31RequestValidator):\n"
            "    def _get_parameter(self, parameters, param):\n"
            "        return super()._get_parameter(parameters, param)\n",
            "R overrides private _get_parameter",
        ),
        (
            "def f():\n"
            "    from openapi_core import V31ResponseValidator\n"
            "    class R(V31ResponseValidator):\n"
            "        def check(self, schema, value):\n"
            "            self._validate_schema(schema, value)\n",
            "R uses self._validate_schema",
        ),
        ("from jsonschema.validators import _UNSET\n", "imports jsonschema.validators._UNSET"),
        ("from openapi_core.validation.schemas._validators import x\n", "private module"),
        ("import openapi_core\nopenapi_core.app._hidden()\n", "private attribute _hidden"),
        (
            "from openapi_schema_validator import OAS31Validator\n"
            "OAS31Validator({}, _resolver=None)\n",
            "private keyword _resolver",
        ),
    ],
)
def test_each_kind_of_private_use_is_found(source: str, offence: str) -> None:
    """The checker reports every way of leaning on private parts (it can fail)."""
    found = offences(source)
    assert len(found) >= 1
    assert any(offence in line for line in found), found


def test_public_use_is_not_reported() -> None:
    """Protocol methods, own attributes of plain classes and public hooks pass."""
    source = (
        "from openapi_core.security.providers import BaseProvider\n"
        "class P(BaseProvider):\n"
        "    def __call__(self, parameters):\n"
        "        return parameters.header\n"
        "class Own:\n"
        "    def _mine(self):\n"
        "        return self._x\n"
    )
    assert offences(source) == []
