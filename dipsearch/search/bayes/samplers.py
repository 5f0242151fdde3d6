"""Samplers and pruners by name, and the reporter that lets a fit in any process be pruned.

A sampler or pruner is kept as a small spec (name + settings) rather than an object: the settings go to
config.toml and to the study's user attrs, and every process that joins the study (pool workers, Dask
workers, `dipsearch worker`) rebuilds the same pruner from them.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError

from ...errors import DipsearchError
from .storage import StorageSpec, open_storage

SAMPLERS = ("tpe", "random", "cmaes", "gp", "nsga2")
PRUNERS = ("hyperband", "median", "sha", "none")
# Packages a sampler imports lazily (Optuna would fail only at the first suggestion, inside a trial).
SAMPLER_NEEDS = {"cmaes": ("cmaes",), "gp": ("scipy", "torch")}


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)

    def build(self, seed: int | None = None) -> optuna.samplers.BaseSampler:
        """The sampler; `seed` overrides the stored one (workers must not all draw the same numbers)."""
        kwargs = dict(self.settings)
        if seed is not None:
            kwargs["seed"] = seed
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)  # TPE group=True is "experimental"
            if self.name == "tpe":
                return optuna.samplers.TPESampler(**kwargs)
            if self.name == "random":
                return optuna.samplers.RandomSampler(**kwargs)
            if self.name == "cmaes":
                return optuna.samplers.CmaEsSampler(**kwargs)
            if self.name == "gp":
                return optuna.samplers.GPSampler(**kwargs)
            return optuna.samplers.NSGAIISampler(**kwargs)


def sampler_spec(name: str, seed: int, trials: int) -> SamplerSpec:
    """Settings sized to the study: Optuna's defaults (10 random start-up trials, NSGA-II population 50)
    would leave a study of a dozen fits purely random."""
    if name not in SAMPLERS:
        raise DipsearchError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    missing = [m for m in SAMPLER_NEEDS.get(name, ()) if importlib.util.find_spec(m) is None]
    if missing:
        raise DipsearchError(
            f"sampler {name!r} needs the package(s) {', '.join(missing)}: pip install {' '.join(missing)}"
        )
    startup = max(3, min(10, trials // 4))
    settings: dict[str, Any] = {"seed": seed}
    if name == "tpe":
        # group=True: one model per conditional sub-space (each depth has its own per-level genes);
        # constant_liar: trials in flight count as bad so parallel workers spread out.
        settings |= {"n_startup_trials": startup, "multivariate": True, "group": True, "constant_liar": True}
    elif name in ("cmaes", "gp"):
        settings |= {"n_startup_trials": startup, "warn_independent_sampling": False}
    elif name == "nsga2":
        settings |= {"population_size": max(4, min(50, trials // 4))}
    return SamplerSpec(name, settings)


@dataclass(frozen=True)
class PrunerSpec:
    name: str
    settings: dict[str, Any] = field(default_factory=dict)

    def build(self) -> optuna.pruners.BasePruner:
        if self.name == "hyperband":
            return optuna.pruners.HyperbandPruner(**self.settings)
        if self.name == "median":
            return optuna.pruners.MedianPruner(**self.settings)
        if self.name == "sha":
            return optuna.pruners.SuccessiveHalvingPruner(**self.settings)
        return optuna.pruners.NopPruner()

    @property
    def active(self) -> bool:
        return self.name != "none"


def pruner_spec(name: str, max_iters: int, report_every: int) -> PrunerSpec:
    """Steps are fit iterations; the running fitness is reported every `report_every` of them."""
    if name not in PRUNERS:
        raise DipsearchError(f"unknown pruner {name!r}; choose one of {', '.join(PRUNERS)}")
    if name == "hyperband":
        # max_resource given, not "auto": every process must agree on the brackets from the first trial.
        return PrunerSpec(name, {"min_resource": report_every, "max_resource": max_iters, "reduction_factor": 3})
    if name == "median":
        # The first reports of a DIP fit say little (every net starts near the mean image): wait 2 reports.
        return PrunerSpec(name, {"n_startup_trials": 3, "n_warmup_steps": 2 * report_every, "interval_steps": 1})
    if name == "sha":
        return PrunerSpec(name, {"min_resource": report_every, "reduction_factor": 3})
    return PrunerSpec(name)


@lru_cache(maxsize=4)
def _joined_study(storage_url: str, study_name: str, pruner: tuple) -> optuna.Study:
    # One open storage per process and study: a pool worker fits many candidates of one study, and
    # reopening a journal replays the whole file.
    spec = PrunerSpec(pruner[0], dict(pruner[1]))
    return optuna.load_study(
        study_name=study_name,
        storage=open_storage(StorageSpec.parse(storage_url)),
        sampler=optuna.samplers.RandomSampler(),
        pruner=spec.build(),
    )


@dataclass
class TrialReporter:
    """The evaluate.Reporter of one trial: writes the running fitness to the study and asks the pruner.

    Picklable (it carries the storage URL, study name and trial id, never an open connection), so it
    works in whichever process runs the fit; the driver that asked for the trial later tells its result.
    """

    storage_url: str
    study_name: str
    trial_id: int
    pruner: PrunerSpec
    study: optuna.Study | None = field(default=None, repr=False)  # set in the driver's own process

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "study": None}

    def report(self, step: int, value: float) -> bool:
        study = self.study or _joined_study(
            self.storage_url, self.study_name, (self.pruner.name, tuple(sorted(self.pruner.settings.items())))
        )
        storage = study._storage  # noqa: SLF001 - reporting by trial id needs the storage
        try:
            storage.set_trial_intermediate_value(self.trial_id, step, float(value))
            trial = storage.get_trial(self.trial_id)
        except UpdateFinishedTrialError:
            return True  # failed as stale by another process meanwhile: nobody will use this fit
        return bool(study.pruner.prune(study, trial))
