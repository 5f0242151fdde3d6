"""--threads for the searches that leave torch's thread count alone by default (Bayes, and searchers whose flags
come from their settings); the GA has its own, whose default is one thread on a CPU."""

from __future__ import annotations

import argparse


def add_threads_flag(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="torch threads per fit (default: torch's); CPU results depend on it, so a fixed value keeps a seeded "
        "search repeatable on another machine",
    )
