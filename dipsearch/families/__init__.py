"""Network families behind one small protocol, so that fitting, search, stopping and evaluation work on any.

A family's spec is a frozen dataclass (the hourglass's is `ArchSpec`, unchanged; the Deep Decoder's is
`DeepDecoderSpec`). `family_of(spec)` returns the object that knows how to use it:

    build(out_channels) -> nn.Module          the network (weights drawn from torch's global RNG)
    padded_shape(height, width) -> (h, w)     the size the network really produces for such an image
    input_shape(height, width) -> (c, h, w)   the input tensor for that padded size
    make_input(height, width, scale, gen)     a fresh input of input_shape (U(0, scale) noise by default)
    size_error(height, width) -> str | None   why an image of this size cannot work (None: it can)
    to_dict() / describe()                    file form (with a "family" key unless hourglass) and a label
    genes                                     the genes a search space may name (dipsearch.nets.genes.FamilyGenes),
                                              declared once by the family's spec class

Files and dicts name their family with a "family" key; a dict without one is an hourglass ArchSpec, so
every file written before families existed still loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ..errors import DipsearchError
from ..nets.arch import ArchSpec, read_arch_table
from ..nets.genes import FamilyGenes
from .deep_decoder import DeepDecoderSpec
from .hourglass import Hourglass


class Family(Protocol):
    name: str
    genes: FamilyGenes

    def build(self, out_channels: int = 3) -> nn.Module: ...

    def padded_shape(self, height: int, width: int) -> tuple[int, int]: ...

    def input_shape(self, height: int, width: int) -> tuple[int, int, int]: ...

    def make_input(self, height: int, width: int, scale: float, generator: torch.Generator) -> torch.Tensor: ...

    def size_error(self, height: int, width: int) -> str | None: ...

    def to_dict(self) -> dict[str, Any]: ...

    def describe(self) -> str: ...


Spec = ArchSpec | DeepDecoderSpec
SPEC_CLASSES: dict[str, type[ArchSpec | DeepDecoderSpec]] = {"hourglass": ArchSpec, "deep_decoder": DeepDecoderSpec}
FAMILIES = tuple(SPEC_CLASSES)


def family_of(spec: Any) -> Family:
    if isinstance(spec, ArchSpec):
        return Hourglass(spec)
    if isinstance(spec, DeepDecoderSpec):
        return spec
    raise DipsearchError(f"not a network spec: {type(spec).__name__}; expected ArchSpec or DeepDecoderSpec")


def spec_from_dict(data: dict[str, Any], source: str = "architecture") -> Spec:
    data = dict(data)
    family = data.pop("family", "hourglass")
    if family not in SPEC_CLASSES:
        raise DipsearchError(f"{source}: unknown network family {family!r}; choose one of {', '.join(FAMILIES)}")
    return SPEC_CLASSES[family].from_dict(data, source=source)


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    return family_of(spec).to_dict()


def load_spec(path: str | Path) -> Spec:
    """A network spec of any family from TOML (a table [arch], as best_arch.toml) or JSON."""
    return spec_from_dict(read_arch_table(path), source=str(path))


def count_params_of(spec: Spec, out_channels: int = 3) -> int:
    return sum(p.numel() for p in family_of(spec).build(out_channels).parameters())


__all__ = [
    "FAMILIES",
    "SPEC_CLASSES",
    "DeepDecoderSpec",
    "Family",
    "Hourglass",
    "count_params_of",
    "family_of",
    "load_spec",
    "spec_from_dict",
    "spec_to_dict",
]
