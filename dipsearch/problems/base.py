"""Tasks as small registered objects: what a task's operator is, which noises and options it takes, its checks.

A task is one module that subclasses `Task` and registers an instance with `register_task`; everything that
differs between tasks is asked of the task object (`get_task(problem.task)`), so no other module compares a
task's name. The generic part of building a problem (batching the images, the seeded generator, the noise
level, the provenance) lives in `dipsearch.problems.make`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ArgumentError, DipsearchError
from .noise_kinds import NOISE_KINDS

if TYPE_CHECKING:
    import torch
    from torch import Tensor, nn

    from .recipe import ProblemRecipe

# The built-in tasks, one module each, imported with the registry's first use (they import torch; the CLI's
# parser does not). Their order is the order the CLI offers them in.
BUILTIN_MODULES = ("denoise", "sr", "inpaint", "deblur", "cs_mri", "physics")


@dataclass(frozen=True)
class OptionGroup:
    """Recipe fields (flags) only one task reads, and what to say when another task is given them.

    `foreign` is an ArgumentError template; `{value}` is the task that was given them.
    """

    fields: tuple[str, ...]
    foreign: str


@dataclass
class TaskInputs:
    """What make_problem hands a task's build: the images as given, the corruption settings, the seeded generator."""

    clean: Tensor | None
    observed: Tensor | None
    noise: str | None  # None: no noise is added (and none is stated)
    level: float | None
    options: dict[str, Any]  # the task's own settings (factor, mask, kernel, ...), None where not given
    seed: int
    generator: torch.Generator
    meta: dict[str, Any]  # the problem's provenance; a task adds its settings here
    level_stated: bool = False  # the caller gave the level (not the noise kind's default)

    @property
    def synthetic(self) -> bool:
        return self.observed is None

    def noisy(self, x: Tensor) -> Tensor:
        """`x` with the stated noise drawn from the problem's generator (unchanged without noise)."""
        from .noise import add_noise

        return add_noise(x, self.noise, self.level, self.generator) if self.noise else x


@dataclass
class Built:
    """A task's part of a Problem."""

    observed: Tensor
    image_shape: tuple[int, int, int]
    operator: nn.Module
    clean: Tensor | None
    mask: Tensor | None = None
    artifacts: dict[str, Tensor] = field(default_factory=dict)  # images worth saving with a run (e.g. the kernel)


class Task:
    """One restoration task: its operator and the settings around it. Subclass, then `register_task(MyTask())`."""

    name: ClassVar[str]
    title: ClassVar[str] = ""  # in words, for messages: "super-resolution"
    description: ClassVar[str] = ""
    noises: ClassVar[tuple[str, ...]] = NOISE_KINDS  # the noise kinds its observation may carry
    noise_by_default: ClassVar[bool] = False  # a synthesised observation gets the noise kind's default level
    options: ClassVar[tuple[OptionGroup, ...]] = ()
    # The operator acts pixel by pixel, so fitting every other pixel keeps the problem (screening at scale 0.5).
    pointwise: ClassVar[bool] = True
    # The observation is the image plus noise (identity operator, every pixel): SURE's setting.
    identity: ClassVar[bool] = False
    crops_observation: ClassVar[bool] = True  # --crop applies to the observation file too
    demo: ClassVar[bool] = False  # the packaged demo image poses this task
    buildable: ClassVar[bool] = True  # a recipe (files and flags) can build it
    observation_files: ClassVar[bool] = True  # an observation can be given as an image file

    @property
    def option_fields(self) -> tuple[str, ...]:
        return tuple(f for group in self.options for f in group.fields)

    def check(self, recipe: ProblemRecipe) -> None:
        """Refuse inconsistent settings of this task before any file is read (ArgumentError naming the field)."""

    def build(self, inputs: TaskInputs) -> Built:
        raise NotImplementedError

    def naive(self, problem: Any) -> Tensor | None:
        """The observation read as an estimate of the image (what "PSNR of the observation" means); None: none."""
        return problem.observed if tuple(problem.observed.shape[1:]) == tuple(problem.image_shape) else None

    def picture(self, problem: Any) -> Tensor:
        """The observation as an image a run folder saves (observed.png)."""
        return problem.observed


TASK_REGISTRY: dict[str, Task] = {}


def registry() -> dict[str, Task]:
    """The registered tasks, the built-in ones imported first."""
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{module}")
    return dict(sorted(TASK_REGISTRY.items(), key=lambda item: _builtin_rank(item[1])))


def _builtin_rank(task: Task) -> int:
    # Built-in tasks first, in BUILTIN_MODULES order, whichever module was imported first; then the others.
    module = type(task).__module__
    if module.startswith(f"{__package__}."):
        name = module.rsplit(".", 1)[-1]
        if name in BUILTIN_MODULES:
            return BUILTIN_MODULES.index(name)
    return len(BUILTIN_MODULES)


def register_task(task: Task) -> Task:
    """Add `task` to the registry under task.name (a module's last line: `register_task(MyTask())`)."""
    if not getattr(task, "name", None):
        raise DipsearchError(f"{type(task).__name__} has no name: set the class attribute `name`")
    TASK_REGISTRY[task.name] = task
    return task


def task_names(buildable_only: bool = True) -> tuple[str, ...]:
    return tuple(name for name, task in registry().items() if task.buildable or not buildable_only)


def get_task(name: str) -> Task:
    """The registered task `name`; an unknown name is an ArgumentError listing the registered ones."""
    if name not in registry():
        raise ArgumentError(
            "unknown {task} {value!r}; choose one of {choices}", value=name, choices=", ".join(task_names())
        )
    return TASK_REGISTRY[name]


def check_positive(field_name: str, value: float | None, low: float, *, inclusive: bool = True) -> None:
    """`value` >= low (or > low): an ArgumentError naming the field otherwise."""
    if value is None:
        return
    ok = value >= low if inclusive else value > low
    if not ok:
        relation = ">=" if inclusive else ">"
        raise ArgumentError("{" + field_name + "} must be " + relation + " {low}, got {value}", low=low, value=value)
