"""Non-local means (Buades et al. 2005), scikit-image's implementation."""

from __future__ import annotations

import torch

from ..problems.problem import Problem
from .common import from_hwc, noise_sigma, to_hwc
from .registry import Baseline, register


def nlm(problem: Problem) -> torch.Tensor:
    from skimage.restoration import denoise_nl_means

    sigma, _ = noise_sigma(problem)
    # h = 0.8 sigma with the noise variance subtracted from the patch distances: scikit-image's advice for
    # fast mode; 5x5 patches searched within 13x13 windows (its example settings for sigma ~ 0.1)
    observed = to_hwc(problem.observed)
    out = denoise_nl_means(
        observed,
        h=0.8 * sigma,
        sigma=sigma,
        fast_mode=True,
        patch_size=5,
        patch_distance=6,
        channel_axis=-1,
    )
    return from_hwc(out.reshape(observed.shape))  # scikit-image drops the axes of a 1x1 image


register(
    Baseline("nlm", ("denoise",), nlm, "non-local means (scikit-image, fast mode, h = 0.8 sigma)", uses_sigma=True)
)
