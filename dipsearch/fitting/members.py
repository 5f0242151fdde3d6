"""Fits of one network as one batch, each with its own hooks and its own stop: what a restore's members need.

    results = fit_members(spec, config, [Member(problem_k, seed_k, hooks_k), ...])

Member k is the fit `Engine(spec, config.updated(seed=seed_k)).run_eager(problem_k, hooks_k)` would make (its
network, input and input noise drawn from its seed as there), trained beside the others as one batched module
(families.replicas): its hooks see its own output, EMA and trace row each step, as in the eager loop, and its
stopping hook ends its fit. A member that stops keeps the result of that step and leaves the batch (the batch is
rebuilt without it: on a CPU a step costs about K times one fit, so a finished member must not be carried along;
nothing mixes replicas, so the others' steps go on as before). The batch ends when every member has stopped or the
budget is spent. A member whose fit the divergence guard would have touched (a non-finite loss, a failed guard
step) has no result here (None): its caller fits it again on its own, so that every result is a separate fit's.
Outputs agree with separate fits to float tolerance: a grouped convolution sums in another order.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..errors import ArgumentError, DipsearchError
from ..families import family_of
from ..families.replicas import Replicas
from ..metrics import accumulator, ssim_tensor
from ..problems.problem import Problem
from .fitbase import FitConfig, FitHook, FitResult, StepState, check_size, resolve_device
from .loop import _Guard
from .parts import FitParts, adam, check_fast_settings, is_guard_step, load_weights
from .step import metric_steps
from .trace import Lazy, Trace, mse_to_psnr


@dataclass
class Member:
    """One fit of the batch: the problem it fits (prepared by its hooks), its seed and its hooks."""

    problem: Problem
    seed: int
    hooks: list[FitHook] = field(default_factory=list)


def check_batchable(config: FitConfig, hooks: Sequence[FitHook]) -> None:
    """Refuse what a batch cannot run as separate fits would: reduced precision, compile, update hooks."""
    if config.precision != "fp32" or config.channels_last or config.compile:
        raise ArgumentError("replicas run in fp32 without channels_last or compile; use {precision:fp32}")
    for hook in hooks:
        if type(hook).on_update is not FitHook.on_update:
            raise DipsearchError(f"hook {hook.name!r} changes each fit's update; such fits cannot be batched")


def fit_members(
    spec: Any,
    config: FitConfig,
    members: Sequence[Member],
    parts: FitParts | None = None,
) -> list[FitResult | None]:
    """The members' results in their order; None for a member its caller must fit on its own (see the module)."""
    parts = parts or FitParts()
    if not members:
        return []
    shapes = {m.problem.image_shape for m in members}
    if len(shapes) > 1:
        raise DipsearchError(f"replicas share one network input: the images must share one size, got {sorted(shapes)}")
    for m in members:
        check_batchable(config, m.hooks)
        check_size(m.problem, spec)
    device = resolve_device(config.device)
    check_fast_settings(config, device)
    batch = _Batch(spec, config, parts, members, device)
    for m, problem in zip(members, batch.problems):
        for hook in m.hooks:  # each sees its own fit's config, as in a fit of its own (SURE's twin is seeded by it)
            hook.on_start(problem, spec, config.updated(seed=m.seed))
    return batch.run()


class _Batch:
    """The live batch: the replicas still fitting, their optimizer, inputs and noise streams, and each member's
    trace, EMA and guard; `leave` rebuilds it without the members that are done."""

    def __init__(self, spec: Any, config: FitConfig, parts: FitParts, members: Sequence[Member], device):
        self.spec, self.config, self.parts, self.members, self.device = spec, config, parts, list(members), device
        family = family_of(spec)
        channels, self.height, self.width = members[0].problem.image_shape
        nets = []
        for m in members:  # seeded as Learner.create seeds a fit's network
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(m.seed)
                net = parts.network(channels) if parts.network else family.build(channels)
            if parts.weights is not None:
                load_weights(net, parts.weights)
            nets.append(net)
        self.replicas = Replicas(nets).to(device)
        self.optimizer = (parts.optimizer or adam)(self.replicas.parameters(), config)
        make = parts.input or (lambda fam, h, w, gen: fam.make_input(h, w, config.input_scale, gen))
        inputs = [make(family, self.height, self.width, torch.Generator().manual_seed(m.seed)) for m in members]
        self.z = torch.stack(inputs).to(device)
        self.replicas.probe(self.z)
        self.noise = [torch.Generator(device=device).manual_seed(m.seed + 1) for m in members]
        self.problems = [m.problem.to(device) for m in members]
        self.metric_dtype = accumulator(device)
        self.clean = [p.clean.to(self.metric_dtype) if p.clean is not None else None for p in self.problems]
        self.params = sum(p[0].numel() for p in self.replicas.stacked)
        count = len(members)
        self.active = list(range(count))  # member index of each replica still in the batch, in batch order
        self.ema: list[Tensor | None] = [None] * count
        self.out: list[Tensor | None] = [None] * count
        self.guards = [_Guard(config) for _ in members]
        self.traces = [Trace(config.trace_every, self.metric_dtype, self._flusher(k)) for k in range(count)]
        self.results: list[FitResult | None] = [None] * count
        self.stopped_by: dict[int, str] = {}

    def _flusher(self, k: int) -> Callable[[list[dict[str, Any]]], None]:
        def flushed(rows: list[dict[str, Any]]) -> None:
            for hook in self.members[k].hooks:
                hook.on_flush(rows)

        return flushed

    def forward(self) -> tuple[Tensor, Tensor, Tensor]:
        """(inputs, outputs (K, 1, C, H, W), losses (K,)) of this step; replica k's noise from its own stream."""
        net_input = self.z
        if self.config.reg_noise_std > 0:
            shape = self.z.shape[1:]
            noise = torch.stack([torch.randn(shape, generator=self.noise[k], device=self.device) for k in self.active])
            net_input = self.z + self.config.reg_noise_std * noise
        self.optimizer.zero_grad(set_to_none=True)
        out = self.replicas(net_input)[..., : self.height, : self.width]
        losses = []
        for i, k in enumerate(self.active):
            loss = self.problems[k].data_loss(out[i])
            for term in self.parts.losses:
                loss = loss + term(out[i], self.problems[k])
            losses.append(loss)
        return net_input, out, torch.stack(losses)

    def run(self) -> list[FitResult | None]:
        config = self.config
        check_each_step = config.finite_check == "step" or (config.finite_check == "auto" and self.device.type == "cpu")
        self.start = time.perf_counter()
        for step in range(1, config.iters + 1):
            net_input, out, losses = self.forward()
            values = losses.detach().tolist() if check_each_step else None
            dropped = set()  # members the guard would have touched: fitted again on their own by the caller
            for i, k in enumerate(self.active):
                if values is not None and not math.isfinite(values[i]):
                    dropped.add(k)
                elif is_guard_step(step, config) and not self.guards[k].passes(
                    step, losses[i], out[i].detach(), self.problems[k]
                ):
                    dropped.add(k)
            # Nothing mixes replicas: a dropped member's own gradient (NaN or not) moves only its own weights.
            (losses.sum()).backward()
            self.optimizer.step()
            done = []
            for i, k in enumerate(self.active):
                if k in dropped:
                    continue
                loss_value = values[i] if values is not None else Lazy(losses[i].detach())
                if self._step(k, step, out[i].detach(), loss_value, net_input[i]):
                    done.append(k)
            for k in done:
                self._finish(k)
            if done or dropped:
                self._leave(set(done) | dropped)
            if not self.active:
                break
        for k in list(self.active):
            self._finish(k)
        return self.results

    def _step(self, k: int, step: int, out: Tensor, loss: float | Lazy, net_input: Tensor) -> bool:
        """Member k's EMA, trace row and hooks for this step, as the eager loop does them; True: it stopped."""
        config, clean = self.config, self.clean[k]
        ema = self.ema[k]
        ema = out.clone() if ema is None else ema.mul_(config.ema_decay).add_(out, alpha=1 - config.ema_decay)
        self.out[k], self.ema[k] = out, ema
        record: dict[str, Any] = {"step": step, "loss": loss}
        psnr_step, ssim_step = metric_steps(step, config, clean is not None)
        if psnr_step:
            record["psnr"] = Lazy((out.to(self.metric_dtype) - clean).pow(2).mean(), mse_to_psnr)
            record["psnr_ema"] = Lazy((ema.to(self.metric_dtype) - clean).pow(2).mean(), mse_to_psnr)
            if ssim_step:
                record["ssim"] = Lazy(ssim_tensor(out, clean))
                record["ssim_ema"] = Lazy(ssim_tensor(ema, clean))
        record["seconds"] = time.perf_counter() - self.start
        state = StepState(step, out, ema, loss, self.problems[k], record, None, net_input)
        for hook in self.members[k].hooks:
            if hook.on_step(state) and k not in self.stopped_by:
                self.stopped_by[k] = hook.name
        self.traces[k].add(record)
        return k in self.stopped_by

    def _finish(self, k: int) -> None:
        trace = self.traces[k]
        trace.flush()
        if self.out[k] is None or not trace.rows:
            raise DipsearchError("the fit produced no finite output (the loss was NaN/inf from the first step)")
        result = FitResult(
            output=self.out[k].cpu(),
            ema=self.ema[k].cpu(),
            trace=trace.rows,
            iters_run=int(trace.rows[-1]["step"]),
            seconds=time.perf_counter() - self.start,
            params=self.params,
            device=str(self.device),
            stopped_by=self.stopped_by.get(k),
            summary_extra={"replicas": len(self.members)},
        )
        for hook in self.members[k].hooks:
            hook.on_end(result)
        self.results[k] = result

    def _leave(self, gone: set[int]) -> None:
        """The batch without the members in `gone`: their replicas, optimizer state, inputs and streams dropped."""
        keep = [i for i, k in enumerate(self.active) if k not in gone]
        self.active = [self.active[i] for i in keep]
        if not keep:
            return
        old_params = list(self.replicas.stacked)
        self.replicas = self.replicas.select(keep)
        self.optimizer = _sliced_optimizer(self.optimizer, old_params, list(self.replicas.stacked), keep, self.config)
        self.z = self.z[keep].clone()


def _sliced_optimizer(
    optimizer: torch.optim.Optimizer, old: list[Tensor], new: list[Tensor], keep: list[int], config: FitConfig
) -> torch.optim.Optimizer:
    """A new optimizer of the same kind over `new`, each parameter's state the rows `keep` of the old one's: an
    elementwise optimizer (Adam) then goes on for each kept replica as it would have."""
    fresh = type(optimizer)(new, **{k: v for k, v in optimizer.defaults.items()})
    index = torch.tensor(keep, device=new[0].device)
    for before, after in zip(old, new):
        state = optimizer.state.get(before, {})
        fresh.state[after] = {
            name: value.index_select(0, index).clone() if torch.is_tensor(value) and value.dim() > 0 else value
            for name, value in state.items()
        }
    for group, old_group in zip(fresh.param_groups, optimizer.param_groups):
        group.update({k: v for k, v in old_group.items() if k != "params"})
    return fresh
