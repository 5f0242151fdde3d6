"""The search API as a notebook uses it: problems and specs built in Python, searches run, killed, resumed and
read back as objects, without argparse; and the API's argument errors, word for word."""

from pathlib import Path

import pytest
import torch
from conftest import synthetic_image
from ga_helpers import TINY_SPACE
from rich.console import Console

from dipsearch import make_problem
from dipsearch.errors import ArgumentError, DipsearchError
from dipsearch.nets.arch import ArchSpec
from dipsearch.search import ProblemRecipe, Runtime, SearchResult, SearchSpec, StopSpec, bayes, ga
from dipsearch.search.bayes.study import BayesSettings
from dipsearch.search.ga import GAConfig
from dipsearch.search.rungs import RungPlan
from dipsearch.store.imageio import save_image


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def space(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


@pytest.fixture
def recipe(tmp_path) -> ProblemRecipe:
    clean = tmp_path / "clean.png"
    save_image(synthetic_image(32, 32), clean)
    return ProblemRecipe(clean=str(clean), sigma=25, seed=3)


def quiet(out: Path, **kw) -> Runtime:
    return Runtime(out=out, console=Console(quiet=True), **kw)


def interrupt_after(n: int):
    seen = []

    def on_evaluation(evaluation) -> None:
        seen.append(evaluation)
        if len(seen) == n:
            raise KeyboardInterrupt

    return on_evaluation


def test_a_ga_killed_mid_run_resumes_from_its_folder_and_its_result_reads_back(tmp_path, recipe, space):
    spec = SearchSpec(
        space=str(space),
        iters=30,
        device="cpu",
        ga=GAConfig(pop=3, gens=2, seed=1),
        rungs=RungPlan(final=2, final_iters=120),
    )
    with pytest.raises(KeyboardInterrupt) as killed:
        ga.run(recipe, spec, quiet(tmp_path / "runs", on_evaluation=interrupt_after(4)))  # in generation 1
    run_dir = killed.value.run_dir
    assert (run_dir / "ga_state.json").is_file() and not (run_dir / "summary.json").exists()

    result = ga.resume(run_dir, runtime=quiet(tmp_path / "elsewhere"))  # the runtime may change on resume
    assert result.run_dir == run_dir and result.searcher == "ga" and result.summary["generations"] == 2
    assert isinstance(result.best_arch, ArchSpec) and result.best_arch.depth == result.best_genome["depth"]
    assert result.best_fitness == result.summary["best_fitness"] and result.best_psnr is not None
    assert len(result.final) == 2 and sum(row["index"] == result.summary["final_choice"] for row in result.final) == 1
    image = result.image
    assert image.shape == (1, 3, 32, 32) and 0 <= image.min() and image.max() <= 1
    assert not (tmp_path / "elsewhere").exists()
    screened = [e for e in result.evaluations if e.fitness is not None]
    assert len({e.key for e in screened}) == len(screened)  # the killed run's fits were not repeated

    again = SearchResult.load(run_dir)
    assert again.best_genome == result.best_genome and again.best_fitness == result.best_fitness
    assert torch.equal(again.image, image)
    assert ga.resume(run_dir, runtime=quiet(tmp_path)).summary["evaluations"] == result.summary["evaluations"]


def test_a_bayesian_study_on_a_recipe_resumes_and_one_on_tensors_runs_in_process(tmp_path, recipe, space):
    spec = SearchSpec(space=str(space), iters=30, device="cpu", rungs=None, bayes=BayesSettings(trials=3))
    with pytest.raises(KeyboardInterrupt) as killed:
        bayes.run(recipe, spec, quiet(tmp_path / "runs", on_evaluation=interrupt_after(1)))
    run_dir = killed.value.run_dir
    result = bayes.resume(run_dir, runtime=quiet(tmp_path / "runs"))
    assert result.searcher == "bayes" and result.summary["trials"] == 3
    assert sorted(e.index for e in result.evaluations) == [0, 1, 2]
    # No final rung: the answer is the screening's best, scored (and imaged) at the default half scale.
    assert isinstance(result.best_arch, ArchSpec) and result.image.shape == (1, 3, 16, 16)
    assert result.summary["trials"] == 3 and (run_dir / "config.toml").read_text().count("eval_scale = 0.5") >= 1

    problem = make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25, seed=3)
    in_memory = bayes.run(
        problem,
        SearchSpec(space=str(space), iters=20, device="cpu", rungs=None, bayes=BayesSettings(trials=1)),
        quiet(tmp_path / "mem"),
    )
    assert in_memory.best_fitness is not None
    study = in_memory.summary["study"]
    with pytest.raises(DipsearchError) as refused:
        bayes.resume(in_memory.run_dir, runtime=quiet(tmp_path / "mem"))
    assert str(refused.value) == (
        f"study {study!r} was started on a problem given as tensors in Python: it cannot be "
        "rebuilt here; only the process that holds those tensors can run it"
    )


def test_a_ga_on_tensors_says_why_its_folder_cannot_resume(tmp_path, space):
    problem = make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25, seed=0)
    spec = SearchSpec(space=space, iters=10, device="cpu", rungs=None, ga=GAConfig(pop=2, gens=1))
    with pytest.raises(KeyboardInterrupt) as killed:
        ga.run(problem, spec, quiet(tmp_path, on_evaluation=interrupt_after(1)))
    with pytest.raises(DipsearchError) as refused:
        ga.resume(killed.value.run_dir, runtime=quiet(tmp_path))
    assert str(refused.value) == (
        f"the run {killed.value.run_dir} was started on a problem given as tensors in Python: "
        "it cannot be rebuilt here; only the process that holds those tensors can run it"
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda r, s, rt: ga.run(r, SearchSpec(space=s, iters=0), rt), "iters must be >= 1, got 0"),
        (
            lambda r, s, rt: ga.run(r, SearchSpec(space=s, eval_scale=0.3), rt),
            "eval_scale must be 1, 0.5 or 0.25, got 0.3",
        ),
        (lambda r, s, rt: ga.run(r, SearchSpec(space=s, ga=GAConfig(pop=1)), rt), "pop must be >= 2, got 1"),
        (lambda r, s, rt: ga.run(r, SearchSpec(space=s, ga=GAConfig(sigma=0)), rt), "sigma must be > 0, got 0"),
        (
            lambda r, s, rt: ga.run(r, SearchSpec(space=s, rungs=RungPlan(final=1)), rt),
            "final must be >= 2 (the default genome takes one place), got 1; final=0 turns the final rung off",
        ),
        (
            lambda r, s, rt: ga.run(r, SearchSpec(space=s, rungs=RungPlan(final_iters=300, budgets=(300,))), rt),
            "final_iters (300) must exceed every budgets budget ([300])",
        ),
        (
            lambda r, s, rt: ga.run(r, SearchSpec(space=s), Runtime(workers=0, out=rt.out)),
            "workers must be >= 1, got 0",
        ),
        (
            lambda r, s, rt: ga.run("clean.png", SearchSpec(space=s), rt),
            "problem must be a ProblemRecipe or a dipsearch.Problem, got str",
        ),
        (
            lambda r, s, rt: ga.run(ProblemRecipe(), SearchSpec(space=s), rt),
            "give an observation image, or clean=PATH to synthesise one, or demo",
        ),
        (
            lambda r, s, rt: ga.run(ProblemRecipe(demo=True, task="sr"), SearchSpec(space=s), rt),
            "demo is a denoising demo; drop task or use task=denoise",
        ),
        (
            lambda r, s, rt: ga.run(ProblemRecipe(clean=r.clean, crop=64), SearchSpec(space=s), rt),
            "crop=64 is larger than the clean image (32x32 px, width x height)",
        ),
        (
            lambda r, s, rt: ga.run(ProblemRecipe(clean=r.clean, factor=2), SearchSpec(space=s), rt),
            "factor is the super-resolution factor, for task=sr; denoise has no use for it",
        ),
        (
            lambda r, s, rt: bayes.run(r, SearchSpec(space=s, bayes=BayesSettings(trials=0)), rt),
            "trials must be >= 1, got 0 (0 only with storage: create the study for `dipsearch worker` processes)",
        ),
        (
            lambda r, s, rt: bayes.run(r, SearchSpec(space=s, iters=8, bayes=BayesSettings(max_iters=0)), rt),
            "max_iters must be >= 1, got 0",
        ),
        (
            lambda r, s, rt: StopSpec.parse("oracle"),
            "unknown detector 'oracle'; choose one of wmv, emv, sure, holdout, spectral, auto (the recommended stopping) or none "
            "(no stopping)",
        ),
        (
            lambda r, s, rt: StopSpec.parse("sure", sure_sigma="loud"),
            "sure_sigma takes a number (0-255 scale) or 'estimate', got 'loud'",
        ),
        (
            lambda r, s, rt: bayes.resume(rt.out, runtime=rt, settings={"pruner": "median", "speed": 2}),
            "settings has no field speed; it takes sampler, pruner, report_every, max_iters, with_default, stale_after",
        ),
    ],
)
def test_bad_arguments_are_refused_by_name_before_any_run_folder(tmp_path, recipe, space, call, message):
    runtime = quiet(tmp_path / "runs")
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "config.toml").write_text('[bayes]\nstorage = "x.journal"\nstudy = "s"\n')  # for resume
    with pytest.raises(ArgumentError) as refused:
        call(recipe, str(space), runtime)
    assert str(refused.value) == message
    assert not (tmp_path / "runs" / "search").exists()


def test_a_ga_folder_of_the_older_format_resumes_and_refuses_a_changed_image(tmp_path, recipe, space):
    """Folders made before [recipe] and [spec] stored the flags in [args] and a hash of the observation alone."""
    import hashlib
    import tomllib

    from dipsearch.store.tomlio import dumps_toml

    spec = SearchSpec(
        space=str(space), iters=10, device="cpu", ga=GAConfig(pop=2, gens=0), rungs=RungPlan(final=2, final_iters=120)
    )
    run_dir = ga.run(recipe, spec, quiet(tmp_path)).run_dir
    config = tomllib.loads((run_dir / "config.toml").read_text())
    observed = recipe.build().observed
    del config["recipe"], config["spec"]
    config["args"] = {
        "task": "denoise",
        "clean": recipe.clean,
        "noise": "gaussian",
        "sigma": 25.0,
        "seed": 3,
        "demo": False,
        "factor": 4,
        "iters": 10,
        "fitness": "holdout",
        "eval_scale": 0.5,
        "device": "cpu",
        "final": 2,
        "final_iters": 120,
    }
    config["resume"] = {"observed_sha256": hashlib.sha256(observed.numpy().tobytes()).hexdigest()[:16]}
    (run_dir / "config.toml").write_text(dumps_toml(config))

    result = ga.resume(run_dir, gens=1, runtime=quiet(tmp_path))
    assert result.summary["generations"] == 1 and result.summary["evaluations"] == 4
    assert isinstance(result.best_arch, ArchSpec) and result.image.shape == (1, 3, 32, 32)

    save_image(synthetic_image(32, 32).flip(-1), recipe.clean)  # the image changed since the run began
    with pytest.raises(DipsearchError) as refused:
        ga.resume(run_dir, gens=2, runtime=quiet(tmp_path))
    assert str(refused.value) == (
        f"the observation rebuilt from {run_dir}/config.toml differs from the one the run "
        "started with (was an image file changed?); start a new search instead"
    )


def test_a_resume_refuses_a_problem_that_rebuilds_differently(tmp_path, recipe, space):
    spec = SearchSpec(space=str(space), iters=10, device="cpu", rungs=None, ga=GAConfig(pop=2, gens=0))
    run_dir = ga.run(recipe, spec, quiet(tmp_path)).run_dir
    save_image(synthetic_image(32, 32).flip(-1), recipe.clean)
    with pytest.raises(DipsearchError) as refused:
        ga.resume(run_dir, gens=1, runtime=quiet(tmp_path))
    assert str(refused.value) == (
        f"the problem rebuilt here differs from the one the run {run_dir} was started with "
        "(changed image files, or another torch version synthesising the noise); use the "
        "same files and versions"
    )


def test_a_bayesian_study_stopped_by_ctrl_c_fails_its_running_trials_saying_why(tmp_path, recipe, space):
    import optuna

    from dipsearch.search.bayes.study import INTERRUPTED

    spec = SearchSpec(space=str(space), iters=30, device="cpu", rungs=None, bayes=BayesSettings(trials=4))
    runtime = quiet(tmp_path / "runs", on_evaluation=interrupt_after(1), workers=2)
    with pytest.raises(KeyboardInterrupt) as killed:
        bayes.run(recipe, spec, runtime)
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(killed.value.run_dir / "study.journal"))
    )
    (study,) = optuna.get_all_study_summaries(storage)
    trials = optuna.load_study(study_name=study.study_name, storage=storage).trials
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    interrupted = [t for t in trials if INTERRUPTED in t.user_attrs]
    assert interrupted and all(t.state == optuna.trial.TrialState.FAIL for t in interrupted)

    console = Console(record=True, width=200)
    result = bayes.resume(killed.value.run_dir, runtime=Runtime(out=tmp_path / "runs", console=console))
    assert "left running by a process that is gone" not in console.export_text()
    assert result.summary["trials"] == 4  # interrupted trials do not use up the budget
