"""`--stop auto`: the detector recommended for a task and noise type, from the cross-architecture benchmark.

Scripts name "auto" instead of a detector, so that they follow the recommendation when the benchmark moves it.
"""

from __future__ import annotations

from ..tasks import Problem

AUTO = "auto"

# Cross-architecture benchmark (docs/guide/stopping-across-networks.md): EMV under its progress rule had the
# smallest median gap with no premature stop on every noise type measured, on the seed network and on random
# candidates alike. SURE is left out on purpose: it doubles the fit's cost and needs Gaussian noise.
RECOMMENDED: dict[str, str] = {"gaussian": "emv", "poisson": "emv", "impulse": "emv", "speckle": "emv"}
FALLBACK = "emv"  # tasks other than denoising (inpainting, super-resolution): no noise model to lean on


def recommend(task: str, noise: str | None = None) -> str:
    """The detector name `auto` stands for on this task and noise type."""
    return RECOMMENDED.get(noise, FALLBACK) if task == "denoise" else FALLBACK


def resolve(name: str, problem: Problem) -> str:
    """The detector to run for `name` on `problem`: the recommendation for "auto", else `name` itself."""
    return recommend(problem.task, problem.meta.get("noise")) if name == AUTO else name
