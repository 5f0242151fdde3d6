"""Tensor <-> numpy conversions and the noise level a baseline may use."""

from __future__ import annotations

import numpy as np
import torch

from ..errors import DipsearchError
from ..problems.problem import Problem


def to_hwc(image: torch.Tensor) -> np.ndarray:
    """1xCxHxW tensor -> HxWxC float64 array (C stays, also for C = 1)."""
    return image.detach().cpu().double()[0].permute(1, 2, 0).numpy()


def from_hwc(array: np.ndarray) -> torch.Tensor:
    if array.ndim == 2:
        array = array[..., None]
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).permute(2, 0, 1).unsqueeze(0)


def noise_sigma(problem: Problem) -> tuple[float, str]:
    """Gaussian sigma on the [0, 1] scale and where it came from: stated with the problem, or estimated
    (haar_sigma, averaged over channels: what a user without the noise level would use)."""
    if problem.meta.get("noise") == "gaussian" and problem.meta.get("level") is not None:
        return float(problem.meta["level"]) / 255.0, "given"
    return haar_sigma(to_hwc(problem.observed)), "estimated"


MAD_TO_SIGMA = 0.6744897501960817  # the median of |N(0, 1)|: median(|x|) / MAD_TO_SIGMA estimates sigma


def haar_sigma(image: np.ndarray) -> float:
    """Donoho's robust noise estimate, median(|HH|) / 0.6745, on the finest diagonal detail of a Haar transform
    (HH = (a - b - c + d) / 2 over each 2x2 block, which keeps white noise's sigma and cancels linear ramps),
    per channel of an HxWxC array, averaged. scikit-image's estimate_sigma does the same with a Daubechies
    wavelet but needs PyWavelets; this needs only numpy. Biased up by fine texture, like any such estimate."""
    h, w = (image.shape[0] // 2) * 2, (image.shape[1] // 2) * 2
    if h == 0 or w == 0:
        raise DipsearchError(
            f"the noise level of a {image.shape[1]}x{image.shape[0]} image cannot be estimated (it takes 2x2 "
            "pixels at least); give it with --sigma"
        )
    x = image[:h, :w]
    detail = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2
    per_channel = np.median(np.abs(detail.reshape(-1, image.shape[2])), axis=0) / MAD_TO_SIGMA
    return float(per_channel.mean())
