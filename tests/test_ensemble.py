"""The final rung's ensemble (search/ensemble.py, search/rungs.py): weightings, members, resume, files, bad input."""

import json
import tomllib
import zlib

import pytest
import torch
from ga_helpers import write_space
from test_rungs import Fake, Interrupt, _cli_args, _maker, _problem, _screened, _space

from dipsearch import cli
from dipsearch.errors import ArgumentError
from dipsearch.metrics import psnr
from dipsearch.scoring.executors import InProcessExecutor
from dipsearch.search.ensemble import WEIGHTINGS, HeldOutValues, combine, ensemble_weights, fitted_weights
from dipsearch.search.ga import GAConfig, GASearch
from dipsearch.search.record import SearchRecord
from dipsearch.search.result import SearchResult
from dipsearch.search.rungs import RungPlan, RungRunner, finish
from dipsearch.store.runs import RunDir, read_jsonl


def _values(members, weights=None, noise=0.1, n=4000, seed=0):
    """Members: independent random signals; targets: their `weights` mix (or the first member) plus noise."""
    g = torch.Generator().manual_seed(seed)
    predictions = torch.rand(members, n, generator=g, dtype=torch.float64)
    mix = torch.tensor(weights, dtype=torch.float64) @ predictions if weights else predictions[0]
    return HeldOutValues(predictions, mix + noise * torch.randn(n, generator=g, dtype=torch.float64))


@pytest.mark.parametrize("method", WEIGHTINGS)
def test_weights_are_non_negative_and_sum_to_one(method):
    for seed in range(3):
        weights, mse = ensemble_weights(method, _values(4, seed=seed), 4)
        assert len(weights) == 4 and min(weights) >= 0 and sum(weights) == pytest.approx(1, abs=1e-9)
        assert mse > 0


def test_the_held_out_fit_recovers_known_weights_of_a_synthetic_mix():
    known = [0.6, 0.3, 0.1, 0.0]
    weights, _ = fitted_weights(_values(4, known, noise=0.05))
    assert weights.tolist() == pytest.approx(known, abs=0.03)


def test_a_member_that_is_pure_noise_gets_weight_near_zero():
    g = torch.Generator().manual_seed(1)
    clean = torch.rand(3000, generator=g, dtype=torch.float64)
    observed = clean + 0.1 * torch.randn(3000, generator=g, dtype=torch.float64)
    good = [clean + 0.03 * torch.randn(3000, generator=g, dtype=torch.float64) for _ in range(2)]
    noise = torch.rand(3000, generator=g, dtype=torch.float64)
    values = HeldOutValues(torch.stack([*good, noise]), observed)
    weights, _ = fitted_weights(values)
    assert weights[2] < 0.02
    equal, _ = ensemble_weights("equal", values, 3)
    assert equal[2] == pytest.approx(1 / 3)  # the fit, not the equal weighting, is what drops it


@pytest.mark.parametrize("method", WEIGHTINGS)
def test_an_ensemble_of_one_member_is_that_member(method):
    image = torch.rand(1, 3, 16, 16)
    weights, _ = ensemble_weights(method, _values(1), 1)
    assert weights == [1.0]
    assert torch.equal(combine([image], weights), image)


def test_weights_that_need_held_out_pixels_without_any_are_refused():
    with pytest.raises(ArgumentError, match="fitted needs held-out pixels"):
        ensemble_weights("fitted", None, 3)
    with pytest.raises(ArgumentError, match="at least 10 held-out values, got 6"):
        fitted_weights(_values(2, n=6))
    assert ensemble_weights("equal", None, 4) == ([0.25] * 4, None)


class WithImages(Fake):
    """Fake final-rung fits whose stopped outputs differ per genome and seed: the clean image plus seeded noise."""

    def __call__(self, candidate):
        evaluation = super().__call__(candidate)
        if candidate.stop:
            seed = zlib.crc32(json.dumps(candidate.genome, sort_keys=True).encode()) + candidate.seed
            g = torch.Generator().manual_seed(seed)
            clean = candidate.problem.clean
            evaluation.image = (clean + 0.08 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
        return evaluation


def test_the_ensemble_holds_the_default_and_every_restart_and_beats_its_members(tmp_path):
    space = _space()
    record, _, make = _screened(tmp_path, space, n=4)
    fake = WithImages(lambda g, iters, stop: g["lr"])
    plan = RungPlan(final=3, final_iters=200, restarts=2)
    selection = RungRunner(space, make, record, InProcessExecutor(), plan, fake).run()
    members = selection.members()
    assert len(members) == 5 and sum(m.default for m in selection.finalists) == 1
    assert any(m.default for m in members) and [m.restart for m in members[3:]] == [1, 2]
    restarts = [c for c in fake.calls if c.seed != 0]
    # each restart withholds the pixels of its own seed (holdout_seed None: the fit's seed)
    assert [c.seed for c in restarts] == [1, 2] and all(c.holdout_seed is None for c in restarts)
    assert [m.split for m in members] == [None, None, None, 1, 2]
    ensemble = selection.ensemble
    # no pixel is withheld from every member: no held-out score of the combination, no fitted weights
    assert ensemble.method == "inverse-mse" and set(ensemble.alternatives) == {"equal"}
    assert ensemble.heldout_psnr is None
    clean = _problem().clean
    best_member = max(psnr(record.final_image(m.evaluation.key), clean) for m in members)
    assert ensemble.psnr > best_member + 3  # five independent noises: the average is clearly cleaner

    summary = finish(record, selection, plan)
    assert (tmp_path / "ensemble.png").is_file()
    assert [r["split"] for r in summary["restarts"]] == [1, 2]
    assert [m["restart"] for m in summary["ensemble"]["members"]] == [None, None, None, 1, 2]
    assert sum(m["weight"] for m in summary["ensemble"]["members"]) == pytest.approx(1, abs=1e-5)
    assert summary["ensemble_psnr"] == ensemble.psnr and len(summary["restarts"]) == 2


def test_restarts_on_the_finalists_split_judge_the_weights_on_pixels_no_member_saw(tmp_path):
    space = _space()
    record, _, make = _screened(tmp_path, space, n=4)
    fake = WithImages(lambda g, iters, stop: g["lr"])
    plan = RungPlan(final=3, final_iters=200, restarts=2, splits="shared", weights="fitted")
    selection = RungRunner(space, make, record, InProcessExecutor(), plan, fake).run()
    restarts = [c for c in fake.calls if c.seed != 0]
    assert [c.seed for c in restarts] == [1, 2] and all(c.holdout_seed == 0 for c in restarts)
    ensemble = selection.ensemble
    assert ensemble.method == "fitted" and set(ensemble.alternatives) == {"equal", "inverse-mse"}
    assert ensemble.heldout_psnr is not None


def test_each_pixel_is_averaged_over_the_members_that_fitted_it():
    a, b = torch.full((1, 1, 2, 2), 0.2), torch.full((1, 1, 2, 2), 0.6)
    withheld_a = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    withheld_b = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])
    out = combine([a, b], [0.75, 0.25], [withheld_a, withheld_b])
    # a withheld the first pixel: b's value; b withheld the second: a's; both saw the third: the weighted mean;
    # both withheld the fourth: the weighted mean too
    assert out.flatten().tolist() == pytest.approx([0.6, 0.2, 0.3, 0.3])
    assert torch.equal(combine([a, b], [0.75, 0.25], [torch.zeros(1, 1, 2, 2)] * 2), combine([a, b], [0.75, 0.25]))


def test_members_on_their_own_splits_are_weighed_by_their_own_held_out_error():
    from dipsearch.scoring.fitness import HoldoutFitness
    from dipsearch.search.ensemble import make_ensemble, own_splits

    problem = _problem()
    clean = problem.clean
    good, bad = (clean + 0.02).clamp(0, 1), (clean + 0.2).clamp(0, 1)
    splits = own_splits(HoldoutFitness(), problem, [0, 1], [good, bad])
    first, second = splits.mse()
    assert first < second
    ensemble = make_ensemble(["a", "b"], [good, bad], splits, None, clean)
    assert ensemble.weights == pytest.approx(
        [1 / first / (1 / first + 1 / second), 1 / second / (1 / first + 1 / second)]
    )
    assert ensemble.heldout_psnr is None and set(ensemble.alternatives) == {"equal"}
    with pytest.raises(ArgumentError, match="fitted needs every member on one held-out split"):
        make_ensemble(["a", "b"], [good, bad], splits, "fitted", clean)


def test_a_killed_search_resumes_without_refitting_finalists_and_ends_with_the_same_ensemble(tmp_path):
    space, problem = _space(), _problem()
    plan = RungPlan(final=3, final_iters=200, restarts=1)

    def search(folder, fake):
        folder.mkdir(exist_ok=True)
        run = RunDir(folder)
        config = GAConfig(pop=6, gens=1, seed=3)
        return GASearch(space, _maker(space, problem), SearchRecord(run, space), InProcessExecutor(), config, None,
                        fake, plan=plan)  # fmt: skip

    def score(g, iters, stop):
        return g["lr"] + iters

    whole = search(tmp_path / "whole", WithImages(score)).run()

    killer = WithImages(score)
    original = killer.__call__

    def dies_at_third_final(candidate):
        if candidate.stop and sum(1 for c in killer.calls if c.stop) == 2:
            raise Interrupt
        return original(candidate)

    folder = tmp_path / "killed"
    with pytest.raises(Interrupt):
        search(folder, dies_at_third_final).run()
    done = {r["key"] for r in read_jsonl(folder / "evaluations.jsonl")}
    again = WithImages(score)
    resumed = search(folder, again).run()
    assert not {c.key for c in again.calls} & done
    assert [c.stop is not None for c in again.calls] == [True, True]  # the third finalist and the restart
    a, b = whole.selection.ensemble, resumed.selection.ensemble
    assert a.keys == b.keys and a.weights == pytest.approx(b.weights, abs=1e-12)
    assert torch.equal(a.image, b.image)


def test_a_search_writes_its_ensemble_and_the_result_exposes_it(tmp_path, image_file):
    clean, space = image_file("clean.png", 32, 32), write_space(tmp_path)
    out = tmp_path / "runs"
    args = _cli_args(clean, space, out, "--pop", 3, "--gens", 0, "--final-iters", 150, "--ensemble-weights", "equal")
    assert cli.main(args) == 0
    (run,) = list((out / "search").iterdir())
    result = SearchResult.load(run)
    ensemble = result.ensemble
    assert ensemble["method"] == "equal" and set(ensemble["weightings"]) == {"inverse-mse", "fitted"}
    assert any(m["default"] for m in ensemble["members"])
    weights = [m["weight"] for m in ensemble["members"]]
    assert weights == pytest.approx([1 / len(weights)] * len(weights), abs=1e-5)
    assert result.ensemble_image.shape == result.image.shape == (1, 3, 32, 32)
    assert result.summary["ensemble_psnr"] is not None and result.summary["ensemble_heldout_psnr"] is not None
    assert tomllib.loads((run / "config.toml").read_text())["rungs"]["weights"] == "equal"


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--fitness", "sure", "--ensemble-weights", "fitted"],
            "--ensemble-weights fitted needs held-out pixels, and this search's fitness holds none out; use "
            "--fitness holdout or --ensemble-weights equal",
        ),
        (["--ensemble-restarts", "-1"], "--ensemble-restarts must be >= 0, got -1"),
        (
            ["--ensemble-weights", "fitted", "--ensemble-restarts", "2"],
            "--ensemble-weights fitted needs every ensemble member on one held-out split, and restarts withhold "
            "their own (--ensemble-splits own); use --ensemble-splits shared or --ensemble-weights inverse-mse",
        ),
        (["--ensemble-splits", "mine"], "--ensemble-splits must be one of own, shared, got mine"),
        (
            ["--ensemble-weights", "median"],
            "unknown --ensemble-weights 'median'; choose one of equal, inverse-mse, fitted",
        ),
    ],
)
def test_bad_ensemble_flags_exit_2_with_one_line(tmp_path, image_file, capsys, flags, message):
    clean, space = image_file("clean.png", 32, 32), write_space(tmp_path)
    out = tmp_path / "runs"
    assert cli.main(_cli_args(clean, space, out, *flags)) == 2
    err = capsys.readouterr().err
    assert message in err.replace("\n", " ") and err.count("error:") == 1
    assert not (out / "search").exists() or not any((out / "search").iterdir())


def test_inverse_mse_weights_are_proportional_to_one_over_each_members_held_out_mse():
    targets = torch.zeros(100, dtype=torch.float64)
    predictions = torch.stack([torch.full((100,), 0.1), torch.full((100,), 0.1 * 10**0.5)]).double()  # MSE 0.01, 0.1
    weights, _ = ensemble_weights("inverse-mse", HeldOutValues(predictions, targets), 2)
    assert weights == pytest.approx([10 / 11, 1 / 11])
