"""A GA search as a run folder: start one (`run`) or continue a killed or finished one (`resume`).

The folder holds everything a resume needs: config.toml ([recipe]: the problem, [spec]: the search,
[ga]: the GA settings), space.toml (the space as it was), ga_state.json (the checkpoint of the last
finished generation) and evaluations.jsonl (every finished fit: the cache a resumed run replays through).
Folders made before the [recipe] and [spec] tables existed are read from their [args], [search], [rungs]
and [stop] tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ...errors import DipsearchError
from ...problems.problem import Problem
from ...problems.recipe import ProblemRecipe, as_problem
from ...scoring.evaluate import Evaluation
from ...store.runs import RunDir
from ..folder import create_folder, open_folder, refuse_shrink
from ..prepare import SPACE_SNAPSHOT, SearchSetup, describe_seeding, prepare, starting_genomes
from ..result import SearchResult
from ..spec import Runtime, SearchSpec, StopSpec
from .algorithm import GAConfig, GAResult, GASearch


@dataclass
class GARun:
    """A finished (or stopped) GA run as the driver sees it: the result plus what only a live run has."""

    run: RunDir
    setup: SearchSetup
    ga: GAConfig
    outcome: GAResult
    evaluations: list[Evaluation] = field(default_factory=list)
    seeding: dict[str, Any] | None = None

    @property
    def run_dir(self) -> Path:
        return self.run.path

    def result(self) -> SearchResult:
        return SearchResult.load(self.run.path)


def run(
    problem: Problem | ProblemRecipe, spec: SearchSpec | None = None, runtime: Runtime | None = None
) -> SearchResult:
    """Evolve an architecture for `problem` (a ProblemRecipe, or a Problem made in Python) in a new run folder
    under runtime.out/search/; spec.ga holds the GA settings (None: GAConfig(seed=spec.seed)).
    An interrupted run (Ctrl-C, or KeyboardInterrupt from runtime.on_evaluation) keeps its folder when some fit
    finished: `resume(folder)` continues it; the exception carries the folder as its `run_dir` attribute."""
    return start(problem, spec or SearchSpec(), runtime or Runtime()).result()


def resume(run_dir: str | Path, gens: int | None = None, runtime: Runtime | None = None) -> SearchResult:
    """Continue a GA run folder; `gens` larger than its generations extends a finished run. The problem is
    rebuilt from the stored recipe and checked against its fingerprint: a run started on tensors made in
    Python cannot be resumed from its folder."""
    return continue_run(run_dir, gens, runtime or Runtime()).result()


def start(problem_or_recipe: Problem | ProblemRecipe, spec: SearchSpec, runtime: Runtime) -> GARun:
    from ...fitting.fit import resolve_device

    runtime.check()
    spec = replace(spec, ga=spec.ga or GAConfig(seed=spec.seed))
    spec.check()
    problem, recipe = as_problem(problem_or_recipe)
    setup = prepare(problem, recipe, spec, remote=runtime.dask is not None)
    if setup.threads is None and resolve_device(spec.device).type == "cpu":
        setup.threads = 1  # CPU float results depend on the thread count: one makes a seeded search reproducible
    initial, seeding = starting_genomes(setup, spec.ga.pop)
    return _drive(setup, spec.ga, runtime, None, initial, seeding)


def continue_run(run_dir: str | Path, gens: int | None, runtime: Runtime) -> GARun:
    from ...preselect.seeding import load_initial

    runtime.check()
    run, config = open_folder(run_dir, "ga", "dipsearch search ga", label="GA")
    recipe, spec = stored_recipe(config), stored_spec(config)
    spec.space = str(run.file(SPACE_SNAPSHOT))
    if gens is not None:
        refuse_shrink("gens", gens, _generations_done(run), run.path, "finished {done} generations")
        spec.ga.gens = gens
    spec.ga.check()
    problem = recipe.rebuild(f"the run {run.path}")
    legacy = config.get("resume", {}).get("observed_sha256")
    if legacy is not None and legacy != _observed_sha256(problem):
        raise DipsearchError(
            f"the observation rebuilt from {run.path}/config.toml differs from the one the run "
            "started with (was an image file changed?); start a new search instead"
        )
    setup = prepare(problem, recipe, spec, remote=runtime.dask is not None)
    setup.threads = config["search"].get("threads")
    return _drive(setup, spec.ga, runtime, run, load_initial(run), None)


def _generations_done(run: RunDir) -> int:
    from .checkpoint import load

    state = load(run)
    return int(state["generation"]) if state else 0


def stored_recipe(config: dict[str, Any]) -> ProblemRecipe:
    if "recipe" in config:
        return ProblemRecipe.from_dict(config["recipe"])
    return ProblemRecipe.from_dict(config.get("args", {}))  # folders made before [recipe]


def stored_spec(config: dict[str, Any]) -> SearchSpec:
    if "spec" in config:
        spec = SearchSpec.from_dict(config["spec"])
    else:  # folders made before [spec]: the flags in [args], the rest in [search], [rungs] and [stop]
        from ..rungs import RungPlan

        args, search, rungs = config.get("args", {}), config["search"], config.get("rungs", {})
        spec = SearchSpec(
            iters=int(args.get("iters", search["iters"])),
            fitness=args.get("fitness", search["fitness"]),
            eval_scale=args.get("eval_scale", search.get("eval_scale")),
            seed=int(args.get("seed", 0)),
            device=args.get("device", search.get("device", "auto")),
            precision=search.get("precision", "fp32"),
            channels_last=search.get("channels_last", False),
            compile=search.get("compile", False),
            init=search.get("init"),
            stop=StopSpec.from_dict(config.get("stop")),
            rungs=RungPlan.from_dict(rungs) if rungs.get("final") else None,
        )
    spec.searcher = "ga"
    spec.settings = GAConfig(**{k: v for k, v in config["ga"].items() if k in GAConfig.__dataclass_fields__})
    return spec


def _observed_sha256(problem: Problem) -> str:
    # What folders made before [recipe] stored: a hash of the observation alone (the fingerprint is in recipe.py).
    import hashlib

    return hashlib.sha256(problem.observed.detach().cpu().numpy().tobytes()).hexdigest()[:16]


class _Observer:
    """The display, plus the caller's per-evaluation callback."""

    def __init__(self, display: Any, on_evaluation: Any):
        self.display, self.on_evaluation = display, on_evaluation

    def generation_started(self, gen: int, gens: int, queued: int, cached: int) -> None:
        self.display.generation_started(gen, gens, queued, cached)

    def evaluated(self, evaluation: Evaluation, best: Evaluation | None) -> None:
        self.display.evaluated(evaluation, best)
        if self.on_evaluation is not None:
            self.on_evaluation(evaluation)

    def generation_done(self, row: dict[str, Any]) -> None:
        self.display.generation_done(row)


def _drive(
    setup: SearchSetup,
    ga: GAConfig,
    runtime: Runtime,
    run: RunDir | None,
    initial: list,
    seeding: dict[str, Any] | None,
) -> GARun:
    from ...preselect.seeding import record_seeding
    from ..display import LiveDisplay, LogDisplay
    from ..record import EVALUATIONS, SearchRecord
    from ..rungs import rung_printer
    from .checkpoint import STATE

    console = runtime.the_console()
    if setup.note:
        console.print(setup.note, highlight=False)
    if seeding:
        console.print(describe_seeding(seeding), highlight=False)
    executor = runtime.executor()
    fresh = run is None
    try:
        if fresh:
            run = create_folder(setup, "ga", ga, runtime, initial, seeding)
        record = SearchRecord(run, setup.space)
        setup.log_into(run.path, runtime.tensorboard)
        display = LiveDisplay(console, ga.gens) if runtime.progress else LogDisplay(console)
        if not fresh:
            console.print(f"resuming {run.path}: {len(record)} evaluations on record", highlight=False)
        search = GASearch(
            setup.space,
            setup.candidate,
            record,
            executor,
            ga,
            _Observer(display, runtime.on_evaluation),
            plan=setup.plan(),
            notify=rung_printer(console),
            initial=initial,
        )
        with display:
            outcome = search.run()
        if seeding:
            record_seeding(run, seeding)
    except BaseException as err:
        if fresh and run is not None and not run.file(EVALUATIONS).exists() and not run.file(STATE).exists():
            run.discard()
        elif run is not None:
            err.run_dir = run.path  # where to resume from (the CLI prints the command)
        raise
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    return GARun(run, setup, ga, outcome, list(record.cache.values()), seeding)
