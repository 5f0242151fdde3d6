"""Tensor <-> numpy conversions and the noise level a baseline may use."""

from __future__ import annotations

import numpy as np
import torch

from ..problems.problem import Problem


def to_hwc(image: torch.Tensor) -> np.ndarray:
    """1xCxHxW tensor -> HxWxC float64 array (C stays, also for C = 1)."""
    return image.detach().cpu().double()[0].permute(1, 2, 0).numpy()


def from_hwc(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)


def noise_sigma(problem: Problem) -> tuple[float, str]:
    """Gaussian sigma on the [0, 1] scale and where it came from: stated with the problem, or estimated.

    The estimate is scikit-image's wavelet (MAD) one, averaged over channels: what a user without the
    noise level would use.
    """
    if problem.meta.get("noise") == "gaussian" and problem.meta.get("level") is not None:
        return float(problem.meta["level"]) / 255.0, "given"
    from skimage.restoration import estimate_sigma

    sigma = estimate_sigma(to_hwc(problem.observed), channel_axis=-1, average_sigmas=True)
    return float(sigma), "estimated"
