"""dipsearch study: a tiny study end to end, its resume after a kill, its pruner, its bad input."""

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import Future
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from dipsearch.cli import main
from dipsearch.nets.space import load_space
from dipsearch.preselect.seeding import SeedPlan, initial_genomes
from dipsearch.scoring.evaluate import Evaluation
from dipsearch.store.runs import read_jsonl
from dipsearch.study import StudySettings, resume_study, run_study
from dipsearch.study.genomes import skips_everywhere
from dipsearch.study.runner import GENOME, PRUNED_AFTER, StudyRunner
from dipsearch.study.storage import make_pruner

# Two levels of 4-8 channels: a 32 px fit of 120 steps takes about a second. 120: the members' auto stopping
# needs more than its 100-step warm-up.
SPACE = """
name = "tiny"
[genes.depth]
kind = "int"
low = 2
high = 3
default = 3
[genes.lr]
kind = "float"
low = 0.002
high = 0.03
log = true
default = 0.01
[levels.n_down]
kind = "choice"
choices = [4, 8]
default = [8, 8, 8]
[levels.n_up]
kind = "choice"
choices = [4, 8]
default = [8, 8, 8]
[levels.n_skip]
kind = "choice"
choices = [0, 4]
default = [0, 0, 4]
[fixed]
input_depth = 3
"""
ITERS = 120


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from conftest import synthetic_image

    from dipsearch.store.imageio import save_image

    root = tmp_path_factory.mktemp("study")
    (root / "images").mkdir()
    save_image(synthetic_image(32, 32), root / "images" / "a.png")
    save_image(synthetic_image(32, 32).flip(-1), root / "images" / "b.png")
    (root / "tiny.toml").write_text(SPACE)
    return root


def _settings(data, **changes):
    base = dict(images=[str(data / "images")], sigmas=[25.0], crop=32, space=str(data / "tiny.toml"), iters=ITERS)
    return StudySettings(**{**base, "trials": 3, "device": "cpu", **changes})


@pytest.fixture(scope="module")
def study(data):
    return run_study(_settings(data), out=data / "runs")


def test_a_tiny_study_writes_its_files_and_its_winner_fits_and_restores(study, data, tmp_path, capsys):
    run = study.run_dir
    for name in (
        "winner_arch.toml",
        "winner_space.toml",
        "instances.csv",
        "trials.csv",
        "fits.jsonl",
        "summary.json",
        "importances.json",
        "history.png",
        "report.html",
        "top_genomes.json",
    ):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["trials"] == 3 and summary["fits_run"] + summary["fits_reused"] == 6
    pick = study.outcome.pick
    assert summary["winner_mean_psnr"] == pytest.approx(pick["mean_psnr"])
    assert pick["mean_psnr"] == max(r["mean_psnr"] for r in study.outcome.rows if r["complete"])
    assert [r["instance"] for r in study.comparison] == ["a s25", "b s25"]
    # the winner's space has the pick as its default, and the same genes
    space, studied = load_space(run / "winner_space.toml"), load_space(data / "tiny.toml")
    assert space.genes.keys() == studied.genes.keys()
    assert space.default() == {**studied.default(), **pick["genome"]}
    assert (
        main(
            [
                "fit",
                "--clean",
                str(data / "images" / "a.png"),
                "--arch",
                str(run / "winner_arch.toml"),
                "--iters",
                "20",
                "--device",
                "cpu",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    # restore --arch fits the winner as the study's member fitted it: the same PSNR on the same instance
    argv = [
        "restore",
        "--clean",
        str(data / "images" / "a.png"),
        "--sigma",
        "25",
        "--arch",
        str(run / "winner_arch.toml"),
        "--iters",
        str(ITERS),
        "--ensemble",
        "1",
        "--device",
        "cpu",
        "--threads",
        "1",
        "--no-report",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 0
    (folder,) = (tmp_path / "restore").iterdir()
    # the member's own PSNR (psnr_restored is of the saved 8-bit PNG)
    restored = json.loads((folder / "summary.json").read_text())["stages"]["default"]
    row = next(r for r in study.comparison if r["instance"] == "a s25")
    assert restored == pytest.approx(row["winner_psnr"], abs=1e-6)
    assert main([*argv[:-2], "--out", str(tmp_path / "space"), "--space", str(run / "winner_space.toml")]) == 2
    assert "give --arch or --space, not both" in capsys.readouterr().err


def test_the_space_default_is_trial_0_and_the_skip_pattern_trial_1(study, data):
    space = load_space(data / "tiny.toml")
    trials = study.study.trials
    assert trials[0].user_attrs[GENOME] == space.default()
    assert trials[1].user_attrs[GENOME] == skips_everywhere(space)
    assert skips_everywhere(space)["n_skip[0]"] == 4 and study.outcome.default["trial"] == 0


def test_a_search_starts_from_the_study_s_best_genomes(study, data):
    space = load_space(data / "tiny.toml")
    genomes, info = initial_genomes(space, None, SeedPlan(start_from=[str(study.run_dir)]), room=4)
    best = json.loads((study.run_dir / "top_genomes.json").read_text())
    assert genomes[0] == space.default()  # the default stays first
    assert [g for g in genomes[1:]] == [r["genome"] for r in best if r["genome"] != space.default()][:3]
    assert info["from_study"] == len(genomes) - 1 >= 1


def test_restore_arch_refuses_a_search(study, data, tmp_path, capsys):
    argv = [
        "restore",
        "--clean",
        str(data / "images" / "a.png"),
        "--arch",
        str(study.run_dir / "winner_arch.toml"),
        "--search",
        "ga",
        "--out",
        str(tmp_path),
    ]
    assert main(argv) == 2
    assert "--arch fixes the network" in capsys.readouterr().err
    assert not (tmp_path / "restore").exists()


def test_a_killed_study_resumes_without_refitting_finished_fits(data, tmp_path):
    out = tmp_path / "runs"
    argv = [
        sys.executable,
        "-m",
        "dipsearch",
        "study",
        str(data / "images"),
        "--sigmas",
        "25",
        "--crop",
        "32",
        "--space",
        str(data / "tiny.toml"),
        "--trials",
        "2",
        "--iters",
        str(ITERS),
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    process = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            fits = list(out.glob("study/*/fits.jsonl"))
            if fits and len(read_jsonl(fits[0])) >= 1:
                break
            time.sleep(0.2)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait()
    (run,) = (out / "study").iterdir()
    before = read_jsonl(run / "fits.jsonl")
    assert len(before) == 1 and before[0]["trial"] == 0
    result = resume_study(run)
    rows = read_jsonl(run / "fits.jsonl")
    fresh = [r for r in rows if r["cached_from"] is None]
    assert result.summary["fits_reused"] == 1 and result.summary["fits_run"] == 3
    # the finished fit of the killed trial 0 is reused by the trial that re-runs its genome, never refitted
    assert len(fresh) == 4 and any(r["cached_from"] == 0 and r["instance"] == before[0]["instance"] for r in rows)
    assert result.summary["complete"] == 2 and result.outcome.default is not None


class SyntheticExecutor:
    """Answers a fit at once from a formula: the default genome scores 30 dB minus the instance's difficulty, any
    other genome 3 dB less (a clearly worse trial), so the pruner's decision can be checked without fitting."""

    def __init__(self, default):
        self.default = default

    def submit(self, fn, candidate):
        future = Future()
        psnr = 30.0 - 0.3 * candidate.instance - (0 if candidate.genome == self.default else 3.0)
        future.set_result(
            Evaluation(candidate.index, candidate.key, candidate.genome, 0.0, psnr, 1, 100, 1.0, stopped_iter=90)
        )
        return future

    def shutdown(self, **kwargs):
        pass


def test_the_wilcoxon_pruner_stops_a_clearly_worse_trial(data):
    space = load_space(data / "tiny.toml")
    default = space.default()
    study = optuna.create_study(direction="maximize", pruner=make_pruner("quality", 0.1))
    worse = {**default, "lr": 0.03}
    study.enqueue_trial(default)
    study.enqueue_trial({k: v for k, v in worse.items() if k in space.active(worse)})
    instances = [SimpleNamespace(number=i, name=f"i{i}") for i in range(10)]

    def candidate(genome, instance, index):
        key = json.dumps(genome, sort_keys=True)
        return SimpleNamespace(genome=genome, instance=instance.number, index=index, key=key)

    runner = StudyRunner(study, space, instances, candidate, target=2, executor=SyntheticExecutor(default))
    runner.run()
    first, second = study.trials
    assert PRUNED_AFTER not in first.user_attrs and len(first.intermediate_values) == 10
    assert 2 < second.user_attrs[PRUNED_AFTER] < 10  # stopped once the test is sure, not at the start-up steps
    assert len(second.intermediate_values) == second.user_attrs[PRUNED_AFTER]  # and fitted nothing after that
    assert second.value == pytest.approx(sum(second.intermediate_values.values()) / len(second.intermediate_values))


@pytest.mark.parametrize(
    "argv, message",
    [
        ([], "give at least one clean image or folder of images (IMAGES)"),
        (["{bad}"], "is not an image Pillow can read"),
        (["{images}", "--crop", "64"], "--crop 64 is larger than the clean image (32x32 px"),
        (["{images}", "--sigmas", "15,abc"], "--sigmas must be a comma-separated list of numbers"),
        (["{images}", "--space", "{broken}"], "broken.toml"),
        (["{images}", "--storage", "{other}"], "holds study 'other', made by another tool, not a dipsearch study"),
        (["{images}", "--trials", "0"], "--trials must be >= 1, got 0"),
        (["{images}", "--max-cost", "0"], "--max-cost must be > 0"),
        (["{images}", "{twin}"], "a.png and twin.png give the same crop: the study would count one picture twice"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_run_folder(argv, message, data, tmp_path, capsys):
    (tmp_path / "bad.png").write_text("not an image")
    (tmp_path / "broken.toml").write_text("[genes.depth\nkind = ")
    (tmp_path / "twin.png").write_bytes((data / "images" / "a.png").read_bytes())
    other = tmp_path / "other.journal"
    from dipsearch.search.bayes.storage import StorageSpec, open_storage

    optuna.create_study(study_name="other", storage=open_storage(StorageSpec.parse(str(other))))
    paths = {
        "bad": tmp_path / "bad.png",
        "images": data / "images",
        "broken": tmp_path / "broken.toml",
        "other": other,
        "twin": tmp_path / "twin.png",
    }
    argv = [a.format(**paths) for a in argv]
    out = tmp_path / "runs"
    code = main(
        ["study", *argv, "--crop", "32", "--iters", str(ITERS), "--out", str(out)]
        if "--crop" not in argv
        else ["study", *argv, "--iters", str(ITERS), "--out", str(out)]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert message in err and len(err.splitlines()) == 1, err
    assert not (out / "study").exists() or not any((out / "study").iterdir())


def test_the_pareto_objective_draws_the_front_and_too_few_trials_give_no_importances(data, tmp_path):
    result = run_study(_settings(data, trials=2, objective="pareto", max_cost=100.0), out=tmp_path)
    assert [d.name for d in result.study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert (result.run_dir / "pareto_front.png").is_file()
    assert result.importances == {} and "need 3 complete trials" in result.summary["importances_note"]
    assert result.outcome.cost_cap == pytest.approx(100.0 * result.outcome.default["seconds_per_fit"])


@pytest.mark.parametrize(
    "command, message",
    [
        (["search", "ga", "--start-from", "{folder}"], "--start-from {folder}: not a study's run folder"),
        (["restore", "--start-from", "{study}"], "--start-from seeds a search with a study's best genomes"),
        (["restore", "--search", "ga", "--start-from", "{study}"], "none of the study's best genomes is a genome"),
    ],
)
def test_start_from_refuses_what_it_cannot_use(command, message, study, data, tmp_path, capsys):
    from conftest import synthetic_image

    from dipsearch.store.imageio import save_image

    save_image(synthetic_image(64, 64), tmp_path / "c.png")  # large enough for the demo space's default
    paths = {"folder": tmp_path, "study": study.run_dir}
    argv = [*[a.format(**paths) for a in command], "--clean", str(tmp_path / "c.png"), "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message.format(**paths) in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "search").exists() and not (tmp_path / "restore").exists()


def test_resume_refuses_the_flags_its_folder_decides(study, capsys):
    assert main(["study", "--resume", str(study.run_dir), "--sigmas", "50", "--crop", "64"]) == 2
    err = capsys.readouterr().err.strip()
    assert "drop --sigmas, --crop (only --trials and --workers may be given again)" in err
    assert len(err.splitlines()) == 1
