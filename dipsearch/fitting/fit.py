"""fit(): the simple entry point of the DIP fitting engine, and the names every fit speaks of.

fit() fixes a random input z, then for each step feeds z + N(0, sigma_p^2) through the network, takes an
Adam step on the problem's data loss, keeps an exponential moving average of the outputs, and guards
against divergence by restoring the last good parameters. Everything else (search candidates, stopping,
pruning, progress) is a hook. The loop itself, and its seams (network, initial weights, input, optimizer,
update hook point, loss terms, precision, compilation, the captured CUDA step), live in dipsearch.fitting
(loop.py and its parts); the settings, hook protocol and result are defined in dipsearch.fitting.fitbase and re-exported here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..problems.problem import Problem
from .fitbase import (
    CUDA_GRAPH_MODES,
    FINITE_CHECKS,
    PRECISIONS,
    FitConfig,
    FitHook,
    FitResult,
    StepState,
    baseline_psnr,
    check_size,
    min_size,
    resolve_device,
)
from .loop import Engine

__all__ = [
    "CUDA_GRAPH_MODES",
    "FINITE_CHECKS",
    "PRECISIONS",
    "FitConfig",
    "FitHook",
    "FitResult",
    "StepState",
    "baseline_psnr",
    "check_size",
    "fit",
    "min_size",
    "resolve_device",
]


def fit(problem: Problem, spec: Any, config: FitConfig | None = None, hooks: Iterable[FitHook] = ()) -> FitResult:
    """Fit the network of `spec` (an ArchSpec or another family's spec) to `problem`.

    Deterministic on CPU for a fixed config.seed. For the seams (initial weights, optimizer, loss terms, ...)
    use dipsearch.fitting.loop.Engine; for K fits of one architecture at once, dipsearch.fitting.replicas.fit_replicas.
    """
    return Engine(spec, config or FitConfig()).run(problem, hooks)
