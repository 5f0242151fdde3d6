"""Denoising quality of the default configuration on the classic-9 images.

Default: 128x128 centre crops of ../shared/data/classic9, Gaussian sigma 25 (seeded), the seed network,
2400 iterations. Prints PSNR of the observation, the last output, the EMA output and the peak, per image
and on average, and writes them as JSON.

    python bench/denoise_classic9.py [--data DIR] [--crop 128] [--iters 2400] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, machine, write_json  # noqa: E402

from dipsearch import ArchSpec, FitConfig, fit, make_problem  # noqa: E402
from dipsearch.store.imageio import center_crop, load_image  # noqa: E402

KEYS = ("psnr_observed", "psnr_final", "psnr_ema", "psnr_peak")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", nargs="*", help="image stems (default: all of classic9)")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sigma", type=float, default=25)
    parser.add_argument("--iters", type=int, default=2400)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path, default=RESULTS / "denoise_classic9.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = args.data / "classic9"
    paths = sorted(folder.glob("*.png"))
    if args.images:
        paths = [p for p in paths if p.stem in args.images]
    if not paths:
        sys.exit(f"no classic9 images found in {folder}")

    console = Console()
    rows = []
    for path in paths:
        clean = center_crop(load_image(path), args.crop, args.crop)
        problem = make_problem("denoise", clean=clean, noise="gaussian", level=args.sigma, seed=args.seed)
        start = time.perf_counter()
        result = fit(problem, ArchSpec(), FitConfig(iters=args.iters, seed=args.seed, device=args.device, ssim_every=0))
        summary = result.summary(problem)
        row = {
            "image": path.stem,
            **{k: round(summary[k], 3) for k in KEYS},
            "iter_peak": summary["iter_peak"],
            "seconds": round(time.perf_counter() - start, 1),
        }
        rows.append(row)
        console.print(row)

    table = Table(title=f"classic9 {args.crop}px crops, Gaussian sigma {args.sigma}, {args.iters} iterations")
    for column in ("image", *KEYS, "iter_peak", "seconds"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("image", *KEYS, "iter_peak", "seconds")))
    mean = {k: round(statistics.mean(r[k] for r in rows), 3) for k in KEYS}
    table.add_row("mean", *(str(mean[k]) for k in KEYS), "", str(round(sum(r["seconds"] for r in rows), 1)))
    console.print(table)
    out = write_json(
        args.json,
        {
            "settings": vars(args) | {"data": str(args.data), "json": str(args.json)},
            "machine": machine(),
            "images": rows,
            "mean": mean,
        },
    )
    console.print(f"wrote {out}")


if __name__ == "__main__":
    main()
