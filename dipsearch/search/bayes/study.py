"""An Optuna study as dipsearch runs it: recipe, status, and the ask/tell loop (N trials in flight).

The study's storage is the one source of truth, shared by the driver (`dipsearch search bayes`), its
local or Dask workers and any `dipsearch worker` that joins from another process or host:
- each trial carries its genome, candidate key, owner and heartbeat (user attrs) from the moment it is
  asked, and its result (user attr "result") when told, so any process can log, cache or fail it;
- `--trials N` is a target for the whole study, counted from the storage: complete, pruned and failed
  fits count, trials failed as stale (their process died) do not, so a restarted study re-runs them;
- the problem, space and search settings are stored in the study's user attrs (`recipe`), so a worker
  needs nothing but the storage URL and the study name, and a mismatching driver is refused. The problem
  is stored as its recipe (problems/recipe.py: absolute paths, seed) plus a fingerprint of the tensors, not as a pickle: a few
  hundred bytes fit any storage (an RDB attr column may be limited to 64 KB; a 128 px problem pickles to
  ~0.5 MB), it needs no file next to a journal that an RDB does not have, and the fingerprint turns a
  worker that rebuilt something else (other files, other torch noise) into a clear error.
The run folder (evaluations.jsonl, best_arch.toml, ...) is a view of the study, written by the driver.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ...errors import ArgumentError, DipsearchError
from ...nets.space import SearchSpace, space_to_dict
from ...problems.recipe import ProblemRecipe, problem_fingerprint
from ...scoring.evaluate import Candidate, Evaluation, evaluate
from ...scoring.executors import InProcessExecutor
from ..limits import check_fits
from ..spec import SearchSpec
from .samplers import PrunerSpec, SamplerSpec, TrialReporter, pruner_spec, sampler_spec
from .space import enqueue_default, genome_from_params, suggest_genome
from .storage import (
    HEARTBEAT_INTERVAL,
    OWNER,
    STALE,
    STALE_AFTER,
    Heartbeat,
    StorageSpec,
    check_stale_after,
    fail_stale_trials,
    open_storage,
)

RECIPE = "dipsearch"  # study user attr: everything a worker needs to rebuild the search
TARGET = "target_trials"  # study user attr: the study's trial target, updated by each driver
STALE_AFTER_ATTR = "stale_after"  # study user attr: the driver's --stale-after, which workers use by default
RESULT = "result"  # trial user attr: the evaluation (fitness, psnr, params, iters_run, seconds, error, ...)
SURPLUS = "surplus"  # trial user attr: asked after the target was reached by another process
INTERRUPTED = "interrupted"  # trial user attr: its process was stopped (Ctrl-C) before it finished
WAIT_POLL = 2.0  # seconds between looks at the study while only other processes' trials run
RESULT_FIELDS = ("fitness", "psnr", "params", "iters_run", "seconds", "error", "host", "stopped_iter")


@dataclass
class BayesSettings:
    trials: int = 20  # target number of counted trials in the study
    sampler: str = "tpe"
    pruner: str = "median"
    report_every: int | None = None  # steps between running-fitness reports; default a tenth of the fit
    max_iters: int | None = None  # total fit-iteration budget of the study (stop asking when spent)
    with_default: bool = False  # enqueue the space's default genome as the first trial
    stale_after: float = STALE_AFTER


def trial_iters(space: SearchSpace, iters: int) -> int:
    """The most iterations one candidate can take: the space's iters gene wins over --iters."""
    gene = space.genes.get("iters")
    if gene is not None:
        return int(max(gene.choices) if gene.kind == "choice" else gene.high)
    return int(space.fixed.get("iters", iters))


def specs(space: SearchSpace, iters: int, seed: int, settings: BayesSettings) -> tuple[SamplerSpec, PrunerSpec, int]:
    """Validated sampler and pruner specs and the report interval (unknown names raise here, early)."""
    if settings.trials < 0:
        raise ArgumentError("{trials} must be >= 0, got {value}", value=settings.trials)
    check_fits(settings.trials, "{trials} {value}", value=settings.trials)
    check_stale_after(settings.stale_after)
    longest = trial_iters(space, iters)
    every = settings.report_every or max(1, longest // 10)
    if every < 1:
        raise ArgumentError("{report_every} must be >= 1, got {value}", value=every)
    # Size the sampler to the trials that will run in full: with an iteration budget that may be fewer.
    expected = (
        settings.trials if settings.max_iters is None else min(settings.trials, max(1, settings.max_iters // longest))
    )
    return sampler_spec(settings.sampler, seed, expected), pruner_spec(settings.pruner, longest, every), every


def make_recipe(
    candidate: Candidate,
    space: SearchSpace,
    sampler: SamplerSpec,
    pruner: PrunerSpec,
    report_every: int,
    problem: ProblemRecipe | None,
    run_dir: Path | None,
    spec: SearchSpec | None = None,
) -> dict[str, Any]:
    """The study's user attr RECIPE. Studies made before "problem" and "spec" stored "problem_args" (the flags)."""
    return {
        "format": 1,
        # A problem given as tensors has only its fingerprint: workers cannot rebuild it and say so.
        "problem": problem.to_dict() if problem is not None else None,
        "spec": spec.to_dict() if spec is not None else None,
        "problem_fingerprint": problem_fingerprint(candidate.problem),
        "space": space_to_dict(space),
        "space_source": space.source,
        "search": {
            "iters": candidate.iters,
            "fitness": candidate.fitness,
            "eval_scale": candidate.scale,
            "seed": candidate.seed,
            "output": candidate.output,
        },
        "sampler": {"name": sampler.name, "settings": sampler.settings},
        "pruner": {"name": pruner.name, "settings": pruner.settings},
        "report_every": report_every,
        "run_dir": str(run_dir.resolve()) if run_dir else None,
    }


def check_recipe(stored: dict[str, Any], current: dict[str, Any], study_name: str) -> None:
    """A study continues only with the problem, space and fit budget it was started with."""
    differ = [
        k
        for k in ("problem_fingerprint", "space", "search", "pruner", "report_every")
        if stored.get(k) != current.get(k)
    ]
    if differ:
        raise ArgumentError(
            "study {name!r} was started with a different {differ}; continue it with the same problem, {space}, "
            "{iters}, {fitness}, {eval_scale}, {seed} and {pruner}, or pick a new {study} name",
            name=study_name,
            differ=", ".join(differ),
        )


def open_study(
    storage: StorageSpec,
    name: str,
    sampler: optuna.samplers.BaseSampler | None,
    pruner: optuna.pruners.BasePruner | None,
    create: bool,
) -> optuna.Study:
    """Create (or continue) the study, or, with create=False, join one that must exist."""
    backend = open_storage(storage)
    if create:
        return optuna.create_study(
            study_name=name, storage=backend, sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True
        )
    names = [s.study_name for s in backend.get_all_studies()]
    if name not in names:
        raise DipsearchError(f"no study {name!r} in {storage.display}; studies there: {', '.join(names) or 'none'}")
    return optuna.load_study(study_name=name, storage=backend, sampler=sampler, pruner=pruner)


def worker_seed(seed: int, tag: str) -> int:
    """A distinct, reproducible sampler seed for each process that joins a study."""
    return zlib.crc32(f"{seed}:{tag}".encode()) & 0x7FFFFFFF


# ----------------------------------------------------------------------------- study state


def _counts(trial: FrozenTrial) -> bool:
    """Whether a finished trial uses up the budget: yes unless it was abandoned (stale, interrupted) or surplus."""
    if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
        return True
    return trial.state == TrialState.FAIL and not {STALE, SURPLUS, INTERRUPTED} & set(trial.user_attrs)


def fit_iters(trial: FrozenTrial) -> int:
    """Fit iterations this trial actually spent (0 when its result came from the cache)."""
    result = trial.user_attrs.get(RESULT) or {}
    return 0 if result.get("cached_from") is not None else int(result.get("iters_run") or 0)


@dataclass
class StudyStatus:
    counted: int = 0
    running: int = 0
    complete: int = 0
    pruned: int = 0
    failed: int = 0
    stale: int = 0
    iters_used: int = 0
    best: FrozenTrial | None = None

    @classmethod
    def of(cls, study: optuna.Study) -> StudyStatus:
        status = cls()
        for trial in study.get_trials(deepcopy=False):
            status.running += trial.state == TrialState.RUNNING
            status.counted += _counts(trial)
            status.complete += trial.state == TrialState.COMPLETE
            status.pruned += trial.state == TrialState.PRUNED
            status.failed += trial.state == TrialState.FAIL and _counts(trial)
            status.stale += STALE in trial.user_attrs
            status.iters_used += fit_iters(trial)
            if trial.state == TrialState.COMPLETE and (status.best is None or trial.value > status.best.value):
                status.best = trial
        return status


def evaluation_of(trial: FrozenTrial, space: SearchSpace) -> Evaluation:
    """The Evaluation a finished trial stands for, rebuilt from its user attrs (any process may have run it)."""
    attrs = trial.user_attrs
    result = attrs.get(RESULT) or {}
    genome = attrs.get("genome") or genome_from_params(space, trial.params)
    error = result.get("error")
    if trial.state == TrialState.FAIL and not error:
        error = f"abandoned: {attrs[STALE]}" if STALE in attrs else "surplus trial" if SURPLUS in attrs else "failed"
    owner = attrs.get(OWNER) or {}
    return Evaluation(
        index=trial.number,
        key=attrs.get("key", ""),
        genome=genome,
        fitness=result.get("fitness"),
        psnr=result.get("psnr"),
        params=result.get("params"),
        iters_run=int(result.get("iters_run") or 0),
        seconds=float(result.get("seconds") or 0.0),
        error=error,
        pruned=trial.state == TrialState.PRUNED,
        host=result.get("host") or owner.get("host", ""),
        stopped_iter=result.get("stopped_iter"),  # a trial told before this field was stored has none
    )


# ----------------------------------------------------------------------------- the ask/tell loop

Tell = Callable[[FrozenTrial, Evaluation], None]


@dataclass
class StudyRunner:
    """Asks the sampler for trials, fits them on the executor (`slots` at a time), tells the results.

    Used by the driver and by `dipsearch worker` alike; stops when the study reaches `target` counted
    trials (or `max_iters` fit iterations), whoever ran them.
    """

    study: optuna.Study
    storage: StorageSpec
    make_candidate: Callable[..., Candidate]  # (genome, index, **extra) -> Candidate, e.g. SearchSetup.candidate
    space: SearchSpace
    pruner: PrunerSpec
    report_every: int
    target: int
    longest: int  # iterations of the longest candidate: reserved for each running trial in the budget
    executor: Executor = field(default_factory=InProcessExecutor)
    slots: int = 1
    max_iters: int | None = None
    with_default: bool = False
    on_tell: Tell | None = None  # called in this process after each trial it told
    on_tick: Callable[[], None] | None = None  # called about once a second while fits run
    stale_after: float = STALE_AFTER
    told: int = 0
    _stale_checked: float = -math.inf
    _unclaimed: dict[int, float] = field(default_factory=dict)  # see storage.stale_reason

    def __post_init__(self) -> None:
        check_stale_after(self.stale_after)

    def may_ask(self) -> bool:
        self._fail_stale(every=60.0)
        status = StudyStatus.of(self.study)
        if status.counted + status.running >= self.target:
            return False
        if self.max_iters is not None:
            return status.iters_used + (status.running + 1) * self.longest <= self.max_iters
        return True

    def run(self) -> int:
        """Run until the target is reached; returns the number of trials this process told."""
        if self.with_default:
            enqueue_default(self.study, self.space)
        in_flight: dict[Future, tuple[optuna.Trial, Candidate]] = {}
        # Beat often enough that a live trial never looks stale to a process judging it by the same --stale-after.
        interval = min(HEARTBEAT_INTERVAL, self.stale_after / 4)
        with Heartbeat(self.study._storage, interval) as beat:  # noqa: SLF001
            try:
                while True:
                    surplus = False
                    while not surplus and len(in_flight) < self.slots and self.may_ask():
                        asked = self._ask(beat)
                        if asked is None:
                            continue  # answered from the cache
                        if asked is False:
                            surplus = True
                            break
                        trial, candidate = asked
                        in_flight[self.executor.submit(evaluate, candidate)] = (trial, candidate)
                    if not in_flight:
                        if self._finished(StudyStatus.of(self.study)):
                            return self.told
                        # Trials of other processes hold the rest of the target. Leaving now would leave the
                        # study short if one of those processes died: wait until its trials are told, or
                        # failed as stale, and ask for what is left.
                        time.sleep(WAIT_POLL)
                        self._fail_stale(every=0.0)
                        if self.on_tick:
                            self.on_tick()
                        continue
                    done, _ = wait(in_flight, timeout=1.0, return_when=FIRST_COMPLETED)
                    for future in done:
                        trial, candidate = in_flight.pop(future)
                        self._tell(trial, self._result(future, candidate), beat)
                    if self.on_tick:
                        self.on_tick()
            finally:
                for future, (trial, _) in in_flight.items():  # interrupted (Ctrl-C): fail them now, saying why
                    future.cancel()
                    try:
                        trial.set_user_attr(INTERRUPTED, True)
                        self.study.tell(trial, state=TrialState.FAIL)
                    except Exception:  # noqa: BLE001 - storage gone too: the trial is failed as stale on restart
                        pass

    def _fail_stale(self, every: float) -> None:
        """Fail trials whose process died (at most once per `every` seconds): they would hold the target."""
        if time.monotonic() - self._stale_checked >= every:
            fail_stale_trials(self.study, self.stale_after, self._unclaimed)
            self._stale_checked = time.monotonic()

    def _finished(self, status: StudyStatus) -> bool:
        """Whether nothing is left to ask: the target is reached, or the iteration budget has no room for a trial."""
        if status.counted >= self.target:
            return True
        return self.max_iters is not None and status.iters_used + self.longest > self.max_iters

    def _ask(self, beat: Heartbeat) -> tuple[optuna.Trial, Candidate] | None | bool:
        trial = self.study.ask()
        beat.start_trial(trial._trial_id)  # noqa: SLF001
        if self._is_surplus(trial.number):
            trial.set_user_attr(SURPLUS, True)
            self.study.tell(trial, state=TrialState.FAIL)
            beat.end_trial(trial._trial_id)  # noqa: SLF001
            return False
        genome = suggest_genome(trial, self.space)
        extra: dict[str, Any] = {}
        if self.pruner.active:
            reporter = TrialReporter(self.storage.url, self.study.study_name, trial._trial_id, self.pruner)  # noqa: SLF001
            if isinstance(self.executor, InProcessExecutor):
                reporter.study = self.study  # same process: no need to reopen the storage
            extra = {"reporter": reporter, "report_every": self.report_every}
        candidate = self.make_candidate(genome, trial.number, **extra)
        trial.set_user_attr("genome", genome)
        trial.set_user_attr("key", candidate.key)
        cached = self._cached(candidate.key, trial.number)
        if cached is None:
            return trial, candidate
        evaluation = evaluation_of(cached, self.space)
        evaluation.index, evaluation.pruned = trial.number, False
        self._tell(trial, evaluation, beat, cached_from=cached.number)
        return None

    def _is_surplus(self, number: int) -> bool:
        """Another process may have asked between our check and our ask: the later trial yields."""
        before = [t for t in self.study.get_trials(deepcopy=False) if t.number < number]
        return sum(_counts(t) or t.state == TrialState.RUNNING for t in before) >= self.target

    def _cached(self, key: str, number: int) -> FrozenTrial | None:
        """A finished trial with the same candidate key: identical networks and budgets are fitted once."""
        for t in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.FAIL)):
            result = t.user_attrs.get(RESULT)
            if t.number != number and t.user_attrs.get("key") == key and result and _counts(t):
                return t
        return None

    def _result(self, future: Future, candidate: Candidate) -> Evaluation:
        try:
            return future.result()
        except Exception as err:  # noqa: BLE001 - a lost worker fails this trial, not the study
            return Evaluation.lost(candidate, err)

    def _tell(
        self, trial: optuna.Trial, evaluation: Evaluation, beat: Heartbeat, cached_from: int | None = None
    ) -> None:
        result = {k: getattr(evaluation, k) for k in RESULT_FIELDS}
        if evaluation.fitness is not None and math.isnan(evaluation.fitness):
            result["error"] = result["error"] or "fitness is NaN"
        result["cached_from"] = cached_from
        try:
            trial.set_user_attr(RESULT, result)
            if evaluation.psnr is not None:
                trial.set_user_attr("psnr", result["psnr"])
            if result["error"]:
                self.study.tell(trial, state=TrialState.FAIL)
            elif evaluation.pruned:
                self.study.tell(trial, state=TrialState.PRUNED)
            else:
                self.study.tell(trial, evaluation.fitness)
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            return  # failed as stale by another process while we fitted: its result is dropped
        finally:
            beat.end_trial(trial._trial_id)  # noqa: SLF001
        self.told += 1
        if self.on_tell:
            self.on_tell(self.study._storage.get_trial(trial._trial_id), evaluation)  # noqa: SLF001
