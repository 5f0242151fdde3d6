"""The flags that decide where a search starts: --preselect N, --seed-from RUN_DIR... and --start-from STUDY_DIR."""

from __future__ import annotations

import argparse

from .names import DEFAULT_PRESELECT_METRIC as DEFAULT_METRIC
from .names import PRESELECT_METRICS as METRICS
from .names import name_arguments


def add_seeding_args(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("starting points")
    g.add_argument(
        "--preselect",
        type=int,
        default=0,
        metavar="N",
        help="score N random candidates without training (training-free metric) and start from the best "
        "(ga: they fill the initial population; bayes: they are the first trials)",
    )
    g.add_argument(
        "--preselect-keep",
        type=int,
        metavar="K",
        dest="preselect_keep",
        help="how many of the best-scored to use (default: ga the whole initial population, "
        "bayes a quarter of --trials)",
    )
    g.add_argument(
        "--preselect-metric",
        default=DEFAULT_METRIC,
        metavar="NAME",
        dest="preselect_metric",
        help=f"{', '.join(METRICS)} (default {DEFAULT_METRIC})",
    )
    g.add_argument(
        "--seed-from",
        nargs="+",
        default=[],
        metavar="RUN_DIR",
        dest="seed_from",
        help="start from the winners (best_arch.toml [genome]) of earlier searches or pre-selections "
        "over the same space: run folders or glob patterns (quote them)",
    )
    g.add_argument(
        "--start-from",
        nargs="+",
        default=[],
        metavar="STUDY_DIR",
        dest="start_from",
        help="start from the best genomes of a study across images (`dipsearch study`'s run folder) over the same "
        "space; they follow the space's default",
    )
    name_arguments(parser, keep="--preselect-keep")  # SeedPlan.keep
