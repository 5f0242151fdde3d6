"""TrainStep, one DIP training step over fixed tensors (the function a CUDA graph captures, or runs eagerly),
the Ring of device trace rows it writes, and which steps get the metric columns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..metrics import accumulator
from ..problems.problem import Problem
from .fitbase import FitConfig, FitHook
from .parts import Learner

if TYPE_CHECKING:
    from .loop import Engine


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
