"""Noise models of the synthesised observations: kinds, levels, their checks and the seeded draw."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..errors import DipsearchError
from .noise_kinds import NOISE_KINDS

# Gaussian sigma is on the 0-255 scale; the others are in the units of their definition.
DEFAULT_LEVEL: dict[str, float] = {"gaussian": 25, "poisson": 12, "impulse": 0.5, "speckle": 0.35}
# Low / medium / high of the early-stopping literature; Gaussian 0.12/0.18/0.26 x 255.
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
