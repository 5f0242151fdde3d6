import pytest
import torch
from conftest import SMALL
from recorded import assert_matches_recorded, recorded_column

from dipsearch import ArchSpec, DipsearchError, FitConfig, FitHook, fit, make_problem
from dipsearch.families import DeepDecoderSpec, count_params_of, family_of
from dipsearch.fitting.loop import Engine
from dipsearch.fitting.parts import FitParts, total_variation
from dipsearch.fitting.trace import Lazy


def _problem(clean, seed=0):
    return make_problem("denoise", clean=clean, noise="gaussian", level=25, seed=seed)


def _rows(result):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in result.trace]


def test_the_default_engine_reproduces_the_trace_recorded_before_it_existed(clean32):
    result = fit(_problem(clean32), SMALL, FitConfig(iters=12, seed=3, device="cpu", ssim_every=5))
    assert_matches_recorded(result)


@pytest.mark.parametrize("finite_check", ["auto", "guard"])
def test_traces_are_identical_whether_flushed_every_step_or_every_k(clean32, finite_check):
    base = FitConfig(iters=12, seed=3, device="cpu", ssim_every=5, finite_check=finite_check)
    every_step = fit(_problem(clean32), SMALL, base.updated(trace_every=1))
    every_5 = fit(_problem(clean32), SMALL, base.updated(trace_every=5))
    assert _rows(every_step) == _rows(every_5)  # bit for bit on one machine
    assert_matches_recorded(every_5)
    assert all(isinstance(v, float) for row in every_5.trace for k, v in row.items() if k != "step")


def test_metrics_at_a_cadence_leave_the_fit_alone(clean32):
    result = fit(_problem(clean32), SMALL, FitConfig(iters=12, seed=3, device="cpu", ssim_every=5, metrics_every=4))
    assert [r["step"] for r in result.trace if "psnr" in r] == [1, 4, 8, 12]
    assert [r["loss"] for r in result.trace] == recorded_column("loss")
    problem = _problem(clean32)
    silent = fit(problem, SMALL, FitConfig(iters=3, device="cpu", metrics_every=0))
    assert "psnr" not in silent.trace[-1] and "psnr_peak" not in silent.summary(problem)


def test_ssim_is_recorded_on_the_device_and_fetched_with_the_trace(clean32):
    class Peek(FitHook):
        def on_start(self, problem, spec, config):
            self.kinds = {}

        def on_step(self, state):
            if "ssim" in state.record:
                self.kinds[state.step] = (type(state.record["ssim"]), type(state.record["ssim_ema"]))

    peek = Peek()
    result = fit(_problem(clean32), SMALL, FitConfig(iters=12, seed=3, device="cpu", ssim_every=5), [peek])
    assert peek.kinds == {1: (Lazy, Lazy), 5: (Lazy, Lazy), 10: (Lazy, Lazy)}  # not read while the fit runs
    assert [r["ssim"] for r in result.trace if "ssim" in r] == recorded_column("ssim")


def test_a_hook_can_change_the_update(clean32):
    class Freeze(FitHook):
        """Undoes every update of the head's bias: a toy for Langevin noise or weight decay."""

        def on_start(self, problem, spec, config):
            self.seen = []

        def on_update(self, learner, step):
            assert not torch.is_grad_enabled()
            bias = dict(learner.net.named_parameters())["1.bias"]
            if not self.seen:
                self.initial = bias.clone()
            bias.copy_(self.initial)
            self.seen.append(step)

    hook = Freeze()
    result = Engine(SMALL, FitConfig(iters=6, device="cpu")).run(_problem(clean32), [hook])
    assert hook.seen == list(range(1, 7))
    plain = fit(_problem(clean32), SMALL, FitConfig(iters=6, device="cpu"))
    assert [r["loss"] for r in result.trace][:2] == [r["loss"] for r in plain.trace][:2]
    assert result.trace[-1]["loss"] != plain.trace[-1]["loss"]


def test_a_custom_optimizer_factory_and_a_loss_term(clean32):
    made = []

    def sgd(params, config):
        made.append(config.lr)
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9)

    config = FitConfig(iters=5, device="cpu", lr=0.05)
    result = Engine(SMALL, config, FitParts(optimizer=sgd)).run(_problem(clean32))
    assert made == [0.05]
    plain = fit(_problem(clean32), SMALL, config)
    assert result.trace[-1]["loss"] != plain.trace[-1]["loss"]
    tv = Engine(SMALL, config, FitParts(losses=[total_variation(0.5)])).run(_problem(clean32))
    assert tv.trace[0]["loss"] > plain.trace[0]["loss"]  # the same first output, plus its TV term


def test_initial_weights_from_a_file(clean32, tmp_path):
    donor = family_of(SMALL).build(3)
    torch.nn.init.constant_(donor[1].bias, 3.0)  # a head that starts bright
    path = tmp_path / "weights.pt"
    torch.save(donor.state_dict(), path)
    warm = Engine(SMALL, FitConfig(iters=1, device="cpu"), FitParts(weights=path)).run(_problem(clean32))
    cold = fit(_problem(clean32), SMALL, FitConfig(iters=1, device="cpu"))
    assert warm.output.mean() > 0.9 > cold.output.mean()


def test_weights_that_do_not_match_name_the_first_tensor(clean32, tmp_path):
    other = ArchSpec(
        n_down=[8, 16, 8],
        n_up=[8, 8, 8],
        n_skip=[0, 4, 4],
        k_down=[3] * 3,
        k_up=[3] * 3,
        k_skip=[1] * 3,
        upsample=["bilinear"] * 3,
    )
    path = tmp_path / "other.pt"
    torch.save(family_of(other).build(3).state_dict(), path)
    with pytest.raises(
        DipsearchError,
        match=r"^the weights do not match the network: tensor "
        r"'0\.0\.8\.0\.deeper\.1\.weight' has shape \(16, 8, 3, 3\), the network's is \(8, 8, 3, 3\)$",
    ):
        Engine(SMALL, FitConfig(iters=1, device="cpu"), FitParts(weights=path)).run(_problem(clean32))
    state = family_of(SMALL).build(3).state_dict()
    state.pop("1.bias")
    with pytest.raises(DipsearchError, match="tensor '1.bias' is missing"):
        Engine(SMALL, FitConfig(iters=1, device="cpu"), FitParts(weights=state)).run(_problem(clean32))
    with pytest.raises(DipsearchError, match="weights file not found"):
        Engine(SMALL, FitConfig(iters=1, device="cpu"), FitParts(weights=tmp_path / "nope.pt")).run(_problem(clean32))


def test_the_published_deep_decoder_has_100224_parameters_and_fits():
    from conftest import synthetic_image

    spec = DeepDecoderSpec()
    assert count_params_of(spec, 3) == 6 * 128 * 128 + 6 * 2 * 128 + 128 * 3 == 100_224
    assert spec.input_shape(52, 70) == (128, 2, 3)  # a 70x52 image pads to 96x64; the latent is 1/32 of it
    problem = _problem(synthetic_image(64, 64))
    result = fit(problem, spec, FitConfig(iters=60, device="cpu", reg_noise_std=0.0))
    assert result.params == 100_224 and result.output.shape == (1, 3, 64, 64)
    assert result.trace[-1]["loss"] < result.trace[0]["loss"] / 2


def test_a_deep_decoder_round_trips_through_a_dict():
    from dipsearch.families import spec_from_dict

    spec = DeepDecoderSpec(n_up=(64, 64, 32), k_up=(3, 3, 1), upsample=("bilinear", "nearest", "bilinear"))
    assert spec.to_dict()["family"] == "deep_decoder"
    assert spec_from_dict(spec.to_dict()) == spec
    assert spec_from_dict(ArchSpec().to_dict()) == ArchSpec()
    with pytest.raises(DipsearchError, match="unknown network family 'unet'"):
        spec_from_dict({"family": "unet"})
    with pytest.raises(DipsearchError, match="k_up has 2 levels but n_up has 3"):
        spec_from_dict({"family": "deep_decoder", "n_up": [8, 8, 8], "k_up": [1, 1], "upsample": ["nearest"] * 3})
