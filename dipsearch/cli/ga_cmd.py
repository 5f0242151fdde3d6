"""`dipsearch search ga`: evolve a DIP architecture for one image; `--resume RUN_DIR` continues a killed run."""

from __future__ import annotations

import argparse
import hashlib
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DipsearchError
from .names import CROSSOVERS, DETECTORS
from .problem_args import problem_flags
from .rung_args import final_table
from .search_cmd import (SearchSetup, add_search_args, check_workers, no_winner, refuse_resume_flags,
                         remember_resume_defaults, search_setup)
from .stop_cmd import check_stop_name

if TYPE_CHECKING:
    from rich.console import Console

    from ..runs import RunDir
    from ..search.ga import GAConfig

DEFAULTS = {"pop": 8, "gens": 5, "iters": 400, "space": "default"}
# Small enough for a few minutes on 2 CPU cores: 6 + 3 x 6 candidates at most, 200 iterations each, on the
# embedded 128 px image, over a space of networks no wider than 64 channels, two single-thread workers.
DEMO = {"pop": 6, "gens": 3, "iters": 200, "space": "demo", "workers": min(2, os.cpu_count() or 1), "final_iters": 1200}
PROBLEM_KEYS = ("observation", "task", "clean", "noise", "sigma", "factor", "mask", "mask_ratio", "mask_kind", "crop",
                "seed", "demo")
SEARCH_KEYS = ("iters", "fitness", "eval_scale", "device", "final", "final_iters", "final_stop", "rungs", "eta",
               "final_margin")
RUNTIME_KEYS = ("workers", "dask", "dask_timeout", "no_progress", "out")  # may change when a run is resumed
SPACE_SNAPSHOT = "space.toml"
RESUME_FREE = {"gens", "workers", "dask", "dask_timeout", "no_progress", "out"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "ga", help="genetic architecture search (DEAP)",
        description="Evolve a DIP architecture for one image: (mu + lambda) GA with tournament mating. "
                    "Results in runs/search/<stamp>_ga/; a killed run continues with --resume RUN_DIR.")
    add_search_args(parser)
    parser.set_defaults(func=run, iters=None, space=None)  # None: resolved below (differs under --demo)
    g = parser.add_argument_group("genetic algorithm")
    g.add_argument("--pop", type=int, metavar="N", help="population size mu (default 8; --demo 6)")
    g.add_argument("--offspring", type=int, metavar="N", help="children per generation lambda (default: --pop)")
    g.add_argument("--gens", type=int, metavar="N", help="generations after the initial one (default 5; --demo 3); "
                   "with --resume, a larger value extends a finished run")
    g.add_argument("--cxpb", type=float, default=0.4, help="probability that a child comes from crossover (default 0.4)")
    g.add_argument("--mutpb", type=float, default=0.6, help="probability that a child comes from mutation (default 0.6)")
    g.add_argument("--tournament", type=int, default=3, metavar="K", help="tournament size for mating (default 3)")
    g.add_argument("--crossover", choices=CROSSOVERS, default="level",
                   help="level: one-point at level boundaries (default); uniform: gene by gene")
    g.add_argument("--indpb", type=float, metavar="P", help="per-gene mutation probability (default: 2 / active genes)")
    g.add_argument("--mut-step", type=float, default=0.2, dest="mut_step", metavar="S",
                   help="Gaussian mutation step as a fraction of a numeric gene's (log) range (default 0.2)")
    g.add_argument("--hof", type=int, default=5, metavar="N", help="hall-of-fame size, rows of the closing table (default 5)")
    g.add_argument("--threads", type=int, metavar="N",
                   help="torch threads per fit (default 1 on CPU): CPU results depend on it, so a fixed value makes "
                        "a seeded search bit-identical with any --workers or --dask; more threads only pay on a big CPU")
    g.add_argument("--dask-timeout", type=float, default=10.0, metavar="S", help="seconds to reach --dask (default 10)")
    g.add_argument("--resume", metavar="RUN_DIR", help="continue a killed or finished GA run from its folder; "
                   "its config.toml decides everything but --workers, --dask, --no-progress and --gens (other flags "
                   "given with it are refused)")
    from .stop_cmd import add_stop_args  # here, not at the top: stop_cmd imports fit_cmd, which is loaded first

    from .seeding_args import add_seeding_args

    add_seeding_args(parser)
    add_stop_args(parser)  # --stop DETECTOR: every candidate's fit stops online; its chosen output is scored
    # argparse has no public way to reword a borrowed flag's help; here it means something else than in `fit`
    parser._option_string_actions["--stop"].help = (f"stop every candidate's fit with a detector: {', '.join(DETECTORS)}"
                                                    " or none (default); the fitness scores the output it chose")
    # What --resume takes from the run folder: a flag here that differs from its default is refused, not ignored.
    remember_resume_defaults(parser, RESUME_FREE)


def _stop_spec(args: argparse.Namespace) -> dict[str, Any] | None:
    """Candidate.stop from the --stop flags (the same flags as `dipsearch fit --stop`)."""
    check_stop_name(args.stop or "none")
    if (args.stop or "none") == "none":
        return None
    sigma: Any = args.sure_sigma
    if sigma is not None and sigma != "estimate":
        try:
            sigma = float(sigma) / 255.0
        except ValueError:
            raise DipsearchError(f"--sure-sigma takes a number (0-255 scale) or 'estimate', got {sigma!r}") from None
    spec = {"detector": args.stop, "patience": args.patience, "delta": args.stop_delta, "indexing": args.stop_indexing,
            "window": args.stop_window, "fraction": args.holdout_fraction, "sigma": sigma}
    return {k: v for k, v in spec.items() if v is not None}


def _fresh(args: argparse.Namespace, console: Console) -> tuple[argparse.Namespace, GAConfig]:
    from ..search.ga import GAConfig

    defaults = DEMO if args.demo else DEFAULTS
    for name, value in defaults.items():
        if getattr(args, name, None) is None:
            setattr(args, name, value)
    ga = GAConfig(pop=args.pop, offspring=args.offspring, gens=args.gens, cxpb=args.cxpb, mutpb=args.mutpb,
                  tournament=args.tournament, crossover=args.crossover, indpb=args.indpb, sigma=args.mut_step,
                  hof=args.hof, seed=args.seed)
    ga.check()
    if args.demo:
        console.print(f"demo: denoise the embedded 128 px image (Gaussian sigma 25); GA with population {ga.pop}, "
                      f"{ga.gens} generations, {args.iters} iterations per candidate, space search_spaces/demo.toml, "
                      f"{args.workers} worker(s); fitness {args.fitness} (no ground truth used; the true PSNR is "
                      "shown because the demo knows the clean image)", highlight=False)
    return args, ga


def _resumed(args: argparse.Namespace, console: Console) -> tuple[argparse.Namespace, GAConfig, RunDir, dict[str, Any]]:
    from ..runs import RunDir
    from ..search.ga import GAConfig
    from ..tomlio import load_toml

    refuse_resume_flags(args, "--gens, --workers, --dask, --dask-timeout, --no-progress and --out")
    run_dir = RunDir.open(args.resume)
    config = load_toml(run_dir.file("config.toml"), "run configuration")
    if config.get("search", {}).get("searcher") != "ga" or "ga" not in config or not run_dir.file(SPACE_SNAPSHOT).is_file():
        raise DipsearchError(f"{args.resume} is not a GA search run folder (its config.toml has no [ga] table or "
                             f"it has no {SPACE_SNAPSHOT}); resume a folder made by `dipsearch search ga`")
    saved = config.get("args", {})
    ns = argparse.Namespace(**{k: saved.get(k) for k in PROBLEM_KEYS + SEARCH_KEYS})
    ns.demo = bool(ns.demo)
    if ns.task != "sr":
        ns.factor = None  # runs made before --factor was refused outside sr stored the default 4
    for name in RUNTIME_KEYS:
        setattr(ns, name, getattr(args, name))
    ns.space = str(run_dir.file(SPACE_SNAPSHOT))
    ga = GAConfig(**{f.name: config["ga"][f.name] for f in fields(GAConfig) if f.name in config["ga"]})
    if args.gens is not None:
        ga.gens = args.gens
    ga.check()
    return ns, ga, run_dir, config


def _threads(args: argparse.Namespace) -> int | None:
    from ..fit import resolve_device

    if args.threads is not None:
        if args.threads < 1:
            raise DipsearchError(f"--threads must be >= 1, got {args.threads}")
        return args.threads
    return 1 if resolve_device(args.device).type == "cpu" else None


def _fingerprint(setup: SearchSetup) -> str:
    return hashlib.sha256(setup.problem.observed.detach().cpu().numpy().tobytes()).hexdigest()[:16]


def _config(args: argparse.Namespace, setup: SearchSetup, ga: GAConfig, threads: int | None) -> dict[str, Any]:
    config = setup.config()
    config["search"].update(searcher="ga", threads=threads, space_snapshot=SPACE_SNAPSHOT)
    config["ga"] = asdict(ga)
    saved = {k: getattr(args, k) for k in PROBLEM_KEYS + SEARCH_KEYS}
    for name in ("observation", "clean", "mask"):
        if saved[name]:
            saved[name] = str(Path(saved[name]).resolve())
    config["args"] = saved
    config["resume"] = {"observed_sha256": _fingerprint(setup)}
    return config


def run(args: argparse.Namespace, console: Console) -> int:
    from ..evaluate import Candidate, stop_hook
    from ..executors import dask_executor, make_executor
    from ..fit import resolve_device
    from ..progress import summary_table
    from ..runs import RunDir
    from ..search.checkpoint import STATE
    from ..search.display import LiveDisplay, LogDisplay, top_table
    from ..search.ga import GASearch
    from ..search.rungs import rung_printer
    from ..search.record import EVALUATIONS, SearchRecord
    from ..space import find_space
    from ..tomlio import dumps_toml, load_toml

    check_workers(args.workers)
    if args.resume:
        args, ga, run_dir, saved = _resumed(args, console)
    else:
        args, ga = _fresh(args, console)
        run_dir, saved = None, None
    setup = search_setup(args)
    if setup.note:
        console.print(setup.note, highlight=False)
    if saved is not None:
        if saved.get("resume", {}).get("observed_sha256") != _fingerprint(setup):
            raise DipsearchError(f"the observation rebuilt from {run_dir.path}/config.toml differs from the one the run "
                                 "started with (was an image file changed?); start a new search instead")
        threads = saved["search"].get("threads")
        stop = saved.get("stop")
    else:
        threads = _threads(args)
        stop = _stop_spec(args)
    if stop is not None:
        stop_hook(stop, args.seed, setup.problem)  # a detector that cannot work here fails now, exit 2
    from ..preselect.seeding import load_initial, record_seeding, save_initial
    from .seeding_args import describe_seeding, starting_genomes

    initial, seeding = starting_genomes(args, setup, ga.pop) if run_dir is None else (load_initial(run_dir), None)
    if seeding:
        console.print(describe_seeding(seeding), highlight=False)
    executor = dask_executor(args.dask, args.dask_timeout) if args.dask else make_executor(args.workers)
    fresh = run_dir is None
    try:
        if fresh:
            run_dir = RunDir.create(args.out, "search", "ga")
            run_dir.write_text(SPACE_SNAPSHOT, dumps_toml(load_toml(find_space(args.space), "search-space file")))
            run_dir.write_toml("config.toml", {**_config(args, setup, ga, threads), "stop": stop})
            run_dir.write_versions(str(resolve_device(args.device)))
            if seeding:
                save_initial(run_dir, initial)
                record_seeding(run_dir, seeding)
        record = SearchRecord(run_dir, setup.space)

        def make(genome: dict[str, Any], index: int) -> Candidate:
            return setup.candidate(genome, index, threads=threads, stop=stop)

        display = LogDisplay(console) if args.no_progress else LiveDisplay(console, ga.gens)
        if not fresh:
            console.print(f"resuming {run_dir.path}: {len(record)} evaluations on record", highlight=False)
        search = GASearch(setup.space, make, record, executor, ga, display, plan=setup.plan(),
                          notify=rung_printer(console), initial=initial)
        with display:
            result = search.run()
        if seeding:
            record_seeding(run_dir, seeding)
    except BaseException:
        if fresh and run_dir is not None and not run_dir.file(EVALUATIONS).exists() and not run_dir.file(STATE).exists():
            run_dir.discard()
        elif run_dir is not None:
            console.print(f"continue with: dipsearch search ga --resume {run_dir.path}", highlight=False)
        raise
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    scored = [(genome, ev) for genome, ev in result.hall_of_fame[: ga.hof] if ev is not None and ev.fitness is not None]
    if scored:
        console.print(top_table(setup.space, scored, "best architectures (hall of fame)"))
    if result.selection is not None:
        console.print(final_table(setup.space, result.selection))
    shown = {k: result.summary.get(k) for k in ("best_fitness", "best_psnr", "screen_best_fitness", "screen_best_psnr",
                                                "default_fitness", "default_psnr", "final_default_score",
                                                "final_default_psnr", "evaluations", "failed", "generations", "seconds")}
    console.print(summary_table(f"ga search: {args.fitness} fitness, {args.iters} iterations per candidate",
                                {k: v for k, v in shown.items() if v is not None}))
    console.print(f"run folder: [bold]{run_dir.path}[/bold]", highlight=False)
    if not scored or not run_dir.file("best_arch.toml").is_file():
        raise DipsearchError(no_winner(list(record.cache.values()), run_dir.path))
    console.print(f"refit the winner: dipsearch fit {problem_flags(args)} --arch {run_dir.file('best_arch.toml')}",
                  highlight=False)
    return 0

