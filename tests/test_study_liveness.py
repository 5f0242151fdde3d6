"""What keeps a shared study going when a process dies: the others wait for its trials, fail them as stale
and ask again; a trial asked but never claimed is given up too; --stale-after must be positive."""

import time
from concurrent.futures import Executor, Future

import pytest
from optuna.trial import TrialState
from test_bayes import FakeExecutor, make_setup, tiny_space

from dipsearch.cli import main
from dipsearch.scoring.evaluate import Evaluation
from dipsearch.search.bayes.space import suggest_genome
from dipsearch.search.bayes.storage import HEARTBEAT, OWNER, RETRY_OF, STALE, StorageSpec, fail_stale_trials
from dipsearch.search.bayes.study import BayesSettings, StudyRunner, StudyStatus, open_study, specs


def test_runner_waits_for_a_silent_workers_trial_then_fails_it_and_asks_again(tmp_path):
    space = tiny_space(tmp_path)
    sampler, pruner, every = specs(space, 20, 0, BayesSettings(trials=2, pruner="none"))
    storage = StorageSpec.parse(str(tmp_path / "s.journal"))
    study = open_study(storage, "s", sampler.build(), pruner.build(), create=True)
    # A worker on another machine took the first trial and was alive a moment ago.
    remote = study.ask()
    remote.set_user_attr(OWNER, {"host": "elsewhere", "pid": 5})
    remote.set_user_attr(HEARTBEAT, time.time())
    runner = StudyRunner(
        study, storage, make_setup(space).candidate, space, pruner, every, 2, 20, FakeExecutor(), stale_after=1.0
    )
    # One trial of its own fills the target together with the remote one; it must not stop there: the remote
    # worker never beats again, so its trial is failed and a third one is asked in its place.
    assert runner.run() == 2
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.FAIL, TrialState.COMPLETE, TrialState.COMPLETE]
    assert trials[0].user_attrs[STALE].startswith("no heartbeat from elsewhere:5 for ")
    assert StudyStatus.of(study).counted == 2


def test_a_dead_workers_claimed_trial_is_asked_again_with_its_genome(tmp_path):
    space = tiny_space(tmp_path)
    sampler, pruner, every = specs(space, 20, 0, BayesSettings(trials=2, pruner="none"))
    storage = StorageSpec.parse(str(tmp_path / "r.journal"))
    study = open_study(storage, "r", sampler.build(), pruner.build(), create=True)
    # A remote worker asked a trial, chose its genome, claimed it, started fitting, and died.
    remote = study.ask()
    genome = suggest_genome(remote, space)
    remote.set_user_attr("genome", genome)
    remote.set_user_attr(OWNER, {"host": "elsewhere", "pid": 5})
    remote.set_user_attr(HEARTBEAT, time.time() - 60)
    executor = FakeExecutor()
    runner = StudyRunner(
        study, storage, make_setup(space).candidate, space, pruner, every, 2, 20, executor, stale_after=1.0
    )
    assert runner.run() == 2
    dead, *rest = study.get_trials()
    assert dead.state == TrialState.FAIL and dead.user_attrs[STALE].startswith("no heartbeat from elsewhere:5")
    retried = [t for t in rest if t.user_attrs.get(RETRY_OF) == dead.number]
    assert len(retried) == 1 and retried[0].state == TrialState.COMPLETE
    assert retried[0].params == dead.params and retried[0].user_attrs["genome"] == genome
    assert StudyStatus.of(study).counted == 2


class JudgedWhileFitting(Executor):
    """A 'fit' that lasts 1.5 x stale_after, during which another process judges the study by the same stale_after."""

    def __init__(self, study, stale_after: float):
        self.study, self.stale_after, self.failed = study, stale_after, []

    def submit(self, fn, candidate):
        time.sleep(1.5 * self.stale_after)
        self.failed += fail_stale_trials(self.study, self.stale_after)
        future = Future()
        future.set_result(
            Evaluation(
                index=candidate.index,
                key=candidate.key,
                genome=candidate.genome,
                fitness=12.0,
                psnr=13.0,
                params=100,
                iters_run=candidate.iters,
                seconds=0.01,
            )
        )
        return future


def test_a_trial_fitting_longer_than_stale_after_keeps_beating_and_is_not_failed(tmp_path):
    space = tiny_space(tmp_path)
    sampler, pruner, every = specs(space, 20, 0, BayesSettings(trials=1, pruner="none"))
    storage = StorageSpec.parse(str(tmp_path / "b.journal"))
    study = open_study(storage, "b", sampler.build(), pruner.build(), create=True)
    executor = JudgedWhileFitting(study, stale_after=2.0)
    runner = StudyRunner(
        study, storage, make_setup(space).candidate, space, pruner, every, 1, 20, executor, stale_after=2.0
    )
    assert runner.run() == 1
    assert executor.failed == [] and [t.state for t in study.trials] == [TrialState.COMPLETE]


def test_a_trial_asked_and_never_claimed_is_failed_once_seen_unclaimed_for_stale_after(tmp_path):
    study = open_study(StorageSpec.parse(str(tmp_path / "u.journal")), "u", None, None, create=True)
    orphan = study.ask()  # its asker died before recording itself as the owner
    unclaimed: dict[int, float] = {}
    assert fail_stale_trials(study, 10, unclaimed) == [] and list(unclaimed) == [orphan._trial_id]
    unclaimed[orphan._trial_id] -= 11  # first seen 11 s ago
    assert fail_stale_trials(study, 10, unclaimed) == [orphan.number]
    assert study.trials[0].user_attrs[STALE] == "asked but not claimed by any process for 11 s"


@pytest.mark.parametrize(
    "command",
    [
        ["search", "bayes", "--demo", "--crop", "32", "--trials", "1", "--out", "runs"],
        ["worker", "--study", "s"],
    ],
)
def test_stale_after_must_be_positive(tmp_path, capsys, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    assert main([*command, "--storage", "x.journal", "--stale-after", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --stale-after must be > 0 seconds, got 0.0"
    assert list(tmp_path.iterdir()) == []  # no run folder, no journal


class LostWorker(Executor):
    """An executor whose worker process died: every future raises instead of returning an evaluation."""

    def submit(self, fn, candidate):
        future = Future()
        future.set_exception(RuntimeError("A process in the process pool was terminated abruptly"))
        return future


def test_a_trial_whose_worker_was_lost_fails_with_the_executors_error(tmp_path):
    space = tiny_space(tmp_path)
    sampler, pruner, every = specs(space, 20, 0, BayesSettings(trials=1, pruner="none"))
    storage = StorageSpec.parse(str(tmp_path / "l.journal"))
    study = open_study(storage, "l", sampler.build(), pruner.build(), create=True)
    runner = StudyRunner(study, storage, make_setup(space).candidate, space, pruner, every, 1, 20, LostWorker())
    runner.run()
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["result"]["error"] == (
        "executor: RuntimeError: A process in the process pool was terminated abruptly"
    )


@pytest.mark.parametrize("given, used", [([], 7.0), (["--stale-after", "20"], 20.0)])
def test_a_worker_judges_heartbeats_by_the_drivers_stale_after_unless_given_its_own(tmp_path, monkeypatch, given, used):
    import dipsearch.search.bayes.api as bayes_run

    monkeypatch.chdir(tmp_path)
    common = ["--demo", "--crop", "32", "--storage", "s.journal", "--study", "s"]
    assert (
        main(["search", "bayes", *common, "--trials", "0", "--stale-after", "7", "--out", "runs", "--no-progress"]) == 0
    )
    seen = {}

    class Recorder(StudyRunner):
        def run(self):
            seen["stale_after"] = self.stale_after
            return 0

    monkeypatch.setattr(bayes_run, "StudyRunner", Recorder)
    assert main(["worker", "--storage", "s.journal", "--study", "s", "--no-progress", *given]) == 0
    assert seen == {"stale_after": used}
