import pytest
import torch
from conftest import SMALL

from dipsearch import ArchSpec, DipsearchError, FitConfig, FitHook, Problem, fit, make_problem


def _denoise(clean, seed=0):
    return make_problem("denoise", clean=clean, noise="gaussian", level=25, seed=seed)


def test_fit_is_deterministic_for_a_seed_and_leaves_global_rng_alone(clean32):
    problem = _denoise(clean32)
    config = FitConfig(iters=15, seed=3, device="cpu")
    torch.manual_seed(123)
    a = fit(problem, SMALL, config)
    after_first = torch.rand(1)
    torch.manual_seed(123)
    b = fit(problem, SMALL, config)
    assert torch.equal(torch.rand(1), after_first)  # the fit did not consume the caller's random stream
    assert [r["loss"] for r in a.trace] == [r["loss"] for r in b.trace]
    assert torch.equal(a.output, b.output) and torch.equal(a.ema, b.ema)
    c = fit(problem, SMALL, config.updated(seed=4))
    assert not torch.equal(a.output, c.output)


def test_fit_learns_the_image_and_records_the_trace():
    from conftest import synthetic_image

    problem = _denoise(synthetic_image(64, 64))
    result = fit(problem, ArchSpec(), FitConfig(iters=120, device="cpu", ssim_every=50))
    first, last = result.trace[0], result.trace[-1]
    assert result.iters_run == 120 and len(result.trace) == 120
    assert last["loss"] < first["loss"] / 3
    assert last["psnr"] > first["psnr"] + 5
    assert {"step", "loss", "psnr", "psnr_ema", "seconds"} <= set(last)
    assert "ssim" in result.trace[49] and "ssim" not in result.trace[50]
    summary = result.summary(problem)
    assert summary["params"] == 572_827
    assert summary["psnr_peak"] == max(r["psnr"] for r in result.trace)
    assert result.trace[summary["iter_peak"] - 1]["psnr"] == summary["psnr_peak"]
    assert summary["psnr_observed"] < 22  # sigma 25 noise: about 20 dB


def test_hooks_see_every_step_and_can_stop_the_fit(clean32):
    class StopAt(FitHook):
        name = "stop-at-7"

        def __init__(self):
            self.steps = []

        def on_step(self, state):
            self.steps.append(state.step)
            state.record["custom"] = state.step * 2.0
            return state.step == 7

    hook = StopAt()
    result = fit(_denoise(clean32), SMALL, FitConfig(iters=50, device="cpu"), [hook])
    assert hook.steps == list(range(1, 8))
    assert result.iters_run == 7 and result.stopped_by == "stop-at-7"
    assert result.trace[-1]["custom"] == 14.0


def test_odd_sizes_are_padded_and_cropped_back():
    from conftest import synthetic_image

    clean = synthetic_image(40, 36)
    result = fit(_denoise(clean), SMALL, FitConfig(iters=3, device="cpu"))
    assert result.output.shape == (1, 3, 40, 36)


def test_image_too_small_for_the_depth(clean32):
    with pytest.raises(
        DipsearchError,
        match=r"the image is 32x32 px \(width x height\), which this network pads to "
        r"64x64, but an hourglass of depth 6 .* needs a padded size of at least 128x128, i\.e\. an "
        r"image of at least 65x65 px",
    ):
        fit(
            _denoise(clean32),
            ArchSpec(
                n_down=[8] * 6,
                n_up=[8] * 6,
                n_skip=[0] * 6,
                k_down=[3] * 6,
                k_up=[3] * 6,
                k_skip=[1] * 6,
                upsample=["nearest"] * 6,
            ),
            FitConfig(iters=2),
        )


def test_large_kernels_at_the_deepest_level_need_a_larger_image():
    from conftest import synthetic_image

    spec = ArchSpec(k_down=[3, 3, 3, 3, 5])  # a 5x5 reflection pad cannot pad the 2x2 deepest map of 64 px
    with pytest.raises(
        DipsearchError,
        match=r"kernels \[3, 3, 3, 3, 5\] needs a padded size of at least 96x96, "
        r"i\.e\. an image of at least 65x65 px",
    ):
        fit(_denoise(synthetic_image(64, 64)), spec, FitConfig(iters=1))
    assert fit(_denoise(synthetic_image(65, 65)), spec, FitConfig(iters=1)).output.shape[-1] == 65


def test_a_70x52_image_fits_the_seed_network_at_its_padded_size():
    from conftest import synthetic_image

    result = fit(_denoise(synthetic_image(52, 70)), ArchSpec(), FitConfig(iters=2, device="cpu"))
    assert result.output.shape == (1, 3, 52, 70)  # the network saw 96x64 (width x height)


def test_a_too_small_side_is_named_width_by_height():
    from conftest import synthetic_image

    with pytest.raises(
        DipsearchError,
        match=r"the image is 70x20 px \(width x height\), which this network pads to "
        r"96x32, .* at least 64x64, i\.e\. an image of at least 33x33 px",
    ):
        fit(_denoise(synthetic_image(20, 70)), ArchSpec(), FitConfig(iters=1))


def test_divergence_guard_restores_parameters_on_nan(clean32, monkeypatch):
    problem = _denoise(clean32)
    original = Problem.data_loss
    calls = {"n": 0}

    def flaky_loss(self, x):
        calls["n"] += 1
        loss = original(self, x)
        return loss * float("nan") if calls["n"] == 4 else loss

    monkeypatch.setattr(Problem, "data_loss", flaky_loss)
    result = fit(problem, SMALL, FitConfig(iters=10, device="cpu"))
    assert result.restores == 1
    assert len(result.trace) == 9  # the poisoned step took no Adam step and left no trace row
    assert torch.isfinite(result.output).all()


def test_divergence_guard_restores_on_a_psnr_drop(clean32, monkeypatch):
    problem = _denoise(clean32)
    original = Problem.observed_psnr
    calls = {"n": 0}

    def dropping_psnr(self, x):
        calls["n"] += 1
        return original(self, x) - (20.0 if calls["n"] == 3 else 0.0)

    monkeypatch.setattr(Problem, "observed_psnr", dropping_psnr)
    result = fit(problem, SMALL, FitConfig(iters=20, guard_every=5, device="cpu"))
    assert result.restores == 1


def test_super_resolution_and_inpainting_fits_give_image_sized_outputs(clean32):
    sr = make_problem("sr", clean=clean32, factor=2, seed=0)
    assert sr.observed.shape[-2:] == (16, 16)
    out = fit(sr, SMALL, FitConfig(iters=3, device="cpu")).output
    assert out.shape == clean32.shape
    inpaint = make_problem("inpaint", clean=clean32, mask_ratio=0.5, seed=0)
    result = fit(inpaint, SMALL, FitConfig(iters=3, device="cpu"))
    assert result.output.shape == clean32.shape


@pytest.mark.parametrize(
    "kwargs, message",
    [({"iters": 0}, "iters must be >= 1"), ({"lr": -1.0}, "lr must be > 0"), ({"ema_decay": 1.0}, "ema_decay")],
)
def test_bad_fit_settings(kwargs, message):
    with pytest.raises(DipsearchError, match=message):
        FitConfig(**kwargs)


def test_unknown_device_is_a_clear_error(clean32):
    with pytest.raises(DipsearchError, match="unknown device 'gpu0'"):
        fit(_denoise(clean32), SMALL, FitConfig(iters=1, device="gpu0"))


def test_min_size_is_the_smallest_square_image_that_fits():
    from dipsearch.fitting.fit import min_size

    assert min_size(ArchSpec()) == 33  # pads to 64: a 2x2 deepest map
    assert min_size(SMALL) == 9
    assert min_size(ArchSpec(k_down=[3, 3, 3, 3, 5])) == 65
