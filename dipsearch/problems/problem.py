"""The Problem record: observation, operator, optional clean image; built from files, tensors or any physics."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import DipsearchError
from ..metrics import psnr
from .holdout import HeldOut, hold_out


@dataclass
class Problem:
    task: str  # the name of a registered task (dipsearch.problems.get_task), or "physics"
    observed: Tensor  # 1xCxhxw in observation space (the LR image for sr)
    image_shape: tuple[int, int, int]  # (C, H, W) of the image to recover
    operator: nn.Module  # image space -> observation space
    mask: Tensor | None = None  # 1x1xhxw {0, 1}: observation pixels that enter the loss (None = all)
    clean: Tensor | None = None  # 1xCxHxW ground truth when known
    meta: dict[str, Any] = field(default_factory=dict)  # JSON-serialisable provenance
    artifacts: dict[str, Tensor] = field(default_factory=dict)  # images a run saves beside its output (a kernel)
    held_out: HeldOut | None = None  # the pixels the last with_holdout withheld from the loss, to score them

    @property
    def channels(self) -> int:
        return self.image_shape[0]

    def data_loss(self, x: Tensor) -> Tensor:
        """sum(m·(Ax − y)²) / (sum(m)·C): plain MSE when every pixel is known."""
        r = (self.operator(x) - self.observed) ** 2
        if self.mask is None:
            return r.mean()
        return (r * self.mask).sum() / (self.mask.sum() * r.shape[1])

    @torch.no_grad()
    def observed_psnr(self, x: Tensor) -> float:
        """PSNR of A(x) against the observation on the loss pixels (the divergence guard's signal)."""
        return psnr(self.operator(x), self.observed, self.mask)

    def to(self, device: torch.device | str) -> Problem:
        def mv(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        # Copy the operator so moving this problem leaves the original's operator where it was.
        return replace(
            self,
            observed=self.observed.to(device),
            operator=copy.deepcopy(self.operator).to(device),
            mask=mv(self.mask),
            clean=mv(self.clean),
            meta=dict(self.meta),
            held_out=None if self.held_out is None else self.held_out.to(device),
        )

    def pictures(self) -> dict[str, Tensor]:
        """The images a run folder saves about the problem: observed.png and the task's own (kernel.png, ...)."""
        from .base import get_task

        return {"observed.png": get_task(self.task).picture(self), **{f"{k}.png": v for k, v in self.artifacts.items()}}

    def with_holdout(self, fraction: float, seed: int = 0) -> tuple[Problem, HeldOut]:
        """Withhold a seeded `fraction` of the known observation pixels from the loss (see dipsearch.problems.holdout).

        Returns the copy to fit and the HeldOut that scores outputs on the held-out pixels.
        """
        return hold_out(self, fraction, seed)

    @classmethod
    def from_physics(
        cls,
        physics: Any,
        y: Tensor,
        clean: Tensor | None = None,
        *,
        image_shape: tuple[int, int, int] | None = None,
        mask: Tensor | None = None,
    ) -> Problem:
        """A problem whose data loss is ||A(f(z)) - y||² through `physics.A`: a deepinv Physics, or any object
        with an `A(x)` method (an nn.Module moves with the problem; see dipsearch.problems.physics).

        y: the measurements, 1xCxhxw (image-like measurements: blur, inpainting, MRI k-space as 2 channels, ...).
        clean: the ground truth (PSNR/SSIM of the fit) when known. image_shape: (C, H, W) of the image to
        recover; taken from `clean`, else from physics.A_adjoint(y), else y's own shape. mask: 1x1xhxw {0, 1},
        the measured entries that enter the loss (None: all). A Gaussian noise model of the physics
        (`physics.noise_model.sigma`) is recorded as the problem's noise.
        """
        from .base import get_task

        # Through the registry: physics.py builds Problems, so it is the one to import problem.py.
        return get_task("physics").from_physics(physics, y, clean, image_shape=image_shape, mask=mask)


def batched(t: Tensor | None, name: str) -> Tensor | None:
    """1xCxHxW float from 1xCxHxW or CxHxW; None stays None."""
    if t is None:
        return None
    t = t.unsqueeze(0) if t.dim() == 3 else t
    if t.dim() != 4 or t.shape[0] != 1:
        raise DipsearchError(f"{name} image must be 1xCxHxW or CxHxW, got shape {tuple(t.shape)}")
    return t.float()


def dims(t: Tensor) -> str:
    c, h, w = t.shape[1:]
    return f"{w}x{h} px ({c} channel{'s' if c > 1 else ''})"


def check_same_shape(clean: Tensor | None, observed: Tensor | None) -> None:
    if clean is not None and observed is not None and clean.shape != observed.shape:
        raise DipsearchError(f"clean image is {dims(clean)} but the observation is {dims(observed)}; they must match")
