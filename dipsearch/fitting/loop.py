"""The fitting engine: one DIP loop with seams. `dipsearch.fit()` is the simple entry point on top of it.

    Engine(spec, config, FitParts(...)).run(problem, hooks) -> FitResult

Seams (all optional; FitParts() is today's fit, bit for bit on CPU):
  network    factory out_channels -> nn.Module (default: the spec's family builds it, seeded by config.seed)
  weights    initial weights: a state dict or a file saved with torch.save (a mismatch names the first tensor)
  input      factory (family, height, width, generator) -> input tensor (default: U(0, input_scale) noise)
  optimizer  factory (parameters, config) -> torch.optim.Optimizer (default: Adam at config.lr)
  losses     extra loss terms (out, problem) -> scalar, added to the task's data loss (e.g. total_variation)
Precision (fp32 | bf16 autocast), channels_last and torch.compile (CUDA) are FitConfig settings.

The update step and its hook point: each step computes the loss, runs backward and optimizer.step(); then,
under torch.no_grad(), every hook's `on_update(learner, step)` runs. That is the place for anything that
changes the update itself: Langevin noise on the weights (SGLD / Bayesian DIP), decoupled weight decay,
weight clipping. `learner.net` and `learner.optimizer` are the live objects; change parameters in place.

The hot path makes no host synchronisation per step on a GPU: the loss and the PSNR and SSIM columns of the trace
stay on the device as `Lazy` scalars and are fetched together every `config.trace_every` steps; the
divergence guard looks only at guard steps (the first, every guard_every, the last). On CPU, where a sync
costs nothing, each step's loss is also checked for NaN, as before. Metrics are float64 on the CPU and
float32 on other devices (MPS has no float64).

The captured step (FitConfig.cuda_graph, on CUDA): TrainStep is the whole step as one function over static
buffers, ending in a device ring buffer of trace scalars; after a few eager warm-up steps it is recorded in a
torch.cuda.CUDAGraph and replayed (guard steps run it eagerly). Hooks say how they run beside it
(FitHook.update_capturable, step_feed); run_graphed(capture=False) runs the same loop as plain Python.

Replicas: fit_replicas() trains K fits of one architecture as one batched module (families.replicas).

This module holds Engine, the loop; its parts are modules beside it: parts.py (FitParts, Learner), trace.py
(Lazy, Trace), step.py (TrainStep, Ring), capture.py (the CUDA graph) and replicas.py (fit_replicas).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import ArgumentError, DipsearchError
from ..families import family_of
from ..metrics import ssim_tensor
from ..problems.problem import Problem
from .capture import capture_blockers, capture_step, optimizer_blockers
from .fitbase import FitConfig, FitHook, FitResult, StepState, check_size, resolve_device
from .parts import FitParts, Learner, check_fast_settings, is_guard_step
from .step import TrainStep, metric_steps
from .trace import Lazy, Trace, mse_to_psnr


class Engine:
    """One DIP fit of `spec` (any network family) under `config`, with the seams of `parts`."""

    warmup_steps = 3  # eager steps before the capture: cuDNN picks its kernels, Adam makes its state

    def __init__(self, spec: Any, config: FitConfig | None = None, parts: FitParts | None = None):
        self.spec, self.config, self.parts = spec, config or FitConfig(), parts or FitParts()
        self.family = family_of(spec)

    def run(self, problem: Problem, hooks: Iterable[FitHook] = ()) -> FitResult:
        """The fit. On CUDA it replays a captured step where config.cuda_graph and the hooks allow it."""
        hooks = list(hooks)
        device = resolve_device(self.config.device)
        check_fast_settings(self.config, device)
        if self.config.cuda_graph == "off" or device.type != "cuda":
            return self.run_eager(problem, hooks)
        return self.run_graphed(problem, hooks, capture=True)

    def _setup(self, problem: Problem, hooks: Sequence[FitHook]) -> tuple[Learner, Problem, Tensor]:
        config = self.config
        check_size(problem, self.spec)
        device = resolve_device(config.device)
        check_fast_settings(config, device)
        channels, height, width = problem.image_shape
        learner = Learner.create(self.spec, channels, config, device, self.parts)
        generator = torch.Generator().manual_seed(config.seed)
        make = self.parts.input or (lambda fam, h, w, gen: fam.make_input(h, w, config.input_scale, gen))
        z = make(self.family, height, width, generator).to(device)
        if config.channels_last:
            z = z.contiguous(memory_format=torch.channels_last)
        return learner, problem.to(device), z

    def run_eager(self, problem: Problem, hooks: Sequence[FitHook] = ()) -> FitResult:
        """The plain loop: the step's pieces run one after another, hooks see every step live."""
        hooks, config = list(hooks), self.config
        learner, problem, z = self._setup(problem, hooks)
        device = learner.device
        step_fn = TrainStep(self, learner, problem, z, hooks)
        clean = problem.clean

        for hook in hooks:
            hook.on_start(problem, self.spec, config)

        on_cpu = device.type == "cpu"
        check_each_step = config.finite_check == "step" or (config.finite_check == "auto" and on_cpu)
        metric_dtype = step_fn.metric_dtype

        def flushed(rows: list[dict[str, Any]]) -> None:
            for hook in hooks:
                hook.on_flush(rows)

        trace = Trace(config.trace_every, metric_dtype, flushed)
        clean_m = step_fn.clean_m
        ema = out = None
        guard = _Guard(config)
        stopped_by = None
        start = time.perf_counter()
        for step in range(1, config.iters + 1):
            net_input, out_step, loss = step_fn.forward()
            loss_value: float | Lazy = Lazy(loss.detach())
            if check_each_step:
                loss_value = float(loss.item())
                if not math.isfinite(loss_value):
                    out, ema = guard.restore(learner, out, ema, step)
                    continue
            if is_guard_step(step, config):
                if not guard.passes(step, loss, out_step.detach(), problem):
                    out, ema = guard.restore(learner, out, ema, step)
                    continue
                guard.save(learner, step)

            step_fn.update(loss, step)
            out = out_step.detach()
            ema = out.clone() if ema is None else ema.mul_(config.ema_decay).add_(out, alpha=1 - config.ema_decay)
            guard.keep(step, out, ema)
            record: dict[str, Any] = {"step": step, "loss": loss_value}
            psnr_step, ssim_step = metric_steps(step, self.config, clean is not None)
            if psnr_step:
                record["psnr"] = Lazy((out.to(metric_dtype) - clean_m).pow(2).mean(), mse_to_psnr)
                record["psnr_ema"] = Lazy((ema.to(metric_dtype) - clean_m).pow(2).mean(), mse_to_psnr)
                if ssim_step:
                    record["ssim"] = Lazy(ssim_tensor(out, clean_m))
                    record["ssim_ema"] = Lazy(ssim_tensor(ema, clean_m))
            record["seconds"] = time.perf_counter() - start
            state = StepState(step, out, ema, loss_value, problem, record, learner.net, net_input)
            stop = False
            for hook in hooks:
                if hook.on_step(state) and not stop:
                    stop, stopped_by = True, hook.name
            trace.add(record)
            if stop:
                break
        trace.flush()
        return self._result(learner, out, ema, trace, guard, stopped_by, start, hooks)

    def run_graphed(self, problem: Problem, hooks: Sequence[FitHook] = (), capture: bool = True) -> FitResult:
        """The captured loop: TrainStep replayed as a CUDA graph (capture=False: called as plain Python, the
        same loop on any device). Guard steps and the warm-up run the step eagerly, in place on the same
        buffers; "trace" hooks are fed from the ring buffer at each flush, "cadence" hooks live when they ask.

        Raises ArgumentError when config.cuda_graph is "on" and a hook or setting rules the capture out; with
        "auto" the fit then runs eager and warns once.
        """
        hooks, config = list(hooks), self.config
        blockers = capture_blockers(hooks, config)
        if not blockers:
            learner, problem, z = self._setup(problem, hooks)
            if capture and learner.device.type != "cuda":
                raise ArgumentError(
                    "{cuda_graph:on} needs a CUDA GPU; this fit runs on {where}", where=learner.device.type
                )
            blockers = optimizer_blockers(learner.optimizer)
        if blockers:
            if config.cuda_graph == "on":
                raise ArgumentError("{cuda_graph:on} cannot capture this fit: {why}", why="; ".join(blockers))
            warnings.warn(f"the fit runs eager, not as a CUDA graph: {'; '.join(blockers)}", RuntimeWarning, 2)
            return self.run_eager(problem, hooks)
        device = learner.device
        if device.type == "cuda":
            for group in learner.optimizer.param_groups:
                group["capturable"] = True  # Adam keeps its step count on the device: no host value in the graph
        step_fn = TrainStep(self, learner, problem, z, hooks)
        clean = problem.clean
        for hook in hooks:
            hook.on_start(problem, self.spec, config)

        feed = [h for h in hooks if h.step_feed == "trace" and _overrides_on_step(h)]
        live = [h for h in hooks if h.step_feed == "cadence" and _overrides_on_step(h)]

        def flushed(rows: list[dict[str, Any]]) -> None:
            for hook in hooks:
                hook.on_flush(rows)

        trace = Trace(config.trace_every, step_fn.metric_dtype, flushed)
        guard = _Guard(config)
        graph: Callable[[int], None] | None = None
        stopped_by: str | None = None
        fed = 0  # trace rows already fed to the "trace" hooks
        stop_at: int | None = None
        start = time.perf_counter()
        for step in range(1, config.iters + 1):
            eager = graph is None or is_guard_step(step, config)
            if eager:
                if not self._eager_step(step_fn, guard, step):
                    continue
                if graph is None and step >= self.warmup_steps and step < config.iters:
                    generators = [step_fn.noise_gen, *(g for hook in hooks for g in hook.generators())]
                    graph = capture_step(step_fn, learner.optimizer, generators, config) if capture else step_fn
            else:
                graph(step)
            record = self._ring_record(step_fn, step, clean)
            record["seconds"] = time.perf_counter() - start
            if any(h.wants_live(step) for h in live):
                state = StepState(step, step_fn.out, step_fn.ema, record["loss"], problem, record, learner.net, None)
                for hook in live:
                    if hook.wants_live(step) and hook.on_step(state) and stop_at is None:
                        stop_at, stopped_by = step, hook.name
            trace.add(record)
            if trace.pending == 0:
                step_fn.ring.reset()
                fed, stop_here = self._feed(feed, trace, fed, problem, learner)
                if stop_here is not None and stop_at is None:
                    stop_at, stopped_by = stop_here
            if stop_at is not None:
                break
        trace.flush()
        step_fn.ring.reset()
        fed, stop_here = self._feed(feed, trace, fed, problem, learner)
        if stop_here is not None and stop_at is None:
            stop_at, stopped_by = stop_here
        if stop_at is not None:  # a fed hook stopped at an earlier step than the loop had reached
            trace.rows = [row for row in trace.rows if row["step"] <= stop_at]
        return self._result(learner, step_fn.out, step_fn.ema, trace, guard, stopped_by, start, hooks)

    def _eager_step(self, step_fn: TrainStep, guard: _Guard, step: int) -> bool:
        """One step of the captured loop run eagerly, with the guard at guard steps; False: the guard undid it."""
        learner, config = step_fn.learner, self.config
        _, out, loss = step_fn.forward()
        if is_guard_step(step, config):
            if not guard.passes(step, loss, out.detach(), step_fn.problem):
                kept_out, kept_ema = guard.restore(learner, step_fn.out, step_fn.ema, step, in_place=True)
                if step_fn.out is not None and kept_out is not step_fn.out:
                    step_fn.out.copy_(kept_out)
                    step_fn.ema.copy_(kept_ema)
                return False
            guard.save(learner, step)
        step_fn.update(loss, step)
        if step_fn.out is None:
            step_fn.start_static(out, loss)
        else:
            step_fn.finish(out, loss)
        guard.keep(step, step_fn.out, step_fn.ema)
        if guard.kept is not None and guard.saved_step == step:
            guard.kept = (step_fn.out.clone(), guard.kept[1])  # the static buffer changes at the next step
        return True

    def _ring_record(self, step_fn: TrainStep, step: int, clean: Tensor | None) -> dict[str, Any]:
        values = step_fn.ring.row()
        record: dict[str, Any] = {"step": step, "loss": Lazy(values[0])}
        psnr_step, ssim_step = metric_steps(step, self.config, clean is not None)
        if psnr_step:
            record["psnr"] = Lazy(values[1], mse_to_psnr)
            record["psnr_ema"] = Lazy(values[2], mse_to_psnr)
            if ssim_step:  # SSIM's cadence is not every step: computed here, off the graph
                record["ssim"] = Lazy(ssim_tensor(step_fn.out, step_fn.clean_m))
                record["ssim_ema"] = Lazy(ssim_tensor(step_fn.ema, step_fn.clean_m))
        return record

    def _feed(
        self, hooks: Sequence[FitHook], trace: Trace, fed: int, problem: Problem, learner: Learner
    ) -> tuple[int, tuple[int, str] | None]:
        """Feed the fetched rows to the "trace" hooks in step order; the first stop wins."""
        stop = None
        for row in trace.rows[fed:]:
            state = StepState(int(row["step"]), None, None, row["loss"], problem, row, learner.net, None)
            for hook in hooks:
                if hook.on_step(state) and stop is None:
                    stop = (int(row["step"]), hook.name)
            if stop is not None:
                break
        return len(trace.rows), stop

    def _result(
        self,
        learner: Learner,
        out: Tensor | None,
        ema: Tensor | None,
        trace: Trace,
        guard: _Guard,
        stopped_by: str | None,
        start: float,
        hooks: Sequence[FitHook],
    ) -> FitResult:
        config = self.config
        if out is None or not trace.rows:
            raise DipsearchError("the fit produced no finite output (the loss was NaN/inf from the first step)")
        if guard.restored_last and guard.good_step is None and config.iters > 1:
            raise DipsearchError(
                f"the fit diverged (at steps {guard.restore_steps}) and never reached parameters better than the "
                f"untrained network's; lower the learning rate (lr {config.lr:g})"
            )
        result = FitResult(
            output=out.cpu(),
            ema=ema.cpu(),
            trace=trace.rows,
            iters_run=int(trace.rows[-1]["step"]),
            seconds=time.perf_counter() - start,
            params=sum(p.numel() for p in learner.net.parameters()),
            device=str(learner.device),
            restores=len(guard.restore_steps),
            stopped_by=stopped_by,
            restore_steps=guard.restore_steps,
            restored_to=guard.saved_step if guard.restored_last else None,
        )
        for hook in hooks:
            hook.on_end(result)
        return result


def _overrides_on_step(hook: FitHook) -> bool:
    return type(hook).on_step is not FitHook.on_step


class _Guard:
    """Divergence guard: parameters, optimizer state, output and EMA saved at each guard step that passes.

    A guard step fails when the loss or the PSNR against the observation is not finite, when that PSNR fell
    more than guard_drop_db below the last guard step's, or fell below the untrained network's (step 1) with at
    least 99 % of the output saturated at exactly 0 or 1 (what a huge learning rate does within a few steps): a
    dead network worse than its flat grey start has diverged. Merely being below step 1 is no divergence: the
    first few Adam steps of a healthy fit often lose a dB or two before they gain (short search fits end there).
    """

    def __init__(self, config: FitConfig):
        self.config = config
        self.snapshot: dict[str, Any] | None = None
        self.saved_step: int | None = None
        self.good_step: int | None = None  # last guard step after the first that passed
        self.last_psnr: float | None = None
        self.first_psnr: float | None = None
        self.kept: tuple[Tensor, Tensor] | None = None
        self.restore_steps: list[int] = []
        self.restored_last = False

    def passes(self, step: int, loss: Tensor, out: Tensor, problem: Problem) -> bool:
        psnr_value = problem.observed_psnr(out)
        if not (math.isfinite(float(loss.detach())) and math.isfinite(psnr_value)):
            return False
        c = self.config
        if self.last_psnr is not None and psnr_value < self.last_psnr - c.guard_drop_db:
            return False
        if self.first_psnr is not None and psnr_value < self.first_psnr:
            # A sigmoid output stuck at exactly 0 or 1 passes no gradient: the network is dead, not learning.
            saturated = float(((out == 0) | (out == 1)).float().mean())
            if saturated >= 0.99:
                return False
        if self.first_psnr is None:
            self.first_psnr = psnr_value
        elif step > 1:
            self.good_step = step
        self.last_psnr = psnr_value
        return True

    def save(self, learner: Learner, step: int) -> None:
        self.snapshot, self.saved_step, self.kept = learner.snapshot(), step, None
        self.restored_last = False

    def keep(self, step: int, out: Tensor, ema: Tensor) -> None:
        self.restored_last = False
        if step == self.saved_step:  # the output of the saved parameters, and the EMA with it
            self.kept = (out, ema.clone())

    def restore(self, learner: Learner, out: Tensor | None, ema: Tensor | None, step: int, in_place: bool = False):
        self.restore_steps.append(step)
        self.restored_last = True
        if self.snapshot is None:  # nothing good yet (step 1 failed): keep trying from the initial weights
            return out, ema
        (learner.restore_in_place if in_place else learner.restore)(self.snapshot)
        if self.kept is None:
            return out, ema
        return self.kept[0], self.kept[1].clone()
