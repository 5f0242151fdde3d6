"""Denoising: the observation is the image plus noise; the operator is the identity."""

from __future__ import annotations

from typing import ClassVar

from torch import nn

from ..errors import ArgumentError
from .base import Built, Task, TaskInputs, register_task
from .problem import check_same_shape


class Denoise(Task):
    name = "denoise"
    title = "denoising"
    description = "denoise (default)"
    noise_by_default = True
    identity = True
    demo: ClassVar[bool] = True

    def build(self, inputs: TaskInputs) -> Built:
        check_same_shape(inputs.clean, inputs.observed)
        observed = inputs.observed
        if inputs.synthetic:
            observed = inputs.noisy(inputs.clean)
        elif not inputs.level_stated:
            inputs.meta.update(noise=None, level=None)  # a given observation's noise is unknown unless stated
        return Built(observed, tuple(observed.shape[1:]), nn.Identity(), inputs.clean)


def check_demo(task: Task) -> None:
    if not task.demo:
        raise ArgumentError("{demo} is a denoising demo; drop {task} or use {task:denoise}")


register_task(Denoise())
