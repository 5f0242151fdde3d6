"""`dipsearch search ga` end to end: run folder, refit of the winner, SIGKILL + resume, Dask, bad input."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ga_helpers import write_space

from dipsearch import cli
from dipsearch.store.runs import read_jsonl
from dipsearch.store.tomlio import load_toml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def setup(tmp_path, image_file):
    clean = image_file("clean.png", 32, 32)
    space = write_space(tmp_path)
    return clean, space


def _args(clean, space, out, *extra):
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
        "25",
        "--no-progress",
        "--threads",
        "1",
        "--final-iters",
        "120",
        *map(str, extra),
    ]


def _run_dir(out: Path) -> Path:
    (folder,) = list((out / "search").iterdir())
    return folder


def test_search_writes_a_complete_run_folder_and_its_winner_refits(setup, tmp_path, capsys):
    clean, space = setup
    out = tmp_path / "runs"
    assert cli.main(_args(clean, space, out, "--pop", 4, "--gens", 2, "--seed", 5)) == 0
    run = _run_dir(out)
    assert run.name.endswith("_ga")
    for name in (
        "config.toml",
        "versions.json",
        "evaluations.jsonl",
        "generations.csv",
        "best_arch.toml",
        "best_output.png",
        "fitness.png",
        "summary.json",
        "ga_state.json",
        "space.toml",
    ):
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    for key in ("best_fitness", "best_psnr", "evaluations", "generations", "seconds", "default_fitness"):
        assert summary[key] is not None, key
    assert summary["best_fitness"] >= summary["final_default_score"] and summary["generations"] == 2
    config = load_toml(run / "config.toml")
    assert config["ga"]["pop"] == 4 and config["ga"]["seed"] == 5 and config["search"]["threads"] == 1
    assert config["search"]["fitness"] == "holdout" and config["problem"]["level"] == 25
    rows = [r for r in read_jsonl(run / "evaluations.jsonl") if "rung" not in r]  # the screening's
    assert len(rows) == summary["evaluations"] and {r["generation"] for r in rows} <= {0, 1, 2}
    with open(run / "generations.csv") as handle:
        gens = list(csv.DictReader(handle))
    assert [int(g["gen"]) for g in gens] == [0, 1, 2]
    assert float(gens[-1]["best_ever"]) == summary["screen_best_fitness"]
    printed = capsys.readouterr().out
    assert "best architectures" in printed and "default_fitness" in printed
    # the answer is the final rung's ensemble, named before the hint to refit the single pick
    assert (run / "ensemble.png").is_file()
    assert f"the answer: {run / 'ensemble.png'} (the final rung's ensemble;" in " ".join(printed.split())

    best = load_toml(run / "best_arch.toml")
    assert best["search"]["fitness"] == summary["best_fitness"]
    assert (
        cli.main(
            [
                "fit",
                "--clean",
                str(clean),
                "--arch",
                str(run / "best_arch.toml"),
                "--iters",
                "25",
                "--out",
                str(tmp_path / "fits"),
                "--no-progress",
            ]
        )
        == 0
    )
    (fit_run,) = list((tmp_path / "fits" / "fit").iterdir())
    fitted = json.loads((fit_run / "summary.json").read_text())
    assert fitted["params"] == summary["best_params"]


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_sigkill_during_a_generation_then_resume_matches_an_uninterrupted_run(setup, tmp_path):
    clean, space = setup
    common = ("--pop", 4, "--gens", 3, "--seed", 2, "--iters", 40)
    assert cli.main(_args(clean, space, tmp_path / "straight", *common)) == 0
    reference = json.loads((_run_dir(tmp_path / "straight") / "summary.json").read_text())

    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "cli.py"), *_args(clean, space, out, *common)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    log = None
    while time.monotonic() < deadline and proc.poll() is None:
        runs = list((out / "search").glob("*")) if (out / "search").exists() else []
        log = runs[0] / "evaluations.jsonl" if runs else None
        if log is not None and _lines(log) >= 6:  # generation 0 had 4: we are inside generation 1
            break
        time.sleep(0.02)
    assert proc.poll() is None, f"the search ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = log.parent
    state = json.loads((run / "ga_state.json").read_text())
    assert state["generation"] < 3 and not (run / "summary.json").exists()
    with open(log, "ab") as handle:  # as if the kill had cut a line short
        handle.write(b'{"index": 99, "key": "torn", "geno')

    assert cli.main(["search", "ga", "--resume", str(run), "--no-progress"]) == 0
    summary = json.loads((run / "summary.json").read_text())
    assert summary["best_genome"] == reference["best_genome"]
    assert summary["best_fitness"] == reference["best_fitness"]
    raw = log.read_text().splitlines()
    rows = [json.loads(line) for line in raw]  # every line whole
    assert len({r["key"] for r in rows}) == len(rows)
    assert len([r for r in rows if "rung" not in r]) == summary["evaluations"] == reference["evaluations"]
    assert "torn" not in log.read_text()


def test_dask_local_cluster_gives_the_in_process_result(setup, tmp_path):
    distributed = pytest.importorskip("distributed")
    clean, space = setup
    common = ("--pop", 3, "--gens", 1, "--seed", 1)
    assert cli.main(_args(clean, space, tmp_path / "local", *common)) == 0
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, host="127.0.0.1", protocol="tcp", dashboard_address=None
    ) as cluster:
        assert cli.main(_args(clean, space, tmp_path / "dask", *common, "--dask", cluster.scheduler_address)) == 0
    local = read_jsonl(_run_dir(tmp_path / "local") / "evaluations.jsonl")
    remote = read_jsonl(_run_dir(tmp_path / "dask") / "evaluations.jsonl")
    assert [(r["key"], r["fitness"], r["psnr"]) for r in local] == [(r["key"], r["fitness"], r["psnr"]) for r in remote]


def test_sure_fitness_and_online_stopping_drive_a_search(setup, tmp_path):
    clean, space = setup
    assert cli.main(_args(clean, space, tmp_path / "sure", "--pop", 2, "--gens", 1, "--fitness", "sure")) == 0
    sure = json.loads((_run_dir(tmp_path / "sure") / "summary.json").read_text())
    assert abs(sure["best_fitness"] - sure["best_psnr"]) < 2  # SURE estimates the true PSNR
    assert (
        cli.main(
            _args(
                clean,
                space,
                tmp_path / "stop",
                "--pop",
                2,
                "--gens",
                1,
                "--iters",
                200,
                "--stop",
                "wmv",
                "--stop-window",
                5,
                "--patience",
                10,
            )
        )
        == 0
    )
    run = _run_dir(tmp_path / "stop")
    rows = read_jsonl(run / "evaluations.jsonl")
    assert all(r["stopped_iter"] is not None and r["iters_run"] < 200 for r in rows)
    assert load_toml(run / "config.toml")["stop"]["detector"] == "wmv"


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nobody listens there


@pytest.mark.parametrize(
    "case",
    [
        "bad_space",
        "missing_space",
        "fitness",
        "psnr_no_clean",
        "dask",
        "resume_other",
        "resume_missing",
        "bad_pop",
        "sure_poisson",
        "stop_unknown",
    ],
)
def test_bad_input_exits_2_with_a_clear_message_and_leaves_nothing(case, setup, tmp_path, capsys):
    clean, space = setup
    out = tmp_path / "runs"
    observed = tmp_path / "observed.png"
    observed.write_bytes(clean.read_bytes())
    args, expect = {
        "bad_space": (
            _args(clean, write_space(tmp_path, "[genes.depth]\nkind = 'int'\nlow = 3\n", "bad.toml"), out),
            "bad.toml",
        ),
        "missing_space": (_args(clean, tmp_path / "nope.toml", out), "not found"),
        "fitness": (_args(clean, space, out, "--fitness", "magic"), "unknown fitness 'magic'"),
        "psnr_no_clean": (
            [
                "search",
                "ga",
                str(observed),
                "--space",
                str(space),
                "--fitness",
                "psnr",
                "--out",
                str(out),
                "--no-progress",
            ],
            "needs ground truth",
        ),
        "dask": (
            _args(clean, space, out, "--dask", f"tcp://127.0.0.1:{_closed_port()}", "--dask-timeout", 1),
            "cannot reach the Dask scheduler",
        ),
        "resume_other": (
            ["search", "ga", "--resume", str(_fit_run(clean, tmp_path)), "--no-progress"],
            "not a GA search run folder",
        ),
        "resume_missing": (["search", "ga", "--resume", str(tmp_path / "nowhere")], "no such run folder"),
        "bad_pop": (_args(clean, space, out, "--pop", 1), "--pop must be >= 2"),
        "sure_poisson": (_args(clean, space, out, "--fitness", "sure", "--noise", "poisson"), "Gaussian"),
        "stop_unknown": (_args(clean, space, out, "--stop", "oracle"), "unknown detector 'oracle'"),
    }[case]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "error:" in err and expect in " ".join(err.split()), err
    assert "Traceback" not in err
    assert not (out / "search").exists() or not any((out / "search").iterdir())


def _fit_run(clean, tmp_path) -> Path:
    assert (
        cli.main(
            [
                "fit",
                "--clean",
                str(clean),
                "--iters",
                "3",
                "--out",
                str(tmp_path / "fits"),
                "--no-progress",
                "--arch",
                str(_small_arch(tmp_path)),
            ]
        )
        == 0
    )
    (run,) = list((tmp_path / "fits" / "fit").iterdir())
    return run


def _small_arch(tmp_path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(
        "[arch]\nn_down = [8, 8]\nn_up = [8, 8]\nn_skip = [4, 4]\nk_down = [3, 3]\nk_up = [3, 3]\n"
        'k_skip = [1, 1]\nupsample = ["bilinear", "bilinear"]\n'
    )
    return path
