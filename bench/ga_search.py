"""A GA architecture search per image, scored without ground truth: does the winner beat the default network?

For each of 3 classic9 128x128 centre crops with Gaussian noise sigma 25 (seeded), one GA search
(dipsearch.search.ga.run, what `dipsearch search ga` runs) with holdout fitness (5 % of the observed pixels withheld). The space's default genome is always
in the initial population, so its true PSNR at the same fit budget comes from the same
run. Reported per image: true PSNR of the winner (the candidate with the best holdout fitness) vs the
default, the best true PSNR of any evaluated candidate (an oracle no user has), evaluations, minutes; and,
fitted separately at the same budget, the seed network itself (ArchSpec(), 572,827 parameters).

CPU budget: by default search_spaces/demo.toml (variations of the seed network capped at 64 channels and
depth 5; its default genome is the seed network with 64 instead of 128 channels at the deepest level),
population 4, 3 generations of 4 children (at most 16 fits per image), 300 iterations per candidate, one
thread, one worker: about 25-30 min on one shared core. Everything is a flag:

    python bench/ga_search.py [DATA] [--images F16 House Baboon] [--space demo] [--pop 4] [--gens 3]
                              [--iters 300] [--final-iters 2400] [--threads 1] [--out bench/results]

Writes ga_search.json (and the run folders under OUT/ga_search/). Never part of the test suite.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, machine, write_json  # noqa: E402

from dipsearch import ArchSpec, make_problem  # noqa: E402
from dipsearch.scoring.evaluate import Candidate, evaluate  # noqa: E402
from dipsearch.search import ProblemRecipe, Runtime, SearchSpec, ga  # noqa: E402
from dipsearch.search.ga import GAConfig  # noqa: E402
from dipsearch.search.rungs import RungPlan  # noqa: E402
from dipsearch.store.imageio import center_crop, load_image  # noqa: E402


def seed_network(image: Path, args: argparse.Namespace) -> float:
    """True PSNR of the seed network on the same problem, budget and fitness as the search's candidates."""
    clean = center_crop(load_image(image), args.crop, args.crop)
    problem = make_problem("denoise", clean=clean, noise="gaussian", level=args.sigma, seed=args.seed)
    ev = evaluate(
        Candidate(
            genome={},
            arch=ArchSpec(),
            problem=problem,
            iters=args.iters,
            seed=args.seed,
            device="cpu",
            threads=args.threads,
        )
    )
    return ev.psnr


def one_image(image: Path, args: argparse.Namespace, runs: Path) -> dict[str, Any]:
    recipe = ProblemRecipe(clean=str(image), crop=args.crop, sigma=args.sigma, seed=args.seed)
    spec = SearchSpec(
        space=args.space,
        iters=args.iters,
        fitness="holdout",
        seed=args.seed,
        threads=args.threads,
        ga=GAConfig(pop=args.pop, gens=args.gens, seed=args.seed),
        rungs=RungPlan(final_iters=args.final_iters),
    )
    print(
        f"ga.run on {image.name}: population {args.pop}, {args.gens} generations, {args.iters} iterations", flush=True
    )
    start = time.perf_counter()
    result = ga.run(recipe, spec, Runtime(workers=1, out=runs))
    if result.best_fitness is None:
        raise SystemExit(f"the search on {image.name} has no winner; see {result.run_dir}")
    summary, run = result.summary, result.run_dir
    rows = [e for e in result.evaluations if e.psnr is not None]
    return {
        "image": image.stem,
        "run": str(run),
        "winner_psnr": summary["best_psnr"],
        "default_psnr": summary["default_psnr"],
        "gain_db": summary["best_psnr"] - summary["default_psnr"],
        "winner_fitness": summary["best_fitness"],
        "default_fitness": summary["default_fitness"],
        "oracle_psnr": max(e.psnr for e in rows),
        "evaluations": summary["evaluations"],
        "failed": summary["failed"],
        "winner_params": summary["best_params"],
        "winner_genome": summary["best_genome"],
        "minutes": (time.perf_counter() - start) / 60,
        "seed_network_psnr": seed_network(image, args),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", nargs="+", default=["F16", "House", "Baboon"])
    parser.add_argument("--space", default="demo")
    parser.add_argument("--pop", type=int, default=4)
    parser.add_argument("--gens", type=int, default=3)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--final-iters", type=int, default=RungPlan.final_iters, help="the final rung's budget")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    runs = args.out / "ga_search"
    start = time.perf_counter()
    results = [one_image(args.data / "classic9" / f"{name}.png", args, runs) for name in args.images]
    minutes = (time.perf_counter() - start) / 60

    print(
        f"\nGA ({args.pop} + {args.pop}) x {args.gens} generations, {args.iters} iterations per candidate, holdout "
        f"fitness, space {args.space}, {args.crop} px crops, sigma {args.sigma:g}:"
    )
    for r in results:
        print(
            f"  {r['image']:8s} winner {r['winner_psnr']:.2f} dB vs default {r['default_psnr']:.2f} dB "
            f"({r['gain_db']:+.2f}); seed network {r['seed_network_psnr']:.2f}; best of any candidate "
            f"{r['oracle_psnr']:.2f}; {r['evaluations']} evaluations "
            f"({r['failed']} failed); {r['minutes']:.1f} min"
        )
    mean_gain = statistics.mean(r["gain_db"] for r in results)
    vs_seed = statistics.mean(r["winner_psnr"] - r["seed_network_psnr"] for r in results)
    print(
        f"  mean gain {mean_gain:+.2f} dB over the space default, {vs_seed:+.2f} dB over the seed network; "
        f"{sum(r['evaluations'] for r in results)} evaluations; {minutes:.1f} min"
    )
    out = write_json(
        args.out / "ga_search.json",
        {
            "settings": {**vars(args), "data": str(args.data), "out": str(args.out)},
            "results": results,
            "mean_gain_db": mean_gain,
            "mean_gain_vs_seed_db": vs_seed,
            "minutes": minutes,
            "machine": machine(),
        },
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
