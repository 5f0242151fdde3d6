"""How much memory a fit needs, estimated before anything is allocated, and the refusal of a fit that cannot get it.

A DIP fit holds, at its peak, the activations of one forward pass (kept for the backward pass), their gradients
while the backward pass runs, the weights with their gradients and Adam's two moments, and a few image-sized
buffers (observation, input, output, EMA, best output). The activations dominate for any real image, and they
grow with the pixel count; a shape-only pass of the network on the meta device counts them exactly without
allocating anything.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import ArgumentError

BYTES = 4  # float32
# Peak float32 values held per activation element of the forward pass: the saved activations, their gradients and
# autograd's temporaries. Fitted to the peak resident memory of CPU fits of the seed network and of a small
# hourglass at 256-1024 px (bench/fit_memory.py; the figures are in docs/guide/troubleshooting.md), rounded up.
ACTIVATION_FACTOR = 1.75
IMAGE_BUFFERS = 12  # image-sized float32 tensors besides the network's: observed, clean, mask, input, EMA, best, ...
PARAMETER_COPIES = 4  # weights, gradients, Adam's first and second moments
HEADROOM = 0.8  # plan for at most this share of the memory available now: the allocator, Python, other processes


def activation_elements(spec: Any, channels: int, height: int, width: int) -> int:
    """The elements every module of the network outputs in one forward pass on an image of this size.

    Counted by a shape-only pass on the meta device at a small size, then scaled by the padded pixel count: the
    network is fully convolutional, so every layer's output grows with the pixels (up to a few padding rows).
    """
    from ..families import family_of

    family = family_of(spec)
    h, w = family.padded_shape(height, width)
    side = family.padded_shape(_REFERENCE_SIDE, _REFERENCE_SIDE)[0]
    return math.ceil(_elements(family, channels, side) * (h * w) / (side * side))


_REFERENCE_SIDE = 256


def _elements(family: Any, channels: int, side: int) -> int:
    with torch.device("meta"):
        net = family.build(channels)
        x = torch.empty(1, *family.input_shape(side, side))
    total = 0

    def count(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal total
        if isinstance(output, torch.Tensor) and not list(module.children()):
            total += output.numel()

    handles = [m.register_forward_hook(count) for m in net.modules()]
    try:
        with torch.no_grad():
            net(x)
    finally:
        for handle in handles:
            handle.remove()
    return total


def fit_bytes(spec: Any, channels: int, height: int, width: int) -> int:
    """Estimated peak bytes of one fit of `spec` on a `channels` x height x width image."""
    from ..families import family_of

    h, w = family_of(spec).padded_shape(height, width)
    with torch.device("meta"):
        params = sum(p.numel() for p in family_of(spec).build(channels).parameters())
    activations = activation_elements(spec, channels, height, width)
    return int(BYTES * (ACTIVATION_FACTOR * activations + PARAMETER_COPIES * params + IMAGE_BUFFERS * channels * h * w))


def available_bytes(device: torch.device) -> int | None:
    """Memory available for a fit on `device` now; None where it cannot be known (then nothing is refused)."""
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return None  # the fit itself will say there is no GPU, in its own words
        if torch.cuda.is_initialized():
            free, _ = torch.cuda.mem_get_info(device)
            return int(free)
        # Asking for the free memory would create a CUDA context in this process, which a driver that hands its
        # fits to worker processes never needs: its size is the bound there.
        return int(torch.cuda.get_device_properties(device).total_memory)
    if device.type == "cpu":
        meminfo = Path("/proc/meminfo")
        if meminfo.is_file():
            for line in meminfo.read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    return None


def check_fit_memory(problem: Any, spec: Any, device: torch.device, available: int | None = None) -> None:
    """Refuse, before allocating, a fit that cannot get the memory it needs: say how much, and what crop fits.

    `available` defaults to what `device` has available now (dipsearch.fitting.memory.available_bytes).
    """
    from ..families import family_of

    free = available_bytes(device) if available is None else available
    if free is None:
        return
    channels, height, width = problem.image_shape
    need = fit_bytes(spec, channels, height, width)
    budget = HEADROOM * free
    if need <= budget:
        return
    # Nearly everything grows with the pixel count: scale the side down by the square root, then make sure.
    multiple = getattr(spec, "size_multiple", 1)
    side = max(multiple, int(min(height, width) * math.sqrt(budget / need)) // multiple * multiple)
    while side > multiple and fit_bytes(spec, channels, side, side) > budget:
        side -= multiple
    fits = fit_bytes(spec, channels, side, side) <= budget and family_of(spec).size_error(side, side) is None
    advice = (
        f"give {{crop:{side}}} or smaller (a {side}x{side} px centre crop needs about "
        f"{_gib(fit_bytes(spec, channels, side, side))}), or a smaller image"
        if fits
        else "no crop of it fits either: free memory, or use a device with more"
    )
    raise ArgumentError(
        f"a fit of this network on the {width}x{height} px image needs about {_gib(need)} of memory and {device} "
        f"has {_gib(free)} available; " + advice
    )


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"
