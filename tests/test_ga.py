"""The GA engine through its Python API: reproducibility, checkpoint/resume, the evaluation cache, failures."""

import json
import math

import pytest
from ga_helpers import TINY_SPACE, deep_space

from dipsearch import make_problem
from dipsearch.nets.space import space_from_dict
from dipsearch.scoring.evaluate import Candidate, Evaluation, evaluate
from dipsearch.scoring.executors import InProcessExecutor, local_pool
from dipsearch.search.ga import GAConfig, GASearch
from dipsearch.search.ga.checkpoint import STATE
from dipsearch.search.record import SearchRecord
from dipsearch.store.runs import RunDir
from dipsearch.store.tomlio import load_toml


def _space(text=TINY_SPACE):
    import tomllib

    return space_from_dict(tomllib.loads(text), source="tiny")


def _maker(space, problem, iters=25, threads=1):
    def make(genome, index):
        return Candidate(
            genome=genome,
            arch=space.decode(genome),
            problem=problem,
            iters=iters,
            seed=0,
            fit_settings=space.fit_settings(genome),
            device="cpu",
            index=index,
            threads=threads,
        )

    return make


def fake_evaluate(candidate: Candidate) -> Evaluation:
    """A fitness that is a smooth function of the genome: the GA logic without the cost of fits."""
    g = candidate.genome
    value = -abs(math.log(g["lr"] / 0.02)) - 0.1 * abs(g["n_down[0]"] - 12) - 0.05 * g["depth"]
    return Evaluation(
        index=candidate.index, key=candidate.key, genome=g, fitness=value, psnr=None, params=1, iters_run=0, seconds=0.0
    )


class Interrupt(BaseException):
    """Like a kill or Ctrl-C: not an evaluation error, it stops the driver."""


def _search(tmp_path, name, config, evaluate_fn=fake_evaluate, executor=None, problem=None, space=None):
    space = space or _space()
    problem = problem or make_problem("denoise", clean=_clean(), noise="gaussian", level=25)
    run = RunDir(tmp_path / name)
    run.path.mkdir(exist_ok=True)
    record = SearchRecord(run, space)
    return GASearch(space, _maker(space, problem), record, executor or InProcessExecutor(), config, None, evaluate_fn)


def _core(logbook):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in logbook]


def _clean():
    from conftest import synthetic_image

    return synthetic_image(32, 32)


def test_seeded_search_is_reproducible_starts_from_the_default_and_never_refits(tmp_path):
    config = GAConfig(pop=5, gens=4, seed=3)
    a = _search(tmp_path, "a", config).run()
    b = _search(tmp_path, "b", config).run()
    assert a.best == b.best and _core(a.logbook) == _core(b.logbook)
    rows = RunDir(tmp_path / "a").read_jsonl("evaluations.jsonl")
    assert rows[0]["genome"] == _space().default() and rows[0]["generation"] == 0
    keys = [r["key"] for r in rows]
    assert len(keys) == len(set(keys))  # identical architectures are evaluated once
    assert [r["gen"] for r in a.logbook] == [0, 1, 2, 3, 4]
    best = [r["best_ever"] for r in a.logbook]
    assert best == sorted(best)  # (mu + lambda) with a hall of fame never loses its best
    assert a.summary["default_fitness"] == rows[0]["fitness"] and a.summary["best_fitness"] == best[-1]
    c = _search(tmp_path, "c", GAConfig(pop=5, gens=4, seed=4)).run()
    assert [r["best"] for r in c.logbook] != [r["best"] for r in a.logbook]


def test_resume_after_an_interruption_and_extension_match_an_uninterrupted_run(tmp_path):
    reference = _search(tmp_path, "ref", GAConfig(pop=4, gens=5, seed=1)).run()

    calls = {"n": 0}

    def dies_at_ten(candidate):
        calls["n"] += 1
        if calls["n"] == 10:
            raise Interrupt  # like a kill in the middle of generation 2
        return fake_evaluate(candidate)

    with pytest.raises(Interrupt):
        _search(tmp_path, "killed", GAConfig(pop=4, gens=5, seed=1), dies_at_ten).run()
    run = RunDir(tmp_path / "killed")
    logged = run.read_jsonl("evaluations.jsonl")
    state = json.loads(run.file(STATE).read_text())
    assert len(logged) == 9 and state["generation"] < 5
    resumed = _search(tmp_path, "killed", GAConfig(pop=4, gens=5, seed=1)).run()
    assert resumed.best == reference.best
    assert [r["best"] for r in resumed.logbook] == [r["best"] for r in reference.logbook]
    rows = run.read_jsonl("evaluations.jsonl")
    assert len({r["key"] for r in rows}) == len(rows) == len(RunDir(tmp_path / "ref").read_jsonl("evaluations.jsonl"))

    # A finished run extended by more generations equals a longer run from the start.
    _search(tmp_path, "short", GAConfig(pop=4, gens=2, seed=1)).run()
    extended = _search(tmp_path, "short", GAConfig(pop=4, gens=5, seed=1)).run()
    assert [r["best"] for r in extended.logbook] == [r["best"] for r in reference.logbook]


def test_real_fits_give_the_same_search_in_process_and_in_a_two_worker_pool(tmp_path):
    config = GAConfig(pop=3, gens=1, seed=0)
    serial = _search(tmp_path, "serial", config, evaluate).run()
    pool = local_pool(2, threads_per_worker=2)  # the candidate's own threads=1 must win over the worker's
    try:
        parallel = _search(tmp_path, "pool", config, evaluate, executor=pool).run()
    finally:
        pool.shutdown()
    assert parallel.best == serial.best
    assert _core(parallel.logbook) == _core(serial.logbook)
    a = RunDir(tmp_path / "serial").read_jsonl("evaluations.jsonl")
    b = RunDir(tmp_path / "pool").read_jsonl("evaluations.jsonl")
    assert [(r["key"], r["fitness"], r["psnr"]) for r in a] == [(r["key"], r["fitness"], r["psnr"]) for r in b]


def test_failing_candidates_are_recorded_and_the_search_goes_on(tmp_path):
    space = _space(deep_space(4, 5))  # depth 5 needs a 64 px image: those fits raise
    result = _search(tmp_path, "deep", GAConfig(pop=6, gens=1, seed=2), evaluate, space=space).run()
    rows = RunDir(tmp_path / "deep").read_jsonl("evaluations.jsonl")
    failed = [r for r in rows if r["error"]]
    assert failed and all(r["fitness"] is None for r in failed)
    assert all("needs a padded size of at least 64x64" in r["error"] for r in failed)
    assert result.best_evaluation.error is None and result.best["depth"] == 4
    assert result.summary["failed"] == len(failed)
    best_arch = load_toml(tmp_path / "deep" / "best_arch.toml")
    assert best_arch["search"]["key"] == result.best_evaluation.key
