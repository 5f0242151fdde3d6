"""The searcher registry and what every searcher shares: names, specs, the random searcher, log output to a
pipe, resuming finished runs, and the worker hint of a study created with --trials 0."""

import json

import pytest
import torch
from ga_helpers import TINY_SPACE
from rich.console import Console

from dipsearch.cli import main
from dipsearch.errors import ArgumentError, DipsearchError
from dipsearch.search import ProblemRecipe, Runtime, SearchSpec
from dipsearch.search.api import resume, run
from dipsearch.search.base import SEARCHERS, get_searcher
from dipsearch.search.ga import GAConfig
from dipsearch.search.random import RandomSettings
from dipsearch.stopping.spec import StopSpec
from dipsearch.store.imageio import save_image
from dipsearch.store.tomlio import load_toml


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def files(tmp_path):
    from conftest import synthetic_image

    clean = tmp_path / "clean.png"
    save_image(synthetic_image(32, 32), clean)
    space = tmp_path / "tiny.toml"
    space.write_text(TINY_SPACE)
    return clean, space


def _folders(out):
    return sorted(p.name for p in (out / "search").glob("*")) if (out / "search").is_dir() else []


def test_the_registry_names_every_searcher_and_an_unknown_one_is_an_argument_error():
    assert list(SEARCHERS) == ["ga", "bayes", "random"]
    assert [get_searcher(name).name for name in SEARCHERS] == list(SEARCHERS)
    with pytest.raises(ArgumentError, match=r"^searcher must be one of ga, bayes, random, got 'grid'$"):
        get_searcher("grid")
    with pytest.raises(ArgumentError, match=r"^searcher must be one of ga, bayes, random, got 'grid'$"):
        SearchSpec(searcher="grid").check()


def test_the_cli_refuses_an_unknown_searcher_in_one_line_listing_the_registered_ones(capsys):
    with pytest.raises(SystemExit) as done:
        main(["search", "grid"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "error:" in line] == [
        "dipsearch search: error: argument SEARCHER: invalid choice: 'grid' (choose from 'ga', 'bayes', 'random')"
    ]


def test_a_spec_names_its_searcher_and_reads_back_specs_stored_before_that_name():
    spec = SearchSpec(space="demo", searcher="random", settings=RandomSettings(trials=7), stop=StopSpec("wmv"))
    data = spec.to_dict()
    assert data["searcher"] == "random" and data["random"] == {"trials": 7, "with_default": False}
    again = SearchSpec.from_dict(data)
    assert again.searcher == "random" and again.settings == RandomSettings(trials=7) and again.stop == StopSpec("wmv")
    old = SearchSpec.from_dict({"space": "demo", "ga": {"pop": 4, "sigma": 0.3}})  # a [spec] of earlier versions
    assert old.searcher == "ga" and old.ga.pop == 4 and old.ga.mutation_step == 0.3 and old.bayes is None
    assert SearchSpec(ga=GAConfig(pop=3)).settings == GAConfig(pop=3)


def test_stop_spec_is_the_one_form_and_equals_its_stored_dict():
    from dipsearch.scoring.evaluate import candidate_key
    from dipsearch.search.rungs import RungPlan

    plan = RungPlan(stop={"detector": "wmv", "patience": 5})
    assert isinstance(plan.stop, StopSpec) and plan.stop == {"detector": "wmv", "patience": 5}
    assert RungPlan.from_dict(plan.to_dict()).stop == plan.stop
    from dipsearch.nets.arch import ArchSpec

    args = (ArchSpec(), {}, 10, "holdout", 1.0, 0, "ema")
    # The cache key hashes the dict form, as before: run folders of earlier versions keep their cache.
    assert candidate_key(*args, stop=StopSpec("wmv", patience=5)) == candidate_key(*args, stop=plan.stop.to_dict())


def test_random_search_runs_resumes_and_keeps_a_finished_runs_figures(tmp_path, files):
    clean, space = files
    recipe = ProblemRecipe(clean=str(clean), sigma=25, seed=3)
    spec = SearchSpec(space=str(space), iters=10, device="cpu", rungs=None, searcher="random")
    spec.settings = RandomSettings(trials=3)
    runtime = Runtime(out=tmp_path / "runs", console=Console(quiet=True))
    result = run(recipe, spec, runtime)
    assert result.searcher == "random" and result.summary["trials"] == 3 and result.summary["evaluations"] == 3
    assert result.best_arch is not None and result.best_fitness == result.summary["best_fitness"]
    before = (result.run_dir / "summary.json").read_bytes()

    again = resume(result.run_dir, Runtime(out=tmp_path / "runs", console=Console(quiet=True)))
    assert (result.run_dir / "summary.json").read_bytes() == before and again.summary == result.summary

    with pytest.raises(ArgumentError, match=r"^trials is 2, but the run in .* has 3 trials: a run is extended"):
        get_searcher("random").resume(result.run_dir, runtime, trials=2)
    assert (result.run_dir / "summary.json").read_bytes() == before

    longer = resume(result.run_dir, runtime, trials=4)
    assert longer.summary["evaluations"] == 4 and longer.summary["seconds"] > result.summary["seconds"]

    # another searcher's folder is refused, naming the one that made it
    with pytest.raises(DipsearchError, match=r"is not a GA search run folder .*made by `dipsearch search random`"):
        get_searcher("ga").resume(result.run_dir, runtime)


def test_search_random_on_the_command_line_logs_one_line_per_trial(tmp_path, files, capsys):
    clean, space = files
    out = tmp_path / "runs"
    argv = ["search", "random", "--clean", str(clean), "--space", str(space), "--iters", "10", "--trials", "2"]
    assert main([*argv, "--final", "0", "--device", "cpu", "--out", str(out)]) == 0
    captured = capsys.readouterr().out
    lines = captured.splitlines()
    assert [line.split(":")[0] for line in lines if line.startswith("trial ")] == ["trial 1/2", "trial 2/2"]
    assert "refit the winner: dipsearch fit" in captured and captured.endswith("\n")
    (folder,) = (out / "search").glob("*_random")
    assert json.loads((folder / "summary.json").read_text())["trials"] == 2

    code = main(["search", "random", "--resume", str(folder), "--iters", "20", "--out", str(out)])
    assert code == 2 and "drop --iters" in capsys.readouterr().err
    assert _folders(out) == [folder.name]


def test_ga_to_a_pipe_prints_a_line_per_generation_and_refuses_to_cut_a_finished_run_short(tmp_path, files, capsys):
    clean, space = files
    out = tmp_path / "runs"
    common = ["--clean", str(clean), "--space", str(space), "--iters", "10", "--device", "cpu", "--out", str(out)]
    assert main(["search", "ga", *common, "--pop", "2", "--gens", "1", "--final", "0"]) == 0
    captured = capsys.readouterr().out
    assert [line.split(":")[0] for line in captured.splitlines() if " done:" in line] == [
        "generation 0 done",
        "generation 1 done",
    ]
    assert captured.endswith("\n") and "\r" not in captured
    (folder,) = (out / "search").glob("*_ga")
    summary = (folder / "summary.json").read_bytes()
    generations = (folder / "generations.csv").read_text().splitlines()
    seconds = json.loads(summary)["seconds"]
    assert seconds >= float(generations[-1].split(",")[generations[0].split(",").index("seconds")])

    assert main(["search", "ga", "--resume", str(folder), "--gens", "0"]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "error: --gens is 0, but the run in" in err and "has finished 1 generations" in err
    assert main(["search", "ga", "--resume", str(folder)]) == 0  # a finished run, resumed: nothing to do
    assert (folder / "summary.json").read_bytes() == summary


def test_bayes_to_a_pipe_prints_a_line_per_trial_a_table_of_scalars_and_keeps_a_finished_runs_figures(
    tmp_path, files, capsys
):
    clean, space = files
    out = tmp_path / "runs"
    argv = ["search", "bayes", "--clean", str(clean), "--space", str(space), "--iters", "10", "--trials", "2"]
    assert main([*argv, "--final", "2", "--final-iters", "120", "--device", "cpu", "--out", str(out)]) == 0
    captured = capsys.readouterr().out
    assert [line.split(":")[0] for line in captured.splitlines() if line.startswith("trial ")] == [
        "trial 1/2",
        "trial 2/2",
    ]
    assert sum(line.startswith("final rung: evaluation") for line in captured.splitlines()) == 2
    assert "best_genome" not in captured and "'depth'" not in captured and "│ final " not in captured
    (folder,) = (out / "search").glob("*_bayes")
    kept = {name: (folder / name).read_bytes() for name in ("summary.json", "versions.json")}
    assert main(["search", "bayes", "--resume", str(folder), "--device", "cpu"]) == 0
    assert {name: (folder / name).read_bytes() for name in kept} == kept


def test_search_bayes_takes_stop_like_every_searcher(tmp_path, files, capsys):
    clean, space = files
    out = tmp_path / "runs"
    argv = ["search", "bayes", "--clean", str(clean), "--space", str(space), "--iters", "30", "--trials", "1"]
    assert (
        main(
            [
                *argv,
                "--stop",
                "wmv",
                "--stop-window",
                "5",
                "--patience",
                "3",
                "--final",
                "0",
                "--no-progress",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    (folder,) = (out / "search").glob("*_bayes")
    (row,) = [json.loads(line) for line in (folder / "evaluations.jsonl").read_text().splitlines()]
    assert row["stopped_iter"] is not None and row["stopped_iter"] < 30
    stored = load_toml(folder / "config.toml")["spec"]["stop"]
    assert {k: stored[k] for k in ("detector", "patience", "window")} == {"detector": "wmv", "patience": 3, "window": 5}
    assert main([*argv, "--stop", "nope", "--out", str(out)]) == 2
    assert "unknown detector 'nope'" in capsys.readouterr().err


def test_the_worker_hint_of_an_empty_study_is_a_command_that_does_the_work(tmp_path, files, capsys, monkeypatch):
    clean, space = files
    monkeypatch.chdir(tmp_path)
    create = ["search", "bayes", "--clean", str(clean), "--space", str(space), "--iters", "5", "--final", "0"]
    assert main([*create, "--trials", "0", "--storage", "st.journal", "--study", "s1", "--out", "runs"]) == 0
    (hint,) = [line for line in capsys.readouterr().out.splitlines() if "work on it with:" in line]
    command = hint.split("work on it with: dipsearch ")[1].split()
    assert command[-2:] == ["--trials", "20"]

    assert main([*command, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert sum(line.startswith("trial ") for line in out.splitlines()) == 20
