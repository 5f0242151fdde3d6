import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from dipsearch.errors import ArgumentError, DipsearchError
from dipsearch.metrics import psnr, ssim, ssim_tensor
from dipsearch.problems.inpaint import bernoulli_mask, load_mask, region_mask, text_mask
from dipsearch.problems.make import make_problem
from dipsearch.problems.noise import DEFAULT_LEVEL, LITERATURE_LEVELS, NOISE_KINDS, add_noise
from dipsearch.problems.problem import Problem
from dipsearch.problems.sr import lanczos_downsampler, lanczos_kernel, make_lr
from dipsearch.store.imageio import save_image


def smooth(c: int = 3, h: int = 48, w: int = 48) -> torch.Tensor:
    """Colour gradients plus a bright square, in [0.2, 0.9]."""
    y = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    x = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    chans = [0.2 + 0.3 * y + 0.3 * x, 0.5 + 0.4 * x * y, 0.8 - 0.5 * y][:c]
    img = torch.stack(chans).unsqueeze(0).clone()
    img[..., h // 3 : 2 * h // 3, w // 4 : w // 2] = 0.9
    return img


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- noise


def test_gaussian_sigma_is_on_the_255_scale():
    grey = torch.full((1, 3, 64, 64), 0.5)
    noisy = add_noise(grey, "gaussian", 25, gen())
    assert abs((noisy - grey).std().item() - 25 / 255) < 0.03 * 25 / 255
    assert abs((noisy - grey).mean().item()) < 0.005
    assert torch.equal(add_noise(grey, "gaussian", 0, gen()), grey)


def test_gaussian_output_is_clipped():
    noisy = add_noise(torch.full((1, 1, 32, 32), 0.95), "gaussian", 50, gen())
    assert noisy.min() >= 0 and noisy.max() == 1


def test_poisson_is_counts_over_scale():
    c, x = 25, 0.3
    clean = torch.full((1, 3, 64, 64), x)
    noisy = add_noise(clean, "poisson", c, gen())
    counts = noisy * c
    assert torch.allclose(counts, counts.round(), atol=1e-4)
    assert abs(noisy.mean().item() - x) < 0.01
    assert abs(noisy.var().item() - x / c) < 0.1 * x / c


def test_impulse_replaces_whole_pixels_half_salt_half_pepper():
    clean = torch.full((1, 3, 64, 64), 0.5)
    noisy = add_noise(clean, "impulse", 0.3, gen())
    hit = noisy != 0.5
    assert torch.equal(hit[:, :1].expand_as(hit), hit)  # same positions in every channel
    assert torch.equal(noisy[:, :1].expand_as(noisy), noisy)  # and the same value
    frac = hit[0, 0].float().mean().item()
    assert abs(frac - 0.3) < 0.03
    salt = (noisy[0, 0] == 1).float().mean().item()
    assert abs(salt - 0.15) < 0.03
    assert set(noisy[hit].unique().tolist()) == {0.0, 1.0}


def test_speckle_is_multiplicative():
    clean = torch.full((1, 1, 64, 64), 0.5)
    clean[..., :8, :] = 0
    noisy = add_noise(clean, "speckle", 0.2, gen())
    assert torch.equal(noisy[..., :8, :], clean[..., :8, :])  # black stays black
    rest = noisy[..., 8:, :]
    assert abs(rest.std().item() - 0.5 * 0.2) < 0.01
    assert abs(rest.mean().item() - 0.5) < 0.01


@pytest.mark.parametrize("kind", NOISE_KINDS)
def test_noise_is_seeded(kind):
    clean = smooth()
    level = DEFAULT_LEVEL[kind]
    a = add_noise(clean, kind, level, gen(1))
    b = add_noise(clean, kind, level, gen(1))
    c = add_noise(clean, kind, level, gen(2))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert a.shape == clean.shape and a.min() >= 0 and a.max() <= 1


def test_literature_levels():
    assert LITERATURE_LEVELS["gaussian"] == pytest.approx(
        {"low": 0.12 * 255, "medium": 0.18 * 255, "high": 0.26 * 255}, abs=0.05
    )
    assert LITERATURE_LEVELS["impulse"] == {"low": 0.3, "medium": 0.5, "high": 0.7}
    assert LITERATURE_LEVELS["poisson"] == {"low": 25, "medium": 12, "high": 5}
    assert set(LITERATURE_LEVELS) == set(NOISE_KINDS) == set(DEFAULT_LEVEL)
    for kind, levels in LITERATURE_LEVELS.items():
        for level in levels.values():
            add_noise(smooth(1, 8, 8), kind, level, gen())  # all valid


@pytest.mark.parametrize(
    "kind, level, message",
    [
        ("gaussian", -1, "gaussian noise level is sigma on the 0-255 scale and must be >= 0"),
        ("impulse", 0, r"must be in \(0, 1\), got 0"),
        ("impulse", 1.5, r"fraction of pixels replaced and must be in \(0, 1\), got 1.5"),
        ("poisson", 0, "must be > 0"),
        ("speckle", -0.1, "relative sigma"),
        ("gaussian", float("nan"), "finite"),
        ("pink", 1, "unknown noise kind 'pink'"),
    ],
)
def test_bad_noise_levels(kind, level, message):
    with pytest.raises(DipsearchError, match=message):
        add_noise(smooth(), kind, level, gen())


# ---------------------------------------------------------------- super-resolution


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_lanczos_kernel_shape_and_symmetry(factor):
    k = lanczos_kernel(factor)
    assert k.shape == (4 * factor, 4 * factor)
    assert k.sum().item() == pytest.approx(1, abs=1e-6)
    assert torch.allclose(k, k.flip(0)) and torch.allclose(k, k.T)
    # Phase 0.5: the maximum is shared by the four central taps.
    c = 2 * factor
    assert k[c - 1 : c + 1, c - 1 : c + 1].min() == k.max()


@pytest.mark.parametrize("factor", [2, 4, 8])
def test_downsampler_keeps_constants_and_divides_size(factor):
    down = lanczos_downsampler(factor, 3)
    y = down(torch.full((1, 3, 64, 64), 0.37))
    assert y.shape == (1, 3, 64 // factor, 64 // factor)
    assert torch.allclose(y, torch.full_like(y, 0.37), atol=1e-6)
    assert list(down.parameters()) == []  # fixed, never trained


def test_downsampler_passes_gradients_and_matches_make_lr():
    hr = smooth(3, 64, 64).requires_grad_()
    down = lanczos_downsampler(4, 3)
    lr = down(hr)
    assert lr.shape == (1, 3, 16, 16)
    lr.sum().backward()
    assert hr.grad is not None and hr.grad.abs().sum() > 0
    # Same filter family and alignment as Pillow's Lanczos resize: near-identical LR images.
    assert psnr(lr.detach(), make_lr(hr.detach(), 4)) > 40


def test_make_lr_crops_then_resizes():
    lr = make_lr(smooth(3, 50, 45), 4)
    assert lr.shape == (1, 3, 12, 11)
    assert lr.min() >= 0 and lr.max() <= 1
    flat = make_lr(torch.full((1, 1, 32, 32), 0.6), 8)
    assert torch.allclose(flat, torch.full_like(flat, 0.6), atol=1e-5)


@pytest.mark.parametrize("call", [lambda: make_lr(smooth(), 3), lambda: lanczos_downsampler(3, 3)])
def test_factor_three_is_rejected(call):
    with pytest.raises(DipsearchError, match="super-resolution factor must be 2, 4 or 8, got 3"):
        call()


# ---------------------------------------------------------------- masks


def test_bernoulli_mask():
    m = bernoulli_mask((64, 64), 0.5, gen(3))
    assert m.shape == (1, 1, 64, 64) and set(m.unique().tolist()) == {0.0, 1.0}
    assert abs(1 - m.mean().item() - 0.5) < 0.03
    assert torch.equal(m, bernoulli_mask((64, 64), 0.5, gen(3)))
    assert not torch.equal(m, bernoulli_mask((64, 64), 0.5, gen(4)))
    with pytest.raises(DipsearchError, match=r"missing-pixel ratio must be in \(0, 1\)"):
        bernoulli_mask((8, 8), 1.0, gen())


def test_region_mask_is_a_central_hole():
    m = region_mask((64, 64), 0.25)
    assert m.shape == (1, 1, 64, 64)
    assert 1 - m.mean().item() == pytest.approx(0.25, abs=0.01)
    assert m[0, 0, 32, 32] == 0 and m[0, 0, 0, 0] == 1 and m[0, 0, 63, 63] == 1
    assert torch.equal(m, m.flip(-1)) and torch.equal(m, m.flip(-2))


def test_text_mask_coverage_and_seed():
    for size in [(48, 48), (128, 96)]:
        m = text_mask(size, seed=5)
        assert m.shape == (1, 1, *size)
        assert 0.10 <= 1 - m.mean().item() <= 0.20
    assert torch.equal(text_mask((64, 64), 1), text_mask((64, 64), 1))
    assert not torch.equal(text_mask((64, 64), 1), text_mask((64, 64), 2))


def test_load_mask_thresholds_grey_and_colour(tmp_path):
    arr = np.zeros((16, 20), np.uint8)
    arr[:, 10:] = 200  # white-ish = known
    arr[0, 0] = 120  # below half: missing
    Image.fromarray(arr).save(tmp_path / "m.png")
    m = load_mask(tmp_path / "m.png", (16, 20))
    assert m.shape == (1, 1, 16, 20)
    assert m[..., :, 10:].min() == 1 and m[..., :, :10].max() == 0
    Image.fromarray(np.stack([arr] * 3, axis=2)).save(tmp_path / "rgb.png")
    assert torch.equal(load_mask(tmp_path / "rgb.png", (16, 20)), m)


def test_load_mask_wrong_size(tmp_path):
    save_image(torch.ones(1, 1, 16, 20), tmp_path / "m.png")
    with pytest.raises(DipsearchError, match="mask .*m.png is 20x16 but the image is 32x32"):
        load_mask(tmp_path / "m.png", (32, 32))


def test_load_mask_missing_file(tmp_path):
    with pytest.raises(DipsearchError, match="not found"):
        load_mask(tmp_path / "absent.png", (8, 8))


# ---------------------------------------------------------------- problems


def test_denoise_problem_loss_is_mse():
    clean = smooth()
    p = make_problem("denoise", clean=clean, seed=7)
    assert p.task == "denoise" and p.image_shape == (3, 48, 48) and p.channels == 3 and p.mask is None
    assert torch.equal(p.observed, add_noise(clean, "gaussian", 25, gen(7)))
    x = torch.rand_like(clean)
    assert p.data_loss(x).item() == pytest.approx(F.mse_loss(x, p.observed).item(), rel=1e-6)
    assert p.observed_psnr(x) == pytest.approx(10 * math.log10(1 / F.mse_loss(x, p.observed).item()), rel=1e-6)
    assert p.meta["noise"] == "gaussian" and p.meta["level"] == 25
    json.dumps(p.meta)


def test_denoise_from_observation_and_seeds():
    clean = smooth()
    a = make_problem("denoise", clean=clean, noise="impulse", level=0.3, seed=1)
    b = make_problem("denoise", clean=clean, noise="impulse", level=0.3, seed=1)
    c = make_problem("denoise", clean=clean, noise="impulse", level=0.3, seed=2)
    assert torch.equal(a.observed, b.observed) and not torch.equal(a.observed, c.observed)
    given = make_problem("denoise", observed=a.observed)
    assert torch.equal(given.observed, a.observed) and given.clean is None and given.meta["synthetic"] is False
    with pytest.raises(
        DipsearchError, match=r"clean image is 48x48 px \(3 channels\) but the observation is 32x32 px \(3 channels\)"
    ):
        make_problem("denoise", clean=clean, observed=smooth(3, 32, 32))


def test_sr_problem_synthesised():
    clean = smooth(3, 50, 50)
    p = make_problem("sr", clean=clean, factor=4)
    assert p.image_shape == (3, 48, 48) and p.clean.shape == (1, 3, 48, 48)
    assert p.observed.shape == (1, 3, 12, 12)
    assert torch.equal(p.observed, make_lr(clean, 4))  # no noise unless a level is given
    assert p.data_loss(p.clean).item() < 1e-4
    assert p.data_loss(torch.zeros(1, 3, 48, 48)).item() > 0.1
    noisy = make_problem("sr", clean=clean, factor=4, level=10)
    assert not torch.equal(noisy.observed, p.observed) and noisy.meta["level"] == 10
    assert p.meta["factor"] == 4 and p.meta["noise"] is None
    json.dumps(p.meta)


def test_sr_problem_from_lr_image():
    lr = smooth(1, 12, 10)
    p = make_problem("sr", observed=lr, factor=2)
    assert p.image_shape == (1, 24, 20) and p.clean is None
    assert p.operator(torch.rand(1, 1, 24, 20)).shape == lr.shape
    with pytest.raises(
        DipsearchError, match=r"clean image is 20x20 px \(1 channel\) but x2 of the 10x12 observation is 20x24"
    ):
        make_problem("sr", observed=lr, clean=smooth(1, 20, 20), factor=2)
    with pytest.raises(DipsearchError, match="factor must be 2, 4 or 8, got 3"):
        make_problem("sr", observed=lr, factor=3)


@pytest.mark.parametrize(
    "kwargs, source",
    [
        ({"mask_ratio": 0.5}, "bernoulli"),
        ({"mask_kind": "text"}, "text"),
        ({"mask_kind": "region"}, "region"),
        ({}, "bernoulli"),
    ],
)
def test_inpaint_problem_masks(kwargs, source):
    clean = smooth()
    p = make_problem("inpaint", clean=clean, seed=3, **kwargs)
    assert p.mask.shape == (1, 1, 48, 48) and p.meta["mask"]["source"] == source
    assert torch.equal(p.observed, clean * p.mask)
    assert p.data_loss(clean).item() == 0  # unknown pixels do not count
    x = torch.rand_like(clean)
    m = p.mask.bool().expand_as(x)
    assert p.data_loss(x).item() == pytest.approx(((x - p.observed)[m] ** 2).mean().item(), rel=1e-5)
    json.dumps(p.meta)


def test_inpaint_with_given_mask_and_errors():
    clean = smooth()
    mask = region_mask((48, 48), 0.1)
    p = make_problem("inpaint", clean=clean, mask=mask)
    assert torch.equal(p.mask, mask) and p.meta["mask"]["source"] == "given"
    given = make_problem("inpaint", observed=p.observed, mask=mask[0, 0])  # HxW accepted
    assert torch.equal(given.mask, mask)
    with pytest.raises(DipsearchError, match="mask is 32x32 but the image is 48x48"):
        make_problem("inpaint", clean=clean, mask=torch.ones(1, 1, 32, 32))
    with pytest.raises(DipsearchError, match="needs its mask"):
        make_problem("inpaint", observed=p.observed)
    with pytest.raises(DipsearchError, match="not both"):
        make_problem("inpaint", clean=clean, mask=mask, mask_kind="text")


def test_problem_needs_an_image_and_a_known_task():
    with pytest.raises(DipsearchError, match="needs a clean image .* or an observed image"):
        make_problem("denoise")
    with pytest.raises(DipsearchError, match="unknown task 'dehaze'"):
        make_problem("dehaze", clean=smooth())
    with pytest.raises(DipsearchError, match=r"impulse noise level .* must be in \(0, 1\), got 1.2"):
        make_problem("denoise", clean=smooth(), noise="impulse", level=1.2)


def test_holdout_is_disjoint_and_sized():
    p = make_problem("denoise", clean=smooth())
    fit, ho = p.with_holdout(0.1, seed=4)
    held = ho.mask
    assert held.shape == (1, 1, 48, 48) and p.mask is None
    assert (fit.mask * held).sum() == 0 and torch.equal(fit.mask + held, torch.ones_like(held))
    assert held.sum().item() == round(0.1 * 48 * 48) == ho.pixels
    _, ho2 = p.with_holdout(0.1, seed=4)
    assert torch.equal(held, ho2.mask)
    assert not torch.equal(held, p.with_holdout(0.1, seed=5)[1].mask)
    assert fit.meta["holdout"] == {"fraction": 0.1, "seed": 4, "pixels": ho.pixels}
    with pytest.raises(ArgumentError, match=r"^held-out fraction must be in \(0, 0.5\], got 0.6$") as err:
        p.with_holdout(0.6)
    assert err.value.render({"fraction": "--holdout-fraction"}).startswith("held-out --holdout-fraction must be")


def test_holdout_only_takes_known_pixels():
    p = make_problem("inpaint", clean=smooth(), mask_ratio=0.5, seed=1)
    fit, ho = p.with_holdout(0.2, seed=0)
    known = p.mask
    assert (ho.mask * (1 - known)).sum() == 0
    assert torch.equal(fit.mask + ho.mask, known)
    assert ho.pixels == round(0.2 * known.sum().item())


def test_holdout_scores_an_output_on_the_hidden_pixels_only():
    p = make_problem("inpaint", clean=smooth(), mask_ratio=0.5, seed=1)
    fit, ho = p.with_holdout(0.2, seed=0)
    out = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(2))
    direct = (((out.double() - p.observed.double()) ** 2) * ho.mask).sum().item() / (ho.pixels * 3)
    assert ho.mse(out, fit).item() == pytest.approx(direct, rel=1e-12)
    assert ho.psnr(out, fit) == pytest.approx(10 * math.log10(1 / direct), rel=1e-12)
    assert ho.psnr(out, fit) == psnr(out, p.observed, ho.mask)  # the score the holdout fitness always gave
    res = ho.residuals(out, fit)
    assert res.dtype == torch.float64 and res.numel() == ho.pixels * 3
    assert res.mean().item() == pytest.approx(direct, rel=1e-12)
    changed = out.clone()
    changed[..., ho.mask[0, 0] == 0] = 0.5  # pixels the fit saw do not enter the score
    assert ho.mse(changed, fit).item() == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("channels", [3, 1])
def test_ssim_is_the_standard_gaussian_window_ssim_of_scikit_image(channels):
    from skimage.metrics import structural_similarity

    clean = smooth(channels, 40, 48)
    noisy = (clean + 0.1 * torch.randn(clean.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    a, b = (t[0].permute(1, 2, 0).double().numpy() for t in (noisy, clean))
    expected = structural_similarity(
        a, b, data_range=1.0, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
    )
    assert ssim(noisy, clean) == pytest.approx(expected, abs=1e-12)


def test_ssim_of_an_image_under_the_window_uses_a_smaller_window():
    clean = smooth(3, 9, 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pytorch-msssim would warn and skip the smoothing with its 11-tap window
        assert ssim(clean, clean) == pytest.approx(1.0, abs=1e-12) and ssim(clean * 0.8, clean) < 0.99


def test_ssim_stays_on_the_device_until_read():
    clean = smooth(3, 32, 32)
    value = ssim_tensor(clean.float() * 0.9, clean)
    assert value.dim() == 0 and value.device == clean.device and value.dtype == torch.float64  # CPU: float64
    assert 0 < float(value) < 1


def test_problem_to_copies():
    p = make_problem("sr", clean=smooth(3, 32, 32), factor=2)
    q = p.to("cpu")
    assert isinstance(q, Problem) and q.operator is not p.operator and q.meta == p.meta
    assert torch.equal(q.observed, p.observed)


def test_metrics():
    a = smooth()
    assert psnr(a, a) == math.inf and ssim(a, a) == pytest.approx(1.0)
    b = (a + 0.1).clamp(0, 1)
    assert psnr(a, b) == pytest.approx(10 * math.log10(1 / F.mse_loss(a, b).item()))
    assert ssim(a[:, :1], b[:, :1]) < 1
    mask = torch.zeros(1, 1, 48, 48)
    mask[..., :10, :] = 1
    c = a.clone()
    c[..., 10:, :] = 0  # errors only outside the mask
    assert psnr(c, a, mask) == math.inf
