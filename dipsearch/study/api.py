"""Start or continue a study: `run_study(settings)` and `resume_study(run_dir)`, as the CLI and a notebook call them.

Everything a user can get wrong (images, levels, space, storage, numbers) is checked before the run folder is
made. The run folder is runs/study/<stamp>_<tag>/ under `out`; its study.json holds the settings and the storage
URL, so `resume_study` needs nothing else. After each trial the folder's trials, pick and winner files are
rewritten; at the end the comparison, importances, plots and report.html.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
from rich.console import Console

from ..errors import DipsearchError
from ..nets.space import Genome, SearchSpace, find_space, load_space
from ..scoring.evaluate import Candidate
from ..stopping.spec import StopSpec
from ..store.runs import RunDir
from .display import StudyDisplay
from .files import FITS, write_comparison, write_pick
from .genomes import skips_everywhere
from .instances import Instance, build_instances, check_distinct
from .outcome import Outcome, outcome
from .plots import complete_study, importances, write_plots
from .runner import StudyRunner, counts
from .settings import StudySettings
from .storage import make_pruner, make_recipe, make_sampler, open_study

SETTINGS_FILE = "study.json"
SPACE_FILE = "space.toml"  # the space as the study started with it: a resume reads this, not a file edited since
STOP = "auto"  # restore's members stop with the recommended stopping (dipsearch.pipelines.restore)


@dataclass
class Prepared:
    """A study checked on its files: the instances built, the space cut to the smallest image, the fit resolved."""

    settings: StudySettings
    full_space: SearchSpace
    space: SearchSpace
    instances: list[Instance]
    iters: int
    device: str
    threads: int | None
    budget: str

    def candidate(self, genome: Genome, instance: Instance, index: int = 0) -> Candidate:
        """A restore member's fit of `genome` on one instance: holdout split, auto stopping, the member's budget."""
        return Candidate(
            genome=genome,
            arch=self.space.decode(genome),
            problem=instance.problem,
            iters=self.iters,
            seed=self.settings.seed,
            fitness="holdout",
            fit_settings=self.space.fit_settings(genome),
            device=self.device,
            index=index,
            threads=self.threads,
            stop=StopSpec(STOP),
        )

    @property
    def default_key(self) -> str:
        return self.candidate(self.space.default(), self.instances[0]).key

    def about(self) -> dict[str, Any]:
        s = self.settings
        levels = ", ".join("default" if v is None else f"{v:g}" for v in s.sigmas)
        what = f"{s.task}, {len(self.instances) // len(s.sigmas)} image(s) x level(s) {levels}, crop {s.crop}"
        return {"instances": len(self.instances), "what": what, "iters": self.iters, "space": self.full_space.source}


def prepare_study(settings: StudySettings) -> Prepared:
    """Check everything and build the instances; nothing is written."""
    from ..fitting.fit import resolve_device
    from ..pipelines.choosers import BUDGETS
    from ..search.prepare import fit_space_to_image

    settings.check()
    device = resolve_device(settings.device)
    budget = "gpu" if device.type == "cuda" else "cpu"
    full = load_space(find_space(settings.space or BUDGETS[budget].space))
    if not full.genes:
        raise DipsearchError(f"{full.source} declares no gene to study; give a space with [genes] or [levels]")
    instances = build_instances(settings.images, list(settings.sigmas), settings.recipe())
    smallest = min(instances, key=lambda i: i.problem.image_shape[1] * i.problem.image_shape[2])
    space, _ = fit_space_to_image(full, smallest.problem)
    if not space.genes:
        raise DipsearchError(f"only one network of {full.source} fits the smallest image; use a larger --crop")
    iters = settings.iters or BUDGETS[budget].iters
    _check_stopping(smallest.problem, settings.seed, iters)
    threads = settings.threads if settings.threads is not None else (1 if device.type == "cpu" else None)
    return Prepared(settings, full, space, instances, iters, str(device), threads, budget)


def _check_stopping(problem: Any, seed: int, iters: int) -> None:
    """The members' stopping must work on this task and have room within the budget; else every fit would fail."""
    from ..errors import ArgumentError

    hook = StopSpec(STOP).hook(seed, problem)
    need, name = max((max(getattr(d, "warmup", 0) + 1, d.window), d.name) for d in hook.detectors)
    if iters <= need:
        raise ArgumentError(
            "{iters} ({value}) must exceed the warm-up/window of the members' stopping ({name}: {steps} steps)",
            value=iters,
            name=name,
            steps=need - 1,
        )


@dataclass
class StudyResult:
    run: RunDir
    study: optuna.Study
    outcome: Outcome
    summary: dict[str, Any]
    comparison: list[dict[str, Any]] = field(default_factory=list)
    importances: dict[str, float] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return self.run.path


def run_study(
    settings: StudySettings, out: str | Path = "runs", console: Console | None = None, progress: bool = False
) -> StudyResult:
    """Start a study in a new run folder under `out`; `progress`: live bars (a terminal) besides the lines."""
    from ..search.bayes.storage import StorageSpec

    settings = settings.resolved()
    prepared = prepare_study(settings)
    check_distinct(prepared.instances)  # new studies only: a folder made before this check still resumes
    recipe = make_recipe(settings, prepared.space, prepared.instances, prepared.iters)
    sampler = make_sampler(settings.sampler, settings.seed, settings.trials, settings.objective)
    pruner = make_pruner(settings.objective, settings.p_threshold)
    study = None
    if settings.storage is not None:  # a storage of another kind is refused before the run folder exists
        storage = StorageSpec.parse(settings.storage)
        study = open_study(storage, recipe, sampler, pruner)
    tag = f"{settings.task}_{len(prepared.instances)}"
    run = RunDir.create(out, "study", tag)
    try:
        if study is None:
            storage = StorageSpec.in_run(run.path)
            study = open_study(storage, recipe, sampler, pruner)
        run.write_json(SETTINGS_FILE, {"settings": settings.to_dict(), "storage": storage.url})
        run.write_text(SPACE_FILE, Path(prepared.full_space.source).read_text())
        run.write_toml("config.toml", _config(prepared, storage.url))
        run.write_versions(prepared.device)
        if not study.trials:
            _enqueue_start(study, prepared.space)
    except BaseException:
        run.discard()
        raise
    return _drive(run, study, prepared, console, progress)


def resume_study(
    run_dir: str | Path,
    trials: int | None = None,
    workers: int | None = None,
    console: Console | None = None,
    progress: bool = False,
) -> StudyResult:
    """Continue a study from its run folder (after a kill, or with a larger `trials` target); finished fits are
    taken from the storage, never refitted."""
    import json

    from ..search.bayes.storage import StorageSpec

    run = RunDir.open(run_dir)
    path = run.file(SETTINGS_FILE)
    if not path.is_file():
        raise DipsearchError(f"{run.path} is not a study's run folder (it has no {SETTINGS_FILE})")
    stored = json.loads(path.read_text())
    settings = StudySettings.from_dict(stored["settings"])
    changes = {k: v for k, v in (("trials", trials), ("workers", workers)) if v is not None}
    settings = replace(settings, **changes)
    snapshot = run.file(SPACE_FILE)
    prepared = prepare_study(replace(settings, space=str(snapshot)) if snapshot.is_file() else settings)
    recipe = make_recipe(settings, prepared.space, prepared.instances, prepared.iters)
    # Reseeded by the fits on record: the first session's seed would draw its random start-up trials again
    sampler_seed = settings.seed + len(_finished(run))
    study = open_study(
        StorageSpec.parse(stored["storage"]),
        recipe,
        make_sampler(settings.sampler, sampler_seed, settings.trials, settings.objective),
        make_pruner(settings.objective, settings.p_threshold),
    )
    if changes:
        run.write_json(SETTINGS_FILE, {**stored, "settings": settings.to_dict()})
    return _drive(run, study, prepared, console, progress)


def _finished(run: RunDir) -> list[dict[str, Any]]:
    return run.read_jsonl(FITS) if run.file(FITS).is_file() else []


def _config(prepared: Prepared, storage: str) -> dict[str, Any]:
    s = prepared.settings
    return {
        "study": {k: v for k, v in s.to_dict().items() if v is not None and k not in ("sigmas", "images")},
        "images": [str(Path(p).resolve()) for p in s.images],
        "levels": [v for v in s.sigmas if v is not None],
        "fit": {
            "space_file": prepared.full_space.source,
            "iters": prepared.iters,
            "stop": STOP,
            "fitness": "holdout",
            "budget": prepared.budget,
            "device": prepared.device,
            "threads": prepared.threads or 0,
        },
        "storage": storage,
    }


def _enqueue_start(study: optuna.Study, space: SearchSpace) -> None:
    """Trial 0 is the space default (the reference every trial is compared with), trial 1 the seed's skip
    pattern (skip channels at every level) where the space can express it."""
    from ..search.bayes.space import enqueue_genome

    enqueue_genome(study, space, space.default())
    skips = skips_everywhere(space)
    if skips is not None:
        enqueue_genome(study, space, skips)


def _drive(
    run: RunDir, study: optuna.Study, prepared: Prepared, console: Console | None, progress: bool
) -> StudyResult:
    from ..scoring.executors import make_executor

    console = console or Console(quiet=True)
    s = prepared.settings
    target_done = sum(map(counts, study.get_trials(deepcopy=False)))
    started = time.perf_counter()

    def on_trial(trial: Any) -> None:
        display.trial(trial)
        _write_progress(run, study, prepared, time.perf_counter() - started)

    def on_fit(trial: Any, instance: Instance, fit: dict[str, Any]) -> None:
        run.append_jsonl(FITS, {"trial": trial.number, "name": instance.name, **fit})
        display.fit(trial, instance, fit)

    executor = make_executor(s.workers)
    with StudyDisplay(console, s.trials, len(prepared.instances), target_done, progress) as display:
        runner = StudyRunner(
            study,
            prepared.space,
            prepared.instances,
            prepared.candidate,
            s.trials,
            executor,
            slots=s.workers or 1,
            on_fit=on_fit,
            on_trial=on_trial,
        )
        try:
            runner.run()
        except BaseException as err:
            err.run_dir = run.path  # type: ignore[attr-defined] - the CLI prints the command that continues
            raise
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
    return _finish(run, study, prepared, time.perf_counter() - started, runner)


def _write_progress(run: RunDir, study: optuna.Study, prepared: Prepared, seconds: float) -> Outcome:
    found = outcome(study, len(prepared.instances), prepared.default_key, prepared.settings.max_cost)
    write_pick(run, found, prepared.space, prepared.full_space, prepared.about())
    write_comparison(run, study, found, prepared.instances)
    run.write_json("summary.json", {**found.summary(), "seconds_this_session": round(seconds, 1)})
    return found


def _finish(run: RunDir, study: optuna.Study, prepared: Prepared, seconds: float, runner: Any) -> StudyResult:
    from ..pipelines.report import write_report

    found = _write_progress(run, study, prepared, seconds)
    comparison = write_comparison(run, study, found, prepared.instances)  # rewritten: its rows are returned
    complete = complete_study(study, {r["trial"] for r in found.rows if r["complete"]})
    found_importances, why = importances(complete)
    run.write_json("importances.json", {"importances": found_importances, "note": why})
    plots = write_plots(complete, run.path, prepared.settings.objective == "pareto", bool(found_importances))
    summary = {
        **found.summary(),
        "objective": prepared.settings.objective,
        "fits_run": runner.fitted,
        "fits_reused": runner.reused,
        "seconds_this_session": round(seconds, 1),
        "importances": found_importances,
        "plots": plots,
    }
    if why:
        summary["importances_note"] = why
    run.write_json("summary.json", summary)
    write_report(run.path)
    return StudyResult(run, study, found, summary, comparison, found_importances)
