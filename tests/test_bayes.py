"""Bayesian search: space mapping, samplers/pruners, the ask/tell loop, storage staleness.

Most tests score genomes with a FakeExecutor (no fit: a made-up fitness and running curve), so the
Optuna plumbing is tested in milliseconds; test_bayes_cli.py runs real fits end to end.
"""

import importlib.util
import pickle
import subprocess
import sys
from concurrent.futures import Executor, Future

import optuna
import pytest
from optuna.trial import TrialState

from dipsearch import DipsearchError, make_problem
from dipsearch.nets.space import find_space, load_space, space_from_dict, space_to_dict
from dipsearch.problems.recipe import ProblemRecipe
from dipsearch.scoring.evaluate import Evaluation
from dipsearch.search.bayes.samplers import SAMPLERS, TrialReporter, pruner_spec, sampler_spec
from dipsearch.search.bayes.space import genome_from_params, suggest_genome
from dipsearch.search.bayes.storage import HEARTBEAT, OWNER, STALE, StorageSpec, fail_stale_trials, open_storage
from dipsearch.search.bayes.study import RESULT, BayesSettings, StudyRunner, StudyStatus, open_study, specs
from dipsearch.search.prepare import SearchSetup
from dipsearch.search.spec import SearchSpec

TINY = """
name = "tiny"
[genes.depth]
kind = "int"
low = 1
high = 3
default = 2
[genes.lr]
kind = "float"
low = 0.002
high = 0.05
log = true
default = 0.01
[levels.n_down]
kind = "choice"
choices = [4, 8]
default = 8
[levels.n_skip]
kind = "choice"
choices = [0, 2]
default = 2
[ties]
n_up = "n_down"
[fixed]
k_down = 3
k_up = 3
k_skip = 1
upsample = "bilinear"
"""


def tiny_space(tmp_path, text: str = TINY):
    path = tmp_path / "tiny.toml"
    path.write_text(text)
    return load_space(path)


def make_setup(space, iters: int = 20, seed: int = 0) -> SearchSetup:
    from conftest import synthetic_image

    problem = make_problem("denoise", clean=synthetic_image(32, 32), noise="gaussian", level=25, seed=seed)
    spec = SearchSpec(space=space, iters=iters, seed=seed, fitness="holdout", eval_scale=1.0, device="cpu", rungs=None)
    return SearchSetup(problem, space, spec, ProblemRecipe.of_problem(problem))


def fake_fitness(genome) -> float:
    """Deeper, wider nets and lr near 0.01 score higher: something for a sampler to find."""
    depth = genome.get("depth", 1)
    width = sum(genome[f"n_down[{i}]"] for i in range(depth))
    return 10 + depth + width / 8 - 20 * abs(genome["lr"] - 0.01)


class FakeExecutor(Executor):
    """Scores genomes without fitting; reports a linear running curve so pruners have something to cut."""

    def __init__(self):
        self.fitted = []

    def submit(self, fn, candidate):
        self.fitted.append(candidate.genome)
        value, iters, pruned = fake_fitness(candidate.genome), candidate.iters, False
        if candidate.reporter is not None:
            for step in range(candidate.report_every, candidate.iters + 1, candidate.report_every):
                if candidate.reporter.report(step, value * step / candidate.iters):
                    iters, pruned = step, True
                    break
        future = Future()
        future.set_result(
            Evaluation(
                index=candidate.index,
                key=candidate.key,
                genome=candidate.genome,
                fitness=value,
                psnr=value + 1,
                params=100,
                iters_run=iters,
                seconds=0.01,
                pruned=pruned,
            )
        )
        return future


def run_study(tmp_path, space, trials=8, sampler="tpe", pruner="none", seed=0, name="s", executor=None, **kw):
    setup = make_setup(space, seed=seed)
    settings = BayesSettings(trials=trials, sampler=sampler, pruner=pruner, **kw)
    sampler_s, pruner_s, every = specs(space, 20, seed, settings)
    storage = StorageSpec.parse(str(tmp_path / f"{name}.journal"))
    study = open_study(storage, name, sampler_s.build(), pruner_s.build(), create=True)
    executor = executor or FakeExecutor()
    runner = StudyRunner(
        study, storage, setup.candidate, space, pruner_s, every, trials, 20, executor, max_iters=settings.max_iters
    )
    runner.run()
    return study, executor


# ----------------------------------------------------------------------------- the space as suggestions


def test_suggestions_are_conditional_on_depth_and_genomes_stay_complete(tmp_path):
    space = tiny_space(tmp_path)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    depths = set()
    for _ in range(30):
        trial = study.ask()
        genome = suggest_genome(trial, space)
        space.validate(genome)  # complete and in range
        depth = genome["depth"]
        depths.add(depth)
        levels = {int(n.split("[")[1][:-1]) for n in trial.params if "[" in n}
        assert levels == set(range(depth))  # per-level genes suggested only below the depth
        for level in range(depth, space.max_depth):
            assert genome[f"n_down[{level}]"] == space.genes[f"n_down[{level}]"].default
        assert genome_from_params(space, trial.params) == genome
        study.tell(trial, 0.0)
    assert depths == {1, 2, 3}


def test_int_genes_keep_step_and_log_and_fit_genes_make_a_hyperparameter_study(tmp_path):
    space = tiny_space(
        tmp_path,
        TINY
        + """
[genes.iters]
kind = "int"
low = 20
high = 100
step = 20
default = 40
[genes.input_depth]
kind = "int"
low = 2
high = 32
log = true
step = 2
default = 4
""",
    )
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        genome = suggest_genome(study.ask(), space)
        space.validate(genome)
        assert genome["iters"] in (20, 40, 60, 80, 100) and genome["input_depth"] % 2 == 0
        assert space.fit_settings(genome)["iters"] == genome["iters"]


@pytest.mark.parametrize("name", ["default", "wide"])
def test_space_round_trips_through_the_stored_recipe(name):
    space = load_space(find_space(name))
    assert space_from_dict(space_to_dict(space), source=space.source) == space


# ----------------------------------------------------------------------------- samplers and pruners


@pytest.mark.parametrize("sampler", [s for s in SAMPLERS if s != "cmaes" or importlib.util.find_spec("cmaes")])
def test_every_sampler_runs_a_conditional_study(tmp_path, sampler):
    study, executor = run_study(tmp_path, tiny_space(tmp_path), trials=7, sampler=sampler)
    status = StudyStatus.of(study)
    assert status.counted == 7 and status.complete + status.failed == 7 and status.running == 0
    assert status.best.value == max(fake_fitness(g) for g in executor.fitted)


def test_unknown_sampler_or_pruner_and_missing_packages_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(DipsearchError, match="unknown sampler 'bogus'.*tpe, random, cmaes, gp, nsga2"):
        sampler_spec("bogus", 0, 10)
    with pytest.raises(DipsearchError, match="unknown pruner 'never'.*hyperband, median, sha, none"):
        pruner_spec("never", 100, 10)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cmaes" else real(name, *a))
    with pytest.raises(DipsearchError, match="sampler 'cmaes' needs the package.*pip install cmaes"):
        sampler_spec("cmaes", 0, 10)


def test_seeded_study_is_reproducible(tmp_path):
    space = tiny_space(tmp_path)
    a, _ = run_study(tmp_path, space, trials=8, name="a")
    b, _ = run_study(tmp_path, space, trials=8, name="b")
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    c, _ = run_study(tmp_path, space, trials=8, name="c", seed=1)
    assert [t.params for t in a.trials] != [t.params for t in c.trials]


@pytest.mark.parametrize("pruner", ["median", "sha", "hyperband"])
def test_pruners_cut_bad_fits_through_the_reporter(tmp_path, pruner):
    study, _ = run_study(tmp_path, tiny_space(tmp_path), trials=14, sampler="random", pruner=pruner, report_every=4)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, "a linear running curve of a worse genome must be pruned by some pruner rule"
    for trial in pruned:
        assert trial.user_attrs[RESULT]["iters_run"] < 20
        assert max(trial.intermediate_values) == trial.user_attrs[RESULT]["iters_run"]
    status = StudyStatus.of(study)
    assert status.counted == 14 and status.iters_used < 14 * 20


def test_reporter_pickles_and_reopens_the_study_by_url(tmp_path):
    storage = StorageSpec.parse(str(tmp_path / "r.journal"))
    pruner = pruner_spec("median", 100, 10)
    study = open_study(storage, "r", None, pruner.build(), create=True)
    trial = study.ask()
    reporter = TrialReporter(storage.url, "r", trial._trial_id, pruner, study=study)
    copy = pickle.loads(pickle.dumps(reporter))
    assert copy.study is None  # no open connection travels to the worker
    assert copy.report(10, 12.5) is False  # median pruner: still in its start-up trials
    assert study.trials[0].intermediate_values == {10: 12.5}
    study.tell(trial, state=TrialState.FAIL)
    assert copy.report(20, 13.0) is True  # a finished trial: stop the fit


CACHE_SPACE = """
name = "four-nets"
[genes.lr]
kind = "choice"
choices = [0.01]
default = 0.01
[levels.n_down]
kind = "choice"
choices = [4, 8]
default = 8
[levels.n_skip]
kind = "choice"
choices = [0, 2]
default = 2
[fixed]
depth = 1
"""


def test_identical_candidates_are_fitted_once(tmp_path):
    study, executor = run_study(tmp_path, tiny_space(tmp_path, CACHE_SPACE), trials=10, sampler="random")
    assert StudyStatus.of(study).counted == 10
    distinct = {str(sorted(g.items())) for g in executor.fitted}
    assert len(executor.fitted) == len(distinct) <= 4  # 2 x 2 networks
    cached = [t for t in study.trials if t.user_attrs[RESULT]["cached_from"] is not None]
    assert len(cached) == 10 - len(executor.fitted) >= 6
    assert all(t.value == study.trials[t.user_attrs[RESULT]["cached_from"]].value for t in cached)
    assert StudyStatus.of(study).iters_used == 20 * len(executor.fitted)


def test_iteration_budget_stops_the_study(tmp_path):
    study, executor = run_study(tmp_path, tiny_space(tmp_path), trials=50, max_iters=100)
    assert len(executor.fitted) == 5 and StudyStatus.of(study).iters_used == 100


# ----------------------------------------------------------------------------- storage and stale trials


def test_bad_storage_urls_are_clear_errors(tmp_path):
    with pytest.raises(DipsearchError, match="cannot open the Optuna storage sqlite:///.*nowhere"):
        open_storage(StorageSpec.parse(f"sqlite:///{tmp_path}/nowhere/x.db"))
    with pytest.raises(DipsearchError, match="cannot open the Optuna storage foo://"):
        open_storage(StorageSpec.parse("foo://x"))
    with pytest.raises(DipsearchError, match="folder .*nowhere does not exist"):
        open_storage(StorageSpec.parse(str(tmp_path / "nowhere" / "s.journal")))
    spec = StorageSpec.parse("postgresql://me:secret@db.example/optuna")
    assert spec.kind == "rdb" and "secret" not in spec.display
    assert (
        StorageSpec.parse(str(tmp_path / "a.journal")).dashboard_command()
        == f"optuna-dashboard {tmp_path / 'a.journal'}"
    )


def test_running_trials_of_dead_or_silent_owners_are_failed_and_live_ones_kept(tmp_path):
    storage = StorageSpec.parse(str(tmp_path / "st.journal"))
    study = open_study(storage, "st", None, None, create=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket
    import time

    host = socket.gethostname()
    owners = {
        "dead": ({"host": host, "pid": int(dead.stdout)}, time.time()),
        "alive": ({"host": host, "pid": 1}, time.time()),  # pid 1 is always running
        "silent": ({"host": "elsewhere", "pid": 5}, time.time() - 3600),
        "remote": ({"host": "elsewhere", "pid": 6}, time.time()),
    }
    numbers = {}
    for label, (owner, beat) in owners.items():
        trial = study.ask()
        trial.set_user_attr(OWNER, owner)
        trial.set_user_attr(HEARTBEAT, beat)
        numbers[label] = trial.number
    foreign = study.ask()  # not dipsearch's: no owner, left alone
    failed = fail_stale_trials(study, stale_after=180)
    assert sorted(failed) == sorted([numbers["dead"], numbers["silent"]])
    states = {t.number: t.state for t in study.trials}
    assert states[numbers["alive"]] == states[numbers["remote"]] == states[foreign.number] == TrialState.RUNNING
    assert "gone" in study.trials[numbers["dead"]].user_attrs[STALE]
    assert StudyStatus.of(study).counted == 0  # abandoned trials do not use up the budget
