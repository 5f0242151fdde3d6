"""Interpolation baselines for super-resolution: bicubic (torch) and Lanczos-3 (Pillow)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..problems.problem import Problem
from .registry import Baseline, register


def _target(problem: Problem) -> tuple[int, int]:
    _, h, w = problem.image_shape
    return h, w


def bicubic(problem: Problem) -> torch.Tensor:
    # the same upsampling as fit.baseline_psnr, so "bicubic" means one thing across the toolkit
    return F.interpolate(problem.observed.float(), size=_target(problem), mode="bicubic", align_corners=False)


def lanczos(problem: Problem) -> torch.Tensor:
    h, w = _target(problem)
    channels = problem.observed.detach().cpu().float().numpy()[0]
    # per channel in Pillow's float mode: no 8-bit rounding on the way
    up = [np.asarray(Image.fromarray(c).resize((w, h), Image.Resampling.LANCZOS)) for c in channels]
    return torch.from_numpy(np.stack(up)).unsqueeze(0)


register(Baseline("bicubic", ("sr",), bicubic, "bicubic interpolation (torch, a = -0.75)"))
register(Baseline("lanczos", ("sr",), lanczos, "Lanczos-3 interpolation (Pillow)"))
