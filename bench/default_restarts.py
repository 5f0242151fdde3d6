"""Does a search earn its answer, or would restarts of the default network do as well?

The judge's other side: per image x sigma, what `dipsearch restore --search none` returns at the budget of
bench/search_vs_default.py, with no search at all: the space's default network fitted with seeds 0, 1, ..., R,
every fit stopped by `--stop` (default auto) on one shared held-out split, averaged with equal and with inverse
held-out-MSE weights; against the same reference, the default with EMV stopping (seed 0, every pixel). Run it with
the settings of a search_vs_default run and compare the rows: R + 1 fits here against that search's cost.

Rows go to a JSONL file, one per (image, sigma) (a killed run resumes; two processes may share the file, each
with its own images); the summary (mean, worst, best difference to the reference, rows below it by more than
0.1 dB) goes to the .json next to it.

    python bench/default_restarts.py [DATA] [--images kodim01 ...] [--sigmas 25] [--crop 64] [--iters 1200]
        [--restarts 2] [--stop auto] [--out bench/results/default_restarts.jsonl] [--summary-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, machine, write_json  # noqa: E402
from common import gain_stats as stats
from fidelity import fidelity_space  # noqa: E402

from dipsearch.fit import FitConfig  # noqa: E402
from dipsearch.genes import config_settings  # noqa: E402
from dipsearch.metrics import psnr  # noqa: E402
from dipsearch.runs import read_jsonl  # noqa: E402
from dipsearch.search import ProblemRecipe  # noqa: E402
from dipsearch.search.spec import StopSpec  # noqa: E402
from dipsearch.space import space_from_dict  # noqa: E402
from dipsearch.variants import VariantSettings, fit_variant  # noqa: E402

VARIANTS = ("equal", "inverse_mse")


def stopped_fit(problem, space, iters: int, seed: int, stop: str) -> tuple[torch.Tensor, float | None, int]:
    """The default genome fitted with `seed`, stopped by `stop` whose held-out split is seed 0's (shared): the
    stopped image, its held-out MSE (None without held-out pixels) and the stop iteration."""
    genome = space.default()
    settings = space.fit_settings(genome)
    hook = StopSpec.parse(stop).hook(0, problem)
    prepared = hook.prepare(problem)
    config = FitConfig(iters=iters, seed=seed, device="cpu", ssim_every=0, **config_settings(settings))
    result = fit_variant(prepared, space.decode(genome), config, VariantSettings.from_settings(settings), [hook])
    image = result.extras["images"]["output_stopped"].float()
    held = next((d.held for d in hook.detectors if getattr(d, "held", None) is not None), None)
    mse = float(held.mse(image, prepared)) if held is not None else None
    return image, mse, int(result.summary_extra.get("stopped_iter", result.iters_run))


def summarise(rows: list[dict]) -> dict:
    out = {v: stats([r[v] - r["default_stop"] for r in rows]) for v in VARIANTS}
    for sigma in sorted({r["sigma"] for r in rows}):
        out[f"inverse_mse_sigma{sigma:g}"] = stats(
            [r["inverse_mse"] - r["default_stop"] for r in rows if r["sigma"] == sigma]
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", nargs="+", default=["kodim01", "kodim02", "kodim03", "kodim12"])
    parser.add_argument("--sigmas", nargs="+", type=float, default=[25])
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument(
        "--iters", type=int, default=1200, help="the budget of every fit (search_vs_default's final rung)"
    )
    parser.add_argument("--restarts", type=int, default=2, help="fits beside the default's own (seeds 1..R)")
    parser.add_argument("--stop", default="auto", help="the stopping of every member")
    parser.add_argument("--out", type=Path, default=RESULTS / "default_restarts.jsonl")
    parser.add_argument("--summary-only", action="store_true", help="write the summary of the rows on file")
    args = parser.parse_args()
    torch.set_num_threads(1)

    space = space_from_dict(fidelity_space(), source="fidelity")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    done = {(r["image"], r["sigma"]) for r in read_jsonl(args.out)} if args.out.exists() else set()
    for name in [] if args.summary_only else args.images:
        for sigma in args.sigmas:
            if (name, sigma) in done:
                continue
            start = time.perf_counter()
            problem = ProblemRecipe(
                clean=str(args.data / "classic9" / f"{name}.png"), crop=args.crop, sigma=sigma
            ).build()
            reference, _, ref_iter = stopped_fit(problem, space, args.iters, 0, "emv")
            members = [stopped_fit(problem, space, args.iters, seed, args.stop) for seed in range(args.restarts + 1)]
            images = [image for image, _, _ in members]
            row = {
                "image": name,
                "sigma": sigma,
                "default_stop": psnr(reference, problem.clean),
                "default_stop_iter": ref_iter,
                "members": [psnr(image, problem.clean) for image in images],
                "stopped_iters": [it for _, _, it in members],
                "equal": psnr(torch.stack(images).mean(0), problem.clean),
            }
            if all(mse is not None for _, mse, _ in members):
                weights = torch.tensor([1.0 / mse for _, mse, _ in members])
                weights = weights / weights.sum()
                row["weights"] = weights.tolist()
                row["inverse_mse"] = psnr(sum(w * image for w, image in zip(weights.tolist(), images)), problem.clean)
            else:
                row["inverse_mse"] = row["equal"]
            row["seconds"] = round(time.perf_counter() - start, 1)
            with args.out.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(
                f"{name} s{sigma:g}: default-stop {row['default_stop']:.2f}, members "
                + " ".join(f"{p:.2f}" for p in row["members"])
                + f", inverse-mse {row['inverse_mse']:.2f} ({row['inverse_mse'] - row['default_stop']:+.2f})",
                flush=True,
            )
    rows = read_jsonl(args.out)
    summary = summarise(rows)
    for label, figures in summary.items():
        print(
            f"{label}: mean {figures['mean']:+.2f} dB, worst {figures['worst']:+.2f}, {figures['below_0.1']} below -0.1"
        )
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    write_json(
        args.out.with_suffix(".json"), {"settings": settings, "rows": rows, "summary": summary, "machine": machine()}
    )


if __name__ == "__main__":
    main()
