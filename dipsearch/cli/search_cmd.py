"""`dipsearch search {ga,bayes}`: the flags every searcher shares, and the group that holds them."""

from __future__ import annotations

import argparse
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import DipsearchError
from .fit_cmd import add_fast_flags
from .log_args import add_log_flag, wants_tensorboard
from .names import FITNESSES, name_arguments
from .problem_args import add_problem_args, recipe_from_args
from .rung_args import add_rung_args, plan_from_args

if TYPE_CHECKING:
    from rich.console import Console

    from ..search.setup import SearchSetup
    from ..search.spec import Runtime, SearchSpec

SEARCHERS: list[Any] = []  # modules with register(subparsers); each searcher appends itself below


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
    group.add_argument("--no-progress", action="store_true", help="no live display (for logs)")
    add_log_flag(group)
    add_rung_args(parser.add_argument_group("multi-fidelity selection"))
    name_arguments(parser, budgets="--rungs", margin="--final-margin")  # RungPlan's names


def eval_scale(text: str) -> float:
    """--eval-scale as a fraction ("1/2") or a decimal ("0.5")."""
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected 1, 1/2 or 1/4 (or 0.5, 0.25), got {text!r}") from None


def spec_from_args(args: argparse.Namespace, stop: Any = None, ga: Any = None, bayes: Any = None) -> SearchSpec:
    """The SearchSpec the search flags describe (validated when the search is set up on its problem)."""
    from ..search.spec import SearchSpec, Seeding

    return SearchSpec(
        space=args.space,
        iters=args.iters,
        fitness=args.fitness,
        eval_scale=args.eval_scale,
        seed=args.seed,
        stop=stop,
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
        ),
        ga=ga,
        bayes=bayes,
    )


def runtime_from_args(args: argparse.Namespace, console: Console) -> Runtime:
    from ..search.spec import Runtime

    return Runtime(
        workers=args.workers,
        dask=args.dask,
        dask_timeout=getattr(args, "dask_timeout", 10.0),
        out=args.out,
        progress=not args.no_progress,
        console=console,
        tensorboard=wants_tensorboard(args),
    )


def search_setup(args: argparse.Namespace) -> SearchSetup:
    """The flags' problem and spec, set up as a search would be (nothing is written)."""
    from ..search.setup import prepare

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
            if a.dest not in free | {"help", "func", "resume", "log"}  # logs may differ from start to resume
        }
    )


def refuse_resume_flags(args: argparse.Namespace, allowed: str) -> None:
    given = [flag for dest, (flag, default) in args.resume_fixed.items() if getattr(args, dest, default) != default]
    if given:
        raise DipsearchError(
            f"--resume continues the run with the problem, space and settings stored in {args.resume}; "
            f"drop {', '.join(given)} (only {allowed}, and --log, may be given again)"
        )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "search",
        help="architecture / hyperparameter search (ga, bayes)",
        description="Search DIP architectures and fit settings for one image.",
    )
    searchers = parser.add_subparsers(dest="searcher", metavar="SEARCHER", required=True)
    for module in SEARCHERS:
        module.register(searchers)


# Searchers register below the shared definitions they import (add_search_args, SearchSetup).
from . import bayes_cmd  # noqa: E402

SEARCHERS.append(bayes_cmd)
from . import ga_cmd  # noqa: E402

SEARCHERS.append(ga_cmd)
