"""`restore --replicas on` against `--replicas off`, side by side: wall time, CPU time and the restored PSNR.

Each round runs `dipsearch restore --demo` (or `--clean FILE`) twice as a subprocess, once per mode (the order
alternates between rounds, so that a change in the machine's load does not favour one side), and reads each run's
summary.json: the restored PSNR, every member's stop, and the final rung's own time (the search's rung row), which
is the part batching changes when a search runs before it. Ratios are on / off; CPU time is the child processes'
user + system time (a fairer figure than wall time on a shared machine: the fits run on one thread).

    python bench/replica_restore.py                                  # the 128 px demo, the default restore
    python bench/replica_restore.py --crop 64 --iters 600 --rounds 2
    python bench/replica_restore.py --search ga --crop 64            # a search's final rung with restarts
    python bench/replica_restore.py --device cuda --with-one         # on a GPU: K members against one
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import REPO, RESULTS, machine, write_json  # noqa: E402


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def restore(mode: str, args: argparse.Namespace, out: Path) -> dict:
    """One restore: mode on or off, or "one" (a single member, --ensemble 1: what a batch of K is held to)."""
    image = ["--clean", str(args.clean)] if args.clean else ["--demo"]
    replicas = "off" if mode == "one" else mode
    argv = [sys.executable, "-m", "dipsearch", "restore", *image, "--replicas", replicas, "--device", args.device]
    argv += ["--search", args.search, "--no-report", "--out", str(out)]
    for flag in ("crop", "iters", "ensemble", "search_iters", "pop", "gens", "trials", "threads"):
        value = 1 if flag == "ensemble" and mode == "one" else getattr(args, flag)
        if value is not None:
            argv += [f"--{flag.replace('_', '-')}", str(value)]
    cpu, start = cpu_seconds(), time.perf_counter()
    log = out.parent / f"{out.name}.log"
    with log.open("w") as stdout:
        subprocess.run(argv, check=True, cwd=REPO, stdout=stdout)
    wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu
    (run,) = (out / "restore").iterdir()
    summary = json.loads((run / "summary.json").read_text())
    (search,) = (run / "search").iterdir()
    rung = json.loads((search / "summary.json").read_text())["rungs"][-1]
    row = {
        "mode": mode,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "final_rung_s": rung.get("seconds"),
        "psnr_restored": summary.get("psnr_restored"),
        "stopped_iters": summary["stopped_iters"],
        "weights": summary["weights"],
        "output": log.read_text(),
    }
    print(json.dumps({k: v for k, v in row.items() if k != "output"}), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clean", type=Path, help="a clean image (default: the demo image, 128 px)")
    parser.add_argument("--crop", type=int)
    parser.add_argument("--iters", type=int, help="the members' budget (default: the restore's, 2400 on a CPU)")
    parser.add_argument("--ensemble", type=int)
    parser.add_argument("--search", default="none")
    parser.add_argument("--search-iters", type=int, dest="search_iters")
    parser.add_argument("--pop", type=int)
    parser.add_argument("--gens", type=int)
    parser.add_argument("--trials", type=int)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--with-one", action="store_true", help="also a restore of one member (--ensemble 1)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            modes = ["on", "off", *(["one"] if args.with_one else [])]
            for mode in modes if r % 2 == 0 else modes[::-1]:
                rows.append({"round": r, **restore(mode, args, Path(tmp) / f"{r}_{mode}")})
    on = [row for row in rows if row["mode"] == "on"]
    off = [row for row in rows if row["mode"] == "off"]
    one = [row for row in rows if row["mode"] == "one"]

    def ratio(key: str, base: list[dict] = off) -> float | None:
        if not base or any(row[key] is None for row in [*on, *base]):
            return None
        return round(statistics.median(a[key] / b[key] for a, b in zip(on, base)), 3)

    psnr = [a["psnr_restored"] - b["psnr_restored"] for a, b in zip(on, off) if a["psnr_restored"] is not None]
    result = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": machine(),
        "rows": rows,
        "wall_ratio": ratio("wall_s"),
        "cpu_ratio": ratio("cpu_s"),
        "final_rung_ratio": ratio("final_rung_s"),
        "on_vs_one_final_rung_ratio": ratio("final_rung_s", one),
        "psnr_on_minus_off_db": [round(d, 4) for d in psnr],
    }
    path = args.json or RESULTS / f"replica_restore_{args.device}.json"
    print(
        f"on/off: wall {result['wall_ratio']}, CPU {result['cpu_ratio']}, final rung {result['final_rung_ratio']}; "
        f"restored PSNR on - off: {result['psnr_on_minus_off_db']} dB"
        + (f"; final rung on / one member: {result['on_vs_one_final_rung_ratio']}" if one else "")
        + f"; wrote {write_json(path, result)}"
    )


if __name__ == "__main__":
    main()
