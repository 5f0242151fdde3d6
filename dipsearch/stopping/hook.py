"""The fit hook that runs detectors: online (one detector and its rule stop the fit) or passive (many
detectors only record their statistics in the trace, for offline replay)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from ..errors import DipsearchError
from ..fitting.fit import FitConfig, FitHook, FitResult, StepState
from ..fitting.trace import Lazy
from ..metrics import psnr, ssim_tensor
from ..nets.arch import ArchSpec
from ..problems.problem import Problem
from .detectors import Detector
from .rules import Decision, Rule


class StoppingHook(FitHook):
    """Records `stat_<name>` for every detector each step; with a rule, also stops the fit.

    Online, the image of each new best is kept in memory (one tensor, replaced at the next best), so the
    stopped output is never recomputed. Detectors with their own image (EMV) also record `psnr_<name>`
    (and `ssim_<name>` on SSIM steps) when the clean image is known, so that replay can score that image.
    Call prepare(problem) and fit the problem it returns (the held-out detector withholds pixels there).
    """

    def __init__(self, detectors: Sequence[Detector], rule: Rule | None = None) -> None:
        self.detectors = list(detectors)
        names = [d.name for d in self.detectors]
        if len(set(names)) != len(names):
            raise DipsearchError(f"each detector may be recorded once, got {names}")
        self.rule = rule
        self.lead: Detector | None = None
        self.imager: Detector | None = None  # the detector whose image is returned: the lead unless the rule says
        if rule is not None:
            lead = [d for d in self.detectors if f"stat_{d.name}" == rule.stat]
            if not lead:
                raise DipsearchError(f"the rule reads {rule.stat!r} but no detector records it")
            self.lead = self.imager = lead[0]
            image = getattr(rule, "image", None)
            if image is not None:
                imager = [d for d in self.detectors if d.name == image]
                if not imager:
                    raise DipsearchError(f"the rule returns the {image} image but no {image} detector is recorded")
                self.imager = imager[0]
        self.name = f"stop:{self.lead.name}" if self.lead else "stop-recorder"

    @classmethod
    def online(cls, detector: Detector, rule: Rule | None = None) -> StoppingHook:
        return cls([detector], rule or detector.rule())

    def prepare(self, problem: Problem) -> Problem:
        for d in self.detectors:
            d.check(problem)
            problem = d.prepare(problem)
        return problem

    def on_start(self, problem: Problem, spec: ArchSpec, config: FitConfig) -> None:
        for d in self.detectors:
            d.start(problem, spec, config)
        self.tracker = self.rule.tracker() if self.rule else None
        self.kept: Tensor | None = None
        self.last_image: Tensor | None = None
        self.last_step = 0
        self.clean = problem.clean

    def on_step(self, state: StepState) -> bool:
        record = state.record
        for d in self.detectors:
            value = d.update(state)
            if value is not None:
                record[f"stat_{d.name}"] = value
            if d.own_image and self.clean is not None:
                record[f"psnr_{d.name}"] = psnr(d.image(state), self.clean)
                if "ssim" in record:
                    record[f"ssim_{d.name}"] = Lazy(ssim_tensor(d.image(state), self.clean))
        self.last_step = state.step
        if self.tracker is None:
            return False
        imager = self.imager
        self.last_image = imager.image(state)
        keep, stop = self.tracker.update(state.step, record.get(self.rule.stat))
        if keep:
            lag = state.step - self.tracker.decision(state.step).chosen
            self.kept = imager.image(state, lag).clone()
        return stop

    def on_end(self, result: FitResult) -> None:
        if self.tracker is None:
            return
        decision: Decision = self.tracker.decision(self.last_step)
        image = self.kept if self.kept is not None else self.last_image  # never fired before a first statistic
        chosen = decision.chosen if decision.chosen is not None else self.last_step
        image = image.cpu()
        result.extras.setdefault("images", {})["output_stopped"] = image
        result.extras["stopping"] = {"detector": self.lead.name, "rule": self.rule.label, "decision": decision}
        summary: dict[str, Any] = {
            "stop_detector": self.lead.name,
            "stopped_iter": chosen,
            "stop_fired": decision.fired,
        }
        if self.clean is not None:
            summary["psnr_stopped"] = psnr(image, self.clean.cpu())
        result.summary_extra.update(summary)


def prepare_problem(problem: Problem, hooks: Sequence[FitHook]) -> Problem:
    """The problem to fit, after every hook that withholds data (the held-out detector) had its say."""
    for hook in hooks:
        prepare = getattr(hook, "prepare", None)
        if prepare is not None:
            problem = prepare(problem)
    return problem
