"""`--log tensorboard`: the one flag, shared by the commands that fit or search, that turns on run logs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..fitting.fit import FitHook

LOGS = ("none", "tensorboard")


def add_log_flag(group: Any) -> None:
    group.add_argument(
        "--log",
        choices=LOGS,
        default="none",
        help="tensorboard: write the fits' curves, images and stop steps (a search: one run per candidate, with "
        "its genes and scores as hparams) to the run folder's tensorboard/, for `tensorboard --logdir`; "
        "needs pip install 'dipsearch[tensorboard]' (default none)",
    )


def wants_tensorboard(args: argparse.Namespace) -> bool:
    """True for --log tensorboard; the extra missing fails here, before any run folder is made."""
    if getattr(args, "log", "none") != "tensorboard":
        return False
    from ..fitting.tensorboard import require

    require()
    return True


def log_hooks(args: argparse.Namespace, run_path: Path) -> list[FitHook]:
    """The fit hooks --log asks for, writing into the run folder (put them after every other hook)."""
    if not wants_tensorboard(args):
        return []
    from ..fitting.tensorboard import FOLDER, TensorBoardHook

    return [TensorBoardHook(Path(run_path) / FOLDER)]
