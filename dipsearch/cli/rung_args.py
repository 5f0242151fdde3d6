"""The multi-fidelity flags every searcher shares: --final K, --final-iters, --final-stop, --rungs, --eta."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING

from ..errors import DipsearchError

if TYPE_CHECKING:  # the CLI's start-up must not import torch: these are for annotations only
    from ..search.rungs import RungPlan
    from ..tasks import Problem

FINAL_DEFAULT = 3


def add_rung_args(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--final", type=int, metavar="K", default=FINAL_DEFAULT,
                       help=f"candidates refitted at the full budget with stopping, the space's default genome among "
                            f"them; the best by the GT-free fitness of the stopped output is the answer (default "
                            f"{FINAL_DEFAULT}; 0: no final rung, the screening's best is the answer)")
    group.add_argument("--final-iters", type=int, metavar="N",
                       help="the final rung's budget (default 2400, as `dipsearch fit`)")
    group.add_argument("--final-stop", metavar="DETECTOR", help="stopping detector of the final rung (default emv)")
    group.add_argument("--rungs", metavar="B1,B2", help="promotion rungs between screening and final rung: budgets "
                       "in iterations; rung i keeps K*eta^(n-i) candidates (default: none)")
    group.add_argument("--eta", type=int, metavar="N", help="successive-halving ratio between rungs (default 3)")
    group.add_argument("--final-margin", type=float, metavar="Z",
                       help="with the holdout fitness, a finalist replaces the default only when it is better on the "
                            "held-out pixels by Z standard errors of the paired difference (default 1.64)")


def plan_from_args(args: argparse.Namespace, problem: Problem | None = None) -> RungPlan | None:
    """The rung plan the flags describe (None with --final 0, or for a namespace made without the flags:
    library callers opt in), validated; with a problem, the final rung's detector is checked against it too."""
    final = getattr(args, "final", None) or 0
    if final == 0:
        return None
    from ..search.rungs import RungPlan

    raw = getattr(args, "rungs", None)
    try:
        budgets = tuple(int(b) for b in raw.split(",")) if raw else ()
    except ValueError:
        raise DipsearchError(f"--rungs takes comma-separated iteration budgets, e.g. 600,1200; got {raw!r}") from None
    given = {"final_iters": getattr(args, "final_iters", None), "eta": getattr(args, "eta", None),
             "margin": getattr(args, "final_margin", None)}
    plan = RungPlan(final=final, stop={"detector": getattr(args, "final_stop", None) or "emv"}, budgets=budgets,
                    **{k: v for k, v in given.items() if v is not None})
    plan.check()
    if problem is not None:
        check_final_stop(plan, problem, getattr(args, "seed", 0) or 0)
    return plan


def default_eval_scale(problem: Problem, space) -> float:
    """0.5 (screening on every other pixel, see bench/fidelity.py) unless the task cannot be subsampled
    (super-resolution) or the half image is too small for the space's default network."""
    from types import SimpleNamespace

    from ..fit import check_size

    if problem.task == "sr":
        return 1.0
    c, h, w = problem.image_shape
    try:  # the half image: every other pixel, as evaluate's scale 0.5 takes them
        check_size(SimpleNamespace(image_shape=(c, math.ceil(h / 2), math.ceil(w / 2))), space.decode(space.default()))
    except DipsearchError:
        return 1.0
    return 0.5


def restore_plan_args(args: argparse.Namespace, saved: dict) -> None:
    """Set the rung flags on `args` from a run's [rungs] table (RungPlan.to_dict, or {final = 0})."""
    args.final = int(saved.get("final", 0))
    args.final_iters = saved.get("final_iters")
    args.final_stop = (saved.get("stop") or {}).get("detector")
    args.rungs = ",".join(str(b) for b in saved.get("budgets", ())) or None
    args.eta = saved.get("eta")
    args.final_margin = saved.get("margin")


def check_final_stop(plan: RungPlan, problem: Problem, seed: int) -> None:
    from ..evaluate import stop_hook

    hook = stop_hook(plan.stop, seed, problem)  # unknown detector, SURE without Gaussian noise: fail now
    detector = hook.lead
    need = max(getattr(detector, "warmup", 0) + 1, detector.window)
    if plan.final_iters <= need:
        raise DipsearchError(f"--final-iters ({plan.final_iters}) must exceed the {detector.name} detector's "
                             f"warm-up/window ({need - 1} steps)")


def final_table(space, selection):
    """The finalists, best first, the chosen one marked."""
    from rich.table import Table

    from ..search.display import _db, describe

    table = Table(title="final rung: full budget with stopping (the answer is marked *)", header_style="bold")
    for name in ("", "fitness dB", "true PSNR", "stopped", "screen dB", "architecture"):
        table.add_column(name)
    ranked = sorted(selection.finalists, key=lambda f: -f.evaluation.search_value)
    for f in ranked:
        e = f.evaluation
        mark = ("*" if f is selection.choice else "") + (" default" if f.default else "")
        table.add_row(mark.strip(), _db(e.fitness), _db(e.psnr), str(e.stopped_iter or "-"), _db(f.screen_fitness),
                      describe(space, f.genome))
    return table
