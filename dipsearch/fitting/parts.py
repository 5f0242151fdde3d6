"""The engine's seams (FitParts: network, weights, input, optimizer, extra losses), the settings checks a
device needs, and Learner: a network, its optimizer and precision, the pieces of one training step."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArgumentError, DipsearchError
from ..families import Family, family_of
from ..problems.problem import Problem
from .fitbase import FitConfig, FitHook

LossTerm = Callable[[Tensor, Problem], Tensor]


@dataclass
class FitParts:
    """The engine's seams; None keeps the default."""

    network: Callable[[int], nn.Module] | None = None
    weights: str | Path | dict[str, Tensor] | None = None
    input: Callable[[Family, int, int, torch.Generator], Tensor] | None = None
    optimizer: Callable[[Iterable[nn.Parameter], FitConfig], torch.optim.Optimizer] | None = None
    losses: Sequence[LossTerm] = ()


def adam(params: Iterable[nn.Parameter], config: FitConfig) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=config.lr)


def total_variation(weight: float) -> LossTerm:
    """DIP-TV's regulariser: weight * mean absolute difference between neighbouring pixels."""

    def tv(out: Tensor, problem: Problem) -> Tensor:
        return weight * (
            (out[..., 1:, :] - out[..., :-1, :]).abs().mean() + (out[..., 1:] - out[..., :-1]).abs().mean()
        )

    return tv


def load_weights(net: nn.Module, source: str | Path | dict[str, Tensor]) -> None:
    """Load initial weights, naming the first tensor that is missing, unexpected or of another shape."""
    if isinstance(source, (str, Path)):
        try:
            source = torch.load(source, map_location="cpu", weights_only=True)
        except FileNotFoundError:
            raise DipsearchError(f"weights file not found: {source}") from None
        except Exception as err:  # noqa: BLE001 - torch raises many kinds for a bad file
            raise DipsearchError(f"cannot read weights file {source}: {err}") from None
    if not isinstance(source, dict):
        raise DipsearchError(f"initial weights must be a state dict, got {type(source).__name__}")
    own = net.state_dict()
    for name, tensor in own.items():
        if name not in source:
            raise DipsearchError(f"the weights do not match the network: tensor {name!r} is missing")
        if tuple(source[name].shape) != tuple(tensor.shape):
            raise DipsearchError(
                f"the weights do not match the network: tensor {name!r} has shape "
                f"{tuple(source[name].shape)}, the network's is {tuple(tensor.shape)}"
            )
    extra = [name for name in source if name not in own]
    if extra:
        raise DipsearchError(f"the weights do not match the network: unexpected tensor {extra[0]!r}")
    net.load_state_dict(source)


def check_fast_settings(config: FitConfig, device: torch.device) -> None:
    """Refuse settings the device cannot run, before any work."""
    if config.compile and device.type != "cuda":
        raise ArgumentError(
            "{compile} needs a CUDA GPU (torch.compile of the fit is only supported there); this fit runs on {where}",
            where=device.type,
        )
    if config.cuda_graph == "on" and device.type != "cuda":
        raise ArgumentError(
            "{cuda_graph:on} needs a CUDA GPU (the step is captured as a CUDA graph); this fit runs on {where}; "
            "use {cuda_graph:auto} or {cuda_graph:off}",
            where=device.type,
        )
    if config.precision == "bf16":
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ArgumentError("{precision:bf16}: this GPU has no bfloat16 support; use {precision:fp32}")
        if device.type not in ("cuda", "cpu"):
            raise ArgumentError(
                "{precision:bf16} is supported on cuda and cpu, not on {where}; use fp32", where=device.type
            )


def is_guard_step(step: int, config: FitConfig) -> bool:
    """The divergence guard looks at the first step (the untrained network), every guard_every, and the last."""
    return step == 1 or step % config.guard_every == 0 or step == config.iters


class Learner:
    """A network, its optimizer and its precision settings: the pieces of one training step.

    The engine trains one; the SURE detector trains a twin with the same pieces in lock-step.
    """

    def __init__(self, net: nn.Module, optimizer: torch.optim.Optimizer, config: FitConfig, device: torch.device):
        self.net, self.optimizer, self.device = net, optimizer, device
        self.autocast = config.precision == "bf16"
        self.forward = torch.compile(net) if config.compile else net

    @classmethod
    def create(
        cls, spec: Any, channels: int, config: FitConfig, device: torch.device, parts: FitParts | None = None
    ) -> Learner:
        parts = parts or FitParts()
        # Seeded locally so that a fit never disturbs the caller's random state (searchers rely on theirs).
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = parts.network(channels) if parts.network else family_of(spec).build(channels)
        if parts.weights is not None:
            load_weights(net, parts.weights)
        net = net.to(device)
        if config.channels_last:
            net = net.to(memory_format=torch.channels_last)
        optimizer = (parts.optimizer or adam)(net.parameters(), config)
        return cls(net, optimizer, config, device)

    def output(self, net_input: Tensor, height: int, width: int) -> Tensor:
        """The network's output cropped to the image, in float32 whatever the precision."""
        # No cast cache: a CUDA graph must not keep casts made outside it (each weight is cast once per pass anyway).
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast, cache_enabled=False):
            out = self.forward(net_input)
        return out[:, :, :height, :width].float()

    def update(self, loss: Tensor, step: int, hooks: Sequence[FitHook] = ()) -> None:
        loss.backward()
        self.optimizer.step()
        with torch.no_grad():
            for hook in hooks:
                hook.on_update(self, step)

    def snapshot(self) -> dict[str, Any]:
        return {
            "net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
        }

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.net.load_state_dict(snapshot["net"])
        self.optimizer.load_state_dict(snapshot["optimizer"])

    @torch.no_grad()
    def restore_in_place(self, snapshot: dict[str, Any]) -> None:
        """restore() into the tensors that exist (a captured graph holds their addresses). A parameter without
        state in the snapshot (saved before its first step) gets Adam's fresh state: zeros."""
        self.net.load_state_dict(snapshot["net"])  # copies into the parameters and buffers
        saved = snapshot["optimizer"]["state"]
        params = [p for group in self.optimizer.param_groups for p in group["params"]]
        for index, param in enumerate(params):
            for key, tensor in self.optimizer.state.get(param, {}).items():
                if isinstance(tensor, Tensor):
                    tensor.copy_(saved[index][key]) if index in saved else tensor.zero_()
