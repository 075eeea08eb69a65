"""The public namespace holds every name users call (api_names.py); the API reference renders it."""

from __future__ import annotations

import argparse
import ast
import os
import re
import types
from pathlib import Path

import pytest

import sendcloud_async as sc
import sendcloud_async.testing as sc_testing

from .api_names import API_NAMES, CLI_COMMANDS, PARAMETERS, WEBHOOK_NAMES

ROOT = Path(__file__).resolve().parents[2]
#: The page that fixes the public names (outside the repository): SENDCLOUD_API_PAGE names
#: it (by default shared/API.md beside the checkout, where the maintainers keep it).
API_MD = Path(os.environ.get("SENDCLOUD_API_PAGE") or ROOT.parent / "shared" / "API.md")
REFERENCE = ROOT / "docs" / "reference.md"


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
        if name.isidentifier()  # pytest's assertion rewriting adds "@py_builtins"
        and not name.startswith("_")
        and name not in sc.__all__
        and not (isinstance(value, types.ModuleType) and name in ("testing", "redis", "otel"))
    ]
    assert stray == []


@pytest.mark.skipif(
    not API_MD.exists(),
    reason="compares tests/unit/api_names.py with the page that fixes the public names, which "
    "is not part of this repository: set SENDCLOUD_API_PAGE to its path to run it",
)
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


def _reference_entries() -> set[str]:
    """The objects docs/reference.md renders: its ``::: dotted.path`` lines."""
    return set(re.findall(r"^::: ([\w.]+)$", REFERENCE.read_text(encoding="utf-8"), re.M))


def test_api_reference_documents_every_exported_name() -> None:
    """docs/reference.md renders ``sendcloud_async.NAME`` for every name of __all__."""
    entries = _reference_entries()
    missing = [
        name
        for name in sc.__all__
        if name != "__version__" and f"sendcloud_async.{name}" not in entries
    ]
    assert missing == []
    assert "`sendcloud_async.__version__`" in REFERENCE.read_text(encoding="utf-8")


def test_api_reference_renders_the_public_modules_whole() -> None:
    """testing, redis and webhooks are rendered whole: every name of their __all__."""
    modules = {"sendcloud_async.testing", "sendcloud_async.redis", "sendcloud_async.webhooks"}
    assert sorted(modules - _reference_entries()) == []


def _command_options(words: tuple[str, ...]) -> set[str]:
    """The option strings of the command ``words`` of the real parser."""
    from sendcloud_async._cli import build_parser

    parser: argparse.ArgumentParser = build_parser()
    for word in words:
        (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = commands.choices[word]
    return {option for action in parser._actions for option in action.option_strings}


@pytest.mark.parametrize("words", sorted(CLI_COMMANDS), ids=" ".join)
def test_the_command_line_has_every_listed_command_and_option(words: tuple[str, ...]) -> None:
    """Every command users call exists, with every option the API page names for it."""
    options = _command_options(words)
    assert sorted(CLI_COMMANDS[words] - options) == []
    assert {"--help", "--quiet", "--verbose", "--log-format"} <= options  # every command's


@pytest.mark.skipif(
    not API_MD.exists(),
    reason="compares tests/unit/api_names.py with the page that fixes the public names, which "
    "is not part of this repository: set SENDCLOUD_API_PAGE to its path to run it",
)
def test_every_listed_command_is_on_the_api_page() -> None:
    """The commands and options kept in tests/ are the API page's (a typo guard)."""
    text = API_MD.read_text(encoding="utf-8")
    for words, options in CLI_COMMANDS.items():
        # "sendcloud-async logs tail", or "sendcloud-async integrations list|get ID"
        tail = rf"[ \w|]*\b{words[-1]}\b" if len(words) > 1 else ""
        assert re.search(rf"sendcloud-async {words[0]}\b{tail}", text), words
        assert sorted(o for o in options if o not in text) == [], words


def _callable(path: str) -> object:
    from sendcloud_async._resources.logs import Logs

    owner, _, name = path.rpartition(".")
    if owner == "redis":
        import sendcloud_async.redis

        return getattr(sendcloud_async.redis, name)
    if owner == "Logs":
        return getattr(Logs, name)
    return getattr(sc, name)


@pytest.mark.parametrize("path", sorted(PARAMETERS))
def test_every_listed_parameter_is_taken(path: str) -> None:
    """The keyword parameters the API page names exist, keyword-only, with a default."""
    import inspect

    signature = inspect.signature(_callable(path))  # type: ignore[arg-type]
    for name in PARAMETERS[path]:
        parameter = signature.parameters[name]
        assert parameter.kind is inspect.Parameter.KEYWORD_ONLY, (path, name)
        assert parameter.default is not inspect.Parameter.empty, (path, name)
    if path == "redis.log_watcher_watch":  # LogWatcher's options pass through
        assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
