"""A toy task: recover the colours of an image from its grey (luminance) version.

The operator maps a 3-channel image to one channel by the ITU-R 601 luminance weights; DIP fits a colour image
whose luminance matches the observation, and the network's prior picks the colours.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from dipsearch.errors import DipsearchError
from dipsearch.problems.base import Built, Task, TaskInputs, register_task

WEIGHTS = (0.299, 0.587, 0.114)


class Luminance(nn.Module):
    """1x3xHxW -> 1x1xHxW."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("weights", torch.tensor(WEIGHTS).view(1, 3, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        return (x * self.weights).sum(1, keepdim=True)


class Colorize(Task):
    name = "colorize"
    title = "colourisation"
    description = "colorize = recover the colours of a grey image"
    noises = ("gaussian",)  # the only noise this toy observation may carry
    pointwise = True  # the operator acts pixel by pixel: screening on every other pixel keeps the problem

    def build(self, inputs: TaskInputs) -> Built:
        operator = Luminance()
        if inputs.synthetic:
            if inputs.clean.shape[1] != 3:
                raise DipsearchError("colorize needs a colour clean image to synthesise the grey observation")
            observed = inputs.noisy(operator(inputs.clean))
        else:
            observed = inputs.observed
            if observed.shape[1] != 1:
                observed = operator(observed)  # a grey image saved as RGB: take its luminance
        return Built(observed, (3, *observed.shape[-2:]), operator, inputs.clean)


register_task(Colorize())
