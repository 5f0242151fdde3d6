"""Fitting speed of the default network: iterations per second at 64, 128, 256 and 512 px.

Runs the real fitting loop (input noise, Adam, EMA, PSNR trace, divergence guard) on a synthetic noisy
image for each size, after a short warm-up, on the chosen device. Absolute figures on shared machines are
noisy: compare the ratios between sizes measured in one run.

    python bench/fit_speed.py [--sizes 64 128 256 512] [--seconds 8] [--device auto] [--threads N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, write_json  # noqa: E402

from dipsearch import ArchSpec, FitConfig, FitHook, fit, make_problem  # noqa: E402
from dipsearch.fit import resolve_device  # noqa: E402


class Budget(FitHook):
    """Stops the fit once `seconds` have passed after the warm-up, remembering when timing began."""

    name = "budget"

    def __init__(self, warmup: int, seconds: float):
        self.warmup, self.seconds = warmup, seconds
        self.t0 = None
        self.timed_steps = 0

    def on_step(self, state) -> bool:
        if state.step == self.warmup:
            if state.out.is_cuda:
                torch.cuda.synchronize()
            self.t0 = time.perf_counter()
        elif self.t0 is not None:
            self.timed_steps = state.step - self.warmup
            return time.perf_counter() - self.t0 >= self.seconds
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--seconds", type=float, default=8.0, help="timed seconds per size after warm-up")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", type=Path, default=RESULTS / "fit_speed.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    generator = torch.Generator().manual_seed(0)
    rows = []
    for size in args.sizes:
        clean = torch.rand(1, 3, size, size, generator=generator)
        problem = make_problem("denoise", clean=clean, level=25, seed=0)
        budget = Budget(args.warmup, args.seconds)
        start = time.perf_counter()
        fit(problem, ArchSpec(), FitConfig(iters=10**6, device=device, ssim_every=0), [budget])
        elapsed = time.perf_counter() - budget.t0
        rows.append({"size": size, "iters_per_s": round(budget.timed_steps / elapsed, 2),
                     "timed_steps": budget.timed_steps, "wall_s": round(time.perf_counter() - start, 1)})
        print(rows[-1], flush=True)
    base = rows[0]["iters_per_s"]
    for row in rows:
        row["relative_to_first"] = round(row["iters_per_s"] / base, 3)
        row["est_2400_iters_s"] = round(2400 / row["iters_per_s"], 1)
    table = Table(title=f"default network fit speed on {device} ({torch.get_num_threads()} threads)")
    for column in rows[0]:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(str(v) for v in row.values()))
    Console().print(table)
    print(f"wrote {write_json(args.json, {'device': device, 'machine': machine(), 'rows': rows})}")


if __name__ == "__main__":
    main()
