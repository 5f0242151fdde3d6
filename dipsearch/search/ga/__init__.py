"""The genetic searcher (DEAP): algorithm.py (the (mu + lambda) loop, GAConfig), operators.py (mutation,
crossover), checkpoint.py (ga_state.json), plot.py (fitness.png), driver.py (the run folder: run, resume)
and searcher.py (GASearcher, its entry in the searcher registry).

    from dipsearch.search import ga
    result = ga.run(recipe, SearchSpec(space="demo", ga=GAConfig(pop=6, gens=3)))
    result = ga.resume(result.run_dir, gens=5)

Names are imported on first use: importing this package loads no DEAP.
"""

from __future__ import annotations

from ...lazy import lazy_exports

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
    "GASearcher": "searcher",
}

__all__ = list(_NAMES)


__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
