"""A stopping detector in one module: the smoothed change between consecutive outputs.

While the network still learns the image, each step changes the output a lot; once it has the image and starts
on the noise, the change settles. The statistic is an exponential moving average of the mean squared change
between consecutive outputs; the patience rule stops after `patience` steps without a new minimum.

    from dipsearch.stopping import DETECTORS
    DETECTORS[OutputChange.name] = OutputChange       # the registry line: make_detector("change") now works
"""

from __future__ import annotations

from torch import Tensor

from dipsearch.errors import DipsearchError
from dipsearch.fitting.fit import FitConfig, StepState
from dipsearch.nets.arch import ArchSpec
from dipsearch.problems.problem import Problem
from dipsearch.stopping import Detector


class OutputChange(Detector):
    name = "change"
    default_patience = 300

    def __init__(self, beta: float = 0.9, warmup: int = 20) -> None:
        if not 0 <= beta < 1:
            raise DipsearchError(f"change: beta must be in [0, 1), got {beta}")
        self.beta, self.warmup = beta, warmup

    def start(self, problem: Problem, spec: ArchSpec, config: FitConfig) -> None:
        super().start(problem, spec, config)
        self.previous: Tensor | None = None
        self.smoothed: float | None = None

    def update(self, state: StepState) -> float | None:
        x = state.out
        if self.previous is None:
            self.previous = x.detach().clone()
            return None
        change = float((x - self.previous).pow(2).mean())
        self.previous = x.detach().clone()  # a copy: the engine may reuse the output's memory
        self.smoothed = change if self.smoothed is None else self.beta * self.smoothed + (1 - self.beta) * change
        return self.smoothed if state.step > self.warmup else None
