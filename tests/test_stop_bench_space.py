"""`dipsearch stop-bench --space PATH --candidates N`: the stopping benchmark across a space's networks."""

import json
import re
import tomllib
from pathlib import Path

import pytest

from dipsearch.cli import main

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "demo.toml"


def _folders(out: Path) -> list[Path]:
    return sorted((out / "stop-bench").glob("*")) if (out / "stop-bench").exists() else []


def test_cross_architecture_bench_fits_candidates_beside_the_seed_network(tmp_path, image_file, capsys):
    out = tmp_path / "runs"
    args = ["stop-bench", "--images", str(image_file("tiny.png", 48, 48)), "--crop", "40", "--iters", "210"]
    args += ["--window", "20", "--space", str(SPACE), "--candidates", "2", "--noise", "gaussian,impulse"]
    args += ["--sigmas", "25", "--levels", "2", "--detectors", "wmv,emv,holdout", "--no-progress", "--out", str(out)]
    assert main(args) == 0
    (run,) = _folders(out)
    traces = sorted(p.stem for p in (run / "traces").glob("*.json"))
    assert traces == [
        f"{net}_tiny_{setting}_s0" for net in ("c00", "c01", "seed") for setting in ("gaussian_v25", "impulse_L2")
    ]
    metas = {p.stem: json.loads(p.read_text()) for p in (run / "traces").glob("*.json")}
    assert metas["seed_tiny_gaussian_v25_s0"]["level_value"] == 25
    assert metas["seed_tiny_gaussian_v25_s0"]["lr"] == 0.01  # the seed network keeps the default fit settings
    assert {m["lr"] for m in metas.values()} != {0.01}  # candidates carry their own learning rate
    assert set(metas["c00_tiny_impulse_L2_s0"]["detectors"]) == {"wmv", "emv", "holdout"}
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["protocol"]["candidates"] == 2 and set(config["networks"]) == {"seed", "c00", "c01"}
    assert "lr" in config["networks"]["c00"]["genome"]
    assert (run / "stop_vs_peak.png").is_file()
    summary = json.loads((run / "summary.json").read_text())
    rows = {(a["rule"], a["noise"], a["level"], a["network"]): a for a in summary["aggregate"]}
    for network, runs in (("all", 6), ("seed", 2), ("candidates", 4)):
        row = rows[("emv/progress", "all", "all", network)]
        assert row["runs"] == runs
        for field in ("gap_median", "gap_p90", "within_1dB", "spent_share", "premature"):
            assert field in row
    assert rows[("emv", "gaussian", "25", "all")]["runs"] == 3
    assert rows[("fixed210", "all", "all", "all")]["spent_share"] == pytest.approx(1.0)
    assert "premature" in capsys.readouterr().out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--space", str(SPACE), "--candidates", "0"], "error: --candidates must be >= 1, got 0"),
        (["--candidates", "3"], "error: --candidates needs --space PATH"),
        (["--space", "{deep}"], "error: no network of space 'deep' fits the 64x64 image; its smallest, of depth 7"),
        (["--detectors", "wmv,oracle"], "error: unknown detector 'oracle'; choose one of wmv, emv, sure"),
        (
            ["--detectors", "sure,emv", "--noise", "gaussian,poisson"],
            "error: sure: SURE needs Gaussian noise, but the bench asks for poisson noise",
        ),
        (["--sigmas", "25,300"], r"error: --sigmas takes Gaussian sigmas in \(0, 255\], got 300"),
    ],
)
def test_cross_architecture_bench_bad_input(tmp_path, image_file, capsys, extra, message):
    deep = tmp_path / "deep.toml"  # the demo space made too deep for a 64 px image, the seed network still fits
    text = re.sub(r"default = \[[^\]]*\]", "default = 8", SPACE.read_text())
    deep.write_text(
        text.replace('name = "demo"', 'name = "deep"').replace(
            "low = 3\nhigh = 5\ndefault = 5", "low = 7\nhigh = 8\ndefault = 7"
        )
    )
    out = tmp_path / "runs"
    extra = [a.format(deep=deep) for a in extra]
    assert main(["stop-bench", "--images", str(image_file(h=64, w=64)), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and len(err.strip().splitlines()) == 1
    assert _folders(out) == []


def test_fit_stop_auto_runs_the_recommended_stopping(tmp_path, image_file):
    from conftest import SMALL

    from dipsearch.stopping.auto import recommend

    arch = tmp_path / "small.toml"
    arch.write_text(SMALL.to_toml())
    out = tmp_path / "runs"
    argv = ["fit", "--clean", str(image_file()), "--arch", str(arch), "--iters", "300", "--stop", "auto"]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    (run,) = sorted((out / "fit").glob("*"))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stop_detector"] == recommend("denoise", "gaussian").detector
    assert (run / "output_stopped.png").is_file()


def test_final_stop_auto_checks_every_detector_it_runs(tmp_path, image_file, capsys):
    from test_rungs import _cli_args, write_space

    clean, space = image_file("clean.png", 32, 32), write_space(tmp_path)
    argv = _cli_args(clean, space, tmp_path / "runs", "--final-stop", "auto", "--final-iters", "80")
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--final-iters 80 is too short for --final-stop auto: it needs at least 102 iterations" in " ".join(
        err.split()
    )
