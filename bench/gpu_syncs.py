"""Where a fit on a CUDA device waits for the GPU: host synchronisations per step, by the line that caused them.

    python bench/gpu_syncs.py [--size 128] [--iters 200] [--metrics-every 1] [--json PATH]

Runs one engine fit of the seed network under torch.cuda.set_sync_debug_mode("warn") and attributes every
synchronising call to the innermost dipsearch (or bench) source line on the stack. The mode is a PyTorch
prototype and misses some syncs (it reports .item(), .cpu(), nonzero and similar), so the counts are a floor.
"""

from __future__ import annotations

import argparse
import collections
import sys
import traceback
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, write_json  # noqa: E402

from dipsearch import ArchSpec, FitConfig, make_problem  # noqa: E402
from dipsearch.fitting.loop import Engine  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def origin(stack: list[traceback.FrameSummary]) -> str:
    for frame in reversed(stack):
        path = Path(frame.filename).resolve()
        if path.is_relative_to(ROOT) and "warnings" not in path.name:
            return f"{path.relative_to(ROOT)}:{frame.lineno} {frame.line}"
    return "outside dipsearch"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iters", type=int, default=200)
    parser.add_argument("--metrics-every", type=int, default=1, help="PSNR trace interval (0: none)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA device")
    clean = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    problem = make_problem("denoise", clean=clean, level=25, seed=0)
    config = FitConfig(iters=args.iters, device="cuda", metrics_every=args.metrics_every, ssim_every=0)
    Engine(ArchSpec(), FitConfig(iters=3, device="cuda")).run(problem)  # CUDA start-up outside the count

    origins: collections.Counter[str] = collections.Counter()

    def record(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if "synchroniz" in str(message):
            origins[origin(traceback.extract_stack()[:-1])] += 1

    shown = warnings.showwarning
    warnings.showwarning = record
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            Engine(ArchSpec(), config).run(problem)
    finally:
        torch.cuda.set_sync_debug_mode(0)
        warnings.showwarning = shown
    total = sum(origins.values())
    print(
        f"{torch.cuda.get_device_name()}: {total} host syncs in a {args.iters}-step fit at {args.size} px "
        f"(PSNR every {args.metrics_every or 'never'}): {total / args.iters:.2f} per step"
    )
    for where, count in origins.most_common():
        print(f"{count:6d}  {where}")
    rows = [{"origin": k, "syncs": v} for k, v in origins.most_common()]
    path = args.json or RESULTS / "gpu_syncs.json"
    print(
        f"wrote {write_json(path, {'machine': machine(), 'iters': args.iters, 'size': args.size, 'total': total, 'origins': rows})}"
    )


if __name__ == "__main__":
    main()
