"""TOML written by dipsearch (tomli_w underneath) loads back as what was written, with None left out."""

import math
import tomllib
from pathlib import Path

import pytest

from dipsearch import ArchSpec
from dipsearch.families import DeepDecoderSpec, load_spec
from dipsearch.store.tomlio import dumps_toml


def test_a_document_loads_back_as_written_with_none_left_out_at_every_depth():
    data = {
        "name": "x",
        "init": None,
        "seed": 3,
        "ok": True,
        "lr": 1e-05,
        "big": 2**40,
        "nan": math.nan,
        "low": -math.inf,
        "where": Path("/tmp/a b"),
        "text": 'quote " back \\ line\n tab\t é',
        "k y": [1, 2],
        "pairs": [[0, 1], [2, 3]],
        "empty": [],
        "t": {"a": None, "b": {"c": 1, "d": None}, "e": (1.5, 2.5)},
        "unset": {"x": None},
    }
    loaded = tomllib.loads(dumps_toml(data))
    assert math.isnan(loaded.pop("nan"))
    assert loaded == {
        "name": "x",
        "seed": 3,
        "ok": True,
        "lr": 1e-05,
        "big": 2**40,
        "low": -math.inf,
        "where": "/tmp/a b",
        "text": 'quote " back \\ line\n tab\t é',
        "k y": [1, 2],
        "pairs": [[0, 1], [2, 3]],
        "empty": [],
        "t": {"b": {"c": 1}, "e": [1.5, 2.5]},
        "unset": {},
    }
    assert dumps_toml({}) == "" and dumps_toml({"a": None}) == ""


def test_a_list_of_tables_is_written_and_a_none_in_a_list_is_refused_by_name():
    assert tomllib.loads(dumps_toml({"jobs": [{"seed": 0, "note": None}, {"seed": 1}]})) == {
        "jobs": [{"seed": 0}, {"seed": 1}]
    }
    with pytest.raises(TypeError, match=r"^cannot write fit\.levels to TOML: the list holds None"):
        dumps_toml({"fit": {"levels": [1, None]}})


@pytest.mark.parametrize(
    "spec", [ArchSpec(cross_skip=((1, 0),)), DeepDecoderSpec(n_up=(16, 16), k_up=(1, 3), upsample=("nearest",) * 2)]
)
def test_an_architecture_file_loads_back_as_the_same_spec(tmp_path, spec):
    path = tmp_path / "best_arch.toml"
    path.write_text(spec.to_toml() + "\n[fit]\nlr = 0.005\n")  # as `fit --arch` reads one with its settings
    assert load_spec(path) == spec
