"""What a restore shows while its members fit: a live bar per member on a terminal, a line per member otherwise.

On a terminal each member (the default, each restart, each finalist) has a rich progress bar: its iteration, the
held-out PSNR of its current output, and, once its stopping rule fires, the iteration it stopped at; elapsed and
remaining time. Members fitted as one batch advance together. To a pipe or a file, one line per member when its
fit ends:

    default: stopped at 812 (ran 1312 of 2400), held-out PSNR 27.31 dB at the stop, 95 s
"""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.progress import Progress

from ..fitting.fitbase import FitHook, StepState
from ..fitting.progress import fit_progress


class MemberWatch:
    """Hands out one watching hook per member fit (`hook`); use as a context manager around the fits."""

    def __init__(self, console: Console, every: int = 10):
        self.console, self.every = console, every
        self.live = console.is_terminal and not console.quiet
        self.progress: Progress | None = fit_progress(console) if self.live else None

    def __enter__(self) -> MemberWatch:
        if self.progress is not None:
            self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.stop()

    def hook(self, name: str, candidate: Any = None) -> FitHook:
        return MemberHook(self, name)

    def line(self, text: str) -> None:
        self.console.print(text, highlight=False)


def heldout_psnr(record: dict[str, Any]) -> float | None:
    """The held-out PSNR of a trace row (the holdout detector's statistic is the held-out MSE), if it has one."""
    mse = record.get("stat_holdout")
    if mse is None:
        return None
    mse = float(mse)
    return math.inf if mse <= 0 else 10 * math.log10(1 / mse)


class MemberHook(FitHook):
    """Shows one member's fit; reads only its trace rows (put it after the stopping hook, which writes them)."""

    name = "watch"

    def __init__(self, watch: MemberWatch, label: str):
        self.watch, self.label = watch, label
        self.task = None
        self.best: dict[int, float] = {}  # step -> held-out PSNR, to report the stop's

    def on_start(self, problem, spec, config) -> None:
        self.total, self.started = config.iters, time.perf_counter()
        self.best = {}
        if self.watch.progress is not None:
            self.task = self.watch.progress.add_task(self.label, total=config.iters, status="", rate="")

    def on_step(self, state: StepState) -> bool:
        value = heldout_psnr(state.record)
        if value is not None:
            self.best[state.step] = value
        progress = self.watch.progress
        if progress is not None and (state.step % self.watch.every == 0 or state.step == 1):
            status = f"held-out {value:.2f} dB" if value is not None else ""
            seconds = state.record.get("seconds", 0.0)
            rate = f"{state.step / seconds:.1f} it/s" if seconds > 0 else ""
            progress.update(self.task, completed=state.step, status=status, rate=rate)
        return False

    def on_end(self, result) -> None:
        stopped = result.summary_extra.get("stopped_iter")
        fired = result.summary_extra.get("stop_fired")
        seconds = time.perf_counter() - self.started
        if stopped is None:
            where = "no stopping"
        else:
            where = f"stopped at {stopped}" if fired else f"no stop before the budget, kept iteration {stopped}"
        text = f"{where} (ran {result.iters_run} of {self.total})"
        at_stop = self.best.get(stopped) if stopped is not None else None
        if at_stop is not None:
            text += f", held-out PSNR {at_stop:.2f} dB at the stop"
        if self.watch.progress is not None:
            self.watch.progress.update(self.task, completed=result.iters_run, total=result.iters_run, status=text)
        else:
            self.watch.line(f"{self.label}: {text}, {seconds:.0f} s")
