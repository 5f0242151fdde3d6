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
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .errors import ArgumentError, DipsearchError
from .families import Family, family_of
from .fit import FitConfig, FitHook, FitResult, StepState, resolve_device
from .metrics import accumulator, ssim_tensor
from .tasks import Problem

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
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast):
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


class Engine:
    """One DIP fit of `spec` (any network family) under `config`, with the seams of `parts`."""

    def __init__(self, spec: Any, config: FitConfig | None = None, parts: FitParts | None = None):
        self.spec, self.config, self.parts = spec, config or FitConfig(), parts or FitParts()
        self.family = family_of(spec)

    def run(self, problem: Problem, hooks: Iterable[FitHook] = ()) -> FitResult:
        hooks, config, family = list(hooks), self.config, self.family
        from .fit import check_size  # fit.py is this engine's front end

        check_size(problem, self.spec)
        device = resolve_device(config.device)
        check_fast_settings(config, device)
        channels, height, width = problem.image_shape
        learner = Learner.create(self.spec, channels, config, device, self.parts)
        generator = torch.Generator().manual_seed(config.seed)
        make = self.parts.input or (lambda fam, h, w, gen: fam.make_input(h, w, config.input_scale, gen))
        z = make(family, height, width, generator).to(device)
        if config.channels_last:
            z = z.contiguous(memory_format=torch.channels_last)
        noise_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
        problem = problem.to(device)
        clean = problem.clean
        loss_terms = list(self.parts.losses)

        for hook in hooks:
            hook.on_start(problem, self.spec, config)

        on_cpu = device.type == "cpu"
        check_each_step = config.finite_check == "step" or (config.finite_check == "auto" and on_cpu)
        metric_dtype = accumulator(device)

        def flushed(rows: list[dict[str, Any]]) -> None:
            for hook in hooks:
                hook.on_flush(rows)

        trace = Trace(config.trace_every, metric_dtype, flushed)
        clean_m = clean.to(metric_dtype) if clean is not None else None
        ema = out = None
        guard = _Guard(config)
        stopped_by = None
        start = time.perf_counter()
        for step in range(1, config.iters + 1):
            net_input = z
            if config.reg_noise_std > 0:
                net_input = z + config.reg_noise_std * torch.randn(z.shape, generator=noise_gen, device=device)
            learner.optimizer.zero_grad(set_to_none=True)
            out_step = learner.output(net_input, height, width)
            loss = problem.data_loss(out_step)
            for term in loss_terms:
                loss = loss + term(out_step, problem)
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

            learner.update(loss, step, hooks)
            out = out_step.detach()
            ema = out.clone() if ema is None else ema.mul_(config.ema_decay).add_(out, alpha=1 - config.ema_decay)
            guard.keep(step, out, ema)
            record: dict[str, Any] = {"step": step, "loss": loss_value}
            if clean is not None and config.metrics_every and (step % config.metrics_every == 0 or step == 1):
                record["psnr"] = Lazy((out.to(metric_dtype) - clean_m).pow(2).mean(), mse_to_psnr)
                record["psnr_ema"] = Lazy((ema.to(metric_dtype) - clean_m).pow(2).mean(), mse_to_psnr)
                if config.ssim_every and (step % config.ssim_every == 0 or step == 1):
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
            device=str(device),
            restores=len(guard.restore_steps),
            stopped_by=stopped_by,
            restore_steps=guard.restore_steps,
            restored_to=guard.saved_step if guard.restored_last else None,
        )
        for hook in hooks:
            hook.on_end(result)
        return result


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

    def restore(self, learner: Learner, out: Tensor | None, ema: Tensor | None, step: int):
        self.restore_steps.append(step)
        self.restored_last = True
        if self.snapshot is None:  # nothing good yet (step 1 failed): keep trying from the initial weights
            return out, ema
        learner.restore(self.snapshot)
        if self.kept is None:
            return out, ema
        return self.kept[0], self.kept[1].clone()
