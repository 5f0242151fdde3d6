"""Does a search with the default settings hand back a network that restores better than the default one?

As a user would, per classic9 crop (Gaussian noise, several sigmas): a GA search (dipsearch.search.ga.run, what
`dipsearch search ga` runs) with its default selection (screening, final rung with stopping, the default genome
among the finalists), then a fit of the winner with EMV stopping at the final rung's budget (what
`dipsearch fit --arch best_arch.toml --stop emv` runs), against the same refit of the space's default genome,
and of the screening's best (what a search without a final rung returned). The
quantity compared is the true PSNR of the stopped output (`psnr_stopped`): what the user gets.

Results are appended to a JSONL file, one line per image (a killed run resumes); the summary (mean, worst,
number of images where the search lost) goes to the .json next to it.

    python bench/search_vs_default.py [DATA] [--images kodim01 kodim02 kodim03 kodim12 House]
        [--sigmas 25 50 15] [--crop 64] [--pop 6] [--gens 2] [--final-iters 1200] [--iters 300]
        [--out bench/results/search_vs_default.jsonl]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, machine, write_json  # noqa: E402
from fidelity import fidelity_space  # noqa: E402

from dipsearch.fit import FitConfig  # noqa: E402
from dipsearch.genes import config_settings  # noqa: E402
from dipsearch.runs import read_jsonl  # noqa: E402
from dipsearch.search import ProblemRecipe, Runtime, SearchSpec, ga  # noqa: E402
from dipsearch.search.ga import GAConfig  # noqa: E402
from dipsearch.search.rungs import RungPlan  # noqa: E402
from dipsearch.search.spec import StopSpec  # noqa: E402
from dipsearch.space import SearchSpace, space_from_dict  # noqa: E402
from dipsearch.tasks import Problem  # noqa: E402
from dipsearch.tomlio import dumps_toml  # noqa: E402
from dipsearch.variants import VariantSettings, fit_variant  # noqa: E402


def refit(problem: Problem, space: SearchSpace, genome: dict, iters: int) -> float:
    """True PSNR of `genome`'s fit at `iters` iterations with EMV stopping, as `dipsearch fit --arch ... --stop emv`
    runs it (the genome's fit settings, seed 0, one thread): the stopped output is what a user gets."""
    settings = space.fit_settings(genome)
    config = FitConfig(iters=iters, seed=0, device="cpu", ssim_every=0, **config_settings(settings))
    stopper = StopSpec.parse("emv").hook(0, problem)
    result = fit_variant(
        stopper.prepare(problem), space.decode(genome), config, VariantSettings.from_settings(settings), [stopper]
    )
    return result.summary(problem)["psnr_stopped"]


def summarise(rows: list[dict]) -> dict:
    def stats(key: str) -> dict:
        diffs = [r[key] - r["default_psnr"] for r in rows]
        return {
            "mean": statistics.mean(diffs),
            "worst": min(diffs),
            "best": max(diffs),
            "lost": sum(d < 0 for d in diffs),
            "images": len(diffs),
        }

    return {
        "searched_minus_default": stats("searched_psnr"),
        "screen_winner_minus_default": stats("screen_psnr"),
        "winner_is_default": sum(r["winner_is_default"] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", nargs="+", default=["kodim01", "kodim02", "kodim03", "kodim12", "House"])
    parser.add_argument("--sigmas", nargs="+", type=float, default=[25, 50, 15])
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--pop", type=int, default=6)
    parser.add_argument("--gens", type=int, default=2)
    parser.add_argument("--final-iters", type=int, default=1200)
    parser.add_argument("--iters", type=int, default=SearchSpec.iters, help="screening iterations per candidate")
    parser.add_argument("--out", type=Path, default=RESULTS / "search_vs_default.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)

    raw = fidelity_space()
    space = space_from_dict(raw, source="fidelity")
    work = Path(tempfile.mkdtemp(prefix="search_vs_default_"))
    space_path = work / "fidelity.toml"
    space_path.write_text(dumps_toml(raw))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {r["image"] for r in read_jsonl(args.out)} if args.out.exists() else set()
    for i, name in enumerate(args.images):
        if name in done:
            continue
        sigma = args.sigmas[i % len(args.sigmas)]
        start = time.perf_counter()
        out = work / name
        recipe = ProblemRecipe(clean=str(args.data / "classic9" / f"{name}.png"), crop=args.crop, sigma=sigma)
        spec = SearchSpec(
            space=str(space_path),
            iters=args.iters,
            threads=1,
            ga=GAConfig(pop=args.pop, gens=args.gens),
            rungs=RungPlan(final_iters=args.final_iters),
        )
        result = ga.run(recipe, spec, Runtime(workers=1, out=out))
        run, summary = result.run_dir, result.summary
        screened = [r for r in read_jsonl(run / "evaluations.jsonl") if "rung" not in r and r["fitness"] is not None]
        screen_best = max(screened, key=lambda r: r["fitness"])
        fitted = recipe.build()
        searched = refit(fitted, space, result.best_genome, args.final_iters)
        default = refit(fitted, space, space.default(), args.final_iters)
        screen = refit(fitted, space, screen_best["genome"], args.final_iters)
        row = {
            "image": name,
            "sigma": sigma,
            "searched_psnr": searched,
            "default_psnr": default,
            "screen_psnr": screen,
            "winner_is_default": summary["final_choice_is_default"],
            "screen_winner_is_default": screen_best["genome"] == space.default(),
            "final": [
                {k: f[k] for k in ("default", "score", "psnr", "stopped_iter", "z_vs_default")}
                for f in summary["final"]
            ],
            "evaluations": summary["evaluations"],
            "seconds": round(time.perf_counter() - start, 1),
        }
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(
            f"{name} s{sigma:g}: searched {row['searched_psnr']:.2f} dB, default {row['default_psnr']:.2f}, "
            f"screening's best {row['screen_psnr']:.2f} (winner is default: {row['winner_is_default']}); "
            f"{row['seconds']:.0f} s",
            flush=True,
        )
    rows = read_jsonl(args.out)
    result = {
        "settings": {**vars(args), "data": str(args.data), "out": str(args.out)},
        "rows": rows,
        "summary": summarise(rows),
        "machine": machine(),
    }
    path = write_json(args.out.with_suffix(".json"), result)
    for key, s in result["summary"].items():
        print(f"{key}: {s}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
