"""Super-resolution: the observation is the image Lanczos-downsampled by an integer factor."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn

from ..errors import DipsearchError
from ..store.imageio import crop_to_multiple
from .base import Built, OptionGroup, Task, TaskInputs, register_task
from .problem import dims

SR_FACTORS = (2, 4, 8)


def check_factor(factor: int) -> int:
    if factor not in SR_FACTORS or isinstance(factor, bool):
        raise DipsearchError(f"super-resolution factor must be 2, 4 or 8, got {factor}")
    return int(factor)


def lanczos_kernel(factor: int) -> Tensor:
    """The reference Lanczos-2 kernel: width 4·factor + 1, phase 0.5, so 4·factor taps per side.

    Phase 0.5 puts the centre between pixels (taps at half-integer offsets), which keeps the
    kernel symmetric for an even tap count and aligns LR pixels with the centres of HR blocks.
    """
    factor = check_factor(factor)
    width = 4 * factor + 1
    center = (width + 1) / 2
    i = torch.arange(1, width, dtype=torch.float64)  # 1-based taps, width - 1 of them
    d = (i + 0.5 - center).abs() / factor
    taps = torch.where(d < 2, torch.sinc(d) * torch.sinc(d / 2), torch.zeros_like(d))
    kernel = torch.outer(taps, taps)
    return (kernel / kernel.sum()).float()


class LanczosDownsampler(nn.Module):
    """Fixed depthwise Lanczos-2 conv with stride = factor; HxW -> H/factor x W/factor."""

    def __init__(self, factor: int, channels: int) -> None:
        super().__init__()
        self.factor, self.channels = check_factor(factor), int(channels)
        k = lanczos_kernel(factor)
        # A buffer, not a Parameter: it moves with .to() but the optimiser never sees it.
        self.register_buffer("weight", k.expand(self.channels, 1, *k.shape).clone())
        # (4f - f) / 2 on each side makes the strided output exactly H / f.
        self.pad = nn.ReplicationPad2d((k.shape[-1] - self.factor) // 2)

    def forward(self, x: Tensor) -> Tensor:
        return F.conv2d(self.pad(x), self.weight, stride=self.factor, groups=self.channels)


def lanczos_downsampler(factor: int, channels: int) -> nn.Module:
    return LanczosDownsampler(factor, channels)


def make_lr(hr: Tensor, factor: int) -> Tensor:
    """LR observation: HR cropped to a multiple of factor, then Pillow Lanczos-resized by 1/factor."""
    factor = check_factor(factor)
    hr = crop_to_multiple(hr, factor)
    H, W = hr.shape[-2:]
    arr = hr.detach().to("cpu", torch.float32).numpy()[0]
    # Per channel in Pillow's float mode 'F': no 8-bit quantisation of the observation.
    chans = [np.asarray(Image.fromarray(c).resize((W // factor, H // factor), Image.Resampling.LANCZOS)) for c in arr]
    lr = torch.from_numpy(np.stack(chans)).unsqueeze(0).clamp(0, 1)  # Lanczos overshoots at edges
    return lr.to(hr.device, hr.dtype)


class SuperResolution(Task):
    name = "sr"
    title = "super-resolution"
    description = "sr = super-resolution by --factor"
    options = (
        OptionGroup(("factor",), "{factor} is the super-resolution factor, for {task:sr}; {value} has no use for it"),
    )
    pointwise = False  # the operator's kernel spans pixels: the subsampled image is another problem
    crops_observation = False  # the observation is the low-resolution image; --crop applies to the clean one

    def naive(self, problem: Any) -> Tensor:
        # Bicubic upsampling, as the bicubic baseline: "PSNR of the observation" means one thing across the toolkit.
        size = problem.image_shape[-2:]
        return F.interpolate(problem.observed, size=size, mode="bicubic", align_corners=False).clamp(0, 1)

    def build(self, inputs: TaskInputs) -> Built:
        factor = check_factor(4 if inputs.options.get("factor") is None else inputs.options["factor"])
        inputs.meta["factor"] = factor
        clean, observed = inputs.clean, inputs.observed
        operator = lanczos_downsampler(factor, (clean if inputs.synthetic else observed).shape[1])
        if inputs.synthetic:
            clean = crop_to_multiple(clean, factor)
            observed = inputs.noisy(make_lr(clean, factor))
        c, h, w = observed.shape[1:]
        image_shape = (c, h * factor, w * factor)
        if clean is not None and tuple(clean.shape[1:]) != image_shape:
            raise DipsearchError(
                f"clean image is {dims(clean)} but x{factor} of the {w}x{h} observation is "
                f"{image_shape[2]}x{image_shape[1]} (width x height); crop the clean image to that size"
            )
        return Built(observed, image_shape, operator, clean)


register_task(SuperResolution())
