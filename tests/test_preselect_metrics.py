"""Training-free metrics on images whose spectra are known, and deterministic scoring."""

import math

import pytest
import torch
from conftest import synthetic_image

from dipsearch import ArchSpec, make_problem
from dipsearch.errors import DipsearchError
from dipsearch.preselect import METRICS, ScoreConfig, get_metric, score_spec
from dipsearch.preselect.metrics import bandwidth, psd_ring_emd, psd_ring_mse, radius, spectral_slope_gap


def _noise(seed: int, k: int = 1, side: int = 64) -> torch.Tensor:
    return torch.rand(k, 3, side, side, generator=torch.Generator().manual_seed(seed))


def _power_law(alpha: float, seed: int = 0, side: int = 64) -> torch.Tensor:
    """Noise whose power spectrum falls off as r^(-2 alpha)."""
    r = torch.fft.ifftshift(radius(side, side).float()).clamp(min=1 / side)
    spectrum = torch.fft.fft2(torch.randn(4, 3, side, side, generator=torch.Generator().manual_seed(seed))) * r**-alpha
    return torch.fft.ifft2(spectrum).real


def test_identical_spectra_are_at_distance_zero():
    image = _noise(0)
    shifted = torch.roll(image, shifts=(5, 11), dims=(-2, -1))  # a circular shift keeps |FFT| exactly
    for fn in (psd_ring_mse, psd_ring_emd, spectral_slope_gap):
        assert fn(shifted, image) == pytest.approx(0.0, abs=1e-9)


def test_a_scaled_image_is_at_the_log_power_gap():
    image = _noise(1)
    gap = 10 * math.log(4)  # twice the amplitude: four times the power at every frequency
    assert psd_ring_mse(2 * image, image) == pytest.approx(gap**2, rel=1e-6)
    assert psd_ring_emd(2 * image, image) == pytest.approx(gap, rel=1e-6)
    assert spectral_slope_gap(2 * image, image) == pytest.approx(0.0, abs=1e-9)


def test_bandwidth_finds_a_single_frequency_and_ranks_low_pass_first():
    xs = torch.arange(64, dtype=torch.float32)
    wave = (0.5 + 0.4 * torch.cos(2 * math.pi * xs / 8)).expand(1, 3, 64, 64)  # 1/8 cycle per px = 0.25 Nyquist
    assert bandwidth(wave, wave) == pytest.approx(0.25)
    noise = torch.randn(16, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    gain = torch.fft.ifftshift(torch.exp(-((radius(64, 64) / 0.2) ** 2))).float()  # power falls as exp(-2 (r/0.2)^2)
    low_pass = torch.fft.ifft2(torch.fft.fft2(noise) * gain).real
    # a flat spectrum's power within R grows as R^2 up to the corners (r = sqrt 2); the Gaussian's holds 99 %
    # within R = 0.2 sqrt(ln(100) / 2) = 0.30
    assert bandwidth(low_pass, noise) == pytest.approx(0.30, abs=0.03)
    assert bandwidth(noise, noise) > 1.2


def test_the_slope_gap_measures_how_much_steeper_a_spectrum_falls():
    gentle, steep = _power_law(0.5), _power_law(1.5, seed=1)
    # ln PSD falls with slope -2 alpha, so the two slopes differ by 2
    assert spectral_slope_gap(steep, gentle) == pytest.approx(2.0, abs=0.25)


def test_metric_registry_names_and_unknown_metric():
    assert set(METRICS) == {"psd_mse", "psd_emd", "bandwidth", "slope_gap"}
    with pytest.raises(DipsearchError, match="unknown pre-selection metric 'psnr'; choose one of psd_mse, psd_emd"):
        get_metric("psnr")
    with pytest.raises(DipsearchError, match="unknown pre-selection metric"):
        ScoreConfig(metrics=("nope",))


def _problem():
    return make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25, seed=0)


def test_scoring_is_seeded_and_deterministic():
    spec = ArchSpec(
        n_down=[8, 8, 8],
        n_up=[8, 8, 8],
        n_skip=[0, 4, 4],
        k_down=[3] * 3,
        k_up=[3] * 3,
        k_skip=[1] * 3,
        upsample=["bilinear"] * 3,
    )
    problem = _problem()
    first = score_spec(problem, spec, ScoreConfig(inputs=3, seed=4))
    assert first == score_spec(problem, spec, ScoreConfig(inputs=3, seed=4))
    assert set(first) == set(METRICS) and all(math.isfinite(v) for v in first.values())
    assert first != score_spec(problem, spec, ScoreConfig(inputs=3, seed=5))


def test_scoring_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    score_spec(
        _problem(),
        ArchSpec(
            n_down=[8, 8],
            n_up=[8, 8],
            n_skip=[0, 0],
            k_down=[3, 3],
            k_up=[3, 3],
            k_skip=[1, 1],
            upsample=["nearest"] * 2,
        ),
        ScoreConfig(inputs=2),
    )
    assert torch.equal(torch.rand(3), expected)
