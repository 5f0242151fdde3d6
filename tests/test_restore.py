"""dipsearch restore: the ground-truth-free pipeline end to end, on tiny budgets."""

import csv
import json

import pytest

from dipsearch.cli import main
from dipsearch.pipelines.choosers import CHOOSERS
from dipsearch.store.runs import read_jsonl

# a search flag is refused where the search does not read it: GA's with --search ga, SEARCH with any search
SEARCH = ["--search-iters", "15"]
GA = ["--pop", "2", "--gens", "1", *SEARCH]
TINY = [
    "--space",
    "demo",
    "--iters",
    "110",
    "--patience",
    "10",
    "--device",
    "cpu",
    "--no-report",
]


def _run_folder(root):
    (run,) = (root / "restore").iterdir()
    return run


def test_restore_ga_with_ensemble_scores_every_stage(image_file, tmp_path, capsys):
    clean = image_file(h=64, w=64)
    argv = ["restore", "--clean", str(clean), "--search", "ga", "--ensemble", "2", "--out", str(tmp_path), *TINY, *GA]
    assert main(argv) == 0
    out = capsys.readouterr().out
    run = _run_folder(tmp_path)
    assert (run / "restored.png").is_file()
    stages = [row["stage"] for row in csv.DictReader((run / "stages.csv").open())]
    assert stages == ["default (search)", "search winner", "default", "finalist #1", "pick", "ensemble"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ensemble"] == 2 and abs(sum(summary["weights"]) - 1) < 1e-3
    assert summary["weighting"] == "inverse-mse"
    assert summary["psnr_restored"] == pytest.approx(summary["stages"]["ensemble"])
    assert summary["psnr_restored"] > summary["psnr_observed"]
    # one refit path: the search's final rung (the default among its finalists), no refit folders of its own
    (search,) = (run / "search").iterdir()
    assert not (run / "fit").exists() and (search / "ensemble.png").is_file()
    search_summary = json.loads((search / "summary.json").read_text())
    assert [m["weight"] for m in search_summary["ensemble"]["members"]] == summary["weights"]
    assert "search winner" in out and "restored image:" in out


def test_restore_without_search_or_clean(image_file, tmp_path):
    noisy = image_file("noisy.png", h=64, w=64)
    argv = ["restore", str(noisy), "--search", "none", "--out", str(tmp_path), *TINY]
    argv.remove("--no-report")
    assert main(argv) == 0
    run = _run_folder(tmp_path)
    (final,) = (run / "search").iterdir()  # the final rung alone, over the default
    assert (run / "report.html").is_file() and (final / "report.html").is_file()
    # the default network and, for the default ensemble of 4, its refits with the next three seeds
    rows = read_jsonl(final / "evaluations.jsonl")
    assert [r["rung"] for r in rows] == ["final"] * 4 and len({r["key"] for r in rows}) == 4
    summary = json.loads((run / "summary.json").read_text())
    assert "psnr_restored" not in summary and summary["candidates"] == 1 and summary["ensemble"] == 4
    assert len(summary["weights"]) == 4 and abs(sum(summary["weights"]) - 1) < 1e-3
    assert (final / "ensemble.png").is_file()


def test_restore_bayes(image_file, tmp_path):
    clean = image_file(h=64, w=64)
    argv = ["restore", "--clean", str(clean), "--search", "bayes", "--trials", "2", "--out", str(tmp_path), *TINY]
    argv += SEARCH
    assert main(argv) == 0
    summary = json.loads((_run_folder(tmp_path) / "summary.json").read_text())
    assert summary["search"] == "bayes" and summary["candidates"] >= 1 and "default (search)" in summary["stages"]


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--search", "ga", "--ensemble", "11"],
            "error: --ensemble 11 is larger than the 10 member(s) --search ga can produce with this "
            "budget; use --ensemble <= 10",
        ),
        (
            ["--ensemble", "9"],
            "error: --ensemble 9 is larger than the 8 member(s) --search none",
        ),
        (["--search", "grid"], "error: unknown --search 'grid'; choose one of ga, bayes, random, none"),
        (["--budget", "huge"], "error: unknown --budget 'huge'; choose auto or one of cpu, gpu"),
        (["--ensemble", "0"], "error: --ensemble must be >= 1, got 0"),
        (["--stop", "oracle"], "error: unknown detector 'oracle'; choose one of"),
        (["--iters", "50"], "error: --iters 50 is too short for --stop auto: it needs at least 102 iterations"),
    ],
)
def test_restore_bad_input(extra, message, image_file, tmp_path, capsys):
    clean = image_file(h=64, w=64)
    assert main(["restore", "--clean", str(clean), "--out", str(tmp_path), *TINY, *extra]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "restore").exists() or not any((tmp_path / "restore").iterdir())


def test_choosers_are_data():
    assert list(CHOOSERS) == ["ga", "bayes", "random", "none"]


def test_restore_without_search_averages_the_default_and_its_restarts(image_file, tmp_path):
    clean = image_file(h=64, w=64)
    assert main(["restore", "--clean", str(clean), "--out", str(tmp_path), *TINY]) == 0
    run = _run_folder(tmp_path)
    stages = [row["stage"] for row in csv.DictReader((run / "stages.csv").open())]
    assert stages == ["default", "restart #1", "restart #2", "restart #3", "pick", "ensemble"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["psnr_restored"] == pytest.approx(summary["stages"]["ensemble"])


def test_a_search_fills_the_members_beyond_its_finalists_with_restarts_of_the_pick(image_file, tmp_path):
    clean = image_file(h=64, w=64)
    argv = ["restore", "--clean", str(clean), "--search", "ga", "--ensemble", "3", "--out", str(tmp_path), *TINY, *GA]
    argv[argv.index("--gens") + 1] = "0"  # two candidates: the default and one more, so two finalists
    assert main(argv) == 0
    run = _run_folder(tmp_path)
    stages = [row["stage"] for row in csv.DictReader((run / "stages.csv").open())]
    assert stages == ["default (search)", "search winner", "default", "finalist #1", "restart #1", "pick", "ensemble"]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["ensemble"] == 3 and len(summary["weights"]) == 3
