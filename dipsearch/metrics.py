"""Image-quality metrics for images in [0, 1] (MAX = 1)."""

from __future__ import annotations

import math

import torch
from skimage.metrics import structural_similarity


def _batched(x: torch.Tensor) -> torch.Tensor:
    return x.unsqueeze(0) if x.dim() == 3 else x


def accumulator(device: torch.device) -> torch.dtype:
    """float64 on the CPU; float32 elsewhere (MPS has no float64, and GPUs are slow at it)."""
    return torch.float64 if device.type == "cpu" else torch.float32


def psnr(x: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """10·log10(1 / MSE); with a 1×1×H×W mask the MSE is over the masked pixels of every channel."""
    dtype = accumulator(x.device)
    x, ref = _batched(x.detach()).to(dtype), _batched(ref.detach()).to(dtype)
    err = (x - ref) ** 2
    if mask is None:
        mse = err.mean().item()
    else:
        m = _batched(mask.detach()).to(dtype).to(err.device)
        denom = m.expand_as(err).sum().item()
        if denom == 0:
            return float("nan")  # no pixel to score
        mse = (err * m).sum().item() / denom
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


def ssim(x: torch.Tensor, ref: torch.Tensor) -> float:
    """Structural similarity via scikit-image (data_range 1, skimage's default uniform 7×7 window)."""
    a = _batched(x.detach()).float().cpu()[0].permute(1, 2, 0).numpy()
    b = _batched(ref.detach()).float().cpu()[0].permute(1, 2, 0).numpy()
    # skimage needs an odd window no larger than the image; shrink it for tiny crops.
    win = min(7, *a.shape[:2])
    win -= 1 - win % 2
    if a.shape[2] == 1:
        return float(structural_similarity(a[..., 0], b[..., 0], data_range=1.0, win_size=win))
    return float(structural_similarity(a, b, data_range=1.0, channel_axis=2, win_size=win))
