"""Multi-fidelity selection (search/rungs.py): promotion, the default genome's place, the final choice, resume."""

import json
import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from ga_helpers import TINY_SPACE, write_space

from dipsearch import cli, make_problem
from dipsearch.nets.space import space_from_dict
from dipsearch.scoring.evaluate import Candidate, Evaluation
from dipsearch.scoring.executors import InProcessExecutor
from dipsearch.search.ga import GAConfig, GASearch
from dipsearch.search.record import SearchRecord
from dipsearch.search.rungs import RungPlan, RungRunner
from dipsearch.store.runs import RunDir, read_jsonl

ROOT = Path(__file__).resolve().parent.parent


def _space():
    return space_from_dict(tomllib.loads(TINY_SPACE), source="tiny")


def _problem():
    from conftest import synthetic_image

    return make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25)


def _maker(space, problem, iters=20):
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
            threads=1,
        )

    return make


class Fake:
    """Scores by a rule of (genome, budget, stopping) and logs every call: rung logic without fits."""

    def __init__(self, score):
        self.score, self.calls = score, []

    def __call__(self, candidate: Candidate) -> Evaluation:
        self.calls.append(candidate)
        value = self.score(candidate.genome, candidate.iters, candidate.stop)
        return Evaluation(
            index=candidate.index,
            key=candidate.key,
            genome=candidate.genome,
            fitness=value,
            psnr=None,
            params=1,
            iters_run=candidate.iters,
            seconds=0.0,
            stopped_iter=candidate.iters // 2 if candidate.stop else None,
        )


def _screened(tmp_path, space, n=10, seed=1):
    """A record holding n distinct screened genomes (not the default), scored by their lr."""
    record = SearchRecord(RunDir(tmp_path), space)
    rng, genomes, keys = random.Random(seed), [], set()
    make = _maker(space, _problem())
    default_key = make(space.default(), -1).key
    while len(genomes) < n:
        genome = space.sample(rng)
        key = make(genome, -1).key
        if key not in keys and key != default_key:
            keys.add(key)
            genomes.append(genome)
    for i, genome in enumerate(genomes):
        record.add(
            Evaluation(
                index=i,
                key=make(genome, -1).key,
                genome=genome,
                fitness=genome["lr"],
                psnr=None,
                params=1,
                iters_run=20,
                seconds=0.0,
            )
        )
    return record, genomes, make


def _runner(space, make, record, plan, fake):
    return RungRunner(space, make, record, InProcessExecutor(), plan, fake)


def test_each_rung_promotes_the_top_candidates_by_its_score(tmp_path):
    space = _space()
    record, genomes, make = _screened(tmp_path, space)
    # Screening favours a large lr; the promotion rung (budget 60) favours a small one; the final rung the depth.
    fake = Fake(lambda g, iters, stop: g["lr"] if iters == 20 else -g["lr"] if iters == 60 else g["depth"] + g["lr"])
    plan = RungPlan(final=3, final_iters=200, budgets=(60,), eta=2)
    selection = _runner(space, make, record, plan, fake).run()

    rung1 = [c for c in fake.calls if c.iters == 60]
    by_lr = sorted(genomes, key=lambda g: -g["lr"])
    assert [c.genome for c in rung1] == by_lr[:6]  # final * eta = 6 promoted, best screened first
    assert all(c.stop is None for c in rung1)
    promoted = sorted(by_lr[:6], key=lambda g: g["lr"])[:2]  # the rung's top 2 by its own score, then the default
    finals = [c for c in fake.calls if c.iters == 200]
    assert [c.genome for c in finals] == promoted + [space.default()]
    assert all(c.stop == {"detector": "auto"} for c in finals)
    assert [f.default for f in selection.finalists] == [False, False, True]
    assert [r["rung"] for r in selection.rungs] == [0, 1, "final"]
    assert [r["candidates"] for r in selection.rungs] == [10, 6, 3]
    rows = read_jsonl(tmp_path / "evaluations.jsonl")
    assert [r["budget"] for r in rows if "rung" in r] == [60] * 6 + [200] * 3


def test_the_default_always_reaches_the_final_rung_and_wins_when_it_scores_best(tmp_path):
    space = _space()
    record, genomes, make = _screened(tmp_path, space)
    default = space.default()
    # the default is not even screened, and a screened default would rank last: it still takes a final place
    fake = Fake(lambda g, iters, stop: 100.0 if g == default and stop else g["lr"])
    selection = _runner(space, make, record, RungPlan(final=2, final_iters=200), fake).run()
    assert [f.genome for f in selection.finalists] == [max(genomes, key=lambda g: g["lr"]), default]
    assert selection.choice.default and selection.choice.evaluation.fitness == 100.0
    assert selection.summary()["final_choice_is_default"] is True


def test_the_final_choice_is_the_best_finalist_by_the_final_score_not_the_screening(tmp_path):
    space = _space()
    record, genomes, make = _screened(tmp_path, space)
    by_lr = sorted(genomes, key=lambda g: -g["lr"])
    # the screening's winner restores worst at full budget; the third-best screened one restores best
    final = {json.dumps(by_lr[0]): 1.0, json.dumps(by_lr[1]): 2.0, json.dumps(by_lr[2]): 5.0}
    fake = Fake(lambda g, iters, stop: final.get(json.dumps(g), 3.0) if stop else g["lr"])
    selection = _runner(space, make, record, RungPlan(final=4, final_iters=200), fake).run()
    assert [f.genome for f in selection.finalists] == by_lr[:3] + [space.default()]
    assert selection.choice.genome == by_lr[2] and selection.choice.evaluation.fitness == 5.0
    summary = selection.summary()
    assert summary["final_default_score"] == 3.0
    assert [row["score"] for row in summary["final"]] == [1.0, 2.0, 5.0, 3.0]


def test_a_screened_default_in_the_top_k_keeps_its_earned_place(tmp_path):
    space = _space()
    record, genomes, make = _screened(tmp_path, space)
    default = space.default()
    record.add(
        Evaluation(
            index=99,
            key=make(default, -1).key,
            genome=default,
            fitness=1.0,
            psnr=None,
            params=1,
            iters_run=20,
            seconds=0.0,
        )
    )  # above every lr: the screening's best
    fake = Fake(lambda g, iters, stop: g["lr"])
    selection = _runner(space, make, record, RungPlan(final=3, final_iters=200), fake).run()
    by_lr = sorted(genomes, key=lambda g: -g["lr"])
    assert [f.genome for f in selection.finalists] == [default, *by_lr[:2]]


class Interrupt(BaseException):
    """Like a kill: stops the driver in the middle of the final rung."""


def test_an_interrupted_final_rung_resumes_without_refitting_finished_finalists(tmp_path):
    space, problem = _space(), _problem()
    plan = RungPlan(final=3, final_iters=200, budgets=(40,), eta=2)

    def score(g, iters, stop):
        return g["lr"] + iters

    def search(fake):
        run = RunDir(tmp_path)
        return GASearch(
            space,
            _maker(space, problem),
            SearchRecord(run, space),
            InProcessExecutor(),
            GAConfig(pop=6, gens=1, seed=3),
            None,
            fake,
            plan=plan,
        )

    killer = Fake(score)
    original = killer.__call__

    def dies_at_second_final(candidate):
        if candidate.stop and sum(1 for c in killer.calls if c.stop) == 1:
            raise Interrupt
        return original(candidate)

    with pytest.raises(Interrupt):
        search(dies_at_second_final).run()
    done = {r["key"] for r in read_jsonl(tmp_path / "evaluations.jsonl")}
    assert sum(1 for r in read_jsonl(tmp_path / "evaluations.jsonl") if r.get("rung") == "final") == 1

    again = Fake(score)
    result = search(again).run()
    assert not {c.key for c in again.calls} & done  # nothing finished was fitted again
    assert [c.stop for c in again.calls] == [{"detector": "auto"}] * 2  # only the two missing finalists
    rows = read_jsonl(tmp_path / "evaluations.jsonl")
    assert len({r["key"] for r in rows}) == len(rows)
    assert len(result.summary["final"]) == 3 and result.best == result.selection.choice.genome


def _cli_args(clean, space, out, *extra):
    return [
        "search",
        "ga",
        "--clean",
        str(clean),
        "--space",
        str(space),
        "--out",
        str(out),
        "--iters",
        "20",
        "--no-progress",
        "--threads",
        "1",
        *map(str, extra),
    ]


def test_sigkill_in_the_final_rung_then_resume_refits_only_the_missing_finalists(tmp_path, image_file):
    clean, space = image_file("clean.png", 32, 32), write_space(tmp_path)
    out = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = _cli_args(clean, space, out, "--pop", 3, "--gens", 0, "--final-iters", 1500)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline, log = time.monotonic() + 180, None
    while time.monotonic() < deadline and proc.poll() is None:
        runs = list((out / "search").glob("*")) if (out / "search").exists() else []
        log = runs[0] / "evaluations.jsonl" if runs else None
        if log is not None and log.exists() and any(r.get("rung") == "final" for r in read_jsonl(log)):
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the search ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = [r for r in read_jsonl(log) if r.get("rung") == "final"]
    assert 1 <= len(before) < 3 and not (log.parent / "summary.json").exists()

    assert cli.main(["search", "ga", "--resume", str(log.parent), "--no-progress"]) == 0
    rows = read_jsonl(log)
    finals = [r for r in rows if r.get("rung") == "final"]
    assert len(finals) == 3 and finals[: len(before)] == before  # the finished ones were not fitted again
    assert len({r["key"] for r in rows}) == len(rows)
    summary = json.loads((log.parent / "summary.json").read_text())
    (choice,) = [f for f in summary["final"] if f["index"] == summary["final_choice"]]
    assert summary["best_fitness"] == choice["score"] >= summary["final_default_score"]
    assert choice["default"] or choice["z_vs_default"] >= 1.64
    assert sum(f["default"] for f in summary["final"]) == 1
    best = tomllib.loads((log.parent / "best_arch.toml").read_text())
    assert best["fit"]["iters"] == 1500 and best["search"]["rung"] == "final"
    assert (log.parent / "best_output.png").is_file()
    assert json.loads((log.parent / "summary.json").read_text())["rungs"][-1]["cached"] == len(before)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--final", "1"], "--final must be >= 2 (the default genome takes one place), got 1"),
        (["--rungs", "100,x"], "--rungs takes comma-separated iteration budgets, e.g. 600,1200; got '100,x'"),
        (["--rungs", "300,100"], "--rungs budgets must increase, got [300, 100]"),
        (["--rungs", "300", "--final-iters", "200"], "--final-iters (200) must exceed every --rungs budget ([300])"),
        (
            ["--final-iters", "80"],
            "--final-iters 80 is too short for --final-stop auto: it needs at least 102 iterations",
        ),
        (["--final-stop", "magic"], "unknown detector 'magic'"),
        (
            ["--noise", "poisson", "--final-stop", "sure"],
            "sure: SURE needs Gaussian noise, but this problem has poisson",
        ),
        (["--eta", "1", "--rungs", "50"], "--eta must be >= 2, got 1"),
        (["--final-margin", "-1"], "--final-margin must be >= 0, got -1.0"),
    ],
)
def test_bad_rung_flags_exit_2_with_a_message_and_leave_no_run(tmp_path, image_file, capsys, flags, message):
    clean, space = image_file("clean.png", 32, 32), write_space(tmp_path)
    out = tmp_path / "runs"
    assert cli.main(_cli_args(clean, space, out, *flags)) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert not (out / "search").exists() or not any((out / "search").iterdir())


def test_final_zero_keeps_the_screening_choice(tmp_path, image_file):
    clean, space = image_file("clean.png", 32, 32), write_space(tmp_path)
    out = tmp_path / "runs"
    assert cli.main(_cli_args(clean, space, out, "--pop", 3, "--gens", 0, "--final", 0)) == 0
    (run,) = list((out / "search").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert "final" not in summary and not any("rung" in r for r in read_jsonl(run / "evaluations.jsonl"))
    assert tomllib.loads((run / "config.toml").read_text())["rungs"] == {"final": 0}


def test_a_finalist_must_beat_the_default_by_the_margin_on_the_held_out_pixels(tmp_path):
    import torch

    space = _space()
    record, genomes, make = _screened(tmp_path, space, n=4)
    problem = make(space.default(), -1).problem
    by_lr = sorted(genomes, key=lambda g: -g["lr"])
    flat = torch.full_like(problem.clean, 0.5)  # the default restores nothing
    images = {
        json.dumps(space.default()): flat,
        json.dumps(by_lr[0]): (flat + 0.002).clamp(0, 1),
        json.dumps(by_lr[1]): problem.clean,
    }

    class WithImages(Fake):
        def __call__(self, candidate):
            evaluation = super().__call__(candidate)
            evaluation.image = images.get(json.dumps(candidate.genome)) if candidate.stop else None
            return evaluation

    # by_lr[0] scores highest but its output is the default's up to rounding: not significantly better
    scores = {json.dumps(by_lr[0]): 9.0, json.dumps(by_lr[1]): 8.0}
    fake = WithImages(lambda g, iters, stop: scores.get(json.dumps(g), 1.0) if stop else g["lr"])
    selection = _runner(space, make, record, RungPlan(final=3, final_iters=200), fake).run()
    z = {json.dumps(f.genome): f.z for f in selection.finalists}
    assert abs(z[json.dumps(by_lr[0])]) < 1.64 < z[json.dumps(by_lr[1])]
    assert selection.choice.genome == by_lr[1]  # the clearly better one, though the other scored higher
    assert (tmp_path / "final").is_dir() and len(list((tmp_path / "final").iterdir())) == 3

    # with margin 0 the higher score wins among the finalists not rated below the default on the held-out pixels
    (tmp_path / "b").mkdir()
    record2, _, _ = _screened(tmp_path / "b", space, n=4)
    plain = _runner(space, make, record2, RungPlan(final=3, final_iters=200, margin=0.0), fake).run()
    assert plain.choice.genome == (by_lr[0] if z[json.dumps(by_lr[0])] >= 0 else by_lr[1])
