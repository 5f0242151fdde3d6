"""Is training-free pre-selection worth its cost? Metric vs true PSNR after a short fit, and top-k vs random-k.

For each space (nasdip.toml and wide.toml, both capped so a CPU can fit them: depth 3-4, at most
--max-channels channels) and each classic9 crop (Gaussian noise sigma 25, seeded):
  1. sample --pool distinct candidates that fit the crop and score each with every metric
     (dipsearch.preselect, --inputs forward passes each; the pool beyond --fitted only adds scoring cost);
  2. fit the first --fitted of them (a uniform random sample: the pool is drawn at random) with the
     search's fitness (dipsearch.scoring.evaluate, --iters iterations) and record the true PSNR of the scored output.
     Fits go round-robin over the (space, image) pairs, so a run cut short still has equal samples.
Then per (space, image) and metric: Spearman and Kendall between -metric (every metric is lower-is-better,
so a useful metric correlates POSITIVELY here) and the true PSNR over the fitted sample; the seconds of
scoring against fitting one candidate; and, with the fitted sample as the pool, the best true PSNR of
"pre-select the top k by the metric, fit them" against "fit k random" at the same budget of k fits, for
k = --top and k = 3, over --draws seeded draws: each draw takes a random subset of --subset of the fitted
candidates as the scored pool (so the pre-selected set changes from draw to draw too).

Rows go to OUT/preselect_rows.jsonl as they are made (a killed run keeps them: --summarise recomputes the
summary from that file); the summary is OUT/preselect.json and is printed.

CPU budget: capped candidates at 64 px cost 1.5-3.5 s per 100 iterations on one free core, so 360 fits of
200 iterations are about 30-40 min of one core; 128 px crops would be 4x that.

    nice -n 10 python bench/preselect.py [DATA] [--images F16 House Baboon] [--crop 64] [--pool 60]
        [--fitted 60] [--top 10] [--subset 40] [--iters 200] [--inputs 4] [--threads 1] [--out bench/results]
        [--summarise]
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
from dipsearch.nets.space import SPACES_DIR, space_from_dict  # noqa: E402
from dipsearch.preselect import METRICS, ScoreConfig  # noqa: E402
from dipsearch.preselect.scoring import sample_candidates, score_all  # noqa: E402
from dipsearch.scoring.evaluate import Candidate, evaluate  # noqa: E402
from dipsearch.store.imageio import center_crop, load_image  # noqa: E402


def capped_nasdip(max_depth: int, max_channels: int) -> dict[str, Any]:
    """nasdip.toml with depth <= max_depth and widths <= max_channels; the cell and skip genes keep their range."""
    data = tomllib.loads((SPACES_DIR / "nasdip.toml").read_text())
    data["name"] = f"nasdip-capped-d{max_depth}-c{max_channels}"
    data["genes"]["depth"].update(high=max_depth, default=min(data["genes"]["depth"]["default"], max_depth))
    widths = [c for c in data["levels"]["n_down"]["choices"] if c <= max_channels] or [max_channels]
    widths = sorted(set(widths) | {c for c in (8, max_channels) if c <= max_channels})
    data["levels"]["n_down"].update(
        choices=widths, default=[min(v, max(widths)) for v in data["levels"]["n_down"]["default"]]
    )
    return data


def correlations(x: list[float], y: list[float]) -> dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    return {"spearman": float(spearmanr(x, y).statistic), "kendall": float(kendalltau(x, y).statistic)}


def pick_vs_random(
    randoms: list[dict[str, Any]], scores: dict[str, dict[str, float]], metric: str, k: int, subset: int, draws: int
) -> dict[str, float]:
    """Mean best true PSNR of the metric's top k and of k random, over seeded subsets of the fitted pool."""
    rng = random.Random(k)
    picked, chance, wins = [], [], 0.0
    for _ in range(draws):
        pool = rng.sample(randoms, min(subset, len(randoms)))
        top = sorted(pool, key=lambda r: scores[str(r["candidate"])][metric])[:k]
        best_top = max(r["psnr"] for r in top)
        best_random = max(r["psnr"] for r in rng.sample(pool, min(k, len(pool))))
        picked.append(best_top)
        chance.append(best_random)
        wins += 1.0 if best_top > best_random else 0.5 if best_top == best_random else 0.0
    return {"top_best": statistics.mean(picked), "random_best": statistics.mean(chance), "win_rate": wins / draws}


def summarise(rows: list[dict[str, Any]], top: int, subset: int, draws: int) -> dict[str, Any]:
    pools = [r for r in rows if r["kind"] == "pool"]
    fits = {(r["space"], r["image"], r["candidate"]): r for r in rows if r["kind"] == "fit" and r["psnr"] is not None}
    out: dict[str, Any] = {"pairs": {}, "metrics": {}}
    for pool in pools:
        space, image = pool["space"], pool["image"]
        scores = pool["scores"]  # candidate index -> {metric: value}
        randoms = [fits[(space, image, i)] for i in range(pool["fitted"]) if (space, image, i) in fits]
        if len(randoms) < max(top, 5):
            continue
        pair: dict[str, Any] = {
            "n_fitted": len(randoms),
            "score_seconds": pool["score_seconds"],
            "fit_seconds": statistics.mean(r["seconds"] for r in randoms),
            "best_psnr": max(r["psnr"] for r in randoms),
            "median_psnr": statistics.median(r["psnr"] for r in randoms),
            "metrics": {},
        }
        psnrs = [r["psnr"] for r in randoms]
        for metric in METRICS:
            entry = correlations([-scores[str(r["candidate"])][metric] for r in randoms], psnrs)
            for k in (top, 3):
                entry[f"top{k}"] = pick_vs_random(randoms, scores, metric, k, subset, draws)
            pair["metrics"][metric] = entry
        out["pairs"][f"{space}/{image}"] = pair
    for space in sorted({p["space"] for p in pools}):
        mine = [p for key, p in out["pairs"].items() if key.startswith(space + "/")]
        if not mine:
            continue
        for metric in METRICS:
            entries = [p["metrics"][metric] for p in mine]
            summary = {stat: statistics.mean(e[stat] for e in entries) for stat in ("spearman", "kendall")}
            for k in (top, 3):
                summary[f"top{k}"] = {
                    stat: statistics.mean(e[f"top{k}"][stat] for e in entries)
                    for stat in ("top_best", "random_best", "win_rate")
                }
            summary["images"] = len(entries)
            out["metrics"].setdefault(metric, {})[space] = summary
    pairs = list(out["pairs"].values())
    if pairs:
        out["seconds_per_candidate"] = {
            "scoring": statistics.mean(p["score_seconds"] for p in pairs),
            "fitting": statistics.mean(p["fit_seconds"] for p in pairs),
        }
        out["n_fitted"] = {key: p["n_fitted"] for key, p in out["pairs"].items()}
    return out


def print_summary(summary: dict[str, Any], top: int, subset: int) -> None:
    print(f"\nfitted per (space, image): {summary.get('n_fitted')}")
    print(
        f"-metric vs true PSNR, mean over images (positive = ranks like PSNR); best true PSNR of the top k by the metric "
        f"vs k random, pools of {subset} fitted candidates (dB, share of draws the top k wins):"
    )
    for metric, spaces in summary["metrics"].items():
        for space, s in spaces.items():
            picks = "  ".join(
                f"k={k[3:]}: {v['top_best']:.2f} vs {v['random_best']:.2f} ({100 * v['win_rate']:.0f}%)"
                for k, v in s.items()
                if k.startswith("top")
            )
            print(f"  {metric:10s} {space:24s} Spearman {s['spearman']:+.3f}  Kendall {s['kendall']:+.3f}  {picks}")
    if "seconds_per_candidate" in summary:
        c = summary["seconds_per_candidate"]
        print(
            f"  cost per candidate: scoring {c['scoring']:.3f} s, fitting {c['fitting']:.1f} s "
            f"(one fit = {c['fitting'] / c['scoring']:.0f} scorings)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", nargs="+", default=["F16", "House", "Baboon"])
    parser.add_argument("--spaces", nargs="+", default=["nasdip", "wide"], choices=["nasdip", "wide"])
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--pool", type=int, default=60)
    parser.add_argument("--fitted", type=int, default=60)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--inputs", type=int, default=4)
    parser.add_argument("--max-depth", type=int, default=4)
    parser.add_argument("--max-channels", type=int, default=16)
    parser.add_argument("--subset", type=int, default=40, help="fitted candidates per resampled pool")
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
    summary = summarise(rows, args.top, args.subset, args.draws)
    print_summary(summary, args.top, args.subset)
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    path = write_json(args.out / "preselect.json", {"settings": settings, "machine": machine(), **summary})
    print(f"wrote {path}")


def run(args: argparse.Namespace, rows_path: Path) -> None:
    makers = {"nasdip": capped_nasdip, "wide": capped_wide}
    spaces = {
        name: space_from_dict(raw := makers[name](args.max_depth, args.max_channels), source=raw["name"])
        for name in args.spaces
    }
    problems = {}
    for name in args.images:
        clean = center_crop(load_image(args.data / "classic9" / f"{name}.png"), args.crop, args.crop)
        problems[name] = make_problem("denoise", clean=clean, noise="gaussian", level=args.sigma, seed=args.seed)

    def write(row: dict[str, Any]) -> None:
        with rows_path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")

    config = ScoreConfig(inputs=args.inputs, seed=args.seed, device="cpu", threads=args.threads)
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
            write(
                {
                    "kind": "pool",
                    "space": space_name,
                    "image": image,
                    "fitted": args.fitted,
                    "score_seconds": seconds,
                    "scores": {str(i): c.scores for i, c in enumerate(pool)},
                    "params": {str(i): c.spec and _params(c.spec) for i, c in enumerate(pool)},
                }
            )
            print(f"{space_name}/{image}: scored {len(pool)} candidates, {seconds * 1000:.0f} ms each", flush=True)

    longest = max(len(pool) for pool in pools.values())
    queue = [(key, i) for i in range(min(args.fitted, longest)) for key, pool in pools.items() if i < len(pool)]
    for n, ((space_name, image), i) in enumerate(queue, 1):
        candidate = pools[(space_name, image)][i]
        space = spaces[space_name]
        ev = evaluate(
            Candidate(
                genome=candidate.genome,
                arch=candidate.spec,
                problem=problems[image],
                iters=args.iters,
                seed=args.seed,
                fit_settings=space.fit_settings(candidate.genome),
                device="cpu",
                index=i,
                threads=args.threads,
            )
        )
        write(
            {
                "kind": "fit",
                "space": space_name,
                "image": image,
                "candidate": i,
                "fitness": ev.fitness,
                "psnr": ev.psnr,
                "params": ev.params,
                "seconds": ev.seconds,
                "error": ev.error,
                "genome": candidate.genome,
            }
        )
        eta = (time.perf_counter() - start) / n * (len(queue) - n)
        print(
            f"[{n}/{len(queue)}] {space_name}/{image} #{i}: PSNR {ev.psnr}, {ev.seconds:.1f} s "
            f"(eta {eta / 60:.0f} min){' ERROR ' + ev.error if ev.error else ''}",
            flush=True,
        )


def _params(spec) -> int:
    from dipsearch.nets.arch import build_net, count_params

    return count_params(build_net(spec, 3))


if __name__ == "__main__":
    main()
