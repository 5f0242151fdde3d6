"""`dipsearch fit --stop ...` and `dipsearch stop-bench` (tiny nets and images, few iterations)."""

import csv
import json
import tomllib
from pathlib import Path

import pytest

from dipsearch import ArchSpec
from dipsearch.cli import main

SMALL_ARCH = ArchSpec(
    n_down=[8, 8, 8],
    n_up=[8, 8, 8],
    n_skip=[0, 4, 4],
    k_down=[3] * 3,
    k_up=[3] * 3,
    k_skip=[1] * 3,
    upsample=["bilinear"] * 3,
)


@pytest.fixture
def arch_file(tmp_path):
    path = tmp_path / "small.toml"
    path.write_text(SMALL_ARCH.to_toml())
    return str(path)


def _folders(out: Path, kind: str) -> list[Path]:
    return sorted((out / kind).glob("*")) if (out / kind).exists() else []


def test_fit_stop_wmv_saves_the_stopped_output_and_its_summary_keys(tmp_path, image_file, arch_file):
    out = tmp_path / "runs"
    argv = [
        "fit",
        "--clean",
        str(image_file()),
        "--arch",
        arch_file,
        "--iters",
        "400",
        "--stop",
        "wmv",
        "--stop-window",
        "10",
        "--patience",
        "20",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    (run,) = _folders(out, "fit")
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stop_detector"] == "wmv" and summary["stop_fired"] is True
    assert summary["iters_run"] == summary["stopped_iter"] + 20 < 400
    with open(run / "trace.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[summary["stopped_iter"] - 1]["psnr"]) == pytest.approx(summary["psnr_stopped"], abs=1e-9)
    assert (run / "output_stopped.png").is_file()


def test_fit_stop_holdout_withholds_pixels(tmp_path, image_file, arch_file):
    out = tmp_path / "runs"
    argv = [
        "fit",
        "--clean",
        str(image_file()),
        "--arch",
        arch_file,
        "--iters",
        "30",
        "--stop",
        "holdout",
        "--holdout-fraction",
        "0.1",
        "--out",
        str(out),
        "--no-progress",
    ]
    assert main(argv) == 0
    (run,) = _folders(out, "fit")
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["problem"]["holdout"] == {"fraction": 0.1, "seed": 0, "pixels": 102}
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stop_detector"] == "holdout" and summary["stop_fired"] is False  # 30 steps < patience 500


@pytest.mark.parametrize(
    "extra, message",
    [
        (
            ["--clean", "{img}", "--noise", "poisson", "--stop", "sure"],
            "SURE needs Gaussian noise, but this problem has poisson",
        ),
        (["{img}", "--stop", "sure"], "the Gaussian noise sigma is unknown; give --sigma S"),
        (["--clean", "{img}", "--stop", "sure", "--sure-sigma", "abc"], "--sure-sigma takes a number"),
        (["--clean", "{img}", "--stop", "wmvv"], "unknown detector 'wmvv'; choose one of wmv, emv, sure, holdout"),
        (["--clean", "{img}", "--stop", "wmv", "--iters", "50"], r"window \(100 steps\) is larger than the run \(50"),
    ],
)
def test_fit_stop_bad_input_exits_2_and_leaves_no_folder(tmp_path, image_file, arch_file, capsys, extra, message):
    out = tmp_path / "runs"
    img = str(image_file())
    argv = ["fit", *[a.replace("{img}", img) for a in extra], "--arch", arch_file, "--out", str(out), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    import re

    assert re.search(message, err), err
    assert _folders(out, "fit") == []


def test_stop_bench_writes_summary_resumes_and_replays(tmp_path, image_file, arch_file, capsys):
    out = tmp_path / "runs"
    img = str(image_file("tiny.png"))
    base = [
        "stop-bench",
        "--images",
        img,
        "--noise",
        "gaussian,impulse",
        "--levels",
        "2",
        "--crop",
        "16",
        "--iters",
        "210",
        "--window",
        "20",
        "--arch",
        arch_file,
        "--no-progress",
    ]
    assert main([*base, "--out", str(out)]) == 0
    (run,) = _folders(out, "stop-bench")
    names = {p.name for p in run.iterdir()}
    assert {"config.toml", "versions.json", "summary.csv", "summary.json", "runs.csv", "curves.png", "traces"} <= names
    traces = sorted(p.name for p in (run / "traces").iterdir())
    assert traces == [
        "tiny_gaussian_L2_s0.csv",
        "tiny_gaussian_L2_s0.json",
        "tiny_impulse_L2_s0.csv",
        "tiny_impulse_L2_s0.json",
    ]
    with open(run / "traces" / "tiny_gaussian_L2_s0.csv") as handle:
        header = next(csv.reader(handle))
    assert {"stat_wmv", "stat_emv", "psnr_emv", "stat_sure", "stat_holdout", "stat_spectral", "ssim"} <= set(header)
    summary = json.loads((run / "summary.json").read_text())
    rows = {(a["rule"], a["noise"], a["level"]): a for a in summary["aggregate"]}
    for key in [
        ("wmv", "gaussian", "medium"),
        ("sure", "gaussian", "all"),
        ("holdout", "impulse", "all"),
        ("fixed210", "all", "all"),
        ("wmv/P250", "all", "all"),
    ]:
        assert key in rows
    assert ("sure", "impulse", "all") not in rows  # SURE is not recorded off Gaussian noise
    agg = rows[("wmv", "all", "all")]
    for field in (
        "gap_median",
        "gap_mean",
        "gap_worst",
        "within_0.5dB",
        "within_1dB",
        "ssim_gap_mean",
        "delay_median",
        "spent_mean",
        "never_fired",
    ):
        assert field in agg
    assert agg["runs"] == 2 and rows[("fixed210", "all", "all")]["spent_mean"] == 210
    capsys.readouterr()

    # resume: both fits exist, nothing is refitted; a new noise type is added to the same folder
    stamp = (run / "traces" / "tiny_gaussian_L2_s0.csv").stat().st_mtime_ns
    assert main([*base[:4], "gaussian,impulse,speckle", *base[5:], "--resume", str(run)]) == 0
    assert "3 fits (2 already done)" in capsys.readouterr().out
    assert (run / "traces" / "tiny_gaussian_L2_s0.csv").stat().st_mtime_ns == stamp
    assert (run / "traces" / "tiny_speckle_L2_s0.json").is_file()
    assert json.loads((run / "summary.json").read_text())["fits"] == 3

    # replay only, with other patiences; asking for a detector a trace lacks is an error
    assert main(["stop-bench", "--replay", str(run), "--patience-grid", "50", "--detectors", "wmv,holdout"]) == 0
    rules = json.loads((run / "summary.json").read_text())["rules"]
    assert set(rules) == {"wmv", "holdout", "wmv/P50", "holdout/P50", "fixed210"}
    capsys.readouterr()
    assert main(["stop-bench", "--replay", str(run), "--detectors", "sure"]) == 2
    assert "tiny_impulse_L2_s0: the trace has no column 'stat_sure'" in capsys.readouterr().err

    # a resume with other fit settings would mix incomparable traces
    assert main([*base, "--iters", "250", "--resume", str(run)]) == 2
    assert "was run with other settings (fit)" in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--iters", "250", "--window", "300"], r"wmv window \(300\) is larger than the run \(250 iterations\)"),
        (["--noise", "gauss"], "unknown noise type 'gauss'"),
        (["--levels", "4"], "--levels takes 1 \\(low\\), 2 \\(medium\\) and 3 \\(high\\)"),
        (["--crop", "16"], r"clean\.png: the image is 16x16 px \(width x height\), which this network pads to 32x32"),
    ],
)
def test_stop_bench_bad_input(tmp_path, image_file, capsys, extra, message):
    import re

    out = tmp_path / "runs"
    assert main(["stop-bench", "--images", str(image_file()), "--out", str(out), *extra]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert _folders(out, "stop-bench") == []
