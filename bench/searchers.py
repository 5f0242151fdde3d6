"""Searchers at the same budget: GA, TPE with and without pruning, and random search.

Each searcher gets the same budget of fit iterations (trials x iters) on each image: 128x128 centre crops
of classic9, Gaussian sigma 25 (seeded), ground-truth-free holdout fitness. All four start from the
space's default genome (the GA always does; the Optuna studies enqueue it), so the first point of every
curve is the same fit. TPE with pruning (median pruner, the default; running fitness every iters/10) keeps asking for
trials until the budget is spent, so pruning shows up as more candidates for the same iterations.
Reported per searcher: the true PSNR of the candidate with the best fitness (what a user without ground
truth would pick) versus budget used, the best true PSNR of any candidate (oracle), fits, pruned trials.

The space is small and depth-capped (see SPACE) so that the whole run fits ~30 min on one CPU core:

    python bench/searchers.py [DATA] [--images House Peppers F16] [--iters 200] [--trials 8] [--threads 1]

Writes searchers.json, searchers.png and one run folder per image and searcher under --out
(default bench/results/searchers/). Never part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, machine, write_json  # noqa: E402

from dipsearch import make_problem  # noqa: E402
from dipsearch.nets.space import space_from_dict  # noqa: E402
from dipsearch.problems.problem import Problem  # noqa: E402
from dipsearch.search import Runtime, SearchSpec, ga  # noqa: E402
from dipsearch.search.bayes.api import start as start_bayes  # noqa: E402
from dipsearch.search.bayes.study import BayesSettings, fit_iters  # noqa: E402
from dipsearch.store.imageio import center_crop, load_image  # noqa: E402

SPACE: dict[str, Any] = {
    "name": "bench-small",
    "genes": {
        "depth": {"kind": "int", "low": 2, "high": 4, "default": 4},
        "input_depth": {"kind": "choice", "choices": [3, 8, 32], "default": 3},
        "lr": {"kind": "float", "low": 0.001, "high": 0.05, "log": True, "default": 0.01},
        "reg_noise_std": {"kind": "float", "low": 0.0, "high": 0.1, "default": 1 / 30},
    },
    "levels": {
        "n_down": {"kind": "choice", "choices": [8, 16, 32], "default": 32},
        "n_skip": {"kind": "choice", "choices": [0, 4, 8], "default": 4},
        "upsample": {"kind": "choice", "choices": ["nearest", "bilinear"], "default": "bilinear"},
    },
    "ties": {"n_up": "n_down"},
    "fixed": {
        "k_down": 3,
        "k_up": 3,
        "k_skip": 1,
        "downsample": "stride",
        "activation": "leaky_relu",
        "pad": "reflection",
        "need1x1_up": True,
        "input_kind": "noise",
    },
}
SEARCHERS = ("ga", "tpe", "tpe+prune", "random")


def curve(points: list[tuple[int, float | None, float | None, bool]]) -> list[list[float]]:
    """(iters, fitness, psnr, pruned) in evaluation order -> [cumulative iters, PSNR of best-by-fitness, best fitness]."""
    out, used, best = [], 0, None
    for iters, fitness, psnr, pruned in points:
        used += iters
        if fitness is not None and not pruned and (best is None or fitness > best[0]):
            best = (fitness, psnr)
        out.append([used, best[1] if best else None, best[0] if best else None])
    return out


def bayes_points(study) -> list[tuple[int, float | None, float | None, bool]]:
    points = []
    for trial in sorted(study.trials, key=lambda t: t.number):
        result = trial.user_attrs.get("result") or {}
        points.append((fit_iters(trial), result.get("fitness"), result.get("psnr"), trial.state.name == "PRUNED"))
    return points


def run_ga(problem: Problem, spec: SearchSpec, folder: Path, trials: int) -> tuple[list, dict[str, Any]]:
    from dipsearch.search.ga import GAConfig

    # trials evaluations: a population of trials/2, then 2 generations of trials/4 offspring each.
    config = GAConfig(pop=max(2, trials // 2), offspring=max(1, trials // 4), gens=2, seed=0)
    result = ga.run(problem, replace(spec, ga=config), Runtime(out=folder))
    points = [(e.iters_run, e.fitness, e.psnr, False) for e in result.evaluations]
    return points, {"fits": len(points), "pruned": 0, "run": str(result.run_dir)}


def run_optuna(
    problem: Problem, spec: SearchSpec, folder: Path, trials: int, iters: int, sampler: str, prune: bool
) -> tuple[list, dict]:
    settings = BayesSettings(
        trials=trials * 4 if prune else trials,
        sampler=sampler,
        pruner="median" if prune else "none",
        max_iters=trials * iters,
        with_default=True,
    )
    result = start_bayes(problem, replace(spec, bayes=settings), Runtime(out=folder)).outcome
    study = result.study
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    full = lambda t: int((t.user_attrs.get("genome") or {}).get("iters", iters))  # noqa: E731
    info = {
        "fits": sum(fit_iters(t) > 0 for t in study.trials),
        "pruned": len(pruned),
        "iters_saved_by_pruning": sum(full(t) - fit_iters(t) for t in pruned),
        "run": str(result.run.path),
    }
    return bayes_points(study), info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA, help="data folder with classic9/")
    parser.add_argument("--images", nargs="*", default=["House", "Peppers", "F16"])
    parser.add_argument("--iters", type=int, default=200, help="fit iterations per candidate")
    parser.add_argument("--trials", type=int, default=8, help="budget = trials x iters fit iterations per searcher")
    parser.add_argument("--searchers", nargs="*", default=list(SEARCHERS), choices=SEARCHERS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS / "searchers")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    space = space_from_dict(SPACE, source="bench/searchers.py:SPACE")
    report: dict[str, Any] = {
        "machine": machine(),
        "settings": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "budget_iters": args.trials * args.iters,
            "space": SPACE,
        },
        "images": {},
    }
    start = time.perf_counter()
    for name in args.images:
        clean = center_crop(load_image(args.data / "classic9" / f"{name}.png"), 128, 128)
        problem = make_problem("denoise", clean=clean, noise="gaussian", level=25, seed=0)
        spec = SearchSpec(
            space=space,
            iters=args.iters,
            fitness="holdout",
            eval_scale=1.0,
            device="cpu",
            threads=args.threads,
            rungs=None,
        )  # no final rung: the curves compare the screening alone
        folder = args.out / name
        report["images"][name] = {}
        for searcher in args.searchers:
            t0 = time.perf_counter()
            if searcher == "ga":
                try:
                    points, info = run_ga(problem, spec, folder, args.trials)
                except ImportError as err:
                    print(f"{name}: GA skipped ({err})", flush=True)
                    continue
            else:
                points, info = run_optuna(
                    problem,
                    spec,
                    folder,
                    args.trials,
                    args.iters,
                    "random" if searcher == "random" else "tpe",
                    searcher == "tpe+prune",
                )
            seconds = time.perf_counter() - t0
            line = curve(points)
            entry = {
                **info,
                "seconds": round(seconds, 1),
                "iters_used": line[-1][0],
                "candidates": len(points),
                "final_psnr": line[-1][1],
                "final_fitness": line[-1][2],
                "oracle_psnr": max((p[2] for p in points if p[2] is not None and not p[3]), default=None),
                "default_psnr": points[0][2],
                "curve": line,
            }
            report["images"][name][searcher] = entry
            print(
                f"{name:8s} {searcher:10s} PSNR {entry['final_psnr']:.2f} (oracle {entry['oracle_psnr']:.2f}, default "
                f"{entry['default_psnr']:.2f})  {entry['candidates']} candidates, {entry['pruned']} pruned, "
                f"{entry['iters_used']} iters, {seconds:.0f} s  [total {time.perf_counter() - start:.0f} s]",
                flush=True,
            )
            write_json(args.out / "searchers.json", report)
    summarise(report)
    report["seconds"] = round(time.perf_counter() - start, 1)
    write_json(args.out / "searchers.json", report)
    plot(report, args.out / "searchers.png")
    print(f"wrote {args.out / 'searchers.json'} and {args.out / 'searchers.png'}")


def summarise(report: dict[str, Any]) -> None:
    rows = {}
    for searcher in SEARCHERS:
        entries = [img[searcher] for img in report["images"].values() if searcher in img]
        if not entries:
            continue
        rows[searcher] = {
            "mean_final_psnr": round(statistics.mean(e["final_psnr"] for e in entries), 3),
            "mean_oracle_psnr": round(statistics.mean(e["oracle_psnr"] for e in entries), 3),
            "mean_default_psnr": round(statistics.mean(e["default_psnr"] for e in entries), 3),
            "candidates": sum(e["candidates"] for e in entries),
            "fits": sum(e["fits"] for e in entries),
            "pruned": sum(e["pruned"] for e in entries),
            "iters_used": sum(e["iters_used"] for e in entries),
            "seconds": round(sum(e["seconds"] for e in entries), 1),
            "iters_saved_by_pruning": sum(e.get("iters_saved_by_pruning", 0) for e in entries),
        }
    report["summary"] = rows
    print(
        f"\n{'searcher':10s} {'PSNR(best fit.)':>15s} {'oracle':>7s} {'default':>7s} {'cands':>5s} {'pruned':>6s} "
        f"{'iters':>6s} {'saved':>6s} {'sec':>6s}"
    )
    for searcher, r in rows.items():
        print(
            f"{searcher:10s} {r['mean_final_psnr']:15.2f} {r['mean_oracle_psnr']:7.2f} {r['mean_default_psnr']:7.2f} "
            f"{r['candidates']:5d} {r['pruned']:6d} {r['iters_used']:6d} {r['iters_saved_by_pruning']:6d} {r['seconds']:6.0f}"
        )


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = list(report["images"])
    fig, axes = plt.subplots(1, len(images), figsize=(4.2 * len(images), 3.6), squeeze=False)
    for ax, name in zip(axes[0], images):
        for searcher, entry in report["images"][name].items():
            xs = [p[0] for p in entry["curve"] if p[1] is not None]
            ys = [p[1] for p in entry["curve"] if p[1] is not None]
            ax.step(xs, ys, where="post", label=searcher, marker=".")
        ax.set_title(f"{name} 128x128, sigma 25")
        ax.set_xlabel("fit iterations used")
        ax.set_ylabel("true PSNR of best-by-holdout (dB)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
