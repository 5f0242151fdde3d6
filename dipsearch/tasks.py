"""Inverse problems for DIP: noise models, the SR downsampler, inpainting masks and the Problem record."""

from __future__ import annotations

import copy
import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor, nn

from .errors import ArgumentError, DipsearchError
from .holdout import HeldOut, hold_out
from .imageio import center_crop, crop_to_multiple, load_image
from .metrics import psnr, ssim  # noqa: F401  (re-exported: callers score problems from here)

TASKS = ("denoise", "sr", "inpaint")
SR_FACTORS = (2, 4, 8)
MASK_KINDS = ("bernoulli", "text", "region")

# ---------------------------------------------------------------- noise

NOISE_KINDS = ("gaussian", "poisson", "impulse", "speckle")
# Gaussian sigma is on the 0-255 scale; the others are in the units of their definition.
DEFAULT_LEVEL: dict[str, float] = {"gaussian": 25, "poisson": 12, "impulse": 0.5, "speckle": 0.35}
# Low / medium / high of the early-stopping literature (docs/reference.md, section 5); Gaussian 0.12/0.18/0.26 x 255.
# Beyond these the observation is noise alone (clipped to 0/1): a typo, not an experiment.
SPECKLE_MAX = 5.0
LITERATURE_LEVELS: dict[str, dict[str, float]] = {
    "gaussian": {"low": 30.6, "medium": 45.9, "high": 66.3},
    "poisson": {"low": 25, "medium": 12, "high": 5},
    "impulse": {"low": 0.3, "medium": 0.5, "high": 0.7},
    "speckle": {"low": 0.20, "medium": 0.35, "high": 0.45},
}


def check_level(kind: str, level: float) -> float:
    """Validate a noise level for `kind` and return it as a float."""
    if kind not in NOISE_KINDS:
        raise DipsearchError(f"unknown noise kind {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
    try:
        level = float(level)
    except (TypeError, ValueError):
        raise DipsearchError(f"{kind} noise level must be a number, got {level!r}") from None
    if not math.isfinite(level):
        raise DipsearchError(f"{kind} noise level must be finite, got {level}")
    if kind == "gaussian" and not 0 <= level <= 255:
        raise DipsearchError(
            f"gaussian noise level is sigma on the 0-255 scale and must be >= 0 and at most 255, got {level:g}"
        )
    if kind == "poisson" and level <= 0:
        raise DipsearchError(
            f"poisson noise level is the photon scale c (x0 = Poisson(c·x)/c) and must be > 0, got {level}"
        )
    if kind == "impulse" and not 0 < level < 1:
        raise DipsearchError(
            f"impulse noise level is the fraction of pixels replaced and must be in (0, 1), got {level}"
        )
    if kind == "speckle" and not 0 <= level <= SPECKLE_MAX:
        raise DipsearchError(
            f"speckle noise level is a relative sigma and must be >= 0 and at most {SPECKLE_MAX:g}, got {level:g}"
        )
    return level


def add_noise(clean: Tensor, kind: str, level: float, generator: torch.Generator | None = None) -> Tensor:
    """Corrupt a [0, 1] image; every random draw comes from `generator` so a seed reproduces it."""
    level = check_level(kind, level)
    # Draw on the generator's device (a CPU generator cannot feed CUDA sampling), then move.
    dev = generator.device if generator is not None else clean.device
    x = clean

    def randn(shape: torch.Size) -> Tensor:
        return torch.randn(shape, generator=generator, device=dev, dtype=x.dtype).to(x.device)

    if kind == "gaussian":
        out = x + (level / 255.0) * randn(x.shape)
    elif kind == "poisson":
        rate = (x.clamp(0, 1) * level).to(dev)
        out = torch.poisson(rate, generator=generator).to(x.device) / level
    elif kind == "impulse":
        # One draw per pixel position, shared by all channels: salt-and-pepper hits whole pixels.
        u = torch.rand((x.shape[0], 1, *x.shape[-2:]), generator=generator, device=dev, dtype=x.dtype).to(x.device)
        out = torch.where(u < level / 2, 1.0, torch.where(u < level, 0.0, x))
    else:  # speckle
        out = x * (1 + level * randn(x.shape))
    return out.clamp(0, 1)


# ---------------------------------------------------------------- super-resolution


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


# ---------------------------------------------------------------- inpainting masks (1 = known pixel)


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
    _check_known(mask, f"mask {path}")
    return mask


def _check_known(mask: Tensor, what: str) -> None:
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


# ---------------------------------------------------------------- the problem record


@dataclass
class Problem:
    task: str  # "denoise" | "sr" | "inpaint"
    observed: Tensor  # 1xCxhxw in observation space (the LR image for sr)
    image_shape: tuple[int, int, int]  # (C, H, W) of the image to recover
    operator: nn.Module  # image space -> observation space
    mask: Tensor | None = None  # 1x1xhxw {0, 1}: observation pixels that enter the loss (None = all)
    clean: Tensor | None = None  # 1xCxHxW ground truth when known
    meta: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable provenance

    @property
    def channels(self) -> int:
        return self.image_shape[0]

    def data_loss(self, x: Tensor) -> Tensor:
        """sum(m·(Ax − y)²) / (sum(m)·C): plain MSE when every pixel is known."""
        r = (self.operator(x) - self.observed) ** 2
        if self.mask is None:
            return r.mean()
        return (r * self.mask).sum() / (self.mask.sum() * r.shape[1])

    @torch.no_grad()
    def observed_psnr(self, x: Tensor) -> float:
        """PSNR of A(x) against the observation on the loss pixels (the divergence guard's signal)."""
        return psnr(self.operator(x), self.observed, self.mask)

    def to(self, device: torch.device | str) -> Problem:
        def mv(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        # Copy the operator so moving this problem leaves the original's operator where it was.
        return replace(
            self,
            observed=self.observed.to(device),
            operator=copy.deepcopy(self.operator).to(device),
            mask=mv(self.mask),
            clean=mv(self.clean),
            meta=dict(self.meta),
        )

    def with_holdout(self, fraction: float, seed: int = 0) -> tuple[Problem, HeldOut]:
        """Withhold a seeded `fraction` of the known observation pixels from the loss (see dipsearch.holdout).

        Returns the copy to fit and the HeldOut that scores outputs on the held-out pixels.
        """
        return hold_out(self, fraction, seed)


# ---------------------------------------------------------------- builders


def _batch(t: Tensor | None, name: str) -> Tensor | None:
    if t is None:
        return None
    t = t.unsqueeze(0) if t.dim() == 3 else t
    if t.dim() != 4 or t.shape[0] != 1:
        raise DipsearchError(f"{name} image must be 1xCxHxW or CxHxW, got shape {tuple(t.shape)}")
    return t.float()


def _dims(t: Tensor) -> str:
    c, h, w = t.shape[1:]
    return f"{w}x{h} px ({c} channel{'s' if c > 1 else ''})"


def make_problem(
    task: str,
    *,
    clean: Tensor | None = None,
    observed: Tensor | None = None,
    noise: str = "gaussian",
    level: float | None = None,
    factor: int = 4,
    mask: Tensor | None = None,
    mask_ratio: float | None = None,
    mask_kind: str | None = None,
    seed: int = 0,
) -> Problem:
    """Build a Problem from a clean image (observation synthesised, seeded) or a given observation."""
    if task not in TASKS:
        raise DipsearchError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    clean, observed = _batch(clean, "clean"), _batch(observed, "observed")
    if clean is None and observed is None:
        raise DipsearchError(f"{task} needs a clean image (to synthesise the observation) or an observed image")
    gen = torch.Generator().manual_seed(seed)
    synthetic = observed is None
    meta: dict[str, Any] = {"task": task, "seed": seed, "synthetic": synthetic, "noise": None, "level": None}
    if level is not None or task == "denoise":
        lvl = check_level(noise, DEFAULT_LEVEL.get(noise, 0) if level is None else level)
        meta.update(noise=noise, level=lvl)

    def noisy(x: Tensor) -> Tensor:
        return add_noise(x, noise, meta["level"], gen) if meta["noise"] else x

    operator: nn.Module = nn.Identity()
    if task == "denoise":
        if clean is not None and observed is not None and clean.shape != observed.shape:
            raise DipsearchError(
                f"clean image is {_dims(clean)} but the observation is {_dims(observed)}; they must match"
            )
        if synthetic:
            observed = noisy(clean)
        elif level is None:
            meta.update(noise=None, level=None)  # a given observation's noise is unknown unless stated
        image_shape = tuple(observed.shape[1:])
    elif task == "sr":
        factor = check_factor(factor)
        meta["factor"] = factor
        operator = lanczos_downsampler(factor, (clean if synthetic else observed).shape[1])
        if synthetic:
            clean = crop_to_multiple(clean, factor)
            observed = noisy(make_lr(clean, factor))
        c, h, w = observed.shape[1:]
        image_shape = (c, h * factor, w * factor)
        if clean is not None and tuple(clean.shape[1:]) != image_shape:
            raise DipsearchError(
                f"clean image is {_dims(clean)} but x{factor} of the {w}x{h} observation is "
                f"{image_shape[2]}x{image_shape[1]} (width x height); crop the clean image to that size"
            )
    else:
        ref = clean if synthetic else observed
        if clean is not None and observed is not None and clean.shape != observed.shape:
            raise DipsearchError(
                f"clean image is {_dims(clean)} but the observation is {_dims(observed)}; they must match"
            )
        size = tuple(ref.shape[-2:])
        mask, meta["mask"] = _inpaint_mask(size, mask, mask_ratio, mask_kind, synthetic, seed, gen)
        _check_known(mask, f"the {meta['mask']['source']} mask")
        mask = mask.to(ref.device)
        if synthetic:
            observed = noisy(clean) * mask
        image_shape = tuple(ref.shape[1:])
    meta["image_shape"] = list(image_shape)
    meta["observed_shape"] = list(observed.shape[1:])
    return Problem(task, observed, image_shape, operator, mask, clean, meta)


def _inpaint_mask(
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
