"""What a Bayesian search shows: the live display, the closing table and the PNG plots of the study."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ..runs import write_figure
from .study import RESULT, StudyStatus

SHOWN_GENES = ("depth", "input_depth", "lr", "reg_noise_std", "iters", "k_skip")


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 0.1 and value != 0 else f"{value:.{digits}f}"
    return str(value)


class StudyDisplay:
    """A rich progress bar over the study's trial target, with pruned/running/best alongside."""

    def __init__(self, console: Console, target: int, title: str, enabled: bool = True):
        self.enabled = enabled
        self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console)
        self.task = self.progress.add_task(title, total=max(target, 1), info="")

    def __enter__(self) -> "StudyDisplay":
        if self.enabled:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.progress.stop()

    def update(self, status: StudyStatus) -> None:
        best = status.best
        info = f"running {status.running}  pruned {status.pruned}  failed {status.failed}"
        if best is not None:
            psnr = best.user_attrs.get("psnr")
            info += f"  best #{best.number} fitness {best.value:.2f}" + (f" (PSNR {psnr:.2f})" if isinstance(psnr, float) else "")
        self.progress.update(self.task, completed=status.counted, info=info)


def top_table(study: optuna.Study, rows: int = 10) -> Table:
    """The best complete trials, then (if room) the others, by fitness."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    trials.sort(key=lambda t: (t.state != TrialState.COMPLETE, -(t.value if t.value is not None else -math.inf)))
    genes = [g for g in SHOWN_GENES if any(g in t.params for t in trials)]
    table = Table(title=f"study {study.study_name}: top {min(rows, len(trials))} of {len(trials)} trials", header_style="bold")
    for column in ("trial", "state", "fitness", "PSNR", "params", "iters", "s", *genes):
        table.add_column(column, justify="right")
    for trial in trials[:rows]:
        result = trial.user_attrs.get(RESULT) or {}
        state = trial.state.name.lower() + (" (cached)" if result.get("cached_from") is not None else "")
        table.add_row(str(trial.number), state, _fmt(trial.value), _fmt(result.get("psnr")), _fmt(result.get("params")),
                      _fmt(result.get("iters_run")), _fmt(result.get("seconds"), 1),
                      *[_fmt(trial.params.get(g), 3) for g in genes])
    return table


# ----------------------------------------------------------------------------- plots (matplotlib, Agg)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only: never needs a display
    import matplotlib.pyplot as plt

    return plt


def plot_history(study: optuna.Study, path: Path) -> Path | None:
    """Fitness of each trial with the best so far, and, when known, the true PSNR of that best."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    if not trials:
        return None
    plt = _pyplot()
    has_psnr = any(isinstance(t.user_attrs.get("psnr"), float) for t in trials)
    fig, axes = plt.subplots(2 if has_psnr else 1, 1, figsize=(7, 6 if has_psnr else 3.6), sharex=True, squeeze=False)
    ax = axes[0][0]
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    pruned = [t for t in trials if t.state == TrialState.PRUNED and t.value is not None]
    ax.scatter([t.number for t in done], [t.value for t in done], s=18, label="complete")
    ax.scatter([t.number for t in pruned], [t.value for t in pruned], s=18, marker="x", c="grey", label="pruned (last report)")
    best, best_trials = -math.inf, []
    for t in sorted(done, key=lambda t: t.number):
        if t.value > best:
            best = t.value
        best_trials.append((t.number, best))
    last = max(t.number for t in trials)
    if best_trials:
        best_trials.append((last, best))
        ax.step(*zip(*best_trials), where="post", c="C3", label="best so far")
    ax.set_ylabel("fitness (dB)")
    ax.legend(fontsize=8)
    ax.set_title(f"optimisation history: {study.study_name}")
    if has_psnr:
        ax2 = axes[1][0]
        ax2.scatter([t.number for t in done], [t.user_attrs.get("psnr") for t in done], s=18, c="C2", label="true PSNR")
        chosen, best, curve = None, -math.inf, []
        for t in sorted(done, key=lambda t: t.number):
            if t.value > best:
                best, chosen = t.value, t
            curve.append((t.number, chosen.user_attrs.get("psnr")))
        if curve:
            curve.append((last, chosen.user_attrs.get("psnr")))
            ax2.step(*zip(*curve), where="post", c="C3", label="PSNR of the best by fitness")
        ax2.set_ylabel("true PSNR (dB)")
        ax2.legend(fontsize=8)
    axes[-1][0].set_xlabel("trial")
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)
    return path


def plot_importances(study: optuna.Study, path: Path) -> Path | None:
    """Optuna's parameter importances over the complete trials (parameters present in all of them)."""
    if sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)) < 3:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            importances = optuna.importance.get_param_importances(study)
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None  # e.g. every trial had the same value, or no parameter is shared by all trials
    if not importances:
        return None
    plt = _pyplot()
    names = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.35 * len(names) + 1.2))
    ax.barh(names, [importances[n] for n in names])
    ax.set_xlabel("importance for fitness")
    ax.set_title("parameter importances")
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)
    return path


def plot_fit_curves(study: optuna.Study, path: Path) -> Path | None:
    """The running fitness the pruner saw for each trial: pruned fits end early, in grey."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    if not trials:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.8))
    for t in trials:
        steps = sorted(t.intermediate_values)
        pruned = t.state == TrialState.PRUNED
        ax.plot(steps, [t.intermediate_values[s] for s in steps], c="grey" if pruned else "C0",
                alpha=0.5 if pruned else 0.8, lw=1)
    ax.set_xlabel("fit iteration")
    ax.set_ylabel("running fitness (dB)")
    ax.set_title("fit curves (grey: pruned)")
    fig.tight_layout()
    write_figure(path, fig)
    plt.close(fig)
    return path


def write_plots(study: optuna.Study, folder: Path) -> list[str]:
    made = [plot_history(study, folder / "history.png"), plot_importances(study, folder / "importances.png"),
            plot_fit_curves(study, folder / "fit_curves.png")]
    return [p.name for p in made if p is not None]
