"""`dipsearch study IMAGES...`: a supervised study across clean images; its pick becomes a space's default."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # rich and the study package are imported when the command runs
    from rich.console import Console


def register(sub: argparse._SubParsersAction) -> None:
    from .names import NOISE_KINDS, RESTORE_BUDGETS, TASKS

    parser = sub.add_parser(
        "study",
        help="a study across clean images: the network (and fit settings) restore's members should fit",
        description="Fit each trial's genome of the space on every clean image x noise level with restore's member "
        "settings (holdout split, auto stopping, the member's budget), score it by the true PSNR of the stopped "
        "output, prune trials that lose to the best (Wilcoxon signed-rank test over the instances) and write the "
        "pick as winner_arch.toml (fit --arch, restore --arch) and winner_space.toml (restore --space, every "
        "search). Results in runs/study/<stamp>_<task>_<instances>/; a stopped study continues with --resume.",
    )
    parser.add_argument("images", nargs="*", metavar="IMAGES", help="clean images, or folders of them")
    g = parser.add_argument_group("instances")
    g.add_argument(
        "--sigmas",
        metavar="S,S,...",
        help="noise levels, comma-separated (gaussian sigma on the 0-255 scale, e.g. 15,25,50; default: the "
        "noise kind's default level)",
    )
    g.add_argument("--crop", type=int, default=128, metavar="N", help="centre-crop every image to N x N (default 128)")
    g.add_argument("--task", choices=TASKS, default="denoise", help="the restoration task (default denoise)")
    g.add_argument("--noise", choices=NOISE_KINDS, default="gaussian", help="noise model (default gaussian)")
    g.add_argument("--factor", type=int, help="super-resolution factor (--task sr)")
    g.add_argument("--mask-ratio", type=float, metavar="R", help="inpainting: random mask with this fraction missing")
    g.add_argument("--mask-kind", choices=("text", "region"), help="inpainting: a synthetic text or region mask")
    g.add_argument("--kernel", choices=("gaussian", "motion"), help="deblurring kernel")
    g.add_argument("--kernel-width", type=float, metavar="W", help="deblurring kernel width in px")
    g.add_argument("--acceleration", type=float, metavar="A", help="cs-mri: keep 1/A of the k-space columns")
    g.add_argument("--seed", type=int, default=0, help="seed of the synthesised corruptions and of every fit")
    s = parser.add_argument_group("study")
    spaces = ", ".join(f"{name}: {space}" for name, (space, *_rest) in RESTORE_BUDGETS.items())
    s.add_argument("--space", help=f"search-space TOML or name (default: restore's, {spaces})")
    s.add_argument(
        "--trials", type=int, metavar="N", help="trials in the study (default 20; with --resume: a new target)"
    )
    iters = ", ".join(f"{name}: {budget[-1]}" for name, budget in RESTORE_BUDGETS.items())
    s.add_argument("--iters", type=int, metavar="N", help=f"each fit's budget (default: restore's member's, {iters})")
    s.add_argument(
        "--objective",
        choices=("quality", "pareto"),
        default="quality",
        help="quality: the mean true PSNR (pruned by the Wilcoxon test); pareto: mean PSNR and seconds per fit, "
        "no pruning (default quality)",
    )
    s.add_argument(
        "--max-cost",
        type=float,
        metavar="X",
        help="the pick costs at most X times the space default's seconds per fit (default: no cap)",
    )
    s.add_argument("--sampler", choices=("tpe", "random"), default="tpe", help="Optuna sampler (default tpe)")
    s.add_argument(
        "--p-threshold",
        type=float,
        default=0.1,
        metavar="P",
        help="the Wilcoxon pruner's p-value for 'worse than the best trial' (default 0.1)",
    )
    s.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    s.add_argument("--threads", type=int, metavar="N", help="torch threads per fit (default 1 on a CPU)")
    s.add_argument("--workers", type=int, metavar="N", help="trials fitted at once by local worker processes")
    s.add_argument(
        "--storage",
        metavar="URL",
        help="Optuna storage: a journal file path or a database URL (default: a journal file in the run folder); "
        "SQLite is not for many parallel writers",
    )
    s.add_argument("--out", default="runs", metavar="DIR", help="runs root folder (default ./runs)")
    s.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a stopped study (finished fits are reused); only --trials and --workers may be given again",
    )
    s.add_argument("--no-progress", action="store_true", help="lines only, no live bars (the default when piped)")
    free = {"images", "trials", "workers", "resume", "no_progress", "out", "help"}
    fixed = {
        a.dest: (a.option_strings[0], a.default) for a in parser._actions if a.option_strings and a.dest not in free
    }
    parser.set_defaults(func=run, uses_optuna=True, resume_fixed=fixed)


def settings_from_args(args: argparse.Namespace):
    from ..study import StudySettings
    from ..study.instances import parse_sigmas

    sigmas = [None] if args.sigmas is None else parse_sigmas(args.sigmas)
    keys = (
        "images crop task noise factor mask_ratio mask_kind kernel kernel_width acceleration seed space iters "
        "objective max_cost sampler p_threshold device threads workers storage"
    ).split()
    trials = {} if args.trials is None else {"trials": args.trials}
    return StudySettings(sigmas=sigmas, **trials, **{k: getattr(args, k) for k in keys})


def run(args: argparse.Namespace, console: Console) -> int:
    from ..errors import DipsearchError
    from ..study import resume_study, run_study

    live = not args.no_progress and console.is_terminal
    try:
        if args.resume:
            given = [flag for dest, (flag, default) in args.resume_fixed.items() if getattr(args, dest) != default]
            if args.images or given:
                what = ", ".join((["the images"] if args.images else []) + given)
                raise DipsearchError(
                    f"--resume continues the study stored in {args.resume} with its images and settings; drop "
                    f"{what} (only --trials and --workers may be given again)"
                )
            result = resume_study(
                args.resume,
                trials=args.trials,
                workers=args.workers,
                console=console,
                progress=live,
            )
        else:
            result = run_study(settings_from_args(args), args.out, console, live)
    except KeyboardInterrupt as err:
        folder = getattr(err, "run_dir", None)
        if folder is not None:
            console.print(f"continue with: dipsearch study --resume {folder}", highlight=False, soft_wrap=True)
        raise
    _report(result, console)
    return 0


def _report(result, console: Console) -> None:
    from rich.table import Table

    from ..fitting.progress import summary_table
    from ..study import WINNER_ARCH, WINNER_SPACE

    if result.comparison:
        table = Table(title="the pick against the space default (true PSNR, dB; seconds per fit)")
        for col in ("instance", "default", "pick", "gain", "default s", "pick s"):
            table.add_column(col, justify="left" if col == "instance" else "right")
        for r in result.comparison:
            table.add_row(
                r["instance"],
                f"{r['default_psnr']:.2f}",
                f"{r['winner_psnr']:.2f}",
                f"{r['gain_db']:+.2f}",
                f"{r['default_seconds']:.0f}",
                f"{r['winner_seconds']:.0f}",
            )
        console.print(table)
    console.print(summary_table("study", result.summary))
    run = result.run_dir
    console.print(f"run folder: [bold]{run}[/bold]", highlight=False, soft_wrap=True)
    if (run / WINNER_SPACE).is_file():
        console.print(
            f"restore with the pick: dipsearch restore IMAGE --space {run / WINNER_SPACE}  (or --arch "
            f"{run / WINNER_ARCH}); start a search from the study: --start-from {run}",
            highlight=False,
            soft_wrap=True,
        )
