"""Plain random search: fit `trials` distinct architectures drawn uniformly from the space, keep the best.

The baseline a smarter searcher has to beat, and the smallest complete searcher (see search/base.py): the
draws come from one `random.Random(spec.seed)`, so a resumed run draws the same list again and finds the
fits the stopped run had finished in its evaluation cache (evaluations.jsonl); the final rung, stopping,
seeding and run folder are the ones every searcher shares.

    from dipsearch.search import Runtime, SearchSpec
    from dipsearch.search.api import run
    result = run(recipe, SearchSpec(space="demo", searcher="random", settings=RandomSettings(trials=12)))

Module level imports only the standard library and the plug-in base: the command line reads this module.
"""

from __future__ import annotations

import json
import random
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DipsearchError, check_at_least
from .base import Searcher

if TYPE_CHECKING:
    from ..nets.space import Genome
    from ..problems.problem import Problem
    from ..problems.recipe import ProblemRecipe
    from ..scoring.evaluate import Evaluation
    from ..store.runs import RunDir
    from .prepare import SearchSetup
    from .result import SearchResult
    from .rungs import Selection
    from .spec import Runtime, SearchSpec

NOVEL_TRIES = 10  # draws per trial before a repeated architecture is accepted (a small space runs out)


@dataclass
class RandomSettings:
    # The metadata's help is the flag's help text (`dipsearch search random --help`).
    trials: int = field(
        default=20,
        metadata={
            "help": "architectures to fit, each drawn uniformly from the space, repeats drawn again (default 20)"
        },
    )
    with_default: bool = field(
        default=False, metadata={"help": "make the space's default network the first trial (default: off)"}
    )

    def check(self) -> None:
        from .limits import check_fits

        check_at_least("trials", self.trials, 1)
        check_fits(self.trials, "{trials} {value}", value=self.trials)


@dataclass
class RandomRun:
    """A finished random search: its folder, setup, settings and summary."""

    run: RunDir
    setup: SearchSetup
    settings: RandomSettings
    summary: dict[str, Any]
    evaluations: list[Evaluation]
    selection: Selection | None = None  # the final rung's finalists and choice, when it ran here

    @property
    def run_dir(self) -> Path:
        return self.run.path

    def result(self) -> SearchResult:
        from .result import SearchResult

        return SearchResult.load(self.run.path)


class RandomSearcher(Searcher):
    name = "random"
    summary = "plain random search: the baseline the other searchers must beat"

    @classmethod
    def settings_type(cls) -> type:
        return RandomSettings

    def restore_settings(self, budget: Any, seed: int) -> RandomSettings:
        # the Bayes search's trial count: the two are compared at the same number of fits, the default among them
        return RandomSettings(trials=budget.trials, with_default=True)

    def start(self, problem: Problem | ProblemRecipe, spec: SearchSpec, runtime: Runtime) -> RandomRun:
        from ..problems.recipe import as_problem
        from .prepare import prepare, starting_genomes

        runtime.check()
        settings = spec.settings_of(self.name) or self.settings_type()()
        spec = replace(spec, searcher=self.name, settings=settings)
        spec.check()
        problem, recipe = as_problem(problem)
        setup = prepare(problem, recipe, spec, remote=runtime.dask is not None)
        initial, seeding = starting_genomes(setup, settings.trials)
        return _drive(self, setup, settings, runtime, None, initial, seeding)

    def resume(self, run_dir: str | Path, runtime: Runtime, trials: int | None = None, **changes: Any) -> RandomRun:
        from ..preselect.seeding import load_initial
        from ..problems.recipe import ProblemRecipe
        from .folder import open_folder, refuse_shrink
        from .prepare import SPACE_SNAPSHOT, prepare
        from .spec import SearchSpec

        if changes:
            raise DipsearchError(f"a resumed random search takes only trials, not {', '.join(sorted(changes))}")
        runtime.check()
        run, config = open_folder(run_dir, self.name, f"dipsearch search {self.name}")
        spec = SearchSpec.from_dict(config["spec"])
        spec.space = str(run.file(SPACE_SNAPSHOT))
        if trials is not None:
            refuse_shrink("trials", trials, int(config[self.name]["trials"]), run.path, "{done} trials")
            spec.settings.trials = trials
        spec.settings.check()
        recipe = ProblemRecipe.from_dict(config["recipe"])
        setup = prepare(recipe.rebuild(f"the run {run.path}"), recipe, spec, remote=runtime.dask is not None)
        setup.threads = config["search"].get("threads")
        return _drive(self, setup, spec.settings, runtime, run, load_initial(run), None)

    def draws(self, setup: SearchSetup, settings: RandomSettings, initial: list[Genome]) -> list[Genome]:
        """The trials' genomes: the seeding's, the default (with_default), then uniform draws; distinct where the
        space allows. Depends only on the space, the seed and the settings, so a resumed run draws them again.
        A subclass that draws otherwise is a new searcher (docs/extending/searcher.md)."""
        return uniform_draws(setup, settings, initial)


def uniform_draws(setup: SearchSetup, settings: RandomSettings, initial: list[Genome]) -> list[Genome]:
    rng = random.Random(setup.spec.seed)
    space = setup.space
    chosen: list[Genome] = []
    keys: set[str] = set()

    def take(genome: Genome) -> None:
        keys.add(setup.candidate(genome, -1).key)
        chosen.append(genome)

    for genome in [*initial, *([space.default()] if settings.with_default else [])][: settings.trials]:
        take(genome)
    while len(chosen) < settings.trials:
        for _ in range(NOVEL_TRIES):
            genome = space.sample(rng)
            if setup.candidate(genome, -1).key not in keys:
                break
        take(genome)
    return chosen


def _drive(
    searcher: RandomSearcher,
    setup: SearchSetup,
    settings: RandomSettings,
    runtime: Runtime,
    run: RunDir | None,
    initial: list[Genome],
    seeding: dict[str, Any] | None,
) -> RandomRun:
    from ..preselect.seeding import record_seeding
    from ..scoring.evaluate import evaluate
    from ..scoring.executors import InProcessExecutor
    from .base import evaluation_result
    from .display import best_line
    from .folder import create_folder
    from .prepare import describe_seeding
    from .record import EVALUATIONS, SearchRecord
    from .rungs import RungRunner, rung_printer
    from .rungs import finish as finish_rungs

    console = runtime.the_console()
    if setup.note:
        console.print(setup.note, highlight=False)
    if seeding:
        console.print(describe_seeding(seeding, settings.with_default), highlight=False)
    executor = runtime.executor()
    fresh = run is None
    start = time.perf_counter()
    try:
        if fresh:
            run = create_folder(setup, searcher.name, settings, runtime, initial, seeding)
        summary_file = run.file("summary.json")
        previous = json.loads(summary_file.read_text()) if summary_file.is_file() else None
        record = SearchRecord(run, setup.space)
        if not fresh:
            console.print(f"resuming {run.path}: {len(record)} evaluations on record", highlight=False)
        genomes = searcher.draws(setup, settings, initial)
        todo = []
        for number, genome in enumerate(genomes):
            key = setup.candidate(genome, -1).key
            if record.lookup(key) is None and all(job.key != key for _, job in todo):
                todo.append((number, setup.candidate(genome, record.next_index() + len(todo))))
        # In-process fits run at submit time: one at a time, so that each result is logged at once.
        window = 1 if isinstance(executor, InProcessExecutor) else max(1, len(todo))
        queue, pending = deque(todo), deque()
        while queue or pending:
            while queue and len(pending) < window:
                number, job = queue.popleft()
                pending.append((number, executor.submit(evaluate, job)))
            number, future = pending.popleft()
            evaluation = evaluation_result(future)
            record.add(evaluation, {"trial": number})
            evaluation.image = None  # best_output.png has it if it was the best
            result = "failed" if evaluation.fitness is None else f"fitness {evaluation.fitness:.2f} dB"
            console.print(f"trial {number + 1}/{len(genomes)}: {result}; {best_line(record.best)}", highlight=False)
            if runtime.on_evaluation is not None:
                runtime.on_evaluation(evaluation)
        selection = None
        if previous is not None and not todo:
            summary = previous  # a finished run resumed with nothing to do keeps the figures that describe it
        else:
            default = record.lookup(setup.candidate(setup.space.default(), -1).key)
            summary = record.summary(
                trials=len(genomes),
                default_fitness=default.fitness if default else None,
                default_psnr=default.psnr if default else None,
                best_genome=record.best.genome if record.best else None,
            )
            plan = setup.plan()
            if plan is not None and record.best is not None:
                selection = RungRunner(
                    setup.space, setup.candidate, record, executor, plan, notify=rung_printer(console)
                ).run()
                summary.update(finish_rungs(record, selection, plan))
            # The wall time of the whole run: an earlier session's (if it finished) and this one's.
            summary["seconds"] = round((previous or {}).get("seconds", 0.0) + time.perf_counter() - start, 3)
            run.write_json("summary.json", summary)
        if seeding:
            record_seeding(run, seeding)
    except BaseException as err:
        if fresh and run is not None and not run.file(EVALUATIONS).exists():
            run.discard()
        elif run is not None:
            err.run_dir = run.path  # where to resume from (the CLI prints the command)
        raise
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    return RandomRun(run, setup, settings, summary, list(record.cache.values()), selection)
