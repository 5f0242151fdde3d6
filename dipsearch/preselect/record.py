"""The run folder of `dipsearch preselect`: every candidate's scores, the fitted ones, the pick, a plot.

preselect.csv   one row per candidate: index, rank by the chosen metric, kept, params, every metric,
                fitness / true PSNR / fit seconds where fitted, and the genome as JSON
evaluations.jsonl, best_arch.toml, best_output.png
                as a search writes them (dipsearch.search.record), so `dipsearch fit --arch` and
                `--seed-from` read a pre-selection's winner like any search's
summary.json    candidates, kept, metric, best (index, rank, score), best_fitness, best_psnr,
                seconds_scoring, seconds_fitting
preselect.png   the chosen metric against fitness (and true PSNR when known) of the fitted candidates
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..nets.arch import build_net, count_params
from ..nets.space import SearchSpace
from ..scoring.evaluate import Evaluation
from ..search.record import SearchRecord
from ..store.runs import RunDir, write_figure
from .pipeline import PreselectResult


def rows(result: PreselectResult, channels: int) -> list[dict[str, Any]]:
    out = []
    for index, c in enumerate(result.candidates):
        ev = result.evaluations.get(index)
        out.append(
            {
                "index": index,
                "rank": result.rank_of(index),
                "kept": index in result.kept,
                "params": count_params(build_net(c.spec, channels)),
                **c.scores,
                "fitness": ev.fitness if ev else None,
                "psnr": ev.psnr if ev else None,
                "fit_seconds": round(ev.seconds, 3) if ev else None,
                "fit_error": ev.error if ev else None,
                "genome": json.dumps(c.genome, sort_keys=True),
            }
        )
    return out


def summary(result: PreselectResult) -> dict[str, Any]:
    best = result.best
    ev = result.evaluations.get(best)
    return {
        "candidates": len(result.candidates),
        "kept": len(result.kept),
        "metric": result.metric,
        "best_index": best,
        "best_rank": result.rank_of(best),
        "best_score": result.candidates[best].scores[result.metric],
        "best_fitness": ev.fitness if ev else None,
        "best_psnr": ev.psnr if ev else None,
        "fitted": len(result.evaluations),
        "seconds_scoring": result.seconds_scoring,
        "seconds_fitting": result.seconds_fitting,
    }


def write_run(
    run: RunDir, space: SearchSpace, result: PreselectResult, channels: int, fitness_name: str
) -> dict[str, Any]:
    record = SearchRecord(run, space)
    for index, ev in result.evaluations.items():
        record.add(ev, {"rank": result.rank_of(index), result.metric: result.candidates[index].scores[result.metric]})
    if record.best is None:  # nothing fitted (or every fit failed): the best score is the pick
        best = result.candidates[result.best]
        record.write_best(
            Evaluation(
                index=result.best,
                key=best.spec.canonical_key(),
                genome=best.genome,
                fitness=None,
                psnr=None,
                params=None,
                iters_run=0,
                seconds=0.0,
            )
        )
    table = rows(result, channels)
    run.write_csv("preselect.csv", table)
    if result.evaluations:
        plot(table, result.metric, run.file("preselect.png"), fitness_name)
    data = summary(result)
    run.write_json("summary.json", data)
    return data


def plot(table: list[dict[str, Any]], metric: str, path: Path, fitness_name: str) -> None:
    fitted = [r for r in table if r["fitness"] is not None]
    panels = [("fitness", f"{fitness_name} fitness (dB)")]
    if any(r["psnr"] is not None for r in fitted):
        panels.append(("psnr", "true PSNR (dB)"))
    fig = Figure(figsize=(4.2 * len(panels), 3.6))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (key, label) in zip(axes, panels):
        points = [(r[metric], r[key]) for r in fitted if r[key] is not None]
        if points:
            ax.scatter(*zip(*points), s=18)
            for r in fitted:
                if r[key] is not None:
                    ax.annotate(
                        str(r["rank"]), (r[metric], r[key]), fontsize=7, xytext=(3, 2), textcoords="offset points"
                    )
        ax.set_xlabel(f"{metric} (lower = pre-selected first)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.14 / len(panels) + 0.02, right=0.98, bottom=0.15, top=0.95, wspace=0.35)
    write_figure(Path(path), fig, dpi=100)
