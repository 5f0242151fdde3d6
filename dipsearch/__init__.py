"""dipsearch: Deep Image Prior architecture search, automatic stopping and reproducible runs.

The public names below are imported on first use, so `import dipsearch` (and with it every `dipsearch`
command, `--help` included) does not pay for torch until something needs it.
"""

from __future__ import annotations

from .errors import ArgumentError as ArgumentError  # re-exported
from .errors import DipsearchError as DipsearchError  # re-exported
from .lazy import lazy_exports

_EXPORTS = {
    "ArchSpec": "nets.arch",
    "build_net": "nets.arch",
    "count_params": "nets.arch",
    "FitConfig": "fitting.fit",
    "FitHook": "fitting.fit",
    "FitResult": "fitting.fit",
    "StepState": "fitting.fit",
    "fit": "fitting.fit",
    "Genome": "nets.space",
    "SearchSpace": "nets.space",
    "load_space": "nets.space",
    "Problem": "problems.problem",
    "make_problem": "problems.make",
}

__all__ = sorted([*_EXPORTS, "ArgumentError", "DipsearchError"])


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, cache=True)
