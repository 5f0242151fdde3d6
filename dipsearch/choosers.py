"""How `dipsearch restore` chooses its architecture: a registry of choosers, one entry per `--search` value.

A chooser runs (or skips) a search over the space and returns the candidates it scored, best first, all
without ground truth. The searchers run through the search API (dipsearch.search: a SearchSpec and a Runtime),
as any library caller runs them, never through the command line. Another way to choose (e.g. a pre-selection that ranks networks before any
fit) plugs in by adding a Chooser to CHOOSERS; the `--search` choices are read from this dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from .errors import ArgumentError
from .evaluate import Evaluation
from .runs import RunDir
from .space import Genome, SearchSpace
from .tasks import Problem


@dataclass
class Budget:
    """How much a restore spends: search size, iterations per candidate and of the final refit."""

    space: str
    pop: int  # GA population (mu = lambda)
    gens: int  # GA generations after the first
    trials: int  # Bayes trials
    search_iters: int
    iters: int  # the refit's budget (online stopping usually ends it earlier)


# CPU: a few minutes for a 128 px image on two cores; the demo space keeps networks at <= 64 channels.
# GPU: the default space around the seed network, a search of ~50 candidates and the seed's refit budget.
BUDGETS: dict[str, Budget] = {
    "cpu": Budget(space="demo", pop=4, gens=2, trials=12, search_iters=300, iters=2400),
    "gpu": Budget(space="default", pop=8, gens=5, trials=48, search_iters=1200, iters=3000),
}


@dataclass
class Ranked:
    genome: Genome
    evaluation: Evaluation | None  # None when nothing was fitted to choose it (--search none)


@dataclass
class ChooseContext:
    problem: Problem
    space: SearchSpace
    budget: Budget
    root: Path  # the restore folder: searches write their run folders under it
    seed: int
    console: Console
    device: str  # resolved: "cpu", "cuda", ...
    workers: int | None = None
    tensorboard: bool = False  # the search's candidates log to TensorBoard (Runtime.tensorboard)


@dataclass
class Choice:
    ranked: list[Ranked]  # distinct, successful candidates, best first
    default: Evaluation | None  # the space default's evaluation in the search, when it had one
    run_dir: Path | None  # the search's run folder
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chooser:
    name: str
    description: str
    max_candidates: Callable[[Budget], int]  # an upper bound, to refuse --ensemble K before any work
    choose: Callable[[ChooseContext], Choice]


def _ranked_from(run_dir: Path, space: SearchSpace, default_key: str) -> tuple[list[Ranked], Evaluation | None]:
    from .search.record import SearchRecord

    record = SearchRecord(RunDir(run_dir), space)
    usable = [e for e in record.cache.values() if e.fitness is not None and not e.pruned]
    usable.sort(key=lambda e: (-e.search_value, e.index))
    return [Ranked(dict(e.genome), e) for e in usable], record.lookup(default_key)


def _search(ctx: ChooseContext, **searcher: Any) -> tuple[Any, Any]:
    """The restore's search as the library runs any search: its spec (no final rung: the restore refits the best
    candidates with stopping itself) and a runtime writing under the restore folder, without a live display."""
    from .search.spec import Runtime, SearchSpec

    spec = SearchSpec(
        space=ctx.space,
        iters=ctx.budget.search_iters,
        fitness="holdout",
        eval_scale=1.0,
        seed=ctx.seed,
        device=ctx.device,
        threads=1 if ctx.device == "cpu" else None,
        rungs=None,
        **searcher,
    )
    runtime = Runtime(
        workers=ctx.workers, out=ctx.root, console=ctx.console, progress=False, tensorboard=ctx.tensorboard
    )
    return spec, runtime


def choose_ga(ctx: ChooseContext) -> Choice:
    from .search import ga_run
    from .search.ga import GAConfig

    spec, runtime = _search(ctx, ga=GAConfig(pop=ctx.budget.pop, gens=ctx.budget.gens, seed=ctx.seed))
    done = ga_run.start(ctx.problem, spec, runtime)
    ranked, default = _ranked_from(done.run.path, ctx.space, done.setup.candidate(ctx.space.default(), -1).key)
    return Choice(ranked, default, done.run.path)


def choose_bayes(ctx: ChooseContext) -> Choice:
    from .search import bayes_run
    from .search.study import BayesSettings

    spec, runtime = _search(ctx, bayes=BayesSettings(trials=ctx.budget.trials, with_default=True))
    done = bayes_run.start(ctx.problem, spec, runtime)
    run_path = done.outcome.run.path
    ranked, default = _ranked_from(run_path, ctx.space, done.setup.candidate(ctx.space.default(), -1).key)
    return Choice(ranked, default, run_path, {"pruned": done.outcome.summary.get("pruned")})


def choose_default(ctx: ChooseContext) -> Choice:
    return Choice([Ranked(ctx.space.default(), None)], None, None)


CHOOSERS: dict[str, Chooser] = {
    "ga": Chooser("ga", "genetic search (DEAP), holdout fitness", lambda b: b.pop + b.gens * b.pop, choose_ga),
    "bayes": Chooser(
        "bayes", "Bayesian search (Optuna TPE, median pruning), holdout fitness", lambda b: b.trials, choose_bayes
    ),
    "none": Chooser("none", "no search: the space's default network", lambda b: 1, choose_default),
}


def get_chooser(name: str) -> Chooser:
    if name not in CHOOSERS:
        raise ArgumentError("unknown {search} {name!r}; choose one of {names}", name=name, names=", ".join(CHOOSERS))
    return CHOOSERS[name]
