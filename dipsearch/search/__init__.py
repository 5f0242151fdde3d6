"""Architecture search for Deep Image Prior, as a library: describe, run, resume, read.

    from dipsearch.search import ProblemRecipe, SearchSpec, Runtime, ga, bayes
    from dipsearch.search.ga import GAConfig

    recipe = ProblemRecipe(clean="photo.png", sigma=25, crop=64)      # or a dipsearch.Problem
    spec = SearchSpec(space="demo", iters=200, ga=GAConfig(pop=6, gens=3))
    result = ga.run(recipe, spec, Runtime(workers=2, out="runs"))    # runs/search/<stamp>_ga/
    result = ga.resume(result.run_dir, gens=5)                       # continue, or extend
    result.best_arch, result.best_fitness, result.image              # the winner and its output

- ProblemRecipe (dipsearch.problems.recipe): the problem as files and settings, rebuildable anywhere, with the one problem
  fingerprint; a Problem made in Python gets a recipe holding only its fingerprint.
- SearchSpec, Seeding (spec.py): what the search is, with its searcher's name and settings; Runtime: how
  this process runs it. StopSpec (dipsearch.stopping.spec): the stopping of every candidate's fit.
- The searchers (base.py: the Searcher base and the SEARCHERS registry; api.run / api.resume run any):
  ga.run / ga.resume (ga/), bayes.run / bayes.resume / bayes.work (bayes/), random (random.py).
- SearchSetup (prepare.py): a spec checked against its problem, the space cut to the image.
- SearchResult (result.py): a finished run folder's answer; SearchResult.load(run_dir) reads any.
The command line (`dipsearch search ga|bayes`, `dipsearch worker`) translates its flags into these objects.

Attributes are imported on first use: `import dipsearch.search` loads no torch, Optuna or DEAP.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_NAMES = {
    "ProblemRecipe": ".problems.recipe",
    "problem_fingerprint": ".problems.recipe",
    "SearchSpec": "spec",
    "StopSpec": ".stopping.spec",
    "Seeding": "spec",
    "Runtime": "spec",
    "SearchResult": "result",
    "SearchSetup": "prepare",
    "Searcher": "base",
    "SEARCHERS": "base",
    "RandomSettings": "random",
    "GAConfig": "ga",
    "BayesSettings": "bayes.study",
    "RungPlan": "rungs",
}
_MODULES = ("ga", "bayes", "random", "base", "api")

__all__ = [*_NAMES, *_MODULES]


__getattr__, __dir__ = lazy_exports(__name__, _NAMES, _MODULES)
