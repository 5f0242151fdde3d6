"""`dipsearch preselect`: rank many candidates of a space without training, then short-fit the best few."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .names import DEFAULT_PRESELECT_METRIC as DEFAULT_METRIC
from .names import PRESELECT_METRICS as METRICS
from .problem_args import add_problem_args, problem_flags, problem_from_args, problem_tag

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

# The demo scores the cheap demo space on the embedded 128 px image and fits the best three briefly.
DEMO = {"space": "demo", "candidates": 24, "keep": 3, "fit_iters": 150}
DEFAULTS = {"space": "nasdip", "candidates": 64, "keep": 8, "fit_iters": 0}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "preselect",
        help="training-free pre-selection of architectures (ISNAS-DIP metrics)",
        description="Sample candidates of a space, score each from forward passes of its untrained network "
        "(lower = its output's spectrum is closer to the observation's), keep the best, optionally "
        "short-fit them with the search fitness, and pick. Results in runs/preselect/<stamp>_<tag>/.",
    )
    add_problem_args(parser)
    g = parser.add_argument_group("pre-selection")
    g.add_argument("--space", metavar="PATH", help="search-space file or name (default nasdip; --demo: demo)")
    g.add_argument("--candidates", type=int, metavar="N", help="distinct networks to sample and score (default 64)")
    g.add_argument("--keep", type=int, metavar="K", help="how many of the best-scored to keep (default 8)")
    g.add_argument(
        "--metric", default=DEFAULT_METRIC, help=f"ranking metric: {', '.join(METRICS)} (default {DEFAULT_METRIC})"
    )
    g.add_argument(
        "--fit-iters",
        type=int,
        metavar="N",
        dest="fit_iters",
        help="short-fit each kept candidate for N iterations and pick the best fitness "
        "(default 0: no fit, the best score is the pick; --demo 150)",
    )
    g.add_argument("--fitness", default="holdout", help="fitness of the short fits (default holdout: no ground truth)")
    g.add_argument("--inputs", type=int, default=4, metavar="N", help="random inputs per candidate (default 4)")
    g.add_argument("--device", default="auto", help="device for scoring and fits: auto, cpu, cuda, mps")
    g.add_argument("--out", default="runs", metavar="DIR", help="runs root folder (default ./runs)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from ..fitting.fit import resolve_device
    from ..fitting.progress import fit_progress, summary_table
    from ..nets.space import find_space, load_space
    from ..preselect.pipeline import PreselectConfig, preselect
    from ..preselect.record import write_run
    from ..store.runs import RunDir

    for name, value in (DEMO if args.demo else DEFAULTS).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    device = resolve_device(args.device)
    config = PreselectConfig(
        candidates=args.candidates,
        keep=args.keep,
        metric=args.metric,
        fit_iters=args.fit_iters,
        fitness=args.fitness,
        inputs=args.inputs,
        seed=args.seed,
        device=args.device,
        threads=1 if device.type == "cpu" else None,
    )
    config.check()
    problem = problem_from_args(args)
    space = load_space(find_space(args.space))
    config.check(problem)
    with fit_progress(console, transient=True) as progress:
        scoring = progress.add_task("scoring", total=args.candidates, status="", rate="", visible=not args.no_progress)
        fitting = progress.add_task(
            "fitting kept",
            total=args.keep if args.fit_iters else 0,
            status="",
            rate="",
            visible=not args.no_progress and bool(args.fit_iters),
        )

        def fitted(index: int, ev: Any) -> None:
            progress.advance(fitting)
            if args.no_progress:
                console.print(f"fitted #{index}: fitness {ev.fitness}, true PSNR {ev.psnr}", highlight=False)

        result = preselect(problem, space, config, on_scored=lambda i: progress.advance(scoring), on_fitted=fitted)
    run_dir = RunDir.create(args.out, "preselect", problem_tag(args))
    try:
        run_dir.write_toml(
            "config.toml",
            {
                "problem": problem.meta,
                "preselect": {**{k: v for k, v in vars(config).items() if v is not None}, "space_file": space.source},
            },
        )
        run_dir.write_versions(str(device))
        summary = write_run(run_dir, space, result, problem.image_shape[0], args.fitness)
    except BaseException:
        run_dir.discard()
        raise
    console.print(_table(result, space, args.metric))
    shown = {k: v for k, v in summary.items() if v is not None}
    console.print(summary_table(f"preselect: {args.metric}, top {args.keep} of {len(result.candidates)}", shown))
    console.print(f"run folder: [bold]{run_dir.path}[/bold]", soft_wrap=True, highlight=False)
    console.print(
        f"refit the pick: dipsearch fit {problem_flags(args)} --arch {run_dir.file('best_arch.toml')}",
        soft_wrap=True,
        highlight=False,
    )
    return 0


def _table(result, space, metric: str) -> Table:
    from rich.table import Table

    from ..search.display import describe

    table = Table(title=f"kept candidates, best {metric} first", header_style="bold")
    for name in ("rank", "#", metric, "fitness dB", "true PSNR", "architecture"):
        table.add_column(name, justify="left" if name == "architecture" else "right")
    for rank, index in enumerate(result.kept, 1):
        c = result.candidates[index]
        ev = result.evaluations.get(index)
        db = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        mark = " *" if index == result.best else ""
        table.add_row(
            f"{rank}{mark}",
            str(index),
            f"{c.scores[metric]:.3f}",
            db(ev and ev.fitness),
            db(ev and ev.psnr),
            describe(space, c.genome),
        )
    return table
