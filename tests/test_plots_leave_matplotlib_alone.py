"""Writing plots leaves a notebook's matplotlib as it was: its backend, its style and its open figures."""

import math
import warnings

import matplotlib
import optuna
import pytest
import torch

from dipsearch.pipelines.report import trace_curve
from dipsearch.search.bayes.display import write_plots
from dipsearch.stopping.bench import plot_curves
from dipsearch.variants.sgld import save_uncertainty

NOTEBOOK_BACKEND = "module://matplotlib.backends.backend_agg"  # a backend a user chose (not the name "agg")


@pytest.fixture
def notebook():
    """A session with its own backend and style; restored afterwards for the other tests."""
    backend, params = matplotlib.get_backend(), matplotlib.rcParams.copy()
    matplotlib.use(NOTEBOOK_BACKEND)
    matplotlib.rcParams["axes.facecolor"] = "#fafafa"
    from matplotlib import pyplot as plt

    before = plt.get_fignums()
    yield plt, before
    matplotlib.rcParams.update({k: v for k, v in params.items() if k != "backend"})
    matplotlib.use(backend)


def _study() -> optuna.Study:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0), study_name="nb")

    def objective(trial: optuna.Trial) -> float:
        value = 20 + trial.suggest_int("depth", 2, 5) - 50 * abs(trial.suggest_float("lr", 0.001, 0.1, log=True) - 0.01)
        for step in range(3):
            trial.report(value - 3 + step, 10 * step)
            if trial.number % 4 == 3 and step == 1:
                raise optuna.TrialPruned()
        trial.set_user_attr("psnr", value + 1 + 0.3 * math.sin(trial.number))
        return value

    study.optimize(objective, n_trials=8)
    return study


def test_writing_every_plot_keeps_the_notebook_s_backend_style_and_figures(notebook, tmp_path):
    plt, before = notebook
    study = _study()
    mine = plt.figure()  # the user's own open figure must survive
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "trace.csv").write_text("step,loss,psnr\n1,0.1,20\n2,0.05,22\n3,0.04,23\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        names = write_plots(study, tmp_path)
        assert trace_curve(tmp_path / "run", tmp_path / "assets")
        save_uncertainty(tmp_path / "uncertainty.png", torch.rand(1, 1, 16, 16))
        rows = [{"step": s, "psnr": 20 + s / 10} for s in range(1, 30)]
        meta = {
            "key": "k",
            "noise": "gaussian",
            "level": 2,
            "image": "x",
            "level_name": "medium",
            "level_value": 25,
            "seed": 0,
        }
        run = {"key": "k", "rule": "emv", "chosen_iter": 12, "psnr_chosen": 21.2, "gap": 1.7}
        assert plot_curves([(meta, rows)], [run], ["emv"], tmp_path / "curves.png") is not None
    assert names == ["history.png", "history_psnr.png", "importances.png", "fit_curves.png"]
    for name in [*names, "uncertainty.png", "curves.png", "assets/curve_trace.png"]:
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert matplotlib.get_backend() == NOTEBOOK_BACKEND
    assert matplotlib.rcParams["axes.facecolor"] == "#fafafa"  # Optuna's plots draw in ggplot style, undone after
    assert plt.get_fignums() == [*before, mine.number]
    assert not [w for w in caught if issubclass(w.category, optuna.exceptions.ExperimentalWarning)]
    plt.close(mine)


def test_a_study_without_shared_parameters_or_truth_writes_only_what_it_can(tmp_path):
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(0))
    study.optimize(lambda trial: 1.0, n_trials=4)
    assert write_plots(study, tmp_path) == ["history.png"]  # no parameters: no importances; no PSNR, no curves


def test_a_backend_that_cannot_measure_text_skips_optuna_s_importances_with_a_warning(notebook, tmp_path):
    matplotlib.use("svg")  # a session writing vector figures: its canvas has no renderer to measure text with
    with pytest.warns(
        UserWarning,
        match="importances.png not written: Optuna's importance plot needs an Agg-based "
        "matplotlib backend .* this session uses 'svg'",
    ):
        names = write_plots(_study(), tmp_path)
    assert names == ["history.png", "history_psnr.png", "fit_curves.png"] and matplotlib.get_backend() == "svg"
