"""`dipsearch preselect` end to end: the run folder, its winner, and each bad input with its message."""

import csv
import json
from pathlib import Path

import pytest
from ga_helpers import deep_space, write_space

from dipsearch import ArchSpec, cli
from dipsearch.preselect import METRICS
from dipsearch.store.tomlio import load_toml


@pytest.fixture
def setup(tmp_path, image_file):
    return image_file("clean.png", 32, 32), write_space(tmp_path)


def _args(clean, space, out, *extra):
    return [
        "preselect",
        "--clean",
        str(clean),
        "--space",
        str(space),
        "--out",
        str(out),
        "--no-progress",
        "--device",
        "cpu",
        *map(str, extra),
    ]


def _rows(run: Path) -> list[dict]:
    with open(run / "preselect.csv") as handle:
        return list(csv.DictReader(handle))


def test_preselect_scores_keeps_fits_and_picks(setup, tmp_path):
    clean, space = setup
    out = tmp_path / "runs"
    assert cli.main(_args(clean, space, out, "--candidates", 6, "--keep", 2, "--fit-iters", 10)) == 0
    (run,) = list((out / "preselect").iterdir())
    for name in (
        "config.toml",
        "versions.json",
        "preselect.csv",
        "best_arch.toml",
        "best_output.png",
        "summary.json",
        "preselect.png",
        "evaluations.jsonl",
    ):
        assert (run / name).is_file(), name
    rows = _rows(run)
    assert len(rows) == 6 and sorted(int(r["rank"]) for r in rows) == list(range(1, 7))
    kept = [r for r in rows if r["kept"] == "True"]
    assert sorted(int(r["rank"]) for r in kept) == [1, 2]
    assert all(r["fitness"] and r["psnr"] for r in kept) and not any(r["fitness"] for r in rows if r not in kept)
    by_rank = sorted(rows, key=lambda r: int(r["rank"]))
    assert [float(r["psd_mse"]) for r in by_rank] == sorted(float(r["psd_mse"]) for r in rows)
    assert set(METRICS) <= set(rows[0]) and len({r["genome"] for r in rows}) == 6
    summary = json.loads((run / "summary.json").read_text())
    assert summary["candidates"] == 6 and summary["kept"] == 2 and summary["fitted"] == 2
    best = max(kept, key=lambda r: float(r["fitness"]))
    assert summary["best_fitness"] == pytest.approx(float(best["fitness"]))
    assert summary["best_psnr"] == pytest.approx(float(best["psnr"]))
    assert summary["seconds_scoring"] > 0 and summary["seconds_fitting"] > 0
    winner = load_toml(run / "best_arch.toml")
    assert winner["genome"] == json.loads(best["genome"])
    ArchSpec.load(run / "best_arch.toml")  # the format `dipsearch fit --arch` reads
    assert load_toml(run / "config.toml")["preselect"]["keep"] == 2


def test_without_fitting_the_best_score_is_the_pick(setup, tmp_path):
    clean, space = setup
    out = tmp_path / "runs"
    assert cli.main(_args(clean, space, out, "--candidates", 5, "--keep", 2, "--metric", "psd_emd")) == 0
    (run,) = list((out / "preselect").iterdir())
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_rank"] == 1 and summary["best_fitness"] is None and summary["fitted"] == 0
    top = min(_rows(run), key=lambda r: float(r["psd_emd"]))
    assert load_toml(run / "best_arch.toml")["genome"] == json.loads(top["genome"])
    assert not (run / "preselect.png").exists()


@pytest.mark.parametrize(
    "extra,message",
    [
        (
            ["--metric", "sharpness"],
            "error: unknown pre-selection metric 'sharpness'; choose one of psd_mse, psd_emd, bandwidth, slope_gap",
        ),
        (
            ["--candidates", 3, "--keep", 5],
            "error: --keep 5 is larger than --candidates 3: keep at most as many candidates as are scored",
        ),
        (["--candidates", 0], "error: --candidates must be >= 1, got 0"),
    ],
)
def test_bad_flags_are_named_and_leave_no_run_folder(setup, tmp_path, capsys, extra, message):
    clean, space = setup
    out = tmp_path / "runs"
    assert cli.main(_args(clean, space, out, *extra)) == 2
    assert message in capsys.readouterr().err.replace("\n", " ")
    assert not (out / "preselect").exists() or not any((out / "preselect").iterdir())


def test_a_space_with_no_network_that_fits_the_image_is_refused(tmp_path, image_file, capsys):
    clean = image_file("small.png", 16, 16)
    space = write_space(tmp_path, deep_space(4, 5), "deep.toml")
    out = tmp_path / "runs"
    assert cli.main(_args(clean, space, out, "--candidates", 4, "--keep", 2)) == 2
    err = capsys.readouterr().err.replace("\n", " ")
    assert "error: no network of space 'tiny' fits the 16x16 px image in 200 samples" in err
    assert "use a larger image or a space with fewer levels" in err
    assert not (out / "preselect").exists() or not any((out / "preselect").iterdir())
