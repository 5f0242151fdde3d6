"""Classical references for deblurring and compressed-sensing MRI: Wiener deconvolution, zero-filled reconstruction, and TV-regularised least squares through the problem's own operator (torch)."""

from __future__ import annotations

import torch

from ..errors import DipsearchError
from ..problems.problem import Problem
from .common import noise_sigma
from .registry import Baseline, register

# A white-spectrum NSR overstates the signal at high frequencies (natural images' power falls off): ten times it
# is the ratio that restored the packaged demo image best at sigma 2 and 5; the benchmark images were not used.
NSR_SCALE = 10.0
TV_STEPS = 300
TV_LR = 0.01
# lambda = TV_PER_SIGMA * sigma ([0, 1] scale), sigma floored at 1/255 for noise-free observations: a fixed rule,
# not tuned per image, so the reference is one a user without the clean image could run.
TV_PER_SIGMA = 0.1


def _stated_sigma(problem: Problem) -> float:
    """The stated Gaussian sigma on the [0, 1] scale, at least 1/255 (k-space has no image to estimate it from)."""
    level = problem.meta.get("level") if problem.meta.get("noise") == "gaussian" else None
    return max(1.0, float(level or 0.0)) / 255.0


def wiener(problem: Problem) -> torch.Tensor:
    """Wiener deconvolution with a constant noise-to-signal ratio K = NSR_SCALE·sigma²/var(y), in the Fourier
    domain (exact for the circular blur): X = conj(H)·Y / (|H|² + K). sigma is the stated one, else estimated."""
    weight = getattr(problem.operator, "weight", None)
    if weight is None:
        raise DipsearchError("the wiener baseline needs the blur kernel of a deblurring problem")
    kernel = weight[0, 0].detach().double().cpu()
    observed = problem.observed.detach().double().cpu()
    h, w = observed.shape[-2:]
    size = kernel.shape[-1]
    psf = torch.zeros(h, w, dtype=torch.float64)
    psf[:size, :size] = kernel
    transfer = torch.fft.fft2(torch.roll(psf, (-(size // 2), -(size // 2)), (0, 1)))  # centre tap at the origin
    sigma, _ = noise_sigma(problem)
    nsr = NSR_SCALE * sigma**2 / max(observed.var().item(), 1e-12)
    spectrum = transfer.conj() * torch.fft.fft2(observed) / (transfer.abs() ** 2 + nsr)
    return torch.fft.ifft2(spectrum).real.float()


def zero_filled(problem: Problem) -> torch.Tensor:
    """The inverse FFT of the measured k-space with the missing entries as zeros."""
    from ..problems.cs_mri import zero_filled as ifft

    return ifft(problem.observed)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV, mean absolute difference between neighbours."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def tv(problem: Problem) -> torch.Tensor:
    """argmin_x data_loss(x) + lambda·TV(x) over [0, 1] images by Adam, from the task's naive estimate."""
    from ..problems.base import get_task

    start = get_task(problem.task).naive(problem)
    x = (torch.full((1, *problem.image_shape), 0.5) if start is None else start.clone()).clamp(0, 1)
    x.requires_grad_(True)
    weight = TV_PER_SIGMA * _stated_sigma(problem)
    optimizer = torch.optim.Adam([x], lr=TV_LR)
    for _ in range(TV_STEPS):
        optimizer.zero_grad()
        loss = problem.data_loss(x) + weight * total_variation(x)
        loss.backward()
        optimizer.step()
        with torch.no_grad():
            x.clamp_(0, 1)
    return x.detach()


register(
    Baseline(
        "wiener", ("deblur",), wiener, f"Wiener deconvolution, NSR = {NSR_SCALE:g} sigma^2 / var(y)", uses_sigma=True
    )
)
register(Baseline("zero-filled", ("cs-mri",), zero_filled, "inverse FFT of the zero-filled k-space"))
register(
    Baseline(
        "tv",
        ("deblur", "cs-mri"),
        tv,
        f"TV-regularised least squares through the task's operator ({TV_STEPS} Adam steps, lambda = {TV_PER_SIGMA} sigma)",
    )
)
