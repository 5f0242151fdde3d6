"""`dipsearch search {ga,bayes}`: the flags every searcher shares, and the group that holds them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from ..errors import DipsearchError
from ..evaluate import Candidate
from ..fitness import FITNESSES, make_fitness
from ..space import SearchSpace, find_space, load_space
from ..tasks import Problem
from .problem_args import add_problem_args, problem_from_args

SEARCHERS: list[Any] = []  # modules with register(subparsers); each searcher appends itself below


def add_search_args(parser: argparse.ArgumentParser, iters_default: int = 1200) -> None:
    add_problem_args(parser)
    group = parser.add_argument_group("search")
    group.add_argument("--space", default="default", metavar="PATH",
                       help="search-space TOML file, or a name in search_spaces/ (default: default)")
    group.add_argument("--iters", type=int, default=iters_default,
                       help=f"fit iterations per candidate (default {iters_default}; a space's iters gene overrides)")
    group.add_argument("--fitness", default="holdout",
                       help=f"how candidates are scored: {', '.join(FITNESSES)} (default holdout: no ground truth used)")
    group.add_argument("--eval-scale", type=float, default=1.0, metavar="S",
                       help="score candidates on a 1/2 or 1/4 subsampled image (cheaper proxy; default 1)")
    group.add_argument("--workers", type=int, metavar="N",
                       help="local worker processes (default: one per GPU, else 1 = in-process)")
    group.add_argument("--dask", metavar="ADDRESS", help="run evaluations on a Dask scheduler, e.g. tcp://host:8786")
    group.add_argument("--device", default="auto", help="device for each fit: auto, cpu, cuda, mps")
    group.add_argument("--out", default="runs", metavar="DIR", help="runs root folder (default ./runs)")
    group.add_argument("--init", metavar="RUN_DIR|weights.pt",
                       help="warm start: candidates of the same architecture as these weights start from them")
    group.add_argument("--no-progress", action="store_true", help="no live display (for logs)")


@dataclass
class SearchSetup:
    """What every searcher needs, resolved and validated before any run folder is created."""

    problem: Problem
    space: SearchSpace
    args: argparse.Namespace
    init_weights: Any = None  # the verified --init WeightsFile (dipsearch.variants.warmstart), if any

    def candidate(self, genome: dict[str, Any], index: int, **extra: Any) -> Candidate:
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
            index=index,
            **extra,
        )

    def config(self) -> dict[str, Any]:
        """The [search] and [problem] tables of config.toml (the searcher adds its own settings)."""
        a = self.args
        return {
            "problem": self.problem.meta,
            "search": {
                "space_file": self.space.source,
                "iters": a.iters,
                "fitness": a.fitness,
                "eval_scale": a.eval_scale,
                "seed": a.seed,
                "device": a.device,
                "workers": a.workers,
                "dask": a.dask,
                **({"init": str(self.init_weights.path.resolve())} if self.init_weights is not None else {}),
            },
        }


def search_setup(args: argparse.Namespace) -> SearchSetup:
    if args.iters < 1:
        raise DipsearchError(f"--iters must be >= 1, got {args.iters}")
    problem = problem_from_args(args)
    space = load_space(find_space(args.space))
    make_fitness(args.fitness, problem)  # unknown fitness, or psnr without --clean: fail before any work
    if args.eval_scale not in (1.0, 0.5, 0.25):
        raise DipsearchError(f"--eval-scale must be 1, 0.5 or 0.25, got {args.eval_scale}")
    init = None
    if getattr(args, "init", None):
        from ..variants.warmstart import load_weights_file

        init = load_weights_file(args.init)  # a missing or damaged file fails before any run folder exists
    return SearchSetup(problem, space, args, init)


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
