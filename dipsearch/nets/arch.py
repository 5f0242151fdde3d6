"""ArchSpec, the resolved description of one hourglass, and build_net, which turns it into a network.

The builder follows the reference "skip" network level by level (docs/reference.md, section 2): each level is
[skip branch | deeper branch] -> BN -> conv up -> BN -> act (-> 1x1 conv -> BN -> act), and the deeper
branch is two convs (the first one downsamples), the next level, and an upsampling.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from ..errors import DipsearchError
from ..store.tomlio import dumps_toml, load_toml
from .genes import FamilyGenes
from .upcell import UP_ACTIVATIONS, UP_OPS, UP_PRIMITIVES, CrossScaleNet, CrossSkipAdd, FeatureStore, Tap, up_cell

UPSAMPLE_MODES = ("nearest", "bilinear", "bicubic")
DOWNSAMPLE_MODES = ("stride", "avg", "max")
ACTIVATIONS = ("leaky_relu", "swish", "elu", "relu", "none")
PADDINGS = ("reflection", "zero")
INPUT_KINDS = ("noise", "meshgrid")

_NASDIP_DEFAULTS = {
    "up_primitive": "per_level",
    "up_op": "identity",
    "up_kernel": 3,
    "up_act": "none",
    "cross_skip": [],
}


def _five(value: Any) -> tuple:
    return (value,) * 5


@dataclass(frozen=True)
class ArchSpec:
    """Everything that decides the network's structure and its input. Defaults are the seed network."""

    genes: ClassVar[FamilyGenes] = FamilyGenes(
        arch_globals=(
            "depth",
            "input_depth",
            "input_kind",
            "downsample",
            "activation",
            "pad",
            "need1x1_up",
            "up_primitive",
            "up_op",
            "up_kernel",
            "up_act",
        ),
        per_level=("n_down", "n_up", "n_skip", "k_down", "k_up", "k_skip", "upsample"),
        global_per_level=("k_skip", "upsample"),
    )
    n_down: tuple[int, ...] = (8, 16, 32, 64, 128)
    n_up: tuple[int, ...] = (8, 16, 32, 64, 128)
    n_skip: tuple[int, ...] = (0, 0, 0, 4, 4)
    k_down: tuple[int, ...] = field(default_factory=lambda: _five(3))
    k_up: tuple[int, ...] = field(default_factory=lambda: _five(3))
    k_skip: tuple[int, ...] = field(default_factory=lambda: _five(1))
    upsample: tuple[str, ...] = field(default_factory=lambda: _five("bilinear"))
    downsample: str = "stride"
    activation: str = "leaky_relu"
    pad: str = "reflection"
    need1x1_up: bool = True
    input_depth: int = 3
    input_kind: str = "noise"
    # NAS-DIP (dipsearch/nets/upcell.py): the upsampling cell shared by all decoder levels, and cross-scale
    # skips as (decoder level, source) pairs, source 0 = the input, s >= 1 = encoder level s-1.
    # The defaults build the plain hourglass; to_dict leaves them out, so older specs keep their keys.
    up_primitive: str = "per_level"
    up_op: str = "identity"
    up_kernel: int = 3
    up_act: str = "none"
    cross_skip: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        for name in self.genes.per_level:
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check_nasdip(self)
        depth = len(self.n_down)
        if depth < 1:
            raise DipsearchError("architecture: n_down is empty; an hourglass needs at least one level")
        for name in self.genes.per_level:
            if len(getattr(self, name)) != depth:
                raise DipsearchError(
                    f"architecture: {name} has {len(getattr(self, name))} levels but n_down has {depth}; "
                    "every per-level list must have one entry per level"
                )
        for name in ("n_down", "n_up", "input_depth"):
            values = getattr(self, name) if name != "input_depth" else (self.input_depth,)
            if any(int(v) != v or v < 1 for v in values):
                raise DipsearchError(f"architecture: {name} must be positive integers, got {values}")
        if any(int(v) != v or v < 0 for v in self.n_skip):
            raise DipsearchError(f"architecture: n_skip must be integers >= 0, got {self.n_skip}")
        for name in ("k_down", "k_up", "k_skip"):
            if any(int(k) != k or k < 1 or k % 2 == 0 for k in getattr(self, name)):
                raise DipsearchError(
                    f"architecture: {name} must be odd positive kernel sizes (1, 3, 5, ...), got {getattr(self, name)}"
                )
        _check_choice("upsample", self.upsample, UPSAMPLE_MODES)
        _check_choice("downsample", (self.downsample,), DOWNSAMPLE_MODES)
        _check_choice("activation", (self.activation,), ACTIVATIONS)
        _check_choice("pad", (self.pad,), PADDINGS)
        _check_choice("input_kind", (self.input_kind,), INPUT_KINDS)
        if self.input_kind == "meshgrid" and self.input_depth != 2:
            raise DipsearchError(
                f"architecture: a meshgrid input has 2 channels (x, y), but input_depth is {self.input_depth}"
            )

    @property
    def depth(self) -> int:
        return len(self.n_down)

    @property
    def size_multiple(self) -> int:
        """Input sides must be multiples of this; the fitting loop pads to it."""
        return 2**self.depth

    def to_dict(self) -> dict[str, Any]:
        data = {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}
        data["cross_skip"] = [list(pair) for pair in self.cross_skip]
        for name, default in _NASDIP_DEFAULTS.items():
            if data[name] == default:
                del data[name]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "architecture") -> ArchSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise DipsearchError(
                f"{source}: unknown key(s) {', '.join(unknown)}; known keys are {', '.join(sorted(known))}"
            )
        try:
            return cls(**data)
        except DipsearchError as err:
            raise DipsearchError(f"{source}: {err}") from None
        except (TypeError, ValueError) as err:  # a value of the wrong kind, e.g. n_down = ["a", ...]
            raise DipsearchError(f"{source}: {err}") from None

    def to_toml(self) -> str:
        return dumps_toml({"arch": self.to_dict()})

    def canonical_key(self) -> str:
        """A stable text form: two specs that build the same network have the same key."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def load(cls, path: str | Path) -> ArchSpec:
        """Read an ArchSpec from TOML (a table [arch], as best_arch.toml) or JSON."""
        return cls.from_dict(read_arch_table(path), source=str(path))


def read_arch_table(path: str | Path) -> dict[str, Any]:
    """The [arch] table of a TOML file (as best_arch.toml), or a JSON object, of any network family."""
    path = Path(path)
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise DipsearchError(f"architecture file not found: {path}") from None
        except (OSError, ValueError) as err:
            raise DipsearchError(f"cannot read architecture file {path}: {err}") from None
    else:
        data = load_toml(path, what="architecture file")
    data = data.get("arch", data)
    if not isinstance(data, dict):
        raise DipsearchError(f"{path}: [arch] must be a table")
    return data


def _check_nasdip(spec: ArchSpec) -> None:
    _check_choice("up_primitive", (spec.up_primitive,), UP_PRIMITIVES)
    _check_choice("up_op", (spec.up_op,), UP_OPS)
    _check_choice("up_act", (spec.up_act,), UP_ACTIVATIONS)
    if isinstance(spec.up_kernel, bool) or spec.up_kernel not in (1, 3, 5, 7):
        raise DipsearchError(f"architecture: up_kernel must be 1, 3, 5 or 7, got {spec.up_kernel!r}")
    if spec.up_op == "identity":  # no conv, so the kernel means nothing: one key per network
        object.__setattr__(spec, "up_kernel", 3)
    try:
        pairs = sorted({(int(i), int(s)) for i, s in spec.cross_skip})
    except (TypeError, ValueError):
        raise DipsearchError(
            f"architecture: cross_skip must be a list of [decoder level, source] pairs, got {spec.cross_skip!r}"
        ) from None
    for i, s in pairs:
        if not (0 <= i < spec.depth and 0 <= s < spec.depth):
            raise DipsearchError(
                f"architecture: cross_skip pair [{i}, {s}] is out of range: decoder levels and sources "
                f"(0 = input, s = encoder level s-1) go from 0 to {spec.depth - 1} at depth {spec.depth}"
            )
    object.__setattr__(spec, "cross_skip", tuple(pairs))


def _check_choice(name: str, values: tuple, allowed: tuple) -> None:
    for value in values:
        if value not in allowed:
            raise DipsearchError(f"architecture: {name} {value!r} is not one of {', '.join(allowed)}")


# --------------------------------------------------------------------------- building blocks


def _activation(name: str) -> nn.Module:
    if name == "leaky_relu":
        return nn.LeakyReLU(0.2, inplace=True)
    if name == "swish":
        return nn.SiLU()
    if name == "elu":
        return nn.ELU()
    if name == "relu":
        return nn.ReLU()
    return nn.Identity()


def _conv(c_in: int, c_out: int, kernel: int, spec: ArchSpec, stride: int = 1) -> list[nn.Module]:
    """Padding layer + unpadded conv (+ pooling when the level downsamples by pooling)."""
    layers: list[nn.Module] = []
    to_pad = (kernel - 1) // 2
    conv_stride = stride if spec.downsample == "stride" else 1
    if to_pad and spec.pad == "reflection":
        layers.append(nn.ReflectionPad2d(to_pad))
        to_pad = 0
    layers.append(nn.Conv2d(c_in, c_out, kernel, conv_stride, padding=to_pad, bias=True))
    if stride > 1 and spec.downsample == "avg":
        layers.append(nn.AvgPool2d(stride, stride))
    elif stride > 1 and spec.downsample == "max":
        layers.append(nn.MaxPool2d(stride, stride))
    return layers


def _conv_bn_act(c_in: int, c_out: int, kernel: int, spec: ArchSpec, stride: int = 1) -> list[nn.Module]:
    return [*_conv(c_in, c_out, kernel, spec, stride), nn.BatchNorm2d(c_out), _activation(spec.activation)]


class Concat(nn.Module):
    """Channel concatenation of [skip, deeper], centre-cropping both to the smaller spatial size."""

    def __init__(self, skip: nn.Module, deeper: nn.Module):
        super().__init__()
        self.skip = skip
        self.deeper = deeper

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.skip(x), self.deeper(x)
        h = min(a.shape[2], b.shape[2])
        w = min(a.shape[3], b.shape[3])
        return torch.cat([_centre_crop(a, h, w), _centre_crop(b, h, w)], dim=1)


def _centre_crop(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    top = (x.shape[2] - h) // 2
    left = (x.shape[3] - w) // 2
    return x[:, :, top : top + h, left : left + w]


def _level(spec: ArchSpec, i: int, c_in: int, store: FeatureStore | None = None) -> nn.Sequential:
    last = i == spec.depth - 1
    k = spec.n_down[i] if last else spec.n_up[i + 1]
    deeper: list[nn.Module] = [
        *_conv_bn_act(c_in, spec.n_down[i], spec.k_down[i], spec, stride=2),
        *_conv_bn_act(spec.n_down[i], spec.n_down[i], spec.k_down[i], spec),
    ]
    if store is not None:
        deeper.append(Tap(store, i + 1))
    if not last:
        deeper.append(_level(spec, i + 1, spec.n_down[i], store))
    deeper.append(up_cell(spec.up_primitive, spec.up_op, spec.up_kernel, spec.up_act, spec.pad, k, spec.upsample[i]))
    deeper_branch = nn.Sequential(*deeper)

    merged_channels = spec.n_skip[i] + k
    if spec.n_skip[i]:
        skip = nn.Sequential(*_conv_bn_act(c_in, spec.n_skip[i], spec.k_skip[i], spec))
        head: nn.Module = Concat(skip, deeper_branch)
    else:
        head = deeper_branch
    layers = [
        head,
        nn.BatchNorm2d(merged_channels),
        *_conv_bn_act(merged_channels, spec.n_up[i], spec.k_up[i], spec),
    ]
    if spec.need1x1_up:
        layers += _conv_bn_act(spec.n_up[i], spec.n_up[i], 1, spec)
    sources = [s for level, s in spec.cross_skip if level == i]
    if store is not None and sources:
        channels = [spec.input_depth if s == 0 else spec.n_down[s - 1] for s in sources]
        layers.append(CrossSkipAdd(store, list(zip(sources, channels)), spec.n_up[i]))
    return nn.Sequential(*layers)


def build_net(spec: ArchSpec, out_channels: int = 3) -> nn.Module:
    """The hourglass of `spec` with a 1x1 conv + sigmoid head producing `out_channels` channels."""
    if out_channels < 1:
        raise DipsearchError(f"out_channels must be >= 1, got {out_channels}")
    store = FeatureStore() if spec.cross_skip else None
    net = nn.Sequential(
        _level(spec, 0, spec.input_depth, store),
        nn.Conv2d(spec.n_up[0], out_channels, 1, bias=True),
        nn.Sigmoid(),
    )
    return net if store is None else CrossScaleNet(net, store)


def count_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())
