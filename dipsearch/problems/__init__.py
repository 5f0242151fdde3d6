"""The problem layer: the Problem record, the recipe that rebuilds it (and its fingerprint), and the tasks.

A task is a small registered object (dipsearch.problems.base.Task: its operator, allowed noises, options,
checks and defaults), one module each: denoise, sr, inpaint, deblur, cs_mri, and physics (any forward operator
with `A(x)`, deepinv's among them, through `Problem.from_physics`). Everything that differs between tasks is
asked of `get_task(problem.task)`.

The names below are imported on first use: the CLI imports the recipe while it starts, before torch.
"""

from __future__ import annotations

from ..lazy import lazy_exports

_EXPORTS = {
    "Problem": "problem",
    "make_problem": "make",
    "ProblemRecipe": "recipe",
    "as_problem": "recipe",
    "problem_fingerprint": "recipe",
    "Task": "base",
    "TaskInputs": "base",
    "Built": "base",
    "OptionGroup": "base",
    "get_task": "base",
    "register_task": "base",
    "task_names": "base",
    "require_deepinv": "physics",
    "deepinv_dip": "physics",
    "generator_from_arch": "physics",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, cache=True)
