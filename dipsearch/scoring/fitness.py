"""How a fit is scored for a search. Every fitness is "higher is better", in dB.

- holdout: a seeded fraction of the observed pixels is withheld from the loss; the score is the PSNR of
  the output against the observation on those pixels. Needs no ground truth, so it is the default: a
  search scored this way measures what a user without a clean image gets. For denoising,
  E[held-out MSE] = true MSE + sigma^2, the same offset for every candidate on one observation.
- psnr: PSNR against the clean image (research runs only; needs --clean).
- sure: Stein's unbiased estimate of the true MSE under Gaussian noise of known sigma (the Sure detector of
  dipsearch.stopping, which trains a twin network in lock-step: twice the fit cost), as 10 log10(1 / SURE).
  It estimates the error of the current iterate, so it scores the last output (or a stopping rule's pick),
  never the EMA.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch

from ..errors import ArgumentError
from ..fitting.fit import FitHook, StepState
from ..metrics import psnr
from ..problems.holdout import HeldOut
from ..problems.problem import Problem


class Fitness(ABC):
    """Scores the image a fit returns. prepare() may change what the fit sees (e.g. withhold pixels)."""

    name = "fitness"
    needs_clean = False
    output: str | None = None  # "final" when only the last iterate can be scored; None: the candidate's choice
    paired = False  # residuals() gives per-pixel errors: the final rung can test a finalist against the default

    def check(self, problem: Problem) -> None:  # noqa: B027 - an optional hook: most fitnesses score any problem
        """Raise DipsearchError when this fitness cannot score `problem` (called before any work)."""

    def prepare(self, problem: Problem, seed: int) -> Problem:
        return problem

    def hooks(self) -> list[FitHook]:
        """Fit hooks this fitness needs to watch the fit (SURE's twin network); fresh ones per fit."""
        return []

    def select_step(self, step: int) -> None:  # noqa: B027 - an optional hook: only step-wise fitnesses use it
        """The iterate to score is that of `step` (a stopping rule's choice), not the last one."""

    @abstractmethod
    def score(self, output: torch.Tensor, problem: Problem) -> float:
        """Higher is better. `problem` is the prepared one; `output` is in image space (1xCxHxW)."""

    def residuals(self, output: torch.Tensor, problem: Problem) -> torch.Tensor:
        """The squared errors the score averages, one per pixel and channel (only where `paired`)."""
        raise NotImplementedError(f"fitness {self.name!r} has no per-pixel residuals")


class HoldoutFitness(Fitness):
    name = "holdout"
    paired = True

    def __init__(self, fraction: float = 0.05):
        self.fraction = fraction
        self.held: HeldOut | None = None

    def prepare(self, problem: Problem, seed: int) -> Problem:
        prepared, self.held = problem.with_holdout(self.fraction, seed)
        return prepared

    def _held(self) -> HeldOut:
        if self.held is None:
            raise RuntimeError("HoldoutFitness scored before prepare")
        return self.held

    def score(self, output: torch.Tensor, problem: Problem) -> float:
        return self._held().psnr(output, problem)

    def residuals(self, output: torch.Tensor, problem: Problem) -> torch.Tensor:
        """The squared errors on the held-out pixels (every channel), one value each: what the score
        averages, for paired comparisons of two outputs on the same pixels."""
        return self._held().residuals(output, problem)


class PsnrFitness(Fitness):
    name = "psnr"
    needs_clean = True

    def score(self, output: torch.Tensor, problem: Problem) -> float:
        return psnr(output, problem.clean.to(output.device))


class _SureHook(FitHook):
    """Runs the Sure detector alongside the fit and keeps its estimate of every step."""

    name = "sure-fitness"

    def __init__(self, detector):
        self.detector = detector
        self.values: dict[int, float] = {}

    def on_start(self, problem, spec, config) -> None:
        self.detector.start(problem, spec, config)

    def on_step(self, state: StepState) -> bool:
        value = self.detector.update(state)
        if value is not None:
            self.values[state.step] = value
            state.record["sure_mse"] = value
        return False


class SureFitness(Fitness):
    name = "sure"
    output = "final"
    floor = 1e-10  # SURE is an estimate and can dip below 0 on tiny images; 100 dB caps what that scores

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.hook: _SureHook | None = None
        self.step: int | None = None

    def _detector(self):
        from ..stopping import Sure  # the stopping package owns the estimator; imported only when used

        return Sure(seed=self.seed)

    def check(self, problem: Problem) -> None:
        from ..stopping import Sure

        if problem.meta.get("noise") is None or not Sure.accepts_noise(problem.meta["noise"]):
            raise ArgumentError("fitness 'sure' needs Gaussian noise of known sigma ({noise:gaussian} {level:S})")
        self._detector().check(problem)

    def prepare(self, problem: Problem, seed: int) -> Problem:
        self.seed = seed
        return problem

    def hooks(self) -> list[FitHook]:
        self.hook = _SureHook(self._detector())
        self.step = None
        return [self.hook]

    def select_step(self, step: int) -> None:
        self.step = step

    def score(self, output: torch.Tensor, problem: Problem) -> float:
        if self.hook is None or not self.hook.values:
            raise RuntimeError("SureFitness.score called before a fit with its hooks()")
        values = self.hook.values
        mse = values.get(self.step, values[max(values)]) if self.step is not None else values[max(values)]
        return 10.0 * math.log10(1.0 / max(mse, self.floor))


# The registry of candidate scores (`--fitness NAME`): a new score is a Fitness subclass in its own module
# and one register_fitness(cls) call (docs/extending/score.md).
FITNESSES: dict[str, type[Fitness]] = {"holdout": HoldoutFitness, "psnr": PsnrFitness, "sure": SureFitness}


def register_fitness(cls: type[Fitness]) -> type[Fitness]:
    """Add a score under its `name` (usable as a class decorator)."""
    FITNESSES[cls.name] = cls
    return cls


def make_fitness(name: str, problem: Problem | None = None) -> Fitness:
    """A fresh score of that name; with a problem, checked against it (each score's own check())."""
    if name not in FITNESSES:
        raise ArgumentError(
            "unknown fitness {value!r}; choose one of {choices}", value=name, choices=", ".join(FITNESSES)
        )
    fitness = FITNESSES[name]()
    if problem is not None and fitness.needs_clean and problem.clean is None:
        raise ArgumentError(
            "fitness {name!r} needs ground truth: give {clean:PATH}, or use the ground-truth-free 'holdout'", name=name
        )
    if problem is not None:
        fitness.check(problem)
    return fitness
