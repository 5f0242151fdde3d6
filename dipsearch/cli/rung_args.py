"""The multi-fidelity flags every searcher shares: --final K, --final-iters, --final-stop, --rungs, --eta."""

from __future__ import annotations

import argparse

from ..errors import DipsearchError
from ..search.rungs import RungPlan
from ..tasks import Problem

FINAL_DEFAULT = 3


def add_rung_args(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--final", type=int, metavar="K",
                       help=f"candidates refitted at the full budget with stopping, the space's default genome among "
                            f"them; the best by the GT-free fitness of the stopped output is the answer (default "
                            f"{FINAL_DEFAULT}; 0: no final rung, the screening's best is the answer)")
    group.add_argument("--final-iters", type=int, metavar="N",
                       help="the final rung's budget (default 2400, as `dipsearch fit`)")
    group.add_argument("--final-stop", metavar="DETECTOR", help="stopping detector of the final rung (default emv)")
    group.add_argument("--rungs", metavar="B1,B2", help="promotion rungs between screening and final rung: budgets "
                       "in iterations; rung i keeps K*eta^(n-i) candidates (default: none)")
    group.add_argument("--eta", type=int, metavar="N", help="successive-halving ratio between rungs (default 3)")


def plan_from_args(args: argparse.Namespace, problem: Problem | None = None) -> RungPlan | None:
    """The rung plan the flags describe (None with --final 0), validated; with a problem, the final rung's
    detector is checked against it too."""
    final = getattr(args, "final", None)
    final = FINAL_DEFAULT if final is None else final
    if final == 0:
        return None
    raw = getattr(args, "rungs", None)
    try:
        budgets = tuple(int(b) for b in raw.split(",")) if raw else ()
    except ValueError:
        raise DipsearchError(f"--rungs takes comma-separated iteration budgets, e.g. 600,1200; got {raw!r}") from None
    plan = RungPlan(final=final, final_iters=getattr(args, "final_iters", None) or 2400,
                    stop={"detector": getattr(args, "final_stop", None) or "emv"}, budgets=budgets,
                    eta=getattr(args, "eta", None) or 3)
    plan.check()
    if problem is not None:
        check_final_stop(plan, problem, getattr(args, "seed", 0) or 0)
    return plan


def check_final_stop(plan: RungPlan, problem: Problem, seed: int) -> None:
    from ..evaluate import stop_hook

    hook = stop_hook(plan.stop, seed, problem)  # unknown detector, SURE without Gaussian noise: fail now
    detector = hook.lead
    need = max(getattr(detector, "warmup", 0) + 1, detector.window)
    if plan.final_iters <= need:
        raise DipsearchError(f"--final-iters ({plan.final_iters}) must exceed the {detector.name} detector's "
                             f"warm-up/window ({need - 1} steps)")


def rung_printer(console):
    """One line per rung fit, for the searchers' consoles."""
    from ..search.display import _db

    def show(label: str, evaluation) -> None:
        where = "final rung" if label == "final" else f"rung {label}"
        stopped = f", stopped at {evaluation.stopped_iter}" if evaluation.stopped_iter is not None else ""
        psnr = f", true PSNR {_db(evaluation.psnr)}" if evaluation.psnr is not None else ""
        result = f"fitness {_db(evaluation.fitness)} dB" if evaluation.error is None else f"failed: {evaluation.error}"
        console.print(f"{where}: evaluation {evaluation.index} {result}{psnr}{stopped}", highlight=False)

    return show


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
