"""Held-out pixels: hide a seeded fraction of the observed pixels from the loss, fit the rest, score the hidden ones.

The one implementation behind the holdout fitness (dipsearch.scoring.fitness), the holdout stopping detector
(dipsearch.stopping) and Problem.with_holdout. For denoising E[held-out MSE] = true MSE + sigma^2, the same offset
for every output fitted to one observation, so it ranks outputs without ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..errors import ArgumentError, DipsearchError
from ..metrics import accumulator

if TYPE_CHECKING:
    from .problem import Problem


@dataclass(frozen=True)
class HeldOut:
    """The pixels a fit did not see and how an output scores on them (observation space, every channel)."""

    mask: Tensor  # 1x1xhxw {0, 1}, on the observation's device
    fraction: float
    seed: int

    @property
    def pixels(self) -> int:
        return int(self.mask.sum().item())

    def to(self, device: torch.device | str) -> HeldOut:
        return replace(self, mask=self.mask.to(device))

    def squared_errors(self, output: Tensor, problem: Problem) -> Tensor:
        """(A(output) - y)^2 on the held-out pixels, 1xCxhxw and zero elsewhere, on the output's device.

        Accumulates in float64 on the CPU (float32 elsewhere) so a score does not depend on the fit's precision."""
        with torch.no_grad():
            predicted = problem.operator(output.detach().to(problem.observed.device))
            dtype = accumulator(predicted.device)
            mask = self.mask.to(predicted.device, dtype)
            return (predicted.to(dtype) - problem.observed.to(dtype)) ** 2 * mask

    def mse(self, output: Tensor, problem: Problem) -> Tensor:
        """Mean squared error over the held-out pixels as a 0-dim tensor on the device: reading it is the only sync."""
        err = self.squared_errors(output, problem)
        return err.sum() / (self.mask.to(err.device, err.dtype).sum() * err.shape[1])

    def psnr(self, output: Tensor, problem: Problem) -> float:
        mse = self.mse(output, problem).item()
        return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)

    def residuals(self, output: Tensor, problem: Problem) -> Tensor:
        """One squared error per held-out pixel and channel (what mse averages), on the CPU in float64: for paired
        comparisons of two outputs on the same pixels."""
        err = self.squared_errors(output, problem)
        held = self.mask.to(err.device).expand_as(err) > 0.5
        return err[held].double().cpu()

    def values(self, output: Tensor, problem: Problem) -> tuple[Tensor, Tensor]:
        """(A(output), y) on the held-out pixels, every channel, on the CPU in float64: what an output predicts
        there and what was observed, for fitting combinations of outputs."""
        with torch.no_grad():
            predicted = problem.operator(output.detach().to(problem.observed.device))
            held = self.mask.to(predicted.device).expand_as(predicted) > 0.5
            return predicted[held].double().cpu(), problem.observed.to(predicted.device)[held].double().cpu()


def check_fraction(fraction: float) -> None:
    """The share of the known pixels a holdout may withhold: some, and at most half."""
    if not 0 < fraction <= 0.5:
        raise ArgumentError("held-out {fraction} must be in (0, 0.5], got {value}", value=fraction)


def hold_out(problem: Problem, fraction: float, seed: int = 0) -> tuple[Problem, HeldOut]:
    """Withhold a seeded `fraction` of the known observation pixels from the loss.

    Returns the copy of `problem` to fit (its mask no longer covers the held-out pixels; meta["holdout"] records the
    split) and the HeldOut that scores outputs on the hidden pixels.
    """
    check_fraction(fraction)
    h, w = problem.observed.shape[-2:]
    known = (
        torch.ones(h * w, dtype=torch.bool) if problem.mask is None else (problem.mask.detach().cpu() > 0.5).flatten()
    )
    idx = known.nonzero().squeeze(1)
    k = round(fraction * idx.numel())
    if k == 0 or k == idx.numel():
        raise DipsearchError(
            f"cannot hold out {fraction} of {idx.numel()} known pixels; use a larger image or fraction"
        )
    g = torch.Generator().manual_seed(seed)
    held = torch.zeros(h * w)
    held[idx[torch.randperm(idx.numel(), generator=g)[:k]]] = 1
    dev, dt = problem.observed.device, problem.observed.dtype
    held = held.view(1, 1, h, w).to(dev, dt)
    fit_mask = known.view(1, 1, h, w).to(dev, dt) - held
    meta = {**problem.meta, "holdout": {"fraction": fraction, "seed": seed, "pixels": k}}
    split = HeldOut(held, fraction, seed)
    return replace(problem, mask=fit_mask, meta=meta, held_out=split), split
