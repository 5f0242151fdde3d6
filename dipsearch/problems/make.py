"""make_problem: a Problem from a clean image (observation synthesised, seeded) or a given observation."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import DipsearchError
from .base import TaskInputs, get_task, registry
from .noise import DEFAULT_LEVEL, check_level
from .problem import Problem, batched


def make_problem(
    task: str,
    *,
    clean: Tensor | None = None,
    observed: Tensor | None = None,
    noise: str = "gaussian",
    level: float | None = None,
    seed: int = 0,
    **options: Any,
) -> Problem:
    """Build a Problem of the registered `task` from a clean image or a given observation.

    options: the task's own settings, None where not given: factor (sr), mask / mask_ratio / mask_kind
    (inpaint), kernel / kernel_width (deblur), acceleration (cs-mri).
    """
    spec = get_task(task)
    unknown = set(options) - {f for t in registry().values() for f in t.option_fields}
    if unknown:
        raise TypeError(f"make_problem() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    clean, observed = batched(clean, "clean"), batched(observed, "observed")
    if clean is None and observed is None:
        raise DipsearchError(f"{task} needs a clean image (to synthesise the observation) or an observed image")
    meta: dict[str, Any] = {"task": task, "seed": seed, "synthetic": observed is None, "noise": None, "level": None}
    stated = level is not None
    # A noise kind named but not the default is refused even without a level: otherwise it would be dropped unsaid.
    if noise not in spec.noises and (stated or spec.noise_by_default or noise != "gaussian"):
        raise DipsearchError(f"{task} takes {' or '.join(spec.noises) or 'no'} noise, not {noise}")
    if stated or spec.noise_by_default:
        meta.update(noise=noise, level=check_level(noise, DEFAULT_LEVEL.get(noise, 0) if level is None else level))
    inputs = TaskInputs(
        clean,
        observed,
        meta["noise"],
        meta["level"],
        options,
        seed,
        torch.Generator().manual_seed(seed),
        meta,
        stated,
    )
    built = spec.build(inputs)
    meta["image_shape"] = list(built.image_shape)
    meta["observed_shape"] = list(built.observed.shape[1:])
    return Problem(
        task, built.observed, built.image_shape, built.operator, built.mask, built.clean, meta, built.artifacts
    )
