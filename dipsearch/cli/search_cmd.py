"""`dipsearch search {ga,bayes}`: the flags every searcher shares, and the group that holds them."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any

from ..errors import DipsearchError
from .fit_cmd import add_fast_flags, check_fit_settings, fast_settings
from .names import FITNESSES
from .problem_args import add_problem_args, problem_from_args
from .rung_args import add_rung_args, default_eval_scale, plan_from_args

if TYPE_CHECKING:
    from ..evaluate import Candidate
    from ..space import SearchSpace
    from ..tasks import Problem

SEARCHERS: list[Any] = []  # modules with register(subparsers); each searcher appends itself below


def add_search_args(parser: argparse.ArgumentParser, iters_default: int = 400) -> None:
    add_problem_args(parser)
    group = parser.add_argument_group("search")
    group.add_argument("--space", default="default", metavar="PATH",
                       help="search-space TOML file, or a name in search_spaces/ (default: default)")
    group.add_argument("--iters", type=int, default=iters_default,
                       help=f"fit iterations per candidate (default {iters_default}; a space's iters gene overrides)")
    group.add_argument("--fitness", default="holdout",
                       help=f"how candidates are scored: {', '.join(FITNESSES)} (default holdout: no ground truth used)")
    group.add_argument("--eval-scale", type=eval_scale, metavar="S",
                       help="screen candidates on a 1/2 or 1/4 subsampled image, given as 1/2 or 0.5, 1/4 or 0.25 "
                            "(default 0.5 where the task and image allow it, else 1: the best-predicting cheap score "
                            "of bench/fidelity.py)")
    group.add_argument("--workers", type=int, metavar="N",
                       help="local worker processes, dealt to the GPUs round-robin: N on one GPU = N concurrent fits "
                       "(default: one per GPU, else 1 = in-process)")
    group.add_argument("--dask", metavar="ADDRESS", help="run evaluations on a Dask scheduler, e.g. tcp://host:8786")
    group.add_argument("--device", default="auto", help="device for each fit: auto, cpu, cuda, mps")
    add_fast_flags(group)
    group.add_argument("--out", default="runs", metavar="DIR", help="runs root folder (default ./runs)")
    group.add_argument("--init", metavar="RUN_DIR|weights.pt",
                       help="warm start: candidates of the same architecture as these weights start from them")
    group.add_argument("--no-progress", action="store_true", help="no live display (for logs)")
    add_rung_args(parser.add_argument_group("multi-fidelity selection"))


def eval_scale(text: str) -> float:
    """--eval-scale as a fraction ("1/2") or a decimal ("0.5")."""
    try:
        return float(Fraction(text.strip()))
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"expected 1, 1/2 or 1/4 (or 0.5, 0.25), got {text!r}") from None


@dataclass
class SearchSetup:
    """What every searcher needs, resolved and validated before any run folder is created."""

    problem: Problem
    space: SearchSpace
    args: argparse.Namespace
    note: str | None = None  # how the space was cut down to the networks that fit the image, for the user
    init_weights: Any = None  # the verified --init WeightsFile (dipsearch.variants.warmstart), if any

    def candidate(self, genome: dict[str, Any], index: int, **extra: Any) -> Candidate:
        from ..evaluate import Candidate

        arch = self.space.decode(genome)
        if self.init_weights is not None:
            from ..variants.warmstart import arch_mismatch

            if arch_mismatch(self.init_weights, arch, self.problem.image_shape[0]) is None:
                extra.setdefault("init", str(self.init_weights.path))
        return Candidate(
            genome=genome,
            arch=arch,
            problem=self.problem,
            iters=self.args.iters,
            seed=self.args.seed,
            fitness=self.args.fitness,
            fit_settings=self.space.fit_settings(genome),
            scale=self.args.eval_scale,
            device=self.args.device,
            fit_options=fast_settings(self.args),
            index=index,
            **extra,
        )

    def plan(self):
        """The multi-fidelity rung plan (dipsearch.search.rungs.RungPlan), None with --final 0."""
        return plan_from_args(self.args)

    def config(self) -> dict[str, Any]:
        """The [search], [problem] and [rungs] tables of config.toml (the searcher adds its own settings)."""
        a = self.args
        plan = self.plan()
        return {
            "rungs": plan.to_dict() if plan else {"final": 0},
            "problem": self.problem.meta,
            "search": {
                "space_file": self.space.source,
                "iters": a.iters,
                "fitness": a.fitness,
                "eval_scale": a.eval_scale,
                "seed": a.seed,
                "device": a.device,
                **fast_settings(a),
                "workers": a.workers,
                "dask": a.dask,
                **({"init": str(self.init_weights.path.resolve())} if self.init_weights is not None else {}),
            },
        }


def remember_resume_defaults(parser: argparse.ArgumentParser, free: set[str]) -> None:
    """Record every flag's default, so that --resume can refuse the flags its run folder decides."""
    parser.set_defaults(resume_fixed={a.dest: (a.option_strings[0] if a.option_strings else a.dest.upper(), a.default)
                                      for a in parser._actions if a.dest not in free | {"help", "func", "resume"}})


def refuse_resume_flags(args: argparse.Namespace, allowed: str) -> None:
    given = [flag for dest, (flag, default) in args.resume_fixed.items() if getattr(args, dest, default) != default]
    if given:
        raise DipsearchError(f"--resume continues the run with the problem, space and settings stored in {args.resume}; "
                             f"drop {', '.join(given)} (only {allowed} may be given again)")


def no_winner(evaluations: list[Any], run_path: Any) -> str:
    """Why a search has no winner: its evaluations failed (the most common error is the likely cause) or were pruned."""
    errors = [str(e.error).strip().splitlines()[-1] for e in evaluations if e.fitness is None and e.error]
    pruned = sum(1 for e in evaluations if e.pruned)
    parts = []
    if errors:
        common = max(set(errors), key=errors.count)
        parts.append(f"{len(errors)} failed ({errors.count(common)} with: {common})")
    if pruned:
        parts.append(f"{pruned} were pruned")
    return (f"the search has no winner: of its {len(evaluations)} evaluations {' and '.join(parts) or 'none finished'}; "
            f"the log is in {run_path}")


def check_workers(workers: int | None) -> None:
    if workers is not None and workers < 1:
        raise DipsearchError(f"--workers must be >= 1, got {workers}")


def search_setup(args: argparse.Namespace) -> SearchSetup:
    from ..fitness import make_fitness
    from ..space import find_space, load_space

    if args.iters < 1:
        raise DipsearchError(f"--iters must be >= 1, got {args.iters}")
    check_workers(args.workers)
    problem = problem_from_args(args)
    space = load_space(find_space(args.space))
    if not space.genes:
        raise DipsearchError(f"{space.source} declares no gene to search (no [genes.*] or [levels.*] table); "
                             "add the genes to vary, or fit one network with `dipsearch fit --space/--arch`")
    check_fit_settings(space.fixed, f"in [fixed] of {space.source}")
    make_fitness(args.fitness, problem)  # unknown fitness, or psnr without --clean: fail before any work
    if args.eval_scale is None:
        args.eval_scale = default_eval_scale(problem, space)
    if args.eval_scale not in (1.0, 0.5, 0.25):
        raise DipsearchError(f"--eval-scale must be 1, 0.5 or 0.25, got {args.eval_scale:g}")
    if args.eval_scale != 1 and problem.task == "sr":
        raise DipsearchError("--eval-scale is for denoising and inpainting; super-resolution candidates are scored "
                             "at full scale (drop --eval-scale)")
    if getattr(args, "dask", None) is None:  # a Dask worker's device is not this machine's
        from ..engine import check_fast_settings
        from ..fit import FitConfig, resolve_device

        check_fast_settings(FitConfig(**fast_settings(args)), resolve_device(args.device))
    plan_from_args(args, problem)  # bad --final/--rungs/--final-stop: fail before any work
    space, note = fit_space_to_image(space, problem, args.eval_scale)
    if not space.genes:
        raise DipsearchError(f"{note}; that leaves a single network and nothing to search: use a larger image")
    init = None
    if getattr(args, "init", None):
        from ..variants.warmstart import load_weights_file

        init = load_weights_file(args.init)  # a missing or damaged file fails before any run folder exists
    return SearchSetup(problem, space, args, note, init)


def fit_space_to_image(space: SearchSpace, problem: Problem, scale: float = 1.0) -> tuple[SearchSpace, str | None]:
    """The space cut down to the networks that can fit the image the candidates are scored on."""
    from types import SimpleNamespace

    from ..fit import check_size

    c, h, w = problem.image_shape
    if scale != 1:  # candidates see every (1/scale)-th pixel
        stride = round(1 / scale)
        h, w = math.ceil(h / stride), math.ceil(w / stride)
    scored = SimpleNamespace(image_shape=(c, h, w))  # all the size rule reads of a problem

    def refuse(spec: Any) -> str | None:
        try:
            check_size(scored, spec)
        except DipsearchError as err:
            return str(err)
        return None

    where = f"{w}x{h} image" + (f" the candidates see (the {problem.image_shape[2]}x{problem.image_shape[1]} image "
                                f"at --eval-scale {scale:g})" if scale != 1 else "")
    return space.fitting(refuse, where)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("search", help="architecture / hyperparameter search (ga, bayes)",
                            description="Search DIP architectures and fit settings for one image.")
    searchers = parser.add_subparsers(dest="searcher", metavar="SEARCHER", required=True)
    for module in SEARCHERS:
        module.register(searchers)


# Searchers register below the shared definitions they import (add_search_args, SearchSetup).
from . import bayes_cmd  # noqa: E402

SEARCHERS.append(bayes_cmd)
from . import ga_cmd  # noqa: E402
SEARCHERS.append(ga_cmd)
