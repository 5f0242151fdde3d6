import json

import pytest
import torch
from torch import nn

from dipsearch import ArchSpec, DipsearchError, build_net, count_params, load_space
from dipsearch.nets.arch import Concat
from dipsearch.nets.space import SPACES_DIR


def test_seed_default_genome_builds_the_reference_network():
    space = load_space(SPACES_DIR / "default.toml")
    spec = space.decode(space.default())
    assert spec == ArchSpec()
    assert count_params(build_net(spec, 3)) == 572_827


def test_reference_denoising_network_parameter_count():
    spec = ArchSpec(n_down=[128] * 5, n_up=[128] * 5, n_skip=[4] * 5, input_depth=32)
    assert count_params(build_net(spec, 3)) == 2_217_831


def test_reference_kate_inpainting_network_parameter_count():
    spec = ArchSpec(n_down=[128] * 5, n_up=[128] * 5, n_skip=[128] * 5, input_depth=32, upsample=["nearest"] * 5)
    assert count_params(build_net(spec, 3)) == 3_002_627


def _types(module):
    return [type(m).__name__ for m in module]


def test_one_level_has_the_reference_layer_order():
    spec = ArchSpec(
        n_down=[8, 16],
        n_up=[8, 16],
        n_skip=[4, 0],
        k_down=[3, 3],
        k_up=[3, 3],
        k_skip=[1, 1],
        upsample=["bilinear", "nearest"],
    )
    net = build_net(spec, 3)
    level0 = net[0]
    assert _types(level0) == [
        "Concat",
        "BatchNorm2d",
        "ReflectionPad2d",
        "Conv2d",
        "BatchNorm2d",
        "LeakyReLU",
        "Conv2d",
        "BatchNorm2d",
        "LeakyReLU",
    ]
    concat = level0[0]
    assert isinstance(concat, Concat)
    assert _types(concat.skip) == ["Conv2d", "BatchNorm2d", "LeakyReLU"]  # 1x1 skip conv needs no padding
    assert _types(concat.deeper) == [
        "ReflectionPad2d",
        "Conv2d",
        "BatchNorm2d",
        "LeakyReLU",
        "ReflectionPad2d",
        "Conv2d",
        "BatchNorm2d",
        "LeakyReLU",
        "Sequential",
        "Upsample",
    ]
    assert concat.deeper[1].stride == (2, 2) and concat.deeper[5].stride == (1, 1)
    assert level0[1].num_features == 4 + 16  # skip channels + n_up of the next level
    level1 = concat.deeper[8]
    assert isinstance(level1[0], nn.Sequential)  # no skip at level 1: no concatenation
    assert level1[1].num_features == 16  # deepest level: n_down
    assert concat.deeper[9].mode == "bilinear" and level1[0][-1].mode == "nearest"
    assert _types(net)[1:] == ["Conv2d", "Sigmoid"]
    assert net[1].kernel_size == (1, 1) and net[1].bias is not None


@pytest.mark.parametrize("downsample", ["stride", "avg", "max"])
@pytest.mark.parametrize("activation", ["leaky_relu", "swish", "elu", "none"])
def test_variants_keep_the_image_size(downsample, activation):
    spec = ArchSpec(
        n_down=[4, 4, 4],
        n_up=[4, 4, 4],
        n_skip=[2, 0, 2],
        k_down=[3, 5, 1],
        k_up=[1, 3, 5],
        k_skip=[3, 1, 1],
        upsample=["bicubic", "nearest", "bilinear"],
        downsample=downsample,
        activation=activation,
        pad="zero",
        need1x1_up=False,
    )
    out = build_net(spec, 1)(torch.rand(1, 3, 32, 24))
    assert out.shape == (1, 1, 32, 24)
    assert 0 <= out.min() and out.max() <= 1


def test_meshgrid_input_needs_two_channels():
    with pytest.raises(DipsearchError, match="meshgrid input has 2 channels"):
        ArchSpec(input_kind="meshgrid", input_depth=3)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"n_up": [8, 16]}, "n_up has 2 levels but n_down has 5"),
        ({"k_down": [3, 3, 4, 3, 3]}, "k_down must be odd"),
        ({"upsample": ["bilinear"] * 4 + ["lanczos"]}, "upsample 'lanczos' is not one of"),
        ({"n_skip": [0, 0, -1, 4, 4]}, "n_skip must be integers >= 0"),
        ({"activation": "gelu"}, "activation 'gelu' is not one of"),
    ],
)
def test_bad_arch_values_are_named(changes, message):
    with pytest.raises(DipsearchError, match=message):
        ArchSpec(**changes)


def test_arch_round_trips_through_toml_and_json(tmp_path):
    spec = ArchSpec(
        n_down=[16, 32, 64],
        n_up=[16, 16, 64],
        n_skip=[0, 4, 8],
        k_down=[3, 5, 3],
        k_up=[3, 3, 1],
        k_skip=[1, 1, 3],
        upsample=["nearest", "bilinear", "bicubic"],
        activation="swish",
    )
    toml_file = tmp_path / "arch.toml"
    toml_file.write_text(spec.to_toml())
    assert ArchSpec.load(toml_file) == spec
    json_file = tmp_path / "arch.json"
    json_file.write_text(json.dumps(spec.to_dict()))
    assert ArchSpec.load(json_file) == spec


def test_arch_file_errors_name_the_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[arch]\nn_down = [8, 16]\nwidth = 3\n")
    with pytest.raises(DipsearchError, match=r"bad.toml: unknown key\(s\) width"):
        ArchSpec.load(bad)
    with pytest.raises(DipsearchError, match="architecture file not found"):
        ArchSpec.load(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[arch\n")
    with pytest.raises(DipsearchError, match="is not valid TOML"):
        ArchSpec.load(broken)
