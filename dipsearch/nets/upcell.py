"""The NAS-DIP additions to the hourglass: a searched upsampling cell and cross-scale skip connections.

Upsampling cell (one per decoder level, the same design at all levels, docs/reference.md, section 6): a x2
primitive, then an optional conv op, then an activation.
  primitive  per_level (the hourglass's own per-level `upsample` mode: the seed network), bilinear,
             bicubic, nearest, pixel_shuffle (1x1 conv to 4c channels, then PixelShuffle(2)),
             transposed (ConvTranspose2d c->c, kernel 4, stride 2, padding 1: exactly x2);
  op         identity, conv (k x k, c->c), separable (depth-wise k x k, then 1x1), depthwise (k x k, groups=c);
  activation none, relu, leaky_relu (slope 0.2, as everywhere in the hourglass).
The op pads like every other conv of the network (reflection or zero), so the map keeps its size.

Cross-scale skips: pairs (decoder level i, source s), source 0 = the network input, s >= 1 = the output
of encoder level s-1 (its two convs, at 1/2^s of the input size). The source is resized to level i's
output size (adaptive average pooling when it is larger, so a downsampled source is not aliased;
bilinear interpolation when it is smaller), projected to n_up[i] channels by a 1x1 conv (no bias,
only when the channel counts differ), and ADDED to level i's output, after its up conv (and 1x1).
Encoder outputs are captured by Tap modules into a store that belongs to one network; the network
clears it after every forward pass so that no activation outlives the call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

UP_PRIMITIVES = ("per_level", "bilinear", "bicubic", "nearest", "pixel_shuffle", "transposed")
UP_OPS = ("identity", "conv", "separable", "depthwise")
UP_ACTIVATIONS = ("none", "relu", "leaky_relu")


def _padded(c_in: int, c_out: int, kernel: int, pad: str, groups: int = 1) -> list[nn.Module]:
    to_pad = (kernel - 1) // 2
    layers: list[nn.Module] = []
    if to_pad and pad == "reflection":
        layers.append(nn.ReflectionPad2d(to_pad))
        to_pad = 0
    layers.append(nn.Conv2d(c_in, c_out, kernel, padding=to_pad, groups=groups, bias=True))
    return layers


def _primitive(name: str, channels: int) -> list[nn.Module]:
    if name == "nearest":
        return [nn.Upsample(scale_factor=2, mode="nearest")]
    if name in ("bilinear", "bicubic"):
        return [nn.Upsample(scale_factor=2, mode=name, align_corners=False)]
    if name == "pixel_shuffle":
        return [nn.Conv2d(channels, 4 * channels, 1, bias=True), nn.PixelShuffle(2)]
    return [nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1, bias=True)]


def _op(name: str, channels: int, kernel: int, pad: str) -> list[nn.Module]:
    if name == "conv":
        return _padded(channels, channels, kernel, pad)
    if name == "depthwise":
        return _padded(channels, channels, kernel, pad, groups=channels)
    if name == "separable":
        return [*_padded(channels, channels, kernel, pad, groups=channels), nn.Conv2d(channels, channels, 1, bias=True)]
    return []


def _act(name: str) -> list[nn.Module]:
    if name == "relu":
        return [nn.ReLU()]
    if name == "leaky_relu":
        return [nn.LeakyReLU(0.2)]
    return []


def up_cell(primitive: str, op: str, kernel: int, act: str, pad: str, channels: int, level_mode: str) -> nn.Module:
    """The x2 upsampling of one decoder level; `level_mode` serves the per_level primitive."""
    first = _primitive(level_mode if primitive == "per_level" else primitive, channels)
    rest = _op(op, channels, kernel, pad) + _act(act)
    if not rest and len(first) == 1:
        return first[0]  # the seed network's plain nn.Upsample, so its module tree is unchanged
    return nn.Sequential(*first, *rest)


class FeatureStore:
    """Encoder outputs of the current forward pass, keyed by source index (0 = the network input)."""

    def __init__(self) -> None:
        self.features: dict[int, torch.Tensor] = {}


class Tap(nn.Module):
    """Passes its input through and records it as source `index`."""

    def __init__(self, store: FeatureStore, index: int):
        super().__init__()
        self.store = store
        self.index = index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.store.features[self.index] = x
        return x


class CrossSkipAdd(nn.Module):
    """Adds the resized, projected sources of one decoder level to that level's output."""

    def __init__(self, store: FeatureStore, sources: list[tuple[int, int]], channels: int):
        super().__init__()
        self.store = store
        self.sources = [s for s, _ in sources]
        self.proj = nn.ModuleList(
            nn.Identity() if c == channels else nn.Conv2d(c, channels, 1, bias=False) for _, c in sources
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        for source, proj in zip(self.sources, self.proj):
            x = x + proj(resize(self.store.features[source], size))
        return x


def resize(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    if x.shape[-2] >= size[0] and x.shape[-1] >= size[1]:
        return F.adaptive_avg_pool2d(x, size)
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class CrossScaleNet(nn.Module):
    """The hourglass with cross-scale skips: taps the input, runs the body, clears the store."""

    def __init__(self, body: nn.Module, store: FeatureStore):
        super().__init__()
        self.body = body
        self.store = store
        self.tap = Tap(store, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self.body(self.tap(x))
        finally:
            self.store.features.clear()
