"""The Bayesian searcher (Optuna): api.py (run, resume, work: what callers use), driver.py (the run folder
as a view of the study), study.py (ask-fit-tell, the study's recipe, BayesSettings), storage.py (storages,
heartbeats, stale trials), samplers.py (samplers and pruners), space.py (the space as Optuna suggestions)
and display.py (tables, progress and plots).

    from dipsearch.search import bayes
    result = bayes.run(recipe, SearchSpec(space="demo", bayes=BayesSettings(trials=20)))

Names are imported on first use: importing this package loads no Optuna.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...lazy import lazy_exports
from ..base import Searcher

if TYPE_CHECKING:
    from .api import BayesDriven

_NAMES = {
    "run": "api",
    "resume": "api",
    "work": "api",
    "start": "api",
    "continue_run": "api",
    "BayesDriven": "api",
    "WorkReport": "api",
    "run_bayes": "driver",
    "BayesRun": "driver",
    "BayesSettings": "study",
}

__all__ = [*_NAMES, "BayesSearcher"]


class BayesSearcher(Searcher):
    name = "bayes"
    summary = "Bayesian search with Optuna (TPE, pruning, storages, workers)"

    @classmethod
    def settings_type(cls) -> type:
        from .study import BayesSettings

        return BayesSettings

    def restore_settings(self, budget: Any, seed: int) -> Any:
        from .study import BayesSettings

        return BayesSettings(trials=budget.trials, with_default=True)

    def start(self, problem: Any, spec: Any, runtime: Any) -> BayesDriven:
        from .api import start

        return start(problem, spec, runtime)

    def resume(self, run_dir: str | Path, runtime: Any, **changes: Any) -> BayesDriven:
        from .api import continue_run

        return continue_run(run_dir, runtime, **changes)


__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
