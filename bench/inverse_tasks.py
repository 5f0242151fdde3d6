"""DIP (the seed network, stopped by the held-out detector) against the classical baselines on the deblurring and
compressed-sensing MRI tasks: PSNR of each, iterations used.

    OMP_NUM_THREADS=1 python bench/inverse_tasks.py --images House Peppers F16 --size 128 --iters 1500 \
        --out bench/measured/inverse_tasks_cpu.json

Each image is centre-cropped to --size; observations are synthesised with seed 0 (deblur: Gaussian kernel of
sigma 2 px or a 9 px motion stroke, Gaussian noise sigma 2/255; cs-mri: 4x Cartesian undersampling of the grey
image, no noise). DIP runs at most --iters steps; the held-out detector (5 % of the measured entries, patience
--patience) picks the iteration reported as psnr_stopped; psnr_peak is the best PSNR along the fit (needs the
ground truth: an upper bound, not a result).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import DEFAULT_DATA, machine, write_json  # noqa: E402
from dipsearch import ArchSpec, fit, make_problem  # noqa: E402
from dipsearch.baselines import baseline_names, run_baseline  # noqa: E402
from dipsearch.fitting.fit import FitConfig  # noqa: E402
from dipsearch.metrics import psnr  # noqa: E402
from dipsearch.stopping import StoppingHook, make_detector  # noqa: E402
from dipsearch.store.imageio import center_crop, load_image  # noqa: E402

SETTINGS = {
    "deblur-gaussian": dict(task="deblur", kernel="gaussian", kernel_width=2.0, noise="gaussian", level=2),
    "deblur-motion": dict(task="deblur", kernel="motion", kernel_width=9.0, noise="gaussian", level=2),
    "cs-mri-4x": dict(task="cs-mri", acceleration=4.0),
}


def run_one(image: Path, setting: str, size: int, iters: int, patience: int) -> dict:
    clean = center_crop(load_image(image), size, size)
    options = dict(SETTINGS[setting])
    problem = make_problem(options.pop("task"), clean=clean, seed=0, **options)
    row: dict = {"image": image.stem, "setting": setting, "task": problem.task}
    for name in baseline_names(problem.task):
        start = time.perf_counter()
        out = run_baseline(name, problem)
        row[f"psnr_{name}"] = round(psnr(out, problem.clean), 2)
        row[f"seconds_{name}"] = round(time.perf_counter() - start, 2)
    detector = make_detector("holdout")
    hook = StoppingHook.online(detector, detector.rule(patience=patience))
    start = time.perf_counter()
    result = fit(hook.prepare(problem), ArchSpec(), FitConfig(iters=iters, seed=0), [hook])
    summary = result.summary(problem)
    row.update(
        dip_psnr_stopped=round(summary["psnr_stopped"], 2),
        dip_stopped_iter=summary["stopped_iter"],
        dip_iters_run=summary["iters_run"],
        dip_psnr_final=round(summary["psnr_final"], 2),
        dip_psnr_peak=round(summary["psnr_peak"], 2),
        dip_iter_peak=summary["iter_peak"],
        dip_seconds=round(time.perf_counter() - start, 1),
    )
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA / "classic9"))
    parser.add_argument("--images", nargs="+", default=["House", "Peppers", "F16"])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iters", type=int, default=1500)
    parser.add_argument("--patience", type=int, default=300)
    parser.add_argument("--out", default="bench/measured/inverse_tasks_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    for setting in args.settings:
        for name in args.images:
            row = run_one(Path(args.data) / f"{name}.png", setting, args.size, args.iters, args.patience)
            print(row, flush=True)
            rows.append(row)
            write_json(args.out, {"args": vars(args), "machine": machine(), "rows": rows})


if __name__ == "__main__":
    main()
