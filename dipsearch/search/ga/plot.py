"""The per-generation plot of a search: best and mean fitness, and the true PSNR of the best when known.

Uses matplotlib's object API with the Agg canvas (no pyplot, no global backend switch), and writes the
PNG atomically like every other run file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ...store.runs import write_figure


def plot_generations(rows: list[dict[str, Any]], path: Path, fitness_name: str = "fitness") -> None:
    gens = [r["gen"] for r in rows]
    series = [
        ("best_ever", "best so far", "-o"),
        ("best", "best in population", "--"),
        ("mean", "population mean", ":"),
    ]
    has_psnr = any(r.get("best_psnr") is not None for r in rows)
    fig = Figure(figsize=(6.4, 6.0 if has_psnr else 3.6))  # fixed margins: constrained layout costs 4x more
    FigureCanvasAgg(fig)
    axes = fig.subplots(2 if has_psnr else 1, 1, sharex=True, squeeze=False)[:, 0]
    for key, label, style in series:
        points = [(g, r.get(key)) for g, r in zip(gens, rows) if r.get(key) is not None]
        if points:
            axes[0].plot(*zip(*points), style, label=label)
    axes[0].set_ylabel(f"{fitness_name} (dB)")
    axes[0].legend(loc="lower right", fontsize="small")
    axes[0].grid(alpha=0.3)
    if has_psnr:
        points = [(g, r["best_psnr"]) for g, r in zip(gens, rows) if r.get("best_psnr") is not None]
        axes[1].plot(*zip(*points), "-o", color="tab:green", label="true PSNR of the best so far")
        axes[1].set_ylabel("PSNR vs clean (dB)")
        axes[1].legend(loc="lower right", fontsize="small")
        axes[1].grid(alpha=0.3)
    axes[-1].set_xlabel("generation")
    axes[-1].xaxis.get_major_locator().set_params(integer=True)
    fig.subplots_adjust(left=0.12, right=0.97, top=0.97, bottom=0.1 if has_psnr else 0.16, hspace=0.08)
    write_figure(Path(path), fig, dpi=100)
