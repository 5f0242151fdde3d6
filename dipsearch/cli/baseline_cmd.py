"""`dipsearch baseline NAME`: restore one image with a classical method, saved as a run folder."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported when a command runs, not when the parser is built
    from rich.console import Console


def register(sub: argparse._SubParsersAction) -> None:
    from .names import BASELINE_TASKS as BASELINES
    from .problem_args import add_problem_args

    names = ", ".join(f"{n} ({'/'.join(tasks)})" for n, tasks in BASELINES.items())
    parser = sub.add_parser(
        "baseline",
        help="restore with a classical method (CBM3D, NLM, biharmonic, bicubic, Lanczos, Wiener, TV, zero-filled)",
        description=f"Restore one image with a classical baseline and save runs/baseline/<stamp>_<name>_<image>/. "
        f"Methods: {names}.",
    )
    parser.add_argument("name", metavar="NAME", help="the baseline: " + ", ".join(BASELINES))
    add_problem_args(parser)
    parser.add_argument("--out", default="runs", metavar="DIR", help="runs root folder (default ./runs)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, console: Console) -> int:
    from ..baselines import get_baseline
    from ..baselines.result import apply_baseline
    from ..fitting.progress import summary_table
    from ..store.runs import RunDir
    from .problem_args import problem_from_args, problem_tag

    problem = problem_from_args(args)
    get_baseline(args.name, problem.task).require()  # unknown, wrong task or missing package: before any folder
    image, summary = apply_baseline(args.name, problem)
    run_dir = RunDir.create(args.out, "baseline", f"{args.name}_{problem_tag(args)}")
    try:
        run_dir.write_toml("config.toml", {"baseline": {"name": args.name}, "problem": problem.meta})
        run_dir.write_versions("cpu")
        for name, picture in problem.pictures().items():  # observed.png and the task's own (kernel)
            run_dir.save_image(name, picture)
        if problem.clean is not None:
            run_dir.save_image("clean.png", problem.clean)
        run_dir.save_image("output.png", image)
        run_dir.write_json("summary.json", summary)
    except BaseException:
        run_dir.discard()
        raise
    console.print(summary_table(f"{problem.task}: baseline {args.name}", summary))
    console.print(f"run folder: [bold]{run_dir.path}[/bold]", soft_wrap=True, highlight=False)
    return 0
