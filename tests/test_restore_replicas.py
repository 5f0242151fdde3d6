"""dipsearch restore --replicas: members of one network fitted as one batch, a restore you can watch."""

import json

import pytest
from conftest import synthetic_image

from dipsearch import make_problem
from dipsearch.cli import main
from dipsearch.fitting.memory import fit_bytes
from dipsearch.nets.space import find_space, load_space
from dipsearch.scoring.evaluate import Candidate
from dipsearch.search import member_batches

TINY = ["--space", "demo", "--iters", "110", "--patience", "10", "--device", "cpu", "--no-report"]


def _count_batches(monkeypatch):
    sizes = []
    real = member_batches.fit_members

    def counting(spec, config, members, parts=None):
        sizes.append(len(members))
        return real(spec, config, members, parts)

    monkeypatch.setattr(member_batches, "fit_members", counting)
    return sizes


def test_a_piped_restore_prints_each_member_its_stages_and_lists_every_stop(image_file, tmp_path, capsys, monkeypatch):
    batches = _count_batches(monkeypatch)
    noisy = image_file("noisy.png", h=48, w=48)
    assert main(["restore", str(noisy), "--replicas", "on", "--out", str(tmp_path), *TINY]) == 0
    assert batches == [4]  # the default and its three restarts, one batch
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith(("default:", "restart #"))]
    assert [line.split(":")[0] for line in lines] == ["default", "restart #1", "restart #2", "restart #3"]
    assert all("of 110)" in line for line in lines)
    assert "stages" in out and "weight" in out  # the stage table, without a clean image too
    (run,) = (tmp_path / "restore").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["stopped_iters"]) == 4 and all(s is not None for s in summary["stopped_iters"])
    assert [m["stage"] for m in summary["members"]] == ["default", "restart #1", "restart #2", "restart #3"]
    assert [m["weight"] for m in summary["members"]] == summary["weights"]


def test_members_of_different_networks_are_batched_only_where_they_share_one(image_file, tmp_path, monkeypatch):
    batches = _count_batches(monkeypatch)
    clean = image_file(h=48, w=48)
    search = ["--search", "ga", "--pop", "2", "--gens", "0", "--search-iters", "15", "--ensemble", "4"]
    assert main(["restore", "--clean", str(clean), *search, "--replicas", "on", "--out", str(tmp_path), *TINY]) == 0
    # two finalists of different networks, each fitted on its own; the pick's two restarts as one batch
    assert batches == [2]
    (run,) = (tmp_path / "restore").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    assert [m["stage"] for m in summary["members"]] == ["default", "finalist #1", "restart #1", "restart #2"]


def test_ctrl_c_during_a_batched_restore_leaves_nothing(image_file, tmp_path, monkeypatch, capsys):
    from dipsearch.fitting import members as replica_members

    real, calls = replica_members._Batch._step, []

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) > 30:
            raise KeyboardInterrupt
        return real(self, *args)

    monkeypatch.setattr(replica_members._Batch, "_step", interrupted)
    clean = image_file(h=48, w=48)
    assert main(["restore", "--clean", str(clean), "--replicas", "on", "--out", str(tmp_path), *TINY]) == 130
    assert len(calls) == 31
    assert not (tmp_path / "restore").exists() or not any((tmp_path / "restore").iterdir())


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--replicas", "sometimes"], "error: unknown --replicas 'sometimes'; choose one of auto, on, off"),
        (
            ["--replicas", "on", "--ensemble", "1"],
            "error: --replicas on: no two members of this restore share a network (--ensemble 1 fits the default "
            "alone); use --replicas auto or --replicas off",
        ),
        (
            ["--replicas", "on", "--search", "ga", "--ensemble", "4"],
            "error: --replicas on: no two members of this restore share a network (--ensemble 4 leaves 1 restart(s) "
            "of the pick; a batch needs two); use --replicas auto or --replicas off",
        ),
    ],
)
def test_replicas_bad_input(extra, message, image_file, tmp_path, capsys):
    clean = image_file(h=48, w=48)
    assert main(["restore", "--clean", str(clean), "--out", str(tmp_path), *TINY, *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "restore").exists() or not any((tmp_path / "restore").iterdir())


def test_a_batch_that_does_not_fit_is_refused_before_anything_is_allocated(image_file, tmp_path, capsys, monkeypatch):
    space = load_space(find_space("demo"))
    spec = space.decode(space.default())
    one = fit_bytes(spec, 3, 48, 48)
    # room for two replicas and a half: the batch of four does not fit, two would
    monkeypatch.setattr(member_batches, "available_bytes", lambda device: int(2.5 * one / member_batches.HEADROOM))
    clean = image_file(h=48, w=48)
    argv = ["restore", "--clean", str(clean), "--replicas", "on", "--out", str(tmp_path), *TINY]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: a batch of 4 replicas on the 48x48 px image needs about ")
    # on a CPU auto fits one at a time, so the advice is off (a GPU's names auto's batch size)
    assert err.endswith(" or a smaller crop") and "use --replicas off (one fit at a time needs about " in err
    assert "\n" not in err
    assert not (tmp_path / "restore").exists() or not any((tmp_path / "restore").iterdir())
    # auto on a CPU fits one at a time (a batch gains nothing there); on a GPU it takes the largest batch that fits
    problem = make_problem("denoise", clean=synthetic_image(48, 48), noise="gaussian", level=25, seed=0)
    jobs = [Candidate({}, spec, problem, iters=10, seed=seed, device="cpu") for seed in range(4)]
    assert [len(g) for g in member_batches.batches(jobs, "auto")] == [1, 1, 1, 1]
    assert member_batches.most_replicas(spec, (3, 48, 48), "cpu", 4) == 2


def test_search_final_rung_replicas_on_with_nothing_to_batch_is_refused(capsys, tmp_path):
    argv = ["search", "ga", "--demo", "--replicas", "on", "--ensemble-restarts", "1", "--out", str(tmp_path)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "error: --replicas on: nothing to batch, the final rung's finalists are different networks and a batch "
        "of restarts of the pick needs --ensemble-restarts >= 2; use --replicas auto or --replicas off"
    )


def _watched_fit(watch, name, stop_at):
    """Feed a watch hook the rows of a fit whose held-out MSE falls to step `stop_at` and ends 3 steps later."""
    from dipsearch.fitting.fitbase import FitResult, StepState

    hook = watch.hook(name)
    hook.on_start(None, None, type("Config", (), {"iters": 20})())
    for step in range(1, stop_at + 4):
        record = {"step": step, "stat_holdout": 0.01 * (1 + abs(step - stop_at) / 10), "seconds": 0.1 * step}
        hook.on_step(StepState(step, None, None, 0.0, None, record, None, None))
    result = FitResult(output=None, ema=None, trace=[], iters_run=stop_at + 3, seconds=1.0, params=0, device="cpu")
    result.summary_extra.update(stopped_iter=stop_at, stop_fired=True)
    hook.on_end(result)


def test_a_watched_restore_shows_a_bar_per_member_on_a_terminal_and_a_line_per_member_in_a_pipe():
    import io

    from rich.console import Console

    from dipsearch.pipelines.restore_progress import MemberWatch

    terminal = Console(file=io.StringIO(), force_terminal=True, width=150)
    with MemberWatch(terminal) as watch:
        _watched_fit(watch, "default", 8)
        _watched_fit(watch, "restart #1", 5)
        tasks = {t.description: t for t in watch.progress.tasks}
    assert list(tasks) == ["default", "restart #1"]
    assert (
        tasks["default"].completed == 11
        and "stopped at 8 (ran 11 of 20), held-out PSNR 20.00 dB at the stop" in (tasks["default"].fields["status"])
    )
    piped = Console(file=io.StringIO(), force_terminal=False, width=150)
    with MemberWatch(piped) as watch:
        _watched_fit(watch, "restart #2", 6)
    assert watch.progress is None
    line = piped.file.getvalue().strip()
    assert line.startswith("restart #2: stopped at 6 (ran 9 of 20), held-out PSNR 20.00 dB at the stop, ")
