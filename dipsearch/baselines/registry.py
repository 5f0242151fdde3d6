"""The baseline registry: name -> Baseline (which tasks it solves, what it needs, how to run it)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import DipsearchError
from ..problems.problem import Problem


@dataclass(frozen=True)
class Baseline:
    name: str
    tasks: tuple[str, ...]
    run: Callable[[Problem], torch.Tensor]
    description: str
    package: str | None = None  # an optional import this method needs
    extra: str | None = None  # the pyproject extra that installs it
    uses_sigma: bool = False  # reads the noise level (stated, else estimated)

    def available(self) -> bool:
        if self.package is None:
            return True
        try:
            importlib.import_module(self.package)
        except ImportError:
            return False
        return True

    def require(self) -> None:
        if not self.available():
            raise DipsearchError(
                f"baseline {self.name} needs the optional package {self.package!r}, which is not installed; "
                f"install it with: pip install 'dipsearch[{self.extra}]' (or pip install {self.package})"
            )


BASELINES: dict[str, Baseline] = {}


def register(baseline: Baseline) -> Baseline:
    BASELINES[baseline.name] = baseline
    return baseline


def baseline_names(task: str | None = None) -> list[str]:
    return [name for name, b in BASELINES.items() if task is None or task in b.tasks]


def get_baseline(name: str, task: str | None = None) -> Baseline:
    if name not in BASELINES:
        raise DipsearchError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    baseline = BASELINES[name]
    if task is not None and task not in baseline.tasks:
        raise DipsearchError(
            f"baseline {name} solves {'/'.join(baseline.tasks)}, not {task}; for {task} use "
            f"{', '.join(baseline_names(task)) or 'none of them'}"
        )
    return baseline


def run_baseline(name: str, problem: Problem) -> torch.Tensor:
    """The baseline's restoration of `problem` as a 1xCxHxW tensor in [0, 1] (CPU)."""
    baseline = get_baseline(name, problem.task)
    baseline.require()
    out = baseline.run(problem.to("cpu"))
    return out.detach().float().clamp(0, 1).cpu()
