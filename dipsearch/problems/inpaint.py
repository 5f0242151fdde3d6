"""Inpainting: the observation is the image with the pixels a mask marks missing (1 = known pixel)."""

from __future__ import annotations

import math
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn

from ..errors import ArgumentError, DipsearchError
from ..store.imageio import center_crop, load_image
from .base import Built, OptionGroup, Task, TaskInputs, register_task
from .problem import check_same_shape

MASK_KINDS = ("bernoulli", "text", "region")


def load_mask(path: str | Path, size: tuple[int, int], crop: int | None = None) -> Tensor:
    """Mask image -> 1x1xHxW {0, 1}; white (grey >= 0.5) marks known pixels.

    `size` is (H, W) of the image the mask belongs to, after the image's own centre crop `crop` (N x N),
    which the mask gets too, so that a mask drawn for the whole image fits the cropped one.
    """
    img = load_image(path)
    grey = (
        img if img.shape[1] == 1 else (img * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    )
    h, w = grey.shape[-2:]
    if crop:
        if crop > min(h, w):
            raise ArgumentError(
                "{crop:{value}} is larger than the mask {path} ({w}x{h} px, width x height)",
                value=crop,
                path=path,
                w=w,
                h=h,
            )
        grey = center_crop(grey, crop, crop)
        h, w = grey.shape[-2:]
    if (h, w) != tuple(size):
        raise ArgumentError(
            "mask {path} is {w}x{h} but the image is {width}x{height} (width x height"
            + (", after {crop}" if crop else "")
            + "); give a mask of the image's size (white = known pixels, black = missing)",
            path=path,
            w=w,
            h=h,
            width=size[1],
            height=size[0],
        )
    mask = (grey >= 0.5).float()
    check_known(mask, f"mask {path}")
    return mask


def check_known(mask: Tensor, what: str) -> None:
    # An all-missing mask leaves the loss 0/0: refuse it before any fit rather than report NaN afterwards.
    if not bool((mask > 0.5).any()):
        raise DipsearchError(
            f"{what} marks no pixel as known (it is all black): there is nothing to fit; "
            "white marks the known pixels, black the missing ones"
        )


def bernoulli_mask(size: tuple[int, int], missing_ratio: float, generator: torch.Generator | None = None) -> Tensor:
    """Each pixel missing independently with probability missing_ratio."""
    if not 0 < missing_ratio < 1:
        raise DipsearchError(f"missing-pixel ratio must be in (0, 1), got {missing_ratio}")
    dev = generator.device if generator is not None else None
    return (torch.rand((1, 1, *size), generator=generator, device=dev) >= missing_ratio).float().cpu()


_WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt labore magna".split()


def text_mask(size: tuple[int, int], seed: int = 0) -> Tensor:
    """Random words over the image as missing pixels, until about 12-18 % of it is covered."""
    H, W = size
    rng = random.Random(seed)
    canvas = Image.new("L", (W, H), 0)
    font_px = max(8, H // 12)
    try:
        font: Any = ImageFont.load_default(size=font_px)
        stroke = max(1, font_px // 12)  # thick strokes, like the reference's text masks
    except (OSError, TypeError, ImportError):  # Pillow without FreeType: fixed bitmap font
        font, stroke = ImageFont.load_default(), 0
    target = rng.uniform(0.12, 0.18)
    for _ in range(2000):
        trial = canvas.copy()
        xy = (rng.randint(-W // 8, W - 1), rng.randint(-font_px // 2, H - 1))
        ImageDraw.Draw(trial).text(xy, rng.choice(_WORDS), fill=255, font=font, stroke_width=stroke, stroke_fill=255)
        covered = (np.asarray(trial) >= 128).mean()
        if covered > 0.2:  # on small images one word is a big step: skip words that overshoot
            continue
        canvas = trial
        if covered >= target:
            break
    return torch.from_numpy(np.asarray(canvas) < 128).float().view(1, 1, H, W)


def region_mask(size: tuple[int, int], fraction: float = 0.25) -> Tensor:
    """A central hole covering about `fraction` of the image (square for a square image)."""
    if not 0 < fraction < 1:
        raise DipsearchError(f"region fraction must be in (0, 1), got {fraction}")
    H, W = size
    s = math.sqrt(fraction)
    h, w = max(1, round(H * s)), max(1, round(W * s))
    mask = torch.ones(1, 1, H, W)
    top, left = (H - h) // 2, (W - w) // 2
    mask[..., top : top + h, left : left + w] = 0
    return mask


def inpaint_mask(
    size: tuple[int, int],
    mask: Tensor | None,
    ratio: float | None,
    kind: str | None,
    synthetic: bool,
    seed: int,
    gen: torch.Generator,
) -> tuple[Tensor, dict[str, Any]]:
    H, W = size
    if mask is not None:
        if ratio is not None or kind is not None:
            raise DipsearchError("give either a mask or a mask kind / missing ratio, not both")
        if mask.dim() < 2 or tuple(mask.shape[-2:]) != size:
            got = "x".join(map(str, mask.shape[-2:][::-1]))
            raise DipsearchError(
                f"mask is {got} but the image is {W}x{H} (width x height); give a mask of the image's size"
            )
        if mask.numel() != H * W:
            raise DipsearchError(f"mask must have one channel, got shape {tuple(mask.shape)}; convert it to grey")
        m = (mask.reshape(1, 1, H, W) > 0.5).float()
        return m, {"source": "given", "missing": 1 - m.mean().item()}
    if kind is None:
        if ratio is None and not synthetic:
            raise DipsearchError("inpainting a given observation needs its mask (white = known pixels)")
        kind = "bernoulli"  # the reference's "50 % of pixels missing" restoration experiment
    if kind not in MASK_KINDS:
        raise DipsearchError(f"unknown mask kind {kind!r}; choose one of {', '.join(MASK_KINDS)} or give a mask file")
    if kind == "bernoulli":
        ratio = 0.5 if ratio is None else ratio
        m = bernoulli_mask(size, ratio, gen)
    elif kind == "region":
        ratio = 0.25 if ratio is None else ratio
        m = region_mask(size, ratio)
    else:
        if ratio is not None:
            raise DipsearchError("the text mask sets its own coverage; drop the missing ratio")
        m = text_mask(size, seed)
    return m, {"source": kind, "ratio": ratio, "missing": 1 - m.mean().item()}


class Inpaint(Task):
    name = "inpaint"
    title = "inpainting"
    description = "inpaint = fill the pixels a mask marks missing"
    options = (
        OptionGroup(
            ("mask", "mask_ratio", "mask_kind"), "{mask}/{mask_ratio}/{mask_kind} are for {task:inpaint}, not {value}"
        ),
    )

    def check(self, recipe: object) -> None:
        if not (recipe.mask or recipe.mask_ratio is not None or recipe.mask_kind):
            raise ArgumentError("inpainting needs a mask: {mask:PATH}, {mask_ratio:R} or {mask_kind:text|region}")

    def build(self, inputs: TaskInputs) -> Built:
        check_same_shape(inputs.clean, inputs.observed)
        ref = inputs.clean if inputs.synthetic else inputs.observed
        size = tuple(ref.shape[-2:])
        opts = inputs.options
        mask, inputs.meta["mask"] = inpaint_mask(
            size,
            opts.get("mask"),
            opts.get("mask_ratio"),
            opts.get("mask_kind"),
            inputs.synthetic,
            inputs.seed,
            inputs.generator,
        )
        check_known(mask, f"the {inputs.meta['mask']['source']} mask")
        mask = mask.to(ref.device)
        observed = inputs.noisy(inputs.clean) * mask if inputs.synthetic else inputs.observed
        return Built(observed, tuple(ref.shape[1:]), nn.Identity(), inputs.clean, mask)


register_task(Inpaint())
