"""The NAS-DIP additions: upsampling cell and cross-scale skips as ArchSpec fields and as genes."""

import itertools
import json

import pytest
import torch

from dipsearch import ArchSpec, DipsearchError, build_net, count_params, load_space
from dipsearch.fitting.fit import min_size
from dipsearch.nets.space import SPACES_DIR, cross_skip_gene, space_from_dict, space_to_dict
from dipsearch.nets.upcell import UP_ACTIVATIONS, UP_OPS, UP_PRIMITIVES


def _tiny(**changes) -> ArchSpec:
    base = dict(
        n_down=[4, 8, 8],
        n_up=[4, 8, 8],
        n_skip=[2, 0, 2],
        k_down=[3] * 3,
        k_up=[3] * 3,
        k_skip=[1] * 3,
        upsample=["bilinear"] * 3,
    )
    return ArchSpec(**{**base, **changes})


def _runs(spec: ArchSpec, side: int = 32) -> torch.Tensor:
    with torch.no_grad():
        out = build_net(spec, 3)(torch.rand(1, spec.input_depth, side, side))
    assert out.shape == (1, 3, side, side)
    assert torch.isfinite(out).all()
    return out


@pytest.fixture(scope="module")
def nasdip():
    return load_space(SPACES_DIR / "nasdip.toml")


def test_defaults_leave_the_seed_network_and_its_keys_unchanged():
    spec = ArchSpec()
    assert count_params(build_net(spec, 3)) == 572_827
    assert not {"up_primitive", "up_op", "up_kernel", "up_act", "cross_skip"} & set(spec.to_dict())


def test_every_nasdip_gene_value_decodes_to_a_network_that_runs(nasdip):
    genome = nasdip.default()
    genome.update({"depth": 3, **{f"n_down[{i}]": 16 for i in range(5)}})
    seen = set()
    for primitive, op, kernel, act in itertools.product(UP_PRIMITIVES[1:], UP_OPS, (1, 3, 5, 7), UP_ACTIVATIONS):
        genome.update(up_primitive=primitive, up_op=op, up_kernel=kernel, up_act=act)
        nasdip.validate(genome)
        spec = nasdip.decode(genome)
        assert (spec.up_primitive, spec.up_op, spec.up_act) == (primitive, op, act)
        _runs(spec, side=min_size(spec))
        seen.add(spec.canonical_key())
    # the kernel of an identity op builds nothing, so those genomes share one network
    assert len(seen) == 5 * (3 * 4 + 1) * 3


def test_cell_choices_change_the_network_as_declared():
    plain = count_params(build_net(_tiny(), 3))
    assert count_params(build_net(_tiny(up_primitive="nearest"), 3)) == plain
    # conv op at each level: c*c*k*k + c, with c = channels arriving from the level below (8, 8, 8)
    assert count_params(build_net(_tiny(up_op="conv", up_kernel=5), 3)) == plain + 3 * (8 * 8 * 25 + 8)
    assert count_params(build_net(_tiny(up_op="depthwise", up_kernel=5), 3)) == plain + 3 * (8 * 25 + 8)
    assert count_params(build_net(_tiny(up_op="separable", up_kernel=5), 3)) == plain + 3 * (8 * 25 + 8 + 8 * 8 + 8)
    assert count_params(build_net(_tiny(up_primitive="pixel_shuffle"), 3)) == plain + 3 * (8 * 32 + 32)
    assert count_params(build_net(_tiny(up_primitive="transposed"), 3)) == plain + 3 * (8 * 8 * 16 + 8)


@pytest.mark.parametrize("level,source", list(itertools.product(range(3), range(3))))
def test_every_cross_skip_pair_builds_runs_and_matters(level, source):
    spec = _tiny(cross_skip=[[level, source]])
    torch.manual_seed(0)
    net = build_net(spec, 3)
    source_channels = 3 if source == 0 else spec.n_down[source - 1]
    projection = 0 if source_channels == spec.n_up[level] else source_channels * spec.n_up[level]
    assert count_params(net) == count_params(build_net(_tiny(), 3)) + projection
    z = torch.rand(1, 3, 32, 32)
    out = net(z)
    assert out.shape == (1, 3, 32, 32)
    out.mean().backward()  # gradients reach the projection, so the skip is part of the graph
    assert not net.store.features  # no activation outlives the forward pass


def test_cross_skip_out_of_range_is_named():
    with pytest.raises(DipsearchError, match=r"cross_skip pair \[3, 0\] is out of range.*0 to 2 at depth 3"):
        _tiny(cross_skip=[[3, 0]])
    with pytest.raises(DipsearchError, match="cross_skip must be a list of"):
        _tiny(cross_skip=[3])
    with pytest.raises(DipsearchError, match="up_kernel must be 1, 3, 5 or 7, got 9"):
        _tiny(up_op="conv", up_kernel=9)
    with pytest.raises(DipsearchError, match="up_primitive 'lanczos' is not one of"):
        _tiny(up_primitive="lanczos")


def test_nasdip_fields_round_trip_through_toml_and_json(tmp_path):
    spec = _tiny(up_primitive="transposed", up_op="separable", up_kernel=7, up_act="relu", cross_skip=[[2, 0], [0, 1]])
    (tmp_path / "a.toml").write_text(spec.to_toml())
    (tmp_path / "a.json").write_text(json.dumps(spec.to_dict()))
    assert ArchSpec.load(tmp_path / "a.toml") == spec == ArchSpec.load(tmp_path / "a.json")
    assert spec.cross_skip == ((0, 1), (2, 0))


def test_cross_skip_genes_follow_the_genome_depth(nasdip):
    genome = nasdip.default()
    assert nasdip.decode(genome).cross_skip == ((0, 0), (2, 2))
    genome[cross_skip_gene(4, 4)] = 1
    genome["depth"] = 4
    assert nasdip.decode(genome).cross_skip == ((0, 0), (2, 2))  # level 4 does not exist at depth 4
    assert cross_skip_gene(4, 4) not in nasdip.active(genome)
    genome["depth"] = 5
    assert nasdip.decode(genome).cross_skip == ((0, 0), (2, 2), (4, 4))


def test_nasdip_space_survives_the_worker_round_trip(nasdip):
    assert space_from_dict(space_to_dict(nasdip), source=nasdip.source) == nasdip


@pytest.mark.parametrize(
    "text,message",
    [
        (
            "[cross_skip]\ndefault = [[0, 5]]\n",
            r"\[cross_skip\] default must be a list of \[decoder level, source\] pairs",
        ),
        ("[cross_skip]\non = []\n", r"\[cross_skip\] takes one key"),
        ("[cross_skip]\ndefault = []\n[fixed]\ncross_skip = [[0, 0]]\n", "both searched .* and fixed"),
    ],
)
def test_bad_cross_skip_tables_are_named(tmp_path, text, message):
    path = tmp_path / "s.toml"
    path.write_text(text)
    with pytest.raises(DipsearchError, match=message):
        load_space(path)


def test_fixed_cross_skips_drop_pairs_beyond_the_depth(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        '[genes.depth]\nkind = "int"\nlow = 3\nhigh = 5\ndefault = 5\n[fixed]\ncross_skip = [[0, 1], [4, 0]]\n'
    )
    space = load_space(path)
    genome = space.default()
    assert space.decode(genome).cross_skip == ((0, 1), (4, 0))
    genome["depth"] = 3
    assert space.decode(genome).cross_skip == ((0, 1),)
