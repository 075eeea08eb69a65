"""Public classes name the public module that exports them, not the private one defining them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def show_public_module(module: str, namespace: Mapping[str, object], names: Iterable[str]) -> None:
    """Set ``__module__`` to ``module`` on each class of ``names`` defined in a private module.

    Reprs, tracebacks, pickles and the API reference then say ``module.Name``, the
    path users import, and stay valid when the private modules are reorganised.
    """
    for name in names:
        value = namespace[name]
        if isinstance(value, type) and any(
            part.startswith("_") for part in value.__module__.split(".")
        ):
            value.__module__ = module
