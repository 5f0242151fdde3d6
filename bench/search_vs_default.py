"""Does a search with the default settings hand back a better restoration than the default network?

Per image x sigma (classic9 crops, Gaussian noise), in one run, the true PSNR of:
  default-stop   the space's default genome, a plain fit at the final rung's budget with EMV stopping (what
                 `dipsearch fit --stop emv` gives without a search): the reference every figure is compared with;
  default-avg    the same fit without stopping, its averaged (EMA) output at the full budget;
  pick           the search's single answer (best_output.png: the final rung's choice, its stopped output);
  ensemble-*     the search's ensemble (ensemble.png) under each weighting (equal, inverse-mse, fitted);
  mixes          the ensemble of other member sets, rebuilt from the same final-rung outputs as the search builds
                 its own (dipsearch.search.ensemble.make_ensemble), inverse-mse and equal weights: the finalists
                 alone (different architectures), the pick and its restarts (other seeds), all of them, and all of
                 them averaged without regard to which member fitted which pixel ("plain");
  cbm3d          the classical reference (optional `bm3d` package).
A search is a GA (dipsearch.search.ga.run, what `dipsearch search ga` runs) with a final rung of `--final`
finalists, the default among them, and `--restarts` refits of the chosen one with other seeds, each withholding
the pixels of its own seed or the finalists' (`--splits`). Its cost is counted
in full-fit equivalents: the iterations it ran (screening at its scale, rungs, final rung, restarts) over the
final rung's budget, a screening fit at scale 1/2 counting a quarter of its iterations (a quarter of the pixels).

Results are appended to a JSONL file, one line per (image, sigma) (a killed run resumes); the summary (per
variant: mean, worst and best difference to default-stop, images below it by more than 0.1 dB; the gap to CBM3D)
goes to the .json next to it. `--references FILE` takes default-stop, default-avg and cbm3d from the rows of an
earlier run with the same images, crop and final budget (they do not depend on the search), saving three fits a row.

    python bench/search_vs_default.py [DATA] [--images kodim01 kodim02 kodim03 kodim12] [--sigmas 25]
        [--crop 64] [--pop 4] [--gens 1] [--iters 300] [--final 3] [--restarts 2] [--final-iters 1200]
        [--final-stop emv|none] [--splits own|shared] [--references OLD.jsonl]
        [--out bench/results/search_vs_default.jsonl]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS  # noqa: E402
from common import gain_stats as stats
from judge import (  # noqa: E402
    Rows,
    classic9_recipe,
    default_fit,
    earlier_rows,
    fidelity_space,
    final_members,
    member_ensemble,
    space_on_disk,
    write_result,
)

from dipsearch.metrics import psnr  # noqa: E402
from dipsearch.problems.problem import Problem  # noqa: E402
from dipsearch.search import Runtime, SearchSpec, ga  # noqa: E402
from dipsearch.search.ensemble import combine  # noqa: E402
from dipsearch.search.ga import GAConfig  # noqa: E402
from dipsearch.search.prepare import default_eval_scale  # noqa: E402
from dipsearch.search.rungs import RungPlan  # noqa: E402
from dipsearch.store.runs import read_jsonl  # noqa: E402


def cbm3d(problem: Problem) -> float | None:
    try:
        from dipsearch.baselines.bm3d_method import cbm3d as run
    except ImportError:
        return None
    try:
        return psnr(run(problem), problem.clean)
    except ImportError:
        return None


def cost(rows: list[dict], final_iters: int, scale: float) -> dict[str, float]:
    """Full-fit equivalents of a search's fits (evaluations.jsonl rows), by part."""
    screen = sum(r["iters_run"] for r in rows if r.get("rung") is None) * scale**2
    rung = sum(r["iters_run"] for r in rows if r.get("rung") not in (None, "final"))
    final = sum(r["iters_run"] for r in rows if r.get("rung") == "final")
    return {
        "screening": screen / final_iters,
        "rungs": rung / final_iters,
        "final": final / final_iters,
        "fits_counted_whole": (screen + rung) / final_iters + sum(1 for r in rows if r.get("rung") == "final"),
    }


def mixes(run: Path, summary: dict, problem: Problem) -> dict[str, dict]:
    """The ensemble of each member set, from the final rung's outputs (final/<key>.png), each member judged on
    the pixels its fit withheld as the search does."""
    finalists = [f for f in summary["final"] if f["score"] is not None]
    pick = next(f for f in finalists if f["index"] == summary["final_choice"])
    restarts = [f for f in summary.get("restarts", []) if f["score"] is not None]
    sets = {
        "finalists": finalists,
        "pick+restarts": [pick, *restarts],
        "finalists+restarts": [*finalists, *restarts],
    }
    out = {}
    for name, members in sets.items():
        images, splits = final_members(run, members)
        ensemble = member_ensemble(problem, [f["key"] for f in members], images, splits)
        out[name] = {
            "members": len(members),
            "inverse-mse": ensemble.psnr,
            "equal": ensemble.alternatives["equal"]["psnr"],
            "weights": [round(w, 3) for w in ensemble.weights],
        }
    everyone = out["finalists+restarts"]
    images, _ = final_members(run, sets["finalists+restarts"])
    everyone["plain"] = psnr(combine(images, everyone["weights"]), problem.clean)
    return out


VARIANTS = ("default_avg", "pick", "ensemble_equal", "ensemble_inverse-mse", "ensemble_fitted")


def summarise(rows: list[dict]) -> dict:
    out = {v: stats([r[v] - r["default_stop"] for r in rows]) for v in VARIANTS if all(v in r for r in rows)}
    for mix in rows[0]["mixes"]:
        for weighting in rows[0]["mixes"][mix]:
            if weighting in ("members", "weights"):
                continue
            out[f"mix_{mix}_{weighting}"] = stats([r["mixes"][mix][weighting] - r["default_stop"] for r in rows])
    with_cbm3d = [r for r in rows if r["cbm3d"] is not None]
    if with_cbm3d:
        out["cbm3d_gap"] = {
            "default_stop": statistics.mean(r["cbm3d"] - r["default_stop"] for r in with_cbm3d),
            "ensemble_inverse-mse": statistics.mean(r["cbm3d"] - r["ensemble_inverse-mse"] for r in with_cbm3d),
        }
    out["cost_full_fits"] = {
        "mean": statistics.mean(r["cost"]["fits_counted_whole"] for r in rows),
        "iterations_mean": statistics.mean(
            r["cost"]["screening"] + r["cost"]["rungs"] + r["cost"]["final"] for r in rows
        ),
    }
    out["pick_is_default"] = sum(r["pick_is_default"] for r in rows)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", nargs="+", default=["kodim01", "kodim02", "kodim03", "kodim12"])
    parser.add_argument("--sigmas", nargs="+", type=float, default=[25])
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--pop", type=int, default=4)
    parser.add_argument("--gens", type=int, default=1)
    parser.add_argument("--final", type=int, default=3)
    parser.add_argument("--restarts", type=int, default=2)
    parser.add_argument("--final-iters", type=int, default=1200)
    parser.add_argument(
        "--final-stop", default="emv", help="the final rung's detector, or none: members are averaged outputs"
    )
    parser.add_argument("--iters", type=int, default=300, help="screening iterations per candidate")
    parser.add_argument("--splits", choices=("own", "shared"), default="own", help="the restarts' held-out pixels")
    parser.add_argument(
        "--references", type=Path, help="a JSONL of an earlier run: its default-stop, default-avg and cbm3d figures"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "search_vs_default.jsonl")
    args = parser.parse_args()
    torch.set_num_threads(1)

    work = Path(tempfile.mkdtemp(prefix="search_vs_default_"))
    space, space_path = space_on_disk(fidelity_space(), work)
    rows_file = Rows(args.out, ("image", "sigma"))
    known = earlier_rows(args.references, ("image", "sigma"))
    for name in args.images:
        for sigma in args.sigmas:
            if (name, sigma) in rows_file.done:
                continue
            start = time.perf_counter()
            recipe = classic9_recipe(args.data, name, args.crop, sigma)
            problem = recipe.build()
            scale = default_eval_scale(problem, space)
            spec = SearchSpec(
                eval_scale=scale,
                space=str(space_path),
                iters=args.iters,
                threads=1,
                ga=GAConfig(pop=args.pop, gens=args.gens),
                rungs=RungPlan(
                    final=args.final,
                    final_iters=args.final_iters,
                    restarts=args.restarts,
                    splits=args.splits,
                    stop=None if args.final_stop == "none" else {"detector": args.final_stop},
                ),
            )
            result = ga.run(recipe, spec, Runtime(workers=1, out=work / f"{name}_s{sigma:g}"))
            run, summary = result.run_dir, result.summary
            searched = time.perf_counter() - start
            earlier = known.get((name, sigma))
            if earlier is not None:
                default_stop, default_avg, reference_cbm3d = (
                    earlier["default_stop"],
                    earlier["default_avg"],
                    earlier["cbm3d"],
                )
            else:
                default_stop, _ = default_fit(problem, space, args.final_iters, stop=True)
                default_avg, _ = default_fit(problem, space, args.final_iters, stop=False)
                reference_cbm3d = cbm3d(problem)
            ensemble = summary["ensemble"]
            weightings = {ensemble["method"]: ensemble["psnr"]} | {
                k: v["psnr"] for k, v in ensemble["weightings"].items()
            }
            row = {
                "image": name,
                "sigma": sigma,
                "default_stop": default_stop,
                "default_avg": default_avg,
                "pick": summary["best_psnr"],
                "pick_is_default": summary["final_choice_is_default"],
                **{f"ensemble_{k}": v for k, v in weightings.items()},
                "weights": [m["weight"] for m in ensemble["members"]],
                "mixes": mixes(run, summary, problem),
                "cbm3d": reference_cbm3d,
                "finalists": [
                    {k: f[k] for k in ("default", "score", "psnr", "stopped_iter")} for f in summary["final"]
                ],
                "restarts": [
                    {k: f.get(k) for k in ("score", "psnr", "stopped_iter", "split")} for f in summary["restarts"]
                ],
                "cost": cost(read_jsonl(run / "evaluations.jsonl"), args.final_iters, scale),
                "search_seconds": round(searched, 1),
                "seconds": round(time.perf_counter() - start, 1),
            }
            rows_file.add(row)
            print(
                f"{name} s{sigma:g}: default-stop {default_stop:.2f}, default-avg {default_avg:.2f}, pick "
                f"{row['pick']:.2f}, ensemble equal/inverse-mse {row['ensemble_equal']:.2f}/"
                f"{row['ensemble_inverse-mse']:.2f}, cbm3d {row['cbm3d'] or 0:.2f}; "
                f"{row['cost']['fits_counted_whole']:.2f} full fits; {row['seconds']:.0f} s",
                flush=True,
            )
    rows = [r for r in rows_file.read() if r["image"] in args.images and r["sigma"] in args.sigmas]
    summary = summarise(rows)
    path = write_result(args.out, args, rows, summary)
    for key, s in summary.items():
        print(f"{key}: {s}")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
