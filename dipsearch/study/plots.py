"""The study's parameter importances and Optuna's plots, over the trials fitted on every instance."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from ..search.bayes.display import _save_optuna_plot

PSNR = "mean true PSNR (dB)"
SECONDS = "seconds per fit"
MIN_TRIALS = 3  # fewer complete trials than this give no importance worth reading


def complete_study(study: optuna.Study, complete: set[int]) -> optuna.Study:
    """An in-memory copy holding only the complete trials: a pruned trial's mean is over other instances."""
    copy = optuna.create_study(directions=study.directions)
    copy.add_trials([t for t in study.get_trials(deepcopy=True) if t.number in complete])
    return copy


def _psnr(trial: FrozenTrial) -> float:
    return trial.values[0]


def _loss(trial: FrozenTrial) -> float:
    # Optuna's default importance evaluator (PED-ANOVA) ranks what achieves low values of a given target, and
    # warns that it does so whenever a target is given: hence the sign, and the filter below
    return -trial.values[0]


LOW_TARGET = "PedAnovaImportanceEvaluator computes the importances"


def importances(study: optuna.Study) -> tuple[dict[str, float], str | None]:
    """Optuna's parameter importances for the mean PSNR (its default evaluator); ({}, why) when there are too few
    trials or no parameter that every trial shares."""
    n = len(study.trials)
    if n < MIN_TRIALS:
        return {}, f"parameter importances need {MIN_TRIALS} complete trials at least, the study has {n}"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=LOW_TARGET)
            found = optuna.importance.get_param_importances(study, target=_loss)
    except (RuntimeError, ValueError, ZeroDivisionError) as err:
        return {}, f"no parameter importances: {err}"
    return {k: float(v) for k, v in found.items()}, None


def write_plots(study: optuna.Study, folder: Path, pareto: bool, have_importances: bool) -> list[str]:
    """history.png, pareto_front.png (pareto objective), importances.png; the names of those written."""
    from optuna.visualization import matplotlib as plots

    if not study.trials:
        return []
    made: list[Any] = [
        _save_optuna_plot(
            lambda: plots.plot_optimization_history(study, target=_psnr, target_name=PSNR),
            folder / "history.png",
            "mean true PSNR per trial (complete trials)",
        )
    ]
    if pareto:
        made.append(
            _save_optuna_plot(
                lambda: plots.plot_pareto_front(study, target_names=[PSNR, SECONDS]),
                folder / "pareto_front.png",
                "quality against cost",
            )
        )
    if have_importances:
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=LOW_TARGET)
                made.append(
                    _save_optuna_plot(
                        lambda: plots.plot_param_importances(study, target=_loss, target_name=PSNR),
                        folder / "importances.png",
                        "parameter importances for the mean PSNR",
                    )
                )
        except AssertionError:  # Optuna's importance plot measures text, which only Agg-based backends can
            pass
    return [p.name for p in made if p is not None]
