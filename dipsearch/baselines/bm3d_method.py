"""BM3D (Dabov et al. 2007) and its colour version CBM3D, from the optional `bm3d` package."""

from __future__ import annotations

import torch

from ..problems.problem import Problem
from .common import from_hwc, noise_sigma, to_hwc
from .registry import Baseline, register


def _bm3d(problem: Problem, colour: bool) -> torch.Tensor:
    import bm3d

    sigma, _ = noise_sigma(problem)
    z = to_hwc(problem.observed)
    if colour and z.shape[2] == 3:
        # bm3d_rgb works in an opponent colour space: the reference CBM3D
        return from_hwc(bm3d.bm3d_rgb(z, sigma))
    return from_hwc(bm3d.bm3d(z, sigma))  # the package denoises each channel of a multichannel array


def cbm3d(problem: Problem) -> torch.Tensor:
    return _bm3d(problem, colour=True)


def bm3d_grey(problem: Problem) -> torch.Tensor:
    return _bm3d(problem, colour=False)


register(
    Baseline(
        "cbm3d",
        ("denoise",),
        cbm3d,
        "colour BM3D (opponent colour space); BM3D for grey images",
        package="bm3d",
        extra="baselines",
        uses_sigma=True,
    )
)
register(
    Baseline(
        "bm3d", ("denoise",), bm3d_grey, "BM3D on each channel", package="bm3d", extra="baselines", uses_sigma=True
    )
)
