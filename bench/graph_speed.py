"""Step time of the seed network's fit: eager loop, captured step (CUDA graph), and K replicas in one module.

For each size and mode the fit runs twice, --short and --short + --long iterations, and the step time is the
difference of the two wall times over --long: what the loop costs per step once it runs, without the set-up,
the warm-up or the capture. Each (size, mode) is measured --rounds times, interleaved, and the median kept.

Modes:
  eager       Engine with cuda_graph "off": today's loop.
  captured    Engine with cuda_graph "on" (CUDA only). On another device: "ring", the captured loop's Python
              run eagerly (what the graph records, plus its ring buffer), to see what the structure costs there.
  replicas-K  engine.fit_replicas with K seeds (captured on CUDA); its per-replica-step time is ms/step / K.
  separate-K  K eager fits one after another, the same seeds: the baseline replicas must beat.

    python bench/graph_speed.py --device cpu --sizes 64 128 --modes eager separate-4 replicas-4 --threads 1
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, write_json  # noqa: E402

from dipsearch import ArchSpec, FitConfig, make_problem  # noqa: E402
from dipsearch.fitting.fit import resolve_device  # noqa: E402
from dipsearch.fitting.loop import Engine  # noqa: E402
from dipsearch.fitting.replicas import fit_replicas


def _problem(size: int):
    clean = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    return make_problem("denoise", clean=clean, level=25, seed=0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run(mode: str, size: int, iters: int, device: torch.device) -> tuple[float, int]:
    """Wall seconds of one run of `mode`, and how many fits it made."""
    problem = _problem(size)
    config = FitConfig(iters=iters, device=str(device), ssim_every=0, trace_every=50)
    _sync(device)
    start = time.perf_counter()
    fits = 1
    if mode == "eager":
        Engine(ArchSpec(), config.updated(cuda_graph="off")).run(problem)
    elif mode == "captured":
        if device.type == "cuda":
            Engine(ArchSpec(), config.updated(cuda_graph="on")).run(problem)
        else:
            Engine(ArchSpec(), config).run_graphed(problem, capture=False)
    elif mode.startswith("replicas-"):
        fits = int(mode.split("-")[1])
        fit_replicas(problem, ArchSpec(), config, seeds=range(fits))
    elif mode.startswith("separate-"):
        fits = int(mode.split("-")[1])
        for seed in range(fits):
            Engine(ArchSpec(), config.updated(seed=seed, cuda_graph="off")).run(problem)
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    _sync(device)
    return time.perf_counter() - start, fits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256, 512])
    parser.add_argument("--modes", nargs="+", default=["eager", "captured", "replicas-1", "replicas-4", "replicas-16"])
    parser.add_argument("--short", type=int, default=20, help="iterations of the short run")
    parser.add_argument("--long", type=int, default=200, help="extra iterations of the long run")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--fit-iters", type=int, default=2400, help="a fit's length for fits/hour")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    run("eager", args.sizes[0], 2, device)  # first use: allocator, kernels, lazy imports out of the timings
    rows = []
    for size in args.sizes:
        times: dict[str, list[float]] = {mode: [] for mode in args.modes}
        whole: dict[str, list[float]] = {mode: [] for mode in args.modes}  # the long run's own wall time
        fits: dict[str, int] = {}
        for _ in range(args.rounds):
            for mode in args.modes:
                short, fits[mode] = run(mode, size, args.short, device)
                long, _ = run(mode, size, args.short + args.long, device)
                times[mode].append((long - short) / args.long)
                whole[mode].append(long)
        for mode in args.modes:
            step = statistics.median(times[mode])
            per_fit = step / fits[mode]
            row = {
                "size": size,
                "mode": "ring" if mode == "captured" and device.type != "cuda" else mode,
                "fits": fits[mode],
                "ms_per_step": round(step * 1000, 3),
                "ms_per_fit_step": round(per_fit * 1000, 3),
                "fits_per_hour": round(3600 / (per_fit * args.fit_iters), 1),
                "rounds": len(times[mode]),
                "long_run_s": round(statistics.median(whole[mode]), 3),
            }
            if args.short + args.long == args.fit_iters:  # the long run is a whole fit: count what it delivered
                row["fits_per_hour_whole_runs"] = round(fits[mode] * 3600 / row["long_run_s"], 1)
            rows.append(row)
            print(
                f"{size:4d} px  {row['mode']:12s} {row['ms_per_step']:10.2f} ms/step  "
                f"{row['ms_per_fit_step']:9.2f} ms per fit-step  {row['fits_per_hour']:9.1f} fits/hour "
                f"({args.fit_iters} steps)"
                + (
                    f"; whole runs: {row['fits_per_hour_whole_runs']:.1f} fits/hour ({row['long_run_s']:.1f} s each)"
                    if "fits_per_hour_whole_runs" in row
                    else ""
                ),
                flush=True,
            )
    path = args.json or RESULTS / f"graph_speed_{device.type}.json"
    data = {"device": str(device), "machine": machine(), "short": args.short, "long": args.long, "rows": rows}
    print(f"wrote {write_json(path, data)}")


if __name__ == "__main__":
    main()
