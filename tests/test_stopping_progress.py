"""The progress rule (thresholds relative to the fit's own statistic and pace), `--stop auto`, and the
premature-stop measure of the cross-architecture benchmark."""

import math

import pytest
from conftest import SMALL, synthetic_image

from dipsearch import DipsearchError, FitConfig, fit, make_problem
from dipsearch.search.spec import StopSpec
from dipsearch.stopping import EMV, PatienceRule, ProgressRule, Spectral, StoppingHook, replay
from dipsearch.stopping.auto import auto_hook, recommend
from dipsearch.stopping.bench import _quantile, is_premature


def _trace(values, start=1):
    return [{"step": start + i, "stat_x": v} for i, v in enumerate(values)]


def _bump(t: float, centre: float, width: float) -> float:
    return math.exp(-(((t - centre) / width) ** 2))


def _dip_then_late_minimum(steps: int = 2400) -> list[float | None]:
    """A slow network's EMV: quiet at first (an early dip at step 130), a rise while it learns the image, and
    its real minimum (at step 1500) above the early dip."""
    values: list[float | None] = [None] * 100
    for t in range(101, steps + 1):
        if t < 250:
            values.append(0.25 - 0.05 * _bump(t, 130, 20))  # 0.20 at the dip
        else:
            values.append(0.3 + 0.7 * _bump(t, 450, 150) + 0.2 * ((t - 1500) / 1500) ** 2)
    return values


def test_a_minimum_rule_stops_at_the_early_dip_the_progress_rule_waits_for_the_real_minimum():
    values = _dip_then_late_minimum()
    old = replay(_trace(values), PatienceRule("stat_x", patience=1000))
    assert 120 <= old.chosen <= 140  # the early dip: the failure the progress rule fixes
    new = replay(_trace(values), ProgressRule("stat_x"))
    assert abs(new.chosen - 1500) <= 5
    assert new.fired_at == new.chosen + math.ceil(0.5 * new.chosen)  # patience = half the minimum's iteration


def test_an_early_true_minimum_still_stops_near_it():
    values = [None] * 100 + [
        1.0 - 0.9 * _bump(t, 300, 400) * (t <= 300) - 0.9 * (t > 300) * _bump(t, 300, 150) for t in range(101, 2401)
    ]
    d = replay(_trace(values), ProgressRule("stat_x"))
    assert abs(d.chosen - 300) <= 2 and d.fired_at == d.chosen + 200  # the floor: 200 > 0.5 x 300


def test_never_settling_returns_the_last_iteration_unfired():
    d = replay(_trace([1.0, 0.9, 0.8, 0.7, 0.6]), ProgressRule("stat_x"))
    assert (d.chosen, d.fired) == (5, False)


def test_progress_rule_settings_are_checked():
    for kwargs, message in [
        ({"settle": 0}, r"settle must be in \(0, 1\]"),
        ({"ratio": 0}, "patience ratio must be > 0"),
        ({"floor": 0}, "patience floor must be >= 1"),
        ({"delta": 1}, r"delta must be in \[0, 1\)"),
    ]:
        with pytest.raises(DipsearchError, match=message):
            ProgressRule("stat_x", **kwargs)
    with pytest.raises(DipsearchError, match="spectral: its statistic plateaus"):
        Spectral().progress_rule()


@pytest.fixture(scope="module")
def recorded():
    """A recorded EMV trace of a real (small) fit."""
    problem = make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25, seed=0)
    hook = StoppingHook([EMV(warmup=20)])
    result = fit(problem, SMALL, FitConfig(iters=400, device="cpu", ssim_every=0), [hook])
    return [{"step": r["step"], "stat_emv": r.get("stat_emv")} for r in result.trace]


def test_thresholds_are_invariant_to_the_scale_of_the_statistic(recorded):
    rule = ProgressRule("stat_emv", floor=20)
    base = replay(recorded, rule)
    assert base.chosen is not None
    for factor in (1e-4, 3.0, 1e5):  # another image contrast or loss scale multiplies the variance
        scaled = [{**r, "stat_emv": None if r["stat_emv"] is None else r["stat_emv"] * factor} for r in recorded]
        assert replay(scaled, rule) == base


def test_patience_follows_the_pace_of_the_fit(recorded):
    """A learning rate k times smaller walks the same path k times slower: every row repeated k times. The
    progress rule stops at the same point of the path; a fixed patience does not."""
    rule = ProgressRule("stat_emv", floor=5)
    base = replay(recorded, rule)
    for k in (2, 3):
        slow = [{"step": k * (r["step"] - 1) + j + 1, "stat_emv": r["stat_emv"]} for r in recorded for j in range(k)]
        d = replay(slow, rule)
        assert d.chosen == k * (base.chosen - 1) + 1
        if base.fired:
            assert abs(d.fired_at - k * base.fired_at) <= k + 1
    fixed = PatienceRule("stat_emv", patience=30)
    base, slow = replay(recorded, fixed), replay([r for r in recorded for _ in range(2)], fixed)
    assert slow.fired_at != 2 * base.fired_at


def test_online_progress_stop_matches_replay_and_keeps_the_chosen_average(clean32):
    problem = make_problem("denoise", clean=clean32, noise="gaussian", level=25, seed=0)
    emv = EMV(warmup=20)
    rule = emv.progress_rule(floor=20, ratio=0.2)
    hook = StoppingHook.online(emv, rule)
    result = fit(problem, SMALL, FitConfig(iters=600, device="cpu", ssim_every=0), [hook])
    decision = result.extras["stopping"]["decision"]
    assert decision == replay(result.trace, rule)
    chosen = result.summary_extra["stopped_iter"]
    assert chosen == decision.chosen
    assert result.summary_extra["psnr_stopped"] == pytest.approx(result.trace[chosen - 1]["psnr_emv"], abs=1e-9)
    if decision.fired:
        assert result.iters_run == decision.fired_at


def test_stop_auto_names_the_recommended_stopping(clean32):
    for noise in ("gaussian", "poisson", "impulse", "speckle"):
        problem = make_problem("denoise", clean=clean32, noise=noise, level=None, seed=0)
        hook = StopSpec.parse("auto").hook(0, problem)
        recommended = recommend("denoise", noise)
        assert hook.lead.name == recommended.detector and hook.imager.name == (recommended.image or hook.lead.name)
    assert recommend("inpaint") == recommend("denoise", None)
    assert StopSpec.parse("auto").to_dict() == {"detector": "auto"}  # stored as auto: follows the recommendation
    # --patience replaces the progress rule with a fixed patience, the image stays the recommended one
    hook = StopSpec.parse("auto", patience=77).hook(0, problem)
    assert isinstance(hook.rule, PatienceRule) and hook.rule.patience == 77


def test_online_auto_stop_returns_the_image_it_names_at_the_chosen_iteration(clean32):
    problem = make_problem("denoise", clean=clean32, noise="gaussian", level=25, seed=0)
    hook = auto_hook(problem, seed=0)
    result = fit(hook.prepare(problem), SMALL, FitConfig(iters=500, device="cpu", ssim_every=0), [hook])
    chosen = result.summary_extra["stopped_iter"]
    assert result.extras["stopping"]["decision"] == replay(result.trace, hook.rule)
    column = f"psnr_{hook.imager.name}" if hook.imager.own_image else "psnr"
    assert result.summary_extra["psnr_stopped"] == pytest.approx(result.trace[chosen - 1][column], abs=1e-9)


def test_premature_stop_and_quantile():
    assert is_premature(chosen=150, peak=800, budget=2400)
    assert not is_premature(chosen=150, peak=290, budget=2400)  # the peak is near: not premature
    assert not is_premature(chosen=300, peak=1500, budget=2400)  # past 10 % of the budget
    assert _quantile([1.0, 2.0, 3.0, 4.0, 5.0], 0.9) == pytest.approx(4.6)


def test_a_smoothed_patience_rule_is_not_fooled_by_one_low_value_of_a_jittering_statistic():
    # a U-shaped statistic whose minimum is at 300, with one low outlier at step 40
    values = {step: (step - 300) ** 2 / 1e4 + 1.0 for step in range(1, 1201)}
    values[40] = 0.5
    trace = [{"step": step, "stat_holdout": value} for step, value in values.items()]
    raw = replay(trace, PatienceRule("stat_holdout", patience=500))
    smoothed = replay(trace, PatienceRule("stat_holdout", patience=500, smoothing=0.95))
    assert raw.chosen == 40 and raw.fired_at == 540
    assert 300 <= smoothed.chosen <= 330  # the EMA's minimum lags the statistic's by a few steps
    assert "EMA 0.95" in PatienceRule("stat_holdout", smoothing=0.95).label


def test_auto_smooths_the_held_out_error_and_a_bad_smoothing_is_refused():
    from dipsearch.stopping.detectors import Holdout

    problem = make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25)
    assert auto_hook(problem).rule.smoothing == 0.95 and auto_hook(problem, patience=50).rule.smoothing == 0.95
    assert Holdout().rule().smoothing == 0.0 and EMV().rule().smoothing == 0.0  # --stop holdout: the raw minimum
    with pytest.raises(DipsearchError, match=r"smoothing must be in \[0, 1\), got 1.0"):
        PatienceRule("stat_holdout", smoothing=1.0)
