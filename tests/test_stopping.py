"""Detectors, rules, replay and the online hook (small nets, 32 px images, few iterations)."""

import math

import numpy as np
import pytest
import torch
from conftest import SMALL, synthetic_image

from dipsearch import DipsearchError, FitConfig, Problem, fit, make_problem
from dipsearch.fitting.fit import StepState
from dipsearch.metrics import psnr
from dipsearch.scoring.fitness import HoldoutFitness
from dipsearch.stopping import (
    EMV,
    WMV,
    FixedRule,
    Holdout,
    PatienceRule,
    PlateauRule,
    Spectral,
    StoppingHook,
    Sure,
    estimate_sigma,
    make_detector,
    replay,
)
from dipsearch.stopping.detectors import spectral_ratio


def _gauss(clean, level=25, seed=0):
    return make_problem("denoise", clean=clean, noise="gaussian", level=level, seed=seed)


def _states(frames, problem):
    """Fake StepStates for detector unit tests that need no network."""
    for step, frame in enumerate(frames, 1):
        yield StepState(step, frame, frame, 0.0, problem, {}, None, None)


# ---------------------------------------------------------------- detectors without fitting


def test_wmv_running_sums_match_the_windowed_variance(clean32):
    problem = _gauss(clean32)
    gen = torch.Generator().manual_seed(0)
    frames = [clean32 + 0.05 * k / 40 * torch.randn(clean32.shape, generator=gen) for k in range(40)]
    det = WMV(window=5)
    det.start(problem, SMALL, FitConfig(iters=40))
    for state in _states(frames, problem):
        value = det.update(state)
        t = state.step
        if t < 5:
            assert value is None
            continue
        win = torch.stack(frames[t - 5 : t]).double()
        direct = ((win - win.mean(0)) ** 2).sum() / (5 * clean32.numel())
        assert value == pytest.approx(direct.item(), rel=1e-9, abs=1e-15)
        # window-start indexing looks back into the ring buffer
        assert torch.equal(det.image(state, lag=4), frames[t - 5])


def test_emv_follows_its_recurrence_and_returns_the_average(clean32):
    problem = _gauss(clean32)
    frames = [clean32 * (1 + 0.01 * k) for k in range(130)]
    det = EMV(alpha=0.1, warmup=100)
    det.start(problem, SMALL, FitConfig(iters=130))
    mu, v = frames[0].double(), 0.0
    for state in _states(frames, problem):
        value = det.update(state)
        if state.step > 1:
            d = state.out.double() - mu
            mu = mu + 0.1 * d
            v = 0.9 * (v + 0.1 * (d**2).mean().item())
        assert (value is None) == (state.step <= 100)
        if value is not None:
            assert value == pytest.approx(v, rel=1e-5)  # mu is float32
    assert torch.allclose(det.image(state).double(), mu, atol=1e-6)


def test_spectral_ratio_rises_with_blur_and_falls_with_noise():
    img = synthetic_image(64, 64)
    blurred = torch.nn.functional.avg_pool2d(img, 5, stride=1, padding=2, count_include_pad=False)
    noisy = (img + 0.1 * torch.randn(img.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    assert spectral_ratio(blurred) > spectral_ratio(img) > spectral_ratio(noisy)


def test_immerkaer_estimates_the_gaussian_sigma():
    clean = synthetic_image(64, 64)
    problem = _gauss(clean, level=25)
    assert estimate_sigma(problem.observed) == pytest.approx(25 / 255, rel=0.15)


# ---------------------------------------------------------------- rules and replay


def _trace(values):
    return [{"step": i + 1, "stat_x": v} for i, v in enumerate(values)]


def test_patience_rule_stops_patience_steps_after_the_minimum():
    values = [None, None, 5, 4, 3, 3.5, 2.9, 3, 3.1, 3.2, 3.3, 1.0]
    assert replay(_trace(values), PatienceRule("stat_x", patience=4)) == (
        d := replay(_trace(values), PatienceRule("stat_x", patience=4))
    )
    assert (d.chosen, d.fired_at) == (7, 11)  # the late 1.0 comes after the stop
    # a relative threshold: 2.9 is not 1 % below 3, so the minimum stays at step 5
    d = replay(_trace(values), PatienceRule("stat_x", patience=4, delta=0.05))
    assert (d.chosen, d.fired_at) == (5, 9)
    # window-start indexing returns the oldest frame of the best window
    d = replay(_trace(values), PatienceRule("stat_x", patience=4, indexing="start", window=3))
    assert (d.chosen, d.fired_at) == (5, 11)
    # never fired: the best so far, and fired_at None
    d = replay(_trace(values), PatienceRule("stat_x", patience=50))
    assert (d.chosen, d.fired, d.fired_at) == (12, False, None)


def test_plateau_rule_matches_a_brute_force_reading():
    rng = np.random.default_rng(0)
    values = list(np.exp(-np.arange(400) / 60) * 3 + rng.normal(0, 0.01, 400))
    n, eps = 20, 0.01
    expected = next(
        t for t in range(2 * n, 401) if abs(np.mean(values[t - 2 * n : t - n]) - np.mean(values[t - n : t])) < eps
    )
    d = replay(_trace(values), PlateauRule("stat_x", n, eps))
    assert d.fired_at == expected and d.chosen == expected


def test_fixed_rule_and_bad_rule_settings():
    d = replay(_trace([1.0] * 30), FixedRule(at=20))
    assert (d.chosen, d.fired_at) == (20, 20)
    assert replay(_trace([1.0] * 10), FixedRule(at=20)).chosen == 10
    with pytest.raises(DipsearchError, match="patience must be >= 1"):
        PatienceRule("stat_x", patience=0)
    with pytest.raises(DipsearchError, match="indexing must be 'end' or 'start'"):
        PatienceRule("stat_x", indexing="middle")


def test_replay_of_a_trace_without_the_statistic_is_a_clear_error():
    with pytest.raises(DipsearchError, match=r"the trace has no column 'stat_sure'.*recorded: stat_x"):
        replay(_trace([1.0, 2.0]), PatienceRule("stat_sure"))


def test_unknown_detector_and_window_larger_than_the_run(clean32):
    with pytest.raises(DipsearchError, match="unknown detector 'wmw'; choose one of wmv, emv, sure, holdout, spectral"):
        make_detector("wmw")
    hook = StoppingHook.online(WMV(window=100))
    with pytest.raises(DipsearchError, match=r"window \(100 steps\) is larger than the run \(50 iterations\)"):
        fit(_gauss(clean32), SMALL, FitConfig(iters=50, device="cpu"), [hook])


# ---------------------------------------------------------------- online hook == replay


def test_online_wmv_stop_matches_replay_and_keeps_the_chosen_output(clean32):
    problem = _gauss(clean32)
    rule = PatienceRule("stat_wmv", patience=15, window=10)
    hook = StoppingHook.online(WMV(window=10), rule)
    result = fit(hook.prepare(problem), SMALL, FitConfig(iters=400, device="cpu", ssim_every=0), [hook])
    decision = result.extras["stopping"]["decision"]
    assert decision.fired and result.iters_run == decision.fired_at < 400 and result.stopped_by == "stop:wmv"
    assert replay(result.trace, rule) == decision
    summary = result.summary(problem)
    assert summary["stop_detector"] == "wmv" and summary["stopped_iter"] == decision.chosen
    kept = result.extras["images"]["output_stopped"]
    assert summary["psnr_stopped"] == pytest.approx(result.trace[decision.chosen - 1]["psnr"], abs=1e-9)
    assert psnr(kept, problem.clean) == summary["psnr_stopped"]


def test_online_window_start_and_emv_return_their_own_images(clean32):
    problem = _gauss(clean32)
    rule = PatienceRule("stat_wmv", patience=10, indexing="start", window=8)
    hook = StoppingHook.online(WMV(window=8), rule)
    result = fit(problem, SMALL, FitConfig(iters=300, device="cpu", ssim_every=0), [hook])
    chosen = result.summary_extra["stopped_iter"]
    assert chosen == replay(result.trace, rule).chosen
    assert result.summary_extra["psnr_stopped"] == pytest.approx(result.trace[chosen - 1]["psnr"], abs=1e-9)

    emv = EMV(warmup=20)
    hook = StoppingHook.online(emv, emv.rule(patience=10))
    result = fit(problem, SMALL, FitConfig(iters=300, device="cpu", ssim_every=0), [hook])
    chosen = result.summary_extra["stopped_iter"]
    assert result.summary_extra["psnr_stopped"] == pytest.approx(result.trace[chosen - 1]["psnr_emv"], abs=1e-9)


def test_holdout_withholds_pixels_and_scores_the_output_on_them(clean32):
    problem = _gauss(clean32)
    det = Holdout(fraction=0.1, seed=3)
    hook = StoppingHook([det])
    fitted = hook.prepare(problem)
    held = det.held.mask
    assert held.sum().item() == round(0.1 * 32 * 32) and (fitted.mask * held).sum() == 0
    result = fit(fitted, SMALL, FitConfig(iters=5, device="cpu"), [hook])
    out = result.output
    direct = (((out - problem.observed) ** 2) * held).sum() / (held.sum() * 3)
    assert result.trace[-1]["stat_holdout"] == pytest.approx(direct.item(), rel=1e-5)
    # The holdout fitness with the same fraction and seed hides the same pixels and scores the same error.
    fitness = HoldoutFitness(0.1)
    prepared = fitness.prepare(problem, 3)
    assert torch.equal(prepared.mask, fitted.mask) and torch.equal(fitness.held.mask, held)
    assert fitness.score(out, prepared) == pytest.approx(-10 * math.log10(result.trace[-1]["stat_holdout"]), abs=1e-12)
    with pytest.raises(DipsearchError, match="fit the problem returned by prepare"):
        fit(problem, SMALL, FitConfig(iters=5, device="cpu"), [StoppingHook([Holdout()])])


def test_holdout_scores_the_pixels_a_problem_already_withholds_at_its_fraction(clean32):
    problem = _gauss(clean32)
    fitness = HoldoutFitness(0.05)
    prepared = fitness.prepare(problem, 7)
    det = Holdout(fraction=0.05, seed=0)  # another seed: it would withhold other pixels of a fresh problem
    fitted = StoppingHook([det]).prepare(prepared)
    assert fitted is prepared and torch.equal(det.held.mask, fitness.held.mask)  # the fit loses 5 %, not 10 %
    other = Holdout(fraction=0.1, seed=0)  # another fraction: a split of its own, beside the fitness's
    fitted = StoppingHook([other]).prepare(prepared)
    assert (
        fitted.mask.sum() == prepared.mask.sum() - other.held.pixels
        and (other.held.mask * fitness.held.mask).sum() == 0
    )


# ---------------------------------------------------------------- SURE


def test_sure_twin_runs_in_lock_step_even_through_a_restore(clean32, monkeypatch):
    problem = _gauss(clean32)
    det = Sure(eps=0.0)
    gaps = []

    class Spy(StoppingHook):
        def on_step(self, state):
            stop = super().on_step(state)
            gaps.append(det.twin_gap)
            return stop

    original = Problem.observed_psnr
    calls = {"n": 0}

    def dropping_psnr(self, x):  # force one divergence-guard restore, as in test_fit
        calls["n"] += 1
        return original(self, x) - (20.0 if calls["n"] == 3 else 0.0)

    monkeypatch.setattr(Problem, "observed_psnr", dropping_psnr)
    result = fit(problem, SMALL, FitConfig(iters=30, guard_every=5, device="cpu"), [Spy([det])])
    assert result.restores == 1
    assert max(gaps) == 0.0  # same init, same inputs, same target: bit-identical outputs


def test_sure_tracks_the_true_mse_on_a_gaussian_problem():
    clean = synthetic_image(32, 32)
    problem = _gauss(clean, level=25)
    hook = StoppingHook([Sure()])
    result = fit(problem, SMALL, FitConfig(iters=300, device="cpu", ssim_every=0), [hook])
    sure = np.array([r["stat_sure"] for r in result.trace])
    mse = np.array([10 ** (-r["psnr"] / 10) for r in result.trace])
    assert np.corrcoef(sure, mse)[0, 1] > 0.98
    assert np.median(np.abs(sure - mse) / mse) < 0.35


@pytest.mark.parametrize(
    "problem, sure, message",
    [
        (
            lambda c: make_problem("denoise", clean=c, noise="poisson", level=12),
            Sure(),
            "SURE needs Gaussian noise, but this problem has poisson noise",
        ),
        (lambda c: make_problem("denoise", observed=c), Sure(), "the Gaussian noise sigma is unknown"),
        (lambda c: make_problem("inpaint", clean=c, mask_ratio=0.5), Sure(), "does not apply to task 'inpaint'"),
    ],
)
def test_sure_refuses_what_it_cannot_estimate(clean32, problem, sure, message):
    with pytest.raises(DipsearchError, match=message):
        StoppingHook.online(sure).prepare(problem(clean32))


def test_sure_with_an_estimated_sigma_on_an_observation_of_unknown_noise(clean32):
    noisy = _gauss(clean32).observed
    det = Sure(sigma="estimate")
    hook = StoppingHook([det])
    fit(hook.prepare(make_problem("denoise", observed=noisy)), SMALL, FitConfig(iters=3, device="cpu"), [hook])
    assert det.sigma == pytest.approx(estimate_sigma(noisy)) and math.isfinite(det.sigma)


def test_passive_recording_of_every_detector_in_one_trace(clean32):
    problem = _gauss(clean32)
    dets = [WMV(window=10), EMV(warmup=10), Sure(), Holdout(), Spectral(n=10)]
    hook = StoppingHook(dets)
    result = fit(hook.prepare(problem), SMALL, FitConfig(iters=40, device="cpu", ssim_every=10), [hook])
    last = result.trace[-1]
    assert {"stat_wmv", "stat_emv", "stat_sure", "stat_holdout", "stat_spectral", "psnr_emv"} <= set(last)
    assert "ssim_emv" in result.trace[9] and result.iters_run == 40 and not result.summary_extra
    for d in dets:
        assert replay(result.trace, d.rule(patience=5)).chosen is not None
