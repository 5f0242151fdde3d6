"""`dipsearch stop-bench` (the stopping benchmark) and the `--stop` flags that `dipsearch fit` borrows."""

from __future__ import annotations

import argparse
import time
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DipsearchError, check_at_least
from .names import DETECTORS, NOISE_KINDS, name_arguments

if TYPE_CHECKING:
    from rich.console import Console

    from ..fitting.fit import FitHook
    from ..problems.problem import Problem
    from ..stopping import bench as sb
    from ..stopping.spec import StopSpec
    from ..store.runs import RunDir

# ---------------------------------------------------------------- `dipsearch fit --stop ...`


def add_stop_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("automatic stopping (no ground truth needed)")
    group.add_argument(
        "--stop",
        default="none",
        metavar="DETECTOR",
        help=f"stop the fit with a detector: {', '.join(DETECTORS)}, auto (the recommended stopping for the task "
        "and noise) or none (default); saves the chosen iteration's output as output_stopped.png",
    )
    group.add_argument(
        "--patience",
        type=int,
        metavar="P",
        help="iterations without a new minimum before stopping (default 1000 for wmv/emv, 500 for sure/holdout)",
    )
    group.add_argument("--stop-window", type=int, metavar="W", dest="stop_window", help="wmv window (default 100)")
    group.add_argument(
        "--stop-delta",
        type=float,
        default=0.0,
        metavar="D",
        dest="stop_delta",
        help="a new minimum must be below (1 - D) x the best (default 0; the paper's variant: 0.01)",
    )
    group.add_argument(
        "--stop-indexing",
        choices=("end", "start"),
        default="end",
        dest="stop_indexing",
        help="return the newest (end, default) or oldest (start) frame of the best window",
    )
    group.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.05,
        metavar="F",
        help="holdout: fraction of observed pixels withheld from the loss (default 0.05)",
    )
    group.add_argument(
        "--sure-sigma",
        metavar="S|estimate",
        dest="sure_sigma",
        help="sure: noise sigma on the 0-255 scale, or 'estimate' (Immerkaer); default: --sigma",
    )
    name_arguments(
        parser, indexing="--stop-indexing", delta="--stop-delta", window="--stop-window", fraction="--holdout-fraction"
    )
    # The detector's settings and their defaults, so that one given without a detector is refused, not ignored.
    parser.set_defaults(
        stop_settings={a.dest: (a.option_strings[0], a.default) for a in group._group_actions if a.dest != "stop"}
    )


def stop_spec_from_args(args: argparse.Namespace) -> StopSpec | None:
    """The StopSpec the --stop flags describe (None for --stop none); bad flags raise an ArgumentError."""
    from ..stopping.spec import StopSpec

    if getattr(args, "stop", "none") == "none":
        settings = getattr(args, "stop_settings", {})
        given = [flag for dest, (flag, default) in settings.items() if getattr(args, dest) != default]
        if given:
            raise DipsearchError(
                f"{', '.join(given)} {'is a setting' if len(given) == 1 else 'are settings'} of a stopping detector, "
                f"and no --stop names one: add --stop DETECTOR ({', '.join(DETECTORS)}) or drop {', '.join(given)}"
            )
    return StopSpec.parse(
        getattr(args, "stop", "none"),
        patience=args.patience,
        delta=args.stop_delta,
        indexing=args.stop_indexing,
        window=args.stop_window,
        fraction=args.holdout_fraction,
        sure_sigma=args.sure_sigma,
    )


def stop_hook_from_args(args: argparse.Namespace, problem: Problem) -> FitHook | None:
    """The online stopping hook the flags describe (None for --stop none)."""
    spec = stop_spec_from_args(args)
    return None if spec is None else spec.hook(args.seed, problem)


# ---------------------------------------------------------------- `dipsearch stop-bench`


_KINDS = {int: "whole numbers", float: "numbers"}


def _csv_list(text: str, what: str, cast: Any = str) -> list[Any]:
    items = [x.strip() for x in text.split(",") if x.strip()]
    for item in items:
        try:
            cast(item)
        except ValueError:
            kind = _KINDS.get(cast, "values")
            raise DipsearchError(f"{what} takes comma-separated {kind}, got {item!r}") from None
    return [cast(x) for x in items]


def _open_bench(path: str) -> tuple[RunDir, dict[str, Any]]:
    """A stop-bench run folder and its config.toml; another kind of folder is refused before anything is read."""
    from ..store.runs import RunDir
    from ..store.tomlio import load_toml

    run_dir = RunDir.open(path)
    config = load_toml(run_dir.file("config.toml"))
    if not isinstance(config.get("protocol"), dict) or not isinstance(config.get("jobs"), dict):
        raise DipsearchError(
            f"{run_dir.path} is not a stop-bench run folder (its config.toml has no [protocol] and [jobs]); give a "
            "folder made by `dipsearch stop-bench`"
        )
    return run_dir, config


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "stop-bench",
        help="benchmark the stopping detectors on recorded fits",
        description="Fit once per (image, noise, level, seed) with every detector recording, replay every stopping "
        "rule on the traces, and write summary.csv, summary.json and curves.png under runs/stop-bench/.",
    )
    parser.add_argument("--images", nargs="+", metavar="PATH", help="clean images (noise is synthesised, seeded)")
    parser.add_argument("--noise", default=",".join(NOISE_KINDS), help="comma-separated noise types (default all four)")
    parser.add_argument("--levels", default="1,2,3", help="literature levels: 1 low, 2 medium, 3 high (default 1,2,3)")
    parser.add_argument("--crop", type=int, metavar="N", help="centre-crop every image to N x N first")
    parser.add_argument("--iters", type=int, default=3000, help="iterations per fit (default 3000)")
    parser.add_argument("--seeds", type=int, default=1, metavar="N", help="seeds 0..N-1 per setting (default 1)")
    parser.add_argument("--arch", metavar="PATH", help="architecture file (default: the seed network)")
    parser.add_argument(
        "--space",
        metavar="PATH",
        help="cross-architecture bench: fit random candidates of this search space (with their learning rate and "
        "input noise) beside the --arch network",
    )
    parser.add_argument(
        "--candidates", type=int, metavar="N", help="with --space: how many seeded random candidates (default 8)"
    )
    parser.add_argument(
        "--sample-seed", type=int, default=0, metavar="S", help="with --space: seed of the candidate draw (default 0)"
    )
    parser.add_argument(
        "--sigmas",
        metavar="S,...",
        help="Gaussian noise at these sigmas (0-255 scale) instead of the literature levels, e.g. 25,50",
    )
    parser.add_argument(
        "--holdout-fraction",
        type=float,
        default=0.05,
        metavar="F",
        help="pixels withheld from the loss in every fit, for the holdout detector (default 0.05)",
    )
    parser.add_argument("--window", type=int, default=100, help="wmv window (default 100)")
    parser.add_argument(
        "--patience-grid",
        default="250,500,1000",
        metavar="P,...",
        help="extra replays of the patience rules with these patiences (default 250,500,1000)",
    )
    parser.add_argument(
        "--detectors",
        metavar="NAME,...",
        help="record and replay only these detectors; every trace must have recorded them (default: all that apply)",
    )
    parser.add_argument("--workers", type=int, default=1, help="fits in parallel, one CPU thread each (default 1)")
    parser.add_argument("--device", default="cpu", help="device of the fits (default cpu)")
    parser.add_argument("--out", default="runs", metavar="DIR", help="runs root folder (default ./runs)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--resume", metavar="RUN_DIR", help="continue (or extend) a bench folder: finished fits are kept"
    )
    where.add_argument("--replay", metavar="RUN_DIR", help="only replay the rules on the traces of a bench folder")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    parser.set_defaults(func=run)
    name_arguments(parser, fraction="--holdout-fraction")


def _protocol(args: argparse.Namespace) -> dict[str, Any]:
    from ..families import load_spec
    from ..fitting.fit import FitConfig
    from ..nets.arch import ArchSpec
    from ..problems.holdout import check_fraction
    from ..stopping import EMV, WMV
    from ..stopping import bench as sb

    if args.crop is not None and args.crop < 8:
        raise DipsearchError(f"--crop must be at least 8 px, got {args.crop}")
    check_at_least("workers", args.workers, 1)  # before any fit; the CLI renders it as --workers
    check_fraction(args.holdout_fraction)  # before any fit, not in each
    # only the detectors that will record are judged (all that apply without --detectors)
    asked = _csv_list(args.detectors, "--detectors") if args.detectors else list(DETECTORS)
    if "wmv" in asked:
        WMV(args.window)  # its own check of the window, before any folder
    if "wmv" in asked and args.window > args.iters:
        raise DipsearchError(f"the wmv window ({args.window}) is larger than the run ({args.iters} iterations)")
    warmup = EMV().warmup  # the bench records EMV with its default warm-up
    if "emv" in asked and args.iters <= warmup:
        raise DipsearchError(f"--iters {args.iters} is within the emv detector's {warmup}-step warm-up; use > {warmup}")
    if "spectral" in asked and args.iters < 200:
        raise DipsearchError(
            f"--iters {args.iters} is shorter than the spectral rule's two 100-step windows; use >= 200"
        )
    spec = load_spec(args.arch) if args.arch else ArchSpec()
    config = FitConfig(iters=args.iters, device=args.device, ssim_every=10)  # SSIM gaps need SSIM often enough
    protocol = sb.protocol_dict(args.crop, spec, config, args.holdout_fraction, args.window)
    if args.candidates is not None and not args.space:
        raise DipsearchError("--candidates needs --space PATH (the search space to draw them from)")
    if args.space:  # only set keys: a bench of one network keeps the protocol (and resumability) it always had
        count = 8 if args.candidates is None else args.candidates
        check_at_least("candidates", count, 1)
        protocol.update(space=str(Path(args.space).resolve()), candidates=count, sample_seed=args.sample_seed)
    if args.detectors:
        protocol["detectors"] = _csv_list(args.detectors, "--detectors")
    if args.sigmas:
        protocol["sigmas"] = _csv_list(args.sigmas, "--sigmas", float)
        for sigma in protocol["sigmas"]:
            if not 0 < sigma <= 255:
                raise DipsearchError(f"--sigmas takes Gaussian sigmas in (0, 255], got {sigma:g}")
    return protocol


def _image_sizes(images: list[str]) -> dict[str, tuple[int, int]]:
    """(height, width) of every image; a missing or unreadable file fails here, before any other flag is judged."""
    from ..store.imageio import load_image

    return {path: tuple(load_image(path).shape[-2:]) for path in images}


def _check_images(sizes: dict[str, tuple[int, int]], protocol: dict[str, Any]) -> None:
    """Fail before any fit (and before a folder exists) on an image too small for the crop or the network."""
    from ..families import family_of, spec_from_dict

    family = family_of(spec_from_dict(protocol["arch"]))
    for path, (h, w) in sizes.items():
        crop = protocol.get("crop") or 0
        if crop > min(h, w):
            raise DipsearchError(f"--crop {crop} is larger than {path} ({w}x{h} px, width x height)")
        if crop:
            h = w = crop
        problem = family.size_error(h, w)
        if problem:
            raise DipsearchError(f"{path}: {problem}; or use a larger --crop")


def run(args: argparse.Namespace, console: Console) -> int:
    from ..stopping import bench as sb
    from ..store.runs import RunDir

    grid = _csv_list(args.patience_grid, "--patience-grid", int)
    detectors = _csv_list(args.detectors, "--detectors") if args.detectors else None
    if detectors:  # an unknown name is named first, before any setting that only some detectors need
        sb.check_detectors(detectors, ())
    if args.replay:
        run_dir, config = _open_bench(args.replay)
        return _report(console, run_dir, sb.write_results(run_dir, config["protocol"], grid, detectors))

    if args.resume:
        run_dir, config = _open_bench(args.resume)
        images = args.images or config["jobs"]["images"]
    else:
        if not args.images:
            raise DipsearchError("give --images PATH... (clean images), or --resume/--replay RUN_DIR")
        images = args.images
        run_dir = None
    images = [str(Path(p).resolve()) for p in images]
    sizes = _image_sizes(images)
    noises = _csv_list(args.noise, "--noise")
    for n in noises:
        if n not in NOISE_KINDS:
            raise DipsearchError(f"unknown noise type {n!r}; choose from {', '.join(NOISE_KINDS)}")
    levels = _csv_list(args.levels, "--levels")
    if not levels or any(lv not in [str(n) for n in sb.LEVEL_NAMES] for lv in levels):
        raise DipsearchError(f"--levels takes 1 (low), 2 (medium) and 3 (high), got {args.levels!r}")
    levels = [int(lv) for lv in levels]
    if args.seeds < 1:
        raise DipsearchError(f"--seeds must be >= 1, got {args.seeds}")
    protocol = _protocol(args)
    if run_dir is not None and config["protocol"] != protocol:  # mixing fit settings would make traces incomparable
        diff = sorted(k for k in protocol if protocol[k] != config["protocol"].get(k))
        raise DipsearchError(
            f"{args.resume} was run with other settings ({', '.join(diff)}); "
            "give the same --crop/--iters/--arch/--holdout-fraction/--window or start a new bench"
        )
    _check_images(sizes, protocol)
    sb.check_detectors(protocol.get("detectors", ()), noises)
    networks = _networks(protocol, sizes)
    if run_dir is None:
        tag = f"{len(images)}img_{args.crop or 'full'}px_{args.iters}it"
        if networks:
            tag = f"{Path(protocol['space']).stem}{len(networks) - 1}_{tag}"
        run_dir = RunDir.create(args.out, "stop-bench", tag)
        run_dir.write_versions(args.device)
        old_jobs: dict[str, Any] = {"images": [], "noise": [], "levels": [], "seeds": []}
    else:
        old_jobs = config["jobs"]
    jobs_record = {
        "images": sorted({*old_jobs["images"], *images}),
        "noise": sorted({*old_jobs["noise"], *noises}),
        "levels": sorted({*old_jobs["levels"], *levels}),
        "seeds": sorted({*old_jobs["seeds"], *range(args.seeds)}),
    }
    record: dict[str, Any] = {"protocol": protocol, "jobs": jobs_record}
    if networks:
        record["networks"] = {n.name: {"genome": n.genome or {}, "fit": n.fit} for n in networks}
    run_dir.write_toml("config.toml", record)
    values = {"gaussian": protocol["sigmas"]} if "sigmas" in protocol else None
    jobs = sb.jobs_from(images, noises, levels, list(range(args.seeds)), protocol, run_dir.path, networks, values)
    done = sum(j.done for j in jobs)
    console.print(
        f"stop-bench: {len(jobs)} fits ({done} already done) into [bold]{run_dir.path}[/bold], {args.workers} worker(s)"
    )
    try:
        _run_fits(console, jobs, args)
    except BaseException:
        if not args.resume and not list(run_dir.path.glob(f"{sb.TRACES}/*.json")):
            run_dir.discard()  # nothing finished: leave no empty folder behind
        raise
    return _report(console, run_dir, sb.write_results(run_dir, protocol, grid, detectors))


def _networks(protocol: dict[str, Any], sizes: dict[str, tuple[int, int]]) -> list[sb.Network] | None:
    """The seed network and the space's candidates of a cross-architecture bench (None without --space).

    Candidates are drawn once, for the smallest image, so every image gets the same networks."""
    from ..stopping import bench as sb

    if "space" not in protocol:
        return None
    crop = protocol.get("crop") or 0
    h, w = (crop, crop) if crop else min(sizes.values(), key=lambda s: s[0] * s[1])
    seed = sb.Network("seed", protocol["arch"], {})
    return [seed, *sb.sample_networks(protocol["space"], protocol["candidates"], protocol["sample_seed"], (3, h, w))]


def _run_fits(console: Console, jobs: list[sb.FitJob], args: argparse.Namespace) -> None:
    from ..fitting.progress import ProgressHook, fit_progress
    from ..stopping import bench as sb

    class TransientProgress(ProgressHook):
        """The per-iteration bar of the fit in progress, removed when the fit ends."""

        def on_end(self, result) -> None:
            self.progress.remove_task(self.task)

    start = time.perf_counter()
    progress = fit_progress(console, transient=False)
    todo = [j for j in jobs if not j.done]
    with progress if not args.no_progress else nullcontext():
        task = progress.add_task("fits", total=len(jobs), completed=len(jobs) - len(todo), status="", rate="")

        def on_done(meta: dict[str, Any]) -> None:
            progress.advance(task)
            line = f"{meta['key']}: {meta['seconds']:.0f} s (elapsed {sb.elapsed(start)})"
            progress.update(task, status=line)
            if args.no_progress:
                console.print(line)

        def hooks(job: sb.FitJob) -> list[FitHook]:
            if args.no_progress:
                return []
            return [TransientProgress(progress, job.key)]

        sb.run_jobs(todo, args.workers, on_done, hooks)


def _report(console: Console, run_dir: RunDir, results: dict[str, Any]) -> int:
    from rich.table import Table

    if any(a["network"] != "all" for a in results["aggregate"]):
        _network_tables(console, results)
    agg = [
        a
        for a in results["aggregate"]
        if a["level"] == "all" and a["rule"] in results["rules"] and a["network"] == "all"
    ]
    noises = [n for n in ("all", *NOISE_KINDS) if any(a["noise"] == n for a in agg)]
    table = Table(
        title=f"stop-bench: median PSNR gap (dB) / share within 1 dB / mean iterations spent, {results['fits']} fits",
        header_style="bold",
    )
    table.add_column("rule")
    for n in noises:
        table.add_column(n, justify="right")
    for rule in results["rules"]:
        if not any(a["rule"] == rule for a in agg):
            continue  # e.g. SURE when no fit had Gaussian noise
        cells = []
        for n in noises:
            hit = [a for a in agg if a["rule"] == rule and a["noise"] == n]
            cells.append(
                f"{hit[0]['gap_median']:.2f} / {hit[0]['within_1dB']:.0%} / {hit[0]['spent_mean']:.0f}"
                if hit
                else "n/a"
            )
        table.add_row(rule, *cells)
    console.print(table)
    console.print(f"run folder: [bold]{run_dir.path}[/bold] (summary.csv, summary.json, runs.csv, curves.png)")
    return 0


def _network_tables(console: Console, results: dict[str, Any]) -> None:
    """A cross-architecture bench: per noise type and level, every rule on all networks, the seed network alone
    and the space's candidates alone."""
    from rich.table import Table

    agg = [a for a in results["aggregate"] if a["rule"] in results["rules"]]
    settings = list(dict.fromkeys((a["noise"], a["level"]) for a in agg))
    for noise, level in settings:
        table = Table(
            title=f"{noise} noise, level {level}: gap to the peak (dB), share within 1 dB, share of the budget spent, "
            "premature stops",
            header_style="bold",
        )
        for column in ("rule", "networks", "fits", "median", "p90", "<= 1 dB", "spent", "premature"):
            table.add_column(column, justify="left" if column in ("rule", "networks") else "right")
        for a in agg:
            if (a["noise"], a["level"]) == (noise, level):
                table.add_row(
                    a["rule"],
                    a["network"],
                    str(a["runs"]),
                    f"{a['gap_median']:.2f}",
                    f"{a['gap_p90']:.2f}",
                    f"{a['within_1dB']:.0%}",
                    f"{a['spent_share']:.0%}",
                    f"{a['premature']:.0%}",
                )
        console.print(table)
