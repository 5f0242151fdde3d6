"""What a running GA shows: the observer protocol the GA loop reports to, a rich live display or one plain
line per generation (--no-progress), and the closing table of the best architectures."""

from __future__ import annotations

from typing import Any, Protocol

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from ..families import family_of
from ..nets.space import Genome, SearchSpace
from ..scoring.evaluate import Evaluation


class GAObserver(Protocol):
    """What the GA loop tells a display, on the driver, in this order per generation (NullObserver: nothing)."""

    def generation_started(self, gen: int, gens: int, queued: int, cached: int) -> None: ...
    def evaluated(self, evaluation: Evaluation, best: Evaluation | None) -> None: ...
    def generation_done(self, row: dict[str, Any]) -> None: ...


class NullObserver:
    def generation_started(self, gen: int, gens: int, queued: int, cached: int) -> None:
        pass

    def evaluated(self, evaluation: Evaluation, best: Evaluation | None) -> None:
        pass

    def generation_done(self, row: dict[str, Any]) -> None:
        pass


def _db(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def best_line(best: Evaluation | None) -> str:
    if best is None:
        return "best so far: -"
    line = f"best so far: fitness {_db(best.fitness)} dB"
    if best.psnr is not None:
        line += f" (true PSNR {_db(best.psnr)} dB)"
    return line + f", {best.params:,} params, evaluation #{best.index}" if best.params else line


class LiveDisplay:
    """Generation bar, evaluations done/queued in this generation, best so far. A context manager."""

    def __init__(self, console: Console, gens: int):
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self.gen_task = self.progress.add_task("generations", total=gens + 1, note="")
        self.eval_task = self.progress.add_task("evaluations", total=0, note="")
        self.best = Text("best so far: -")
        self.live = Live(Group(self.progress, self.best), console=console, refresh_per_second=4)
        self.failed = 0

    def __enter__(self) -> LiveDisplay:
        self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.live.__exit__(*exc)

    def generation_started(self, gen: int, gens: int, queued: int, cached: int) -> None:
        self.progress.update(self.gen_task, total=gens + 1, note=f"generation {gen}")
        self.progress.reset(self.eval_task, total=queued, note=f"{queued} queued, {cached} from cache")
        self.queued, self.cached = queued, cached

    def evaluated(self, evaluation: Evaluation, best: Evaluation | None) -> None:
        self.failed += evaluation.fitness is None
        self.progress.advance(self.eval_task)
        done = int(self.progress.tasks[self.eval_task].completed)
        self.progress.update(
            self.eval_task,
            note=f"{self.queued - done} queued, {self.cached} from cache"
            + (f", {self.failed} failed in all" if self.failed else ""),
        )
        self.best.plain = best_line(best)

    def generation_done(self, row: dict[str, Any]) -> None:
        self.progress.update(self.gen_task, completed=row["gen"] + 1)


class LogDisplay:
    """One line per generation, for logs and non-terminals."""

    def __init__(self, console: Console):
        self.console = console

    def __enter__(self) -> LogDisplay:
        return self

    def __exit__(self, *exc: Any) -> None:
        pass

    def generation_started(self, gen: int, gens: int, queued: int, cached: int) -> None:
        self.console.print(f"generation {gen}/{gens}: {queued} to fit, {cached} from cache", highlight=False)

    def evaluated(self, evaluation: Evaluation, best: Evaluation | None) -> None:
        pass

    def generation_done(self, row: dict[str, Any]) -> None:
        psnr = f", true PSNR {_db(row.get('best_psnr'))}" if row.get("best_psnr") is not None else ""
        self.console.print(
            f"generation {row['gen']} done: best {_db(row.get('best_ever'))} dB{psnr}, population mean "
            f"{_db(row.get('mean'))} dB, {row['evaluations']} evaluations, {row['seconds']:.0f} s",
            highlight=False,
        )


def describe(space: SearchSpace, genome: Genome) -> str:
    """A compact architecture label: depth, channels, skips, kernels, upsampling and the searched settings."""
    arch = space.decode(genome)
    family = family_of(arch)
    text = family.describe()
    globals_ = [
        f"{k} {v}" for k, v in family.to_dict().items() if k in space.genes and not isinstance(v, (list, tuple))
    ]
    settings = [
        f"{k} {v:.3g}" for k, v in space.fit_settings(genome).items() if k in space.genes and isinstance(v, float)
    ]
    return "  ".join([text] + globals_ + settings)


def top_table(space: SearchSpace, hall: list[tuple[Genome, Evaluation | None]], title: str) -> Table:
    table = Table(title=title, header_style="bold")
    for name, justify in (
        ("#", "right"),
        ("fitness dB", "right"),
        ("true PSNR", "right"),
        ("params", "right"),
        ("architecture", "left"),
        ("eval", "right"),
    ):
        table.add_column(name, justify=justify)
    for rank, (genome, ev) in enumerate(hall, 1):
        if ev is None:
            continue
        table.add_row(
            str(rank),
            _db(ev.fitness),
            _db(ev.psnr),
            f"{ev.params:,}" if ev.params else "-",
            describe(space, genome),
            str(ev.index),
        )
    return table
