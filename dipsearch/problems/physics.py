"""Problems from any forward operator with an `A(x)` method, deepinv's `Physics` among them, and the way back:
a searched architecture as the generator of deepinv's `DeepImagePrior`.

deepinv is optional (`pip install 'dipsearch[deepinv]'`): nothing here imports it unless a function that needs
it is called; `Problem.from_physics` takes deepinv's objects without importing deepinv at all.
"""

from __future__ import annotations

import copy
import importlib
import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import ArgumentError, DipsearchError
from .base import Built, Task, TaskInputs, register_task
from .problem import Problem, batched

EXTRA = "deepinv"


def require_deepinv() -> Any:
    """The deepinv module, or one clear error naming the extra that installs it."""
    try:
        return importlib.import_module("deepinv")
    except Exception as err:  # a torchvision built for another torch fails with RuntimeError, not ImportError
        raise DipsearchError(
            f"this needs the optional package deepinv, which cannot be imported ({type(err).__name__}: {err}); "
            f"install it with: pip install 'dipsearch[{EXTRA}]' (deepinv needs a torchvision that matches your torch)"
        ) from None


class PhysicsOperator(nn.Module):
    """`physics.A` as the problem's operator. An nn.Module physics (deepinv's are) is a submodule, so it moves
    with the problem and is deep-copied with it; any other object is held as is."""

    def __init__(self, physics: Any) -> None:
        super().__init__()
        if not callable(getattr(physics, "A", None)):
            raise ArgumentError(
                "{physics} must have an A(x) method (a deepinv Physics, or any forward operator), got {value}",
                value=type(physics).__name__,
            )
        if isinstance(physics, nn.Module):
            self.physics = physics
        else:
            self.__dict__["physics"] = physics

    def forward(self, x: Tensor) -> Tensor:
        return self.physics.A(x)


def noise_of(physics: Any) -> tuple[str | None, float | None]:
    """("gaussian", sigma on the 0-255 scale) when the physics states a Gaussian noise model, else (None, None).

    deepinv's GaussianNoise keeps sigma on the [0, 1] scale (a float or a 1-element tensor).
    """
    model = getattr(physics, "noise_model", None)
    if model is None or type(model).__name__ != "GaussianNoise":
        return None, None
    sigma = getattr(model, "sigma", None)
    try:
        sigma = float(torch.as_tensor(sigma).reshape(-1)[0])
    except (TypeError, ValueError, IndexError):
        return None, None
    return ("gaussian", sigma * 255.0) if math.isfinite(sigma) else (None, None)


def problem_from_physics(
    physics: Any,
    y: Tensor,
    clean: Tensor | None = None,
    *,
    image_shape: tuple[int, int, int] | None = None,
    mask: Tensor | None = None,
) -> Problem:
    """See Problem.from_physics."""
    operator = PhysicsOperator(physics)
    if not isinstance(y, Tensor) or y.dim() != 4 or y.shape[0] != 1:
        got = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise ArgumentError(
            "{y} must be the measurements as a 1xCxHxW tensor (one image-like measurement), got {value}", value=got
        )
    y = y.detach().float()
    clean = batched(clean, "clean")
    if image_shape is None:
        image_shape = _image_shape(physics, y, clean)
    image_shape = tuple(int(d) for d in image_shape)
    if clean is not None and tuple(clean.shape[1:]) != image_shape:
        raise ArgumentError(
            "{clean} is {got} (C, H, W) but the image to recover is {want}",
            got=tuple(clean.shape[1:]),
            want=image_shape,
        )
    with torch.no_grad():
        predicted = operator(torch.zeros(1, *image_shape, device=y.device))
    if tuple(predicted.shape) != tuple(y.shape):
        raise ArgumentError(
            "{physics}.A maps a {image} image to {got}, but the observation {y} is {want}; give the measurements "
            "of this physics (or the image_shape it takes)",
            image="x".join(map(str, image_shape)),
            got=tuple(predicted.shape),
            want=tuple(y.shape),
        )
    if mask is not None:
        mask = _position_mask(mask, y)
    noise, level = noise_of(physics)
    meta = {
        "task": PHYSICS,
        "physics": type(physics).__name__,
        "synthetic": False,
        "noise": noise,
        "level": level,
        "image_shape": list(image_shape),
        "observed_shape": list(y.shape[1:]),
    }
    return Problem(PHYSICS, y, image_shape, operator, mask, clean, meta)


def _position_mask(mask: Tensor, y: Tensor) -> Tensor:
    """1x1xHxW {0, 1} from a mask of one entry per position, or per channel when every channel agrees
    (deepinv's Inpainting keeps a 1xCxHxW mask)."""
    h, w = y.shape[-2:]
    m = mask.detach().float().to(y.device)
    if m.numel() % (h * w) == 0 and m.numel() > 0:
        planes = m.reshape(-1, h, w)
        if bool((planes == planes[:1]).all()):
            return (planes[:1] > 0.5).float().view(1, 1, h, w)
        raise ArgumentError(
            "{mask} differs between channels; dipsearch's mask marks measured positions ({h}x{w}), the same for every "
            "channel",
            h=h,
            w=w,
        )
    raise ArgumentError("{mask} must have one entry per measurement position ({h}x{w})", h=h, w=w)


def _image_shape(physics: Any, y: Tensor, clean: Tensor | None) -> tuple[int, int, int]:
    if clean is not None:
        return tuple(clean.shape[1:])
    adjoint = getattr(physics, "A_adjoint", None)
    if callable(adjoint):
        with torch.no_grad():
            back = adjoint(y)
        if isinstance(back, Tensor) and back.dim() == 4:
            return tuple(back.shape[1:])
    return tuple(y.shape[1:])


PHYSICS = "physics"


class PhysicsTask(Task):
    """Problems made by Problem.from_physics: the operator comes with the problem, not from files."""

    name = PHYSICS
    title = "physics"
    description = "any forward operator with A(x), from Python"
    pointwise = False
    buildable = False
    noises = ()

    def naive(self, problem: Any) -> Tensor | None:
        adjoint = getattr(problem.operator.physics, "A_adjoint", None)
        if callable(adjoint):
            with torch.no_grad():
                back = adjoint(problem.observed)
            if isinstance(back, Tensor) and tuple(back.shape[1:]) == tuple(problem.image_shape):
                return back.clamp(0, 1)
        return super().naive(problem)

    def picture(self, problem: Any) -> Tensor:
        y = problem.observed
        return y if y.shape[1] in (1, 3) else y[:, :1]

    def build(self, inputs: TaskInputs) -> Built:
        raise ArgumentError("{task} physics is built with Problem.from_physics(physics, y), not from files")

    def from_physics(self, physics: Any, y: Tensor, clean: Tensor | None = None, **kwargs: Any) -> Problem:
        """Problem.from_physics: the task that owns these problems builds them."""
        return problem_from_physics(physics, y, clean, **kwargs)


register_task(PhysicsTask())


def deepinv_dip(net: nn.Module | str | Path, image_shape: tuple[int, int, int], iterations: int, **kwargs: Any) -> Any:
    """deepinv's `DeepImagePrior` reconstructor with a dipsearch network as its generator.

    net: an nn.Module (`dipsearch.build_net(spec, out_channels=C)`), or the path of a best_arch.toml a search
    wrote. The input depth deepinv draws its fixed noise with is the network's own. Extra keyword arguments go
    to DeepImagePrior (learning_rate, verbose, ...).
    """
    dinv = require_deepinv()
    if not isinstance(net, nn.Module):
        net = generator_from_arch(net, image_shape[0])
    return dinv.models.DeepImagePrior(
        copy.deepcopy(net), img_size=(input_depth(net), *image_shape[1:]), iterations=iterations, **kwargs
    )


def generator_from_arch(path: str | Path, channels: int) -> nn.Module:
    """A plain nn.Module from a best_arch.toml: what deepinv's DeepImagePrior takes as its generator."""
    from ..families import family_of, load_spec

    return family_of(load_spec(path)).build(out_channels=channels)


def input_depth(net: nn.Module) -> int:
    """Channels of the network's input: those of its first convolution."""
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            return module.in_channels
    raise DipsearchError(f"{type(net).__name__} has no Conv2d: its input depth is unknown")
