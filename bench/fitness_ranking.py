"""Does the ground-truth-free holdout fitness rank architectures like the true PSNR does?

Random candidates of search_spaces/wide.toml, each fitted on 3 classic9 128x128 centre crops with Gaussian
noise sigma 25 (seeded), scored by holdout fitness (5 % of the observed pixels withheld from the loss) while
the true PSNR of the same output is recorded. Prints and writes the Spearman rank correlation between the
two per image and pooled over all (candidate, image) pairs.

CPU budget: random wide.toml candidates average ~0.5 s per iteration at 128 px on one (shared) core, up to
2 s with 256 channels at full resolution; capped at depth 4 and 16 channels they average ~65 ms, about
the seed network's cost. So by default the space is wide.toml with its ranges capped (depth 3-4, at most
--max-channels channels per conv, skips up to 8) and fits are 300 iterations: 90 fits in ~30 min. Every
other gene (downsampling, activation, kernels, upsampling, 1x1 convs) keeps its full range. Candidates
that cannot build or run at 128 px are drawn again. --no-cap uses wide.toml as it is.

    python bench/fitness_ranking.py [DATA] [--images F16 House Baboon] [--candidates 30] [--iters 300]
                                    [--max-depth 4] [--max-channels 16] [--threads 1] [--out bench/results]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, machine, write_json  # noqa: E402
from judge import classic9_problem, rank_correlation  # noqa: E402

from dipsearch.nets.arch import build_net  # noqa: E402
from dipsearch.nets.space import SPACES_DIR, SearchSpace, space_from_dict  # noqa: E402
from dipsearch.scoring.evaluate import Candidate, evaluate  # noqa: E402


def capped_wide(max_depth: int = 4, max_channels: int = 16, max_skip: int = 8) -> dict[str, Any]:
    """wide.toml with smaller upper bounds (defaults clipped into them); gene kinds and choices unchanged."""
    data = tomllib.loads((SPACES_DIR / "wide.toml").read_text())
    data["name"] = f"wide-capped-d{max_depth}-c{max_channels}"
    data["genes"]["depth"].update(high=max_depth, default=min(data["genes"]["depth"]["default"], max_depth))
    for name, high in (("n_down", max_channels), ("n_up", max_channels), ("n_skip", max_skip)):
        gene = data["levels"][name]
        gene["high"] = high
        gene["default"] = [min(v, high) for v in gene["default"]][:max_depth]
    return data


def runnable(space: SearchSpace, genome: dict, size: int) -> bool:
    """One forward pass at the crop size: catches the builds that fail there (e.g. reflection padding wider
    than the deepest level) without spending a fit on them."""
    try:
        spec = space.decode(genome)
        net = build_net(spec, 3)
        side = -(-size // spec.size_multiple) * spec.size_multiple
        with torch.no_grad():
            net(torch.zeros(1, spec.input_depth, side, side))
        return side // spec.size_multiple >= 2
    except Exception:  # noqa: BLE001 - any failure means: draw another
        return False


def spearman(x: list[float], y: list[float]) -> float:
    return rank_correlation(x, y)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", nargs="+", default=["F16", "House", "Baboon"])
    parser.add_argument("--candidates", type=int, default=30)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--max-depth", type=int, default=4)
    parser.add_argument("--max-channels", type=int, default=16)
    parser.add_argument("--no-cap", action="store_true", help="sample wide.toml unchanged (slow on CPU)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    raw = (
        tomllib.loads((SPACES_DIR / "wide.toml").read_text())
        if args.no_cap
        else capped_wide(args.max_depth, args.max_channels)
    )
    space = space_from_dict(raw, source=raw["name"])
    rng = random.Random(args.seed)
    genomes = []
    while len(genomes) < args.candidates:
        genome = space.sample(rng)
        if runnable(space, genome, args.crop):
            genomes.append(genome)

    problems = {}
    for name in args.images:
        problems[name] = classic9_problem(args.data, name, args.crop, args.sigma, args.seed)

    rows: list[dict[str, Any]] = []
    start = time.perf_counter()
    total = len(genomes) * len(problems)
    for i, genome in enumerate(genomes):
        for name, problem in problems.items():
            ev = evaluate(
                Candidate(
                    genome=genome,
                    arch=space.decode(genome),
                    problem=problem,
                    iters=args.iters,
                    seed=args.seed,
                    fit_settings=space.fit_settings(genome),
                    device=args.device,
                    index=i,
                    threads=args.threads,
                )
            )
            rows.append(
                {
                    "candidate": i,
                    "image": name,
                    "fitness": ev.fitness,
                    "psnr": ev.psnr,
                    "params": ev.params,
                    "seconds": round(ev.seconds, 2),
                    "error": ev.error,
                    "genome": genome,
                }
            )
            done = len(rows)
            eta = (time.perf_counter() - start) / done * (total - done)
            print(
                f"[{done}/{total}] candidate {i} {name}: holdout {ev.fitness if ev.fitness is None else round(ev.fitness, 3)}"
                f" dB, true PSNR {ev.psnr if ev.psnr is None else round(ev.psnr, 3)} dB, {ev.params} params, "
                f"{ev.seconds:.1f} s (eta {eta / 60:.1f} min){'  ERROR ' + ev.error if ev.error else ''}",
                flush=True,
            )

    ok = [r for r in rows if r["fitness"] is not None]
    per_image = {}
    for name in problems:
        mine = [r for r in ok if r["image"] == name]
        per_image[name] = {
            "spearman": spearman([r["fitness"] for r in mine], [r["psnr"] for r in mine]),
            "n": len(mine),
            "psnr_range": [min(r["psnr"] for r in mine), max(r["psnr"] for r in mine)],
        }
    pooled = spearman([r["fitness"] for r in ok], [r["psnr"] for r in ok])
    # Would holdout pick a good candidate? True PSNR of its pick vs the best and the median candidate.
    picks = {}
    for name in problems:
        mine = [r for r in ok if r["image"] == name]
        pick = max(mine, key=lambda r: r["fitness"])
        picks[name] = {
            "picked_psnr": pick["psnr"],
            "best_psnr": max(r["psnr"] for r in mine),
            "median_psnr": statistics.median(r["psnr"] for r in mine),
        }
    seconds = time.perf_counter() - start

    print(
        f"\nholdout fitness vs true PSNR, {len(genomes)} candidates of {raw['name']}, {args.iters} iterations, "
        f"{args.crop} px crops, sigma {args.sigma:g}:"
    )
    for name, stats in per_image.items():
        p = picks[name]
        print(
            f"  {name:8s} Spearman {stats['spearman']:+.3f} (n={stats['n']}, true PSNR {stats['psnr_range'][0]:.2f}"
            f"-{stats['psnr_range'][1]:.2f} dB); holdout's pick {p['picked_psnr']:.2f} dB, best {p['best_psnr']:.2f},"
            f" median {p['median_psnr']:.2f}"
        )
    print(
        f"  pooled   Spearman {pooled:+.3f} (n={len(ok)}); mean per image "
        f"{statistics.mean(s['spearman'] for s in per_image.values()):+.3f}; {len(rows) - len(ok)} failed fits; "
        f"{seconds / 60:.1f} min"
    )
    out = write_json(
        args.out / "fitness_ranking.json",
        {
            "settings": {**vars(args), "data": str(args.data), "out": str(args.out), "space": raw},
            "spearman_per_image": per_image,
            "spearman_pooled": pooled,
            "picks": picks,
            "seconds": seconds,
            "machine": machine(),
            "rows": rows,
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
