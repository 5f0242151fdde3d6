"""Start-up time of the CLI: median wall time of `dipsearch --help` and `dipsearch fit --help`.

Each command runs in a fresh interpreter (`python -m dipsearch ...`, this checkout first on the path), so
the figure is what a user waits before argparse answers: interpreter start plus every import the parser
needs. A benchmark, not a test: timings depend on the machine and its load.

    python bench/startup.py --repeat 9
    python bench/startup.py --repo ../main      # another checkout, e.g. for a before/after comparison
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMMANDS = (["--help"], ["fit", "--help"], ["search", "ga", "--help"])


def time_command(repo: Path, args: list[str], repeat: int) -> list[float]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(repo), os.environ.get("PYTHONPATH")]))}
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "dipsearch", *args],
            env=env,
            cwd=repo,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7, help="runs per command; the median is printed (default 7)")
    parser.add_argument("--repo", type=Path, default=REPO, help="the checkout to time (default: this one)")
    args = parser.parse_args()
    repo = args.repo.resolve()
    baseline = statistics.median(time_command_python(args.repeat))
    print(f"checkout {repo}; python -c pass (interpreter alone): {baseline:.3f} s")
    for command in COMMANDS:
        times = time_command(repo, command, args.repeat)
        print(
            f"dipsearch {' '.join(command)}: median {statistics.median(times):.3f} s "
            f"(min {min(times):.3f}, max {max(times):.3f}, {args.repeat} runs)"
        )


def time_command_python(repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return times


if __name__ == "__main__":
    main()
