"""The captured training step, run as plain Python on the CPU: the loop a CUDA graph replays must be today's fit."""

import pytest
import torch
from conftest import SMALL
from recorded import assert_matches_recorded

from dipsearch import ArgumentError, FitConfig, FitHook, fit, make_problem
from dipsearch.cli import main
from dipsearch.families import DeepDecoderSpec
from dipsearch.fitting.loop import Engine
from dipsearch.fitting.step import Ring
from dipsearch.stopping import StoppingHook
from dipsearch.stopping.detectors import WMV
from dipsearch.stopping.rules import PatienceRule
from dipsearch.variants.sgld import SGLDHook


def _problem(clean, seed=0):
    return make_problem("denoise", clean=clean, noise="gaussian", level=25, seed=seed)


def _rows(result):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in result.trace]


@pytest.mark.parametrize("trace_every", [1, 5, 50])
def test_the_captured_step_run_eagerly_reproduces_the_recorded_trace(clean32, trace_every):
    config = FitConfig(iters=12, seed=3, device="cpu", ssim_every=5, trace_every=trace_every)
    result = Engine(SMALL, config).run_graphed(_problem(clean32), capture=False)
    assert_matches_recorded(result)


class _Sabotage(FitHook):
    """Poisons the weights after step 6: the guard at step 8 must undo it (back to step 4's parameters)."""

    update_capturable = True

    def on_update(self, learner, step):
        if step == 6:
            for param in learner.net.parameters():
                param.fill_(float("nan"))


def test_the_captured_loop_restores_like_the_eager_loop_when_the_guard_fires(clean32):
    # finite_check "guard": the captured loop looks at the loss on guard steps only, as on a GPU
    config = FitConfig(iters=20, seed=1, device="cpu", guard_every=4, ssim_every=0, finite_check="guard")
    eager = Engine(SMALL, config).run_eager(_problem(clean32), [_Sabotage()])
    graphed = Engine(SMALL, config.updated(trace_every=6)).run_graphed(_problem(clean32), [_Sabotage()], capture=False)
    assert eager.restore_steps, "the sabotage no longer makes the guard fire: the test checks nothing"
    assert graphed.restore_steps == eager.restore_steps and graphed.restored_to == eager.restored_to
    assert _rows(graphed) == _rows(eager)
    assert torch.equal(graphed.output, eager.output) and torch.equal(graphed.ema, eager.ema)


class _PatienceOnPsnr(FitHook):
    """A stopping rule on a trace column: what a hook fed from the ring buffer sees."""

    step_feed = "trace"

    def __init__(self, patience):
        self.rule = PatienceRule("loss", patience)
        self.name = "patience"

    def on_start(self, problem, spec, config):
        self.tracker, self.seen = self.rule.tracker(), []

    def on_step(self, state):
        self.seen.append((state.step, float(state.record["loss"]), float(state.record["psnr"])))
        return self.tracker.update(state.step, -float(state.record["psnr"]))[1]


def test_a_hook_fed_from_the_ring_buffer_stops_where_per_step_feeding_stops(clean32):
    config = FitConfig(iters=80, seed=2, device="cpu", ssim_every=0, lr=0.05)
    per_step, ring_fed = _PatienceOnPsnr(3), _PatienceOnPsnr(3)
    eager = Engine(SMALL, config).run_eager(_problem(clean32), [per_step])
    graphed = Engine(SMALL, config.updated(trace_every=7)).run_graphed(_problem(clean32), [ring_fed], capture=False)
    assert eager.stopped_by == graphed.stopped_by == "patience"
    assert eager.iters_run < 80, "the rule no longer fires within the run: the test checks nothing"
    assert ring_fed.seen == per_step.seen  # the same values, in step order
    assert graphed.iters_run == eager.iters_run and _rows(graphed) == _rows(eager)


def test_the_ring_buffer_keeps_rows_in_write_order_until_reset():
    ring = Ring(4, 2, torch.float64, torch.device("cpu"))
    views = []
    for i in range(3):
        ring.write(torch.tensor([i, 10.0 * i], dtype=torch.float64))
        views.append(ring.row())
    assert [v.tolist() for v in views] == [[0, 0], [1, 10], [2, 20]]
    ring.reset()
    ring.write(torch.tensor([7.0, 8.0], dtype=torch.float64))
    assert ring.row().tolist() == [7, 8] and ring.written == 1


def test_sgld_runs_in_the_captured_loop_as_in_the_eager_one(clean32):
    config = FitConfig(iters=30, seed=0, device="cpu", ssim_every=0, trace_every=8)

    def run(method):
        hook = SGLDHook(noise=2.0, burn_in=10, sample_every=5, seed=4)
        return method(_problem(clean32), [hook], **({} if method.__name__ == "run_eager" else {"capture": False}))

    eager = run(Engine(SMALL, config).run_eager)
    graphed = run(Engine(SMALL, config).run_graphed)
    assert _rows(graphed) == _rows(eager)
    assert eager.extras["sgld"]["sample_steps"] == graphed.extras["sgld"]["sample_steps"] == [15, 20, 25, 30]
    assert torch.equal(eager.extras["images"]["output_posterior"], graphed.extras["images"]["output_posterior"])


class _LiveMean(FitHook):
    """Reads each step's live output: a hook of the default step_feed, "live"."""

    name = "live-mean"

    def on_start(self, problem, spec, config):
        self.means = []

    def on_step(self, state):
        self.means.append(state.out.mean())


def test_a_hook_that_needs_the_host_every_step_makes_auto_run_eager_and_say_so(clean32):
    config = FitConfig(iters=12, seed=3, device="cpu", ssim_every=5)
    hook = _LiveMean()
    with pytest.warns(RuntimeWarning, match="hook 'live-mean' needs the host every step"):
        result = Engine(SMALL, config).run_graphed(_problem(clean32), [hook], capture=False)
    assert_matches_recorded(result)
    assert len(hook.means) == 12


def test_cuda_graph_on_with_a_hook_that_needs_the_host_every_step_is_refused(clean32):
    config = FitConfig(iters=5, device="cpu", cuda_graph="on")
    with pytest.raises(ArgumentError) as info:
        Engine(SMALL, config).run_graphed(_problem(clean32), [StoppingHook([WMV(window=4)])], capture=False)
    assert str(info.value) == "cuda_graph=on cannot capture this fit: hook 'stop-recorder' needs the host every step"
    with pytest.raises(ArgumentError, match="hook 'own-update' changes the update in a way that cannot be captured"):
        Engine(SMALL, config).run_graphed(_problem(clean32), [_Freeze()], capture=False)


class _Freeze(FitHook):
    """Changes the update with a rule of its own that it does not declare capturable."""

    name = "own-update"

    def on_update(self, learner, step):
        pass


def test_a_deep_decoder_runs_in_the_captured_loop_as_in_the_eager_one(clean32):
    spec = DeepDecoderSpec(n_up=(8, 8, 8), k_up=(3, 3, 3), upsample=("bilinear",) * 3)
    config = FitConfig(iters=9, seed=1, device="cpu", ssim_every=4, trace_every=4, reg_noise_std=0)
    eager = Engine(spec, config).run_eager(_problem(clean32))
    graphed = Engine(spec, config).run_graphed(_problem(clean32), capture=False)
    assert _rows(graphed) == _rows(eager) and torch.equal(graphed.ema, eager.ema)


def test_cuda_graph_on_without_cuda_is_refused(clean32):
    with pytest.raises(ArgumentError) as info:
        fit(_problem(clean32), SMALL, FitConfig(iters=2, device="cpu", cuda_graph="on"))
    assert str(info.value) == (
        "cuda_graph=on needs a CUDA GPU (the step is captured as a CUDA graph); this fit runs on cpu; "
        "use cuda_graph=auto or cuda_graph=off"
    )


def _cli_error(tmp_path, capsys, argv):
    out = tmp_path / "runs"
    assert main([*argv, "--out", str(out), "--no-progress"]) == 2
    assert not (out / "fit").exists() or not any((out / "fit").iterdir())
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_the_cli_refuses_cuda_graph_on_a_cpu(tmp_path, capsys, image_file):
    clean = str(image_file("c.png", 64, 64))
    message = _cli_error(tmp_path, capsys, ["fit", "--clean", clean, "--device", "cpu", "--cuda-graph", "on"])
    assert message == (
        "error: --cuda-graph on needs a CUDA GPU (the step is captured as a CUDA graph); this fit runs on cpu; "
        "use --cuda-graph auto or --cuda-graph off"
    )


def test_the_cli_refuses_cuda_graph_on_with_an_online_detector(tmp_path, capsys, image_file, monkeypatch):
    import sys

    from dipsearch.fitting import loop as engine

    # A machine with CUDA, as far as the checks go: the refusal comes before anything touches the device.
    monkeypatch.setattr(engine, "resolve_device", lambda name: torch.device("cuda"))
    monkeypatch.setattr(sys.modules["dipsearch.fitting.fit"], "resolve_device", lambda name: torch.device("cuda"))
    clean = str(image_file("c.png", 64, 64))
    message = _cli_error(tmp_path, capsys, ["fit", "--clean", clean, "--stop", "wmv", "--cuda-graph", "on"])
    assert message == "error: --cuda-graph on cannot capture this fit: hook 'stop:wmv' needs the host every step"


def test_cuda_graph_is_a_checked_setting():
    with pytest.raises(Exception, match="cuda_graph must be one of auto, on, off"):
        FitConfig(cuda_graph="yes")


def test_the_cli_offers_the_library_s_cuda_graph_modes():
    from dipsearch.cli import names
    from dipsearch.fitting.fit import CUDA_GRAPH_MODES

    assert names.CUDA_GRAPH_MODES == CUDA_GRAPH_MODES
