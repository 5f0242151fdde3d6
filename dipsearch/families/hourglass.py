"""The hourglass family: the reference "skip" network of `ArchSpec` / `build_net`, seen through the protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..nets.arch import ArchSpec, build_net


def padded(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def size_error(
    family: str, height: int, width: int, multiple: int, need: tuple[int, int], kernels: str, min_pixels: int = 2
) -> str | None:
    """The shared size message. `need` is the smallest padded (height, width) the layers accept on their own;
    `min_pixels`: the deepest (1/multiple) map must hold that many pixels for batch norm."""
    ph, pw = padded(height, multiple), padded(width, multiple)
    need_h, need_w = (padded(n, multiple) for n in need)
    if ph >= need_h and pw >= need_w and (ph // multiple) * (pw // multiple) < min_pixels:
        return (
            f"the image is {width}x{height} px (width x height), which this network pads to {pw}x{ph}, but {family} "
            f"needs at least {min_pixels} pixels in its deepest (1/{multiple}) map for batch norm: an image more than "
            f"{multiple} px wide or high; use a larger image or a space/architecture with fewer levels"
        )
    if ph >= need_h and pw >= need_w:
        return None
    return (
        f"the image is {width}x{height} px (width x height), which this network pads to {pw}x{ph}, but {family} "
        f"with {kernels} needs a padded size of at least {need_w}x{need_h}, i.e. an image of at least "
        f"{need_w - multiple + 1}x{need_h - multiple + 1} px; use a larger image or a space/architecture with fewer levels"
    )


@dataclass(frozen=True)
class Hourglass:
    spec: ArchSpec
    name = "hourglass"
    genes = ArchSpec.genes

    def build(self, out_channels: int = 3) -> nn.Module:
        return build_net(self.spec, out_channels)

    def padded_shape(self, height: int, width: int) -> tuple[int, int]:
        m = self.spec.size_multiple
        return padded(height, m), padded(width, m)

    def input_shape(self, height: int, width: int) -> tuple[int, int, int]:
        ph, pw = self.padded_shape(height, width)
        return self.spec.input_depth, ph, pw

    def make_input(self, height: int, width: int, scale: float, generator: torch.Generator) -> torch.Tensor:
        channels, h, w = self.input_shape(height, width)
        if self.spec.input_kind == "meshgrid":
            ys = torch.linspace(0, 1, h).view(1, 1, h, 1).expand(1, 1, h, w)
            xs = torch.linspace(0, 1, w).view(1, 1, 1, w).expand(1, 1, h, w)
            return torch.cat([xs, ys], dim=1).contiguous()
        return torch.rand(1, channels, h, w, generator=generator) * scale

    def min_padded(self) -> int:
        """The smallest padded side every layer accepts: a reflection pad must be smaller than the map it pads
        (level i works on 1/2^i maps, its second down conv on 1/2^(i+1)), and every map has at least a pixel."""
        s = self.spec
        need = s.size_multiple
        if s.pad == "reflection":
            for i in range(s.depth):
                half = lambda k: (k - 1) // 2 + 1  # noqa: E731 - the map side a k x k reflection pad needs
                need = max(need, 2 ** (i + 1) * half(s.k_down[i]), 2**i * half(s.k_up[i]))
                if s.n_skip[i]:
                    need = max(need, 2**i * half(s.k_skip[i]))
        return need

    def size_error(self, height: int, width: int) -> str | None:
        need = self.min_padded()
        label = f"an hourglass of depth {self.spec.depth}"
        return size_error(
            label, height, width, self.spec.size_multiple, (need, need), f"kernels {list(self.spec.k_down)}"
        )

    def to_dict(self) -> dict[str, Any]:
        return self.spec.to_dict()

    def describe(self) -> str:
        s = self.spec
        join = lambda values: "/".join(str(v) for v in values)  # noqa: E731
        text = f"d{s.depth} down {join(s.n_down)} up {join(s.n_up)} skip {join(s.n_skip)}"
        text += f" kd {join(s.k_down)} ku {join(s.k_up)} {join(m[:3] for m in s.upsample)}"
        if s.cross_skip:  # NAS-DIP: decoder level <- source (0 = input)
            text += " xskip " + ",".join(f"{i}<{src}" for i, src in s.cross_skip)
        return text
