"""`dipsearch worker`: join a Bayesian study from another process or host.

The worker needs only the storage URL and the study name: `dipsearch search bayes` stored the problem's
recipe, the space (as TOML tables) and the search spec in the study's user attrs. The worker
(dipsearch.search.bayes.work) rebuilds the problem from the recipe (so image files must be readable at
the same paths: a shared filesystem) and checks it against the stored fingerprint; it then asks, fits
and tells trials in-process until the study has its target number of trials. Results go to the
storage; the driver's run folder picks them up.
"""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from .bayes_cmd import add_study_args
from .log_args import add_log_flag, wants_tensorboard
from .search_cmd import live_progress

if TYPE_CHECKING:
    from rich.console import Console


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "worker",
        help="join a `search bayes` study from another process or host",
        description="Work on an existing Optuna study made by `dipsearch search bayes`: ask, fit and tell trials "
        "until the study has its target number of trials. Problem, space and settings come from the study.",
    )
    parser.add_argument("--study", required=True, metavar="NAME", help="the study to join (it must exist)")
    parser.add_argument(
        "--trials", type=int, metavar="N", help="work until the study has N trials (default: the target its driver set)"
    )
    parser.add_argument("--device", default="auto", help="device for each fit: auto, cpu, cuda, mps")
    parser.add_argument("--seed", type=int, help="sampler seed of this worker (default: derived from host and pid)")
    parser.add_argument("--no-progress", action="store_true", help="one line per trial instead of a table at the end")
    add_log_flag(parser)
    add_study_args(parser, required=True)
    parser.set_defaults(func=run, uses_optuna=True)  # the CLI quietens Optuna's logging (cli.main)


def run(args: argparse.Namespace, console: Console) -> int:
    from ..fitting.progress import summary_table
    from ..search.bayes import work
    from ..search.bayes.display import top_table
    from ..search.bayes.storage import HOST

    report = work(
        args.storage,
        args.study,
        trials=args.trials,
        device=args.device,
        seed=args.seed,
        stale_after=args.stale_after,
        console=console,
        progress=live_progress(args, console),
        tensorboard=wants_tensorboard(args),
    )
    if live_progress(args, console):
        console.print(top_table(report.study))
    console.print(summary_table(f"worker {HOST}:{os.getpid()} on study {args.study}", report.summary()))
    return 0
