"""`dipsearch restore`: search (or not), the final rung with online stopping, its ensemble; no ground truth used."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich is imported when a command runs, not when the parser is built
    from rich.console import Console
    from rich.table import Table


def register(sub: argparse._SubParsersAction) -> None:
    from .names import CHOOSERS, DETECTORS, RESTORE_BUDGETS
    from .problem_args import add_problem_args

    parser = sub.add_parser(
        "restore",
        help="the whole ground-truth-free pipeline: the default network or a search, refits with stopping, ensemble",
        description="Restore one image without ground truth: fit the space's default network (or the best "
        "candidates of a search scored on held-out pixels, the default among them) and refits of it with other "
        "seeds, at the full budget with online stopping, each on its own held-out pixels, and average their "
        "stopped outputs per pixel, weighted by inverse held-out MSE. Writes "
        "runs/restore/<stamp>_<image>/restored.png. With --clean, every stage is scored against it afterwards.",
    )
    add_problem_args(parser)
    g = parser.add_argument_group("restore")
    g.add_argument(
        "--search",
        default="none",
        help=f"how the architecture is chosen: {', '.join(CHOOSERS)} (default none: the space's default network, "
        "which with its restarts did better than a search's finalists on the benchmark)",
    )
    budgets = "; ".join(
        f"{n}: space {space}, GA {pop}+{gens}x{pop}, {trials} Bayes trials, {search_iters} "
        f"it per candidate, refit {iters} it"
        for n, (space, pop, gens, trials, search_iters, iters) in RESTORE_BUDGETS.items()
    )
    g.add_argument("--budget", default="auto", help=f"auto (gpu with CUDA, else cpu) or a preset: {budgets}")
    g.add_argument("--space", help="search space (overrides the budget's)")
    g.add_argument(
        "--arch",
        metavar="FILE",
        help="restore with this network: an architecture file (a search's best_arch.toml, a study's "
        "winner_arch.toml) with its [fit] settings; no --search",
    )
    g.add_argument(
        "--start-from",
        nargs="+",
        default=[],
        metavar="STUDY_DIR",
        dest="start_from",
        help="with --search: start the search from the best genomes of a study across images (`dipsearch study`)",
    )
    g.add_argument("--pop", type=int, help="GA population (overrides the budget's)")
    g.add_argument("--gens", type=int, help="GA generations (overrides the budget's)")
    g.add_argument("--trials", type=int, help="Bayes or random-search trials (overrides the budget's)")
    g.add_argument("--search-iters", type=int, dest="search_iters", help="iterations per search candidate")
    g.add_argument("--iters", type=int, help="iterations of the refit (online stopping usually ends it earlier)")
    g.add_argument(
        "--stop",
        default="auto",
        help=f"online stopping of the refit: {', '.join(DETECTORS)}, auto (the recommended stopping) or none "
        "(fixed budget, averaged output); default auto",
    )
    g.add_argument("--patience", type=int, metavar="P", help="stopping patience (default: the detector's)")
    g.add_argument(
        "--ensemble",
        type=int,
        metavar="K",
        help="members whose stopped outputs are averaged into the answer: without a search the default network "
        "and K - 1 refits of it with the next seeds; with one up to 3 finalists (the default among them) and "
        "refits of the pick for the rest; 1: the single pick (default: 4 without a search, 5 with one)",
    )
    g.add_argument(
        "--replicas",
        default="auto",
        metavar="auto|on|off",
        help="fit the members that share a network (the default and its restarts, the pick's restarts) as one "
        "batch: auto (on a GPU, when two or more share one and the memory estimate allows; on a CPU, off: no gain "
        "there; default), on, or off (one after another)",
    )
    g.add_argument("--workers", type=int, metavar="N", help="parallel search fits (default 1, in-process)")
    g.add_argument("--threads", type=int, metavar="N", help="torch threads for the refits (default: torch's)")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    g.add_argument("--out", default="runs", metavar="DIR", help="runs root folder (default ./runs)")
    g.add_argument("--no-report", action="store_true", help="do not write report.html")
    from .log_args import add_log_flag

    add_log_flag(g)
    parser.set_defaults(func=run, uses_optuna=True)  # the CLI quietens Optuna's logging (cli.main)
    from .names import name_arguments

    name_arguments(parser, final_iters="--iters", final_stop="--stop")  # the final rung is restore's refit


def settings_from_args(args: argparse.Namespace):
    from ..pipelines.restore import RestoreSettings
    from .log_args import wants_tensorboard

    keys = (
        "search",
        "budget",
        "space",
        "arch",
        "pop",
        "gens",
        "trials",
        "search_iters",
        "iters",
        "stop",
        "patience",
        "ensemble",
        "seed",
        "device",
        "workers",
        "replicas",
    )
    return RestoreSettings(
        **{k: getattr(args, k) for k in keys}, start_from=list(args.start_from), tensorboard=wants_tensorboard(args)
    )


def stage_table(stages, clean: bool = True) -> Table:
    """Each stage's stop (iters), held-out fitness and ensemble weight; with a clean image its true PSNR and SSIM."""
    from rich.table import Table

    scored = " (true PSNR / SSIM: scored after the fact, never used)" if clean else ""
    table = Table(title="stages" + scored)
    columns = ("stage", "what", "iters", "fitness", "weight", *(("PSNR", "SSIM") if clean else ()))
    for col in columns:
        table.add_column(col, justify="left" if col in ("stage", "what") else "right")
    fmt = lambda v, d: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    for st in stages:
        row = [st.stage, st.description, fmt(st.iters, 0), fmt(st.fitness, 2), fmt(st.weight, 3)]
        table.add_row(*row, *((fmt(st.psnr, 2), fmt(st.ssim, 4)) if clean else ()))
    return table


def set_threads(threads: int | None) -> None:
    """--threads: torch's intra-op threads for this process (CPU results depend on it)."""
    if threads is not None:
        import torch

        from ..errors import DipsearchError

        if threads < 1:
            raise DipsearchError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)


def discarded_line(err: BaseException, members: int) -> str:
    """What an interrupted restore lost: its folder is removed (a restore does not resume), and the fits that had
    finished in it are named, so that the cost of stopping it is plain."""
    folder, finished, candidates = getattr(err, "discarded", (None, 0, 0))
    if folder is None:
        return "interrupted before the run folder was made: nothing to discard"
    searched = f" and {candidates} search candidate(s)" if candidates else ""
    return (
        f"interrupted: discarded {folder} with {finished} of {members} ensemble member(s){searched} finished "
        "(restore does not resume; run the command again to start over)"
    )


def run(args: argparse.Namespace, console: Console) -> int:
    import sys

    from ..pipelines.restore import Pipeline
    from .interrupts import exit_status, terminated_as_interrupt
    from .problem_args import problem_from_args, problem_tag

    set_threads(args.threads)
    problem = problem_from_args(args)
    pipeline = Pipeline(problem, settings_from_args(args), console)  # every bad flag fails here, before any folder
    with terminated_as_interrupt() as received:
        try:
            result = pipeline.run(args.out, problem_tag(args))
        except KeyboardInterrupt as err:
            print(discarded_line(err, pipeline.k), file=sys.stderr)
            return exit_status(received)
    console.print(stage_table(result.stages, problem.clean is not None))
    if not args.no_report:
        from ..pipelines.report import write_report

        write_report(result.run.path)
    console.print(f"restored image: [bold]{result.run.file('restored.png')}[/bold]", soft_wrap=True, highlight=False)
    return 0
