"""`dipsearch search SEARCHER`: the flags every searcher shares, and the group that holds the searchers.

The searchers are the registry's (dipsearch.search.base.SEARCHERS). One with a command-line module of its own
(SEARCHER_COMMANDS below) registers its parser there; any other gets the shared flags, one flag per field of its settings
dataclass and --resume RUN_DIR (`generic_run` below), so that a new searcher needs no command-line code.
"""

from __future__ import annotations

import argparse
from dataclasses import fields
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DipsearchError
from .fit_cmd import add_fast_flags
from .log_args import add_log_flag, wants_tensorboard
from .names import DETECTORS, FITNESSES, name_arguments
from .problem_args import add_problem_args, problem_flags, recipe_from_args
from .rung_args import add_rung_args, final_table, plan_from_args
from .seeding_args import add_seeding_args
from .stop_cmd import add_stop_args, stop_spec_from_args
from .thread_args import add_threads_flag

if TYPE_CHECKING:
    from rich.console import Console

    from ..search.prepare import SearchSetup
    from ..search.spec import Runtime, SearchSpec


def add_search_args(parser: argparse.ArgumentParser, iters_default: int = 400) -> None:
    add_problem_args(parser)
    group = parser.add_argument_group("search")
    group.add_argument(
        "--space",
        default="default",
        metavar="PATH",
        help="search-space TOML file, or a name in search_spaces/ (default: default)",
    )
    group.add_argument(
        "--iters",
        type=int,
        default=iters_default,
        help=f"fit iterations per candidate (default {iters_default}; a space's iters gene overrides)",
    )
    group.add_argument(
        "--fitness",
        default="holdout",
        help=f"how candidates are scored: {', '.join(FITNESSES)} (default holdout: no ground truth used)",
    )
    group.add_argument(
        "--eval-scale",
        type=eval_scale,
        metavar="S",
        help="screen candidates on a 1/2 or 1/4 subsampled image, given as 1/2 or 0.5, 1/4 or 0.25 "
        "(default 0.5 where the task and image allow it, else 1: the best-predicting cheap score "
        "of bench/fidelity.py)",
    )
    group.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="local worker processes, dealt to the GPUs round-robin: N on one GPU = N concurrent fits "
        "(default: one per GPU, else 1 = in-process)",
    )
    group.add_argument("--dask", metavar="ADDRESS", help="run evaluations on a Dask scheduler, e.g. tcp://host:8786")
    group.add_argument("--device", default="auto", help="device for each fit: auto, cpu, cuda, mps")
    add_fast_flags(group)
    group.add_argument("--out", default="runs", metavar="DIR", help="runs root folder (default ./runs)")
    group.add_argument(
        "--init",
        metavar="RUN_DIR|weights.pt",
        help="warm start: candidates of the same architecture as these weights start from them",
    )
    group.add_argument(
        "--no-progress",
        action="store_true",
        help="no live display, one line per generation, trial or rung instead (the default when not a terminal)",
    )
    add_log_flag(group)
    add_rung_args(parser.add_argument_group("multi-fidelity selection"))
    name_arguments(
        parser,
        budgets="--rungs",
        margin="--final-margin",
        weights="--ensemble-weights",
        restarts="--ensemble-restarts",
        splits="--ensemble-splits",
    )  # RungPlan's names
    add_seeding_args(parser)
    add_stop_args(parser)  # --stop DETECTOR: every candidate's fit stops online; its chosen output is scored
    # argparse has no public way to reword a borrowed flag's help; here it means something else than in `fit`
    parser._option_string_actions["--stop"].help = (
        f"stop every candidate's fit with a detector: {', '.join(DETECTORS)}, auto (the recommended stopping)"
        " or none (default); the fitness scores the output it chose"
    )


def eval_scale(text: str) -> float:
    """--eval-scale as a fraction ("1/2") or a decimal ("0.5")."""
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected 1, 1/2 or 1/4 (or 0.5, 0.25), got {text!r}") from None


def spec_from_args(args: argparse.Namespace, searcher: str | None = None, settings: Any = None) -> SearchSpec:
    """The SearchSpec the search flags describe (validated when the search is set up on its problem)."""
    from ..search.spec import SearchSpec, Seeding

    return SearchSpec(
        space=args.space,
        iters=args.iters,
        fitness=args.fitness,
        eval_scale=args.eval_scale,
        seed=args.seed,
        stop=stop_spec_from_args(args),
        rungs=plan_from_args(args),
        device=args.device,
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        init=getattr(args, "init", None),
        threads=getattr(args, "threads", None),
        seeding=Seeding(
            preselect=args.preselect,
            preselect_keep=args.preselect_keep,
            preselect_metric=args.preselect_metric,
            seed_from=list(args.seed_from),
            start_from=list(args.start_from),
        ),
        searcher=searcher,
        settings=settings,
    )


def runtime_from_args(args: argparse.Namespace, console: Console) -> Runtime:
    from ..search.spec import Runtime

    return Runtime(
        workers=args.workers,
        dask=args.dask,
        dask_timeout=getattr(args, "dask_timeout", 10.0),
        out=args.out,
        progress=live_progress(args, console),
        console=console,
        tensorboard=wants_tensorboard(args),
    )


def live_progress(args: argparse.Namespace, console: Console) -> bool:
    """A live display only on a terminal: a log or pipe gets one plain line per generation, trial or rung."""
    return not args.no_progress and console.is_terminal


def search_setup(args: argparse.Namespace) -> SearchSetup:
    """The flags' problem and spec, set up as a search would be (nothing is written)."""
    from ..search.prepare import prepare

    recipe = recipe_from_args(args)
    return prepare(recipe.build(), recipe, spec_from_args(args), remote=args.dask is not None)


def continue_hint(err: BaseException, console: Console, searcher: str) -> None:
    """After an interrupted search that kept its folder: the command that continues it."""
    run_dir = getattr(err, "run_dir", None)
    if run_dir is not None:
        console.print(f"continue with: dipsearch search {searcher} --resume {run_dir}", highlight=False)


def remember_resume_defaults(parser: argparse.ArgumentParser, free: set[str]) -> None:
    """Record every flag's default, so that --resume can refuse the flags its run folder decides."""
    parser.set_defaults(
        resume_fixed={
            a.dest: (a.option_strings[0] if a.option_strings else a.dest.upper(), a.default)
            for a in parser._actions
            # not hidden aliases; logs may differ from start to resume
            if a.dest not in free | {"help", "func", "resume", "log"} and a.help != argparse.SUPPRESS
        }
    )


def refit_hint(flags: str, best_arch: Path, spec: SearchSpec) -> str:
    """The command that refits the single pick as the final rung fitted it: its stopping and warm start too."""
    hint = f"refit the winner: dipsearch fit {flags} --arch {best_arch}"
    stop = spec.rungs.stop if spec.rungs is not None else spec.stop
    if stop is not None:
        hint += f" --stop {stop.detector}"
    if spec.init:
        hint += f" --init {spec.init}"
    return hint


def print_answer(console: Console, run_path: Path) -> None:
    """Where the search's answer is: the final rung's ensemble where it made one, else its single pick."""
    ensemble = Path(run_path) / "ensemble.png"
    if ensemble.is_file():
        console.print(
            f"the answer: {ensemble} (the final rung's ensemble; best_output.png is its single pick)", highlight=False
        )


def refuse_resume_flags(args: argparse.Namespace, allowed: list[str]) -> None:
    """Refuse the flags a resumed run takes from its folder; `allowed` (and --log, where the command has it) may
    be given again."""
    given = [flag for dest, (flag, default) in args.resume_fixed.items() if getattr(args, dest, default) != default]
    if given:
        free = sorted(allowed) + (["--log"] if hasattr(args, "log") else [])
        raise DipsearchError(
            f"--resume continues the run with the problem, space and settings stored in {args.resume}; "
            f"drop {', '.join(given)} (only {', '.join(free[:-1])} and {free[-1]} may be given again)"
        )


# The searchers whose flags a module of this package declares (its register(subparsers)). The command line
# keeps this map, so that the library names no command-line module.
SEARCHER_COMMANDS = {"ga": "ga_cmd", "bayes": "bayes_cmd"}


def register(sub: argparse._SubParsersAction) -> None:
    import importlib

    from ..search.base import SEARCHERS, searcher_class

    parser = sub.add_parser(
        "search",
        help=f"architecture / hyperparameter search ({', '.join(SEARCHERS)})",
        description="Search DIP architectures and fit settings for one image.",
    )
    searchers = parser.add_subparsers(dest="searcher", metavar="SEARCHER", required=True)
    for name in SEARCHERS:
        if name in SEARCHER_COMMANDS:
            importlib.import_module(f".{SEARCHER_COMMANDS[name]}", __package__).register(searchers)
        else:
            register_generic(searchers, searcher_class(name))


# ---------------------------------------------------------------- searchers without a command-line module


def register_generic(sub: argparse._SubParsersAction, searcher: Any) -> None:
    """`dipsearch search NAME` for a searcher: the shared flags, one flag per settings field, --resume."""
    parser = sub.add_parser(
        searcher.name,
        help=searcher.summary,
        description=f"{searcher.summary[0].upper()}{searcher.summary[1:]}. Results in runs/search/<stamp>_"
        f"{searcher.name}/; a stopped run continues with --resume RUN_DIR.",
    )
    add_search_args(parser)
    group = parser.add_argument_group(searcher.name)
    for f in fields(searcher.settings_type()):
        flag = "--" + f.name.replace("_", "-")
        text = f.metadata.get("help", f"(default {f.default})")  # a settings field may word its own flag's help
        if f.type in ("bool", bool):
            group.add_argument(flag, action="store_true", help=text)
        else:
            kind = {"int": int, "float": float}.get(str(f.type).split(" ")[0], str)
            group.add_argument(flag, type=kind, metavar="N" if kind is int else "X", help=text)
    add_threads_flag(group)
    group.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a stopped or finished run from its folder (--trials: extend it); its config.toml decides "
        "the rest",
    )
    parser.set_defaults(func=generic_run, searcher_name=searcher.name)
    remember_resume_defaults(parser, GENERIC_RESUME_FREE)


GENERIC_RESUME_FREE = {"trials", "workers", "dask", "no_progress", "out"}


def generic_run(args: argparse.Namespace, console: Console) -> int:
    from ..search.base import get_searcher
    from ..search.prepare import no_winner

    searcher = get_searcher(args.searcher_name)
    runtime = runtime_from_args(args, console)
    runtime.check()
    names = [f.name for f in fields(searcher.settings_type())]
    try:
        if args.resume:
            refuse_resume_flags(args, [f"--{n.replace('_', '-')}" for n in GENERIC_RESUME_FREE])
            changes = {n: getattr(args, n) for n in names if n == "trials" and getattr(args, n) is not None}
            done = searcher.resume(args.resume, runtime, **changes)
        else:
            given = {n: getattr(args, n) for n in names if getattr(args, n) not in (None, False)}
            settings = searcher.settings_type()(**given)
            settings.check()
            done = searcher.start(recipe_from_args(args), spec_from_args(args, searcher.name, settings), runtime)
    except BaseException as err:
        continue_hint(err, console, searcher.name)
        raise
    report(done, console, f"{searcher.name} search")
    if not done.run.file("best_arch.toml").is_file():
        raise DipsearchError(no_winner(done.evaluations, done.run_dir))
    return 0


def report(done: Any, console: Console, title: str) -> None:
    """The closing tables of a search (its best candidates, the final rung, its scalar figures) and where to go
    next; `done` is a searcher's run object with setup, summary, evaluations, selection and run."""
    from ..fitting.progress import summary_table
    from ..search.display import top_table

    setup = done.setup
    scored = sorted(
        (e for e in done.evaluations if e.fitness is not None and not e.pruned),
        key=lambda e: (-e.search_value, e.index),
    )[:5]
    if scored:
        console.print(top_table(setup.space, [(e.genome, e) for e in scored], "best architectures"))
    if done.selection is not None:
        console.print(final_table(setup.space, done.selection))
    spec = setup.spec
    console.print(
        summary_table(f"{title}: {spec.fitness} fitness, {spec.iters} iterations per candidate", done.summary)
    )
    console.print(f"run folder: [bold]{done.run_dir}[/bold]", highlight=False)
    print_answer(console, done.run_dir)
    best_arch = done.run.file("best_arch.toml")
    if best_arch.is_file() and setup.recipe.rebuildable:
        console.print(refit_hint(problem_flags(setup.recipe), best_arch, setup.spec), highlight=False)
