"""The one DIP fitting loop. Everything else (search candidates, stopping, pruning, progress) is a hook.

fit() fixes a random input z, then for each step feeds z + N(0, sigma_p^2) through the network, takes an
Adam step on the problem's data loss, keeps an exponential moving average of the outputs, and guards
against divergence by restoring the last good parameters.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, fields
from typing import Any, Iterable

import torch
import torch.nn.functional as F

from .arch import ArchSpec, build_net, count_params
from .errors import DipsearchError
from .metrics import psnr, ssim
from .tasks import Problem


@dataclass
class FitConfig:
    iters: int = 2400
    lr: float = 0.01
    reg_noise_std: float = 1 / 30
    input_scale: float = 0.1
    ema_decay: float = 0.99
    seed: int = 0
    device: str = "auto"
    ssim_every: int = 100  # SSIM is costly (CPU, skimage): only every k steps; 0 = never
    guard_every: int = 50
    guard_drop_db: float = 5.0

    def __post_init__(self) -> None:
        checks = [
            (self.iters >= 1, f"iters must be >= 1, got {self.iters}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.reg_noise_std >= 0, f"reg_noise_std must be >= 0, got {self.reg_noise_std}"),
            (0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}"),
            (self.ssim_every >= 0, f"ssim_every must be >= 0, got {self.ssim_every}"),
            (self.guard_every >= 1, f"guard_every must be >= 1, got {self.guard_every}"),
        ]
        for ok, message in checks:
            if not ok:
                raise DipsearchError(f"fit settings: {message}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def updated(self, **changes: Any) -> "FitConfig":
        return FitConfig(**{**self.to_dict(), **changes})


@dataclass
class StepState:
    """What a hook sees after each step. Hooks may add columns to `record` (this step's trace row)."""

    step: int  # 1-based: the number of Adam steps taken so far
    out: torch.Tensor  # this step's output, cropped to the image, detached, on the fit device
    ema: torch.Tensor
    loss: float
    problem: Problem
    record: dict[str, float]
    net: torch.nn.Module  # for hooks that need an extra forward pass (e.g. SURE's divergence probe)
    net_input: torch.Tensor  # the input fed this step: z plus this step's noise (padded size; crop outputs)


class FitHook:
    """Base class of fit hooks: override what you need. on_step returns True to stop the fit."""

    name = "hook"

    def on_start(self, problem: Problem, spec: ArchSpec, config: FitConfig) -> None:
        pass

    def on_step(self, state: StepState) -> bool | None:
        return None

    def on_end(self, result: "FitResult") -> None:
        pass


@dataclass
class FitResult:
    output: torch.Tensor  # last step's output (CPU, 1xCxHxW)
    ema: torch.Tensor
    peak: torch.Tensor | None  # the output at the best true PSNR, when a clean image is known
    trace: list[dict[str, float]]
    iters_run: int
    seconds: float
    params: int
    device: str
    restores: int = 0  # how often the divergence guard restored parameters
    stopped_by: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # hooks put their own results here
    summary_extra: dict[str, Any] = field(default_factory=dict)

    def summary(self, problem: Problem) -> dict[str, Any]:
        out: dict[str, Any] = {"iters_run": self.iters_run, "seconds": round(self.seconds, 3), "params": self.params}
        if problem.clean is not None:
            clean = problem.clean.cpu()
            out["psnr_observed"] = baseline_psnr(problem)
            out["psnr_final"] = psnr(self.output, clean)
            out["psnr_ema"] = psnr(self.ema, clean)
            peak_row = max(self.trace, key=lambda r: r["psnr"])
            out["psnr_peak"] = peak_row["psnr"]
            out["iter_peak"] = int(peak_row["step"])
        out["restores"] = self.restores
        out["device"] = self.device
        if self.stopped_by:
            out["stopped_by"] = self.stopped_by
        out.update(self.summary_extra)
        return out


def baseline_psnr(problem: Problem) -> float:
    """PSNR of the observation itself (bicubic-upsampled for super-resolution) against the clean image."""
    observed = problem.observed.cpu()
    clean = problem.clean.cpu()
    if observed.shape[-2:] != clean.shape[-2:]:
        observed = F.interpolate(observed, size=clean.shape[-2:], mode="bicubic", align_corners=False).clamp(0, 1)
    return psnr(observed, clean)


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA, then MPS, then CPU; anything else must be a device torch knows and has."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DipsearchError(f"unknown device {name!r}; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DipsearchError(f"device {name!r} asked for, but this torch build sees no CUDA GPU; use --device cpu")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise DipsearchError(f"device {name!r} asked for, but MPS is not available here; use --device cpu")
    return device


def make_input(spec: ArchSpec, height: int, width: int, scale: float, generator: torch.Generator) -> torch.Tensor:
    if spec.input_kind == "meshgrid":
        ys = torch.linspace(0, 1, height).view(1, 1, height, 1).expand(1, 1, height, width)
        xs = torch.linspace(0, 1, width).view(1, 1, 1, width).expand(1, 1, height, width)
        return torch.cat([xs, ys], dim=1).contiguous()
    return torch.rand(1, spec.input_depth, height, width, generator=generator) * scale


def padded_size(size: int, multiple: int) -> int:
    return -(-size // multiple) * multiple


def min_size(spec: ArchSpec) -> int:
    """The smallest image side this hourglass can fit.

    Batch norm at the deepest level needs more than one pixel (side >= 2^(depth+1)), and a reflection
    pad must be smaller than the map it pads: level i's second conv pads (k-1)//2 on a 1/2^(i+1) map.
    The NAS-DIP upsampling cell's op pads at most 3 (kernel 7) on a map of at least 1/2^(depth-1), which
    the first bound already covers; cross-scale skips resize their sources, so they add no constraint.
    """
    need = 2 * spec.size_multiple
    if spec.pad == "reflection":
        for i, k in enumerate(spec.k_down):
            need = max(need, 2 ** (i + 1) * ((k - 1) // 2 + 1))
    return need


def check_size(problem: Problem, spec: ArchSpec) -> None:
    _, h, w = problem.image_shape
    need = min_size(spec)
    if h < need or w < need:
        raise DipsearchError(
            f"the image is {h}x{w} px but an hourglass of depth {spec.depth} with kernels {list(spec.k_down)} needs "
            f"at least {need}x{need} px; use a larger image or a space/architecture with fewer levels"
        )


def fit(problem: Problem, spec: ArchSpec, config: FitConfig = FitConfig(), hooks: Iterable[FitHook] = ()) -> FitResult:
    """Fit the hourglass of `spec` to `problem`. Deterministic on CPU for a fixed config.seed."""
    hooks = list(hooks)
    check_size(problem, spec)
    device = resolve_device(config.device)
    channels, height, width = problem.image_shape
    ph, pw = padded_size(height, spec.size_multiple), padded_size(width, spec.size_multiple)

    # Seed locally so that a fit never disturbs the caller's random state (searchers rely on theirs).
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = build_net(spec, channels).to(device)
    generator = torch.Generator().manual_seed(config.seed)
    z = make_input(spec, ph, pw, config.input_scale, generator).to(device)
    noise_gen = torch.Generator(device=device).manual_seed(config.seed + 1)
    problem = problem.to(device)
    clean = problem.clean
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr)

    for hook in hooks:
        hook.on_start(problem, spec, config)

    trace: list[dict[str, float]] = []
    ema = None
    out = None
    best_psnr, peak = -math.inf, None
    saved = {k: v.detach().clone() for k, v in net.state_dict().items()}
    last_guard_psnr: float | None = None
    restores = 0
    stopped_by = None
    start = time.perf_counter()
    step = 0
    for step in range(1, config.iters + 1):
        net_input = z
        if config.reg_noise_std > 0:
            net_input = z + config.reg_noise_std * torch.randn(z.shape, generator=noise_gen, device=device)
        optimizer.zero_grad(set_to_none=True)
        out_full = net(net_input)
        out_step = out_full[:, :, :height, :width]
        loss = problem.data_loss(out_step)
        loss_value = float(loss.item())

        if not math.isfinite(loss_value):
            net.load_state_dict(saved)
            restores += 1
            continue
        if step % config.guard_every == 0:
            guard_psnr = problem.observed_psnr(out_step.detach())
            if last_guard_psnr is not None and guard_psnr < last_guard_psnr - config.guard_drop_db:
                net.load_state_dict(saved)
                restores += 1
                continue
            last_guard_psnr = guard_psnr
            saved = {k: v.detach().clone() for k, v in net.state_dict().items()}

        loss.backward()
        optimizer.step()

        out = out_step.detach()
        ema = out.clone() if ema is None else ema.mul_(config.ema_decay).add_(out, alpha=1 - config.ema_decay)
        record: dict[str, float] = {"step": step, "loss": loss_value}
        if clean is not None:
            record["psnr"] = psnr(out, clean)
            record["psnr_ema"] = psnr(ema, clean)
            if record["psnr"] > best_psnr:
                best_psnr, peak = record["psnr"], out.clone()
            if config.ssim_every and (step % config.ssim_every == 0 or step == 1):
                record["ssim"] = ssim(out, clean)
                record["ssim_ema"] = ssim(ema, clean)
        record["seconds"] = time.perf_counter() - start
        state = StepState(step, out, ema, loss_value, problem, record, net, net_input)
        stop = False
        for hook in hooks:
            if hook.on_step(state) and not stop:
                stop, stopped_by = True, hook.name
        trace.append(record)
        if stop:
            break

    if out is None:
        raise DipsearchError("the fit produced no finite output (the loss was NaN/inf from the first step)")
    result = FitResult(
        output=out.cpu(),
        ema=ema.cpu(),
        peak=peak.cpu() if peak is not None else None,
        trace=trace,
        iters_run=int(trace[-1]["step"]),
        seconds=time.perf_counter() - start,
        params=count_params(net),
        device=str(device),
        restores=restores,
        stopped_by=stopped_by,
    )
    for hook in hooks:
        hook.on_end(result)
    return result
