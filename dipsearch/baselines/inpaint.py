"""Biharmonic inpainting (Damelin and Hoang 2018), scikit-image's implementation."""

from __future__ import annotations

import torch

from ..errors import DipsearchError
from ..problems.problem import Problem
from .common import from_hwc, to_hwc
from .registry import Baseline, register


def biharmonic(problem: Problem) -> torch.Tensor:
    from skimage.restoration import inpaint_biharmonic

    if problem.mask is None:
        raise DipsearchError("biharmonic inpainting needs the mask of known pixels")
    missing = (problem.mask[0, 0] < 0.5).cpu().numpy()
    out = inpaint_biharmonic(to_hwc(problem.observed), missing, channel_axis=-1)
    return from_hwc(out)


register(Baseline("biharmonic", ("inpaint",), biharmonic, "biharmonic inpainting of the missing pixels (scikit-image)"))
