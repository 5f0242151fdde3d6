"""No-reference stopping detectors: each turns the output of every step into one statistic.

A detector is small on purpose (like an Optuna pruner): `update(state)` returns this step's statistic, or None
while it warms up, and keeps whatever running state it needs on the fit's device, O(N) per step. Which step to
stop at is the job of a rule (rules.py), so one recorded statistic can be replayed under many rules.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import ArgumentError, DipsearchError
from ..fitting.fit import FitConfig, StepState
from ..metrics import accumulator
from ..nets.arch import ArchSpec
from ..problems.base import get_task
from ..problems.holdout import HeldOut
from ..problems.problem import Problem
from .rules import PatienceRule, PlateauRule, ProgressRule, Rule


class Detector:
    """One statistic per step. Subclasses set `name` and override update (and prepare/start if needed)."""

    name: ClassVar[str] = "detector"
    default_patience: ClassVar[int] = 1000
    own_image: ClassVar[bool] = False  # True when the detector returns its own image (EMV's average), not `out`
    window: int = 1  # frames one statistic spans: window-start indexing looks window - 1 steps back
    noise_models: ClassVar[tuple[str, ...] | None] = None  # the noise types it is defined for (None: any)
    noise_rule: ClassVar[str] = ""  # that rule in words, for the refusals: "SURE needs Gaussian noise"

    @classmethod
    def accepts_noise(cls, noise: str | None) -> bool:
        """Whether it applies to this noise type (None: not stated, the user vouches for it)."""
        return cls.noise_models is None or noise is None or noise in cls.noise_models

    def check(self, problem: Problem) -> None:
        """Raise DipsearchError when this detector cannot work on `problem` (e.g. SURE without Gaussian noise)."""

    def prepare(self, problem: Problem) -> Problem:
        """The problem to fit instead of `problem` (the held-out detector removes its pixels from the loss)."""
        return problem

    def start(self, problem: Problem, spec: ArchSpec, config: FitConfig) -> None:
        if self.window > config.iters:
            raise DipsearchError(
                f"{self.name}: the window ({self.window} steps) is larger than the run ({config.iters} iterations); "
                "use a smaller window or more iterations"
            )

    def update(self, state: StepState) -> float | None:
        raise NotImplementedError

    def image(self, state: StepState, lag: int = 0) -> Tensor:
        """The image this detector would return at this step (lag > 0: that many steps back, WMV only)."""
        if lag:
            raise DipsearchError(f"{self.name} keeps no past frames; window-start indexing needs a windowed detector")
        return state.out

    def rule(self, patience: int | None = None, delta: float = 0.0, indexing: str = "end") -> Rule:
        return PatienceRule(
            f"stat_{self.name}",
            self.default_patience if patience is None else patience,
            delta,
            indexing,
            self.window,
        )

    def progress_rule(
        self, settle: float = 0.5, ratio: float = 0.5, floor: int = 200, delta: float = 0.0, image: str | None = None
    ) -> Rule:
        """The rule whose thresholds follow this fit's own statistic and pace (rules.ProgressRule)."""
        return ProgressRule(f"stat_{self.name}", settle, ratio, floor, delta, image)


class WMV(Detector):
    """ES-WMV (Wang et al. 2023): variance of the last W outputs, (1/W) sum ||x_i - mean||^2 / N.

    Running sums S = sum x_i and Q = sum ||x_i||^2 over a ring buffer give it in O(N) per step:
    VAR = (Q - ||S||^2 / W) / (W N). Sums are float64 so that 3000 add/subtract pairs do not drift
    (MPS has no float64: there the sums are rebuilt from the buffer once per window instead).
    """

    name = "wmv"

    def __init__(self, window: int = 100) -> None:
        if window < 2:
            raise ArgumentError("wmv: {window} must be >= 2, got {value}", value=window)
        self.window = window

    def start(self, problem: Problem, spec: ArchSpec, config: FitConfig) -> None:
        super().start(problem, spec, config)
        self.buffer: Tensor | None = None
        self.count = 0  # frames seen

    def _resum(self) -> None:
        self.sum = self.buffer.to(self.dtype).sum(0)
        self.sq = self.buffer.to(self.dtype).pow(2).sum()

    def update(self, state: StepState) -> float | None:
        x = state.out.reshape(-1)
        if self.buffer is None:
            self.dtype = torch.float32 if x.device.type == "mps" else torch.float64
            self.buffer = torch.zeros(self.window, x.numel(), device=x.device, dtype=x.dtype)
            self.sum = torch.zeros(x.numel(), device=x.device, dtype=self.dtype)
            self.sq = torch.zeros((), device=x.device, dtype=self.dtype)
        slot = self.count % self.window
        old = self.buffer[slot].to(self.dtype)
        new = x.to(self.dtype)
        self.sum += new - old  # the slot is zero while the window fills, so this is also the fill step
        self.sq += new.dot(new) - old.dot(old)
        self.buffer[slot] = x
        self.count += 1
        if self.dtype == torch.float32 and self.count % self.window == 0:
            self._resum()
        if self.count < self.window:
            return None
        var = (self.sq - self.sum.dot(self.sum) / self.window) / (self.window * x.numel())
        return max(float(var), 0.0)  # rounding can leave a tiny negative for a frozen output

    def image(self, state: StepState, lag: int = 0) -> Tensor:
        if lag == 0:
            return state.out
        if not 0 < lag < min(self.window, self.count):
            raise DipsearchError(f"wmv: cannot look {lag} steps back with a window of {self.window}")
        slot = (self.count - 1 - lag) % self.window
        return self.buffer[slot].view_as(state.out)


class EMV(Detector):
    """ES-EMV: exponential moving variance. d = x - mu, mu += a d, v = (1 - a)(v + a ||d||^2 / N).

    Its chosen image is the moving average mu (averaging removes part of the step-to-step jitter), so the
    benchmark scores it with its own PSNR column. Statistics start after `warmup` steps, as in the paper.
    """

    name = "emv"
    own_image = True

    def __init__(self, alpha: float = 0.1, warmup: int = 100) -> None:
        if not 0 < alpha < 1:
            raise DipsearchError(f"emv: alpha must be in (0, 1), got {alpha}")
        self.alpha, self.warmup = alpha, warmup

    def start(self, problem: Problem, spec: ArchSpec, config: FitConfig) -> None:
        super().start(problem, spec, config)
        if self.warmup >= config.iters:
            raise DipsearchError(f"emv: the warm-up ({self.warmup} steps) is longer than the run ({config.iters})")
        self.mu: Tensor | None = None
        self.var = 0.0

    def update(self, state: StepState) -> float | None:
        x = state.out
        if self.mu is None:
            self.mu = x.clone()
            return None
        delta = x - self.mu
        self.mu = self.mu + self.alpha * delta  # not in place: an image kept by the hook must not change
        self.var = (1 - self.alpha) * (self.var + self.alpha * float(delta.to(accumulator(delta.device)).pow(2).mean()))
        return self.var if state.step > self.warmup else None

    def image(self, state: StepState, lag: int = 0) -> Tensor:
        super().image(state, lag)
        return self.mu


class Holdout(Detector):
    """Held-out pixels: a seeded fraction of the observed pixels leaves the loss; the statistic is the output's
    MSE on them (in observation space). For denoising E[held-out MSE] = true MSE + sigma^2, so its minimum
    tracks the true one; it needs no noise model."""

    name = "holdout"
    default_patience = 500  # an MSE estimate has a U shape: patience only needs to outlast its jitter

    def __init__(self, fraction: float = 0.05, seed: int = 0) -> None:
        self.fraction, self.seed = fraction, seed
        self.held: HeldOut | None = None

    def prepare(self, problem: Problem) -> Problem:
        """The problem to fit. Pixels it already withholds at this fraction (the holdout fitness's) are the
        detector's too: a second split would take another share of the data from the fit, and the stop and the
        score would judge different pixels."""
        if problem.held_out is not None and problem.held_out.fraction == self.fraction:
            self.held = problem.held_out
            return problem
        fitted, self.held = problem.with_holdout(self.fraction, self.seed)
        return fitted

    def start(self, problem: Problem, spec: ArchSpec, config: FitConfig) -> None:
        super().start(problem, spec, config)
        if self.held is None or "holdout" not in problem.meta:
            raise DipsearchError("holdout: fit the problem returned by prepare(problem), which withholds the pixels")
        self.held = self.held.to(problem.observed.device)  # once, not a host-to-device copy every step

    def update(self, state: StepState) -> float | None:
        return float(self.held.mse(state.out, state.problem))


def estimate_sigma(image: Tensor) -> float:
    """Immerkaer's (1996) fast noise estimate: a 3x3 operator that cancels locally linear structure,
    sigma = sqrt(pi/2) / (6 (W-2)(H-2)) * sum |I * M|, averaged over channels. Biased up by texture."""
    m = torch.tensor([[1.0, -2.0, 1.0], [-2.0, 4.0, -2.0], [1.0, -2.0, 1.0]], dtype=torch.float64)
    x = image.detach().double().cpu()
    c, h, w = x.shape[1:]
    r = F.conv2d(x.reshape(c, 1, h, w), m.view(1, 1, 3, 3))
    return float(math.sqrt(math.pi / 2) * r.abs().sum() / (6 * (w - 2) * (h - 2) * c))


class Sure(Detector):
    """Stein's unbiased risk estimate of the true MSE for Gaussian noise, with a Monte-Carlo divergence.

    SURE = ||y - f(y)||^2 / M - sigma^2 + 2 sigma^2 / M * div f(y). In a standard DIP fit the output at
    step t depends on y only through training (the input is z), so the divergence must follow the whole
    training path: a twin network with the same initialisation, the same per-step input and Adam settings is
    trained in lock-step on y + eps*b, and div ~ b^T (f_twin - f) / eps. This keeps the one fitting loop and
    the standard DIP trajectory (the DIP-SURE alternative, input = y, changes the fit itself) at the price of
    a second network: twice the fit cost while SURE is on. b is drawn once per fit, which makes the
    estimate smooth over the steps; eps defaults to sigma / 2 (see start()). Caveat: the toolkit clips noisy images to [0, 1], so the noise is not
    exactly Gaussian near black and white and SURE is biased there.
    """

    name = "sure"
    default_patience = 500
    noise_models = ("gaussian",)
    noise_rule = "SURE needs Gaussian noise"

    def __init__(self, sigma: float | str | None = None, eps: float | None = None, seed: int = 0) -> None:
        if eps is not None and eps < 0:  # eps = 0 only checks the lock-step (divergence reads as 0)
            raise DipsearchError(f"sure: eps must be > 0, got {eps}")
        self.sigma_arg, self.eps, self.seed = sigma, eps, seed  # sigma on the [0, 1] scale, or "estimate"
        self.sigma: float | None = None

    def check(self, problem: Problem) -> None:
        if not get_task(problem.task).identity:
            raise DipsearchError(
                f"sure: SURE estimates the denoising error; it does not apply to task {problem.task!r}"
            )
        noise = problem.meta.get("noise")
        if not self.accepts_noise(noise):
            raise DipsearchError(
                f"sure: {self.noise_rule}, but this problem has {noise} noise; use wmv, emv or holdout"
            )
        if self.sigma_arg is None and (noise is None or problem.meta.get("level") is None):
            raise ArgumentError(
                "sure: the Gaussian noise sigma is unknown; give {level:S} (0-255 scale) or {sure_sigma:estimate}"
            )

    def start(self, problem: Problem, spec: ArchSpec, config: FitConfig) -> None:
        super().start(problem, spec, config)
        self.check(problem)
        if self.sigma_arg == "estimate":
            self.sigma = estimate_sigma(problem.observed)
        elif self.sigma_arg is not None:
            self.sigma = float(self.sigma_arg)
        else:
            self.sigma = float(problem.meta["level"]) / 255.0
        # The probe size: the divergence here runs through ~1000s of Adam steps, whose sign-like updates turn a
        # tiny perturbation into chaotic differences (eps = 1e-3 gave a correlation with the true MSE of 0.56 on
        # a 32 px test), while a probe as large as the noise leaves the linear regime. Half the noise sigma is a
        # compromise: F16 64 px, sigma 46, unclipped noise: correlation 0.998 at eps 0.1 vs 0.988 at eps 0.03.
        if self.eps is None:
            self.eps = 0.5 * self.sigma
        from ..fitting.parts import Learner, is_guard_step  # the engine imports the stopping hooks' protocol

        self.is_guard_step = is_guard_step
        device = problem.observed.device
        # The engine's own pieces, seeded as the fit's network: with eps = 0 the twin reproduces the fit bit for bit.
        self.twin = Learner.create(spec, problem.channels, config, device)
        self.config = config
        g = torch.Generator().manual_seed(self.seed + 7919)
        self.probe = torch.randn(problem.observed.shape, generator=g, dtype=problem.observed.dtype).to(device)
        self.twin_problem = replace(problem, observed=problem.observed + self.eps * self.probe)
        self.saved = self.twin.snapshot()
        self.last_step = 0

    def update(self, state: StepState) -> float | None:
        # The engine skips hooks on a step whose update its divergence guard undid: it went back to what it saved
        # at its last guard step, so the twin does the same, with the same guard steps, to stay in lock-step.
        if state.step != self.last_step + 1:
            self.twin.restore(self.saved)
        if self.is_guard_step(state.step, self.config):
            self.saved = self.twin.snapshot()  # the engine saved before this step's update, as here
        self.last_step = state.step
        self.twin.optimizer.zero_grad(set_to_none=True)
        h, w = state.out.shape[-2:]
        twin_out = self.twin.output(state.net_input, h, w)
        self.twin.update(self.twin_problem.data_loss(twin_out), state.step)
        y, x = state.problem.observed, state.out
        m = x.numel()
        diff = twin_out.detach() - x
        self.twin_gap = float(diff.abs().max())  # 0 with eps = 0: the lock-step check of the tests
        div = float((self.probe * diff).sum()) / self.eps if self.eps else 0.0
        return float((y - x).pow(2).mean()) - self.sigma**2 + 2 * self.sigma**2 * div / m


class Spectral(Detector):
    """Spectral ratio (after Shi et al., IJCV 2022): blurriness / sharpness of the output.

    Blurriness: the no-reference blur metric of Crete et al. (how much of the gradient energy survives a 9-tap
    box blur, worst direction). Sharpness: the maximum local variation (MLV) measure: largest differences to
    the 8 neighbours, sorted, exponentially rank-weighted (top 1000). Computed on the grey image, O(N) plus a
    top-k. Its rule is a plateau rule (stop when the n-step mean stops moving), not a minimum rule.
    """

    name = "spectral"

    def __init__(self, n: int = 100, eps: float = 0.01) -> None:
        self.n, self.eps = n, eps

    def start(self, problem: Problem, spec: ArchSpec, config: FitConfig) -> None:
        super().start(problem, spec, config)
        if 2 * self.n > config.iters:
            raise DipsearchError(
                f"spectral: its two windows (2 x {self.n} steps) are longer than the run ({config.iters} iterations)"
            )

    def update(self, state: StepState) -> float | None:
        return spectral_ratio(state.out)

    def rule(self, patience: int | None = None, delta: float = 0.0, indexing: str = "end") -> Rule:
        return PlateauRule(f"stat_{self.name}", self.n, self.eps)

    def progress_rule(
        self, settle: float = 0.5, ratio: float = 0.5, floor: int = 200, delta: float = 0.0, image: str | None = None
    ) -> Rule:
        raise DipsearchError("spectral: its statistic plateaus rather than reaching a minimum; it has no progress rule")


def spectral_ratio(image: Tensor, box: int = 9, top: int = 1000) -> float:
    x = image.detach().float()
    if x.shape[1] == 3:  # ITU-R BT.709 luma, as skimage's rgb2gray
        x = (x * torch.tensor([0.2125, 0.7154, 0.0721], device=x.device).view(1, 3, 1, 1)).sum(1, keepdim=True)
    x = x[:, :1]
    blur = 0.0
    for dim in (2, 3):
        kernel = torch.full((1, 1, box, 1) if dim == 2 else (1, 1, 1, box), 1.0 / box, device=x.device)
        b = F.conv2d(x, kernel)  # valid box blur along one axis
        k = box // 2
        sharp = x[:, :, k:-k, :] if dim == 2 else x[:, :, :, k:-k]
        d_f = sharp.diff(dim=dim).abs()
        d_b = b.diff(dim=dim).abs()
        total = float(d_f.sum())
        kept = float((d_f - d_b).clamp(min=0).sum())
        blur = max(blur, (total - kept) / total if total > 0 else 1.0)
    centre = x[:, :, 1:-1, 1:-1]
    h, w = centre.shape[-2:]
    shifts = [x[:, :, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    mlv = (torch.stack(shifts).amax(0) - centre).reshape(-1)
    k = min(top, mlv.numel())
    values = mlv.topk(k).values
    weights = torch.exp(-0.01 * torch.arange(1, k + 1, device=x.device, dtype=values.dtype))
    sharpness = float((values * weights).pow(2).mean().sqrt())
    return blur / max(sharpness, 1e-12)


DETECTORS: dict[str, type[Detector]] = {d.name: d for d in (WMV, EMV, Sure, Holdout, Spectral)}


def make_detector(name: str, **params: object) -> Detector:
    """A detector by name; params the detector does not take are ignored (one CLI feeds all of them)."""
    if name not in DETECTORS:
        raise DipsearchError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    cls = DETECTORS[name]
    import inspect

    accepted = inspect.signature(cls.__init__).parameters
    return cls(**{k: v for k, v in params.items() if k in accepted and v is not None})
