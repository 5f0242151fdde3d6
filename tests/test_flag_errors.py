"""Bad input across the commands: each gets one `error:` line in the user's flags, exit status 2, no traceback,
and nothing left behind (no run folder, no stray file). Also the estimates and texts those checks rely on."""

from pathlib import Path

import numpy as np
import pytest

from dipsearch.cli import main


def _files(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def _error(tmp_path: Path, capsys, argv: list, out: bool = True) -> str:
    """Run the CLI on bad input; the one error line, after checking that nothing was left behind."""
    before = _files(tmp_path)
    argv = [str(a) for a in argv] + (["--out", str(tmp_path / "runs")] if out else [])
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert len(captured.err.strip().splitlines()) == 1 and captured.err.startswith("error: "), captured.err
    assert _files(tmp_path) == before  # no run folder, no half-written file
    return " ".join(captured.err.split())


@pytest.fixture
def clean(image_file):
    return image_file("clean.png", 64, 64)


# ---------------------------------------------------------------- baselines estimate sigma without PyWavelets


def _block_pywt(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "pywt", None)  # `import pywt` raises ImportError, as where it is missing


@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.2])
@pytest.mark.parametrize("channels", [1, 3])
def test_haar_sigma_recovers_a_known_sigma(sigma, channels):
    from dipsearch.baselines.common import haar_sigma

    yy, xx = np.mgrid[0:128, 0:128] / 128.0
    ramp = np.stack([0.3 + 0.4 * xx, 0.2 + 0.5 * yy, 0.5 + 0 * xx], -1)[..., :channels]  # cancelled by Haar HH
    noisy = ramp + np.random.default_rng(0).normal(0, sigma, ramp.shape)
    assert haar_sigma(noisy) == pytest.approx(sigma, rel=0.05)
    assert haar_sigma(ramp) < 1e-9


@pytest.mark.parametrize(
    "name, shape, task",
    [("nlm", (64, 64, 3), "denoise"), ("nlm", (64, 64, 1), "denoise"), ("wiener", (64, 64, 3), "deblur")],
)
def test_baselines_estimate_sigma_without_pywavelets(tmp_path, capsys, monkeypatch, name, shape, task):
    from dipsearch.store.imageio import save_image
    from tests.conftest import synthetic_image

    _block_pywt(monkeypatch)
    noisy = tmp_path / "noisy.png"
    save_image(synthetic_image(shape[0], shape[1], shape[2]), noisy)
    out = tmp_path / "runs"
    assert main(["baseline", name, str(noisy), "--task", task, "--out", str(out)]) == 0
    assert "estimated" in capsys.readouterr().out
    (run,) = (out / "baseline").iterdir()
    assert (run / "output.png").is_file()


def test_one_pixel_image_asks_for_sigma(tmp_path, capsys, monkeypatch, image_file):
    _block_pywt(monkeypatch)
    tiny = image_file("tiny.png", 1, 1)
    text = _error(tmp_path, capsys, ["baseline", "nlm", tiny])
    assert (
        "the noise level of a 1x1 image cannot be estimated (it takes 2x2 pixels at least); give it with --sigma"
        in text
    )
    out = tmp_path / "given"
    assert main(["baseline", "nlm", str(tiny), "--sigma", "25", "--out", str(out)]) == 0  # a stated sigma runs


# ---------------------------------------------------------------- restore: its flags, checked before any folder


def test_restore_iters_below_the_stopping_minimum(tmp_path, capsys):
    for iters in (100, 101):
        text = _error(tmp_path, capsys, ["restore", "--demo", "--iters", iters])
        assert (
            f"--iters {iters} is too short for --stop auto: it needs at least 102 iterations (a 100-step warm-up "
            "or window comes first); give --iters >= 102, or --stop none to run any budget"
        ) in text
        assert "emv" not in text and "final_iters" not in text


def test_search_final_iters_below_the_stopping_minimum(tmp_path, capsys):
    text = _error(tmp_path, capsys, ["search", "ga", "--demo", "--final-iters", "50", "--no-progress"])
    assert "--final-iters 50 is too short for --final-stop auto: it needs at least 102 iterations" in text
    assert "or --final-stop none to run any budget" in text


def test_restore_at_the_stopping_minimum_passes_the_check():
    from dipsearch.pipelines.restore import Pipeline, RestoreSettings
    from dipsearch.problems.recipe import ProblemRecipe

    Pipeline(ProblemRecipe(demo=True).build(), RestoreSettings(iters=102))  # the stated minimum is accepted


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--workers", "-1"], "--workers must be >= 1, got -1"),
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--pop", "50"], "--pop is for --search ga, not --search none; drop it"),
        (["--gens", "2"], "--gens is for --search ga, not --search none; drop it"),
        (["--trials", "5"], "--trials is for --search bayes or random, not --search none; drop it"),
        (["--search-iters", "50"], "--search-iters is for --search ga or bayes or random, not --search none"),
        (["--search", "bayes", "--pop", "3"], "--pop is for --search ga, not --search bayes; drop it"),
        (["--search", "ga", "--trials", "3"], "--trials is for --search bayes or random, not --search ga"),
        (["--search", "random", "--gens", "3"], "--gens is for --search ga, not --search random; drop it"),
        (
            ["--stop", "foo"],
            "unknown detector 'foo'; choose one of wmv, emv, sure, holdout, spectral, auto (the recommended "
            "stopping) or none (no stopping)",
        ),
        (["--search", "foo"], "unknown --search 'foo'; choose one of ga, bayes, random, none"),
    ],
)
def test_restore_flag_errors(tmp_path, capsys, flags, message):
    assert message in _error(tmp_path, capsys, ["restore", "--demo", *flags])


def test_restore_search_choices_are_the_registered_searchers():
    from dipsearch.pipelines.choosers import CHOOSERS
    from dipsearch.search.base import SEARCHERS

    assert set(SEARCHERS) | {"none"} == set(CHOOSERS)


def test_restore_runs_a_random_search(tmp_path, capsys):
    out = tmp_path / "runs"
    argv = ["restore", "--demo", "--crop", "48", "--search", "random", "--trials", "2", "--search-iters", "2"]
    argv += ["--iters", "3", "--stop", "none", "--ensemble", "2", "--no-report", "--out", str(out)]
    assert main(argv) == 0
    assert "random search" in capsys.readouterr().out
    (run,) = (out / "restore").iterdir()
    assert (run / "restored.png").is_file()
    assert "random" in (run / "config.toml").read_text()


def test_wrong_noise_for_the_task_is_refused(tmp_path, capsys, clean):
    text = _error(tmp_path, capsys, ["restore", "--clean", clean, "--task", "cs-mri", "--noise", "impulse"])
    assert "cs-mri takes gaussian noise, not impulse" in text


def test_acceleration_beyond_the_columns_is_refused(tmp_path, capsys, clean):
    argv = ["restore", "--clean", clean, "--task", "cs-mri", "--acceleration", "1000", "--crop", "48"]
    text = _error(tmp_path, capsys, argv)
    assert "--acceleration 1000 keeps less than one of the image's 48 k-space columns; use --acceleration <= 48" in text


def test_one_member_on_few_held_out_values_runs(tmp_path, capsys, clean):
    """cs-mri at a high acceleration holds out a handful of k-space values: too few for fitted weights, which a
    single member does not need and an ensemble only shows as a comparison."""
    out = tmp_path / "runs"
    for k in ("1", "2"):
        argv = ["restore", "--clean", str(clean), "--task", "cs-mri", "--acceleration", "40", "--crop", "48"]
        argv += ["--ensemble", k, "--iters", "3", "--stop", "none", "--no-report", "--out", str(out)]
        assert main(argv) == 0, capsys.readouterr().err
    assert len(list((out / "restore").iterdir())) == 2


# ---------------------------------------------------------------- stop-bench


@pytest.fixture
def other_folders(tmp_path, clean):
    """A restore folder and a random-search folder: run folders, but not stop-bench ones."""
    out = tmp_path / "made"
    argv = ["restore", "--clean", str(clean), "--iters", "3", "--stop", "none", "--ensemble", "1", "--no-report"]
    assert main([*argv, "--out", str(out)]) == 0
    argv = ["search", "random", "--clean", str(clean), "--trials", "1", "--iters", "2", "--final", "0"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    return [next((out / "restore").iterdir()), next((out / "search").iterdir())]


@pytest.mark.parametrize("flag", ["--replay", "--resume"])
def test_stop_bench_refuses_other_run_folders(tmp_path, capsys, other_folders, flag):
    capsys.readouterr()
    for folder in other_folders:
        text = _error(tmp_path, capsys, ["stop-bench", flag, folder])
        assert f"{folder} is not a stop-bench run folder (its config.toml has no [protocol] and [jobs])" in text


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--detectors", "emv,foo", "--iters", "20"], "unknown detector 'foo'; choose one of"),
        (["--detectors", "emv,foo", "--iters", "150"], "unknown detector 'foo'; choose one of"),
        (["--detectors", "emv", "--iters", "20"], "--iters 20 is within the emv detector's 100-step warm-up"),
        (["--levels", "nan"], "--levels takes 1 (low), 2 (medium) and 3 (high), got 'nan'"),
        (["--levels", "1,x"], "--levels takes 1 (low), 2 (medium) and 3 (high), got '1,x'"),
        (["--sigmas", "25,2x"], "--sigmas takes comma-separated numbers, got '2x'"),
        (["--patience-grid", "250,1.5"], "--patience-grid takes comma-separated whole numbers, got '1.5'"),
    ],
)
def test_stop_bench_flag_errors(tmp_path, capsys, clean, flags, message):
    assert message in _error(tmp_path, capsys, ["stop-bench", "--images", clean, *flags])


def test_stop_bench_judges_only_the_detectors_asked_for(tmp_path, capsys, image_file):
    """The wmv window and spectral's 200 steps do not apply to a bench of EMV alone."""
    out = tmp_path / "runs"
    argv = ["stop-bench", "--images", str(image_file("c.png", 40, 40)), "--detectors", "emv", "--iters", "110"]
    argv += ["--noise", "gaussian", "--levels", "1", "--window", "200", "--no-progress", "--out", str(out)]
    assert main(argv) == 0, capsys.readouterr().err


# ---------------------------------------------------------------- searchers' progress lines and help


def test_bayes_progress_lines_count_from_one_like_the_other_searchers(tmp_path, capsys, clean):
    import re

    argv = ["search", "bayes", "--clean", str(clean), "--trials", "2", "--iters", "3", "--final", "0"]
    assert main([*argv, "--no-progress", "--out", str(tmp_path / "runs")]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("trial ")]
    assert len(lines) == 2
    for number, line in enumerate(lines, 1):
        assert re.fullmatch(rf"trial {number}/2: fitness \d+\.\d\d dB \(3 iters, \d+\.\d s\)", line), line


def test_random_search_help_describes_its_flags(capsys):
    with pytest.raises(SystemExit):
        main(["search", "random", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--trials N architectures to fit" in text
    assert "--with-default make the space's default network the first trial" in text


# ---------------------------------------------------------------- fit --threads, as restore has it


def test_fit_threads(tmp_path, capsys, clean):
    import torch

    assert "--threads must be >= 1, got 0" in _error(tmp_path, capsys, ["fit", "--clean", clean, "--threads", "0"])
    before = torch.get_num_threads()
    try:
        argv = ["fit", "--clean", str(clean), "--threads", "1", "--iters", "2", "--no-progress"]
        assert main([*argv, "--out", str(tmp_path / "runs")]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------- searches too large to draw


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["search", "ga", "--demo", "--pop", "1000000000"],
            "--pop 1000000000 and --gens 3 would take 4,000,000,000 candidate fits; one search takes at most 100,000",
        ),
        (["search", "ga", "--demo", "--pop", "50001", "--gens", "1"], "would take 100,002 candidate fits"),
        (["search", "random", "--demo", "--trials", "1000000000"], "--trials 1000000000 would take 1,000,000,000"),
        (["search", "bayes", "--demo", "--trials", "1000000000"], "--trials 1000000000 would take 1,000,000,000"),
        (
            ["restore", "--demo", "--search", "ga", "--pop", "1000000000"],
            "--search ga with this budget would take 3,000,000,000 candidate fits; one search takes at most 100,000",
        ),
        (["restore", "--demo", "--search", "random", "--trials", "200000"], "--search random with this budget"),
    ],
)
def test_searches_too_large_are_refused_up_front(tmp_path, capsys, argv, message):
    assert message in _error(tmp_path, capsys, [*argv, "--no-progress"] if argv[0] == "search" else argv)


def test_a_stored_search_too_large_is_refused_on_resume(tmp_path, capsys, clean):
    """A folder from before the limit (or edited) fails in words instead of allocating on --resume."""
    import re

    out = tmp_path / "made"
    argv = ["search", "ga", "--clean", str(clean), "--pop", "2", "--gens", "0", "--iters", "2", "--final", "0"]
    assert main([*argv, "--no-progress", "--out", str(out)]) == 0
    (run,) = (out / "search").iterdir()
    config = run / "config.toml"
    config.write_text(re.sub(r"(?m)^pop = 2$", "pop = 1000000000", config.read_text()))
    capsys.readouterr()
    text = _error(tmp_path, capsys, ["search", "ga", "--resume", run, "--no-progress"], out=False)
    assert "would take 1,000,000,000 candidate fits" in text


# ---------------------------------------------------------------- a restore stopped by Ctrl-C or a kill


@pytest.mark.parametrize("signame, status", [("SIGTERM", 143), ("SIGINT", 130)])
def test_interrupted_restore_leaves_nothing_and_says_what_was_lost(tmp_path, clean, signame, status):
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "runs"
    argv = [sys.executable, "-m", "dipsearch", "restore", "--clean", str(clean), "--crop", "48", "--iters", "300"]
    argv += ["--stop", "none", "--no-report", "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while not any(p.stat().st_size for p in out.glob("restore/*/search/*/evaluations.jsonl")):  # one member done
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.1)
    proc.send_signal(getattr(signal, signame))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == status
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(f"interrupted: discarded {out / 'restore'}")
    assert "with 1 of 4 ensemble member(s) finished (restore does not resume" in err
    assert not any((out / "restore").iterdir())


def test_wmv_window_is_checked_before_the_bench_starts_and_named_by_its_flag(tmp_path, capsys, clean):
    argv = ["stop-bench", "--images", clean, "--detectors", "wmv", "--window", "1", "--iters", "300"]
    assert "wmv: --window must be >= 2, got 1" in _error(tmp_path, capsys, argv)
    argv = ["fit", "--clean", clean, "--stop", "wmv", "--stop-window", "1", "--iters", "300"]
    assert "wmv: --stop-window must be >= 2, got 1" in _error(tmp_path, capsys, argv)


# ---------------------------------------------------------------- --threads on every search, as the GA has it


@pytest.mark.parametrize("searcher", ["bayes", "random"])
def test_every_search_takes_threads(tmp_path, capsys, clean, searcher):
    assert "--threads must be >= 1, got 0" in _error(
        tmp_path, capsys, ["search", searcher, "--clean", clean, "--threads", "0", "--no-progress"]
    )
    out = tmp_path / "runs"
    argv = ["search", searcher, "--clean", str(clean), "--trials", "1", "--iters", "2", "--final", "0"]
    assert main([*argv, "--threads", "1", "--no-progress", "--out", str(out)]) == 0
    (run,) = (out / "search").iterdir()
    assert "threads = 1" in (run / "config.toml").read_text()


# ---------------------------------------------------------------- reproduce: restore's flags and the budget


@pytest.fixture
def classic9(tmp_path, image_file):
    folder = tmp_path / "data" / "classic9"
    folder.mkdir(parents=True)
    for name in ("A", "B"):
        image_file(name + ".png", 64, 64).rename(folder / (name + ".png"))
    return tmp_path / "data"


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--methods", "nlm", "--pop", "3"],
            "--pop is a setting of the restore method, which --methods leaves out: add restore to --methods or "
            "drop --pop",
        ),
        (["--methods", "nlm,dip", "--search", "none", "--ensemble", "2"], "--search, --ensemble are settings of"),
        (
            ["--methods", "restore", "--iters", "101"],
            "--iters 101 is too short for restore: 102 iterations at least (EMV's 100-step warm-up comes first)",
        ),
        (["--methods", "dip-stop", "--iters", "100"], "--iters 100 is too short for dip-stop: 101 iterations at least"),
        (["--methods", "restore", "--search", "random", "--pop", "3"], "--pop is for --search ga, not --search random"),
    ],
)
def test_reproduce_flag_errors(tmp_path, capsys, classic9, flags, message):
    text = _error(tmp_path, capsys, ["reproduce", "denoise", "--data", classic9, *flags])
    assert message in text and "emv:" not in text
