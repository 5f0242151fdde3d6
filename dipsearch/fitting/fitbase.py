"""The fit's settings, hook protocol and result, and the device and size checks: what the engine, fit() and
every hook share. dipsearch.fit re-exports all of it (import from there); the engine imports it from here, so
that dipsearch.fit can import the engine with no circle between them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import torch

from ..errors import ArgumentError, DipsearchError
from ..metrics import psnr
from ..nets.arch import ArchSpec
from ..problems.problem import Problem

PRECISIONS = ("fp32", "bf16")
FINITE_CHECKS = ("auto", "step", "guard")
CUDA_GRAPH_MODES = ("auto", "on", "off")


@dataclass
class FitConfig:
    iters: int = 2400
    lr: float = 0.01
    reg_noise_std: float = 1 / 30
    input_scale: float = 0.1
    ema_decay: float = 0.99
    seed: int = 0
    device: str = "auto"
    ssim_every: int = 100  # SSIM (on the device) costs ~10 image convolutions: only every k steps; 0 = never
    guard_every: int = 50
    guard_drop_db: float = 5.0
    precision: str = "fp32"  # fp32, or bf16 autocast of the network (the loss and metrics stay float32)
    channels_last: bool = False
    compile: bool = False  # torch.compile the network (CUDA only)
    trace_every: int = 50  # trace rows stay on the device and are fetched every k steps (1: every step)
    metrics_every: int = 1  # PSNR / PSNR-EMA columns every k steps when the clean image is known; 0 = never
    finite_check: str = "auto"  # NaN check of each step's loss: "step", or only at guard steps ("guard");
    # "auto": each step on CPU (free there), guard steps elsewhere (no per-step host sync)
    cuda_graph: str = "auto"  # capture the step in a CUDA graph: "on", "off", or "auto" (CUDA, hooks allowing)

    def __post_init__(self) -> None:
        checks = [
            (self.iters >= 1, f"iters must be >= 1, got {self.iters}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (self.reg_noise_std >= 0, f"reg_noise_std must be >= 0, got {self.reg_noise_std}"),
            (0 <= self.ema_decay < 1, f"ema_decay must be in [0, 1), got {self.ema_decay}"),
            (self.ssim_every >= 0, f"ssim_every must be >= 0, got {self.ssim_every}"),
            (self.guard_every >= 1, f"guard_every must be >= 1, got {self.guard_every}"),
            (self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}"),
            (self.trace_every >= 1, f"trace_every must be >= 1, got {self.trace_every}"),
            (self.metrics_every >= 0, f"metrics_every must be >= 0, got {self.metrics_every}"),
            (self.finite_check in FINITE_CHECKS, f"finite_check must be one of {', '.join(FINITE_CHECKS)}"),
            (self.cuda_graph in CUDA_GRAPH_MODES, f"cuda_graph must be one of {', '.join(CUDA_GRAPH_MODES)}"),
        ]
        for ok, message in checks:
            if not ok:
                raise DipsearchError(f"fit settings: {message}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def updated(self, **changes: Any) -> FitConfig:
        return FitConfig(**{**self.to_dict(), **changes})


class StepState:
    """What a hook sees after each step. Hooks may add columns to `record` (this step's trace row).

    step: 1-based, the number of optimizer steps taken so far; out: this step's output, cropped to the image,
    detached, on the fit device; ema; problem; record; net (for hooks that need an extra forward pass);
    net_input: the input fed this step, z plus this step's noise (padded size; crop outputs).
    `loss` is a float; reading it fetches it from the device (a host sync on a GPU), so hooks that run every
    step should not. Values in `record` may be device scalars until the trace is flushed: use float(v).
    """

    __slots__ = ("step", "out", "ema", "_loss", "problem", "record", "net", "net_input")

    def __init__(
        self,
        step: int,
        out: torch.Tensor,
        ema: torch.Tensor,
        loss: Any,
        problem: Problem,
        record: dict[str, Any],
        net: torch.nn.Module,
        net_input: torch.Tensor,
    ):
        self.step, self.out, self.ema, self._loss = step, out, ema, loss
        self.problem, self.record, self.net, self.net_input = problem, record, net, net_input

    @property
    def loss(self) -> float:
        return float(self._loss)


class FitHook:
    """Base class of fit hooks: override what you need. on_step returns True to stop the fit.

    on_update(learner, step) runs after each optimizer step, under torch.no_grad(): the hook point for
    anything that changes the update itself (Langevin noise, weight decay); see dipsearch.fitting.loop.
    on_flush(rows) runs each time the engine fetches trace rows from the device (every config.trace_every steps,
    and once at the end): the rows' values are plain floats there, so a hook that writes them out (a logger)
    costs no host synchronisation of its own.

    When the engine captures the step in a CUDA graph (FitConfig.cuda_graph), a hook says how it can run:
      update_capturable  True when on_update only launches device work that does not depend on `step` (it is
                         recorded once and replayed); its random generators are listed by generators().
      step_feed          "live": on_step needs this step's tensors every step (the fit then runs eager);
                         "trace": on_step reads only step, loss and record, and is fed every trace_every steps
                         from the device ring buffer, in step order (the same values, later);
                         "cadence": on_step needs the live step only where wants_live(step) is True (it runs
                         right after that step; other steps do not call it).
    A hook that overrides neither on_step nor on_update never holds the capture back.
    """

    name = "hook"
    update_capturable: bool = False
    step_feed: str = "live"

    def wants_live(self, step: int) -> bool:
        """For step_feed "cadence": whether on_step needs this step live."""
        return True

    def generators(self) -> Sequence[torch.Generator]:
        """The random generators on_update draws from (a CUDA graph must know each one)."""
        return ()

    def on_start(self, problem: Problem, spec: ArchSpec, config: FitConfig) -> None:
        pass

    def on_update(self, learner: Any, step: int) -> None:
        pass

    def on_step(self, state: StepState) -> bool | None:
        return None

    def on_flush(self, rows: list[dict[str, Any]]) -> None:
        pass

    def on_end(self, result: FitResult) -> None:
        pass


@dataclass
class FitResult:
    output: torch.Tensor  # last step's output (CPU, 1xCxHxW)
    ema: torch.Tensor
    trace: list[dict[str, float]]
    iters_run: int
    seconds: float
    params: int
    device: str
    restores: int = 0  # how often the divergence guard restored parameters
    stopped_by: str | None = None
    extras: dict[str, Any] = field(default_factory=dict)  # hooks put their own results here
    summary_extra: dict[str, Any] = field(default_factory=dict)
    restore_steps: list[int] = field(default_factory=list)  # the steps at which the guard restored
    restored_to: int | None = None  # when the last guard step restored: the step whose parameters were kept

    def summary(self, problem: Problem) -> dict[str, Any]:
        out: dict[str, Any] = {"iters_run": self.iters_run, "seconds": round(self.seconds, 3), "params": self.params}
        if problem.clean is not None:
            clean = problem.clean.cpu()
            out["psnr_observed"] = baseline_psnr(problem)
            out["psnr_final"] = psnr(self.output, clean)
            out["psnr_ema"] = psnr(self.ema, clean)
            scored = [r for r in self.trace if "psnr" in r]  # metrics_every = 0 records none
            if scored:
                peak_row = max(scored, key=lambda r: r["psnr"])
                out["psnr_peak"] = peak_row["psnr"]
                out["iter_peak"] = int(peak_row["step"])
        out["restores"] = self.restores
        out["device"] = self.device
        if self.stopped_by:
            out["stopped_by"] = self.stopped_by
        out.update(self.summary_extra)
        return out


def baseline_psnr(problem: Problem) -> float:
    """PSNR of the observation read as an image (the task's naive estimate: bicubic upsampling for
    super-resolution, zero-filled for MRI) against the clean image; NaN where the task has no such reading."""
    from ..problems.base import get_task

    naive = get_task(problem.task).naive(problem.to("cpu"))
    return math.nan if naive is None else psnr(naive, problem.clean.cpu())


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
        raise ArgumentError(
            "device {name!r} asked for, but this torch build sees no CUDA GPU; use {device:cpu}", name=name
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ArgumentError("device {name!r} asked for, but MPS is not available here; use {device:cpu}", name=name)
    return device


def min_size(spec: Any) -> int:
    """The smallest side of a square image the network can fit, at the padded size it really sees."""
    from ..families import family_of

    family = family_of(spec)
    side = 1
    while family.size_error(side, side):
        side += 1
    return side


def check_size(problem: Problem, spec: Any) -> None:
    """Refuse an image the network cannot fit at the padded size it really sees (e.g. 70x52 pads to 96x64)."""
    from ..families import family_of

    _, h, w = problem.image_shape
    message = family_of(spec).size_error(h, w)
    if message:
        raise DipsearchError(message)
