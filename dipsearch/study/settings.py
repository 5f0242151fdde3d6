"""What a study is: its images and levels, the space, the trial budget, the objective and the cost cap.

The fit of every instance is a restore member's fit (dipsearch.pipelines.restore): the holdout fitness's split,
the recommended (auto) stopping, the budget's iterations; the score is the true PSNR of the stopped output, which
only a study (whose images are clean) can know. Checks raise ArgumentError, which names the argument in Python
and the flag on the command line.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from ..errors import ArgumentError, check_at_least

OBJECTIVES = ("quality", "pareto")
SAMPLERS = ("tpe", "random")
TASK_OPTIONS = ("noise", "factor", "mask_ratio", "mask_kind", "kernel", "kernel_width", "acceleration")


@dataclass
class StudySettings:
    """images: clean image files or folders of them; sigmas: noise levels (None: the task's default level).

    space: a named space or TOML path; None: the space of restore's budget (demo on a CPU, default with CUDA).
    iters: each fit's budget; None: the restore member's (dipsearch.pipelines.choosers.BUDGETS). max_cost: the
    pick must cost at most this many times the space default's seconds per fit (None: no cap). storage: an Optuna
    storage URL (None: a journal file in the run folder); workers: trials fitted at once, each by a local worker
    process.
    """

    images: list[str] = field(default_factory=list)
    sigmas: list[float | None] = field(default_factory=lambda: [None])
    crop: int | None = 128
    space: str | None = None
    trials: int = 20
    iters: int | None = None
    objective: str = "quality"
    max_cost: float | None = None
    sampler: str = "tpe"
    p_threshold: float = 0.1  # the Wilcoxon pruner's one-sided p-value for "worse than the best trial"
    task: str = "denoise"
    noise: str = "gaussian"
    factor: int | None = None
    mask_ratio: float | None = None
    mask_kind: str | None = None
    kernel: str | None = None
    kernel_width: float | None = None
    acceleration: float | None = None
    seed: int = 0
    device: str = "auto"
    threads: int | None = None  # torch threads per fit; None: 1 on a CPU (results then do not depend on it)
    workers: int | None = None
    storage: str | None = None

    def check(self) -> None:
        """The checks that need no file (the images are checked when the instances are built)."""
        from ..problems.recipe import check_seed

        if self.crop is not None and self.crop < 8:
            raise ArgumentError("{crop} must be at least 8 px, got {value}", value=self.crop)
        check_at_least("trials", self.trials, 1)
        if self.iters is not None:
            check_at_least("iters", self.iters, 1)
        if self.objective not in OBJECTIVES:
            raise ArgumentError(
                "{objective} must be one of {names}, got {value!r}", names=", ".join(OBJECTIVES), value=self.objective
            )
        if self.max_cost is not None and not (math.isfinite(self.max_cost) and self.max_cost > 0):
            raise ArgumentError(
                "{max_cost} must be > 0 (a multiple of the space default's seconds per fit), got {value}",
                value=self.max_cost,
            )
        if self.sampler not in SAMPLERS:
            raise ArgumentError(
                "{sampler} must be one of {names}, got {value!r}", names=", ".join(SAMPLERS), value=self.sampler
            )
        if not 0 < self.p_threshold < 1:
            raise ArgumentError("{p_threshold} must be between 0 and 1, got {value}", value=self.p_threshold)
        if self.threads is not None:
            check_at_least("threads", self.threads, 1)
        if self.workers is not None:
            check_at_least("workers", self.workers, 1)
        check_seed(self.seed)
        if not self.sigmas:
            raise ArgumentError("{sigmas} is empty: give at least one level, e.g. 25")

    def resolved(self) -> StudySettings:
        """Image and space files as absolute paths: what the run folder stores, so a resume works from anywhere."""
        from dataclasses import replace
        from pathlib import Path

        space = self.space
        if space is not None and Path(space).is_file():
            space = str(Path(space).resolve())
        return replace(self, images=[str(Path(p).resolve()) for p in self.images], space=space)

    def recipe(self) -> Any:
        """The problem recipe every instance shares (its image and level are set per instance)."""
        from ..problems.recipe import ProblemRecipe

        return ProblemRecipe(
            task=self.task, crop=self.crop, seed=self.seed, **{k: getattr(self, k) for k in TASK_OPTIONS}
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StudySettings:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
