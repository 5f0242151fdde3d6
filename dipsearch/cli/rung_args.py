"""The multi-fidelity flags every searcher shares: --final K, --final-iters, --final-stop, --rungs, --eta."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import DipsearchError

if TYPE_CHECKING:  # the CLI's start-up must not import torch: this is for annotations only
    from ..search.rungs import RungPlan

FINAL_DEFAULT = 3


def add_rung_args(group: argparse._ArgumentGroup) -> None:
    group.add_argument(
        "--final",
        type=int,
        metavar="K",
        default=FINAL_DEFAULT,
        help=f"candidates refitted at the full budget with stopping, the space's default genome among "
        f"them; the best by the GT-free fitness of the stopped output is the answer (default "
        f"{FINAL_DEFAULT}; 0: no final rung, the screening's best is the answer)",
    )
    group.add_argument(
        "--final-iters", type=int, metavar="N", help="the final rung's budget (default 2400, as `dipsearch fit`)"
    )
    group.add_argument(
        "--final-stop",
        metavar="DETECTOR",
        help="stopping of the final rung: a detector, auto or none (default auto, the recommended stopping)",
    )
    group.add_argument(
        "--rungs",
        metavar="B1,B2",
        help="promotion rungs between screening and final rung: budgets "
        "in iterations; rung i keeps K*eta^(n-i) candidates (default: none)",
    )
    group.add_argument("--eta", type=int, metavar="N", help="successive-halving ratio between rungs (default 3)")
    group.add_argument(
        "--final-margin",
        type=float,
        metavar="Z",
        help="with the holdout fitness, a finalist replaces the default only when it is better on the "
        "held-out pixels by Z standard errors of the paired difference (default 1.64)",
    )
    group.add_argument(
        "--ensemble-weights",
        metavar="NAME",
        help="how ensemble.png weighs the finalists' stopped outputs: equal, inverse-mse (1 / held-out MSE) or "
        "fitted (non-negative least squares on the held-out pixels, cross-validated); default inverse-mse with "
        "the holdout fitness, else equal",
    )
    group.add_argument(
        "--ensemble-restarts",
        type=int,
        metavar="R",
        help="extra ensemble members: refits of the chosen finalist with the next R seeds (default 0)",
    )
    group.add_argument(
        "--ensemble-splits",
        metavar="own|shared",
        help="the pixels a restart withholds: its own seed's, so that no pixel is missing from every member "
        "(default), or the finalists' (fitted weights need that)",
    )
    group.add_argument(
        "--replicas",
        metavar="auto|on|off",
        help="fit the final rung's restarts of the pick as one batch: auto (when two or more and the memory "
        "estimate allows; default), on, or off (one after another)",
    )


def plan_from_args(args: argparse.Namespace) -> RungPlan | None:
    """The rung plan the flags describe (None with --final 0), validated; the final rung's detector is
    checked against the problem when the search is set up (dipsearch.search.prepare.prepare)."""
    final = getattr(args, "final", None) or 0
    if final == 0:
        return None
    from ..search.rungs import RungPlan
    from ..stopping.spec import StopSpec

    raw = getattr(args, "rungs", None)
    try:
        budgets = tuple(int(b) for b in raw.split(",")) if raw else ()
    except ValueError:
        raise DipsearchError(f"--rungs takes comma-separated iteration budgets, e.g. 600,1200; got {raw!r}") from None
    given = {
        "final_iters": getattr(args, "final_iters", None),
        "eta": getattr(args, "eta", None),
        "margin": getattr(args, "final_margin", None),
        "weights": getattr(args, "ensemble_weights", None),
        "restarts": getattr(args, "ensemble_restarts", None),
        "splits": getattr(args, "ensemble_splits", None),
        "replicas": getattr(args, "replicas", None),
    }
    plan = RungPlan(
        final=final,
        stop=StopSpec.parse(getattr(args, "final_stop", None) or "auto"),
        budgets=budgets,
        **{k: v for k, v in given.items() if v is not None},
    )
    plan.check()
    if plan.replicas == "on" and plan.restarts < 2:
        from ..errors import ArgumentError

        raise ArgumentError(
            "{replicas:on}: nothing to batch, the final rung's finalists are different networks and a batch of "
            "restarts of the pick needs {ensemble_restarts} >= 2; use {replicas:auto} or {replicas:off}"
        )
    return plan


def final_table(space, selection):
    """The finalists, best first, the chosen one marked, each with its ensemble weight; the ensemble's scores
    in the caption."""
    from rich.table import Table

    from ..search.display import _db, describe

    table = Table(title="final rung: full budget with stopping (the single pick is marked *)", header_style="bold")
    for name in ("", "fitness dB", "true PSNR", "stopped", "screen dB", "weight", "architecture"):
        table.add_column(name)
    ensemble = selection.ensemble
    weights = dict(zip(ensemble.keys, ensemble.weights)) if ensemble else {}
    ranked = sorted(selection.finalists, key=lambda f: -f.evaluation.search_value)
    for f in [*ranked, *selection.restarts]:
        e = f.evaluation
        mark = ("*" if f is selection.choice else "") + (" default" if f.default else "")
        mark += f" restart {f.restart}" if f.restart else ""
        weight = weights.get(e.key)
        table.add_row(
            mark.strip(),
            _db(e.fitness),
            _db(e.psnr),
            str(e.stopped_iter or "-"),
            _db(f.screen_fitness),
            "-" if weight is None else f"{weight:.3f}",
            describe(space, f.genome),
        )
    if ensemble is not None:
        table.caption = f"ensemble.png: {ensemble.method} weights, held-out PSNR {_db(ensemble.heldout_psnr)} dB" + (
            f", true PSNR {_db(ensemble.psnr)}" if ensemble.psnr is not None else ""
        )
    return table
