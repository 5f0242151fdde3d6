"""Early stopping without ground truth: detectors, rules, the fit hook and the stopping benchmark.

hook = StoppingHook.online(make_detector("wmv"))        # or StoppingHook([WMV(), EMV(), ...]) to record
result = fit(hook.prepare(problem), spec, config, [hook])
result.summary_extra["stopped_iter"], result.extras["images"]["output_stopped"]
replay(result.trace, WMV().rule(patience=500))           # offline, no refit
"""

from .detectors import DETECTORS, EMV, WMV, Detector, Holdout, Spectral, Sure, estimate_sigma, make_detector
from .hook import StoppingHook, prepare_problem
from .rules import Decision, FixedRule, PatienceRule, PlateauRule, ProgressRule, Rule, replay

__all__ = [
    "DETECTORS",
    "EMV",
    "WMV",
    "Decision",
    "Detector",
    "FixedRule",
    "Holdout",
    "PatienceRule",
    "PlateauRule",
    "ProgressRule",
    "Rule",
    "Spectral",
    "StoppingHook",
    "Sure",
    "estimate_sigma",
    "make_detector",
    "prepare_problem",
    "replay",
]
