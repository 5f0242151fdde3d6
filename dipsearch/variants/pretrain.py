"""Pre-training an initialisation for DIP fits: Reptile (Nichol, Achiam & Schulman 2018) over a set of images.

Why Reptile: what a warm start should buy is a short adaptation to a NEW image, and Reptile optimises exactly
that: each round fits the current weights theta to one observation for k steps (an ordinary engine fit with a
fresh input drawn from the round's seed, so the result does not tie the weights to one input), and moves theta
toward the adapted weights phi: theta <- theta + eps_r (phi - theta), with eps_r decaying linearly from meta_lr
to 0. It is first-order (no second derivatives, unlike MAML/MetaDIP), reuses the engine unchanged, and needs only
the corrupted observations: the clean images, when known, serve only the report.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import DipsearchError
from ..families import family_of
from ..fitting.fit import FitConfig, check_size
from ..fitting.loop import Engine
from ..fitting.parts import FitParts
from ..metrics import psnr
from ..problems.problem import Problem
from .warmstart import FinalWeights


@dataclass
class PretrainResult:
    state_dict: dict[str, Tensor]
    rounds: list[dict[str, Any]] = field(default_factory=list)  # one row per round


def initial_weights(spec: Any, channels: int, seed: int) -> dict[str, Tensor]:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = family_of(spec).build(channels)
    return {k: v.detach().clone() for k, v in net.state_dict().items()}


def reptile_step(theta: dict[str, Tensor], phi: dict[str, Tensor], eps: float) -> dict[str, Tensor]:
    """theta + eps (phi - theta) for float tensors; counters (batch-norm's) are taken from phi."""
    return {k: (v + eps * (phi[k] - v)) if v.is_floating_point() else phi[k].clone() for k, v in theta.items()}


def pretrain(
    problems: Sequence[Problem], spec: Any, config: FitConfig, rounds: int, meta_lr: float = 1.0, log=None
) -> PretrainResult:
    """Reptile over `problems` (cycled, one per round); `config.iters` is the inner fit's length.

    Round r fits problems[r % n] from theta with seed config.seed + r. `log(row)` sees each round's row.
    """
    if not problems:
        raise DipsearchError("pretraining needs at least one image")
    if rounds < 1:
        raise DipsearchError(f"pretraining needs at least 1 round, got {rounds}")
    if not 0 < meta_lr <= 1:
        raise DipsearchError(f"the meta learning rate must be in (0, 1], got {meta_lr:g}")
    channels = {p.image_shape[0] for p in problems}
    if len(channels) > 1:
        raise DipsearchError("pretraining images must all be grey or all colour, got a mix")
    for problem in problems:
        check_size(problem, spec)
    theta = initial_weights(spec, channels.pop(), config.seed)
    result = PretrainResult(theta)
    for r in range(rounds):
        problem = problems[r % len(problems)]
        eps = meta_lr * (1 - r / rounds)
        recorder = FinalWeights()
        fitted = Engine(spec, config.updated(seed=config.seed + r), FitParts(weights=theta)).run(problem, [recorder])
        theta = reptile_step(theta, fitted.extras["weights"], eps)
        row = {
            "round": r + 1,
            "image": problem.meta.get("name", r % len(problems)),
            "meta_step": round(eps, 4),
            "loss_first": fitted.trace[0]["loss"],
            "loss_last": fitted.trace[-1]["loss"],
        }
        if problem.clean is not None:
            row["psnr_first"] = fitted.trace[0].get("psnr")
            row["psnr_last_ema"] = psnr(fitted.ema, problem.clean.cpu())
        result.rounds.append(row)
        if log is not None:
            log(row)
    result.state_dict = theta
    return result
