"""How `dipsearch restore` chooses its architecture: a registry of choosers, one entry per `--search` value.

A chooser runs (or skips) a search over the space, ending in the search's final rung (search/rungs.py: the
finalists refitted at the full budget with stopping, the default among them, and their ensemble), and returns
the candidates it scored, best first, and the search's run folder, all without ground truth. The searchers run
through the search API (dipsearch.search: a SearchSpec and a Runtime), as any library caller runs them, never
through the command line. Every registered searcher (dipsearch.search.base.SEARCHERS) that offers settings for a
restore budget (Searcher.restore_settings) is a chooser; another way to choose (e.g. a pre-selection that ranks
networks before any fit) plugs in by adding a Chooser to CHOOSERS. The `--search` choices are read from this dict.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from ..errors import ArgumentError
from ..nets.space import Genome, SearchSpace
from ..problems.problem import Problem
from ..scoring.evaluate import Evaluation
from ..store.runs import RunDir


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


RESTART_MEMBERS_MAX = 8  # --search none: the default network and up to 7 refits of it with other seeds


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
    plan: Any  # the final rung (search.rungs.RungPlan) every chooser ends in
    workers: int | None = None
    tensorboard: bool = False  # the search's candidates log to TensorBoard (Runtime.tensorboard)
    watch: Any = None  # shows the final rung's fits as they run (restore_progress.MemberWatch)
    start_from: list[str] = field(default_factory=list)  # study folders whose best genomes start the search


@dataclass
class Choice:
    ranked: list[Ranked]  # distinct, successful candidates, best first
    default: Evaluation | None  # the space default's evaluation in the search, when it had one
    run_dir: Path  # the search's run folder: its final rung's files (best_output.png, ensemble.png, final/)
    summary: dict[str, Any]  # its summary.json: the finalists, the pick, the ensemble
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Chooser:
    name: str
    description: str
    max_candidates: Callable[[Budget], int]  # an upper bound, to refuse --ensemble K before any work
    choose: Callable[[ChooseContext], Choice]
    reads: tuple[str, ...] = ()  # the Budget's search fields it uses: another one given is refused, not ignored


SEARCH_FIELDS = ("pop", "gens", "trials", "search_iters")  # the Budget's fields only a search reads


def _fields_read(searcher: Any) -> tuple[str, ...]:
    """The search fields a searcher's restore settings depend on, found by changing each one: a newly registered
    searcher needs no list of its own. search_iters is every search's (the candidates' budget)."""
    base = BUDGETS["cpu"]
    plain = searcher.restore_settings(base, 0)
    changed = [
        f
        for f in SEARCH_FIELDS[:-1]
        if searcher.restore_settings(replace(base, **{f: getattr(base, f) + 1}), 0) != plain
    ]
    return (*changed, "search_iters")


def _ranked_from(run_dir: Path, space: SearchSpace, default_key: str) -> tuple[list[Ranked], Evaluation | None]:
    from ..search.record import SearchRecord

    record = SearchRecord(RunDir(run_dir), space)
    usable = [e for e in record.cache.values() if e.fitness is not None and not e.pruned]
    usable.sort(key=lambda e: (-e.search_value, e.index))
    return [Ranked(dict(e.genome), e) for e in usable], record.lookup(default_key)


def _search(ctx: ChooseContext, searcher: str | None = None, settings: Any = None) -> tuple[Any, Any]:
    """The restore's search as the library runs any search: its spec (ending in the restore's final rung) and a
    runtime writing under the restore folder, without a live display."""
    from ..search.spec import Runtime, SearchSpec, Seeding

    spec = SearchSpec(
        space=ctx.space,
        iters=ctx.budget.search_iters,
        fitness="holdout",
        eval_scale=1.0,
        seed=ctx.seed,
        device=ctx.device,
        threads=1 if ctx.device == "cpu" else None,
        rungs=ctx.plan,
        searcher=searcher,
        settings=settings,
        seeding=Seeding(start_from=list(ctx.start_from)),
    )
    runtime = Runtime(
        workers=ctx.workers, out=ctx.root, console=ctx.console, progress=False, tensorboard=ctx.tensorboard
    )
    return spec, runtime


def searcher_chooser(name: str) -> Chooser | None:
    """The chooser that runs a registered searcher at the restore's budget; None where it offers no budget."""
    from ..search.base import get_searcher

    searcher = get_searcher(name)
    if searcher.restore_settings(BUDGETS["cpu"], 0) is None:
        return None

    def choose(ctx: ChooseContext) -> Choice:
        spec, runtime = _search(ctx, name, searcher.restore_settings(ctx.budget, ctx.seed))
        done = searcher.start(ctx.problem, spec, runtime)
        default_key = done.setup.candidate(ctx.space.default(), -1).key
        ranked, default = _ranked_from(done.run_dir, ctx.space, default_key)
        summary = done.result().summary
        extra = {"pruned": summary["pruned"]} if "pruned" in summary else {}
        return Choice(ranked, default, done.run_dir, summary, extra)

    return Chooser(
        name,
        f"{searcher.summary}, holdout fitness",
        lambda budget: searcher.most_candidates(searcher.restore_settings(budget, 0)),
        choose,
        _fields_read(searcher),
    )


def choose_default(ctx: ChooseContext) -> Choice:
    """No search: the final rung alone, over the default genome (the one finalist), in a search-like folder."""
    from ..problems.recipe import as_problem
    from ..scoring.executors import InProcessExecutor
    from ..search.prepare import prepare
    from ..search.record import SearchRecord
    from ..search.rungs import RungRunner, finish

    spec, _ = _search(ctx)
    problem, recipe = as_problem(ctx.problem)
    setup = prepare(problem, recipe, spec)
    setup.threads = spec.threads
    run = RunDir.create(ctx.root, "search", "default")
    run.write_toml("config.toml", setup.config())
    record = SearchRecord(run, setup.space)
    runner = RungRunner(setup.space, setup.candidate, record, InProcessExecutor(), ctx.plan, watch=ctx.watch)
    selection = runner.run()
    summary = finish(record, selection, ctx.plan)
    run.write_json("summary.json", summary)
    return Choice([Ranked(ctx.space.default(), None)], None, run.path, summary)


def _choosers() -> dict[str, Chooser]:
    from ..search.base import SEARCHERS

    found = {name: searcher_chooser(name) for name in SEARCHERS}
    return {
        **{name: chooser for name, chooser in found.items() if chooser is not None},
        "none": Chooser(
            "none",
            "no search: the space's default network, its ensemble members refits with other seeds",
            lambda b: RESTART_MEMBERS_MAX,
            choose_default,
        ),
    }


CHOOSERS: dict[str, Chooser] = _choosers()


def get_chooser(name: str) -> Chooser:
    if name not in CHOOSERS:
        raise ArgumentError("unknown {search} {name!r}; choose one of {names}", name=name, names=", ".join(CHOOSERS))
    return CHOOSERS[name]
