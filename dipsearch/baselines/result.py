"""Scoring and saving a baseline's output, shared by `dipsearch baseline` and `dipsearch reproduce`."""

from __future__ import annotations

import time
from typing import Any

import torch

from ..fitting.fit import baseline_psnr
from ..metrics import psnr, ssim
from ..problems.problem import Problem
from .common import noise_sigma
from .registry import get_baseline, run_baseline


def apply_baseline(name: str, problem: Problem) -> tuple[torch.Tensor, dict[str, Any]]:
    """Run one baseline; returns its image and a summary (PSNR/SSIM when the clean image is known)."""
    baseline = get_baseline(name, problem.task)
    baseline.require()
    start = time.perf_counter()
    image = run_baseline(name, problem)
    summary: dict[str, Any] = {"method": name, "task": problem.task, "seconds": round(time.perf_counter() - start, 3)}
    if baseline.uses_sigma:
        sigma, source = noise_sigma(problem)
        summary.update(sigma=round(sigma * 255.0, 3), sigma_source=source)
    if problem.clean is not None:
        clean = problem.clean.cpu()
        summary.update(psnr_observed=baseline_psnr(problem), psnr=psnr(image, clean), ssim=ssim(image, clean))
    return image, summary
