"""Compressed-sensing MRI: Cartesian undersampling of the 2-D Fourier transform of a grey image.

The measurements are k-space (orthonormal FFT) as two channels, real and imaginary, on the sampled columns
(phase-encoding lines) only; the problem's mask marks those columns, so the loss, the held-out score and the
divergence guard see measured entries only. A colour image is turned to grey (luminance) first.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArgumentError, DipsearchError
from .base import Built, OptionGroup, Task, TaskInputs, check_positive, register_task

CENTER_FRACTION = 0.08  # fully sampled low frequencies, as in the fastMRI Cartesian masks
DEFAULT_ACCELERATION = 4.0


def cartesian_mask(width: int, acceleration: float, generator: torch.Generator | None = None) -> Tensor:
    """1xW {0, 1}: the central CENTER_FRACTION of the columns plus random others, width / acceleration in all."""
    check_positive("acceleration", acceleration, 1)
    total = max(1, round(width / acceleration))
    center = min(total, max(1, round(width * CENTER_FRACTION)))
    freqs = torch.fft.fftfreq(width).abs()  # unshifted FFT: low frequencies at both ends
    order = torch.argsort(freqs, stable=True)
    mask = torch.zeros(width)
    mask[order[:center]] = 1
    rest = order[center:]
    mask[rest[torch.randperm(rest.numel(), generator=generator)[: total - center]]] = 1
    return mask.view(1, width)


class KSpace(nn.Module):
    """1x1xHxW real image -> 1x2xHxW orthonormal 2-D FFT (real, imaginary)."""

    def forward(self, x: Tensor) -> Tensor:
        k = torch.fft.fft2(x[:, 0].to(torch.float32), norm="ortho")
        return torch.stack((k.real, k.imag), dim=1).to(x.dtype)


def zero_filled(observed: Tensor) -> Tensor:
    """The adjoint of KSpace on masked measurements: the real part of the inverse FFT, 1x1xHxW."""
    k = torch.complex(observed[:, 0].double(), observed[:, 1].double())
    return torch.fft.ifft2(k, norm="ortho").real.unsqueeze(1).float()


def to_grey(image: Tensor) -> Tensor:
    if image.shape[1] == 1:
        return image
    return (image * torch.tensor([0.299, 0.587, 0.114], device=image.device).view(1, 3, 1, 1)).sum(1, keepdim=True)


class CompressedSensingMRI(Task):
    name = "cs-mri"
    title = "compressed-sensing MRI"
    description = "cs-mri = Cartesian k-space undersampling by --acceleration"
    noises = ("gaussian",)
    options = (OptionGroup(("acceleration",), "{acceleration} is for {task:cs-mri}, not {value}"),)
    pointwise = False
    observation_files = False  # k-space is no image file

    def naive(self, problem: Any) -> Tensor:
        return zero_filled(problem.observed).clamp(0, 1)

    def picture(self, problem: Any) -> Tensor:
        """The measured k-space as log-magnitude, centred, scaled to [0, 1]."""
        k = problem.observed.double()
        magnitude = torch.fft.fftshift(torch.log1p((k[:, :1] ** 2 + k[:, 1:] ** 2).sqrt()), dim=(-2, -1))
        return (magnitude / magnitude.max().clamp_min(1e-12)).float()

    def build(self, inputs: TaskInputs) -> Built:
        if inputs.clean is None:
            raise DipsearchError(
                "cs-mri synthesises its k-space from a clean image; for measured k-space build the problem "
                "with Problem.from_physics"
            )
        clean = to_grey(inputs.clean)
        h, w = clean.shape[-2:]
        acceleration = inputs.options.get("acceleration")
        acceleration = DEFAULT_ACCELERATION if acceleration is None else float(acceleration)
        if not math.isfinite(acceleration):
            raise ArgumentError("{acceleration} must be finite, got {value}", value=acceleration)
        if acceleration > w:  # would keep less than one column; rounding up to one would change it unsaid
            raise ArgumentError(
                "{acceleration} {value:g} keeps less than one of the image's {w} k-space columns; use "
                "{acceleration} <= {w}",
                value=acceleration,
                w=w,
            )
        columns = cartesian_mask(w, acceleration, inputs.generator)
        mask = columns.view(1, 1, 1, w).expand(1, 1, h, w).contiguous().to(clean.device)
        operator = KSpace()
        with torch.no_grad():
            k = operator(clean)
            if inputs.noise:  # complex Gaussian noise of the same sigma per component; k-space is not clipped
                sigma = inputs.level / 255.0
                k = k + sigma * torch.randn(k.shape, generator=inputs.generator).to(k.device)
            observed = k * mask
        inputs.meta.update(acceleration=acceleration, sampled=float(columns.mean()), grey=inputs.clean.shape[1] != 1)
        return Built(observed, (1, h, w), operator, clean, mask, {"sampling": mask})


register_task(CompressedSensingMRI())
