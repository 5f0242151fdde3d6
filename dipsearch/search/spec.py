"""What a search is (SearchSpec, with its StopSpec and Seeding) and how this process runs it (Runtime).

The spec is stored with a run and decides its results; the runtime (workers, Dask, output folder,
display) may differ each time the run is started or resumed. Both are plain dataclasses with
to_dict/from_dict (TOML/JSON friendly). Checks raise dipsearch.errors.ArgumentError, which names the
argument in Python (`iters must be >= 1, got 0`) and the flag on the command line (`--iters ...`).

Module level imports only the standard library, and no searcher: a searcher's settings type comes from the
registry (search/base.py) when a stored spec is read.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import InitVar, asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ArgumentError
from ..stopping.spec import StopSpec

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from rich.console import Console

    from ..nets.space import SearchSpace
    from ..scoring.evaluate import Evaluation
    from .bayes.study import BayesSettings
    from .ga.algorithm import GAConfig
    from .rungs import RungPlan

EVAL_SCALES = (1.0, 0.5, 0.25)


@dataclass
class Seeding:
    """Where a search starts: the best of `preselect` training-free-scored samples, and past winners."""

    preselect: int = 0
    preselect_keep: int | None = None  # default: the GA's whole population, a quarter of the Bayesian trials
    preselect_metric: str | None = None  # default: dipsearch.preselect.DEFAULT_METRIC
    seed_from: list[str] = field(default_factory=list)  # run folders or glob patterns
    start_from: list[str] = field(default_factory=list)  # study folders (dipsearch.study): their best genomes

    @property
    def active(self) -> bool:
        return bool(self.preselect or self.seed_from or self.start_from)


def default_plan() -> RungPlan:
    from .rungs import RungPlan

    return RungPlan()


@dataclass
class SearchSpec:
    """A search's settings: space, budget, fitness, stopping, final rung, fit options and the searcher's own.

    space: a name in search_spaces/, a TOML path, or a dipsearch.nets.space.SearchSpace.
    eval_scale: screen candidates on a 1/2 or 1/4 subsampled image; None: 0.5 where the task and image
        allow it, else 1.
    rungs: the multi-fidelity plan (dipsearch.search.rungs.RungPlan); None: the screening's best is the answer.
    threads: torch threads per fit; None: 1 on CPU for the GA (bit-identical with any worker count).
    searcher / settings: which searcher (dipsearch.search.base.SEARCHERS) and its settings object; None: the
        searcher the caller runs, and its defaults. ga=GAConfig(...) or bayes=BayesSettings(...) set both.
    """

    space: str | Path | SearchSpace = "default"
    iters: int = 400
    fitness: str = "holdout"
    eval_scale: float | None = None
    seed: int = 0
    stop: StopSpec | None = None
    rungs: RungPlan | None = field(default_factory=default_plan)
    device: str = "auto"
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    init: str | None = None  # warm start: a run folder or weights.pt
    threads: int | None = None
    seeding: Seeding = field(default_factory=Seeding)
    searcher: str | None = None  # a name in dipsearch.search.base.SEARCHERS; None: the one a caller runs
    settings: Any = None  # the searcher's settings (its settings_type()); None: its defaults
    ga: InitVar[GAConfig | None] = None  # SearchSpec(ga=GAConfig(...)): searcher "ga" with these settings
    bayes: InitVar[BayesSettings | None] = None

    def __post_init__(self, ga: GAConfig | None, bayes: BayesSettings | None) -> None:
        for name, settings in (("ga", ga), ("bayes", bayes)):
            if settings is not None:
                self.searcher, self.settings = name, settings

    def settings_of(self, searcher: str) -> Any:
        """The settings when this spec is for `searcher`, else None."""
        return self.settings if self.searcher == searcher else None

    def check(self) -> None:
        """The checks that need no problem (the rest happen when the search is set up on one)."""
        from ..problems.recipe import check_seed

        if self.iters < 1:
            raise ArgumentError("{iters} must be >= 1, got {value}", value=self.iters)
        check_seed(self.seed)
        if self.eval_scale is not None and self.eval_scale not in EVAL_SCALES:
            raise ArgumentError("{eval_scale} must be 1, 0.5 or 0.25, got {value:g}", value=self.eval_scale)
        if self.threads is not None and self.threads < 1:
            raise ArgumentError("{threads} must be >= 1, got {value}", value=self.threads)
        if self.precision not in ("fp32", "bf16"):
            raise ArgumentError("{precision} must be fp32 or bf16, got {value!r}", value=self.precision)
        if self.stop is not None:
            self.stop.check()
        if self.rungs is not None:
            self.rungs.check()
        if self.searcher is not None:
            from .base import searcher_class

            searcher_class(self.searcher)  # an unknown name fails here, listing the registered ones
        if self.settings is not None and hasattr(self.settings, "check"):
            self.settings.check()

    @property
    def fit_options(self) -> dict[str, Any]:
        """The FitConfig speed settings that differ from exact fp32 eager (part of a candidate's key)."""
        from ..fitting.fit import FitConfig

        fast = {"precision": self.precision, "channels_last": self.channels_last, "compile": self.compile}
        return {k: v for k, v in fast.items() if v != FitConfig.__dataclass_fields__[k].default}

    def space_name(self) -> str:
        return str(getattr(self.space, "source", self.space))

    def to_dict(self) -> dict[str, Any]:
        data = {
            "space": self.space_name(),
            "iters": self.iters,
            "fitness": self.fitness,
            "eval_scale": self.eval_scale,
            "seed": self.seed,
            "stop": self.stop.to_dict() if self.stop else None,
            "rungs": self.rungs.to_dict() if self.rungs else {"final": 0},
            "device": self.device,
            "precision": self.precision,
            "channels_last": self.channels_last,
            "compile": self.compile,
            "init": self.init,
            "threads": self.threads,
            "seeding": asdict(self.seeding),
            "searcher": self.searcher,
        }
        if self.searcher is not None and self.settings is not None:
            data[self.searcher] = asdict(self.settings)  # under its name: the form folders have always had
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpec:
        from .base import SEARCHERS, searcher_class
        from .rungs import RungPlan

        simple = {f.name for f in fields(cls)} - {"stop", "rungs", "seeding", "searcher", "settings"}
        spec = cls(**{k: v for k, v in data.items() if k in simple and v is not None})
        spec.stop = StopSpec.from_dict(data.get("stop"))
        rungs = data.get("rungs")
        spec.rungs = (
            None if rungs is not None and not rungs.get("final") else RungPlan.from_dict(rungs) if rungs else RungPlan()
        )
        spec.seeding = Seeding(**data.get("seeding", {}))
        # Specs stored before the "searcher" key hold their settings under the searcher's name only.
        spec.searcher = data.get("searcher") or next((name for name in SEARCHERS if data.get(name)), None)
        if spec.searcher is not None and data.get(spec.searcher):
            kind = searcher_class(spec.searcher).settings_type()
            known = kind.__dataclass_fields__  # init-only aliases too (GAConfig's sigma, in older folders)
            spec.settings = kind(**{k: v for k, v in data[spec.searcher].items() if k in known})
        return spec


def _searcher_settings(name: str) -> property:
    """SearchSpec.ga / .bayes: the settings when the spec is for that searcher (the form of earlier versions)."""
    return property(lambda spec: spec.settings_of(name), doc=f"spec.settings when spec.searcher == {name!r}")


SearchSpec.ga = _searcher_settings("ga")  # type: ignore[assignment]
SearchSpec.bayes = _searcher_settings("bayes")  # type: ignore[assignment]


@dataclass
class Runtime:
    """How this process runs a search; may change on every start and resume (never stored as the run's truth).

    workers: local worker processes (None: one per GPU, else in-process); dask: a scheduler address instead.
    progress: a live display (terminals); else one line per generation or trial on `console`.
    console: a rich Console for the tables and lines (None: stdout; rich.console.Console(quiet=True) for none).
    on_evaluation: called in this process after each evaluation is recorded (raise KeyboardInterrupt to stop
        the search as Ctrl-C would: the run folder stays resumable).
    tensorboard: each evaluated candidate writes its fit and scores as a TensorBoard run under the run folder's
        tensorboard/ (dipsearch.fitting.tensorboard; needs the tensorboard extra).
    """

    workers: int | None = None
    dask: str | None = None
    dask_timeout: float = 10.0
    out: str | Path = "runs"
    progress: bool = False
    console: Console | None = None
    on_evaluation: Callable[[Evaluation], None] | None = None
    tensorboard: bool = False

    def check(self) -> None:
        if self.tensorboard:
            from ..fitting.tensorboard import require

            require()
        if self.workers is not None and self.workers < 1:
            raise ArgumentError("{workers} must be >= 1, got {value}", value=self.workers)
        if self.dask_timeout <= 0:
            raise ArgumentError("{dask_timeout} must be > 0, got {value}", value=self.dask_timeout)

    def executor(self) -> Executor:
        """Where the fits run: the Dask scheduler, local worker processes, or this process."""
        from ..scoring.executors import dask_executor, make_executor

        return dask_executor(self.dask, self.dask_timeout) if self.dask else make_executor(self.workers)

    def the_console(self) -> Console:
        if self.console is None:
            from ..console import make_console

            self.console = make_console()
        return self.console

    def to_dict(self) -> dict[str, Any]:
        return {
            "workers": self.workers,
            "dask": self.dask,
            "dask_timeout": self.dask_timeout,
            "out": str(self.out),
            "progress": self.progress,
            "tensorboard": self.tensorboard,
        }
