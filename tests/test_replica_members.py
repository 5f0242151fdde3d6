"""Members of one network fitted as one batch: each its own seed, split and stop, as its separate fit."""

from dataclasses import replace

import pytest
import torch
from conftest import SMALL, synthetic_image

from dipsearch import FitConfig, make_problem
from dipsearch.fitting.loop import Engine
from dipsearch.fitting.members import Member, fit_members
from dipsearch.fitting.parts import FitParts
from dipsearch.scoring.evaluate import Candidate, evaluate
from dipsearch.search.member_batches import batches, evaluate_members
from dipsearch.stopping.spec import StopSpec

PROBLEM = make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25, seed=0)
CONFIG = FitConfig(iters=40, device="cpu", ssim_every=0)
# the held-out error with a short patience: at 32 px, seeds 0, 2, 3 stop at steps 25-26, seed 1 runs to 40
STOP = StopSpec("holdout", patience=3)
SEEDS = [0, 1, 2, 3]


def _member(seed):
    hook = STOP.hook(seed, PROBLEM)
    return Member(hook.prepare(PROBLEM), seed, [hook])


def _separate(seed, nudge=1.0):
    member = _member(seed)

    def make(family, h, w, gen):
        return family.make_input(h, w, CONFIG.input_scale, gen) * nudge

    engine = Engine(SMALL, CONFIG.updated(seed=seed), FitParts(input=make))
    return engine.run_eager(member.problem, member.hooks)


def test_members_are_their_separate_fits_with_their_own_stops():
    batched = fit_members(SMALL, CONFIG, [_member(s) for s in SEEDS])
    stops = [r.summary_extra["stopped_iter"] for r in batched]
    assert len(set(r.iters_run for r in batched)) > 1  # members left the batch at different steps
    for seed, result in zip(SEEDS, batched):
        separate = _separate(seed)
        # float tolerance: what the separate fit itself does when its input moves by one part in 10^7 (a fit
        # amplifies rounding within a few dozen steps: the grouped convolution's other order of summation is such
        # a change), with room for a single draw of that spread
        nudged = [_separate(seed, 1 + e).output for e in (1e-7, -1e-7)]
        spread = max(max((separate.output - n).abs().max().item() for n in nudged), 1e-5)
        assert result.summary_extra["stopped_iter"] == separate.summary_extra["stopped_iter"]
        assert result.iters_run == separate.iters_run and result.stopped_by == separate.stopped_by
        assert [r["step"] for r in result.trace] == [r["step"] for r in separate.trace]
        stopped, theirs = result.extras["images"]["output_stopped"], separate.extras["images"]["output_stopped"]
        torch.testing.assert_close(stopped, theirs, rtol=0, atol=4 * spread)
        torch.testing.assert_close(result.output, separate.output, rtol=0, atol=4 * spread)
    assert stops[1] == 40 and min(stops) < 30


def test_a_member_that_stops_is_not_changed_by_the_steps_the_others_still_take():
    longer = fit_members(SMALL, CONFIG, [_member(0), _member(1)])
    assert longer[0].iters_run < longer[1].iters_run == CONFIG.iters
    # the same batch ended at the step member 0 stopped: nothing after it ran
    shorter = fit_members(SMALL, CONFIG.updated(iters=longer[0].iters_run), [_member(0), _member(1)])
    a, b = longer[0], shorter[0]
    assert torch.equal(a.output, b.output) and torch.equal(a.ema, b.ema)
    assert torch.equal(a.extras["images"]["output_stopped"], b.extras["images"]["output_stopped"])
    assert [(r["step"], r["loss"], r["stat_holdout"]) for r in a.trace] == [
        (r["step"], r["loss"], r["stat_holdout"]) for r in b.trace
    ]
    assert a.summary_extra["stopped_iter"] == b.summary_extra["stopped_iter"]


def _candidate(seed, lr=0.01, arch=SMALL, **changes):
    settings = {"lr": lr}
    return Candidate({}, arch, PROBLEM, iters=40, seed=seed, fit_settings=settings, device="cpu", stop=STOP, **changes)


def test_only_candidates_that_share_a_network_are_batched():
    other = replace(SMALL, n_skip=[0, 4, 2])
    jobs = [_candidate(0), _candidate(1, arch=other), _candidate(1), _candidate(2, lr=0.02), _candidate(2)]
    groups = batches(jobs, "on")
    assert [[jobs.index(c) for c in g] for g in groups] == [[0, 2, 4], [1], [3]]
    assert [len(g) for g in batches(jobs, "off")] == [1] * 5


def test_a_batch_gives_each_candidate_the_evaluation_of_its_own_fit():
    jobs = [_candidate(0), _candidate(1, holdout_seed=0)]
    batched = evaluate_members(jobs)
    for job, mine in zip(jobs, batched):
        theirs = evaluate(job)
        assert mine.key == theirs.key and mine.stopped_iter == theirs.stopped_iter
        assert mine.iters_run == theirs.iters_run and mine.error is None
        assert mine.fitness == pytest.approx(theirs.fitness, abs=0.05)
