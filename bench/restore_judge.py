"""The judge of restore's answer as a user gets it: `dipsearch restore` per image, per configuration.

Each configuration is a name and the restore flags that make it (`--config studied="--space runs/study/.../
winner_space.toml"`); the first is the reference the others' gains are measured against (default: `default`,
restore with no flag: the product's budget, space and members). Every clean image of DATA (default
../shared/data/classic9 next to the repository) is centre-cropped to --crop (default 128) and corrupted with
Gaussian noise of each --sigmas level (seed 0, as `restore --clean` synthesises it); the command runs in this
process through dipsearch.cli.main, exactly as typed, and its summary.json gives the PSNR of restored.png and the
seconds. CBM3D on the same observation is added where the baselines extra is installed.

Rows go to a JSONL file as they finish (a killed judge resumes: rows already there are skipped); the summary per
configuration (mean, worst, best gain against the first, images more than 0.1 dB below it, mean seconds) goes to
the .json next to it, and a per-image table is printed.

    python bench/restore_judge.py [DATA] [--images Baboon House ...] [--sigmas 25] [--crop 128]
        [--config NAME="FLAGS" ...] [--threads 1] [--out bench/results/restore_judge.jsonl] [--summary-only]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, gain_stats  # noqa: E402
from judge import write_result  # noqa: E402

from dipsearch.cli import main as dipsearch  # noqa: E402
from dipsearch.store.runs import read_jsonl  # noqa: E402
from dipsearch.study.instances import image_files  # noqa: E402

CBM3D = "cbm3d"


def parse_config(text: str) -> tuple[str, list[str]]:
    name, _, flags = text.partition("=")
    if not name or not _:
        raise SystemExit(f'--config takes NAME=FLAGS (e.g. studied="--space FILE"), got {text!r}')
    return name.strip(), shlex.split(flags)


def restore(image: Path, sigma: float, crop: int, flags: list[str], threads: int | None) -> dict:
    """One `dipsearch restore` as typed; its restored image's PSNR and the command's seconds."""
    with tempfile.TemporaryDirectory() as out:
        argv = ["restore", "--clean", str(image), "--sigma", f"{sigma:g}", "--crop", str(crop), *flags]
        argv += ["--out", out, "--no-report"] + (["--threads", str(threads)] if threads else [])
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            code = dipsearch(argv)
        seconds = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"dipsearch {shlex.join(argv)} failed with exit {code}")
        (run,) = (Path(out) / "restore").iterdir()
        summary = json.loads((run / "summary.json").read_text())
    return {"psnr": summary["psnr_restored"], "seconds": seconds, "command": shlex.join(argv[:-2])}


def cbm3d(image: Path, sigma: float, crop: int) -> dict | None:
    """CBM3D on the same observation (restore's: seed 0), or None without the baselines extra."""
    from dipsearch.baselines.registry import get_baseline, run_baseline
    from dipsearch.metrics import psnr
    from dipsearch.problems.recipe import ProblemRecipe

    if not get_baseline(CBM3D).available:
        return None
    problem = ProblemRecipe(clean=str(image), sigma=sigma, crop=crop).build()
    start = time.perf_counter()
    restored = run_baseline(CBM3D, problem)
    return {"psnr": psnr(restored, problem.clean), "seconds": time.perf_counter() - start}


def summarise(rows: list[dict], configs: list[str]) -> dict:
    by = {(r["image"], r["sigma"], r["config"]): r for r in rows}
    problems = sorted({(r["image"], r["sigma"]) for r in rows})
    first = configs[0]
    out = {}
    for name in [*configs[1:], CBM3D]:
        gains = [
            by[(i, s, name)]["psnr"] - by[(i, s, first)]["psnr"]
            for i, s in problems
            if (i, s, name) in by and (i, s, first) in by
        ]
        if gains:
            out[name] = {
                **gain_stats(gains),
                "seconds": statistics.mean(by[(i, s, name)]["seconds"] for i, s in problems if (i, s, name) in by),
            }
    out[first] = {
        "mean_psnr": statistics.mean(by[(i, s, first)]["psnr"] for i, s in problems if (i, s, first) in by)
        if any((i, s, first) in by for i, s in problems)
        else None,
        "seconds": statistics.mean([by[(i, s, first)]["seconds"] for i, s in problems if (i, s, first) in by] or [0.0]),
    }
    return out


def table(rows: list[dict], configs: list[str]) -> str:
    by = {(r["image"], r["sigma"], r["config"]): r for r in rows}
    names = [*configs, CBM3D]
    head = f"{'image':<12} {'sigma':>5} " + " ".join(f"{n[:18]:>18} {'gain':>6} {'s':>5}" for n in names)
    lines = [head]
    for image, sigma in sorted({(r["image"], r["sigma"]) for r in rows}):
        ref = by.get((image, sigma, configs[0]))
        cells = []
        for name in names:
            r = by.get((image, sigma, name))
            if r is None:
                cells.append(f"{'-':>18} {'-':>6} {'-':>5}")
                continue
            gain = f"{r['psnr'] - ref['psnr']:+.2f}" if ref is not None and name != configs[0] else ""
            cells.append(f"{r['psnr']:>18.2f} {gain:>6} {r['seconds']:>5.0f}")
        lines.append(f"{image:<12} {sigma:>5g} " + " ".join(cells))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", nargs="?", default=str(DEFAULT_DATA / "classic9"), help="a folder of clean images")
    parser.add_argument("--images", nargs="+", help="only these (file stems)")
    parser.add_argument("--sigmas", default="25", help="comma-separated Gaussian levels (default 25)")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument(
        "--config", action="append", metavar='NAME="FLAGS"', help="a configuration (repeatable; default: default=)"
    )
    parser.add_argument("--threads", type=int, help="torch threads of every restore (default: restore's)")
    parser.add_argument("--no-cbm3d", action="store_true", help="skip CBM3D even where it is installed")
    parser.add_argument("--out", default=str(RESULTS / "restore_judge.jsonl"))
    parser.add_argument("--summary-only", action="store_true", help="summarise the rows already in --out")
    args = parser.parse_args()
    configs = dict(parse_config(c) for c in (args.config or ["default="]))
    names = list(configs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    images = [p for p in image_files([args.data]) if not args.images or p.stem in args.images]
    sigmas = [float(s) for s in args.sigmas.split(",")]
    rows = read_jsonl(out) if out.is_file() else []
    done = {(r["image"], r["sigma"], r["config"]) for r in rows}
    if not args.summary_only:
        for image in images:
            for sigma in sigmas:
                jobs = [(name, configs[name]) for name in names] + ([] if args.no_cbm3d else [(CBM3D, None)])
                for name, flags in jobs:
                    if (image.stem, sigma, name) in done:
                        continue
                    result = (
                        restore(image, sigma, args.crop, flags, args.threads)
                        if flags is not None
                        else (cbm3d(image, sigma, args.crop))
                    )
                    if result is None:
                        continue
                    row = {"image": image.stem, "sigma": sigma, "crop": args.crop, "config": name, **result}
                    with out.open("a") as handle:
                        handle.write(json.dumps(row) + "\n")
                    rows.append(row)
                    print(
                        f"{image.stem} s{sigma:g} {name}: {result['psnr']:.2f} dB, {result['seconds']:.0f} s",
                        flush=True,
                    )
    rows = [r for r in rows if r["config"] in (*names, CBM3D) and r["crop"] == args.crop]
    print(table(rows, names))
    summary = summarise(rows, names)
    print(json.dumps(summary, indent=2))
    write_result(out, args, rows, summary)  # the settings (the configurations among them), rows, machine


if __name__ == "__main__":
    main()
