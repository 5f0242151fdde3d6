"""The study's ask/tell loop: each trial fits its genome on every instance, one fit after another, and reports
each instance's true PSNR to the pruner as it comes.

- A trial's instances are visited in an order shuffled per trial (seeded by its number), as the Wilcoxon pruner
  asks: a fixed order would let the first images decide every trial. The step of each report is the instance's
  number, so the pruner pairs the same problem across trials.
- A pruned trial is told the mean of the instances it fitted, not "pruned": Optuna's samplers then learn from it
  (the WilcoxonPruner's advice); it is marked in the user attr PRUNED_AFTER and never picked.
- Every finished fit is stored at once in its trial's user attrs ("fit:<instance>"): a trial whose process was
  killed is failed as stale and re-queued when the study is continued, and the re-run takes every fit the dead
  one finished from the storage, keyed by the candidate (network, fit settings, budget, seed, stopping) and the
  instance. With `slots` > 1 several trials are in flight, each with at most one fit on the executor.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Executor, Future, wait
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..nets.space import Genome, SearchSpace
from ..scoring.evaluate import Candidate, Evaluation, evaluate
from ..search.bayes.space import suggest_genome
from ..search.bayes.storage import HEARTBEAT_INTERVAL, STALE, Heartbeat, fail_stale_trials
from .instances import Instance

FIT = "fit:"  # trial user attr prefix: "fit:<instance number>" -> that fit's record
GENOME = "genome"
KEY = "key"  # the candidate key of the trial's genome: equal keys share fits
PRUNED_AFTER = "pruned_after"  # the number of instances a pruned trial was fitted on
INTERRUPTED = "interrupted"
FIELDS = ("psnr", "seconds", "iters_run", "stopped_iter", "fitness", "error")
WAIT_POLL = 2.0


def fit_record(evaluation: Evaluation, instance: int, cached_from: int | None = None) -> dict[str, Any]:
    row = {k: getattr(evaluation, k) for k in FIELDS}
    return {**row, "instance": instance, "cached_from": cached_from}


def trial_fits(trial: FrozenTrial) -> dict[int, dict[str, Any]]:
    """instance number -> fit record of a trial (any state)."""
    return {int(k[len(FIT) :]): v for k, v in trial.user_attrs.items() if k.startswith(FIT)}


def counts(trial: FrozenTrial) -> bool:
    """Whether a finished trial uses up the target: yes unless its process died or was stopped."""
    if trial.state == TrialState.COMPLETE:
        return True
    return trial.state == TrialState.FAIL and not {STALE, INTERRUPTED} & set(trial.user_attrs)


@dataclass
class Running:
    trial: optuna.Trial
    genome: Genome
    key: str
    order: list[int]
    fits: dict[int, dict[str, Any]] = field(default_factory=dict)
    stopped: bool = False  # pruned, or a fit failed: told with what it has


@dataclass
class StudyRunner:
    study: optuna.Study
    space: SearchSpace
    instances: list[Instance]
    make_candidate: Callable[[Genome, Instance, int], Candidate]
    target: int
    executor: Executor
    slots: int = 1
    on_fit: Callable[[FrozenTrial | optuna.Trial, Instance, dict[str, Any]], None] | None = None
    on_trial: Callable[[FrozenTrial], None] | None = None
    fitted: int = 0  # fits this process ran (not taken from the storage)
    reused: int = 0  # fits taken from the storage

    @property
    def pruning(self) -> bool:
        return len(self.study.directions) == 1

    def run(self) -> None:
        self._fail_stale()
        running: dict[Future, Running] = {}
        idle: list[Running] = []
        with Heartbeat(self.study._storage, HEARTBEAT_INTERVAL) as beat:  # noqa: SLF001
            try:
                while True:
                    while len(running) + len(idle) < self.slots and self._may_ask():
                        idle.append(self._ask(beat))
                    asked = bool(idle)
                    for run in idle:
                        future = self._advance(run, beat)
                        if future is not None:
                            running[future] = run
                    idle = []
                    if not running:
                        if self._finished():
                            return
                        if not asked:  # the rest of the target is held by other processes' trials
                            time.sleep(WAIT_POLL)
                            self._fail_stale()
                        continue
                    done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                    for future in done:
                        run = running.pop(future)
                        instance = self._pending(run)
                        self._record(run, instance, self._result(future, run, instance))
                        idle.append(run)
            finally:
                for run in [*running.values(), *idle]:
                    self._interrupt(run)

    # ------------------------------------------------------------------ asking

    def _status(self) -> tuple[int, int]:
        trials = self.study.get_trials(deepcopy=False)
        return sum(map(counts, trials)), sum(t.state == TrialState.RUNNING for t in trials)

    def _may_ask(self) -> bool:
        counted, running = self._status()
        return counted + running < self.target

    def _finished(self) -> bool:
        return self._status()[0] >= self.target

    def _fail_stale(self) -> None:
        """Trials of a process that died (a kill, a crash) are failed and their genomes queued again."""
        fail_stale_trials(self.study)

    def _ask(self, beat: Heartbeat) -> Running:
        trial = self.study.ask()
        beat.start_trial(trial._trial_id)  # noqa: SLF001
        genome = suggest_genome(trial, self.space)
        key = self.make_candidate(genome, self.instances[0], trial.number).key
        trial.set_user_attr(GENOME, genome)
        trial.set_user_attr(KEY, key)
        order = list(range(len(self.instances)))
        random.Random(trial.number).shuffle(order)
        return Running(trial, genome, key, order)

    def _pending(self, run: Running) -> Instance:
        return self.instances[next(i for i in run.order if i not in run.fits)]

    def _advance(self, run: Running, beat: Heartbeat) -> Future | None:
        """Submit the run's next fit not already in the storage; tell the trial when none is left (or pruned)."""
        while not run.stopped and len(run.fits) < len(self.instances):
            instance = self._pending(run)
            cached = self._cached(run.key, instance.number, run.trial.number)
            if cached is None:
                candidate = self.make_candidate(run.genome, instance, run.trial.number)
                return self.executor.submit(evaluate, candidate)
            self.reused += 1
            self._record(run, instance, cached)
        self._tell(run, beat)
        return None

    def _cached(self, key: str, instance: int, number: int) -> dict[str, Any] | None:
        for t in self.study.get_trials(deepcopy=False):
            if t.number != number and t.user_attrs.get(KEY) == key:
                fit = trial_fits(t).get(instance)
                if fit is not None and fit.get("error") is None:
                    return {**fit, "cached_from": fit.get("cached_from") or t.number}
        return None

    def _result(self, future: Future, run: Running, instance: Instance) -> dict[str, Any]:
        try:
            evaluation = future.result()
        except Exception as err:  # noqa: BLE001 - a lost worker fails this fit, not the study
            evaluation = Evaluation.lost(self.make_candidate(run.genome, instance, run.trial.number), err)
        self.fitted += 1
        return fit_record(evaluation, instance.number)

    # ------------------------------------------------------------------ telling

    def _record(self, run: Running, instance: Instance, fit: dict[str, Any]) -> None:
        """Store one fit in the trial and report it; the run stops here when it failed or is pruned."""
        run.fits[instance.number] = fit
        run.trial.set_user_attr(f"{FIT}{instance.number}", fit)
        if self.on_fit:
            self.on_fit(run.trial, instance, fit)
        if fit.get("error") is not None or fit.get("psnr") is None:
            run.stopped = True
            return
        if not self.pruning:
            return
        run.trial.report(float(fit["psnr"]), instance.number)
        if len(run.fits) < len(self.instances) and run.trial.should_prune():
            run.trial.set_user_attr(PRUNED_AFTER, len(run.fits))
            run.stopped = True

    def _tell(self, run: Running, beat: Heartbeat) -> None:
        fits = list(run.fits.values())
        errors = [f["error"] for f in fits if f.get("error") is not None or f.get("psnr") is None]
        try:
            if errors:
                run.trial.set_user_attr("error", str(errors[0] or "no true PSNR: the image has no clean version"))
                self.study.tell(run.trial, state=TrialState.FAIL)
            else:
                mean_psnr = sum(f["psnr"] for f in fits) / len(fits)
                if self.pruning:
                    self.study.tell(run.trial, mean_psnr)
                else:
                    self.study.tell(run.trial, [mean_psnr, sum(f["seconds"] for f in fits) / len(fits)])
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError, RuntimeError):
            return  # failed as stale by another process meanwhile
        finally:
            beat.end_trial(run.trial._trial_id)  # noqa: SLF001
        if self.on_trial:
            self.on_trial(self.study._storage.get_trial(run.trial._trial_id))  # noqa: SLF001

    def _interrupt(self, run: Running) -> None:
        """Stopped (Ctrl-C) with this trial unfinished: fail it, saying why, and queue its genome again; the fits it
        finished are in its user attrs, so continuing the study refits none of them."""
        try:
            run.trial.set_user_attr(INTERRUPTED, True)
            self.study.tell(run.trial, state=TrialState.FAIL)
            frozen = self.study._storage.get_trial(run.trial._trial_id)  # noqa: SLF001
            self.study.enqueue_trial(dict(frozen.params), user_attrs={"retry_of": frozen.number})
        except Exception:  # noqa: BLE001 - storage gone too: the trial is failed as stale when continued
            pass
