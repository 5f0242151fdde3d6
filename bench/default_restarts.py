"""Does a search earn its answer, or would restarts of the default network do as well?

The judge's other side: per image x sigma, what `dipsearch restore --search none` returns at the budget of
bench/search_vs_default.py, run through the same code (dipsearch.pipelines.restore.Pipeline): the space's default network
fitted with seeds 0, 1, ..., R in the final rung, every fit stopped by `--stop` (default auto), each restart
withholding the pixels of its own seed or the default fit's (`--splits`), averaged with inverse held-out-MSE
weights (the answer) and equal ones; against the same reference, the default with EMV stopping (seed 0, every
pixel); and the same answer from the default and only its first k - 1 restarts, k = 1 .. R + 1 (what fewer
fits would have given, from the same fits), also against the first alone (one fit stopped as restore stops it).
Run it with the settings of a search_vs_default run and compare the rows: R + 1 fits here against that search's
cost. `--references FILE` takes the reference from an earlier run's rows (it does not depend on the
members).

Rows go to a JSONL file, one per (image, sigma) (a killed run resumes; two processes may share the file, each
with its own images); the summary (mean, worst, best difference to the reference, rows below it by more than
0.1 dB) goes to the .json next to it.

    python bench/default_restarts.py [DATA] [--images kodim01 ...] [--sigmas 25] [--crop 64] [--iters 1200]
        [--restarts 2] [--stop auto] [--splits own|shared] [--references OLD.jsonl]
        [--out bench/results/default_restarts.jsonl] [--summary-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
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

from dipsearch.pipelines.restore import Pipeline, RestoreSettings  # noqa: E402

VARIANTS = ("equal", "inverse_mse")


class Restore(Pipeline):
    """`restore --search none` with the restarts' split chosen by the bench."""

    splits = "own"

    def plan(self):
        return replace(super().plan(), splits=self.splits)


def restore_row(problem, space_file: Path, args: argparse.Namespace, work: Path) -> dict:
    """The restore's members and ensembles, read back from its run folder."""
    settings = RestoreSettings(
        search="none",
        budget="cpu",
        space=str(space_file),
        iters=args.iters,
        stop=args.stop,
        ensemble=args.restarts + 1,
        device="cpu",
        workers=1,
    )
    pipeline = Restore(problem, settings)
    pipeline.splits = args.splits
    result = pipeline.run(work, "bench")
    search = json.loads((result.run.path / result.summary["search_run"] / "summary.json").read_text())
    ensemble = search["ensemble"]
    by_key = {m["key"]: m for m in [*search["final"], *search["restarts"]]}
    members = [by_key[m["key"]] for m in ensemble["members"]]
    # the answer with fewer restarts: the default and its first k - 1 restarts, weighed as restore weighs them
    folder = result.run.path / result.summary["search_run"]
    fits = [*search["final"], *sorted(search["restarts"], key=lambda r: r["restart"])]
    images, splits = final_members(folder, fits)
    by_count = {k: member_ensemble(problem, ["-"] * k, images[:k], splits[:k]).psnr for k in range(1, len(fits) + 1)}
    return {
        "by_members": by_count,
        "members": [m["psnr"] for m in members],
        "stopped_iters": [m["stopped_iter"] for m in members],
        "splits": [m.get("split") for m in members],
        "weights": [m["weight"] for m in ensemble["members"]],
        "inverse_mse": result.summary["psnr_restored"],
        "equal": ensemble["weightings"]["equal"]["psnr"],
    }


def summarise(rows: list[dict]) -> dict:
    out = {v: stats([r[v] - r["default_stop"] for r in rows]) for v in VARIANTS}
    counts = set.intersection(*(set(r.get("by_members", {})) for r in rows)) if rows else set()
    for k in sorted(counts, key=int):
        out[f"inverse_mse_{k}_members"] = stats([r["by_members"][k] - r["default_stop"] for r in rows])
    for k in sorted(counts - {"1"}, key=int):  # against one fit stopped as restore stops it
        out[f"inverse_mse_{k}_members_over_one"] = stats([r["by_members"][k] - r["by_members"]["1"] for r in rows])
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
    parser.add_argument("--splits", choices=("own", "shared"), default="own", help="the restarts' held-out pixels")
    parser.add_argument("--references", type=Path, help="a JSONL of an earlier run: its default-stop figures")
    parser.add_argument("--out", type=Path, default=RESULTS / "default_restarts.jsonl")
    parser.add_argument("--summary-only", action="store_true", help="write the summary of the rows on file")
    args = parser.parse_args()
    torch.set_num_threads(1)

    work = Path(tempfile.mkdtemp(prefix="default_restarts_"))
    space, space_file = space_on_disk(fidelity_space(), work)
    rows_file = Rows(args.out, ("image", "sigma"))
    known = earlier_rows(args.references, ("image", "sigma"))
    for name in [] if args.summary_only else args.images:
        for sigma in args.sigmas:
            if (name, sigma) in rows_file.done:
                continue
            start = time.perf_counter()
            problem = classic9_recipe(args.data, name, args.crop, sigma).build()
            earlier = known.get((name, sigma))
            if earlier is not None:
                reference, ref_iter = earlier["default_stop"], earlier.get("default_stop_iter")
            else:
                reference, ref_iter = default_fit(problem, space, args.iters, stop=True)
            row = {
                "image": name,
                "sigma": sigma,
                "default_stop": reference,
                "default_stop_iter": ref_iter,
                **restore_row(problem, space_file, args, work / f"{name}_s{sigma:g}"),
            }
            row["seconds"] = round(time.perf_counter() - start, 1)
            rows_file.add(row)
            print(
                f"{name} s{sigma:g}: default-stop {row['default_stop']:.2f}, members "
                + " ".join(f"{p:.2f}" for p in row["members"])
                + f", inverse-mse {row['inverse_mse']:.2f} ({row['inverse_mse'] - row['default_stop']:+.2f})",
                flush=True,
            )
    rows = rows_file.read()
    summary = summarise(rows)
    for label, figures in summary.items():
        print(
            f"{label}: mean {figures['mean']:+.2f} dB, worst {figures['worst']:+.2f}, {figures['below_0.1']} below -0.1"
        )
    write_result(args.out, args, rows, summary)


if __name__ == "__main__":
    main()
