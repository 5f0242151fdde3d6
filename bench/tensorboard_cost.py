"""What TensorBoard logging costs a fit: wall time with and without the TensorBoardHook, and on CUDA the host
synchronisations it adds.

    python bench/tensorboard_cost.py [--size 128] [--iters 300] [--rounds 3] [--device auto] [--json PATH]

The seed network fits a denoising problem (clean image known: PSNR every step, SSIM every 100) with the default
trace flush (every 50 steps) and the hook's default image cadence (every 100 steps). Plain and logged fits are
interleaved over --rounds rounds and the median of each is kept, so that a busy machine slows both alike. On a
CUDA device, one more fit of each kind runs under torch.cuda.set_sync_debug_mode("warn") and the synchronising
calls are counted (the mode misses some kinds of sync, so the counts are a floor; what matters is the difference).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, write_json  # noqa: E402

from dipsearch import ArchSpec, FitConfig, make_problem  # noqa: E402
from dipsearch.fitting.fit import resolve_device  # noqa: E402
from dipsearch.fitting.loop import Engine  # noqa: E402
from dipsearch.fitting.tensorboard import TensorBoardHook  # noqa: E402


class TimedHook(TensorBoardHook):
    """The hook, with the time spent inside its own methods summed up: its cost, free of the machine's noise."""

    def __init__(self, logdir: Path) -> None:
        super().__init__(logdir)
        self.inside = 0.0

    def _timed(self, method, *args):  # noqa: ANN001, ANN002, ANN202
        start = time.perf_counter()
        try:
            return method(*args)
        finally:
            self.inside += time.perf_counter() - start

    def on_start(self, *args):  # noqa: ANN002, ANN202
        return self._timed(super().on_start, *args)

    def on_step(self, *args):  # noqa: ANN002, ANN202
        return self._timed(super().on_step, *args)

    def on_flush(self, *args):  # noqa: ANN002, ANN202
        return self._timed(super().on_flush, *args)

    def on_end(self, *args):  # noqa: ANN002, ANN202
        return self._timed(super().on_end, *args)


def timed(problem, config: FitConfig, logdir: Path | None) -> tuple[float, float]:
    """(seconds of the fit, seconds inside the hook)."""
    hooks = [TimedHook(logdir)] if logdir else []
    start = time.perf_counter()
    Engine(ArchSpec(), config).run(problem, hooks)
    if config.device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, hooks[0].inside if hooks else 0.0


def syncs(problem, config: FitConfig, logdir: Path | None) -> int:
    count = 0

    def record(message, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003 - warnings.showwarning's signature
        nonlocal count
        count += "synchroniz" in str(message)

    shown = warnings.showwarning
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.showwarning = record
            Engine(ArchSpec(), config).run(problem, [TensorBoardHook(logdir)] if logdir else [])
    finally:
        torch.cuda.set_sync_debug_mode(0)
        warnings.showwarning = shown
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--iters", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    device = str(resolve_device(args.device))
    clean = torch.rand(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(0))
    problem = make_problem("denoise", clean=clean, level=25, seed=0)
    config = FitConfig(iters=args.iters, device=device)
    Engine(ArchSpec(), config.updated(iters=3)).run(problem)  # start-up (CUDA context, kernels) outside the timing
    times: dict[str, list[float]] = {"plain": [], "tensorboard": []}
    inside: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            times["plain"].append(timed(problem, config, None)[0])
            seconds, in_hook = timed(problem, config, Path(tmp) / f"round{r}")
            times["tensorboard"].append(seconds)
            inside.append(in_hook)
        counts = None
        if device.startswith("cuda"):
            counts = {"plain": syncs(problem, config, None), "tensorboard": syncs(problem, config, Path(tmp) / "s")}
    median = {k: statistics.median(v) for k, v in times.items()}
    overhead = median["tensorboard"] / median["plain"] - 1
    print(
        f"{device}, {args.size} px, {args.iters} steps, median of {args.rounds}: plain {median['plain']:.2f} s, "
        f"with TensorBoardHook {median['tensorboard']:.2f} s ({100 * overhead:+.1f} %); inside the hook "
        f"{statistics.median(inside):.3f} s ({100 * statistics.median(inside) / median['plain']:.2f} % of the fit)"
    )
    if counts:
        print(f"host syncs per fit (a floor): plain {counts['plain']}, with the hook {counts['tensorboard']}")
    data = {
        "machine": machine(),
        "device": device,
        "size": args.size,
        "iters": args.iters,
        "rounds": args.rounds,
        "seconds": times,
        "median": median,
        "overhead": overhead,
        "inside_hook_seconds": inside,
        "syncs": counts,
    }
    print(f"wrote {write_json(args.json or RESULTS / 'tensorboard_cost.json', data)}")


if __name__ == "__main__":
    main()
