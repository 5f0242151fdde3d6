"""A Bayesian search from Python: start a study (`run`), continue it from its run folder (`resume`), or
work on it from another process or host (`work`); search/bayes.py drives the study and its run folder.

The study stores its recipe (bayes/study.py, user attr "dipsearch"): the problem's ProblemRecipe and
fingerprint, the space as tables, the SearchSpec, the sampler and pruner. `resume` and `work` rebuild
everything from it, so they need nothing but the run folder, or the storage URL and the study name.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ...console import make_console
from ...errors import ArgumentError, DipsearchError
from ...problems.problem import Problem
from ...problems.recipe import ProblemRecipe, as_problem
from ...store.tomlio import load_toml
from ..prepare import SearchSetup, describe_seeding, fit_space_to_image, prepare, starting_genomes
from ..result import SearchResult
from ..spec import Runtime, SearchSpec
from .driver import BayesRun, best_image_saver, run_bayes
from .storage import HOST, STALE_AFTER, StorageSpec, check_stale_after, fail_stale_trials
from .study import (
    RECIPE,
    STALE_AFTER_ATTR,
    TARGET,
    BayesSettings,
    StudyRunner,
    StudyStatus,
    open_study,
    trial_iters,
    worker_seed,
)


def run(
    problem: Problem | ProblemRecipe,
    spec: SearchSpec | None = None,
    runtime: Runtime | None = None,
    *,
    storage: str | None = None,
    study: str | None = None,
) -> SearchResult:
    """Run a study of spec.bayes.trials trials (None: BayesSettings()) on `problem` in a new run folder under
    runtime.out/search/. storage: an Optuna storage URL or journal path (default: study.journal in the run
    folder); an existing study of that name is continued. With a ProblemRecipe of files, `dipsearch worker`
    processes can join the study; a Problem made in Python is worked on by this process and its executor only."""
    return start(problem, spec or SearchSpec(), runtime or Runtime(), storage=storage, study=study).result()


def resume(
    run_dir: str | Path,
    trials: int | None = None,
    runtime: Runtime | None = None,
    *,
    device: str | None = None,
    settings: dict[str, Any] | None = None,
) -> SearchResult:
    """Continue the study of a bayes run folder up to `trials` (None: its target); the problem, space and fit
    settings are the study's. settings: BayesSettings fields to change (sampler, pruner, report_every,
    max_iters, with_default, stale_after)."""
    return continue_run(run_dir, runtime or Runtime(), trials=trials, device=device, **(settings or {})).result()


@dataclass
class BayesDriven:
    """A driven study as the CLI shows it: the driver's BayesRun, its setup and settings."""

    outcome: BayesRun
    setup: SearchSetup
    settings: BayesSettings
    seeding: dict[str, Any] | None = None

    @property
    def run_dir(self) -> Path:
        return self.outcome.run.path

    def result(self) -> SearchResult:
        return SearchResult.load(self.outcome.run.path)


def check_trials(trials: int, storage: str | None) -> None:
    # 0 trials with a shared storage only creates the study, for `dipsearch worker` processes to work on.
    if trials < 0 or (trials == 0 and not storage):
        raise ArgumentError(
            "{trials} must be >= 1, got {value} (0 only with {storage}: create the study for "
            "`dipsearch worker` processes)",
            value=trials,
        )


def start(
    problem_or_recipe: Problem | ProblemRecipe,
    spec: SearchSpec,
    runtime: Runtime,
    *,
    storage: str | None = None,
    study: str | None = None,
) -> BayesDriven:
    runtime.check()
    settings = spec.bayes or BayesSettings()
    check_trials(settings.trials, storage)
    spec = replace(spec, bayes=settings)
    problem, recipe = as_problem(problem_or_recipe)
    setup = prepare(problem, recipe, spec, remote=runtime.dask is not None)
    _check_settings(setup, settings)
    initial, seeding = starting_genomes(setup, settings.trials, keep=max(1, settings.trials // 4))
    if seeding and not settings.with_default:
        initial = initial[1:]  # the default genome is a first trial only with with_default
    if seeding:
        runtime.the_console().print(describe_seeding(seeding, settings.with_default), highlight=False)
    driven = _drive(setup, settings, runtime, storage=storage, study_name=study, initial=initial)
    driven.seeding = seeding
    if seeding:
        from ...preselect.seeding import record_seeding

        record_seeding(driven.outcome.run, seeding)
    return driven


def continue_run(
    run_dir: str | Path, runtime: Runtime, *, trials: int | None = None, device: str | None = None, **changes: Any
) -> BayesDriven:
    import optuna

    from ...store.runs import RunDir
    from ..rungs import RungPlan
    from .storage import open_storage

    runtime.check()
    config = load_toml(RunDir.open(run_dir).file("config.toml"), "run config")
    if "bayes" not in config:
        raise DipsearchError(f"{run_dir} is not a bayes run folder (its config.toml has no [bayes] table)")
    unknown = sorted(set(changes) - set(BayesSettings.__dataclass_fields__) - {"trials"})
    if unknown:
        raise ArgumentError(
            "{settings} has no field {names}; it takes {known}",
            names=", ".join(unknown),
            known=", ".join(f for f in BayesSettings.__dataclass_fields__ if f != "trials"),
        )
    stored = config["bayes"]
    study = optuna.load_study(study_name=stored["study"], storage=open_storage(StorageSpec.parse(stored["storage"])))
    recipe = study.user_attrs.get(RECIPE) or {}
    setup = setup_of_study(recipe, study.study_name, device or config.get("search", {}).get("device", "auto"))
    rungs = config.get("rungs", {"final": 0})
    setup.spec.rungs = RungPlan.from_dict(rungs) if rungs.get("final") else None
    # Unless given again, the study goes on as it was started (a different pruner would be refused).
    settings = BayesSettings(
        trials=trials if trials is not None else int(study.user_attrs.get(TARGET, stored.get("trials", 0))),
        sampler=changes.get("sampler") or recipe["sampler"]["name"],
        pruner=changes.get("pruner") or recipe["pruner"]["name"],
        report_every=changes.get("report_every") or recipe["report_every"],
        max_iters=changes["max_iters"] if changes.get("max_iters") is not None else stored.get("max_iters"),
        with_default=bool(changes.get("with_default", False)),
        stale_after=changes.get("stale_after") or STALE_AFTER,
    )
    check_trials(settings.trials, stored["storage"])
    _check_settings(setup, settings)
    return _drive(setup, settings, runtime, resume=run_dir)


def _check_settings(setup: SearchSetup, settings: BayesSettings) -> None:
    from .study import specs

    specs(setup.space, setup.spec.iters, setup.spec.seed, settings)  # bad sampler/pruner: fail before any work
    if settings.max_iters is not None and settings.max_iters < 1:
        raise ArgumentError("{max_iters} must be >= 1, got {value}", value=settings.max_iters)


def _drive(setup: SearchSetup, settings: BayesSettings, runtime: Runtime, **where: Any) -> BayesDriven:
    console = runtime.the_console()
    if setup.note:
        console.print(setup.note, highlight=False)
    executor, slots = executor_and_slots(runtime)
    try:
        outcome = run_bayes(
            setup,
            settings,
            executor=executor,
            slots=slots,
            out=runtime.out,
            recipe=setup.recipe,
            console=console,
            progress=runtime.progress,
            on_evaluation=runtime.on_evaluation,
            tensorboard=runtime.tensorboard,
            **where,
        )
    finally:
        shutdown(executor)
    return BayesDriven(outcome, setup, settings)


def setup_of_study(recipe: dict[str, Any], study: str, device: str) -> SearchSetup:
    """Problem, space and search settings rebuilt from a study's recipe (for workers and resume)."""
    from ...nets.space import space_from_dict

    if not recipe:
        raise DipsearchError(f"study {study!r} was not made by `dipsearch search bayes` (it has no recipe)")
    stored = recipe.get("problem") or recipe.get("problem_args")  # problem_args: studies made before "problem"
    if not stored:
        raise DipsearchError(
            f"study {study!r} was started on a problem given as tensors in Python; only the process "
            "that holds them can work on it"
        )
    problem_recipe = replace(ProblemRecipe.from_dict(stored), fingerprint=recipe["problem_fingerprint"])
    problem = problem_recipe.rebuild(f"study {study!r}")
    search = recipe["search"]
    if recipe.get("spec"):
        spec = SearchSpec.from_dict(recipe["spec"])
    else:
        spec = SearchSpec(
            iters=search["iters"],
            fitness=search["fitness"],
            eval_scale=search["eval_scale"],
            seed=search["seed"],
            rungs=None,
        )
    spec.device = device
    # The recipe's tables hold one choice list per per-level gene; cutting again restores the per-level cuts.
    space, _ = fit_space_to_image(
        space_from_dict(recipe["space"], source=recipe["space_source"]), problem, search["eval_scale"]
    )
    spec.space = space
    return SearchSetup(problem, space, spec, problem_recipe, threads=spec.threads)


def executor_and_slots(runtime: Runtime) -> tuple[Any, int]:
    """The executor and how many trials to keep in flight on it."""
    from ...scoring.executors import dask_executor, make_executor

    if runtime.dask:
        executor = dask_executor(runtime.dask, runtime.dask_timeout)
        client = getattr(executor, "client", None)
        threads = sum(client.nthreads().values()) if client is not None else 1
        return executor, runtime.workers or max(1, threads)
    return make_executor(runtime.workers), max(1, runtime.workers or 1)


def shutdown(executor: Any) -> None:
    try:
        executor.shutdown(wait=True, cancel_futures=True)
    except TypeError:  # Dask's ClientExecutor has no cancel_futures
        executor.shutdown(wait=True)


# ----------------------------------------------------------------------------- workers


def existing_storage_file(url: str, study: str) -> None:
    """A worker joins a study: a journal or SQLite file that is not there is a typo, not a file to create."""
    path = None
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
    elif "://" not in url:
        path = Path(url[len("journal:") :] if url.startswith("journal:") else url)
    # (a missing folder is left to the storage's own message)
    if path is not None and path.parent.is_dir() and not path.exists():
        kind = "sqlite" if url.startswith("sqlite:") else "journal"
        raise DipsearchError(
            f"no study {study!r} in {kind}:{path}: the file does not exist. `dipsearch worker` joins a "
            "study that `dipsearch search bayes --storage ...` started; give the same file as the driver"
        )


@dataclass
class WorkReport:
    """What one worker did on a study."""

    study: Any  # the optuna.Study
    told_here: int
    target: int
    stale: list[int]
    seconds: float

    def summary(self) -> dict[str, Any]:
        status = StudyStatus.of(self.study)
        return {
            "told_here": self.told_here,
            "study_trials": status.counted,
            "target": self.target,
            "pruned": status.pruned,
            "running": status.running,
            "seconds": round(self.seconds, 2),
            "best_fitness": status.best.value if status.best else None,
        }


def work(
    storage: str,
    study: str,
    *,
    trials: int | None = None,
    device: str = "auto",
    seed: int | None = None,
    stale_after: float | None = None,
    console: Any = None,
    progress: bool = False,
    tensorboard: bool = False,
) -> WorkReport:
    """Ask, fit and tell trials of an existing study (made by `bayes.run` or `dipsearch search bayes`) in this
    process until it has `trials` trials (None: the target its driver set). The problem, space and settings come
    from the study's recipe. seed: this worker's sampler seed (None: derived from the host and process id).
    stale_after: seconds without a heartbeat after which another process's trial is failed (None: the value the
    study's driver stored, so that every process judges alike; else STALE_AFTER). tensorboard: this worker's
    trials write TensorBoard runs into the driver's run folder (its path on this machine: a shared file system)."""
    from ...problems.recipe import check_seed
    from .display import StudyDisplay, trial_line
    from .samplers import PrunerSpec, SamplerSpec

    check_seed(seed)
    if stale_after is not None:
        check_stale_after(stale_after)
    if trials is not None and trials < 1:
        raise ArgumentError("{trials} must be >= 1, got {value}", value=trials)
    console = console or make_console()
    existing_storage_file(storage, study)
    spec = StorageSpec.parse(storage)
    # Open once with a throwaway sampler to read the recipe, then with the study's own sampler and pruner.
    recipe = open_study(spec, study, sampler=None, pruner=None, create=False).user_attrs.get(RECIPE)
    setup = setup_of_study(recipe, study, device)
    if tensorboard:
        from ...fitting.tensorboard import require

        require()
        setup.log_into(Path(recipe["run_dir"]), True)  # every driver (run_bayes) stores its run folder there
    sampler = SamplerSpec(recipe["sampler"]["name"], recipe["sampler"]["settings"])
    pruner = PrunerSpec(recipe["pruner"]["name"], recipe["pruner"]["settings"])
    seed = seed if seed is not None else worker_seed(int(recipe["search"]["seed"]), f"{HOST}:{os.getpid()}")
    opened = open_study(spec, study, sampler.build(seed), pruner.build(), create=False)
    target = trials if trials is not None else int(opened.user_attrs.get(TARGET, 0))
    if stale_after is None:
        stale_after = float(opened.user_attrs.get(STALE_AFTER_ATTR, STALE_AFTER))
    stale = fail_stale_trials(opened, stale_after)
    if stale:
        console.print(f"trials {', '.join(map(str, stale))} were left running by a process that is gone: marked FAIL")
    save_best = best_image_saver(recipe.get("run_dir"), opened)
    display = StudyDisplay(console, target, f"worker on {study}", enabled=progress)

    def told(trial, evaluation) -> None:  # noqa: ANN001 - optuna's FrozenTrial, an Evaluation
        save_best(trial, evaluation)
        display.update(StudyStatus.of(opened))
        if not progress:
            console.print(trial_line(trial, evaluation, target), highlight=False)

    start = time.perf_counter()
    runner = StudyRunner(
        opened,
        spec,
        setup.candidate,
        setup.space,
        pruner,
        int(recipe["report_every"]),
        target,
        trial_iters(setup.space, setup.spec.iters),
        on_tell=told,
        stale_after=stale_after,
    )
    with display:
        display.update(StudyStatus.of(opened))
        runner.run()
    return WorkReport(opened, runner.told, target, stale, time.perf_counter() - start)
