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
"""

from __future__ import annotations

import copy
import math
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArgumentError, DipsearchError
from ..families import Family, family_of
from ..metrics import accumulator, ssim_tensor
from ..problems.problem import Problem
from .fitbase import FitConfig, FitHook, FitResult, StepState, check_size, resolve_device

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


class Lazy:
    """A scalar still on the device. float(x) or formatting fetches it; the engine fetches all at once."""

    __slots__ = ("tensor", "transform", "_value")

    def __init__(self, tensor: Tensor, transform: Callable[[float], float] | None = None):
        self.tensor, self.transform, self._value = tensor, transform, None

    def resolve(self, value: float) -> float:
        self._value = self.transform(value) if self.transform else value
        return self._value

    def __float__(self) -> float:
        if self._value is None:
            self.resolve(float(self.tensor))
        return self._value

    def __format__(self, spec: str) -> str:
        return format(float(self), spec)

    def __repr__(self) -> str:
        return f"Lazy({float(self)})"


def mse_to_psnr(mse: float) -> float:
    return math.inf if mse == 0 else 10.0 * math.log10(1.0 / mse)


class Trace:
    """Trace rows whose Lazy values are fetched in one transfer every `every` rows; `on_flush` then sees them."""

    def __init__(self, every: int, dtype: torch.dtype, on_flush: Callable[[list[dict[str, Any]]], None] | None = None):
        self.every, self.dtype, self.on_flush = every, dtype, on_flush
        self.rows: list[dict[str, Any]] = []
        self.pending = 0

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        self.pending += 1
        if self.pending >= self.every:
            self.flush()

    def flush(self) -> None:
        start = len(self.rows) - self.pending
        lazies = [(row, key) for row in self.rows[start:] for key, v in row.items() if isinstance(v, Lazy)]
        if lazies:
            values = torch.stack([row[key].tensor.to(self.dtype) for row, key in lazies]).tolist()
            for (row, key), value in zip(lazies, values):
                row[key] = row[key].resolve(value) if row[key]._value is None else row[key]._value
        # A step whose loss was not finite took no valid update (the guard undid it): it leaves no row.
        self.rows[start:] = [row for row in self.rows[start:] if math.isfinite(row["loss"])]
        self.pending = 0
        if self.on_flush is not None and len(self.rows) > start:
            self.on_flush(self.rows[start:])


class TrainStep:
    """One DIP training step as plain Python over fixed tensors: the function a CUDA graph captures.

    forward() draws the input noise, runs the network and adds up the loss; update() runs backward, the
    optimizer and every hook's on_update. __call__ is the whole step of the captured loop: forward and update,
    then this step's output and the EMA written in place into static buffers and the trace's device scalars
    (loss, and with a clean image the MSE of the output and of the EMA) into the ring buffer. It makes no host
    synchronisation, so it can be recorded once and replayed; run eagerly it computes what the eager loop does.
    """

    def __init__(self, engine: Engine, learner: Learner, problem: Problem, z: Tensor, hooks: Sequence[FitHook]):
        config, device = engine.config, learner.device
        self.config, self.learner, self.problem, self.z, self.hooks = config, learner, problem, z, hooks
        _, self.height, self.width = problem.image_shape
        self.noise_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
        self.loss_terms = list(engine.parts.losses)
        self.metric_dtype = accumulator(device)
        self.clean_m = problem.clean.to(self.metric_dtype) if problem.clean is not None else None
        # Static buffers of the captured loop, made by start_static() once the first output exists.
        self.out: Tensor | None = None
        self.ema: Tensor | None = None
        self.ring: Ring | None = None

    def forward(self, zero_grad: bool = True) -> tuple[Tensor, Tensor, Tensor]:
        """(net_input, output, loss) of this step; zero_grad=False inside a graph, whose backward overwrites."""
        net_input = self.z
        if self.config.reg_noise_std > 0:
            noise = torch.randn(self.z.shape, generator=self.noise_gen, device=self.z.device)
            net_input = self.z + self.config.reg_noise_std * noise
        if zero_grad:
            self.learner.optimizer.zero_grad(set_to_none=True)
        out = self.learner.output(net_input, self.height, self.width)
        loss = self.problem.data_loss(out)
        for term in self.loss_terms:
            loss = loss + term(out, self.problem)
        return net_input, out, loss

    def update(self, loss: Tensor, step: int) -> None:
        self.learner.update(loss, step, self.hooks)

    def start_static(self, out: Tensor, loss: Tensor) -> None:
        """The static output and EMA buffers and the ring, from the first kept output (the EMA starts there)."""
        self.out, self.ema = out.detach().clone(), out.detach().clone()
        columns = 1 if self.clean_m is None else 3
        self.ring = Ring(self.config.trace_every, columns, self.metric_dtype, out.device)
        self.ring.write(self._row(loss))

    def finish(self, out: Tensor, loss: Tensor) -> None:
        """Output, EMA and the trace's scalars of an updated step, into the static buffers and the ring."""
        decay = self.config.ema_decay
        self.out.copy_(out.detach())
        self.ema.mul_(decay).add_(self.out, alpha=1 - decay)
        self.ring.write(self._row(loss))

    def _row(self, loss: Tensor) -> Tensor:
        values = [loss.detach().to(self.metric_dtype)]
        if self.clean_m is not None:
            values.append((self.out.to(self.metric_dtype) - self.clean_m).pow(2).mean())
            values.append((self.ema.to(self.metric_dtype) - self.clean_m).pow(2).mean())
        return torch.stack(values)

    def __call__(self, step: int = 0, zero_grad: bool = True) -> None:
        _, out, loss = self.forward(zero_grad)
        self.update(loss, step)
        self.finish(out, loss)


class Ring:
    """Device rows of trace scalars, written in step order by the step (a device-side write position) and read
    by the host in one transfer. Rows are views; they stay valid until reset(), after the trace is fetched."""

    def __init__(self, rows: int, columns: int, dtype: torch.dtype, device: torch.device):
        self.values = torch.zeros(rows, columns, dtype=dtype, device=device)
        self.position = torch.zeros(1, dtype=torch.long, device=device)
        self.written = 0  # the host's count of the rows written since the last reset

    def write(self, row: Tensor) -> None:
        self.values.index_copy_(0, self.position, row.unsqueeze(0))
        self.position.add_(1)

    def row(self) -> Tensor:
        """The row the last step wrote (the host counts the steps; one per call)."""
        self.written += 1
        return self.values[self.written - 1]

    def reset(self) -> None:
        self.position.zero_()
        self.written = 0


def metric_steps(step: int, config: FitConfig, has_clean: bool) -> tuple[bool, bool]:
    """Whether this step's trace row gets the PSNR columns, and whether it gets the SSIM columns."""
    psnr_step = has_clean and bool(config.metrics_every) and (step % config.metrics_every == 0 or step == 1)
    return psnr_step, psnr_step and bool(config.ssim_every) and (step % config.ssim_every == 0 or step == 1)


def capture_blockers(hooks: Sequence[FitHook], config: FitConfig) -> list[str]:
    """Why the hooks or settings of a fit rule out replaying a captured step (empty: they allow it)."""

    def overrides(hook: FitHook, method: str) -> bool:
        return getattr(type(hook), method) is not getattr(FitHook, method)

    reasons = []
    for hook in hooks:
        if overrides(hook, "on_update") and not hook.update_capturable:
            reasons.append(f"hook {hook.name!r} changes the update in a way that cannot be captured")
        if overrides(hook, "on_step") and hook.step_feed not in ("trace", "cadence"):
            reasons.append(f"hook {hook.name!r} needs the host every step")
    if config.finite_check == "step":
        reasons.append("finite_check 'step' checks the loss on the host every step")
    if config.compile:
        reasons.append("torch.compile and a captured step do not combine")
    return reasons


def capture_step(
    step: Callable[..., None],
    optimizer: torch.optim.Optimizer,
    generators: Sequence[torch.Generator],
    config: FitConfig,
) -> Callable[..., None]:
    """Record `step(zero_grad=False)` in a CUDA graph (after the warm-up steps) and return its replay, which takes
    and ignores the same arguments. A step that cannot be captured raises with cuda_graph "on"; with "auto" it
    warns and the step runs eagerly (the same function, so the same fit)."""
    optimizer.zero_grad(set_to_none=True)  # the graph's backward allocates the grads and overwrites them each replay
    graph = torch.cuda.CUDAGraph()
    for generator in generators:  # each random stream the step draws from (the input noise, SGLD's, ...)
        graph.register_generator_state(generator)
    # Capture records kernels without running them: the step it stands for runs at the first replay.
    try:
        with torch.cuda.graph(graph):
            step(zero_grad=False)
    except RuntimeError as err:  # e.g. an operation CUDA graphs do not support, in a family's forward
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        if config.cuda_graph == "on":
            raise DipsearchError(f"the training step could not be captured as a CUDA graph: {reason}") from None
        warnings.warn(f"the step could not be captured as a CUDA graph ({reason}); it runs eagerly", RuntimeWarning, 2)
        return step
    return lambda *args, **kwargs: graph.replay()


def optimizer_blockers(optimizer: torch.optim.Optimizer) -> list[str]:
    if all("capturable" in group for group in optimizer.param_groups):
        return []
    return [f"the optimizer {type(optimizer).__name__} has no capturable mode"]


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
