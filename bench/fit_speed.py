"""Fitting speed of the seed network against the `bare` loop, and aggregate speed of concurrent fits.

--mode speed (default): for each size, the `bare` loop (the builder, Adam, MSE, input noise: no metrics, no
hooks, no guard; what the reference implementation runs) and the engine under each setting are timed in
this process, interleaved over --rounds rounds (median kept), so that a busy machine slows all alike.
Prints s/it and the ratio to bare. Settings: default (clean image known: PSNR trace every step), metrics
(PSNR every --metrics-every steps), bf16, channels_last, compile (CUDA only).

--mode concurrent: P processes, each fitting --iters iterations at one size with --threads threads, start
together (after a warm-up, at a barrier); aggregate it/s and fits per hour (of --fit-iters iterations)
for each P in --procs. "2 single-thread fits side by side vs one 2-thread fit" is
`--mode concurrent --procs 1 2 --threads 1` next to `--procs 1 --threads 2`.

    python bench/fit_speed.py [--sizes 64 128 256 512] [--seconds 4] [--device auto] [--threads N]
    python bench/fit_speed.py --mode concurrent --sizes 128 --procs 1 2 4 8 --iters 200
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, write_json  # noqa: E402

from dipsearch import ArchSpec, FitConfig, FitHook, make_problem  # noqa: E402
from dipsearch.families import family_of  # noqa: E402
from dipsearch.fitting.fit import resolve_device  # noqa: E402
from dipsearch.fitting.loop import Engine  # noqa: E402

SETTINGS = {
    "default": {},
    "metrics": {"metrics_every": 50},
    "bf16": {"precision": "bf16"},
    "channels_last": {"channels_last": True},
    "compile": {"compile": True},
}


def _problem(size: int):
    clean = torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(0))
    return make_problem("denoise", clean=clean, level=25, seed=0)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare(size: int, device: torch.device, warmup: int, seconds: float) -> tuple[float, int]:
    """The minimal DIP loop; returns (seconds per iteration, timed iterations)."""
    problem = _problem(size)
    torch.manual_seed(0)
    net = family_of(ArchSpec()).build(3).to(device)
    z = (torch.rand(1, 3, size, size) * 0.1).to(device)
    target = problem.observed.to(device)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    steps, t0 = 0, None
    while True:
        optimizer.zero_grad(set_to_none=True)
        loss = F.mse_loss(net(z + torch.randn_like(z) / 30), target)
        loss.backward()
        optimizer.step()
        steps += 1
        if steps == warmup:
            _sync(device)
            t0 = time.perf_counter()
        elif t0 is not None and time.perf_counter() - t0 >= seconds:
            break
    _sync(device)
    return (time.perf_counter() - t0) / (steps - warmup), steps - warmup


class Budget(FitHook):
    """Stops the fit once `seconds` have passed after the warm-up; reads nothing from the device."""

    name = "budget"

    def __init__(self, warmup: int, seconds: float, device: torch.device):
        self.warmup, self.seconds, self.device = warmup, seconds, device
        self.t0: float | None = None
        self.steps = 0

    def on_step(self, state) -> bool:
        if state.step == self.warmup:
            _sync(self.device)
            self.t0 = time.perf_counter()
        elif self.t0 is not None:
            self.steps = state.step - self.warmup
            return time.perf_counter() - self.t0 >= self.seconds
        return False


def engine(size: int, device: torch.device, warmup: int, seconds: float, **settings) -> tuple[float, int]:
    budget = Budget(warmup, seconds, device)
    config = FitConfig(iters=10**6, device=str(device), ssim_every=0, **settings)
    Engine(ArchSpec(), config).run(_problem(size), [budget])  # returns after the trace's final fetch: synced
    return (time.perf_counter() - budget.t0) / budget.steps, budget.steps


def speed(args: argparse.Namespace, device: torch.device) -> dict:
    settings = [s for s in args.settings if s != "compile" or device.type == "cuda"]
    if "metrics" in settings:
        SETTINGS["metrics"] = {"metrics_every": args.metrics_every}
    rows = []
    for size in args.sizes:
        times: dict[str, list[float]] = {name: [] for name in ["bare", *settings]}
        for _ in range(args.rounds):
            times["bare"].append(bare(size, device, args.warmup, args.seconds)[0])
            for name in settings:
                times[name].append(engine(size, device, args.warmup, args.seconds, **SETTINGS[name])[0])
        base = statistics.median(times["bare"])
        for name, values in times.items():
            s_it = statistics.median(values)
            rows.append(
                {
                    "size": size,
                    "setting": name,
                    "s_per_it": round(s_it, 5),
                    "it_per_s": round(1 / s_it, 2),
                    "ratio_to_bare": round(s_it / base, 3),
                    "rounds": len(values),
                }
            )
            print(
                f"{size:4d} px  {name:14s} {s_it * 1000:9.2f} ms/it  {1 / s_it:8.2f} it/s  {s_it / base:6.3f}x bare",
                flush=True,
            )
    return {"mode": "speed", "rows": rows}


def _concurrent_worker(size, device, iters, threads, barrier, queue) -> None:
    torch.set_num_threads(threads)
    device = torch.device(device)
    problem = _problem(size)

    class Timer(FitHook):
        def on_step(self, state) -> None:
            if state.step == 5:  # warmed up: wait for the others, then time
                _sync(device)
                barrier.wait()
                self.t0 = time.perf_counter()

    timer = Timer()
    Engine(ArchSpec(), FitConfig(iters=iters + 5, device=str(device), ssim_every=0)).run(problem, [timer])
    queue.put((timer.t0, time.perf_counter()))


def concurrent(args: argparse.Namespace, device: torch.device) -> dict:
    context = mp.get_context("spawn")
    rows = []
    for size in args.sizes:
        for procs in args.procs:
            barrier, queue = context.Barrier(procs), context.Queue()
            workers = [
                context.Process(
                    target=_concurrent_worker, args=(size, str(device), args.iters, args.threads or 1, barrier, queue)
                )
                for _ in range(procs)
            ]
            for w in workers:
                w.start()
            spans = [queue.get() for _ in workers]
            for w in workers:
                w.join()
            wall = max(end for _, end in spans) - min(start for start, _ in spans)
            it_s = procs * args.iters / wall
            rows.append(
                {
                    "size": size,
                    "procs": procs,
                    "threads_each": args.threads or 1,
                    "iters_each": args.iters,
                    "wall_s": round(wall, 2),
                    "aggregate_it_per_s": round(it_s, 2),
                    "fits_per_hour": round(3600 * it_s / args.fit_iters, 1),
                }
            )
            print(
                f"{size:4d} px  {procs} fit(s) x {args.threads or 1} thread(s): {it_s:8.2f} it/s aggregate, "
                f"{3600 * it_s / args.fit_iters:8.1f} fits/hour of {args.fit_iters} iterations",
                flush=True,
            )
    return {"mode": "concurrent", "rows": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("speed", "concurrent"), default="speed")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256, 512])
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--metrics-every", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=4.0, help="timed seconds per loop and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--iters", type=int, default=200, help="iterations per concurrent fit")
    parser.add_argument("--fit-iters", type=int, default=2400, help="a fit's length for fits/hour")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    result = speed(args, device) if args.mode == "speed" else concurrent(args, device)
    path = args.json or RESULTS / f"fit_speed_{args.mode}_{device.type}.json"
    print(f"wrote {write_json(path, {'device': str(device), 'machine': machine(), **result})}")


if __name__ == "__main__":
    main()
