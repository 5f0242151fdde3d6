"""How a fit is scored for a search. Every fitness is "higher is better", in dB.

- holdout: a seeded fraction of the observed pixels is withheld from the loss; the score is the PSNR of
  the output against the observation on those pixels. Needs no ground truth, so it is the default: a
  search scored this way measures what a user without a clean image gets. For denoising,
  E[held-out MSE] = true MSE + sigma^2, the same offset for every candidate on one observation.
- psnr: PSNR against the clean image (research runs only; needs --clean).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from .errors import DipsearchError
from .metrics import psnr
from .tasks import Problem


class Fitness(ABC):
    """Scores the image a fit returns. prepare() may change what the fit sees (e.g. withhold pixels)."""

    name = "fitness"
    needs_clean = False

    def prepare(self, problem: Problem, seed: int) -> Problem:
        return problem

    @abstractmethod
    def score(self, output: torch.Tensor, problem: Problem) -> float:
        """Higher is better. `problem` is the prepared one; `output` is in image space (1xCxHxW)."""


class HoldoutFitness(Fitness):
    name = "holdout"

    def __init__(self, fraction: float = 0.05):
        self.fraction = fraction
        self.held: torch.Tensor | None = None

    def prepare(self, problem: Problem, seed: int) -> Problem:
        prepared, self.held = problem.with_holdout(self.fraction, seed)
        return prepared

    def score(self, output: torch.Tensor, problem: Problem) -> float:
        if self.held is None:
            raise RuntimeError("HoldoutFitness.score called before prepare")
        with torch.no_grad():
            predicted = problem.operator(output.to(problem.observed.device))
        return psnr(predicted, problem.observed, self.held.to(predicted.device))


class PsnrFitness(Fitness):
    name = "psnr"
    needs_clean = True

    def score(self, output: torch.Tensor, problem: Problem) -> float:
        return psnr(output, problem.clean.to(output.device))


FITNESSES: dict[str, type[Fitness]] = {"holdout": HoldoutFitness, "psnr": PsnrFitness}


def make_fitness(name: str, problem: Problem | None = None) -> Fitness:
    if name not in FITNESSES:
        raise DipsearchError(f"unknown fitness {name!r}; choose one of {', '.join(FITNESSES)}")
    fitness = FITNESSES[name]()
    if problem is not None and fitness.needs_clean and problem.clean is None:
        raise DipsearchError(
            f"fitness {name!r} needs ground truth: give --clean PATH, or use the ground-truth-free 'holdout'"
        )
    if problem is not None and name == "sure" and problem.meta.get("noise") != "gaussian":
        raise DipsearchError("fitness 'sure' needs Gaussian noise of known sigma (--noise gaussian --sigma S)")
    return fitness
