"""Classical baselines: each improves on the observation of a tiny image; bad names and missing packages."""

import json
import sys

import pytest
import torch

from dipsearch.baselines import BASELINES, get_baseline, run_baseline
from dipsearch.baselines.common import noise_sigma
from dipsearch.cli import main
from dipsearch.cli.problem_args import demo_image_path
from dipsearch.errors import DipsearchError
from dipsearch.metrics import psnr
from dipsearch.problems.make import make_problem
from dipsearch.store.imageio import center_crop, load_image

PROBLEMS = {
    "denoise": dict(noise="gaussian", level=25),
    "sr": dict(factor=4),
    "inpaint": dict(mask_ratio=0.5),
    "deblur": dict(kernel="gaussian", noise="gaussian", level=2),
}  # cs-mri measures k-space, no image to compare with: its baselines are tested in test_problems.py


def _problem(task, size=48):
    # a natural image (the packaged demo): interpolation only beats pixel replication on natural content
    clean = center_crop(load_image(demo_image_path()), size, size)
    return make_problem(task, clean=clean, seed=1, **PROBLEMS[task])


@pytest.mark.parametrize("name", [n for n, b in BASELINES.items() if b.tasks[0] in PROBLEMS])
def test_each_baseline_beats_the_observation(name):
    baseline = BASELINES[name]
    if not baseline.available():
        pytest.skip(f"{baseline.package} is not installed (pip install 'dipsearch[{baseline.extra}]')")
    task = baseline.tasks[0]
    problem = _problem(task)
    out = run_baseline(name, problem)
    assert out.shape == (1, *problem.image_shape)
    # SR: the observation itself is scored as its nearest-neighbour enlargement (pixel replication)
    observed = problem.observed
    if task == "sr":
        observed = torch.nn.functional.interpolate(observed, size=problem.image_shape[1:], mode="nearest")
    gain = psnr(out, problem.clean) - psnr(observed, problem.clean)
    assert gain > 0.5, f"{name}: {gain:.2f} dB"


def test_baselines_never_read_the_clean_image():
    problem = _problem("denoise")
    with_clean = run_baseline("nlm", problem)
    problem.clean = None
    assert torch.equal(run_baseline("nlm", problem), with_clean)


def test_sigma_given_or_estimated():
    problem = _problem("denoise", size=64)
    assert noise_sigma(problem) == (25 / 255, "given")
    blind = make_problem("denoise", observed=problem.observed)
    sigma, source = noise_sigma(blind)
    assert source == "estimated" and abs(sigma * 255 - 25) < 8


def test_unknown_name_and_wrong_task():
    with pytest.raises(DipsearchError, match=r"unknown baseline 'median'; choose one of cbm3d, bm3d, biharmonic"):
        get_baseline("median")
    with pytest.raises(DipsearchError, match="baseline nlm solves denoise, not sr; for sr use bicubic, lanczos"):
        run_baseline("nlm", _problem("sr"))


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # import bm3d now raises ImportError
    with pytest.raises(
        DipsearchError, match=r"needs the optional package 'bm3d'.*pip install 'dipsearch\[baselines\]'"
    ):
        run_baseline("cbm3d", _problem("denoise"))


def test_cli_writes_a_run_folder(image_file, tmp_path, capsys):
    clean = image_file(h=48, w=48)
    assert (
        main(["baseline", "lanczos", "--task", "sr", "--factor", "4", "--clean", str(clean), "--out", str(tmp_path)])
        == 0
    )
    (run,) = (tmp_path / "baseline").iterdir()
    assert sorted(p.name for p in run.iterdir()) == [
        "clean.png",
        "config.toml",
        "observed.png",
        "output.png",
        "summary.json",
        "versions.json",
    ]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["method"] == "lanczos" and summary["psnr"] > summary["psnr_observed"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["baseline", "median", "--demo"], "error: unknown baseline 'median'; choose one of"),
        (["baseline", "biharmonic", "--demo"], "error: baseline biharmonic solves inpaint, not denoise"),
    ],
)
def test_cli_bad_input(argv, message, tmp_path, capsys):
    assert main(argv + ["--out", str(tmp_path)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "baseline").exists() or not any((tmp_path / "baseline").iterdir())


def test_cli_missing_package(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "bm3d", None)
    assert main(["baseline", "cbm3d", "--demo", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "error: baseline cbm3d needs the optional package 'bm3d', which is not installed" in err
    assert "pip install 'dipsearch[baselines]'" in err
    assert not (tmp_path / "baseline").exists()
