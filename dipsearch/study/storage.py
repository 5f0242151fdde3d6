"""The Optuna study behind a dipsearch study: where it lives, what it was started with, and who may join it.

The storage is the Bayesian search's (dipsearch.search.bayes.storage): a journal file in the run folder by
default, any RDB or Redis URL for several machines, the same owner/heartbeat rules for trials whose process died.
A storage holds one kind of study: one whose studies were made by something else (a Bayesian search, another
tool) is refused, and so is a study started on other images, levels, space or budget.
"""

from __future__ import annotations

from typing import Any

import optuna

from ..errors import ArgumentError
from ..nets.space import SearchSpace, space_to_dict
from ..problems.recipe import problem_fingerprint
from ..search.bayes.storage import StorageSpec, open_storage
from .instances import Instance

STUDY_NAME = "dipsearch-study"
KIND = "dipsearch_study"  # study user attr: the recipe below; its presence marks a study as ours
FORMAT = 1


def make_recipe(settings: Any, space: SearchSpace, instances: list[Instance], iters: int) -> dict[str, Any]:
    """What a study must be continued with: the instances (by fingerprint), the space, the fit and the objective."""
    return {
        "format": FORMAT,
        "instances": [[i.name, problem_fingerprint(i.problem)] for i in instances],
        "space": space_to_dict(space),
        "iters": iters,
        "seed": settings.seed,
        "objective": settings.objective,
        "p_threshold": settings.p_threshold,
    }


def directions(objective: str) -> list[str]:
    """quality: the mean true PSNR; pareto: the mean PSNR and the mean seconds per fit."""
    return ["maximize"] if objective == "quality" else ["maximize", "minimize"]


def open_study(
    storage: StorageSpec,
    recipe: dict[str, Any],
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner,
) -> optuna.Study:
    """Create the study, or continue it when the storage holds it with the same recipe; refuse anything else."""
    backend = open_storage(storage)
    others = [s for s in backend.get_all_studies() if s.study_name != STUDY_NAME or KIND not in s.user_attrs]
    if others:
        other = others[0]
        what = "a Bayesian search" if "dipsearch" in other.user_attrs else "another tool"
        raise ArgumentError(
            "{storage} {url} holds study {name!r}, made by {what}, not a dipsearch study; give a new storage "
            "(a study keeps its storage to itself)",
            url=storage.display,
            name=other.study_name,
            what=what,
        )
    existing = [s for s in backend.get_all_studies() if s.study_name == STUDY_NAME]
    if existing:
        stored = existing[0].user_attrs[KIND]
        differ = [k for k in recipe if stored.get(k) != recipe[k]]
        if differ:
            raise ArgumentError(
                "{storage} {url} holds a study of other {differ}; continue it with the same images, levels, "
                "space, {iters}, {seed} and {objective}, or give a new storage",
                url=storage.display,
                differ=", ".join(differ),
            )
        return optuna.load_study(study_name=STUDY_NAME, storage=backend, sampler=sampler, pruner=pruner)
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=backend,
        sampler=sampler,
        pruner=pruner,
        directions=directions(recipe["objective"]),
    )
    study.set_user_attr(KIND, recipe)
    return study


def make_sampler(name: str, seed: int, trials: int, objective: str) -> optuna.samplers.BaseSampler:
    """TPE (multivariate over each depth's genes, sized to the study) or random search."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        # Optuna's 10 random start-up trials would leave a study of a dozen trials random; the two enqueued
        # trials count among them.
        return optuna.samplers.TPESampler(
            seed=seed,
            n_startup_trials=max(3, min(10, trials // 4)),
            multivariate=True,
            group=True,
            constant_liar=objective == "quality",
        )


def make_pruner(objective: str, p_threshold: float) -> optuna.pruners.BasePruner:
    """The Wilcoxon signed-rank pruner, made for one trial scored over many instances; Optuna prunes no
    multi-objective study, so the pareto objective fits every trial on every instance."""
    import warnings

    from optuna.exceptions import ExperimentalWarning

    if objective != "quality":
        return optuna.pruners.NopPruner()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)  # about Optuna's interface, not this study
        return optuna.pruners.WilcoxonPruner(p_threshold=p_threshold, n_startup_steps=2)
