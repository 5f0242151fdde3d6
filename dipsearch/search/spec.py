"""What a search is (SearchSpec, with its StopSpec and Seeding) and how this process runs it (Runtime).

The spec is stored with a run and decides its results; the runtime (workers, Dask, output folder,
display) may differ each time the run is started or resumed. Both are plain dataclasses with
to_dict/from_dict (TOML/JSON friendly). Checks raise dipsearch.errors.ArgumentError, which names the
argument in Python (`iters must be >= 1, got 0`) and the flag on the command line (`--iters ...`).

Module level imports only the standard library: the searchers' own settings (GAConfig in .ga,
BayesSettings in .study, RungPlan in .rungs) are imported when a spec needs them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ArgumentError

if TYPE_CHECKING:
    from rich.console import Console

    from ..evaluate import Evaluation
    from ..fit import FitHook
    from ..space import SearchSpace
    from ..tasks import Problem
    from .ga import GAConfig
    from .rungs import RungPlan
    from .study import BayesSettings

EVAL_SCALES = (1.0, 0.5, 0.25)
INDEXINGS = ("end", "start")


@dataclass
class StopSpec:
    """Online stopping of a fit: a detector and its rule (dipsearch.stopping). None fields: the detector's default.

    sigma is on the 0-1 scale (or "estimate"); `parse` takes the command line's 0-255 value.
    """

    detector: str
    patience: int | None = None
    delta: float | None = None
    indexing: str | None = None
    window: int | None = None
    fraction: float | None = None  # holdout: share of the observed pixels withheld from the loss
    sigma: float | str | None = None  # sure: the noise sigma; None: the problem's

    @classmethod
    def parse(
        cls,
        detector: str | None,
        *,
        patience: int | None = None,
        delta: float | None = None,
        indexing: str | None = None,
        window: int | None = None,
        fraction: float | None = None,
        sure_sigma: float | str | None = None,
    ) -> StopSpec | None:
        """The spec of the `--stop` settings; None for no stopping ("none"). sure_sigma: 0-255 scale or "estimate"."""
        from ..stopping import DETECTORS

        name = detector or "none"
        if name != "none" and name not in DETECTORS:
            raise ArgumentError(
                "unknown detector {value!r}; choose one of {choices} or none (no stopping)",
                value=name,
                choices=", ".join(DETECTORS),
            )
        if name == "none":
            return None
        sigma: float | str | None = sure_sigma
        if sigma is not None and sigma != "estimate":
            try:
                sigma = float(sigma) / 255.0
            except ValueError:
                raise ArgumentError(
                    "{sure_sigma} takes a number (0-255 scale) or 'estimate', got {value!r}", value=sure_sigma
                ) from None
        spec = cls(
            name, patience=patience, delta=delta, indexing=indexing, window=window, fraction=fraction, sigma=sigma
        )
        spec.check()
        return spec

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> StopSpec | None:
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        """The Candidate.stop form (part of a candidate's cache key: only the settings given)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def check(self) -> None:
        if self.indexing is not None and self.indexing not in INDEXINGS:
            raise ArgumentError("{indexing} must be end or start, got {value!r}", value=self.indexing)
        if self.patience is not None and self.patience < 1:
            raise ArgumentError("{patience} must be >= 1, got {value}", value=self.patience)

    def hook(self, seed: int, problem: Problem) -> FitHook:
        """The online stopping hook; raises for a detector that cannot work on this problem."""
        from ..stopping import StoppingHook, make_detector

        detector = make_detector(self.detector, seed=seed, window=self.window, fraction=self.fraction, sigma=self.sigma)
        detector.check(problem)
        rule = detector.rule(patience=self.patience, delta=self.delta or 0.0, indexing=self.indexing or "end")
        return StoppingHook.online(detector, rule)


@dataclass
class Seeding:
    """Where a search starts: the best of `preselect` training-free-scored samples, and past winners."""

    preselect: int = 0
    preselect_keep: int | None = None  # default: the GA's whole population, a quarter of the Bayesian trials
    preselect_metric: str | None = None  # default: dipsearch.preselect.DEFAULT_METRIC
    seed_from: list[str] = field(default_factory=list)  # run folders or glob patterns

    @property
    def active(self) -> bool:
        return bool(self.preselect or self.seed_from)


def default_plan() -> RungPlan:
    from .rungs import RungPlan

    return RungPlan()


@dataclass
class SearchSpec:
    """A search's settings: space, budget, fitness, stopping, final rung, fit options and the searcher's own.

    space: a name in search_spaces/, a TOML path, or a dipsearch.space.SearchSpace.
    eval_scale: screen candidates on a 1/2 or 1/4 subsampled image; None: 0.5 where the task and image
        allow it, else 1.
    rungs: the multi-fidelity plan (dipsearch.search.rungs.RungPlan); None: the screening's best is the answer.
    threads: torch threads per fit; None: 1 on CPU for the GA (bit-identical with any worker count).
    ga / bayes: the searcher's settings (GAConfig / BayesSettings); None: their defaults.
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
    ga: GAConfig | None = None
    bayes: BayesSettings | None = None

    def check(self) -> None:
        """The checks that need no problem (the rest happen when the search is set up on one)."""
        from .recipe import check_seed

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
        if self.ga is not None:
            self.ga.check()

    @property
    def fit_options(self) -> dict[str, Any]:
        """The FitConfig speed settings that differ from exact fp32 eager (part of a candidate's key)."""
        from ..fit import FitConfig

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
            "ga": asdict(self.ga) if self.ga else None,
            "bayes": asdict(self.bayes) if self.bayes else None,
        }
        return {k: v for k, v in data.items() if v is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSpec:
        from .rungs import RungPlan

        simple = {f.name for f in fields(cls)} - {"stop", "rungs", "seeding", "ga", "bayes"}
        spec = cls(**{k: v for k, v in data.items() if k in simple and v is not None})
        spec.stop = StopSpec.from_dict(data.get("stop"))
        rungs = data.get("rungs")
        spec.rungs = (
            None if rungs is not None and not rungs.get("final") else RungPlan.from_dict(rungs) if rungs else RungPlan()
        )
        spec.seeding = Seeding(**data.get("seeding", {}))
        if data.get("ga"):
            from .ga import GAConfig

            spec.ga = GAConfig(**{k: v for k, v in data["ga"].items() if k in GAConfig.__dataclass_fields__})
        if data.get("bayes"):
            from .study import BayesSettings

            spec.bayes = BayesSettings(
                **{k: v for k, v in data["bayes"].items() if k in BayesSettings.__dataclass_fields__}
            )
        return spec


@dataclass
class Runtime:
    """How this process runs a search; may change on every start and resume (never stored as the run's truth).

    workers: local worker processes (None: one per GPU, else in-process); dask: a scheduler address instead.
    progress: a live display (terminals); else one line per generation or trial on `console`.
    console: a rich Console for the tables and lines (None: stdout; rich.console.Console(quiet=True) for none).
    on_evaluation: called in this process after each evaluation is recorded (raise KeyboardInterrupt to stop
        the search as Ctrl-C would: the run folder stays resumable).
    tensorboard: each evaluated candidate writes its fit and scores as a TensorBoard run under the run folder's
        tensorboard/ (dipsearch.tensorboard; needs the tensorboard extra).
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
            from ..tensorboard import require

            require()
        if self.workers is not None and self.workers < 1:
            raise ArgumentError("{workers} must be >= 1, got {value}", value=self.workers)
        if self.dask_timeout <= 0:
            raise ArgumentError("{dask_timeout} must be > 0, got {value}", value=self.dask_timeout)

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
