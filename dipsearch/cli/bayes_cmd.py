"""`dipsearch search bayes`: Bayesian architecture / hyperparameter search with Optuna."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..errors import DipsearchError
from .names import PRUNERS, SAMPLERS, SQLITE_HELP, STALE_AFTER, name_arguments
from .problem_args import problem_flags, recipe_from_args
from .rung_args import final_table
from .search_cmd import (
    add_search_args,
    continue_hint,
    print_answer,
    refit_hint,
    refuse_resume_flags,
    remember_resume_defaults,
    runtime_from_args,
    spec_from_args,
)
from .thread_args import add_threads_flag

if TYPE_CHECKING:
    from rich.console import Console

# What --resume may change; the problem, space, iterations, fitness and seed are the study's.
RESUME_FREE = {
    "trials",
    "sampler",
    "pruner",
    "report_every",
    "budget_iters",
    "with_default",
    "study",
    "storage",
    "stale_after",
    "workers",
    "dask",
    "device",
    "no_progress",
    "out",
}


def add_study_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    default = "" if required else " (default: study.journal in the run folder)"
    parser.add_argument(
        "--storage",
        metavar="URL",
        required=required,
        help=f"Optuna storage: a journal file path{default}, postgresql://... for many machines, "
        f"or sqlite:///FILE ({SQLITE_HELP})",
    )
    # A worker (required storage) takes the driver's value, stored with the study, unless given its own.
    fallback = f"the study driver's, else {STALE_AFTER:.0f}" if required else f"{STALE_AFTER:.0f}"
    parser.add_argument(
        "--stale-after",
        type=float,
        default=None if required else STALE_AFTER,
        metavar="S",
        help=f"fail RUNNING trials of other hosts without a heartbeat for S seconds (default {fallback})",
    )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bayes",
        help="Bayesian search with Optuna (TPE, pruning, storages, workers)",
        description="Search architectures and fit settings with an Optuna study: define-by-run over the space "
        "(per-level genes only below the sampled depth), pruning on the running fitness, any Optuna storage; "
        "`dipsearch worker` joins the study from other processes or hosts.",
    )
    add_search_args(parser)
    group = parser.add_argument_group("bayes")
    group.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help="trials the study should have, counting earlier runs of it (default 20; with --resume: as before)",
    )
    group.add_argument("--sampler", help=f"{', '.join(SAMPLERS)} (default tpe, seeded by --seed)")
    group.add_argument(
        "--pruner",
        help=f"{', '.join(PRUNERS)} (default median; sha = successive halving; hyperband "
        "splits the trials into brackets and the sampler learns from one bracket at a time, so it pays "
        "off only for studies of many trials)",
    )
    group.add_argument(
        "--report-every", type=int, metavar="K", help="report the running fitness every K iterations (default iters/10)"
    )
    group.add_argument(
        "--budget-iters", type=int, metavar="N", help="also stop when the study's fits have used N iterations"
    )
    group.add_argument("--with-default", action="store_true", help="make the space's default genome the first trial")
    group.add_argument(
        "--study", metavar="NAME", help="study name (default bayes-<space name>); an existing one is continued"
    )
    group.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue the study of this bayes run folder: problem, space, --iters, --fitness, "
        "--eval-scale and --seed come from it (giving them again is refused)",
    )
    add_study_args(group)
    add_threads_flag(group)
    parser.set_defaults(func=run, uses_optuna=True)  # the CLI quietens Optuna's logging (cli.main)
    name_arguments(parser, max_iters="--budget-iters")
    remember_resume_defaults(parser, RESUME_FREE)


def run(args: argparse.Namespace, console: Console) -> int:
    from ..fitting.progress import summary_table
    from ..search.bayes import api as bayes_api
    from ..search.bayes.display import top_table
    from ..search.bayes.study import BayesSettings
    from ..search.prepare import no_winner

    runtime = runtime_from_args(args, console)
    runtime.check()
    if args.trials is not None:
        bayes_api.check_trials(args.trials, args.storage)
    try:
        if args.resume:
            if args.observation or args.clean or args.demo:
                raise DipsearchError(
                    "--resume continues the problem stored with the study: drop OBSERVATION, --clean and --demo"
                )
            refuse_resume_flags(args, [f"--{name.replace('_', '-')}" for name in RESUME_FREE])
            done = bayes_api.continue_run(
                args.resume,
                runtime,
                trials=args.trials,
                device=args.device,
                sampler=args.sampler,
                pruner=args.pruner,
                report_every=args.report_every,
                max_iters=args.budget_iters,
                with_default=args.with_default,
                stale_after=args.stale_after,
            )
        else:
            settings = BayesSettings(
                trials=BayesSettings.trials if args.trials is None else args.trials,
                sampler=args.sampler or "tpe",
                pruner=args.pruner or "median",
                report_every=args.report_every,
                max_iters=args.budget_iters,
                with_default=args.with_default,
                stale_after=args.stale_after,
            )
            done = bayes_api.start(
                recipe_from_args(args),
                spec_from_args(args, "bayes", settings),
                runtime,
                storage=args.storage,
                study=args.study,
            )
    except BaseException as err:
        continue_hint(err, console, "bayes")
        raise
    result, settings, setup = done.outcome, done.settings, done.setup
    summary = result.summary
    console.print(top_table(result.study))
    if result.selection is not None:
        console.print(final_table(setup.space, result.selection))
    shown = {k: v for k, v in summary.items() if k not in ("plots", "dashboard", "storage")}
    console.print(summary_table(f"bayes search: {summary['trials']} trials, {summary['pruned']} pruned", shown))
    console.print(f"run folder: [bold]{result.run.path}[/bold]", highlight=False)
    console.print(f"storage: {summary['storage']}  study: {summary['study']}", highlight=False)
    console.print(
        f"open the study in optuna-dashboard (pip install optuna-dashboard): [bold]{summary['dashboard']}[/bold]",
        highlight=False,
    )
    best_arch = result.run.file("best_arch.toml")
    if settings.trials == 0 and summary.get("best_fitness") is None:
        # The study's target is 0 trials: a worker needs its own target, or it has nothing to do.
        console.print(
            f"the study has no trials yet; work on it with: dipsearch worker --storage {summary['storage']} "
            f"--study {summary['study']} --trials {BayesSettings.trials}",
            highlight=False,
        )
        return 0
    if summary.get("best_fitness") is None or not best_arch.is_file():
        raise DipsearchError(no_winner(_study_evaluations(result, setup.space), result.run.path))
    print_answer(console, result.run.path)
    flags = problem_flags(setup.recipe) if setup.recipe.rebuildable else "IMAGE"
    console.print(refit_hint(flags, best_arch, setup.spec), highlight=False)
    return 0


def _study_evaluations(result: Any, space: Any) -> list[Any]:
    from ..search.bayes.study import evaluation_of

    return [evaluation_of(t, space) for t in result.study.get_trials(deepcopy=False) if t.state.is_finished()]
