"""The flags that decide where a search starts: --preselect N and --seed-from RUN_DIR... (ga and bayes)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from .names import DEFAULT_PRESELECT_METRIC as DEFAULT_METRIC
from .names import PRESELECT_METRICS as METRICS
from .names import name_arguments

if TYPE_CHECKING:
    from ..space import Genome
    from .search_cmd import SearchSetup


def add_seeding_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("starting points")
    g.add_argument("--preselect", type=int, default=0, metavar="N",
                   help="score N random candidates without training (training-free metric) and start from the best "
                        "(ga: they fill the initial population; bayes: they are the first trials)")
    g.add_argument("--preselect-keep", type=int, metavar="K", dest="preselect_keep",
                   help="how many of the best-scored to use (default: ga the whole initial population, "
                        "bayes a quarter of --trials)")
    g.add_argument("--preselect-metric", default=DEFAULT_METRIC, metavar="NAME", dest="preselect_metric",
                   help=f"{', '.join(METRICS)} (default {DEFAULT_METRIC})")
    g.add_argument("--seed-from", nargs="+", default=[], metavar="RUN_DIR", dest="seed_from",
                   help="start from the winners (best_arch.toml [genome]) of earlier searches or pre-selections "
                        "over the same space: run folders or glob patterns (quote them)")
    name_arguments(parser, keep="--preselect-keep")  # SeedPlan.keep


def starting_genomes(args: argparse.Namespace, setup: SearchSetup, room: int,
                     keep: int | None = None) -> tuple[list[Genome], dict[str, Any] | None]:
    """The searcher's first genomes and their record; ([], None) when neither flag is given."""
    from ..fit import resolve_device
    from ..preselect.seeding import SeedPlan, initial_genomes

    if args.preselect_keep is None and keep is not None:
        keep = min(keep, args.preselect) if args.preselect else None
    plan = SeedPlan(preselect=args.preselect, keep=args.preselect_keep if args.preselect_keep is not None else keep,
                    metric=args.preselect_metric, seed_from=list(args.seed_from))
    plan.check()
    if not plan.active:
        return [], None
    device = resolve_device(setup.args.device)
    return initial_genomes(setup.space, setup.problem, plan, room, seed=setup.args.seed, device=str(device),
                           threads=1 if device.type == "cpu" else None)


def describe_seeding(info: dict[str, Any], with_default: bool = True) -> str:
    parts = ["the default genome"] if with_default else []
    if info["from_archive"]:
        parts.append(f"{info['from_archive']} winner(s) of {len(info['seed_from_folders'])} earlier run(s)")
    if info["preselect"]:
        parts.append(f"the {info['preselected']} best by {info['metric']} of {info['scored']} scored samples")
    return "starting from " + ", ".join(parts)
