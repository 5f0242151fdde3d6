"""K independent replicas of one architecture as one module: several fits fill one device with one launch per layer.

    nets = build_replicas(spec, out_channels=3, seeds=[0, 1, 2, 3])   # replica k: the network seed k builds
    out = nets(x)                                                      # x: (K, 1, C, H, W) -> (K, 1, C', H', W')

The replicas' weights are stacked along a leading dimension of K, and the network runs under torch.func.vmap:
each convolution becomes one grouped convolution over the K replicas, each batch norm normalises per replica
(its statistics and running buffers stay per replica), concatenations and skips stay inside their replica.
Nothing mixes replicas, so the gradient of a summed loss sum_k L_k(out_k) with respect to replica k's weights is
that of L_k alone, and an elementwise optimizer (Adam, AdamW, SGD) updates each replica as a separate fit would.

Any family works whose forward pass is a pure function of its input, weights and buffers; a network that reads
values on the host (`.item()`, data-dependent control flow) cannot be batched, and the probe says so.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from ..errors import DipsearchError


class Replicas(nn.Module):
    """K networks of one architecture as one module; `replica(k)` gives replica k back as a plain network."""

    def __init__(self, nets: Sequence[nn.Module]):
        super().__init__()
        if not nets:
            raise DipsearchError("replicas: at least one network is needed")
        check_same_architecture(nets)
        params, buffers = stack_module_state(list(nets))
        # The template runs on the meta device: its own tensors are never used, only its forward code.
        self.template = [copy.deepcopy(nets[0]).to("meta")]  # a list: not a submodule, no tensors of its own
        self.param_names, self.buffer_names = list(params), list(buffers)
        self.stacked = nn.ParameterList(nn.Parameter(params[name].detach().clone()) for name in self.param_names)
        for i, name in enumerate(self.buffer_names):
            self.register_buffer(f"buffer_{i}", buffers[name].clone())
        self.count = len(nets)

    def stacked_buffers(self) -> list[Tensor]:
        return [getattr(self, f"buffer_{i}") for i in range(len(self.buffer_names))]

    def forward(self, x: Tensor) -> Tensor:
        template = self.template[0]
        params_names, buffer_names = self.param_names, self.buffer_names

        def one(params: tuple[Tensor, ...], buffers: tuple[Tensor, ...], inp: Tensor) -> Tensor:
            state = {**dict(zip(params_names, params)), **dict(zip(buffer_names, buffers))}
            return functional_call(template, state, (inp,))

        return vmap(one)(tuple(self.stacked), tuple(self.stacked_buffers()), x)

    def probe(self, x: Tensor) -> None:
        """Run one forward pass on copies of the buffers; raise DipsearchError when the network cannot be batched."""
        template = self.template[0]
        buffers = tuple(b.clone() for b in self.stacked_buffers())
        names = [*self.param_names, *self.buffer_names]

        def one(params: tuple[Tensor, ...], bufs: tuple[Tensor, ...], inp: Tensor) -> Tensor:
            return functional_call(template, dict(zip(names, (*params, *bufs))), (inp,))

        try:
            with torch.no_grad():
                vmap(one)(tuple(self.stacked), buffers, x)
        except RuntimeError as err:
            reason = str(err).strip().splitlines()[0]
            raise DipsearchError(
                f"this network cannot be batched as replicas ({type(template).__name__}): {reason}; "
                "fit the replicas one after another instead"
            ) from None

    def replica(self, k: int) -> nn.Module:
        """Replica k as a plain network on the replicas' device (weights and buffers copied)."""
        net = copy.deepcopy(self.template[0]).to_empty(device=self.stacked[0].device)
        net.load_state_dict(self.replica_state(k))
        return net

    def select(self, keep: Sequence[int]) -> Replicas:
        """The replicas `keep` (indices, in that order) as a batch of their own: copies of their weights and buffers."""
        index = torch.tensor(list(keep), device=self.stacked[0].device)
        out = Replicas.__new__(Replicas)
        nn.Module.__init__(out)
        out.template, out.param_names, out.buffer_names = self.template, self.param_names, self.buffer_names
        out.stacked = nn.ParameterList(nn.Parameter(p.detach().index_select(0, index).clone()) for p in self.stacked)
        for i, buffer in enumerate(self.stacked_buffers()):
            out.register_buffer(f"buffer_{i}", buffer.index_select(0, index).clone())
        out.count = len(index)
        return out

    def replica_state(self, k: int) -> dict[str, Tensor]:
        """Replica k's state dict (detached copies)."""
        values = [*(p[k] for p in self.stacked), *(b[k] for b in self.stacked_buffers())]
        return {name: v.detach().clone() for name, v in zip([*self.param_names, *self.buffer_names], values)}


def check_same_architecture(nets: Sequence[nn.Module]) -> None:
    """Replicas must share one architecture: the same layers, tensor names and shapes."""
    first = nets[0]
    layout = _layout(first)
    for k, net in enumerate(nets[1:], start=1):
        other = _layout(net)
        if other != layout:
            diff = next((a, b) for a, b in zip([*layout, None], [*other, None]) if a != b)
            raise DipsearchError(
                f"replicas must share one architecture, but replica {k} differs from replica 0 at "
                f"{diff[1] if diff[1] is not None else 'its end'} (replica 0: {diff[0]})"
            )


def _layout(net: nn.Module) -> list[Any]:
    modules = [(name, type(m).__name__) for name, m in net.named_modules()]
    tensors = [(name, tuple(t.shape), t.dtype) for name, t in net.state_dict().items()]
    return [*modules, *tensors]


def build_replicas(spec: Any, out_channels: int, seeds: Sequence[int]) -> Replicas:
    """The network of `spec` once per seed (replica k: what a fit seeded seeds[k] builds), batched."""
    from . import family_of

    family = family_of(spec)
    nets = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            nets.append(family.build(out_channels))
    return Replicas(nets)
