"""Package attributes imported on first use (a module-level __getattr__, PEP 562), so that importing a package
loads none of the heavy libraries its names need (torch, Optuna, DEAP) until one of them is read."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any


def lazy_exports(
    package: str, names: Mapping[str, str], modules: Iterable[str] = (), cache: bool = False
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The __getattr__ and __dir__ of `package`: each of `names` is read from its submodule (relative to the
    package), each of `modules` is that submodule itself. cache: keep a name in the package once read, so later
    reads skip the lookup (not where callers monkeypatch the submodule's name and expect the package to follow)."""
    modules = tuple(modules)

    def __getattr__(name: str) -> Any:
        if name in names:
            value = getattr(importlib.import_module(f".{names[name]}", package), name)
            if cache:
                setattr(sys.modules[package], name, value)
            return value
        if name in modules:
            return importlib.import_module(f".{name}", package)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names, *modules})

    return __getattr__, __dir__
