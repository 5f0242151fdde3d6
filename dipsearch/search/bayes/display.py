"""What a Bayesian search shows: the live display, the closing table and the PNG plots of the study."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ...nets.genes import BUDGET_GENE, CONFIG_GENES
from ...store.runs import write_figure
from .study import RESULT, StudyStatus

SHOWN_GENES = ("depth", "input_depth", *CONFIG_GENES, BUDGET_GENE, "k_skip")  # the closing table's gene columns


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if abs(value) < 0.1 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def trial_line(trial: Any, evaluation: Any, target: int) -> str:
    """One plain line per finished trial (an optuna FrozenTrial and its Evaluation), for logs and pipes, counted
    from 1 out of the study's target as the other searchers count theirs."""
    if trial.state == TrialState.COMPLETE and trial.value is not None:
        result = f"fitness {trial.value:.2f} dB"
    elif trial.state == TrialState.PRUNED:
        result = "pruned"
    else:
        result = "failed"
    return f"trial {trial.number + 1}/{target}: {result} ({evaluation.iters_run} iters, {evaluation.seconds:.1f} s)"


class StudyDisplay:
    """A rich progress bar over the study's trial target, with pruned/running/best alongside."""

    def __init__(self, console: Console, target: int, title: str, enabled: bool = True):
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.task = self.progress.add_task(title, total=max(target, 1), info="")

    def __enter__(self) -> StudyDisplay:
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
            info += f"  best #{best.number} fitness {best.value:.2f}" + (
                f" (PSNR {psnr:.2f})" if isinstance(psnr, float) else ""
            )
        self.progress.update(self.task, completed=status.counted, info=info)


def top_table(study: optuna.Study, rows: int = 10) -> Table:
    """The best complete trials, then (if room) the others, by fitness."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.state.is_finished()]
    trials.sort(key=lambda t: (t.state != TrialState.COMPLETE, -(t.value if t.value is not None else -math.inf)))
    genes = [g for g in SHOWN_GENES if any(g in t.params for t in trials)]
    table = Table(
        title=f"study {study.study_name}: top {min(rows, len(trials))} of {len(trials)} trials", header_style="bold"
    )
    for column in ("trial", "state", "fitness", "PSNR", "params", "iters", "s", *genes):
        table.add_column(column, justify="right")
    for trial in trials[:rows]:
        result = trial.user_attrs.get(RESULT) or {}
        state = trial.state.name.lower() + (" (cached)" if result.get("cached_from") is not None else "")
        table.add_row(
            str(trial.number),
            state,
            _fmt(trial.value),
            _fmt(result.get("psnr")),
            _fmt(result.get("params")),
            _fmt(result.get("iters_run")),
            _fmt(result.get("seconds"), 1),
            *[_fmt(trial.params.get(g), 3) for g in genes],
        )
    return table


# ----------------------------------------------------------------------------- plots


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # the object API: no pyplot, so no backend is chosen or changed

    return Figure(figsize=(width, height))


def _save_optuna_plot(draw: Callable[[], Any], path: Path, title: str) -> Path | None:
    """Write a plot of optuna.visualization.matplotlib and leave matplotlib as the caller had it.

    Those functions draw through pyplot in the ggplot style: rc_context undoes the style, and their figure is
    closed once written (a notebook would show it again otherwise). Their ExperimentalWarning is about the
    stability of Optuna's plotting API, not about this study, so it is not passed on. None when nothing was drawn.
    """
    import matplotlib
    from matplotlib import pyplot as plt
    from optuna.exceptions import ExperimentalWarning

    before = set(plt.get_fignums())
    try:
        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ExperimentalWarning)
            ax = draw()
            if not ax.has_data():
                return None
            for loc in ("left", "right"):
                ax.set_title("", loc=loc)  # Optuna titles some plots on the left: one title, ours
            ax.set_title(title)
            ax.legend(loc="best", fontsize=8)  # inside the axes: Optuna's hangs off the figure's right edge
            ax.figure.tight_layout()
            write_figure(path, ax.figure)
    finally:
        for number in set(plt.get_fignums()) - before:
            plt.close(number)
    return path


def plot_history(study: optuna.Study, path: Path) -> Path | None:
    """Optuna's optimisation history: the fitness of each complete trial and the best so far."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return None
    from optuna.visualization.matplotlib import plot_optimization_history

    return _save_optuna_plot(
        lambda: plot_optimization_history(study, target_name="fitness (dB)"),
        path,
        f"optimisation history: {study.study_name}",
    )


def plot_psnr_history(study: optuna.Study, path: Path) -> Path | None:
    """When the clean image is known: the true PSNR of each complete trial and of the best by fitness so far
    (what the search would have returned had it stopped there). Optuna's history cannot draw the second."""
    done = sorted(
        (t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE), key=lambda t: t.number
    )
    if not any(isinstance(t.user_attrs.get("psnr"), float) for t in done):
        return None
    fig = _figure(7, 3.6)
    ax = fig.subplots()
    ax.scatter([t.number for t in done], [t.user_attrs.get("psnr") for t in done], s=18, c="C2", label="true PSNR")
    chosen, best, curve = None, -math.inf, []
    for t in done:
        if t.value > best:
            best, chosen = t.value, t
        curve.append((t.number, chosen.user_attrs.get("psnr")))
    last = max(t.number for t in study.get_trials(deepcopy=False))
    curve.append((last, chosen.user_attrs.get("psnr")))
    ax.step(*zip(*curve), where="post", c="C3", label="PSNR of the best by fitness")
    ax.set_xlabel("trial")
    ax.set_ylabel("true PSNR (dB)")
    ax.set_title(f"true PSNR: {study.study_name}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_figure(path, fig)
    return path


def plot_importances(study: optuna.Study, path: Path) -> Path | None:
    """Optuna's parameter importances for the fitness (its default evaluator) over the complete trials."""
    if sum(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)) < 3:
        return None
    from optuna.visualization.matplotlib import plot_param_importances

    try:
        with warnings.catch_warnings():
            # e.g. "target and region quantiles select the same set of trials" when every value ties
            warnings.filterwarnings("ignore", category=UserWarning, module="optuna")
            return _save_optuna_plot(
                lambda: plot_param_importances(study, target_name="fitness"), path, "parameter importances for fitness"
            )
    except (RuntimeError, ValueError, ZeroDivisionError):
        return None  # e.g. no parameter is shared by the trials
    except AssertionError:  # Optuna asserts that pyplot's canvas can measure text, which only Agg-based ones can
        import matplotlib

        warnings.warn(
            f"{path.name} not written: Optuna's importance plot needs an Agg-based matplotlib backend "
            f"(inline, widget, QtAgg, agg, ...), and this session uses {matplotlib.get_backend()!r}",
            stacklevel=2,
        )
        return None


def plot_fit_curves(study: optuna.Study, path: Path) -> Path | None:
    """The running fitness the pruner saw for each trial: pruned fits end early, in grey."""
    trials = [t for t in study.get_trials(deepcopy=False) if t.intermediate_values]
    if not trials:
        return None
    fig = _figure(7, 3.8)
    ax = fig.subplots()
    for t in trials:
        steps = sorted(t.intermediate_values)
        pruned = t.state == TrialState.PRUNED
        ax.plot(
            steps,
            [t.intermediate_values[s] for s in steps],
            c="grey" if pruned else "C0",
            alpha=0.5 if pruned else 0.8,
            lw=1,
        )
    ax.set_xlabel("fit iteration")
    ax.set_ylabel("running fitness (dB)")
    ax.set_title("fit curves (grey: pruned)")
    fig.tight_layout()
    write_figure(path, fig)
    return path


def write_plots(study: optuna.Study, folder: Path) -> list[str]:
    """The study's PNG plots in `folder`; the names of those there was something to draw for."""
    made = [
        plot_history(study, folder / "history.png"),
        plot_psnr_history(study, folder / "history_psnr.png"),
        plot_importances(study, folder / "importances.png"),
        plot_fit_curves(study, folder / "fit_curves.png"),
    ]
    return [p.name for p in made if p is not None]
