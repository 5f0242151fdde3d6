"""`dipsearch search bayes`: Bayesian architecture / hyperparameter search with Optuna."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DipsearchError
from .names import PRUNERS, SAMPLERS, SQLITE_HELP, STALE_AFTER
from .problem_args import problem_flags, problem_from_args
from .rung_args import final_table, restore_plan_args
from .search_cmd import (SearchSetup, add_search_args, check_workers, fit_space_to_image, no_winner,
                         refuse_resume_flags, remember_resume_defaults, search_setup)

if TYPE_CHECKING:
    from rich.console import Console

PROBLEM_KEYS = ("observation", "task", "clean", "noise", "sigma", "factor", "mask", "mask_ratio", "mask_kind", "crop",
                "seed", "demo")
PATH_KEYS = ("observation", "clean", "mask")
# What --resume may change; the problem, space, iterations, fitness and seed are the study's.
RESUME_FREE = {"trials", "sampler", "pruner", "report_every", "budget_iters", "with_default", "study", "storage",
               "stale_after", "workers", "dask", "device", "no_progress", "out"}


def add_study_args(parser: argparse.ArgumentParser, required: bool = False) -> None:
    default = "" if required else " (default: study.journal in the run folder)"
    parser.add_argument("--storage", metavar="URL", required=required,
                        help=f"Optuna storage: a journal file path{default}, postgresql://... for many machines, "
                        f"or sqlite:///FILE ({SQLITE_HELP})")
    parser.add_argument("--stale-after", type=float, default=STALE_AFTER, metavar="S",
                        help=f"fail RUNNING trials of other hosts without a heartbeat for S seconds (default {STALE_AFTER:.0f})")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "bayes", help="Bayesian search with Optuna (TPE, pruning, storages, workers)",
        description="Search architectures and fit settings with an Optuna study: define-by-run over the space "
        "(per-level genes only below the sampled depth), pruning on the running fitness, any Optuna storage; "
        "`dipsearch worker` joins the study from other processes or hosts.",
    )
    add_search_args(parser)
    group = parser.add_argument_group("bayes")
    group.add_argument("--trials", type=int, metavar="N",
                       help="trials the study should have, counting earlier runs of it (default 20; with --resume: as before)")
    group.add_argument("--sampler", help=f"{', '.join(SAMPLERS)} (default tpe, seeded by --seed)")
    group.add_argument("--pruner", help=f"{', '.join(PRUNERS)} (default median; sha = successive halving; hyperband "
                       "splits the trials into brackets and the sampler learns from one bracket at a time, so it pays "
                       "off only for studies of many trials)")
    group.add_argument("--report-every", type=int, metavar="K", help="report the running fitness every K iterations (default iters/10)")
    group.add_argument("--budget-iters", type=int, metavar="N", help="also stop when the study's fits have used N iterations")
    group.add_argument("--with-default", action="store_true", help="make the space's default genome the first trial")
    group.add_argument("--study", metavar="NAME", help="study name (default bayes-<space name>); an existing one is continued")
    group.add_argument("--resume", metavar="RUN_DIR", help="continue the study of this bayes run folder: problem, space, --iters, --fitness, "
                       "--eval-scale and --seed come from it (giving them again is refused)")
    add_study_args(group)
    from .seeding_args import add_seeding_args

    add_seeding_args(parser)
    parser.set_defaults(func=run, uses_optuna=True)  # the CLI quietens Optuna's logging (cli.main)
    remember_resume_defaults(parser, RESUME_FREE)


def problem_args_of(args: argparse.Namespace) -> dict[str, Any]:
    """The problem flags as stored in the study, with absolute paths, so a worker can rebuild the problem."""
    out = {k: getattr(args, k) for k in PROBLEM_KEYS}
    for key in PATH_KEYS:
        if out[key]:
            out[key] = str(Path(out[key]).resolve())
    return out


def setup_from_recipe(recipe: dict[str, Any], study: str, device: str) -> SearchSetup:
    """Rebuild problem, space and search settings from a study's recipe (for workers and --resume)."""
    from ..search.study import problem_fingerprint
    from ..space import space_from_dict

    if not recipe.get("problem_args"):
        raise DipsearchError(f"study {study!r} was created from Python without problem flags; only its creator can run it")
    flags = argparse.Namespace(**recipe["problem_args"])
    if flags.task != "sr":
        flags.factor = None  # studies made before --factor was refused outside sr stored the default 4
    try:
        problem = problem_from_args(flags)
    except DipsearchError as err:
        raise DipsearchError(f"cannot rebuild the problem of study {study!r} here: {err}") from None
    if problem_fingerprint(problem) != recipe["problem_fingerprint"]:
        raise DipsearchError(
            f"the problem rebuilt here differs from the one study {study!r} was started with "
            "(changed image files, or another torch version synthesising the noise); use the same files and versions"
        )
    search = recipe["search"]
    # The recipe's tables hold one choice list per per-level gene; cutting again restores the per-level cuts.
    space, _ = fit_space_to_image(space_from_dict(recipe["space"], source=recipe["space_source"]), problem,
                                  search["eval_scale"])
    args = argparse.Namespace(iters=search["iters"], seed=search["seed"], fitness=search["fitness"],
                              eval_scale=search["eval_scale"], device=device, workers=None, dask=None)
    return SearchSetup(problem, space, args)


def _resume_setup(args: argparse.Namespace) -> tuple[SearchSetup, dict[str, Any]]:
    import optuna

    from ..search.storage import StorageSpec, open_storage
    from ..search.study import RECIPE, TARGET
    from ..tomlio import load_toml

    if args.observation or args.clean or args.demo:
        raise DipsearchError("--resume continues the problem stored with the study: drop OBSERVATION, --clean and --demo")
    refuse_resume_flags(args, ", ".join(f"--{name.replace('_', '-')}" for name in sorted(RESUME_FREE)))
    config = load_toml(Path(args.resume) / "config.toml", "run config")
    if "bayes" not in config:
        raise DipsearchError(f"{args.resume} is not a bayes run folder (its config.toml has no [bayes] table)")
    storage = StorageSpec.parse(config["bayes"]["storage"])
    study = optuna.load_study(study_name=config["bayes"]["study"], storage=open_storage(storage))
    recipe = study.user_attrs.get(RECIPE) or {}
    setup = setup_from_recipe(recipe, study.study_name, args.device)
    setup.args.workers, setup.args.dask = args.workers, args.dask
    # Unless given again, the study goes on as it was started (a different pruner would be refused).
    if args.trials is None:
        args.trials = int(study.user_attrs.get(TARGET, config["bayes"].get("trials", 0)))
    args.sampler = args.sampler or recipe["sampler"]["name"]
    args.pruner = args.pruner or recipe["pruner"]["name"]
    args.report_every = args.report_every or recipe["report_every"]
    if args.budget_iters is None:
        args.budget_iters = config["bayes"].get("max_iters")
    restore_plan_args(setup.args, config.get("rungs", {"final": 0}))
    return setup, recipe.get("problem_args") or {}


def executor_and_slots(args: argparse.Namespace):
    """The executor and how many trials to keep in flight on it."""
    from ..executors import dask_executor, make_executor

    if args.dask:
        executor = dask_executor(args.dask)
        client = getattr(executor, "client", None)
        threads = sum(client.nthreads().values()) if client is not None else 1
        return executor, args.workers or max(1, threads)
    return make_executor(args.workers), max(1, args.workers or 1)


def shutdown(executor: Any) -> None:
    try:
        executor.shutdown(wait=True, cancel_futures=True)
    except TypeError:  # Dask's ClientExecutor has no cancel_futures
        executor.shutdown(wait=True)


def run(args: argparse.Namespace, console: Console) -> int:
    from ..progress import summary_table
    from ..search.bayes import run_bayes
    from ..search.bayes_report import top_table
    from ..search.study import BayesSettings, specs

    check_workers(args.workers)
    # --trials 0 with a shared --storage only creates the study, for `dipsearch worker` processes to work on.
    if args.trials is not None and (args.trials < 0 or (args.trials == 0 and not args.storage)):
        raise DipsearchError(f"--trials must be >= 1, got {args.trials} (0 only with --storage: create the study for "
                             "`dipsearch worker` processes)")
    if args.resume:
        setup, problem_args = _resume_setup(args)
    else:
        setup, problem_args = search_setup(args), problem_args_of(args)
    if setup.note:
        console.print(setup.note, highlight=False)
    settings = BayesSettings(trials=20 if args.trials is None else args.trials, sampler=args.sampler or "tpe",
                             pruner=args.pruner or "median",
                             report_every=args.report_every, max_iters=args.budget_iters, with_default=args.with_default,
                             stale_after=args.stale_after)
    specs(setup.space, setup.args.iters, setup.args.seed, settings)  # bad sampler/pruner: fail before any work
    if settings.max_iters is not None and settings.max_iters < 1:
        raise DipsearchError(f"--budget-iters must be >= 1, got {settings.max_iters}")
    from ..preselect.seeding import record_seeding
    from .seeding_args import describe_seeding, starting_genomes

    initial, seeding = starting_genomes(args, setup, settings.trials, keep=max(1, settings.trials // 4))
    if seeding and not args.with_default:
        initial = initial[1:]  # the default genome is a first trial only with --with-default
    if seeding:
        console.print(describe_seeding(seeding, args.with_default), highlight=False)
    executor, slots = executor_and_slots(args)
    before = _bayes_folders(args.out)
    try:
        result = run_bayes(setup, settings, storage=args.storage, study_name=args.study, executor=executor, slots=slots,
                           out=args.out, problem_args=problem_args, resume=args.resume, console=console,
                           progress=not args.no_progress, initial=initial)
    except KeyboardInterrupt:
        new = [p for p in _bayes_folders(args.out) - before if (p / "config.toml").is_file()]
        folder = args.resume or (str(new[0]) if len(new) == 1 else None)
        if folder:
            console.print(f"continue with: dipsearch search bayes --resume {folder}", highlight=False)
        raise
    finally:
        shutdown(executor)
    if seeding:
        record_seeding(result.run, seeding)
    summary = result.summary
    console.print(top_table(result.study))
    if result.selection is not None:
        console.print(final_table(setup.space, result.selection))
    shown = {k: v for k, v in summary.items() if k not in ("plots", "dashboard", "storage")}
    console.print(summary_table(f"bayes search: {summary['trials']} trials, {summary['pruned']} pruned", shown))
    console.print(f"run folder: [bold]{result.run.path}[/bold]", highlight=False)
    console.print(f"storage: {summary['storage']}  study: {summary['study']}", highlight=False)
    console.print(f"open the study in optuna-dashboard (pip install optuna-dashboard): [bold]{summary['dashboard']}[/bold]",
                  highlight=False)
    best_arch = result.run.file("best_arch.toml")
    if settings.trials == 0 and summary.get("best_fitness") is None:
        console.print(f"the study has no trials yet; work on it with: dipsearch worker --storage {summary['storage']} "
                      f"--study {summary['study']}", highlight=False)
        return 0
    if summary.get("best_fitness") is None or not best_arch.is_file():
        raise DipsearchError(no_winner(_study_evaluations(result, setup.space), result.run.path))
    flags = problem_flags(argparse.Namespace(**problem_args)) if problem_args else "IMAGE"
    console.print(f"refit the winner: dipsearch fit {flags} --arch {best_arch}", highlight=False)
    return 0


def _bayes_folders(out: str) -> set[Path]:
    return set((Path(out) / "search").glob("*_bayes*"))


def _study_evaluations(result: Any, space: Any) -> list[Any]:
    from ..search.study import evaluation_of

    return [evaluation_of(t, space) for t in result.study.get_trials(deepcopy=False) if t.state.is_finished()]
