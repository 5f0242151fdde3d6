"""The genetic searcher (DEAP): algorithm.py (the (mu + lambda) loop, GAConfig), operators.py (mutation,
crossover), checkpoint.py (ga_state.json), plot.py (fitness.png) and driver.py (the run folder: run, resume).

    from dipsearch.search import ga
    result = ga.run(recipe, SearchSpec(space="demo", ga=GAConfig(pop=6, gens=3)))
    result = ga.resume(result.run_dir, gens=5)

Names are imported on first use: importing this package loads no DEAP.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...lazy import lazy_exports
from ..base import Searcher

if TYPE_CHECKING:
    from .driver import GARun

_NAMES = {
    "GAConfig": "algorithm",
    "GASearch": "algorithm",
    "GAResult": "algorithm",
    "individual_class": "algorithm",
    "NOVEL_TRIES": "algorithm",
    "run": "driver",
    "resume": "driver",
    "start": "driver",
    "continue_run": "driver",
    "GARun": "driver",
}

__all__ = [*_NAMES, "GASearcher"]


class GASearcher(Searcher):
    name = "ga"
    summary = "genetic architecture search (DEAP)"
    cli = "dipsearch.cli.ga_cmd"

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


__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
