"""Bayesian DIP (Cheng et al., CVPR 2019): stochastic-gradient Langevin dynamics on the network's weights.

After every Adam step (with a small L2 weight decay: the Gaussian prior on the weights) each convolution weight
(every 4-D parameter: biases and batch-norm parameters get none, as in the published code) receives fresh
N(0, (noise * lr)^2) noise; the published setting is noise 2 at lr 0.01, i.e. std 0.02. After `burn_in` steps,
the output of every `sample_every`-th step is a posterior sample: their mean is the restored image, their
per-pixel standard deviation an uncertainty map. The running mean and variance (Welford) stay on the fit device,
so sampling adds no host synchronisation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArgumentError
from ..fitting.fit import FitConfig, FitHook, FitResult, StepState
from ..fitting.parts import FitParts
from ..fitting.trace import Lazy, mse_to_psnr
from ..metrics import accumulator, psnr
from ..problems.problem import Problem
from .base import Variant, register_variant

SGLD_ITERS = 20000  # the published run length of Bayesian DIP
BURN_IN_SHARE = 0.35  # the published 7000 of 20000 steps


def sample_steps(iters: int, burn_in: int, every: int) -> int:
    """How many posterior samples a run of `iters` steps draws: steps after burn_in that are multiples of every."""
    return max(0, iters // every - burn_in // every)


def is_sample_step(step: int, burn_in: int, every: int) -> bool:
    return step > burn_in and step % every == 0


def sgld_optimizer(weight_decay: float):
    def make(params: Iterable[nn.Parameter], config: FitConfig) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=config.lr, weight_decay=weight_decay)

    return make


class RunningMoments:
    """Welford's running mean and M2 of equally shaped tensors, kept on their device."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Tensor | None = None
        self.m2: Tensor | None = None

    def add(self, x: Tensor) -> None:
        x = x.to(accumulator(x.device))
        self.count += 1
        if self.mean is None:
            self.mean, self.m2 = x.clone(), torch.zeros_like(x)
            return
        delta = x - self.mean
        self.mean.add_(delta / self.count)
        self.m2.add_(delta * (x - self.mean))

    def std(self) -> Tensor:
        """The population standard deviation of the samples (0 for a single sample)."""
        return (self.m2 / self.count).clamp_min(0).sqrt()


class SGLDHook(FitHook):
    """Langevin noise after each optimizer step; posterior mean and standard deviation after the burn-in."""

    name = "sgld"
    update_capturable = True  # the same noise kernels every step, from a generator the graph is told of
    step_feed = "cadence"  # the posterior needs the live output on sample steps only

    def __init__(self, noise: float = 2.0, burn_in: int = 7000, sample_every: int = 50, seed: int = 0):
        self.noise, self.burn_in, self.sample_every, self.seed = noise, burn_in, sample_every, seed

    def on_start(self, problem: Problem, spec: Any, config: FitConfig) -> None:
        self.std = self.noise * config.lr
        self.moments = RunningMoments()
        self.generator: torch.Generator | None = None
        self.clean = problem.clean
        self.sample_steps: list[int] = []

    def wants_live(self, step: int) -> bool:
        return is_sample_step(step, self.burn_in, self.sample_every)

    def generators(self) -> list[torch.Generator]:
        return [self.generator] if self.generator is not None else []

    def on_update(self, learner: Any, step: int) -> None:
        if self.std == 0:
            return
        for param in learner.net.parameters():
            if param.dim() != 4:
                continue
            if self.generator is None:  # its own stream: the fit's input noise stays what a plain fit draws
                self.generator = torch.Generator(device=param.device).manual_seed(self.seed + 2)
            param.add_(
                torch.randn(param.shape, generator=self.generator, device=param.device, dtype=param.dtype),
                alpha=self.std,
            )

    def on_step(self, state: StepState) -> bool:
        if not is_sample_step(state.step, self.burn_in, self.sample_every):
            return False
        self.moments.add(state.out)
        self.sample_steps.append(state.step)
        if self.clean is not None:
            mean = self.moments.mean
            state.record["psnr_posterior"] = Lazy((mean - self.clean.to(mean.dtype)).pow(2).mean(), mse_to_psnr)
        return False

    def on_end(self, result: FitResult) -> None:
        m = self.moments
        result.summary_extra["sgld_samples"] = m.count
        result.extras["sgld"] = {"sample_steps": self.sample_steps, "std": self.std}
        if m.count == 0:  # stopped before the burn-in ended: no posterior
            return
        mean = m.mean.float().cpu()
        uncertainty = m.std().float().mean(dim=1, keepdim=True).cpu()  # per pixel: mean over channels
        result.extras.setdefault("images", {})["output_posterior"] = mean
        result.extras["uncertainty"] = uncertainty
        result.summary_extra["uncertainty_mean"] = float(uncertainty.mean())
        if self.clean is not None:
            clean = self.clean.cpu()
            result.summary_extra["psnr_posterior"] = psnr(mean, clean)
            error = (mean - clean).abs().mean(dim=1, keepdim=True)
            result.summary_extra["uncertainty_error_corr"] = correlation(uncertainty, error)


def correlation(a: Tensor, b: Tensor) -> float | None:
    """Pearson correlation of two maps; None when either is constant (e.g. one sample: zero uncertainty)."""
    a, b = a.flatten().double(), b.flatten().double()
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float((a * a).sum()) * float((b * b).sum()))
    return None if denom == 0 else float((a * b).sum()) / denom


def save_uncertainty(path: Any, uncertainty: Tensor, title: str = "SGLD posterior standard deviation") -> None:
    """The uncertainty map as a colour image with its scale bar (in intensity units of the [0, 1] image)."""
    from matplotlib.figure import Figure  # the object API: no pyplot, so no backend is chosen or changed

    from ..store.runs import write_figure

    image = uncertainty[0, 0].numpy()
    height, width = image.shape
    fig = Figure(figsize=(5.2, 4.4 * height / max(width, 1) + 0.4))
    ax = fig.subplots()
    shown = ax.imshow(image, cmap="magma", vmin=0.0)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="std (image scale 0-1)")
    fig.tight_layout()
    write_figure(path, fig)


@register_variant
class SGLD(Variant):
    """Bayesian DIP: Adam with weight decay, Langevin noise on the weights, the posterior mean as the image."""

    name = "sgld"
    summary = "Bayesian DIP"
    settings = ("sgld_noise", "weight_decay", "burn_in", "sample_every")
    default_iters = SGLD_ITERS
    output_image = "output_posterior"

    def check(self, settings: Any, config: FitConfig) -> None:
        if not sample_steps(config.iters, settings.burn_in, settings.sample_every):
            raise ArgumentError(
                "SGLD burn-in of {steps} steps leaves no posterior sample in a run of {length} iterations (one "
                "every {every} steps after the burn-in); lower {burn_in} or raise {iters}",
                steps=settings.burn_in,
                length=config.iters,
                every=settings.sample_every,
            )

    def for_run(self, settings: Any, iters: int) -> Any:
        """A search's candidates run far fewer steps than the published 20000: when the published burn-in leaves
        no sample, keep the published proportions instead (burn-in 35 % of the run, about 80 samples)."""
        if sample_steps(iters, settings.burn_in, settings.sample_every):
            return settings
        return settings.updated(
            burn_in=round(BURN_IN_SHARE * iters), sample_every=max(1, min(settings.sample_every, iters // 80))
        )

    def apply(self, parts: FitParts, settings: Any, config: FitConfig) -> list[FitHook]:
        parts.optimizer = sgld_optimizer(settings.weight_decay)
        return [SGLDHook(settings.sgld_noise, settings.burn_in, settings.sample_every, config.seed)]
