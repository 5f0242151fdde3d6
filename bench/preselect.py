"""Is training-free pre-selection worth its cost? Metric vs true PSNR after a short fit, and top-10 vs random-10.

For each space (nasdip.toml and wide.toml, both capped so a CPU can fit them: depth 3-4, at most
--max-channels channels) and each classic9 crop (Gaussian noise sigma 25, seeded):
  1. sample --pool distinct candidates that fit the crop and score each with every metric
     (dipsearch.preselect, --inputs forward passes each);
  2. fit the first --fitted of them (a uniform random sample: the pool is drawn at random) with the
     search's fitness (dipsearch.evaluate, --iters iterations) and record the true PSNR of the scored output;
  3. fit the top --top of the pool by each metric that are not fitted yet.
Then per (space, image) and metric: Spearman and Kendall between -metric (every metric is lower-is-better,
so a useful metric correlates POSITIVELY here) and the true PSNR over the random fitted sample; the
seconds of scoring against fitting one candidate; and the best true PSNR of "fit the top 10 of the pool"
against "fit 10 random" (10 drawn from the random fitted sample, --draws seeded draws: mean, and the share
of draws the pre-selected ten beat), both at the same fitting budget of 10 fits.

Rows go to OUT/preselect_rows.jsonl as they are made (a killed run keeps them: --summarise recomputes the
summary from that file); the summary is OUT/preselect.json and is printed.

    nice -n 10 python bench/preselect.py [DATA] [--images F16 House Baboon] [--crop 64] [--pool 200]
        [--fitted 60] [--top 10] [--iters 300] [--inputs 4] [--threads 1] [--out bench/results] [--summarise]
"""

from __future__ import annotations

import argparse
import json
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
from fitness_ranking import capped_wide  # noqa: E402

from dipsearch import make_problem  # noqa: E402
from dipsearch.evaluate import Candidate, evaluate  # noqa: E402
from dipsearch.imageio import center_crop, load_image  # noqa: E402
from dipsearch.preselect import METRICS, ScoreConfig  # noqa: E402
from dipsearch.preselect.scoring import ranked, sample_candidates, score_all  # noqa: E402
from dipsearch.space import SPACES_DIR, space_from_dict  # noqa: E402


def capped_nasdip(max_depth: int, max_channels: int) -> dict[str, Any]:
    """nasdip.toml with depth <= max_depth and widths <= max_channels; the cell and skip genes keep their range."""
    data = tomllib.loads((SPACES_DIR / "nasdip.toml").read_text())
    data["name"] = f"nasdip-capped-d{max_depth}-c{max_channels}"
    data["genes"]["depth"].update(high=max_depth, default=min(data["genes"]["depth"]["default"], max_depth))
    widths = [c for c in data["levels"]["n_down"]["choices"] if c <= max_channels] or [max_channels]
    widths = sorted(set(widths) | {c for c in (8, max_channels) if c <= max_channels})
    data["levels"]["n_down"].update(choices=widths, default=[min(v, max(widths)) for v in data["levels"]["n_down"]["default"]])
    return data


def correlations(x: list[float], y: list[float]) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    return {"spearman": float(spearmanr(x, y).statistic), "kendall": float(kendalltau(x, y).statistic)}


def summarise(rows: list[dict[str, Any]], top: int, draws: int) -> dict[str, Any]:
    pools = [r for r in rows if r["kind"] == "pool"]
    fits = {(r["space"], r["image"], r["candidate"]): r for r in rows if r["kind"] == "fit" and r["psnr"] is not None}
    out: dict[str, Any] = {"pairs": {}, "metrics": {}}
    for pool in pools:
        space, image = pool["space"], pool["image"]
        scores = pool["scores"]  # candidate index -> {metric: value}
        randoms = [fits[(space, image, i)] for i in range(pool["fitted"]) if (space, image, i) in fits]
        if len(randoms) < 3:
            continue
        pair: dict[str, Any] = {"n_random_fitted": len(randoms), "score_seconds": pool["score_seconds"],
                                "fit_seconds": statistics.mean(r["seconds"] for r in randoms),
                                "best_random_psnr": max(r["psnr"] for r in randoms),
                                "median_random_psnr": statistics.median(r["psnr"] for r in randoms), "metrics": {}}
        psnrs = [r["psnr"] for r in randoms]
        rng = random.Random(0)
        random_best = [max(r["psnr"] for r in rng.sample(randoms, min(top, len(randoms)))) for _ in range(draws)]
        pair["random10_best_mean"] = statistics.mean(random_best)
        pair["random10_best_std"] = statistics.pstdev(random_best)
        for metric in METRICS:
            entry = correlations([-scores[str(r["candidate"])][metric] for r in randoms], psnrs)
            order = sorted(range(len(scores)), key=lambda i: scores[str(i)][metric])[:top]
            picked = [fits.get((space, image, i)) for i in order]
            if all(p is not None for p in picked):
                best = max(p["psnr"] for p in picked)
                entry["top10_best_psnr"] = best
                entry["beats_random10"] = sum(best > b for b in random_best) / len(random_best)
            pair["metrics"][metric] = entry
        out["pairs"][f"{space}/{image}"] = pair
    for metric in METRICS:
        for space in sorted({p["space"] for p in pools}):
            mine = [p["metrics"][metric] for k, p in out["pairs"].items() if k.startswith(space + "/")]
            if not mine:
                continue
            summary = {stat: statistics.mean(m[stat] for m in mine) for stat in ("spearman", "kendall")}
            complete = [m for m in mine if "top10_best_psnr" in m]
            if complete:
                pairs = [p for k, p in out["pairs"].items() if k.startswith(space + "/") and "top10_best_psnr" in p["metrics"][metric]]
                summary["top10_minus_random10_db"] = statistics.mean(
                    p["metrics"][metric]["top10_best_psnr"] - p["random10_best_mean"] for p in pairs)
                summary["beats_random10"] = statistics.mean(m["beats_random10"] for m in complete)
                summary["images_with_top10"] = len(complete)
            out["metrics"].setdefault(metric, {})[space] = summary
    pairs = list(out["pairs"].values())
    if pairs:
        out["seconds_per_candidate"] = {"scoring": statistics.mean(p["score_seconds"] for p in pairs),
                                        "fitting": statistics.mean(p["fit_seconds"] for p in pairs)}
    return out


def print_summary(summary: dict[str, Any], pool: int, top: int) -> None:
    print(f"\n-metric vs true PSNR (mean over images; positive = the metric ranks like PSNR); top {top} of {pool} vs random {top}:")
    for metric, spaces in summary["metrics"].items():
        for space, s in spaces.items():
            extra = ""
            if "top10_minus_random10_db" in s:
                extra = (f"  top{top}-random{top} {s['top10_minus_random10_db']:+.2f} dB, beats random in "
                         f"{100 * s['beats_random10']:.0f}% of draws ({s['images_with_top10']} images)")
            print(f"  {metric:10s} {space:28s} Spearman {s['spearman']:+.3f}  Kendall {s['kendall']:+.3f}{extra}")
    if "seconds_per_candidate" in summary:
        c = summary["seconds_per_candidate"]
        print(f"  cost per candidate: scoring {c['scoring']:.3f} s, fitting {c['fitting']:.1f} s "
              f"(scoring {pool} = {pool * c['scoring'] / c['fitting']:.1f} fits)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", nargs="+", default=["F16", "House", "Baboon"])
    parser.add_argument("--spaces", nargs="+", default=["nasdip", "wide"], choices=["nasdip", "wide"])
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--pool", type=int, default=200)
    parser.add_argument("--fitted", type=int, default=60)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--inputs", type=int, default=4)
    parser.add_argument("--max-depth", type=int, default=4)
    parser.add_argument("--max-channels", type=int, default=16)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--summarise", action="store_true", help="only recompute the summary from the rows file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows_path = args.out / "preselect_rows.jsonl"

    if not args.summarise:
        args.out.mkdir(parents=True, exist_ok=True)
        rows_path.write_text("")
        run(args, rows_path)
    rows = [json.loads(line) for line in rows_path.read_text().splitlines() if line.strip()]
    summary = summarise(rows, args.top, args.draws)
    print_summary(summary, args.pool, args.top)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    path = write_json(args.out / "preselect.json", {"settings": settings, "machine": machine(), **summary})
    print(f"wrote {path}")


def run(args: argparse.Namespace, rows_path: Path) -> None:
    makers = {"nasdip": capped_nasdip, "wide": capped_wide}
    spaces = {name: space_from_dict(raw := makers[name](args.max_depth, args.max_channels), source=raw["name"])
              for name in args.spaces}
    problems = {}
    for name in args.images:
        clean = center_crop(load_image(args.data / "classic9" / f"{name}.png"), args.crop, args.crop)
        problems[name] = make_problem("denoise", clean=clean, noise="gaussian", level=args.sigma, seed=args.seed)

    def write(row: dict[str, Any]) -> None:
        with rows_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    config = ScoreConfig(inputs=args.inputs, seed=args.seed, device="cpu")
    pools = {}
    start = time.perf_counter()
    for s_index, (space_name, space) in enumerate(spaces.items()):
        for i_index, (image, problem) in enumerate(problems.items()):
            rng = random.Random(1000 * args.seed + 100 * s_index + i_index)
            pool = sample_candidates(space, problem, args.pool, rng)
            t = time.perf_counter()
            score_all(problem, pool, config)
            seconds = (time.perf_counter() - t) / len(pool)
            pools[(space_name, image)] = pool
            write({"kind": "pool", "space": space_name, "image": image, "fitted": args.fitted, "score_seconds": seconds,
                   "scores": {str(i): c.scores for i, c in enumerate(pool)},
                   "params": {str(i): c.spec and _params(c.spec) for i, c in enumerate(pool)}})
            print(f"{space_name}/{image}: scored {len(pool)} candidates, {seconds * 1000:.0f} ms each", flush=True)

    # random sample first (the correlations), then each metric's top picks
    queue = [(key, i) for key, pool in pools.items() for i in range(min(args.fitted, len(pool)))]
    for metric in METRICS:
        for key, pool in pools.items():
            index = {id(c): i for i, c in enumerate(pool)}
            queue += [(key, index[id(c)]) for c in ranked(pool, metric)[: args.top]]
    done: set = set()
    queue = [item for item in queue if not (item in done or done.add(item))]
    for n, ((space_name, image), i) in enumerate(queue, 1):
        candidate = pools[(space_name, image)][i]
        space = spaces[space_name]
        ev = evaluate(Candidate(genome=candidate.genome, arch=candidate.spec, problem=problems[image], iters=args.iters,
                                seed=args.seed, fit_settings=space.fit_settings(candidate.genome), device="cpu",
                                index=i, threads=args.threads))
        write({"kind": "fit", "space": space_name, "image": image, "candidate": i, "fitness": ev.fitness,
               "psnr": ev.psnr, "params": ev.params, "seconds": ev.seconds, "error": ev.error,
               "genome": candidate.genome})
        eta = (time.perf_counter() - start) / n * (len(queue) - n)
        print(f"[{n}/{len(queue)}] {space_name}/{image} #{i}: PSNR {ev.psnr}, {ev.seconds:.1f} s "
              f"(eta {eta / 60:.0f} min){' ERROR ' + ev.error if ev.error else ''}", flush=True)


def _params(spec) -> int:
    from dipsearch.arch import build_net, count_params

    return count_params(build_net(spec, 3))


if __name__ == "__main__":
    main()
