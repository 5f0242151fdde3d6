"""evaluate(candidate): scores, errors instead of exceptions, threads, fitness functions, online stopping."""

import hashlib
import json
import math

import pytest
import torch

from dipsearch import ArchSpec, DipsearchError, make_problem
from dipsearch.scoring.evaluate import Candidate, candidate_key, evaluate
from dipsearch.scoring.fitness import FITNESSES, Fitness, make_fitness

SMALL = ArchSpec(
    n_down=[8, 8], n_up=[8, 8], n_skip=[4, 4], k_down=[3] * 2, k_up=[3] * 2, k_skip=[1] * 2, upsample=["bilinear"] * 2
)


@pytest.fixture
def problem(clean32):
    return make_problem("denoise", clean=clean32, noise="gaussian", level=25, seed=0)


def _candidate(problem, **changes):
    fields = dict(genome={"g": 1}, arch=SMALL, problem=problem, iters=40, seed=0, device="cpu", threads=1)
    return Candidate(**{**fields, **changes})


def test_evaluation_reports_fitness_psnr_params_and_restores_the_thread_count(problem):
    before = torch.get_num_threads()
    a = evaluate(_candidate(problem, threads=1))
    assert torch.get_num_threads() == before
    assert a.error is None and a.iters_run == 40 and a.params > 0
    assert 5 < a.fitness < 40 and 5 < a.psnr < 40 and a.image.shape == (1, 3, 32, 32)
    b = evaluate(_candidate(problem, threads=1, index=7))
    assert (a.fitness, a.psnr) == (b.fitness, b.psnr) and b.index == 7  # deterministic for a fixed thread count


def test_a_failing_fit_is_an_evaluation_with_its_error(problem):
    deep = ArchSpec()  # depth 5 needs 64 px, the image has 32
    result = evaluate(_candidate(problem, arch=deep))
    assert result.fitness is None and result.search_value == -math.inf
    assert "needs a padded size of at least 64x64" in result.error and result.params == 572_827


class NanFitness(Fitness):
    name = "nan"

    def score(self, output, problem):
        return float("nan")


def test_a_diverged_fit_is_recorded_as_an_error(problem, monkeypatch):
    monkeypatch.setitem(FITNESSES, "nan", NanFitness)
    result = evaluate(_candidate(problem, fitness="nan"))
    assert result.fitness is None and "diverged" in result.error


def test_candidate_key_without_stopping_is_unchanged_and_stopping_changes_it(problem):
    c = _candidate(problem)
    legacy = json.dumps(
        {
            "arch": SMALL.to_dict(),
            "fit": {},
            "iters": 40,
            "fitness": "holdout",
            "scale": 1.0,
            "seed": 0,
            "output": "ema",
        },
        sort_keys=True,
    )
    assert c.key == hashlib.sha256(legacy.encode()).hexdigest()[:16]
    assert _candidate(problem, threads=4).key == c.key  # threads change float rounding, not what is measured
    stopped = _candidate(problem, stop={"detector": "wmv", "window": 5, "patience": 5})
    assert stopped.key != c.key
    assert candidate_key(SMALL, {}, 40, "holdout", 1.0, 0, "ema", stop=None) == c.key


def test_online_stopping_scores_the_detectors_chosen_output(problem):
    result = evaluate(_candidate(problem, iters=200, stop={"detector": "wmv", "window": 5, "patience": 10}))
    assert result.error is None
    assert result.iters_run < 200 and 1 <= result.stopped_iter <= result.iters_run


def test_sure_fitness_estimates_the_true_psnr_without_ground_truth(problem):
    result = evaluate(_candidate(problem, fitness="sure", iters=60))
    assert result.error is None
    assert abs(result.fitness - result.psnr) < 1.5  # SURE tracks the true MSE of the scored (last) output
    holdout = evaluate(_candidate(problem, iters=60))
    assert abs(result.fitness - holdout.fitness) > 1  # a different quantity than the held-out PSNR


def test_fitness_preconditions_are_user_errors(problem, clean32):
    with pytest.raises(DipsearchError, match="unknown fitness 'best'"):
        make_fitness("best", problem)
    poisson = make_problem("denoise", clean=clean32, noise="poisson", level=30, seed=0)
    with pytest.raises(DipsearchError, match="Gaussian"):
        make_fitness("sure", poisson)
    observed_only = make_problem("denoise", observed=clean32)
    with pytest.raises(DipsearchError, match="needs ground truth"):
        make_fitness("psnr", observed_only)
