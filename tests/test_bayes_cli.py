"""`dipsearch search bayes` and `dipsearch worker` end to end: real (tiny) fits, real processes."""

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState
from test_bayes import TINY

from dipsearch.cli import main
from dipsearch.search.bayes.storage import OWNER, STALE, StorageSpec, open_storage
from dipsearch.search.bayes.study import RESULT, StudyStatus

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def one_thread():
    # Two cores shared by everything: one torch thread per process avoids oversubscription stalls.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def problem(tmp_path, image_file):
    space = tmp_path / "tiny.toml"
    space.write_text(TINY)
    return [
        "--clean",
        str(image_file("clean.png", 32, 32)),
        "--space",
        str(space),
        "--device",
        "cpu",
        "--no-progress",
        "--final-iters",
        "120",
    ]


def _runs(out: Path) -> list[Path]:
    return sorted((out / "search").glob("*_bayes")) if (out / "search").exists() else []


def _rows(run: Path) -> list[dict]:
    """The trials' rows (the final rung's fits are logged there too, without a trial number)."""
    rows = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]
    return [r for r in rows if "rung" not in r]


def _study(journal: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(StorageSpec.parse(str(journal))))


def _cli(*args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "dipsearch.cli", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_search_bayes_writes_its_run_folder_and_best_arch_fits(tmp_path, problem, capsys):
    out = tmp_path / "runs"
    code = main(
        [
            "search",
            "bayes",
            *problem,
            "--trials",
            "5",
            "--iters",
            "20",
            "--pruner",
            "median",
            "--report-every",
            "5",
            "--out",
            str(out),
            "--with-default",
        ]
    )
    assert code == 0
    (run,) = _runs(out)
    names = {p.name for p in run.iterdir()}
    assert {
        "config.toml",
        "versions.json",
        "evaluations.jsonl",
        "best_arch.toml",
        "best_output.png",
        "summary.json",
        "study.journal",
        "history.png",
        "importances.png",
        "fit_curves.png",
    } <= names
    assert not [n for n in names if n.endswith(".tmp")]
    rows = _rows(run)
    assert [r["trial"] for r in rows] == [0, 1, 2, 3, 4]
    assert all({"state", "pruned", "fitness", "psnr", "genome", "iters_run"} <= set(r) for r in rows)
    assert rows[0]["genome"]["depth"] == 2 and rows[0]["genome"]["lr"] == 0.01  # --with-default: the seed first
    summary = json.loads((run / "summary.json").read_text())
    assert summary["trials"] == 5 and summary["pruned"] == sum(r["pruned"] for r in rows)
    assert {"best_fitness", "best_psnr", "seconds"} <= set(summary)
    best = max((r for r in rows if r["state"] == "COMPLETE"), key=lambda r: r["fitness"])
    assert summary["screen_best_fitness"] == best["fitness"] and summary["screen_best_psnr"] == best["psnr"]
    # the answer is the final rung's choice: the best of its finalists, the default genome among them
    finals = [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]
    finals = [r for r in finals if r.get("rung") == "final"]
    assert len(finals) == 3 and summary["best_fitness"] in [r["fitness"] for r in finals]
    (choice,) = [f for f in summary["final"] if f["index"] == summary["final_choice"]]
    assert choice["default"] or (choice["z_vs_default"] >= 1.64 and choice["score"] > summary["final_default_score"])
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["bayes"]["sampler"] == {
        "name": "tpe",
        "seed": 0,
        "n_startup_trials": 3,
        "multivariate": True,
        "group": True,
        "constant_liar": True,
    }
    assert config["bayes"]["pruner"]["name"] == "median"
    printed = capsys.readouterr().out
    assert f"optuna-dashboard {run / 'study.journal'}" in printed.replace("\n", "")
    arch = run / "best_arch.toml"
    assert (
        main(["fit", problem[0], problem[1], "--arch", str(arch), "--iters", "3", "--out", str(out), "--no-progress"])
        == 0
    )
    fit_config = tomllib.loads(next((out / "fit").glob("*/config.toml")).read_text())
    assert fit_config["arch"] == tomllib.loads(arch.read_text())["arch"]


def test_rerun_on_the_same_storage_continues_the_study_with_pool_workers(tmp_path, problem):
    out, journal = tmp_path / "runs", tmp_path / "shared.journal"
    common = [
        *problem,
        "--iters",
        "20",
        "--out",
        str(out),
        "--storage",
        str(journal),
        "--study",
        "cont",
        "--pruner",
        "median",
        "--report-every",
        "4",
    ]
    assert main(["search", "bayes", *common, "--trials", "3"]) == 0
    # Same storage and study: continued (same run folder), now two trials at a time in a process pool whose
    # workers report to the pruner through the journal.
    assert main(["search", "bayes", *common, "--trials", "6", "--workers", "2"]) == 0
    (run,) = _runs(out)
    rows = _rows(run)
    assert sorted(r["trial"] for r in rows) == list(range(6))
    study = _study(journal, "cont")
    assert StudyStatus.of(study).counted == 6
    assert all(t.intermediate_values for t in study.trials[3:] if t.user_attrs[RESULT]["cached_from"] is None)
    assert json.loads((run / "summary.json").read_text())["trials"] == 6
    # a different problem on the same study is refused
    assert main(["search", "bayes", *common, "--trials", "7", "--sigma", "50"]) == 2


def test_two_worker_processes_complete_a_study_without_lost_or_duplicated_trials(tmp_path, problem):
    out, journal = tmp_path / "runs", tmp_path / "two.journal"
    assert (
        main(
            [
                "search",
                "bayes",
                *problem,
                "--iters",
                "30",
                "--trials",
                "0",
                "--out",
                str(out),
                "--storage",
                str(journal),
                "--study",
                "two",
                "--pruner",
                "none",
            ]
        )
        == 0
    )
    workers = [
        _cli("worker", "--storage", str(journal), "--study", "two", "--trials", "8", "--no-progress", cwd=tmp_path)
        for _ in range(2)
    ]
    for proc in workers:
        output, _ = proc.communicate(timeout=240)
        assert proc.returncode == 0, output
    study = _study(journal, "two")
    trials = study.trials
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state.is_finished() for t in trials)
    counted = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(counted) == StudyStatus.of(study).counted == 8  # the target, not more: no lost, none extra
    assert all(RESULT in t.user_attrs for t in counted)
    assert {t.user_attrs[OWNER]["pid"] for t in counted} == {p.pid for p in workers}  # both did work
    (run,) = _runs(out)
    assert main(["search", "bayes", "--resume", str(run), "--no-progress"]) == 0  # the driver collects the view
    rows = _rows(run)
    assert sorted(r["trial"] for r in rows) == [t.number for t in trials]


def test_killed_driver_restarted_continues_and_fails_its_stale_trial(tmp_path, problem):
    out = tmp_path / "runs"
    driver = _cli(
        "search",
        "bayes",
        *problem,
        "--iters",
        "150",
        "--trials",
        "3",
        "--pruner",
        "none",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    deadline, killed = time.time() + 180, None
    while time.time() < deadline and killed is None:
        time.sleep(0.2)
        runs = _runs(out)
        if not runs or not (runs[0] / "study.journal").exists():
            continue
        trials = _study(runs[0] / "study.journal", "bayes-tiny").trials
        running = [t for t in trials if t.state == TrialState.RUNNING and OWNER in t.user_attrs]
        if any(t.state == TrialState.COMPLETE for t in trials) and running:
            driver.send_signal(signal.SIGKILL)
            driver.wait()
            killed = running[0].number
    assert killed is not None, driver.communicate()[0]
    (run,) = _runs(out)
    assert main(["search", "bayes", "--resume", str(run)]) == 0
    study = _study(run / "study.journal", "bayes-tiny")
    assert study.trials[killed].state == TrialState.FAIL and "gone" in study.trials[killed].user_attrs[STALE]
    status = StudyStatus.of(study)
    assert status.counted == 3 and status.running == 0 and status.stale == 1
    rows = _rows(run)
    assert sorted(r["trial"] for r in rows) == [t.number for t in study.trials]  # each trial logged exactly once
    assert json.loads((run / "summary.json").read_text())["stale"] == 1


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--sampler", "bogus"], "unknown sampler 'bogus'"),
        (["--pruner", "never"], "unknown pruner 'never'"),
        (
            ["--storage", "sqlite:////nonexistent-dir/x.db"],
            "cannot open the Optuna storage sqlite:////nonexistent-dir/x.db",
        ),
        (["--storage", "nosuchdb://host/x"], "cannot open the Optuna storage nosuchdb://host/x"),
    ],
)
def test_bad_search_flags_exit_2_with_a_message_and_leave_no_run(tmp_path, problem, capsys, flags, message):
    out = tmp_path / "runs"
    assert main(["search", "bayes", *problem, "--trials", "1", "--iters", "5", "--out", str(out), *flags]) == 2
    assert message in capsys.readouterr().err.replace("\n", "")
    assert _runs(out) == []


def test_cmaes_without_its_package_says_what_to_install(tmp_path, problem, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cmaes" else real(name, *a))
    assert main(["search", "bayes", *problem, "--sampler", "cmaes", "--out", str(tmp_path / "runs")]) == 2
    assert "pip install cmaes" in capsys.readouterr().err


def test_worker_on_a_missing_study_or_storage_exits_2(tmp_path, capsys):
    journal = tmp_path / "empty.journal"
    assert main(["worker", "--storage", str(journal), "--study", "nope"]) == 2
    assert "no study 'nope' in journal:" in capsys.readouterr().err.replace("\n", "")
    assert main(["worker", "--storage", "sqlite:////nonexistent-dir/x.db", "--study", "nope"]) == 2
    assert "cannot open the Optuna storage" in capsys.readouterr().err


def test_dask_executor_runs_trials_and_pruning_reports(tmp_path, problem):
    distributed = pytest.importorskip("distributed")
    out = tmp_path / "runs"
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None
    ) as cluster:
        assert (
            main(
                [
                    "search",
                    "bayes",
                    *problem,
                    "--trials",
                    "3",
                    "--iters",
                    "12",
                    "--pruner",
                    "median",
                    "--report-every",
                    "4",
                    "--out",
                    str(out),
                    "--dask",
                    cluster.scheduler_address,
                ]
            )
            == 0
        )
    (run,) = _runs(out)
    study = _study(run / "study.journal", "bayes-tiny")
    assert StudyStatus.of(study).counted == 3
    assert all(t.intermediate_values for t in study.trials)
    assert tomllib.loads((run / "config.toml").read_text())["bayes"]["slots"] == 2
