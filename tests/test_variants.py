"""The fit variants: SGLD (Bayesian DIP), DIP-TV and warm starts, through the library API."""

import pytest
import torch
from conftest import SMALL

from dipsearch import ArchSpec, DipsearchError, FitConfig, FitHook, fit, make_problem
from dipsearch.variants import VariantSettings, fit_variant
from dipsearch.variants.sgld import correlation
from dipsearch.variants.tv import tv_term
from dipsearch.variants.warmstart import FinalWeights, load_weights_file, read_weights, save_weights, state_hash

OTHER = ArchSpec(
    n_down=[8, 8, 8],
    n_up=[8, 8, 8],
    n_skip=[0, 4, 4],
    k_down=[3] * 3,
    k_up=[5] * 3,
    k_skip=[1] * 3,
    upsample=["bilinear"] * 3,
)


def _problem(clean):
    return make_problem("denoise", clean=clean, noise="gaussian", level=25, seed=0)


class Outputs(FitHook):
    def on_start(self, problem, spec, config):
        self.outs = {}

    def on_step(self, state):
        self.outs[state.step] = state.out.clone()


def _weights(result):
    return result.extras["weights"]


# ----------------------------------------------------------------------------- SGLD


def test_langevin_noise_is_added_to_conv_weights_only_with_std_noise_times_lr(clean32):
    config = FitConfig(iters=1, seed=4, device="cpu", ssim_every=0)
    plain = fit(_problem(clean32), SMALL, config, [FinalWeights()])
    sgld = fit_variant(
        _problem(clean32),
        SMALL,
        config,
        VariantSettings("sgld", weight_decay=0.0, burn_in=0, sample_every=1),
        [FinalWeights()],
    )
    conv, other = [], []
    for name, before in _weights(plain).items():
        diff = _weights(sgld)[name] - before
        (conv if before.dim() == 4 else other).append(diff.flatten())
    noise = torch.cat(conv)
    assert noise.numel() > 5000
    assert noise.std().item() == pytest.approx(2.0 * 0.01, rel=0.03)  # N(0, (2 lr)^2), the published scale
    assert abs(noise.mean().item()) < 0.001
    assert all(torch.equal(d, torch.zeros_like(d)) for d in other)  # biases and batch-norm get none


def test_posterior_mean_and_std_are_those_of_the_sampled_steps(clean32):
    outputs = Outputs()
    settings = VariantSettings("sgld", burn_in=4, sample_every=3)
    result = fit_variant(
        _problem(clean32), SMALL, FitConfig(iters=12, seed=1, device="cpu", ssim_every=0), settings, [outputs]
    )
    assert result.extras["sgld"]["sample_steps"] == [6, 9, 12]
    samples = torch.stack([outputs.outs[s] for s in (6, 9, 12)]).double()
    posterior = result.extras["images"]["output_posterior"]
    assert torch.allclose(posterior.double(), samples.mean(0), atol=1e-6)
    expected_std = samples.std(0, unbiased=False).mean(dim=1, keepdim=True)
    assert torch.allclose(result.extras["uncertainty"].double(), expected_std, atol=1e-6)
    summary = result.summary(_problem(clean32))
    assert summary["sgld_samples"] == 3
    assert -1 <= summary["uncertainty_error_corr"] <= 1
    assert [r["step"] for r in result.trace if "psnr_posterior" in r] == [6, 9, 12]


def test_a_single_sample_has_zero_uncertainty(clean32):
    settings = VariantSettings("sgld", burn_in=9, sample_every=10)
    result = fit_variant(_problem(clean32), SMALL, FitConfig(iters=12, seed=1, device="cpu", ssim_every=0), settings)
    assert result.summary_extra["sgld_samples"] == 1
    assert torch.count_nonzero(result.extras["uncertainty"]) == 0
    assert result.summary_extra["uncertainty_error_corr"] is None  # a constant map correlates with nothing


def test_correlation_of_maps():
    a = torch.arange(10.0)
    assert correlation(a, 2 * a + 1) == pytest.approx(1.0)
    assert correlation(a, -a) == pytest.approx(-1.0)


def test_a_burn_in_that_leaves_no_sample_is_refused_before_any_work(clean32):
    with pytest.raises(DipsearchError, match="SGLD burn-in of 7000 steps leaves no posterior sample in a run of 2400"):
        fit_variant(_problem(clean32), SMALL, FitConfig(), VariantSettings("sgld"))


@pytest.mark.parametrize(
    "bad, message",
    [
        (dict(variant="mcmc"), "unknown variant 'mcmc'; choose one of plain, sgld"),
        (dict(tv=-0.1), "the TV weight must be >= 0, got -0.1"),
        (dict(sample_every=0), "the SGLD sample interval must be >= 1 step, got 0"),
        (dict(burn_in=-1), "the SGLD burn-in must be >= 0 steps, got -1"),
    ],
)
def test_bad_variant_settings(bad, message):
    with pytest.raises(DipsearchError) as err:
        VariantSettings(**bad)
    assert str(err.value) == message


# ----------------------------------------------------------------------------- TV


def test_tv_gradient_matches_a_finite_difference():
    x = torch.rand(1, 2, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64, requires_grad=True)
    term = tv_term(0.3)
    term(x, None).backward()
    numeric = torch.zeros_like(x)
    eps = 1e-6
    flat = x.detach().flatten()
    for i in range(flat.numel()):
        up, down = flat.clone(), flat.clone()
        up[i] += eps
        down[i] -= eps
        numeric.view(-1)[i] = (term(up.view_as(x), None) - term(down.view_as(x), None)) / (2 * eps)
    assert torch.allclose(x.grad, numeric, atol=1e-7)


def test_tv_is_anisotropic_and_mean_normalised():
    x = torch.tensor([[[[0.0, 1.0, 1.0], [0.0, 0.0, 3.0]]]])
    # vertical |diffs| 0, 1, 2 (mean 1); horizontal 1, 0, 0, 3 (mean 1)
    assert tv_term(0.5)(x, None).item() == pytest.approx(0.5 * (1 + 1))


def test_dip_tv_adds_lambda_tv_of_the_output_to_the_loss(clean32):
    config = FitConfig(iters=1, seed=2, device="cpu", ssim_every=0)
    outputs = Outputs()
    plain = fit(_problem(clean32), SMALL, config, [outputs])
    tv = fit_variant(_problem(clean32), SMALL, config, VariantSettings(tv=0.01))
    expected = 0.01 * tv_term(1.0)(outputs.outs[1], None).item()
    assert tv.trace[0]["loss"] - plain.trace[0]["loss"] == pytest.approx(expected, rel=1e-4)


# ----------------------------------------------------------------------------- warm starts


def test_a_warm_fit_starts_at_the_loss_where_the_cold_fit_ended(clean32, tmp_path):
    config = FitConfig(iters=60, seed=5, device="cpu", ssim_every=0, reg_noise_std=0.0)
    cold = fit(_problem(clean32), SMALL, config, [FinalWeights()])
    path = save_weights(tmp_path / "weights.pt", _weights(cold), SMALL, 3)
    warm = fit_variant(_problem(clean32), SMALL, config.updated(iters=1), VariantSettings(init=str(path)))
    first, last, warm_first = cold.trace[0]["loss"], cold.trace[-1]["loss"], warm.trace[0]["loss"]
    assert last < first / 2
    assert abs(warm_first - last) < 0.05 * (first - last)


def test_the_plain_variant_is_the_plain_fit(clean32):
    config = FitConfig(iters=5, seed=2, device="cpu", ssim_every=0)
    a, b = fit(_problem(clean32), SMALL, config), fit_variant(_problem(clean32), SMALL, config, VariantSettings())
    assert torch.equal(a.output, b.output) and VariantSettings().plain


def test_weights_file_round_trip_and_its_errors(clean32, tmp_path):
    state = {"a": torch.ones(2, 3), "b": torch.arange(4.0)}
    path = save_weights(tmp_path / "weights.pt", state, SMALL, 3)
    loaded = load_weights_file(tmp_path)  # a folder holding weights.pt
    assert loaded.sha256 == state_hash(state) and torch.equal(loaded.state_dict["b"], state["b"])
    assert loaded.spec == SMALL

    with pytest.raises(DipsearchError) as missing:  # the library names its argument; the CLI says --init
        load_weights_file(tmp_path / "nothing.pt")
    assert str(missing.value) == f"init: no such file or folder: {tmp_path / 'nothing.pt'}"
    (tmp_path / "empty").mkdir()
    with pytest.raises(DipsearchError, match="holds no weights.pt"):
        load_weights_file(tmp_path / "empty")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(DipsearchError, match=r"junk\.pt is not a readable weights file"):
        load_weights_file(tmp_path / "junk.pt")
    torch.save({"a": torch.ones(1)}, tmp_path / "bare.pt")
    with pytest.raises(DipsearchError, match="is not a dipsearch weights file"):
        load_weights_file(tmp_path / "bare.pt")
    data = torch.load(path, weights_only=True)
    data["state_dict"]["a"][0, 0] = 5.0
    torch.save(data, tmp_path / "tampered.pt")
    with pytest.raises(DipsearchError, match="is corrupt: its tensors do not match the hash"):
        load_weights_file(tmp_path / "tampered.pt")
    with pytest.raises(
        DipsearchError,
        match=r"another architecture: k_up is \[3, 3, 3\] in the weights file, "
        r"\[5, 5, 5\] in this fit",
    ):
        read_weights(path, OTHER, 3)
    with pytest.raises(DipsearchError) as grey:
        read_weights(path, SMALL, 1)
    assert str(grey.value) == (
        f"init={path}: the weights are for images of 3 channel(s), this image has 1 (grey vs "
        "colour); restore a 3-channel image with these weights, use weights learned on 1-channel images, or drop init"
    )


# ----------------------------------------------------------------------------- genes


def test_variant_genes_decode_into_fit_settings_and_bad_ones_are_refused():
    from dipsearch.nets.space import space_from_dict
    from dipsearch.variants import candidate_variant

    space = space_from_dict(
        {
            "genes": {
                "variant": {"kind": "choice", "choices": ["plain", "sgld"], "default": "sgld"},
                "tv": {"kind": "float", "low": 0.0, "high": 0.01, "default": 0.002},
            }
        }
    )
    settings = candidate_variant(space.fit_settings(space.default()), iters=400)
    assert (settings.variant, settings.tv) == ("sgld", 0.002)
    assert (settings.burn_in, settings.sample_every) == (140, 5)  # the published proportions, scaled to 400 steps
    with pytest.raises(DipsearchError, match="variant 'hmc' is not known; choose among plain, sgld"):
        space_from_dict({"genes": {"variant": {"kind": "choice", "choices": ["plain", "hmc"], "default": "plain"}}})
    with pytest.raises(DipsearchError, match="<space>: the TV weight must be >= 0, got -1"):
        space_from_dict({"fixed": {"tv": -1}})
