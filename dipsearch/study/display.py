"""Progress of a study: a line per fit and per trial, and on a terminal live bars for trials and fits."""

from __future__ import annotations

from typing import Any

from optuna.trial import FrozenTrial
from rich.console import Console

from .instances import Instance
from .runner import PRUNED_AFTER, trial_fits


class StudyDisplay:
    def __init__(self, console: Console, target: int, n_instances: int, done: int, live: bool):
        self.console, self.n = console, n_instances
        self.progress = None
        if live:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            )
            self.trials = self.progress.add_task("trials", total=target, completed=done)
            self.fits = self.progress.add_task("fits of the trial", total=n_instances)

    def __enter__(self) -> StudyDisplay:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def _say(self, text: str) -> None:
        (self.progress.console if self.progress else self.console).print(text, highlight=False, soft_wrap=True)

    def fit(self, trial: Any, instance: Instance, fit: dict[str, Any]) -> None:
        if fit.get("error") is not None:
            what = f"failed: {str(fit['error']).strip().splitlines()[-1]}"
        else:
            stop = fit.get("stopped_iter")
            ran = f"{fit.get('iters_run')} iterations" + (f", output of {stop}" if stop is not None else "")
            reused = f", from trial {fit['cached_from']}" if fit.get("cached_from") is not None else ""
            what = f"PSNR {fit['psnr']:.2f} dB, {fit['seconds']:.0f} s, {ran}{reused}"
        self._say(f"trial {trial.number} | {instance.name}: {what}")
        if self.progress is not None:
            self.progress.advance(self.fits)

    def trial(self, trial: FrozenTrial) -> None:
        fits = [f for f in trial_fits(trial).values() if f.get("psnr") is not None]
        mean = sum(f["psnr"] for f in fits) / len(fits) if fits else float("nan")
        seconds = sum(f["seconds"] for f in fits) / len(fits) if fits else float("nan")
        if PRUNED_AFTER in trial.user_attrs:
            state = f"pruned after {trial.user_attrs[PRUNED_AFTER]} of {self.n} instances"
        else:
            state = trial.state.name.lower()
        if "error" in trial.user_attrs:
            self._say(f"trial {trial.number} failed: {str(trial.user_attrs['error']).strip().splitlines()[-1]}")
        else:
            self._say(
                f"trial {trial.number} {state}: mean PSNR {mean:.2f} dB over {len(fits)} fit(s), "
                f"{seconds:.0f} s per fit"
            )
        if self.progress is not None:
            self.progress.advance(self.trials)
            self.progress.reset(self.fits, total=self.n)
