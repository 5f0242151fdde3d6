import random

import pytest

from dipsearch import ArchSpec, DipsearchError, load_space
from dipsearch.nets.space import SPACES_DIR, find_space, space_from_dict


@pytest.fixture(scope="module")
def wide():
    return load_space(SPACES_DIR / "wide.toml")


def test_wide_space_matches_its_declared_ranges(wide):
    assert wide.max_depth == 6
    assert wide.genes["n_down[5]"].low == 8 and wide.genes["n_down[5]"].high == 256
    assert set(wide.genes["upsample[0]"].choices) == {"nearest", "bilinear", "bicubic"}
    assert set(wide.genes["downsample"].choices) == {"stride", "avg", "max"}
    assert set(wide.genes["activation"].choices) == {"leaky_relu", "swish", "elu"}
    assert wide.decode(wide.default()) == ArchSpec()


def test_samples_are_seeded_legal_and_decode(wide):
    a = [wide.sample(random.Random(7)) for _ in range(2)]
    assert a[0] == a[1]
    rng = random.Random(1)
    depths = set()
    for _ in range(50):
        genome = wide.sample(rng)
        wide.validate(genome)
        spec = wide.decode(genome)
        depths.add(spec.depth)
        assert spec.depth == genome["depth"]
        assert spec.n_down == tuple(genome[f"n_down[{i}]"] for i in range(spec.depth))
    assert depths == {3, 4, 5, 6}


def test_levels_beyond_the_depth_are_ignored(wide):
    genome = wide.default()
    genome["depth"] = 3
    before = wide.decode(genome)
    genome["n_down[4]"] = 200
    assert wide.decode(genome) == before
    assert "n_down[4]" not in wide.active(genome) and "n_down[2]" in wide.active(genome)


def test_fit_settings_come_from_genes_or_fixed():
    space = load_space(SPACES_DIR / "default.toml")
    genome = space.default()
    genome["lr"] = 0.003
    assert space.fit_settings(genome) == {"lr": 0.003, "reg_noise_std": pytest.approx(1 / 30)}


def test_ties_make_symmetric_hourglasses():
    space = space_from_dict(
        {
            "genes": {"depth": {"kind": "int", "low": 2, "high": 3, "default": 3}},
            "levels": {"n_down": {"kind": "choice", "choices": [8, 16], "default": [8, 16, 16]}},
            "ties": {"n_up": "n_down"},
            "fixed": {"n_skip": [0, 0, 0], "k_down": 3},
        }
    )
    spec = space.decode(space.default())
    assert spec.n_up == spec.n_down == (8, 16, 16)
    assert spec.k_down == (3, 3, 3)


def _space(tmp_path, text):
    path = tmp_path / "space.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    "text, message",
    [
        ('[genes.width]\nkind = "int"\nlow = 1\nhigh = 2\ndefault = 1\n', "gene 'width' is not a known global gene"),
        (
            '[genes.lr]\nkind = "float"\nlow = 0.1\nhigh = 0.01\ndefault = 0.05\n',
            r"gene 'lr': low \(0.1\) must be below high \(0.01\)",
        ),
        ('[genes.lr]\nkind = "float"\nlow = 0.001\nhigh = 0.01\ndefault = 0.5\n', r"gene 'lr': default 0.5 is outside"),
        (
            '[genes.lr]\nkind = "real"\nlow = 0.001\nhigh = 0.01\ndefault = 0.005\n',
            "kind must be one of int, float, choice",
        ),
        (
            '[genes.lr]\nkind = "float"\nlow = 0.0\nhigh = 0.01\nlog = true\ndefault = 0.005\n',
            "log-scaled gene needs low > 0",
        ),
        (
            '[genes.depth]\nkind = "int"\nlow = 3\nhigh = 6\ndefault = 5\n[levels.n_down]\nkind = "choice"\nchoices = [8]\ndefault = [8, 8]\n',
            "default has 2 entries but depth goes up to 6",
        ),
        (
            '[genes.activation]\nkind = "choice"\nchoices = ["elu"]\ndefault = "relu"\n',
            "default 'relu' is not among the choices",
        ),
        ('[genes.lr]\nkind = "float"\nhigh = 0.01\ndefault = 0.005\n', "'low' must be a number"),
        ('[fixed]\ninput_kind = "meshgrid"\n', "meshgrid input has 2 channels"),
        ("[search]\nx = 1\n", r"unknown table or key\(s\) search"),
        (
            '[genes.depth]\nkind = "int"\nlow = 3\nhigh = 6\ndefault = 5\n',
            r"depth goes up to 6 but n_down \(the seed default: \[8, 16, 32, 64, 128\]\) has only 5 levels",
        ),
    ],
)
def test_bad_space_files_say_file_gene_and_problem(tmp_path, text, message):
    path = _space(tmp_path, text)
    with pytest.raises(DipsearchError, match=message) as info:
        load_space(path)
    assert str(path) in str(info.value)


def test_missing_and_malformed_space_files(tmp_path):
    with pytest.raises(DipsearchError, match="search-space file not found"):
        load_space(tmp_path / "nope.toml")
    with pytest.raises(DipsearchError, match="is not valid TOML"):
        load_space(_space(tmp_path, "[genes\n"))


def test_find_space_by_name():
    assert find_space("wide") == SPACES_DIR / "wide.toml"
    with pytest.raises(DipsearchError, match="neither a file nor a known space name"):
        find_space("nonexistent")


def test_validate_rejects_foreign_genomes(wide):
    genome = wide.default()
    genome["n_down[0]"] = 1000
    with pytest.raises(DipsearchError, match="outside its range"):
        wide.validate(genome)
    with pytest.raises(DipsearchError, match="unknown"):
        wide.validate({**wide.default(), "extra": 1})
