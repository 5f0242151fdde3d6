"""Pre-selected and archived starting points of the GA and Bayesian searches."""

import json
from pathlib import Path

import pytest
from conftest import synthetic_image
from ga_helpers import write_space

from dipsearch import cli, load_space, make_problem
from dipsearch.preselect.scoring import ScoreConfig, score_spec
from dipsearch.preselect.seeding import SeedPlan, initial_genomes
from dipsearch.store.runs import read_jsonl
from dipsearch.store.tomlio import load_toml


def _key(space, genome):
    return space.decode(genome).canonical_key() + json.dumps(space.fit_settings(genome), sort_keys=True)


def _top_scorers(space, problem, n, k, seed=0):
    """The k best psd_mse scores among the first n distinct samples, computed independently of seeding.py."""
    import random

    from dipsearch.preselect.scoring import sample_candidates

    pool = sample_candidates(space, problem, n, random.Random(seed))
    scored = sorted(
        pool,
        key=lambda c: score_spec(problem, c.spec, ScoreConfig(seed=seed, metrics=("psd_mse",), device="cpu"))[
            "psd_mse"
        ],
    )
    return [_key(space, c.genome) for c in scored[:k]]


def test_initial_genomes_are_the_default_then_the_top_scorers(tmp_path):
    space = load_space(write_space(tmp_path))
    problem = make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25, seed=0)
    genomes, info = initial_genomes(space, problem, SeedPlan(preselect=10), room=4, device="cpu")
    keys = [_key(space, g) for g in genomes]
    assert keys[0] == _key(space, space.default())
    top = [k for k in _top_scorers(space, problem, 10, 4) if k != keys[0]][:3]
    assert keys[1:] == top
    assert info["preselected"] == 3 and info["scored"] == 10 and info["initial"] == 4


def _ga(clean, space, out, *extra):
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
        "10",
        "--final-iters",
        "120",
        "--no-progress",
        "--threads",
        "1",
        "--device",
        "cpu",
        *map(str, extra),
    ]


def _run(out: Path, kind: str = "search") -> Path:
    (folder,) = list((out / kind).iterdir())
    return folder


def test_preselected_ga_population_holds_the_top_scorers(tmp_path, image_file):
    clean, space_path = image_file("clean.png", 32, 32), write_space(tmp_path)
    out = tmp_path / "runs"
    assert cli.main(_ga(clean, space_path, out, "--pop", 4, "--gens", 1, "--preselect", 12)) == 0
    run = _run(out)
    space = load_space(space_path)
    problem = make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25, seed=0)
    gen0 = [_key(space, r["genome"]) for r in read_jsonl(run / "evaluations.jsonl") if r.get("generation") == 0]
    default = _key(space, space.default())
    assert gen0[0] == default
    assert set(gen0[1:]) == set([k for k in _top_scorers(space, problem, 12, 4) if k != default][:3])
    seeding = json.loads((run / "summary.json").read_text())["seeding"]
    assert seeding["preselect"] == 12 and seeding["preselected"] == 3
    assert load_toml(run / "config.toml")["seeding"]["preselect"] == 12
    assert len(json.loads((run / "initial_genomes.json").read_text())) == 4


def test_seed_from_puts_past_winners_first_and_bayes_enqueues_them(tmp_path, image_file):
    clean, space_path = image_file("clean.png", 32, 32), write_space(tmp_path)
    first = tmp_path / "first"
    assert (
        cli.main(
            [
                "preselect",
                "--clean",
                str(clean),
                "--space",
                str(space_path),
                "--out",
                str(first),
                "--candidates",
                "5",
                "--keep",
                "1",
                "--no-progress",
                "--device",
                "cpu",
                "--seed",
                "3",
            ]
        )
        == 0
    )
    winner = load_toml(_run(first, "preselect") / "best_arch.toml")["genome"]
    out = tmp_path / "runs"
    pattern = str(first / "preselect" / "*")
    assert cli.main(_ga(clean, space_path, out, "--pop", 3, "--gens", 1, "--seed-from", pattern)) == 0
    gen0 = [r["genome"] for r in read_jsonl(_run(out) / "evaluations.jsonl") if r.get("generation") == 0]
    assert winner in gen0[:2]
    assert json.loads((_run(out) / "summary.json").read_text())["seeding"]["from_archive"] == 1

    bayes_out = tmp_path / "bayes"
    assert (
        cli.main(
            [
                "search",
                "bayes",
                "--clean",
                str(clean),
                "--space",
                str(space_path),
                "--out",
                str(bayes_out),
                "--iters",
                "10",
                "--final-iters",
                "120",
                "--no-progress",
                "--device",
                "cpu",
                "--trials",
                "3",
                "--seed-from",
                pattern,
            ]
        )
        == 0
    )
    import optuna

    config = load_toml(_run(bayes_out) / "config.toml")
    study = optuna.load_study(
        study_name=config["bayes"]["study"],
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(_run(bayes_out) / "study.journal"))
        ),
    )
    first_trial = study.trials[0]
    assert {k: v for k, v in winner.items() if k in first_trial.params} == first_trial.params
    assert config["seeding"]["from_archive"] == 1


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda tmp: tmp.mkdir(exist_ok=True) or tmp, "the folder has no winner (no best_arch.toml)"),
        (lambda tmp: tmp / "nowhere-*", "matches no folder"),
    ],
)
def test_seed_from_without_a_winner_is_refused(tmp_path, image_file, capsys, make, message):
    clean, space_path = image_file("clean.png", 32, 32), write_space(tmp_path)
    empty = make(tmp_path / "empty")
    out = tmp_path / "runs"
    assert cli.main(_ga(clean, space_path, out, "--pop", 3, "--gens", 1, "--seed-from", empty)) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert f"error: --seed-from {empty}" in err.replace("'", "") and message in err
    assert not (out / "search").exists() or not any((out / "search").iterdir())


def test_bad_preselect_flags(tmp_path, image_file, capsys):
    clean, space_path = image_file("clean.png", 32, 32), write_space(tmp_path)
    out = tmp_path / "runs"
    assert cli.main(_ga(clean, space_path, out, "--preselect", 4, "--preselect-metric", "nope")) == 2
    assert "error: unknown pre-selection metric 'nope'" in capsys.readouterr().err
    assert cli.main(_ga(clean, space_path, out, "--preselect", 4, "--preselect-keep", 9)) == 2
    assert "error: --preselect-keep must be between 1 and --preselect (4), got 9" in capsys.readouterr().err
