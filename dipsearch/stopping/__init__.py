"""Early stopping without ground truth: detectors, rules, the fit hook and the stopping benchmark.

hook = StoppingHook.online(make_detector("wmv"))        # or StoppingHook([WMV(), EMV(), ...]) to record
result = fit(hook.prepare(problem), spec, config, [hook])
result.summary_extra["stopped_iter"], result.extras["images"]["output_stopped"]
replay(result.trace, WMV().rule(patience=500))           # offline, no refit
"""

from ..lazy import lazy_exports

# Names are imported on first use: StopSpec (spec.py) is read by light modules (the search spec, the command
# line) that must not load torch with the detectors.
_NAMES = {
    **dict.fromkeys(
        ("DETECTORS", "EMV", "WMV", "Detector", "Holdout", "Spectral", "Sure", "estimate_sigma", "make_detector"),
        "detectors",
    ),
    **dict.fromkeys(("StoppingHook", "prepare_problem"), "hook"),
    **dict.fromkeys(
        ("Decision", "FixedRule", "PatienceRule", "PlateauRule", "ProgressRule", "Rule", "replay"), "rules"
    ),
    **dict.fromkeys(("auto_hook", "recommend"), "auto"),
    "StopSpec": "spec",
}

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
    "StopSpec",
    "StoppingHook",
    "Sure",
    "estimate_sigma",
    "make_detector",
    "prepare_problem",
    "replay",
]


__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
