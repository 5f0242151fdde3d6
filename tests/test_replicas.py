"""Replica batching: K networks of one architecture as one module, K fits as one batched fit."""

import pytest
import torch
from conftest import SMALL, synthetic_image
from torch import nn

from dipsearch import ArgumentError, DipsearchError, FitConfig, fit, make_problem
from dipsearch.families import DeepDecoderSpec, family_of
from dipsearch.families.replicas import Replicas, build_replicas
from dipsearch.fitting.loop import Engine
from dipsearch.fitting.parts import FitParts
from dipsearch.fitting.replicas import fit_replicas

SPECS = [SMALL, DeepDecoderSpec(n_up=(8, 8, 8), k_up=(3, 3, 3), upsample=("bilinear",) * 3)]


def _nets(spec, seeds):
    nets = []
    for seed in seeds:
        torch.manual_seed(seed)
        nets.append(family_of(spec).build(3))
    return nets


def _input(spec, k, size=32):
    family = family_of(spec)
    return torch.stack([family.make_input(size, size, 0.1, torch.Generator().manual_seed(s)) for s in range(k)])


@pytest.mark.parametrize("spec", SPECS, ids=["hourglass", "deep_decoder"])
def test_each_replica_gives_the_output_and_gradients_of_its_own_network(spec):
    nets = _nets(spec, [0, 1, 2])
    replicas = Replicas(nets)
    x = _input(spec, 3)
    target = torch.rand(3, 1, 3, 32, 32)
    out = replicas(x)
    ((out - target) ** 2).mean(dim=(1, 2, 3, 4)).sum().backward()
    for k, net in enumerate(nets):
        single = net(x[k])
        torch.testing.assert_close(out[k].detach(), single.detach(), rtol=1e-5, atol=1e-6)
        ((single - target[k]) ** 2).mean().backward()
        for i, (name, param) in enumerate(net.named_parameters()):
            assert replicas.param_names[i] == name
            torch.testing.assert_close(replicas.stacked[i].grad[k], param.grad, rtol=1e-4, atol=1e-6)
    assert not torch.equal(out[0], out[1])  # the replicas really are different networks


def test_batch_norm_statistics_stay_per_replica():
    nets = _nets(SMALL, [0, 1])
    replicas = Replicas(nets)
    x = _input(SMALL, 2)
    replicas(x)
    for k, net in enumerate(nets):
        net(x[k])
        state = replicas.replica_state(k)
        for name, buffer in net.named_buffers():
            torch.testing.assert_close(state[name], buffer, rtol=1e-5, atol=1e-6)
    means = [n for n in replicas.buffer_names if n.endswith("running_mean")]
    assert means and not torch.equal(replicas.replica_state(0)[means[0]], replicas.replica_state(1)[means[0]])
    assert replicas.replica_state(0)[means[0].replace("running_mean", "num_batches_tracked")] == 1


def test_build_replicas_gives_each_seed_the_network_a_fit_would_build():
    replicas = build_replicas(SMALL, 3, [5, 9])
    for k, seed in enumerate([5, 9]):
        torch.manual_seed(seed)
        expected = family_of(SMALL).build(3).state_dict()
        got = replicas.replica(k).state_dict()
        assert all(torch.equal(got[name], value) for name, value in expected.items())


# "Float tolerance" for a fit: a grouped convolution sums in another order, and a DIP fit amplifies any
# rounding-level change within a few steps (Adam divides each gradient by its own running size, so a bias that
# feeds a batch norm, true gradient 0 and computed ~1e-10 of noise, moves by up to lr either way). So a replica
# is held to what the same separate fit does when its input is changed by one part in 10^7: no further off than
# twice that (or 1e-5).
def _rounding_spread(problem, config, seed):
    def nudged(family, h, w, gen):
        return family.make_input(h, w, config.input_scale, gen) * (1 + 1e-7)

    separate = fit(problem, SMALL, config.updated(seed=seed))
    other = Engine(SMALL, config.updated(seed=seed), FitParts(input=nudged)).run(problem)
    return separate, max((separate.output - other.output).abs().max().item(), 1e-5)


def _close_results(batched, problem, config, seed):
    separate, spread = _rounding_spread(problem, config, seed)
    torch.testing.assert_close(batched.output, separate.output, rtol=0, atol=2 * spread)
    assert [r["step"] for r in batched.trace] == [r["step"] for r in separate.trace]
    for mine, theirs in zip(batched.trace, separate.trace):
        assert mine.keys() == theirs.keys()
        assert mine["loss"] == pytest.approx(theirs["loss"], rel=10 * spread)
        assert mine["psnr"] == pytest.approx(theirs["psnr"], abs=10 * spread)


def test_a_replica_fit_of_several_seeds_equals_separate_seeded_fits():
    problem = make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25, seed=0)
    config = FitConfig(iters=6, device="cpu", ssim_every=3, guard_every=3)
    batched = fit_replicas(problem, SMALL, config, seeds=[0, 3, 7])
    assert len(batched) == 3
    for seed, result in zip([0, 3, 7], batched):
        _close_results(result, problem, config, seed)
    assert batched[0].summary(problem)["replicas"] == 3


def test_a_replica_fit_of_several_images_equals_separate_fits():
    images = [synthetic_image(32, 32), synthetic_image(32, 32).flip(-1)]
    problems = [make_problem("denoise", clean=c, noise="gaussian", level=25, seed=i) for i, c in enumerate(images)]
    config = FitConfig(iters=6, device="cpu", ssim_every=0, seed=4)
    batched = fit_replicas(problems, SMALL, config)  # seeds 4 and 5
    for k, result in enumerate(batched):
        _close_results(result, problems[k], config, 4 + k)


class _ReadsTheHost(nn.Module):
    """A layer that decides on the host from the data: vmap cannot batch that."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x) if x.mean().item() > 0 else x


def test_a_network_that_cannot_be_batched_is_one_clear_error():
    replicas = Replicas([_ReadsTheHost(), _ReadsTheHost()])
    with pytest.raises(DipsearchError, match=r"^this network cannot be batched as replicas \(_ReadsTheHost\): "):
        replicas.probe(torch.rand(2, 1, 3, 8, 8))


def test_replicas_of_different_architectures_are_refused():
    other = SMALL.__class__(**{**SMALL.to_dict(), "n_down": [8, 8, 16]})
    with pytest.raises(DipsearchError, match="replicas must share one architecture, but replica 1 differs"):
        Replicas([*_nets(SMALL, [0]), *_nets(other, [0])])


def test_replica_fits_refuse_mismatched_inputs():
    problems = [
        make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25),
        make_problem("denoise", clean=synthetic_image(32, 40), noise="gaussian", level=25),
    ]
    with pytest.raises(DipsearchError, match="the images must share one size"):
        fit_replicas(problems, SMALL, FitConfig(iters=2, device="cpu"))
    with pytest.raises(ArgumentError, match="seeds must give one seed per problem: 2 problems, 3 seeds"):
        fit_replicas(problems, SMALL, FitConfig(iters=2, device="cpu"), seeds=[0, 1, 2])
