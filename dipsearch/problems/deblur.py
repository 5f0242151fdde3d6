"""Deblurring: the observation is the image convolved with a known kernel (Gaussian or linear motion).

The convolution is circular (periodic boundary), the boundary deepinv's `Blur(padding="circular")` and
scikit-image's Wiener filters assume, so the classical baselines invert exactly the operator DIP fits.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import ArgumentError
from .base import Built, OptionGroup, Task, TaskInputs, check_positive, register_task
from .problem import check_same_shape

KERNELS = ("gaussian", "motion")
# Gaussian: the standard deviation in pixels; motion: the length of the stroke in pixels.
DEFAULT_WIDTH = {"gaussian": 2.0, "motion": 9.0}


def gaussian_kernel(sigma: float) -> Tensor:
    """Normalised isotropic Gaussian, (2·ceil(3σ) + 1)² taps."""
    half = math.ceil(3 * sigma)
    d = torch.arange(-half, half + 1, dtype=torch.float64)
    taps = torch.exp(-(d**2) / (2 * sigma**2))
    kernel = torch.outer(taps, taps)
    return (kernel / kernel.sum()).float()


def motion_kernel(length: float, angle: float) -> Tensor:
    """A straight stroke of `length` px at `angle` radians through the centre, splatted bilinearly; sums to 1.

    The stroke is symmetric about the centre, so convolution and correlation with it agree.
    """
    size = 2 * math.ceil(length / 2) + 1
    half = size // 2
    t = torch.linspace(-length / 2, length / 2, max(2, 8 * math.ceil(length)), dtype=torch.float64)
    xs, ys = half + t * math.cos(angle), half + t * math.sin(angle)
    kernel = torch.zeros(size, size, dtype=torch.float64)
    x0, y0 = xs.floor(), ys.floor()
    for dx in (0, 1):
        for dy in (0, 1):
            w = (1 - (xs - x0 - dx).abs()) * (1 - (ys - y0 - dy).abs())
            xi, yi = (x0 + dx).long().clamp(0, size - 1), (y0 + dy).long().clamp(0, size - 1)
            kernel.index_put_((yi, xi), w, accumulate=True)
    return (kernel / kernel.sum()).float()


def blur_kernel(kind: str, width: float | None, generator: torch.Generator | None = None) -> tuple[Tensor, dict]:
    """The kernel and its provenance; a motion stroke's angle is drawn from `generator` (seeded)."""
    if kind not in KERNELS:
        raise ArgumentError(
            "unknown {kernel} {value!r}; choose one of {choices}", value=kind, choices=", ".join(KERNELS)
        )
    width = DEFAULT_WIDTH[kind] if width is None else float(width)
    check_positive("kernel_width", width, 0, inclusive=False)
    if kind == "gaussian":
        return gaussian_kernel(width), {"kernel": kind, "kernel_width": width}
    angle = float(torch.rand((), generator=generator, dtype=torch.float64)) * math.pi
    return motion_kernel(width, angle), {"kernel": kind, "kernel_width": width, "angle": angle}


class CircularBlur(nn.Module):
    """Depthwise convolution with a fixed odd-sized kernel, circular boundary; HxW -> HxW."""

    def __init__(self, kernel: Tensor, channels: int) -> None:
        super().__init__()
        self.channels = int(channels)
        # A buffer, not a Parameter: it moves with .to() but the optimiser never sees it.
        self.register_buffer("weight", kernel.expand(self.channels, 1, *kernel.shape).clone())

    def forward(self, x: Tensor) -> Tensor:
        p = self.weight.shape[-1] // 2
        return F.conv2d(F.pad(x, (p, p, p, p), mode="circular"), self.weight, groups=self.channels)


def check_kernel_fits(kernel: Tensor, size: tuple[int, int]) -> None:
    k, (h, w) = kernel.shape[-1], size
    if k > min(h, w):
        raise ArgumentError(
            "{kernel_width} gives a {k}x{k} kernel, larger than the {w}x{h} image; use a smaller {kernel_width} "
            "or a larger image",
            k=k,
            w=w,
            h=h,
        )


class Deblur(Task):
    name = "deblur"
    title = "deblurring"
    description = "deblur = undo a known --kernel blur"
    options = (OptionGroup(("kernel", "kernel_width"), "{kernel}/{kernel_width} are for {task:deblur}, not {value}"),)
    pointwise = False

    def build(self, inputs: TaskInputs) -> Built:
        check_same_shape(inputs.clean, inputs.observed)
        ref = inputs.clean if inputs.synthetic else inputs.observed
        kind = inputs.options.get("kernel") or "gaussian"
        kernel, provenance = blur_kernel(kind, inputs.options.get("kernel_width"), inputs.generator)
        check_kernel_fits(kernel, tuple(ref.shape[-2:]))
        inputs.meta.update(provenance, kernel_size=kernel.shape[-1])
        operator = CircularBlur(kernel, ref.shape[1]).to(ref.device)
        observed = inputs.observed
        if inputs.synthetic:
            with torch.no_grad():
                observed = inputs.noisy(operator(inputs.clean).clamp(0, 1))
        # Saved as an image: the kernel scaled so its largest tap is white.
        artifacts = {"kernel": (kernel / kernel.max()).view(1, 1, *kernel.shape)}
        return Built(observed, tuple(ref.shape[1:]), operator, inputs.clean, artifacts=artifacts)


register_task(Deblur())
