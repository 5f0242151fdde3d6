"""TensorBoard logs: a fit's curves, images and stop step; one run per search candidate with hparams; the extra."""

import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import SMALL
from ga_helpers import write_space

from dipsearch import FitConfig, fit, make_problem
from dipsearch.cli import main
from dipsearch.errors import ArgumentError, DipsearchError
from dipsearch.fitting.fit import FitHook, StepState
from dipsearch.fitting.trace import Lazy
from dipsearch.search.spec import Runtime
from dipsearch.stopping import StoppingHook, make_detector

pytest.importorskip("tensorboard", reason="the tensorboard extra is not installed")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402

from dipsearch.fitting.tensorboard import MISSING, TensorBoardHook  # noqa: E402


def _events(logdir: Path) -> EventAccumulator:
    events = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    events.Reload()
    return events


def _scalars(events: EventAccumulator, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in events.Scalars(tag)}


def _session_hparams(events: EventAccumulator) -> dict:
    """The hparams a run's session-start record holds, as plain values."""
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    start = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    out = {}
    for name, value in start.hparams.items():
        kind = value.WhichOneof("kind")
        out[name] = getattr(value, kind)
    return out


class _Flushes(FitHook):
    def __init__(self):
        self.batches = []

    def on_flush(self, rows):
        self.batches.append([(r["step"], all(not isinstance(v, Lazy) for v in r.values())) for r in rows])


def test_engine_hands_hooks_the_fetched_rows_at_each_trace_flush(clean32):
    problem = make_problem("denoise", clean=clean32, level=25, seed=0)
    spy = _Flushes()
    result = fit(problem, SMALL, FitConfig(iters=25, trace_every=10, device="cpu", seed=0), [spy])
    assert [[step for step, _ in batch] for batch in spy.batches] == [
        list(range(1, 11)),
        list(range(11, 21)),
        list(range(21, 26)),
    ]
    assert all(resolved for batch in spy.batches for _, resolved in batch)  # floats there, never device scalars
    assert [r["step"] for r in result.trace] == list(range(1, 26))


class _Unread(Lazy):
    """A device scalar that fails when read: a hook reading it per step would synchronise on a GPU."""

    def __float__(self):
        raise AssertionError("read during the step")


def test_hook_reads_no_value_during_a_step(tmp_path, clean32):
    problem = make_problem("denoise", clean=clean32, level=25, seed=0)
    hook = TensorBoardHook(tmp_path / "tb", image_every=1)
    hook.on_start(problem, SMALL, FitConfig(iters=1))
    record = {"step": 1, "loss": _Unread(torch.tensor(1.0)), "psnr": _Unread(torch.tensor(20.0))}
    out = problem.observed.clone()
    hook.on_step(StepState(1, out, out, record["loss"], problem, record, None, out))
    ((step, held),) = hook.images  # held on its device until the next flush, as a copy of that step's output
    out.zero_()
    assert step == 1 and held.device == out.device and torch.equal(held, problem.observed)
    hook.close()


def test_fit_hook_writes_curves_images_and_the_stop_step(tmp_path, clean32):
    problem = make_problem("denoise", clean=clean32, level=25, seed=0)
    detector = make_detector("emv", warmup=10)
    stopper = StoppingHook.online(detector, detector.rule(patience=15))
    logdir = tmp_path / "tb"
    config = FitConfig(iters=80, trace_every=20, ssim_every=40, device="cpu", seed=0)
    result = fit(problem, SMALL, config, [stopper, TensorBoardHook(logdir, image_every=25)])
    events = _events(logdir)
    tags = events.Tags()
    assert {"trace/loss", "trace/psnr", "trace/psnr_ema", "trace/ssim", "trace/stat_emv", "stop/chosen_step"} <= set(
        tags["scalars"]
    )
    loss = _scalars(events, "trace/loss")
    assert sorted(loss) == [r["step"] for r in result.trace]
    assert all(loss[r["step"]] == pytest.approx(r["loss"], rel=1e-6) for r in result.trace)
    assert _scalars(events, "trace/ssim").keys() == {r["step"] for r in result.trace if "ssim" in r}
    images = {e.step for e in events.Images("image/output")}
    assert images == {s for s in (1, 25, 50, 75) if s <= result.iters_run}
    assert {"image/observed", "image/clean", "image/output_final", "image/output_stopped"} <= set(tags["images"])
    chosen = result.summary_extra["stopped_iter"]
    assert _scalars(events, "stop/chosen_step") == {result.iters_run: chosen}
    summary = _scalars(events, "summary/psnr_stopped")
    assert summary[result.iters_run] == pytest.approx(result.summary_extra["psnr_stopped"], rel=1e-6)


def test_fit_command_writes_its_log_into_the_run_folder(tmp_path, image_file):
    out = tmp_path / "runs"
    args = ["fit", "--clean", str(image_file("clean.png", 64, 64)), "--iters", "30", "--out", str(out)]
    assert (
        main(
            [*args, "--no-progress", "--device", "cpu", "--stop", "wmv", "--stop-window", "10", "--log", "tensorboard"]
        )
        == 0
    )
    (run,) = (out / "fit").iterdir()
    events = _events(run / "tensorboard")
    assert {"trace/loss", "trace/psnr", "trace/stat_wmv", "stop/chosen_step"} <= set(events.Tags()["scalars"])
    summary = json.loads((run / "summary.json").read_text())
    assert _scalars(events, "summary/psnr_final")[summary["iters_run"]] == pytest.approx(summary["psnr_final"])


def _evaluations(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "evaluations.jsonl").read_text().splitlines()]


def _check_candidate_runs(run: Path) -> list[dict]:
    """Every evaluation of the run has its TensorBoard run, with its genes as hparams and its scores."""
    rows = _evaluations(run)
    logs = run / "tensorboard"
    assert sorted(p.name for p in logs.iterdir()) == sorted(f"candidate_{r['index']:05d}" for r in rows)
    for row in rows:
        events = _events(logs / f"candidate_{row['index']:05d}")
        params = _session_hparams(events)
        for gene, value in row["genome"].items():
            assert params[gene] == pytest.approx(value) if isinstance(value, float) else params[gene] == value
        assert "budget" in params and "eval_scale" in params
        fitness = _scalars(events, "hparam/fitness")
        assert list(fitness.values()) == [pytest.approx(row["fitness"], rel=1e-6)]
        assert list(_scalars(events, "hparam/psnr").values()) == [pytest.approx(row["psnr"], rel=1e-6)]
        assert "trace/loss" in events.Tags()["scalars"]
    return rows


def test_ga_search_writes_one_run_per_candidate_with_hparams(tmp_path, image_file):
    out = tmp_path / "runs"
    args = ["search", "ga", "--clean", str(image_file("clean.png", 32, 32)), "--space", str(write_space(tmp_path))]
    args += ["--out", str(out), "--iters", "20", "--pop", "3", "--gens", "1", "--final-iters", "120"]
    assert main([*args, "--threads", "1", "--no-progress", "--device", "cpu", "--log", "tensorboard"]) == 0
    (run,) = (out / "search").iterdir()
    rows = _check_candidate_runs(run)
    assert any("rung" in r for r in rows)  # the final rung's refits are candidates too


def test_a_resumed_search_may_start_logging(tmp_path, image_file):
    out = tmp_path / "runs"
    args = ["search", "ga", "--clean", str(image_file("clean.png", 32, 32)), "--space", str(write_space(tmp_path))]
    args += ["--out", str(out), "--iters", "20", "--pop", "3", "--gens", "1", "--final", "0"]
    assert main([*args, "--threads", "1", "--no-progress", "--device", "cpu"]) == 0
    (run,) = (out / "search").iterdir()
    before = {r["index"] for r in _evaluations(run)}
    resume = ["search", "ga", "--resume", str(run), "--gens", "2", "--no-progress", "--log", "tensorboard"]
    assert main(resume) == 0
    logged = {int(p.name.removeprefix("candidate_")) for p in (run / "tensorboard").iterdir()}
    assert logged == {r["index"] for r in _evaluations(run)} - before and logged  # the new fits only


@pytest.mark.parametrize("searcher", ["ga", "bayes"])
def test_resume_refusals_name_log_as_free(searcher, tmp_path, capsys):
    run = tmp_path / "old"
    run.mkdir()
    (run / "config.toml").write_text("")
    assert main(["search", searcher, "--resume", str(run), "--iters", "50", "--log", "tensorboard"]) == 2
    err = capsys.readouterr().err
    assert "drop --iters (only" in err and "and --log may be given again)" in err


def test_bayes_search_writes_one_run_per_trial_with_hparams(tmp_path, image_file):
    out = tmp_path / "runs"
    args = ["search", "bayes", "--clean", str(image_file("clean.png", 32, 32)), "--space", str(write_space(tmp_path))]
    args += ["--out", str(out), "--iters", "20", "--trials", "3", "--final-iters", "120"]
    assert main([*args, "--no-progress", "--device", "cpu", "--log", "tensorboard"]) == 0
    (run,) = (out / "search").iterdir()
    _check_candidate_runs(run)


def test_a_worker_logs_its_trials_into_the_drivers_run_folder(tmp_path, image_file):
    out, journal = tmp_path / "runs", tmp_path / "study.journal"
    args = ["search", "bayes", "--clean", str(image_file("clean.png", 32, 32)), "--space", str(write_space(tmp_path))]
    args += ["--out", str(out), "--iters", "20", "--trials", "2", "--final", "0", "--storage", str(journal)]
    assert main([*args, "--study", "s", "--no-progress", "--device", "cpu"]) == 0  # the driver logs nothing
    (run,) = (out / "search").iterdir()
    assert not (run / "tensorboard").exists()
    worker = ["worker", "--storage", str(journal), "--study", "s", "--trials", "3", "--device", "cpu"]
    assert main([*worker, "--no-progress", "--log", "tensorboard"]) == 0
    assert sorted(p.name for p in (run / "tensorboard").iterdir()) == ["candidate_00002"]
    assert "hparam/fitness" in _events(run / "tensorboard" / "candidate_00002").Tags()["scalars"]


def test_restore_logs_its_search_candidates_and_final_rung(tmp_path, image_file):
    args = ["restore", "--clean", str(image_file("clean.png", 64, 64)), "--out", str(tmp_path), "--space", "demo"]
    args += ["--search", "ga", "--ensemble", "3", "--pop", "2", "--gens", "1", "--search-iters", "15"]
    args += ["--iters", "110", "--patience", "10"]
    assert main([*args, "--device", "cpu", "--no-report", "--log", "tensorboard"]) == 0
    (run,) = (tmp_path / "restore").iterdir()
    (search,) = (run / "search").iterdir()
    rows = _check_candidate_runs(search)
    final = [r for r in rows if r.get("rung") == "final"]
    assert len(final) == 3  # the finalists, the default among them, refitted at the full budget with stopping
    for row in final:
        events = _events(search / "tensorboard" / f"candidate_{row['index']:05d}")
        assert list(_scalars(events, "stop/chosen_step").values()) == [row["stopped_iter"]]
        assert "image/output_stopped" in events.Tags()["images"]


@pytest.fixture
def no_tensorboard(monkeypatch):
    """The extra missing: importing torch.utils.tensorboard fails as it does without the tensorboard package."""
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)


@pytest.mark.parametrize("command", ["fit", "search ga", "search bayes", "restore"])
def test_missing_extra_is_one_line_naming_it_and_exit_2(command, tmp_path, image_file, capsys, no_tensorboard):
    out = tmp_path / "runs"
    args = [*command.split(), "--clean", str(image_file("clean.png", 64, 64)), "--out", str(out), "--iters", "5"]
    if command.startswith("search"):
        args += ["--space", str(write_space(tmp_path))]
    if command != "restore":
        args += ["--no-progress"]
    assert main([*args, "--device", "cpu", "--log", "tensorboard"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == [f"error: {MISSING}"]
    assert "pip install 'dipsearch[tensorboard]'" in err
    assert not out.exists() or not any(out.rglob("config.toml"))  # nothing half-written


def test_missing_extra_from_python(tmp_path, no_tensorboard):
    with pytest.raises(DipsearchError, match=r"pip install 'dipsearch\[tensorboard\]'"):
        TensorBoardHook(tmp_path / "tb")
    with pytest.raises(DipsearchError, match=r"pip install 'dipsearch\[tensorboard\]'"):
        Runtime(tensorboard=True).check()


def test_negative_image_cadence_is_refused(tmp_path):
    with pytest.raises(ArgumentError, match=r"image_every must be >= 0, got -1"):
        TensorBoardHook(tmp_path / "tb", image_every=-1)
