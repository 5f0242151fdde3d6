"""The Deep Decoder / ConvDecoder family (Heckel & Hand 2019): no encoder, a fixed small latent input.

Layer order of the published `decodernw` (upsample_first, BN after the activation): with channels
c = n_up + [n_up[-1], n_up[-1]], conv i (i = 0..L) maps c[i] -> c[i+1] without bias, then a 2x upsampling
(all but the last conv), ReLU, BatchNorm; a bias-free 1x1 conv to the image channels and a sigmoid close it.
With the published 128 channels x 5 levels and 1x1 convs: 6 x 128^2 + 6 x 256 (BN) + 128 x 3 = 100,224
parameters for RGB. The input is U(0, 1/10) noise of c[0] channels at 1/2^L of the (padded) image size,
and it is not perturbed during the fit (reg_noise_std 0 in search_spaces/deep_decoder.toml). 3x3 kernels
give the ConvDecoder variant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import DipsearchError
from ..nets.arch import ACTIVATIONS, PADDINGS, UPSAMPLE_MODES, _activation, _check_choice
from ..nets.genes import FamilyGenes
from ..nets.upcell import up_cell
from ..store.tomlio import dumps_toml
from .hourglass import padded, size_error


@dataclass(frozen=True)
class DeepDecoderSpec:
    """Defaults are the published Deep Decoder: 5 levels of 128 channels, 1x1 convs, bilinear, ReLU."""

    name: ClassVar[str] = "deep_decoder"
    genes: ClassVar[FamilyGenes] = FamilyGenes(
        arch_globals=("depth", "activation", "pad"),
        per_level=("n_up", "k_up", "upsample"),
        global_per_level=("k_up", "upsample"),
    )
    n_up: tuple[int, ...] = (128,) * 5
    k_up: tuple[int, ...] = (1,) * 5
    upsample: tuple[str, ...] = field(default_factory=lambda: ("bilinear",) * 5)
    activation: str = "relu"
    pad: str = "reflection"

    def __post_init__(self) -> None:
        for name in self.genes.per_level:
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if not self.n_up:
            raise DipsearchError("deep decoder: n_up is empty; it needs at least one level")
        for name in self.genes.per_level[1:]:
            if len(getattr(self, name)) != self.depth:
                raise DipsearchError(
                    f"deep decoder: {name} has {len(getattr(self, name))} levels but n_up has "
                    f"{self.depth}; every per-level list needs one entry per level"
                )
        if any(isinstance(v, bool) or int(v) != v or v < 1 for v in self.n_up):
            raise DipsearchError(f"deep decoder: n_up must be positive integers, got {self.n_up}")
        if any(int(k) != k or k < 1 or k % 2 == 0 for k in self.k_up):
            raise DipsearchError(f"deep decoder: k_up must be odd positive kernel sizes, got {self.k_up}")
        _check_choice("upsample", self.upsample, UPSAMPLE_MODES)
        _check_choice("activation", (self.activation,), ACTIVATIONS)
        _check_choice("pad", (self.pad,), PADDINGS)

    @property
    def depth(self) -> int:
        return len(self.n_up)

    @property
    def size_multiple(self) -> int:
        return 2**self.depth

    # ----------------------------------------------------------------- the family protocol

    def build(self, out_channels: int = 3) -> nn.Module:
        if out_channels < 1:
            raise DipsearchError(f"out_channels must be >= 1, got {out_channels}")
        c = [*self.n_up, self.n_up[-1], self.n_up[-1]]
        layers: list[nn.Module] = []
        for i in range(self.depth + 1):
            k = self.k_up[min(i, self.depth - 1)]
            if k > 1 and self.pad == "reflection":
                layers.append(nn.ReflectionPad2d((k - 1) // 2))
            layers.append(
                nn.Conv2d(c[i], c[i + 1], k, padding=0 if self.pad == "reflection" else (k - 1) // 2, bias=False)
            )
            if i < self.depth:
                # the hourglass's plain x2 resampling of this level's mode (no conv op, no activation)
                layers.append(up_cell("per_level", "identity", 1, "none", self.pad, c[i + 1], self.upsample[i]))
            layers += [_activation(self.activation), nn.BatchNorm2d(c[i + 1])]
        layers += [nn.Conv2d(c[-1], out_channels, 1, bias=False), nn.Sigmoid()]
        return nn.Sequential(*layers)

    def padded_shape(self, height: int, width: int) -> tuple[int, int]:
        return padded(height, self.size_multiple), padded(width, self.size_multiple)

    def input_shape(self, height: int, width: int) -> tuple[int, int, int]:
        ph, pw = self.padded_shape(height, width)
        return self.n_up[0], ph // self.size_multiple, pw // self.size_multiple

    def make_input(self, height: int, width: int, scale: float, generator: torch.Generator) -> torch.Tensor:
        return torch.rand(1, *self.input_shape(height, width), generator=generator) * scale

    def size_error(self, height: int, width: int) -> str | None:
        # conv i runs on the 1/2^(L-i) map; a reflection pad must be smaller than the map it pads
        need = self.size_multiple
        if self.pad == "reflection":
            for i in range(self.depth + 1):
                half = (self.k_up[min(i, self.depth - 1)] - 1) // 2
                need = max(need, 2 ** (self.depth - i) * (half + 1))
        return size_error(
            f"a deep decoder of depth {self.depth}",
            height,
            width,
            self.size_multiple,
            (need, need),
            f"kernels {list(self.k_up)}",
        )

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.name, **{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "architecture") -> DeepDecoderSpec:
        data = {k: v for k, v in data.items() if k != "family"}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DipsearchError(
                f"{source}: unknown deep decoder key(s) {', '.join(unknown)}; known keys are {', '.join(sorted(known))}"
            )
        try:
            return cls(**data)
        except (DipsearchError, TypeError, ValueError) as err:
            raise DipsearchError(f"{source}: {err}") from None

    def to_toml(self) -> str:
        return dumps_toml({"arch": self.to_dict()})

    def describe(self) -> str:
        join = lambda values: "/".join(str(v) for v in values)  # noqa: E731
        return (
            f"deep decoder d{self.depth} ch {join(self.n_up)} k {join(self.k_up)} {join(m[:3] for m in self.upsample)}"
        )
