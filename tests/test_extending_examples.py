"""The worked examples of docs/extending/ run as the pages say: a new stopping detector and a new network family."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch
from conftest import SMALL, synthetic_image

import dipsearch
from dipsearch import families
from dipsearch.errors import DipsearchError
from dipsearch.fitting import loop as engine
from dipsearch.fitting import parts
from dipsearch.nets.space import space_from_dict
from dipsearch.stopping import DETECTORS, StoppingHook, make_detector, replay

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "extending" / "examples"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"docs_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is created
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def problem():
    return dipsearch.make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25, seed=0)


def test_a_registered_detector_stops_a_fit_and_replays(problem, monkeypatch):
    OutputChange = _load("toy_detector").OutputChange
    monkeypatch.setitem(DETECTORS, OutputChange.name, OutputChange)  # the page's registry line

    detector = make_detector("change", warmup=5)
    hook = StoppingHook.online(detector, detector.rule(patience=20))
    result = dipsearch.fit(hook.prepare(problem), SMALL, dipsearch.FitConfig(iters=400, seed=0), [hook])
    summary = result.summary(problem)
    assert summary["stop_detector"] == "change"
    assert summary["stop_fired"] and summary["stopped_iter"] < summary["iters_run"] < 400
    assert result.extras["images"]["output_stopped"].shape == problem.clean.shape

    # recorded passively, the same statistic is replayed offline under another patience
    recorder = StoppingHook([OutputChange(warmup=5)])
    trace = dipsearch.fit(recorder.prepare(problem), SMALL, dipsearch.FitConfig(iters=60, seed=0), [recorder]).trace
    assert "stat_change" in trace[-1]
    decision = replay(trace, OutputChange().rule(patience=20))
    assert decision.chosen is not None and decision.chosen > 5


def test_the_detector_refuses_a_bad_setting():
    with pytest.raises(DipsearchError, match=r"change: beta must be in \[0, 1\), got 1.5"):
        _load("toy_detector").OutputChange(beta=1.5)


def test_a_registered_family_fits_loads_and_is_searched(problem, monkeypatch, tmp_path):
    ConvStackSpec = _load("toy_family").ConvStackSpec
    # the page's two registry lines, as edits of dipsearch/families/__init__.py would make them
    monkeypatch.setitem(families.SPEC_CLASSES, ConvStackSpec.name, ConvStackSpec)
    closed = families.family_of

    def family_of(spec):
        return spec if isinstance(spec, ConvStackSpec) else closed(spec)

    monkeypatch.setattr(families, "family_of", family_of)
    monkeypatch.setattr(engine, "family_of", family_of)
    monkeypatch.setattr(parts, "family_of", family_of)

    spec = ConvStackSpec(width=(8, 8))
    result = dipsearch.fit(problem, spec, dipsearch.FitConfig(iters=30, seed=0))
    assert result.summary(problem)["params"] == sum(p.numel() for p in spec.build(3).parameters())

    path = tmp_path / "arch.toml"
    path.write_text('[arch]\nfamily = "conv_stack"\nwidth = [8, 8]\ninput_depth = 8\n')
    assert families.load_spec(path) == spec

    space = space_from_dict(
        {
            "name": "stack",
            "family": "conv_stack",
            "genes": {"depth": {"kind": "int", "low": 1, "high": 3, "default": 2}},
            "levels": {"width": {"kind": "choice", "choices": [4, 8], "default": 8}},
        }
    )
    assert space.decode(space.default()) == spec
    with pytest.raises(DipsearchError, match="conv stack: width must be positive integers"):
        ConvStackSpec(width=(8, 0))


def test_a_registered_variant_fits_and_is_a_gene_choice(monkeypatch):
    from dipsearch import variants
    from dipsearch.errors import ArgumentError

    monkeypatch.setitem(variants.VARIANTS, "adamw", None)  # restored (removed) after the test
    example = _load("adamw_variant")
    assert variants.VARIANTS["adamw"] is example.AdamW

    seen = []

    class Optimizer(dipsearch.FitHook):
        def on_update(self, learner, step):
            seen.append(type(learner.optimizer).__name__)

    problem = dipsearch.make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25, seed=0)
    config = dipsearch.FitConfig(iters=20, seed=0)
    adamw = variants.fit_variant(problem, SMALL, config, variants.VariantSettings(variant="adamw"), [Optimizer()])
    plain = variants.fit_variant(problem, SMALL, config, variants.VariantSettings())
    assert set(seen) == {"AdamW"}
    assert not torch.equal(adamw.output, plain.output)  # the weight decay changed the fit
    assert adamw.trace[-1]["loss"] < adamw.trace[0]["loss"]

    # the space's variant gene takes it; the page's worked run compares it with the plain fit on the demo crop
    space_from_dict({"genes": {"variant": {"kind": "choice", "choices": ["plain", "adamw"], "default": "plain"}}})
    assert set(example.main(iters=20)) == {"plain", "adamw"}
    # SGLD's settings stay SGLD's: given to the new variant, they are refused, naming the owner
    with pytest.raises(ArgumentError, match=r"^burn_in is a setting of variant=sgld \(Bayesian DIP\)"):
        variants.VariantSettings(variant="adamw", burn_in=10)
    with pytest.raises(ArgumentError, match=r"^unknown variant 'nope'; choose one of plain, sgld, adamw$"):
        variants.VariantSettings(variant="nope")
