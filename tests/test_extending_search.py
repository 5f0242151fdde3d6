"""The worked examples of docs/extending/ run as written: a new searcher and a new score, each one module."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from dipsearch.errors import ArgumentError
from dipsearch.scoring import fitness
from dipsearch.search import base

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "extending" / "examples"


@pytest.fixture(autouse=True)
def registries_as_they_were(monkeypatch):
    # The examples register themselves; other tests see the registries unchanged.
    monkeypatch.setattr(base, "SEARCHERS", dict(base.SEARCHERS))
    monkeypatch.setattr(fitness, "FITNESSES", dict(fitness.FITNESSES))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the registries name classes by module, as "module:Class"
    spec.loader.exec_module(module)
    return module


def test_the_example_searcher_registers_and_runs(tmp_path):
    example = _load("neighbour_searcher")
    assert base.get_searcher("neighbours").name == "neighbours"
    summary = example.main(out=str(tmp_path))
    assert summary["evaluations"] == 3 and summary["best_fitness"] is not None
    (folder,) = (tmp_path / "search").glob("*_neighbours")
    assert base.searcher_of_folder(folder) == "neighbours"


def test_the_example_score_registers_runs_and_refuses_what_it_cannot_score(tmp_path):
    from dipsearch.problems.make import make_problem

    example = _load("observed_score")
    assert fitness.make_fitness("observed").name == "observed"
    summary = example.main(out=str(tmp_path))
    assert summary["evaluations"] == 2 and summary["best_fitness"] > 0
    problem = make_problem("sr", clean=torch.rand(1, 3, 32, 32), factor=2)
    with pytest.raises(ArgumentError, match=r"^fitness 'observed' scores denoising only, not 'sr'$"):
        fitness.make_fitness("observed", problem)
    with pytest.raises(ArgumentError, match=r"^unknown fitness 'nope'; choose one of holdout, psnr, sure, observed$"):
        fitness.make_fitness("nope")
