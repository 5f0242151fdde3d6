"""dipsearch: Deep Image Prior architecture search, automatic stopping and reproducible runs.

The public names below are imported on first use, so `import dipsearch` (and with it every `dipsearch`
command, `--help` included) does not pay for torch until something needs it.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .errors import ArgumentError as ArgumentError  # re-exported
from .errors import DipsearchError as DipsearchError  # re-exported
from .lazy import lazy_exports

_EXPORTS = {
    "ArchSpec": "arch",
    "build_net": "arch",
    "count_params": "arch",
    "FitConfig": "fit",
    "FitHook": "fit",
    "FitResult": "fit",
    "StepState": "fit",
    "fit": "fit",
    "Genome": "space",
    "SearchSpace": "space",
    "load_space": "space",
    "Problem": "problems.problem",
    "make_problem": "problems.make",
}

__all__ = sorted([*_EXPORTS, "ArgumentError", "DipsearchError"])


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, cache=True)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        # Importing the submodule dipsearch.fit binds it on the package; `dipsearch.fit` stays the function.
        if name == "fit" and isinstance(value, types.ModuleType) and hasattr(value, "fit"):
            value = value.fit
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
