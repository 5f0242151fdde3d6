"""K fits of one architecture as one batched module (dipsearch.families.replicas): the replica step and
fit_replicas, the loop that trains them and reports each replica as its own FitResult."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArgumentError, DipsearchError
from ..families import family_of
from ..metrics import accumulator, ssim_tensor
from ..problems.problem import Problem
from .capture import capture_step, optimizer_blockers
from .fitbase import FitConfig, FitResult, check_size, resolve_device
from .loop import Engine, _Guard
from .parts import FitParts, LossTerm, adam, check_fast_settings, is_guard_step, load_weights
from .step import Ring, metric_steps
from .trace import Lazy, Trace, mse_to_psnr


class ReplicaStep:
    """The training step of K replicas (dipsearch.families.replicas) as one function, as TrainStep is for one fit:
    forward, the summed loss's backward, the optimizer, then the outputs, their EMAs and K rows of trace scalars
    written in place into static buffers and the ring (row: loss, MSE of the output, MSE of the EMA per replica)."""

    def __init__(
        self,
        replicas: nn.Module,
        optimizer: torch.optim.Optimizer,
        z: Tensor,
        seeds: Sequence[int],
        problems: Sequence[Problem],
        config: FitConfig,
        losses: Sequence[LossTerm],
    ):
        self.replicas, self.optimizer, self.z, self.problems, self.config = replicas, optimizer, z, problems, config
        self.loss_terms = list(losses)
        self.noise_gens = [torch.Generator(device=z.device).manual_seed(seed + 1) for seed in seeds]
        _, self.height, self.width = problems[0].image_shape
        self.metric_dtype = accumulator(z.device)
        self.clean = [p.clean.to(self.metric_dtype) if p.clean is not None else None for p in problems]
        self.out: Tensor | None = None
        self.ema: Tensor | None = None
        self.ring: Ring | None = None

    def forward(self, zero_grad: bool = True) -> tuple[Tensor, Tensor]:
        """(outputs (K, 1, C, H, W), losses (K,)): replica k's noise comes from its own generator, as in its fit."""
        net_input = self.z
        if self.config.reg_noise_std > 0:
            shape = self.z.shape[1:]
            noise = torch.stack([torch.randn(shape, generator=g, device=self.z.device) for g in self.noise_gens])
            net_input = self.z + self.config.reg_noise_std * noise
        if zero_grad:
            self.optimizer.zero_grad(set_to_none=True)
        out = self.replicas(net_input)[..., : self.height, : self.width]
        losses = []
        for k, problem in enumerate(self.problems):
            loss = problem.data_loss(out[k])
            for term in self.loss_terms:
                loss = loss + term(out[k], problem)
            losses.append(loss)
        return out, torch.stack(losses)

    def update(self, losses: Tensor) -> None:
        losses.sum().backward()  # replica k's gradient is that of its own loss: nothing mixes replicas
        self.optimizer.step()

    def start_static(self, out: Tensor, losses: Tensor) -> None:
        self.out, self.ema = out.detach().clone(), out.detach().clone()
        self.ring = Ring(self.config.trace_every, 3 * len(self.problems), self.metric_dtype, out.device)
        self.ring.write(self._row(losses))

    def finish(self, out: Tensor, losses: Tensor) -> None:
        decay = self.config.ema_decay
        self.out.copy_(out.detach())
        self.ema.mul_(decay).add_(self.out, alpha=1 - decay)
        self.ring.write(self._row(losses))

    def _row(self, losses: Tensor) -> Tensor:
        zero = losses.new_zeros((), dtype=self.metric_dtype)
        values = []
        for k, clean in enumerate(self.clean):
            values.append(losses[k].detach().to(self.metric_dtype))
            for image in (self.out[k], self.ema[k]):
                values.append(zero if clean is None else (image.to(self.metric_dtype) - clean).pow(2).mean())
        return torch.stack(values)

    def __call__(self, zero_grad: bool = True) -> None:
        out, losses = self.forward(zero_grad)
        self.update(losses)
        self.finish(out, losses)


def fit_replicas(
    problems: Problem | Sequence[Problem],
    spec: Any,
    config: FitConfig | None = None,
    seeds: Sequence[int] | None = None,
    parts: FitParts | None = None,
) -> list[FitResult]:
    """K fits of one architecture trained side by side as one batched module (dipsearch.families.replicas).

    Replica k fits problems[k] (or the one problem given) from seeds[k] (default config.seed + k): its network,
    input and input noise are those of fit(problem_k, spec, config.updated(seed=seeds[k])), and so is its result
    to float tolerance (a grouped convolution sums in another order). K = len(seeds), or the number of problems.
    The problems must share one image size. `parts` may give the network, initial weights, input, optimizer
    (it must update elementwise, as Adam does) and loss terms, as for Engine. A replica whose fit the
    divergence guard would have touched (a non-finite loss, a failed guard step) is fitted again on its own by
    the engine, so that every result is what a separate fit returns. No hooks: each result is a plain fit's.
    On CUDA (config.cuda_graph "auto" or "on") the K-replica step is captured as one CUDA graph, as in Engine.
    """
    config, parts = config or FitConfig(), parts or FitParts()
    many = not isinstance(problems, Problem)
    if seeds is None:
        seeds = [config.seed + k for k in range(len(problems) if many else 1)]
    seeds = list(seeds)
    problem_list = list(problems) if many else [problems] * len(seeds)
    if not seeds or len(problem_list) != len(seeds):
        raise ArgumentError(
            "{seeds} must give one seed per problem: {count} problems, {given} seeds",
            count=len(problem_list),
            given=len(seeds),
        )
    shapes = {p.image_shape for p in problem_list}
    if len(shapes) > 1:
        raise DipsearchError(f"replicas share one network input: the images must share one size, got {sorted(shapes)}")
    if config.precision != "fp32" or config.channels_last or config.compile:
        raise ArgumentError("replicas run in fp32 without channels_last or compile; use {precision:fp32}")
    from ..families.replicas import Replicas

    for problem in problem_list:
        check_size(problem, spec)
    device = resolve_device(config.device)
    check_fast_settings(config, device)
    family = family_of(spec)
    channels, height, width = problem_list[0].image_shape
    nets = []
    for seed in seeds:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = parts.network(channels) if parts.network else family.build(channels)
        if parts.weights is not None:
            load_weights(net, parts.weights)
        nets.append(net)
    replicas = Replicas(nets).to(device)
    optimizer = (parts.optimizer or adam)(replicas.parameters(), config)
    make = parts.input or (lambda fam, h, w, gen: fam.make_input(h, w, config.input_scale, gen))
    z = torch.stack([make(family, height, width, torch.Generator().manual_seed(seed)) for seed in seeds]).to(device)
    replicas.probe(z)
    capture = device.type == "cuda" and config.cuda_graph != "off" and config.finite_check != "step"
    if capture:
        blockers = optimizer_blockers(optimizer)
        if blockers and config.cuda_graph == "on":
            raise ArgumentError("{cuda_graph:on} cannot capture this fit: {why}", why="; ".join(blockers))
        capture = not blockers
    if capture:
        for group in optimizer.param_groups:
            group["capturable"] = True
    step_fn = ReplicaStep(replicas, optimizer, z, seeds, [p.to(device) for p in problem_list], config, parts.losses)

    count = len(seeds)
    traces = [Trace(config.trace_every, step_fn.metric_dtype) for _ in seeds]
    guards = [_Guard(config) for _ in seeds]
    alone: set[int] = set()  # replicas the guard would have touched: fitted again on their own
    check_each_step = config.finite_check == "step" or (config.finite_check == "auto" and device.type == "cpu")
    graph: Callable[[], None] | None = None
    start = time.perf_counter()
    for step in range(1, config.iters + 1):
        if graph is None or is_guard_step(step, config):
            out, losses = step_fn.forward()
            if check_each_step:
                alone.update(k for k, ok in enumerate(torch.isfinite(losses).tolist()) if not ok)
            if is_guard_step(step, config):
                for k in sorted(set(range(count)) - alone):
                    if not guards[k].passes(step, losses[k], out[k].detach(), step_fn.problems[k]):
                        alone.add(k)
            if len(alone) == count:
                break
            step_fn.update(losses)
            if step_fn.out is None:
                step_fn.start_static(out, losses)
            else:
                step_fn.finish(out, losses)
            if capture and graph is None and Engine.warmup_steps <= step < config.iters:
                graph = capture_step(step_fn, optimizer, step_fn.noise_gens, config)
        else:
            graph()
        _replica_records(step_fn, traces, step, config, time.perf_counter() - start)
        if traces[0].pending == 0:
            step_fn.ring.reset()
    seconds = time.perf_counter() - start
    params = sum(p[0].numel() for p in replicas.stacked)
    results: list[FitResult] = []
    for k, seed in enumerate(seeds):
        if k in alone:
            results.append(Engine(spec, config.updated(seed=seed), parts).run(problem_list[k]))
            continue
        traces[k].flush()
        results.append(
            FitResult(
                output=step_fn.out[k].cpu().clone(),
                ema=step_fn.ema[k].cpu().clone(),
                trace=traces[k].rows,
                iters_run=int(traces[k].rows[-1]["step"]),
                seconds=seconds,
                params=params,
                device=str(device),
                summary_extra={"replicas": count},
            )
        )
    return results


def _replica_records(step_fn: ReplicaStep, traces: Sequence[Trace], step: int, config: FitConfig, seconds: float):
    """Each replica's trace row of this step, from the ring (fetched with the trace), SSIM off the graph."""
    values = step_fn.ring.row()
    for k, trace in enumerate(traces):
        record: dict[str, Any] = {"step": step, "loss": Lazy(values[3 * k])}
        clean = step_fn.clean[k]
        psnr_step, ssim_step = metric_steps(step, config, clean is not None)
        if psnr_step:
            record["psnr"] = Lazy(values[3 * k + 1], mse_to_psnr)
            record["psnr_ema"] = Lazy(values[3 * k + 2], mse_to_psnr)
            if ssim_step:
                record["ssim"] = Lazy(ssim_tensor(step_fn.out[k], clean))
                record["ssim_ema"] = Lazy(ssim_tensor(step_fn.ema[k], clean))
        record["seconds"] = seconds
        trace.add(record)
