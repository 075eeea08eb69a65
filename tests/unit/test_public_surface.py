"""The public namespace holds every name users call (api_names.py); the README documents it."""

from __future__ import annotations

import ast
import re
import types
from pathlib import Path

import pytest

import sendcloud_async as sc
import sendcloud_async.testing as sc_testing

from .api_names import API_NAMES, WEBHOOK_NAMES

ROOT = Path(__file__).resolve().parents[2]
API_MD = ROOT.parent / "shared" / "API.md"
README = ROOT / "README.md"


def _literal_all(module: types.ModuleType) -> list[str]:
    """``__all__`` as written in the module's source: a literal list of strings."""
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, list)
            assert all(isinstance(v, str) for v in value)
            return value
    raise AssertionError(f"{module.__name__} has no literal __all__")


@pytest.mark.parametrize("module", [sc, sc_testing], ids=lambda m: m.__name__)
def test_all_is_explicit_sorted_and_importable(module: types.ModuleType) -> None:
    """A literal, sorted, duplicate-free __all__ whose every name exists; star-import gives it."""
    names = _literal_all(module)
    assert names == list(module.__all__)
    assert names == sorted(names)
    assert len(set(names)) == len(names)
    for name in names:
        assert hasattr(module, name), name
    star: dict[str, object] = {}
    exec(f"from {module.__name__} import *", star)  # a fixed import of our own module
    assert sorted(k for k in star if k != "__builtins__") == sorted(names)


def test_no_public_attribute_escapes_all() -> None:
    """Every non-underscore attribute of the package is in __all__ (or a private module)."""
    stray = [
        name
        for name, value in vars(sc).items()
        if not name.startswith("_")
        and name not in sc.__all__
        and not (isinstance(value, types.ModuleType) and name in ("testing", "redis"))
    ]
    assert stray == []


@pytest.mark.skipif(not API_MD.exists(), reason="the API page is not beside the repository")
def test_every_listed_name_is_on_the_api_page() -> None:
    """The list kept in tests/ names nothing the API page does not (a typo guard)."""
    text = API_MD.read_text(encoding="utf-8")
    missing = [name for name in sorted(API_NAMES | WEBHOOK_NAMES) if name not in text]
    assert missing == []


def test_all_holds_every_api_name() -> None:
    """Every name users call (the list kept in tests/api_names.py) is exported."""
    assert {"SendcloudClient", "BasicAuth", "OAuth2ClientCredentials", "webhooks"} <= API_NAMES
    assert sorted(API_NAMES - set(sc.__all__)) == []


def test_webhooks_exports_every_api_name() -> None:
    """sendcloud_async.webhooks exports every webhook name users call."""
    assert sorted(WEBHOOK_NAMES - set(sc.webhooks.__all__)) == []


def _readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match is not None, f"README has no '## {title}' section"
    return match.group(1)


def test_all_holds_nothing_the_readme_api_reference_does_not_document() -> None:
    """Each exported name appears in the README's "API reference" table."""
    section = _readme_section("API reference")
    documented = set(
        re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", section.split("`sendcloud_async.testing`")[0])
    )
    assert sorted(set(sc.__all__) - documented) == []


def test_testing_all_is_documented_in_the_readme() -> None:
    """sendcloud_async.testing's exports are the names the API reference lists for it."""
    section = _readme_section("API reference")
    line = next(x for x in section.splitlines() if x.startswith("`sendcloud_async.testing`"))
    documented = set(re.findall(r"`([A-Za-z_][A-Za-z0-9_]*)`", line.split(":", 1)[1]))
    assert sorted(set(sc_testing.__all__) - documented) == []
