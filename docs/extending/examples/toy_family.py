"""A network family in one module: a plain stack of 3x3 convolutions at full resolution, no encoder, no decoder.

A family's spec is a frozen dataclass that is also its own family object: it builds the network, says which
input it takes and which image sizes it can fit, and writes itself to a file. Two lines in
dipsearch/families/__init__.py register it: its name in `SPEC_CLASSES`, so that files and search spaces that say
`family = "conv_stack"` load it, and a branch in `family_of`, the function the engine asks for a spec's family:

    SPEC_CLASSES = {..., "conv_stack": ConvStackSpec}
    if isinstance(spec, ConvStackSpec):   # in family_of: the spec is its own family object
        return spec
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn

from dipsearch.errors import DipsearchError
from dipsearch.nets.genes import FamilyGenes


@dataclass(frozen=True)
class ConvStackSpec:
    name: ClassVar[str] = "conv_stack"
    genes: ClassVar[FamilyGenes] = FamilyGenes(arch_globals=("depth",), per_level=("width",), global_per_level=())
    width: tuple[int, ...] = (32, 32, 32, 32)
    input_depth: int = 8

    def __post_init__(self) -> None:
        object.__setattr__(self, "width", tuple(self.width))
        if not self.width or any(int(w) != w or w < 1 for w in self.width):
            raise DipsearchError(f"conv stack: width must be positive integers, got {self.width}")

    @property
    def depth(self) -> int:
        return len(self.width)

    def build(self, out_channels: int = 3) -> nn.Module:
        layers: list[nn.Module] = []
        channels = [self.input_depth, *self.width]
        for c_in, c_out in zip(channels, channels[1:]):
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2)]
        layers += [nn.Conv2d(channels[-1], out_channels, 1), nn.Sigmoid()]
        return nn.Sequential(*layers)

    def padded_shape(self, height: int, width: int) -> tuple[int, int]:
        return height, width  # no resampling: any size works as it is

    def input_shape(self, height: int, width: int) -> tuple[int, int, int]:
        return self.input_depth, height, width

    def make_input(self, height: int, width: int, scale: float, generator: torch.Generator) -> torch.Tensor:
        return torch.rand(1, *self.input_shape(height, width), generator=generator) * scale

    def size_error(self, height: int, width: int) -> str | None:
        if min(height, width) < 2:  # a reflection pad of 1 needs 2 pixels
            return f"the image is {width}x{height} px but a conv stack needs at least 2x2 px"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {"family": self.name, "width": list(self.width), "input_depth": self.input_depth}

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "architecture") -> ConvStackSpec:
        data = {k: v for k, v in data.items() if k != "family"}
        unknown = sorted(set(data) - {f.name for f in fields(cls)})
        if unknown:
            raise DipsearchError(f"{source}: unknown conv stack key(s) {', '.join(unknown)}")
        return cls(**data)

    def describe(self) -> str:
        return f"conv stack d{self.depth} ch {'/'.join(str(w) for w in self.width)}"
