"""Rich progress bars as fit hooks, and the closing tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .fit import FitHook, StepState


def fit_progress(console: Console | None = None, transient: bool = False) -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[status]}"),
        TextColumn("[cyan]{task.fields[rate]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=transient,
    )


class ProgressHook(FitHook):
    """Advances a rich progress task every step and shows loss, PSNR (when known) and it/s."""

    name = "progress"
    step_feed = "trace"  # reads only the step, the loss and the record: fed from the trace, a captured fit's too

    def __init__(self, progress: Progress, description: str = "fit", every: int = 10):
        self.progress = progress
        self.description = description
        self.every = every
        self.task = None

    def on_start(self, problem, spec, config) -> None:
        self.task = self.progress.add_task(self.description, total=config.iters, status="", rate="")
        # Loss and PSNR live on the fit's device until the trace is fetched: read them at that cadence only.
        self.status_every = max(self.every, config.trace_every)

    def on_step(self, state: StepState) -> bool:
        if state.step % self.every == 0 or state.step == 1:
            seconds = state.record.get("seconds", 0.0)
            rate = f"{state.step / seconds:.1f} it/s" if seconds > 0 else ""
            fields = {"rate": rate}
            if state.step % self.status_every == 0 or state.step == 1:
                status = f"loss {state.loss:.5f}"
                if "psnr" in state.record:
                    status += f"  PSNR {state.record['psnr']:.2f} (EMA {state.record['psnr_ema']:.2f})"
                fields["status"] = status
            self.progress.update(self.task, completed=state.step, **fields)
        return False

    def on_end(self, result) -> None:
        self.progress.update(self.task, completed=result.iters_run, total=result.iters_run)


def summary_table(title: str, summary: dict[str, Any]) -> Table:
    """The scalars of a summary, one row each; lists and tables (genomes, rung rows) stay in summary.json."""
    table = Table(title=title, show_header=True, header_style="bold", min_width=len(title) + 4)
    table.add_column("key")
    table.add_column("value", justify="right")
    for key, value in summary.items():
        if isinstance(value, (dict, list, tuple)):
            continue
        if isinstance(value, float):
            value = f"{value:.4f}" if abs(value) < 1000 else f"{value:.1f}"
        table.add_row(key, str(value))
    return table
