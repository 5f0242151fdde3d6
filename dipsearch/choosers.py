"""How `dipsearch restore` chooses its architecture: a registry of choosers, one entry per `--search` value.

A chooser runs (or skips) a search over the space and returns the candidates it scored, best first, all
without ground truth. The searchers are called through their library entry points (GASearch, run_bayes),
never through the command line. Another way to choose (e.g. a pre-selection that ranks networks before any
fit) plugs in by adding a Chooser to CHOOSERS; the `--search` choices are read from this dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from .errors import ArgumentError
from .evaluate import Candidate, Evaluation
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
    make_candidate: Callable[..., Candidate]  # (genome, index, **extra) -> Candidate
    config: Callable[[], dict[str, Any]]  # the [problem] and [search] tables of a search's config.toml
    seed: int
    console: Console
    workers: int | None = None


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


def _executor(workers: int | None):
    from .executors import InProcessExecutor, local_pool

    return InProcessExecutor() if not workers or workers == 1 else local_pool(workers)


def choose_ga(ctx: ChooseContext) -> Choice:
    from .search.display import LogDisplay
    from .search.ga import GAConfig, GASearch
    from .search.record import SearchRecord

    ga = GAConfig(pop=ctx.budget.pop, gens=ctx.budget.gens, seed=ctx.seed)
    run = RunDir.create(ctx.root, "search", "ga")
    run.write_toml("config.toml", {**ctx.config(), "ga": {"pop": ga.pop, "gens": ga.gens, "seed": ga.seed}})
    executor = _executor(ctx.workers)
    try:
        display = LogDisplay(ctx.console)
        with display:
            GASearch(ctx.space, ctx.make_candidate, SearchRecord(run, ctx.space), executor, ga, display).run()
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    ranked, default = _ranked_from(run.path, ctx.space, ctx.make_candidate(ctx.space.default(), -1).key)
    return Choice(ranked, default, run.path)


def choose_bayes(ctx: ChooseContext) -> Choice:
    from .search.bayes import run_bayes
    from .search.study import BayesSettings

    settings = BayesSettings(trials=ctx.budget.trials, with_default=True)
    executor = _executor(ctx.workers)
    try:
        result = run_bayes(
            _Setup(ctx),
            settings,
            executor=executor,
            slots=max(1, ctx.workers or 1),
            out=ctx.root,
            console=ctx.console,
            progress=False,
        )
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    ranked, default = _ranked_from(result.run.path, ctx.space, ctx.make_candidate(ctx.space.default(), -1).key)
    return Choice(ranked, default, result.run.path, {"pruned": result.summary.get("pruned")})


@dataclass
class _Setup:
    """What run_bayes needs of a setup (search.bayes.SetupLike), from the restore's context."""

    ctx: ChooseContext

    @property
    def problem(self) -> Problem:
        return self.ctx.problem

    @property
    def space(self) -> SearchSpace:
        return self.ctx.space

    def candidate(self, genome: Genome, index: int, **extra: Any) -> Candidate:
        return self.ctx.make_candidate(genome, index, **extra)

    def config(self) -> dict[str, Any]:
        return self.ctx.config()

    def plan(self) -> None:
        return None  # no final rung inside the search: restore refits the best candidates with stopping itself


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
