"""The memory a fit needs: dipsearch.fitting.memory's estimate against the peak resident memory a CPU fit really adds.

For each network (the seed hourglass, a 3-level 8-channel one) and square side, a fresh process fits a random
image for 3 iterations on one thread, after a 2-iteration 64 px warm-up fit so that the libraries' own memory is
in the baseline; the measured figure is the growth of the peak resident set (ru_maxrss) over that baseline. The
estimate must be at least the measured figure (a refusal errs on the side of the user's machine) and not much
more (a fit that would run is not refused).

    python bench/fit_memory.py [--sides 256 512 1024] [--out bench/measured/fit_memory_cpu.json]

Never part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

NETWORKS = ("seed", "small")


def measure(network: str, side: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from dipsearch.fitting.fit import FitConfig, fit
    from dipsearch.fitting.memory import fit_bytes
    from dipsearch.nets.arch import ArchSpec
    from dipsearch.problems.make import make_problem

    depth = 3
    spec = (
        ArchSpec()
        if network == "seed"
        else ArchSpec(
            n_down=[8] * depth,
            n_up=[8] * depth,
            n_skip=[0, 4, 4],
            k_down=[3] * depth,
            k_up=[3] * depth,
            k_skip=[1] * depth,
            upsample=["bilinear"] * depth,
        )
    )
    fit(make_problem("denoise", clean=torch.rand(1, 3, 64, 64), seed=0), spec, FitConfig(iters=2, device="cpu"))
    problem = make_problem("denoise", clean=torch.rand(1, 3, side, side), seed=0)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    fit(problem, spec, FitConfig(iters=3, device="cpu"))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    measured, estimate = peak - base, fit_bytes(spec, 3, side, side)
    return {
        "network": network,
        "side": side,
        "measured_mib": round(measured / 2**20),
        "estimate_mib": round(estimate / 2**20),
        "estimate_over_measured": round(estimate / measured, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--out", default="bench/measured/fit_memory_cpu.json")
    parser.add_argument("--one", nargs=2, metavar=("NETWORK", "SIDE"), help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return
    rows = []
    for network in NETWORKS:
        for side in args.sides:
            child = [sys.executable, __file__, "--one", network, str(side)]
            row = json.loads(subprocess.run(child, check=True, capture_output=True, text=True).stdout)
            print(row, flush=True)
            rows.append(row)
    Path(args.out).write_text(json.dumps({"device": "cpu", "threads": 1, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
