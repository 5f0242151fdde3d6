"""Image-quality metrics for images in [0, 1] (MAX = 1)."""

from __future__ import annotations

import math

import pytorch_msssim
import torch


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


SSIM_WINDOW = 11  # Gaussian window of the standard SSIM (Wang et al. 2004): 11 taps, sigma 1.5
SSIM_SIGMA = 1.5


def ssim_tensor(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Structural similarity as a 0-dim tensor on x's device: no host round-trip until someone reads it.

    The standard definition (Wang et al. 2004), computed by pytorch-msssim: an 11x11 Gaussian window of sigma 1.5,
    K1 = 0.01, K2 = 0.03, data range 1, averaged over the pixels whose window lies inside the image and over the
    channels. That is scikit-image's structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=1, channel_axis=-1). Images under 11 px use the largest odd window
    that fits. Accumulates in float64 on the CPU, float32 elsewhere.
    """
    dtype = accumulator(x.device)
    a, b = _batched(x.detach()).to(dtype), _batched(ref.detach()).to(x.device, dtype)
    size = min(SSIM_WINDOW, *a.shape[-2:])
    size -= 1 - size % 2
    # The window is made on the device: a host-made one would be copied there, and that copy waits for the GPU.
    taps = torch.arange(size, device=a.device, dtype=dtype) - size // 2
    window = torch.exp(-(taps**2) / (2 * SSIM_SIGMA**2))
    window = (window / window.sum()).view(1, 1, 1, size).repeat(a.shape[1], 1, 1, 1)
    return pytorch_msssim.ssim(a, b, data_range=1.0, win=window)


def ssim(x: torch.Tensor, ref: torch.Tensor) -> float:
    """ssim_tensor read as a float."""
    return float(ssim_tensor(x, ref))
