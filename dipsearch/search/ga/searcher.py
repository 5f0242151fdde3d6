"""GASearcher, the genetic searcher's entry in the searcher registry (dipsearch.search.base.SEARCHERS).

Its own module, not the package's __init__: algorithm.py imports the package's other modules (`from . import
checkpoint`), so a class in __init__ that imports algorithm.py would close a circle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..base import Searcher

if TYPE_CHECKING:
    from .driver import GARun


class GASearcher(Searcher):
    name = "ga"
    summary = "genetic architecture search (DEAP)"

    @classmethod
    def settings_type(cls) -> type:
        from .algorithm import GAConfig

        return GAConfig

    def default_settings(self, spec: Any) -> Any:
        from .algorithm import GAConfig

        return GAConfig(seed=spec.seed)

    def restore_settings(self, budget: Any, seed: int) -> Any:
        from .algorithm import GAConfig

        return GAConfig(pop=budget.pop, gens=budget.gens, seed=seed)

    def most_candidates(self, settings: Any) -> int:
        return settings.pop + settings.gens * settings.lam

    def start(self, problem: Any, spec: Any, runtime: Any) -> GARun:
        from .driver import start

        return start(problem, spec, runtime)

    def resume(self, run_dir: str | Path, runtime: Any, **changes: Any) -> GARun:
        from .driver import continue_run

        return continue_run(run_dir, changes.pop("gens", None), runtime, **changes)
