"""`dipsearch worker`: join a Bayesian study from another process or host.

The worker needs only the storage URL and the study name: `dipsearch search bayes` stored the problem
flags, the space (as TOML tables) and the search settings in the study's user attrs. The worker rebuilds
the problem from those flags (so image files must be readable at the same paths: a shared filesystem)
and checks it against the stored fingerprint; it then asks, fits and tells trials in-process until the
study has its target number of trials. Results go to the storage; the driver's run folder picks them up.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DipsearchError
from .bayes_cmd import add_study_args, setup_from_recipe
from .problem_args import check_seed

if TYPE_CHECKING:
    from rich.console import Console


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "worker", help="join a `search bayes` study from another process or host",
        description="Work on an existing Optuna study made by `dipsearch search bayes`: ask, fit and tell trials "
        "until the study has its target number of trials. Problem, space and settings come from the study.",
    )
    parser.add_argument("--study", required=True, metavar="NAME", help="the study to join (it must exist)")
    parser.add_argument("--trials", type=int, metavar="N",
                        help="work until the study has N trials (default: the target its driver set)")
    parser.add_argument("--device", default="auto", help="device for each fit: auto, cpu, cuda, mps")
    parser.add_argument("--seed", type=int, help="sampler seed of this worker (default: derived from host and pid)")
    parser.add_argument("--no-progress", action="store_true", help="one line per trial instead of a table at the end")
    add_study_args(parser, required=True)
    parser.set_defaults(func=run)


def existing_storage_file(url: str, study: str) -> None:
    """A worker joins a study: a journal or SQLite file that is not there is a typo, not a file to create."""
    path = None
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
    elif "://" not in url:
        path = Path(url[len("journal:"):] if url.startswith("journal:") else url)
    # (a missing folder is left to the storage's own message)
    if path is not None and path.parent.is_dir() and not path.exists():
        kind = "sqlite" if url.startswith("sqlite:") else "journal"
        raise DipsearchError(f"no study {study!r} in {kind}:{path}: the file does not exist. `dipsearch worker` joins a "
                             "study that `dipsearch search bayes --storage ...` started; give the same file as the driver")


def run(args: argparse.Namespace, console: Console) -> int:
    from ..progress import summary_table
    from ..search.bayes import best_image_saver
    from ..search.bayes_report import StudyDisplay, top_table
    from ..search.samplers import PrunerSpec, SamplerSpec
    from ..search.storage import HOST, StorageSpec, check_stale_after, fail_stale_trials
    from ..search.study import RECIPE, TARGET, StudyRunner, StudyStatus, open_study, trial_iters, worker_seed

    check_seed(args.seed)
    check_stale_after(args.stale_after)
    if args.trials is not None and args.trials < 1:
        raise DipsearchError(f"--trials must be >= 1, got {args.trials}")
    existing_storage_file(args.storage, args.study)
    spec = StorageSpec.parse(args.storage)
    # Open once with a throwaway sampler to read the recipe, then with the study's own sampler and pruner.
    probe = open_study(spec, args.study, sampler=None, pruner=None, create=False)
    recipe = probe.user_attrs.get(RECIPE)
    if not recipe:
        raise DipsearchError(f"study {args.study!r} was not made by `dipsearch search bayes` (it has no recipe)")
    setup = setup_from_recipe(recipe, args.study, args.device)
    sampler = SamplerSpec(recipe["sampler"]["name"], recipe["sampler"]["settings"])
    pruner = PrunerSpec(recipe["pruner"]["name"], recipe["pruner"]["settings"])
    seed = args.seed if args.seed is not None else worker_seed(int(recipe["search"]["seed"]), f"{HOST}:{os.getpid()}")
    study = open_study(spec, args.study, sampler.build(seed), pruner.build(), create=False)
    target = args.trials if args.trials is not None else int(study.user_attrs.get(TARGET, 0))
    stale = fail_stale_trials(study, args.stale_after)
    if stale:
        console.print(f"trials {', '.join(map(str, stale))} were left running by a process that is gone: marked FAIL")
    save_best = best_image_saver(recipe.get("run_dir"), study)

    display = StudyDisplay(console, target, f"worker on {args.study}", enabled=not args.no_progress)

    def told(trial, evaluation) -> None:
        save_best(trial, evaluation)
        display.update(StudyStatus.of(study))
        if args.no_progress:
            console.print(f"trial {trial.number}: {trial.state.name.lower()} value {trial.value} "
                          f"({evaluation.iters_run} iters, {evaluation.seconds:.1f} s)", highlight=False)

    start = time.perf_counter()
    runner = StudyRunner(study, spec, setup.candidate, setup.space, pruner, int(recipe["report_every"]), target,
                         trial_iters(setup.space, setup.args.iters), on_tell=told, stale_after=args.stale_after)
    with display:
        display.update(StudyStatus.of(study))
        runner.run()
    status = StudyStatus.of(study)
    if not args.no_progress:
        console.print(top_table(study))
    console.print(summary_table(f"worker {HOST}:{os.getpid()} on study {args.study}", {
        "told_here": runner.told, "study_trials": status.counted, "target": target, "pruned": status.pruned,
        "running": status.running, "seconds": round(time.perf_counter() - start, 2),
        "best_fitness": status.best.value if status.best else None,
    }))
    return 0
