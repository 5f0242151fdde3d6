"""Capturing the training step as a CUDA graph: what rules it out (hooks, settings, optimizer) and the capture."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import torch

from ..errors import DipsearchError
from .fitbase import FitConfig, FitHook


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
