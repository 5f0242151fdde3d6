import tomllib

import pytest

from dipsearch import ArchSpec, DipsearchError, load_space
from dipsearch.cli import main
from dipsearch.errors import ArgumentError
from dipsearch.families import SPEC_CLASSES, DeepDecoderSpec, count_params_of, family_of
from dipsearch.nets.genes import FIT_GENES, check_fit_settings, config_settings, fit_settings_of
from dipsearch.nets.space import SPACES_DIR, space_from_dict


def test_the_deep_decoder_space_defaults_to_the_published_network():
    space = load_space(SPACES_DIR / "deep_decoder.toml")
    spec = space.decode(space.default())
    assert spec == DeepDecoderSpec() and count_params_of(spec) == 100_224
    assert space.fit_settings(space.default()) == {"lr": 0.01, "reg_noise_std": 0.0}
    shallow = space.decode({**space.default(), "depth": 3, "n_up[0]": 32, "k_up[1]": 3})
    assert shallow.n_up == (32, 128, 128) and shallow.k_up == (1, 3, 1)


def test_a_space_names_its_family_and_only_that_family_s_genes():
    with pytest.raises(DipsearchError, match="unknown network family 'unet'"):
        space_from_dict({"family": "unet"}, "x.toml")
    with pytest.raises(
        DipsearchError,
        match=r"x\.toml: per-level gene 'n_skip' is not known; known: n_up, k_up, "
        "upsample",
    ):
        space_from_dict(
            {"family": "deep_decoder", "levels": {"n_skip": {"kind": "int", "low": 0, "high": 4, "default": 0}}},
            "x.toml",
        )


@pytest.mark.parametrize("family", list(SPEC_CLASSES))
def test_each_family_declares_its_genes_once_and_the_space_reads_them(family):
    cls = SPEC_CLASSES[family]
    spec = cls()
    genes = cls.genes
    assert family_of(spec).genes is genes
    # The per-level genes are exactly the spec's fields holding one value per level.
    per_level = [
        name
        for name, value in vars(spec).items()
        if isinstance(value, tuple) and len(value) == spec.depth and name != "cross_skip"
    ]
    assert sorted(genes.per_level) == sorted(per_level)
    assert genes.arch_globals[0] == "depth" and set(genes.global_per_level) <= set(genes.per_level)
    assert set(genes.arch_globals[1:]) <= set(vars(spec))
    space = space_from_dict(
        {"family": family, "genes": {"lr": {"kind": "float", "low": 0.001, "high": 0.1, "default": 0.01}}}, "x.toml"
    )
    assert space.family_genes is genes
    with pytest.raises(DipsearchError) as err:
        space_from_dict(
            {"family": family, "genes": {"n_skip": {"kind": "int", "low": 0, "high": 4, "default": 0}}}, "x.toml"
        )
    assert str(err.value) == f"x.toml: gene 'n_skip' is not a known global gene; known: {', '.join(genes.global_genes)}"
    assert genes.global_genes == genes.arch_globals + FIT_GENES + genes.global_per_level


def test_fit_setting_genes_are_read_and_checked_in_one_place():
    settings = {"lr": 0.02, "tv": 0.001, "depth": 4, "iters": 50, "variant": "sgld", "reg_noise_std": 0.0}
    assert fit_settings_of(settings) == {"lr": 0.02, "reg_noise_std": 0.0, "iters": 50, "variant": "sgld", "tv": 0.001}
    assert config_settings(settings) == {"lr": 0.02, "reg_noise_std": 0.0}
    check_fit_settings(settings)
    with pytest.raises(ArgumentError) as err:
        check_fit_settings({"reg_noise_std": float("nan")})
    assert str(err.value) == "reg_noise_std must be a finite number >= 0, got nan"
    assert err.value.render({"reg_noise_std": "--reg-noise"}) == "--reg-noise must be a finite number >= 0, got nan"
    with pytest.raises(DipsearchError, match=r"^iters must be at least 1, got 0 \(in \[fixed\] of x.toml\)$"):
        check_fit_settings({"iters": 0}, "in [fixed] of x.toml")


def test_hourglass_protocol_keeps_archspec_and_its_parameter_counts():
    reference = ArchSpec(n_down=[128] * 5, n_up=[128] * 5, n_skip=[4] * 5, input_depth=32)
    inpainting = ArchSpec(n_down=[128] * 5, n_up=[128] * 5, n_skip=[128] * 5, input_depth=32, upsample=["nearest"] * 5)
    assert [count_params_of(s) for s in (ArchSpec(), reference, inpainting)] == [572_827, 2_217_831, 3_002_627]
    assert family_of(ArchSpec()).padded_shape(52, 70) == (64, 96)
    assert family_of(ArchSpec()).size_error(52, 70) is None


def test_a_deep_decoder_arch_file_is_accepted_by_fit(tmp_path, image_file):
    arch = tmp_path / "best_arch.toml"
    arch.write_text(
        DeepDecoderSpec(n_up=(16, 16, 16), k_up=(1, 3, 1), upsample=("bilinear",) * 3).to_toml()
        + "\n[fit]\nreg_noise_std = 0.0\n"
    )
    out = tmp_path / "runs"
    code = main(
        [
            "fit",
            "--clean",
            str(image_file("c.png", 40, 56)),
            "--arch",
            str(arch),
            "--iters",
            "3",
            "--device",
            "cpu",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    (run,) = (out / "fit").iterdir()
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["arch"]["family"] == "deep_decoder" and config["fit"]["reg_noise_std"] == 0.0
