"""`dipsearch search ga`: evolve a DIP architecture for one image; `--resume RUN_DIR` continues a killed run."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from ..errors import DipsearchError
from .names import CROSSOVERS, name_arguments
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

if TYPE_CHECKING:
    from rich.console import Console

    from ..problems.recipe import ProblemRecipe
    from ..search.ga import GAConfig
    from ..search.spec import SearchSpec

DEFAULTS = {"pop": 8, "gens": 5, "iters": 400, "space": "default"}
# Small enough for a few minutes on 2 CPU cores: 6 + 3 x 6 candidates at most, 200 iterations each, on the
# embedded 128 px image, over a space of networks no wider than 64 channels, two single-thread workers.
DEMO = {"pop": 6, "gens": 3, "iters": 200, "space": "demo", "workers": min(2, os.cpu_count() or 1), "final_iters": 1200}
RESUME_FREE = {"gens", "workers", "dask", "dask_timeout", "no_progress", "out"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "ga",
        help="genetic architecture search (DEAP)",
        description="Evolve a DIP architecture for one image: (mu + lambda) GA with tournament mating. "
        "Results in runs/search/<stamp>_ga/; a killed run continues with --resume RUN_DIR.",
    )
    add_search_args(parser)
    parser.set_defaults(func=run, iters=None, space=None)  # None: resolved below (differs under --demo)
    g = parser.add_argument_group("genetic algorithm")
    g.add_argument("--pop", type=int, metavar="N", help="population size mu (default 8; --demo 6)")
    g.add_argument("--offspring", type=int, metavar="N", help="children per generation lambda (default: --pop)")
    g.add_argument(
        "--gens",
        type=int,
        metavar="N",
        help="generations after the initial one (default 5; --demo 3); "
        "with --resume, a larger value extends a finished run",
    )
    g.add_argument(
        "--cxpb", type=float, default=0.4, help="probability that a child comes from crossover (default 0.4)"
    )
    g.add_argument(
        "--mutpb", type=float, default=0.6, help="probability that a child comes from mutation (default 0.6)"
    )
    g.add_argument("--tournament", type=int, default=3, metavar="K", help="tournament size for mating (default 3)")
    g.add_argument(
        "--crossover",
        choices=CROSSOVERS,
        default="level",
        help="level: one-point at level boundaries (default); uniform: gene by gene",
    )
    g.add_argument("--indpb", type=float, metavar="P", help="per-gene mutation probability (default: 2 / active genes)")
    g.add_argument(
        "--mutation-step",
        type=float,
        default=0.2,
        dest="mutation_step",
        metavar="S",
        help="Gaussian mutation step as a fraction of a numeric gene's (log) range (default 0.2)",
    )
    # The flag's earlier name, kept working for scripts; hidden from --help.
    g.add_argument("--mut-step", type=float, dest="mutation_step", help=argparse.SUPPRESS)
    g.add_argument(
        "--hof", type=int, default=5, metavar="N", help="hall-of-fame size, rows of the closing table (default 5)"
    )
    g.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads per fit (default 1 on CPU): CPU results depend on it, so a fixed value makes "
        "a seeded search bit-identical with any --workers or --dask; more threads only pay on a big CPU",
    )
    g.add_argument("--dask-timeout", type=float, default=10.0, metavar="S", help="seconds to reach --dask (default 10)")
    g.add_argument(
        "--resume",
        metavar="RUN_DIR",
        help="continue a killed or finished GA run from its folder; "
        "its config.toml decides everything but --workers, --dask, --no-progress and --gens (other flags "
        "given with it are refused)",
    )

    name_arguments(parser, mutation_step="--mutation-step")  # not its hidden alias --mut-step
    # What --resume takes from the run folder: a flag here that differs from its default is refused, not ignored.
    remember_resume_defaults(parser, RESUME_FREE)


def _demo_banner(recipe: ProblemRecipe, args: argparse.Namespace, ga: GAConfig) -> str:
    """What the demo will do, read from the problem and flags it will run with (--space, --crop, --sigma, ...)."""
    meta = recipe.build().meta
    _, h, w = meta["image_shape"]
    noise = "Gaussian sigma" if meta["noise"] == "gaussian" else f"{meta['noise']} noise level"
    return (
        f"denoise the embedded image at {w}x{h} px ({noise} {meta['level']:g}); GA with population {ga.pop}, "
        f"{ga.gens} generations, {args.iters} iterations per candidate, space {args.space}, {args.workers} "
        f"worker(s); fitness {args.fitness} (no ground truth used; the true PSNR is shown because the demo knows "
        "the clean image)"
    )


def _fresh(args: argparse.Namespace, console: Console) -> tuple[ProblemRecipe, SearchSpec]:
    from ..search.ga import GAConfig

    defaults = DEMO if args.demo else DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    ga = GAConfig(
        pop=args.pop,
        offspring=args.offspring,
        gens=args.gens,
        cxpb=args.cxpb,
        mutpb=args.mutpb,
        tournament=args.tournament,
        crossover=args.crossover,
        indpb=args.indpb,
        mutation_step=args.mutation_step,
        hof=args.hof,
        seed=args.seed,
    )
    ga.check()
    recipe = recipe_from_args(args)
    if args.demo:
        console.print(f"demo: {_demo_banner(recipe, args, ga)}", highlight=False, soft_wrap=True)
    return recipe, spec_from_args(args, "ga", ga)


def run(args: argparse.Namespace, console: Console) -> int:
    from ..fitting.progress import summary_table
    from ..search.display import top_table
    from ..search.ga import driver as ga_driver
    from ..search.prepare import no_winner

    if args.resume:
        refuse_resume_flags(args, [f"--{name.replace('_', '-')}" for name in RESUME_FREE])
        runtime = runtime_from_args(args, console)
        start = lambda: ga_driver.continue_run(args.resume, args.gens, runtime)  # noqa: E731
    else:
        runtime = runtime_from_args(args, console)
        runtime.check()
        recipe, spec = _fresh(args, console)
        start = lambda: ga_driver.start(recipe, spec, runtime)  # noqa: E731
    try:
        done = start()
    except BaseException as err:
        continue_hint(err, console, "ga")
        raise
    ga, result, run_dir = done.ga, done.outcome, done.run
    scored = [(genome, ev) for genome, ev in result.hall_of_fame[: ga.hof] if ev is not None and ev.fitness is not None]
    if scored:
        console.print(top_table(done.setup.space, scored, "best architectures (hall of fame)"))
    if result.selection is not None:
        console.print(final_table(done.setup.space, result.selection))
    shown = {
        k: result.summary.get(k)
        for k in (
            "best_fitness",
            "best_psnr",
            "screen_best_fitness",
            "screen_best_psnr",
            "default_fitness",
            "default_psnr",
            "final_default_score",
            "final_default_psnr",
            "evaluations",
            "failed",
            "generations",
            "seconds",
        )
    }
    spec = done.setup.spec
    console.print(
        summary_table(
            f"ga search: {spec.fitness} fitness, {spec.iters} iterations per candidate",
            {k: v for k, v in shown.items() if v is not None},
        )
    )
    console.print(f"run folder: [bold]{run_dir.path}[/bold]", highlight=False)
    if not scored or not run_dir.file("best_arch.toml").is_file():
        raise DipsearchError(no_winner(done.evaluations, run_dir.path))
    print_answer(console, run_dir.path)
    if done.setup.recipe.rebuildable:
        hint = refit_hint(problem_flags(done.setup.recipe), run_dir.file("best_arch.toml"), done.setup.spec)
        console.print(hint, highlight=False)
    return 0
