"""Bayesian architecture and hyperparameter search with Optuna: `run_bayes` drives one run folder.

The study (in its storage) holds the truth; the run folder runs/search/<stamp>_bayes/ is the driver's
view of it: evaluations.jsonl gets one line per finished trial of the study, whichever process ran it
(driver, its pool or Dask workers, or a `dipsearch worker`), best_arch.toml and best_output.png follow
the best complete trial, and summary.json and the plots are written at the end. With a final rung (the
default, search/rungs.py) the driver then refits the finalists at the full budget with stopping, and
best_arch.toml and best_output.png become the final rung's choice. Because the view is
rebuilt from the study, a killed driver restarted on the same storage and study loses nothing but the
fits that were running (they are failed as stale and re-asked).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import optuna
import torch
from optuna.trial import FrozenTrial, TrialState
from rich.console import Console

from ...console import make_console
from ...errors import DipsearchError
from ...nets.space import SearchSpace
from ...problems.problem import Problem
from ...problems.recipe import ProblemRecipe
from ...scoring.evaluate import Candidate, Evaluation
from ...scoring.executors import InProcessExecutor
from ...store.runs import RunDir, save_image_atomic, write_atomic
from ...store.tomlio import load_toml
from ..record import EVALUATIONS, SearchRecord
from ..rungs import RungPlan, RungRunner, Selection, rung_printer
from ..rungs import finish as finish_rungs
from .display import StudyDisplay, trial_line, write_plots
from .space import enqueue_genome
from .storage import STALE, StorageSpec, fail_stale_trials, open_storage
from .study import (
    RECIPE,
    RESULT,
    STALE_AFTER_ATTR,
    TARGET,
    BayesSettings,
    StudyRunner,
    StudyStatus,
    check_recipe,
    evaluation_of,
    fit_iters,
    make_recipe,
    open_study,
    specs,
    trial_iters,
)

IMAGES = "images"  # where `dipsearch worker` leaves the output of a trial that was the study's best


class SetupLike(Protocol):
    """What the driver needs of a search setup (dipsearch.search.prepare.SearchSetup is one)."""

    problem: Problem
    space: SearchSpace

    def candidate(self, genome: dict[str, Any], index: int, **extra: Any) -> Candidate: ...

    def config(self) -> dict[str, Any]: ...

    def plan(self) -> RungPlan | None: ...

    def log_into(self, run_path: Path, tensorboard: bool) -> None:
        """Where the candidates write TensorBoard logs (needed with tensorboard=True only)."""


@dataclass
class BayesRun:
    run: RunDir
    study: optuna.Study
    storage: StorageSpec
    summary: dict[str, Any]
    stale: list[int]  # trials this start found abandoned and failed
    selection: Selection | None = None  # the final rung's finalists and choice (multi-fidelity search)


def trial_image_path(run_path: Path, number: int) -> Path:
    return Path(run_path) / IMAGES / f"trial_{number:05d}.png"


class RunView:
    """The run folder as a view of the study: logs each finished trial once, keeps the best files."""

    def __init__(self, run: RunDir, space: SearchSpace, study: optuna.Study):
        self.run, self.space, self.study = run, space, study
        self.record = SearchRecord(run, space)
        self.logged = {row["trial"] for row in run.read_jsonl(EVALUATIONS) if "trial" in row}

    def sync(self, images: dict[int, torch.Tensor | None] | None = None) -> None:
        finished = [
            t for t in self.study.get_trials(deepcopy=False) if t.state.is_finished() and t.number not in self.logged
        ]
        for trial in sorted(finished, key=lambda t: t.number):
            evaluation = evaluation_of(trial, self.space)
            evaluation.image = (images or {}).get(trial.number)
            result = trial.user_attrs.get(RESULT) or {}
            extra = {
                "trial": trial.number,
                "state": trial.state.name,
                "value": trial.value,
                "study": self.study.study_name,
                "cached_from": result.get("cached_from"),
                "stale": trial.user_attrs.get(STALE),
            }
            if self.record.add(evaluation, extra) and evaluation.image is None:
                self._best_image_from_elsewhere(trial.number)
            self.logged.add(trial.number)

    def _best_image_from_elsewhere(self, number: int) -> None:
        # The new best ran in another process: use the image a worker left, else drop the old best's image
        # rather than show a picture of a different network.
        source = trial_image_path(self.run.path, number)
        target = self.run.file("best_output.png")
        if source.is_file():
            write_atomic(target, source.read_bytes())
        else:
            target.unlink(missing_ok=True)


def best_image_saver(run_dir: str | None, study: optuna.Study) -> Callable[[FrozenTrial, Evaluation], None]:
    """For processes other than the driver: keep the output of a trial that is the study's best so far,
    in the driver's run folder when this host can reach it (a shared filesystem)."""

    def save(trial: FrozenTrial, evaluation: Evaluation) -> None:
        if run_dir is None or evaluation.image is None or trial.state != TrialState.COMPLETE:
            return
        if not (Path(run_dir) / "config.toml").is_file():
            return
        best = StudyStatus.of(study).best
        if best is not None and best.number == trial.number:
            path = trial_image_path(Path(run_dir), trial.number)
            path.parent.mkdir(exist_ok=True)
            save_image_atomic(path, evaluation.image)

    return save


def _existing_run(study_recipe: dict[str, Any] | None) -> RunDir | None:
    run_dir = (study_recipe or {}).get("run_dir")
    if run_dir and (Path(run_dir) / "config.toml").is_file():
        return RunDir(Path(run_dir))
    return None


def run_bayes(
    setup: SetupLike,
    settings: BayesSettings,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    executor: Executor | None = None,
    slots: int = 1,
    out: str | Path = "runs",
    recipe: ProblemRecipe | None = None,
    resume: str | Path | None = None,
    console: Console | None = None,
    progress: bool = True,
    initial: list[dict[str, Any]] = (),
    on_evaluation: Callable[[Evaluation], None] | None = None,
    tensorboard: bool = False,
) -> BayesRun:
    """Run (or continue) a study of `settings.trials` trials and write its run folder.

    storage: an Optuna storage URL or journal path (default: study.journal in a new run folder).
    resume: a bayes run folder: its storage and study are continued and its files updated.
    recipe: how `dipsearch worker` rebuilds the problem (problems/recipe.py); without one, or with the recipe
    of tensors made in Python, only this process (and its executor) can work on the study.
    initial: genomes to enqueue as the first trials (dipsearch.preselect.seeding), before the sampler's own.
    on_evaluation: called after each trial this process told (KeyboardInterrupt from it stops the study as
    Ctrl-C would; the exception carries the run folder as `run_dir`).
    tensorboard: each trial's fit and scores as a TensorBoard run in the run folder's tensorboard/ (the setup's
    log_into; needs the tensorboard extra).
    The dipsearch.search.bayes.run/resume functions (search/bayes/api.py) build the setup and call this.
    """
    console = console or make_console()
    space = setup.space
    probe = setup.candidate(space.default(), 0)
    sampler, pruner, every = specs(space, probe.iters, probe.seed, settings)
    study_recipe = make_recipe(probe, space, sampler, pruner, every, recipe, None, getattr(setup, "spec", None))
    run: RunDir | None = None
    storage_spec = StorageSpec.parse(storage) if storage else None
    if resume is not None:
        run = RunDir.open(resume)
        stored = load_toml(run.file("config.toml"), "run config").get("bayes", {})
        if "storage" not in stored:
            raise DipsearchError(f"{resume} is not a bayes run folder (its config.toml has no [bayes] table)")
        storage_spec, study_name = StorageSpec.parse(stored["storage"]), stored["study"]
    elif storage_spec is not None:
        backend = open_storage(storage_spec)  # a bad URL fails here, before any folder is made
        name = study_name or f"bayes-{space.name}"
        if name in {s.study_name for s in backend.get_all_studies()}:
            stored = optuna.load_study(study_name=name, storage=backend).user_attrs.get(RECIPE)
            if stored:
                check_recipe(stored, study_recipe, name)
            run = _existing_run(stored)
    created = run is None
    if run is None:
        run = RunDir.create(out, "search", "bayes")
    try:
        storage_spec = storage_spec or StorageSpec.in_run(run.path)
        study_name = study_name or f"bayes-{space.name}"
        run.write_toml(
            "config.toml",
            {
                **setup.config(),
                "bayes": {
                    "trials": settings.trials,
                    "storage": storage_spec.url,
                    "study": study_name,
                    "report_every": every,
                    "max_iters": settings.max_iters,
                    "with_default": settings.with_default,
                    "slots": slots,
                    "sampler": {"name": sampler.name, **sampler.settings},
                    "pruner": {"name": pruner.name, **pruner.settings},
                },
            },
        )
        if resume is None or not run.file("summary.json").is_file():
            run.write_versions(str(probe.device))  # a finished run keeps the versions that made its figures
        study = open_study(storage_spec, study_name, sampler.build(), pruner.build(), create=True)
        stored_recipe = study.user_attrs.get(RECIPE)
        if stored_recipe:
            check_recipe(stored_recipe, study_recipe, study_name)
            # Problem, space and budget stay as stored; the sampler and run folder are this run's (workers follow).
            study_recipe = {**stored_recipe, "sampler": study_recipe["sampler"], "run_dir": str(run.path.resolve())}
        else:
            study_recipe["run_dir"] = str(run.path.resolve())
        study.set_user_attr(RECIPE, study_recipe)
        study.set_user_attr(TARGET, settings.trials)
        study.set_user_attr(STALE_AFTER_ATTR, settings.stale_after)  # workers judge heartbeats alike
        for genome in initial:
            enqueue_genome(study, space, genome)
    except BaseException:
        if created:
            run.discard()
        raise
    if tensorboard:
        setup.log_into(run.path, tensorboard)
    try:
        return _drive(
            setup, settings, study, storage_spec, run, pruner, every, executor, slots, console, progress, on_evaluation
        )
    except BaseException as err:
        err.run_dir = run.path  # where to resume from (the CLI prints the command)
        raise


def _drive(
    setup: SetupLike,
    settings: BayesSettings,
    study: optuna.Study,
    storage: StorageSpec,
    run: RunDir,
    pruner: Any,
    every: int,
    executor: Executor | None,
    slots: int,
    console: Console,
    progress: bool,
    on_evaluation: Callable[[Evaluation], None] | None = None,
) -> BayesRun:
    start = time.perf_counter()
    previous = _finished_summary(run)
    stale = fail_stale_trials(study, settings.stale_after)
    if stale:
        console.print(f"trials {', '.join(map(str, stale))} were left running by a process that is gone: marked FAIL")
    view = RunView(run, setup.space, study)
    view.sync()
    display = StudyDisplay(console, settings.trials, f"bayes {study.study_name}", enabled=progress)

    def told(trial: FrozenTrial, evaluation: Evaluation) -> None:
        view.sync({trial.number: evaluation.image})
        display.update(StudyStatus.of(study))
        if not progress:
            console.print(trial_line(trial, evaluation, settings.trials), highlight=False)
        if on_evaluation is not None:
            on_evaluation(evaluation)

    def tick() -> None:
        view.sync()
        display.update(StudyStatus.of(study))

    runner = StudyRunner(
        study,
        storage,
        setup.candidate,
        setup.space,
        pruner,
        every,
        settings.trials,
        trial_iters(setup.space, setup.candidate(setup.space.default(), 0).iters),
        executor or InProcessExecutor(),
        max(1, slots),
        settings.max_iters,
        settings.with_default,
        on_tell=told,
        on_tick=tick,
        stale_after=settings.stale_after,
    )
    plan, selection = setup.plan(), None
    try:
        with display:
            display.update(StudyStatus.of(study))
            runner.run()
        view.sync()
        # The driver alone runs the rungs, after the study reached its target, and only when some trial
        # finished: when every one failed the search has no winner to refine, and says so.
        if plan is not None and view.record.best is not None:
            selection = RungRunner(
                setup.space, setup.candidate, view.record, runner.executor, plan, notify=rung_printer(console)
            ).run()
    finally:
        if previous is not None and runner.told == 0:
            summary = previous  # a finished run resumed with nothing to do keeps the figures of the run that made them
        else:
            summary = finish(
                study,
                storage,
                run,
                view,
                (previous or {}).get("seconds", 0.0) + time.perf_counter() - start,
                told_here=runner.told,
                plan=plan,
                selection=selection,
            )
    return BayesRun(run, study, storage, summary, stale, selection)


def _finished_summary(run: RunDir) -> dict[str, Any] | None:
    """The summary of a run that finished before (None for a new or interrupted one)."""
    path = run.file("summary.json")
    return json.loads(path.read_text()) if path.is_file() else None


def finish(
    study: optuna.Study,
    storage: StorageSpec,
    run: RunDir,
    view: RunView,
    seconds: float,  # the wall time of the whole run, every session of the driver together
    told_here: int,
    plan: RungPlan | None = None,
    selection: Selection | None = None,
) -> dict[str, Any]:
    """Bring the view up to date and write summary.json and the plots."""
    view.sync()
    status = StudyStatus.of(study)
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    fit_seconds = sum(float((t.user_attrs.get(RESULT) or {}).get("seconds") or 0) for t in finished if fit_iters(t))
    plots = write_plots(study, run.path)
    fits = sum(1 for t in finished if RESULT in t.user_attrs and t.user_attrs[RESULT].get("cached_from") is None)
    summary = view.record.summary(
        evaluations=fits,
        trials=status.counted,
        complete=status.complete,
        pruned=status.pruned,
        failed=status.failed,
        stale=status.stale,
        running=status.running,
        iters_run=status.iters_used,
        fit_seconds=round(fit_seconds, 2),
        seconds=round(seconds, 2),
        told_here=told_here,
        best_trial=view.record.best.index if view.record.best else None,
        study=study.study_name,
        storage=storage.display,
        plots=plots,
        dashboard=storage.dashboard_command(),
    )
    if selection is not None:
        summary.update(finish_rungs(view.record, selection, plan))
    run.write_json("summary.json", summary)
    return summary
