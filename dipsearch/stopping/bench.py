"""The stopping benchmark: one recorded fit per (image, noise, level, seed), every rule replayed on it.

Each fit is run once with every applicable detector recording (passive StoppingHook) on a problem whose
held-out pixels are withheld from the loss, so all detectors see the same trajectory; its trace is written to
traces/<key>.csv with a traces/<key>.json beside it (written last: a fit counts as done once its JSON
exists, which makes the bench resumable and extendable). Replay reads only the traces, so a new rule or a new
patience is evaluated on old fits without refitting.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import ArgumentError, DipsearchError, check_at_least
from ..families import spec_from_dict, spec_to_dict
from ..fitting.fit import FitConfig, FitHook, baseline_psnr, fit
from ..nets.arch import ArchSpec
from ..problems.make import make_problem
from ..problems.noise import LITERATURE_LEVELS, NOISE_KINDS
from ..scoring.executors import local_pool
from ..store.imageio import center_crop, load_image
from ..store.runs import RunDir, dumps_json, rows_to_csv, write_atomic, write_figure
from .auto import AUTO_SMOOTHING
from .detectors import DETECTORS, EMV, WMV, Detector, Holdout, Spectral, Sure
from .hook import StoppingHook
from .rules import FixedRule, PatienceRule, Rule, replay

LEVEL_NAMES = {1: "low", 2: "medium", 3: "high"}
TRACES = "traces"
MAIN_VARIANTS = (
    "progress",
    "avg",
    "raw-avg",
    "progress-avg",
)  # rule variants shown beside the defaults in tables and plots


@dataclass(frozen=True)
class FitJob:
    """One benchmark fit; plain data, so a process pool can ship it to a worker."""

    image: str
    noise: str
    level: int  # 1, 2, 3 = low, medium, high of the early-stopping literature
    seed: int
    crop: int | None
    arch: dict[str, Any]
    fit: dict[str, Any]  # FitConfig fields (seed is the job's)
    holdout: float
    window: int  # WMV window
    folder: str  # the run folder
    candidate: str = ""  # cross-architecture bench: the network's name ("seed", "c03"); "" = the one network
    level_value: float | None = None  # a noise level given by value instead of the literature's level
    detectors: tuple[str, ...] = ()  # detectors to record; () = every one that applies to the noise

    @property
    def key(self) -> str:
        key = job_key(self.image, self.noise, self.level, self.seed, self.level_value)
        return f"{self.candidate}_{key}" if self.candidate else key

    @property
    def level_name(self) -> str:
        return LEVEL_NAMES[self.level] if self.level_value is None else f"{self.level_value:g}"

    @property
    def done(self) -> bool:
        return (Path(self.folder) / TRACES / f"{self.key}.json").is_file()


def job_key(image: str, noise: str, level: int, seed: int, value: float | None = None) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(image).stem)
    return f"{stem}_{noise}_{f'L{level}' if value is None else f'v{value:g}'}_s{seed}"


def detectors_for(noise: str, holdout: float, window: int, seed: int, names: Iterable[str] = ()) -> list[Detector]:
    """The detectors one fit records: `names`, or every one that applies to the noise type."""
    dets: list[Detector] = [
        d for d in (WMV(window), EMV(), Sure(seed=seed), Holdout(holdout, seed), Spectral()) if d.accepts_noise(noise)
    ]
    names = set(names)
    return [d for d in dets if d.name in names] if names else dets


def check_detectors(names: Iterable[str], noises: Iterable[str]) -> None:
    """Fail before any fit on an unknown detector, or on one that cannot run on a requested noise type."""
    names = list(names)
    unknown = [d for d in names if d not in DETECTORS]
    if unknown:
        raise DipsearchError(f"unknown detector {unknown[0]!r}; choose one of {', '.join(DETECTORS)}")
    for noise in noises:
        refused = [d for d in names if not DETECTORS[d].accepts_noise(noise)]
        if refused:
            cls = DETECTORS[refused[0]]
            raise DipsearchError(
                f"{cls.name}: {cls.noise_rule}, but the bench asks for {noise} noise; "
                f"drop {cls.name} from the detectors or the noise type"
            )


def run_job(job: FitJob, hooks: Iterable[FitHook] = ()) -> dict[str, Any]:
    """Fit one job with every detector recording; write its trace and metadata into the run folder."""
    clean = load_image(job.image)
    if job.crop:
        h, w = clean.shape[-2:]
        if job.crop > min(h, w):
            raise ArgumentError(
                "{crop:{value}} is larger than {image} ({h}x{w} px)", value=job.crop, image=job.image, h=h, w=w
            )
        clean = center_crop(clean, job.crop, job.crop)
    level = job.level_value if job.level_value is not None else LITERATURE_LEVELS[job.noise][LEVEL_NAMES[job.level]]
    problem = make_problem("denoise", clean=clean, noise=job.noise, level=level, seed=job.seed)
    hook = StoppingHook(detectors_for(job.noise, job.holdout, job.window, job.seed, job.detectors))
    config = FitConfig(**{**job.fit, "seed": job.seed})
    result = fit(hook.prepare(problem), spec_from_dict(job.arch), config, [hook, *hooks])
    meta = {
        "key": job.key,
        "image": Path(job.image).stem,
        "image_file": str(job.image),
        "noise": job.noise,
        "level": job.level,
        "level_name": job.level_name,
        "candidate": job.candidate or "seed",
        "lr": config.lr,
        "reg_noise_std": config.reg_noise_std,
        "level_value": level,
        "seed": job.seed,
        "iters": config.iters,
        "iters_run": result.iters_run,
        "seconds": round(result.seconds, 2),
        "psnr_observed": baseline_psnr(problem),
        "detectors": [d.name for d in hook.detectors],
    }
    traces = Path(job.folder) / TRACES
    traces.mkdir(exist_ok=True)
    write_atomic(traces / f"{job.key}.csv", rows_to_csv(result.trace).encode())
    write_atomic(traces / f"{job.key}.json", (dumps_json(meta, indent=1) + "\n").encode())  # last: marks it done
    return meta


def run_jobs(
    jobs: list[FitJob],
    workers: int,
    on_done: Callable[[dict[str, Any]], None],
    hooks_factory: Callable[[FitJob], list[FitHook]] | None = None,
) -> None:
    """Run the jobs not done yet: in this process for workers == 1 (with per-iteration hooks), else in a pool of
    one-thread workers (dipsearch.scoring.executors, dealt to the GPUs like a search's)."""
    todo = [j for j in jobs if not j.done]
    if workers <= 1:
        torch.set_num_threads(1)  # as in each pool worker: CPU time is shared, one core per fit
        for job in todo:
            on_done(run_job(job, hooks_factory(job) if hooks_factory else ()))
        return
    with local_pool(workers, threads_per_worker=1) as pool:
        futures: list[Future] = [pool.submit(run_job, job) for job in todo]
        for future in futures:
            on_done(future.result())


# ---------------------------------------------------------------- replay and aggregation


def _number(text: str) -> float | None:
    return float(text) if text not in ("", None) else None


def load_traces(folder: Path) -> list[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every finished fit of a bench folder: (metadata, trace rows with numbers or None)."""
    out = []
    for meta_path in sorted((Path(folder) / TRACES).glob("*.json")):
        meta = json.loads(meta_path.read_text())
        with open(meta_path.with_suffix(".csv"), newline="") as handle:
            rows = [{k: _number(v) for k, v in row.items() if v != ""} for row in csv.DictReader(handle)]
        out.append((meta, rows))
    return out


def bench_rules(
    window: int, patience_grid: Iterable[int] = (), fixed: int = 2400, variants: bool = False
) -> dict[str, Rule]:
    """Every detector's default rule, patience variants of the patience rules, and the fixed budget; `variants`
    adds the rules built to hold across networks (progress rules, the held-out error with EMV's image)."""
    defaults: list[Detector] = [WMV(window), EMV(), Sure(), Holdout(), Spectral()]
    rules: dict[str, Rule] = {d.name: d.rule() for d in defaults}
    for d in defaults:
        base = rules[d.name]
        if isinstance(base, PatienceRule) and variants:
            rules[f"{d.name}/progress"] = d.progress_rule()
            if d.name == "holdout":  # the held-out error picks the iteration, EMV's average is the image
                rules["holdout/avg"] = replace(base, image="emv", smoothing=AUTO_SMOOTHING)  # what auto runs
                rules["holdout/raw-avg"] = replace(base, image="emv")  # the minimum of the raw MSE
                rules["holdout/progress-avg"] = d.progress_rule(settle=1.0, ratio=1.0, image="emv")
        if isinstance(base, PatienceRule):
            for p in patience_grid:
                if p != base.patience:
                    rules[f"{d.name}/P{p}"] = d.rule(patience=p)
    rules[f"fixed{fixed}"] = FixedRule(fixed)
    return rules


def score(meta: dict[str, Any], rows: list[dict[str, Any]], name: str, rule: Rule) -> dict[str, Any]:
    """One run under one rule: peak, choice, PSNR/SSIM gaps, signed delay, iterations spent, fired."""
    decision = replay(rows, rule)
    by_step = {int(r["step"]): r for r in rows}
    peak = max(rows, key=lambda r: r["psnr"])
    image = getattr(rule, "image", None)
    detector = image or name.split("/")[0]
    columns = {k for r in rows for k in r}
    if image and f"psnr_{image}" not in columns:
        raise DipsearchError(f"the trace has no column 'psnr_{image}': the rule returns the {image} image")
    psnr_col = f"psnr_{detector}" if f"psnr_{detector}" in columns else "psnr"  # EMV returns its average
    ssim_col = f"ssim_{detector}" if f"ssim_{detector}" in columns else "ssim"
    chosen = decision.chosen if decision.chosen is not None else int(rows[-1]["step"])
    # a step the divergence guard undid has no row: take the last recorded step before it
    row = by_step.get(chosen) or max((r for r in rows if r["step"] <= chosen), key=lambda r: r["step"], default=rows[0])
    out = {
        **{k: meta[k] for k in ("key", "image", "noise", "level", "level_name", "seed")},
        "candidate": meta.get("candidate", "seed"),
        "rule": name,
        "peak_iter": int(peak["step"]),
        "psnr_peak": peak["psnr"],
        "chosen_iter": chosen,
        "psnr_chosen": row[psnr_col],
        "gap": peak["psnr"] - row[psnr_col],
        "delay": chosen - int(peak["step"]),
        "spent": decision.fired_at if decision.fired else int(rows[-1]["step"]),
        "fired": decision.fired,
        "budget": int(meta["iters"]),
        "premature": is_premature(chosen, int(peak["step"]), int(meta["iters"])),
    }
    ssim_rows = [r for r in rows if "ssim" in r]
    if ssim_rows:  # SSIM is recorded every few steps: score the recorded step nearest the choice
        near = min(ssim_rows, key=lambda r: abs(int(r["step"]) - chosen))
        out["ssim_gap"] = max(r["ssim"] for r in ssim_rows) - near.get(ssim_col, near["ssim"])
    return out


def is_premature(chosen: int, peak: int, budget: int) -> bool:
    """Stopped in the first 10 % of the budget while the peak lies more than twice as late: the failure that
    discards a candidate before it has restored anything."""
    return chosen < 0.1 * budget and peak > 2 * chosen


def replay_all(
    traces: list[tuple[dict[str, Any], list[dict[str, Any]]]], rules: dict[str, Rule], strict: bool = False
) -> list[dict[str, Any]]:
    """Score every rule on every trace. Not strict: a rule whose statistic a trace lacks (SURE off Gaussian
    noise) skips that trace; strict (detectors asked for by name): that is an error."""
    runs = []
    for meta, rows in traces:
        columns = {k for r in rows for k in r}
        for name, rule in rules.items():
            image = getattr(rule, "image", None)
            if strict or (rule.stat in columns and (image is None or f"psnr_{image}" in columns)):
                try:
                    runs.append(score(meta, rows, name, rule))
                except DipsearchError as err:
                    raise DipsearchError(f"{meta['key']}: {err}") from None
    return runs


def _share(values: list[float], limit: float) -> float:
    return sum(v <= limit for v in values) / len(values)


def aggregate(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rule and noise type: by level, over levels ('all'), and per rule over everything."""
    groups: dict[tuple[str, str, str, str], list[dict[str, Any]]] = {}
    several = len({r.get("candidate", "seed") for r in runs}) > 1  # a cross-architecture bench
    for r in runs:
        networks = ("all", "seed" if r.get("candidate", "seed") == "seed" else "candidates") if several else ("all",)
        for network in networks:
            for noise, level in ((r["noise"], r["level_name"]), (r["noise"], "all"), ("all", "all")):
                groups.setdefault((r["rule"], noise, level, network), []).append(r)
    out = []
    for (rule, noise, level, network), rs in groups.items():
        gaps = [r["gap"] for r in rs]
        ssim_gaps = [r["ssim_gap"] for r in rs if "ssim_gap" in r]
        out.append(
            {
                "rule": rule,
                "noise": noise,
                "level": level,
                "network": network,
                "runs": len(rs),
                "gap_median": statistics.median(gaps),
                "gap_p90": _quantile(gaps, 0.9),
                "gap_mean": statistics.fmean(gaps),
                "gap_std": statistics.stdev(gaps) if len(gaps) > 1 else 0.0,
                "gap_worst": max(gaps),
                "within_0.5dB": _share(gaps, 0.5),
                "within_1dB": _share(gaps, 1.0),
                "ssim_gap_mean": statistics.fmean(ssim_gaps) if ssim_gaps else math.nan,
                "delay_median": statistics.median(r["delay"] for r in rs),
                "delay_mean": statistics.fmean(r["delay"] for r in rs),
                "spent_mean": statistics.fmean(r["spent"] for r in rs),
                "spent_median": statistics.median(r["spent"] for r in rs),
                "never_fired": 1 - sum(r["fired"] for r in rs) / len(rs),
                "spent_share": statistics.fmean(r["spent"] / r["budget"] for r in rs if "budget" in r)
                if all("budget" in r for r in rs)
                else math.nan,
                "premature": statistics.fmean(bool(r.get("premature")) for r in rs),
            }
        )
    order = {n: i for i, n in enumerate(("all", *NOISE_KINDS))}
    levels = {n: i for i, n in enumerate(("all", *LEVEL_NAMES.values()))}
    networks = {"all": 0, "seed": 1, "candidates": 2}
    return sorted(
        out,
        key=lambda a: (
            a["rule"],
            order.get(a["noise"], 99),
            levels.get(a["level"], 99),
            a["level"],
            networks[a["network"]],
        ),
    )


def _quantile(values: list[float], q: float) -> float:
    """The q-quantile, linear between order statistics (numpy's default)."""
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = math.floor(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (pos - low) * (ordered[high] - ordered[low])


def plot_curves(
    traces: list[tuple[dict[str, Any], list[dict[str, Any]]]],
    runs: list[dict[str, Any]],
    rules: Iterable[str],
    path: Path,
    per_noise: int = 1,
) -> Path | None:
    """PSNR curves of a few fits (the medium level of each noise type), each rule's choice marked."""
    from matplotlib import colormaps
    from matplotlib.figure import Figure  # the object API: no pyplot, so no display and no backend change

    picked: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for noise in NOISE_KINDS:
        candidates = [t for t in traces if t[0]["noise"] == noise]
        candidates.sort(key=lambda t: (abs(t[0]["level"] - 2), t[0]["key"]))
        picked += candidates[:per_noise]
    if not picked:
        return None
    rules = list(rules)
    cols = min(2, len(picked))
    nrows = -(-len(picked) // cols)
    fig = Figure(figsize=(6.5 * cols, 3.8 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False)
    colours = colormaps["tab10"]
    for ax, (meta, rows) in zip(axes.flat, picked):
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["psnr"] for r in rows], color="0.3", lw=0.8, label="PSNR")
        for i, name in enumerate(rules):
            hit = [r for r in runs if r["key"] == meta["key"] and r["rule"] == name]
            if hit:
                h = hit[0]
                ax.axvline(h["chosen_iter"], color=colours(i), ls="--", lw=1)
                ax.plot(
                    [h["chosen_iter"]], [h["psnr_chosen"]], "o", color=colours(i), label=f"{name} ({h['gap']:.2f} dB)"
                )
        peak = max(rows, key=lambda r: r["psnr"])
        ax.plot([peak["step"]], [peak["psnr"]], "k*", ms=10, label="peak")
        ax.set_title(
            f"{meta['image']}, {meta['noise']} {meta['level_name']} ({meta['level_value']:g}), seed {meta['seed']}"
        )
        ax.set_xlabel("iteration")
        ax.set_ylabel("PSNR (dB)")
        ax.legend(fontsize=7, loc="lower right")
    for ax in list(axes.flat)[len(picked) :]:
        ax.axis("off")
    fig.tight_layout()
    write_figure(path, fig)
    return path


def plot_stop_vs_peak(runs: list[dict[str, Any]], rules: Iterable[str], path: Path) -> Path | None:
    """One panel per rule: the iteration each fit stopped at against its true peak; the seed network's fits as
    stars. Points under the diagonal stopped before the peak; the shaded band is the premature zone."""
    from matplotlib.figure import Figure

    rules = [r for r in rules if any(run["rule"] == r for run in runs)]
    if not rules:
        return None
    cols = min(3, len(rules))
    nrows = -(-len(rules) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.8 * nrows))
    axes = fig.subplots(nrows, cols, squeeze=False)
    budget = max(r["budget"] for r in runs if "budget" in r) if any("budget" in r for r in runs) else None
    for ax, name in zip(axes.flat, rules):
        hits = [r for r in runs if r["rule"] == name]
        for seed, marker, colour in ((False, "o", "tab:blue"), (True, "*", "tab:red")):
            pts = [r for r in hits if (r.get("candidate", "seed") == "seed") == seed]
            if pts:
                ax.scatter(
                    [r["peak_iter"] for r in pts],
                    [r["chosen_iter"] for r in pts],
                    s=18 if not seed else 60,
                    marker=marker,
                    color=colour,
                    alpha=0.7,
                    label="seed network" if seed else "candidates",
                )
        top = max([r["peak_iter"] for r in hits] + [r["chosen_iter"] for r in hits] + [budget or 1])
        ax.plot([0, top], [0, top], color="0.5", lw=0.8)
        if budget:
            ax.axhspan(0, 0.1 * budget, color="tab:red", alpha=0.08)
        premature = sum(bool(r.get("premature")) for r in hits)
        ax.set_title(f"{name}: {premature}/{len(hits)} premature", fontsize=9)
        ax.set_xlabel("peak iteration")
        ax.set_ylabel("chosen iteration")
        ax.legend(fontsize=7, loc="upper left")
    for ax in list(axes.flat)[len(rules) :]:
        ax.axis("off")
    fig.tight_layout()
    write_figure(path, fig)
    return path


def write_results(
    run_dir: RunDir, protocol: dict[str, Any], patience_grid: Iterable[int] = (), detectors: list[str] | None = None
) -> dict[str, Any]:
    """Replay every rule on every trace of the folder; write runs.csv, summary.csv, summary.json, curves.png.

    `detectors` restricts the replay to those detectors (and the fixed budget), and then every trace must hold them.
    """
    traces = load_traces(run_dir.path)
    if not traces:
        raise DipsearchError(f"{run_dir.path} holds no finished fit (no traces/*.json): nothing to replay")
    rules = bench_rules(
        int(protocol.get("window", 100)),
        patience_grid,
        # a run shorter than the fixed budget stops at its own end: name the rule for the budget it really has
        fixed=min(int(protocol.get("fixed_budget", 2400)), int(protocol.get("fit", {}).get("iters", 2400))),
        variants="space" in protocol,  # a cross-architecture bench
    )
    if detectors:
        unknown = [d for d in detectors if d not in DETECTORS]
        if unknown:
            raise DipsearchError(f"unknown detector {unknown[0]!r}; choose one of {', '.join(DETECTORS)}")
        rules = {
            n: r
            for n, r in rules.items()
            if (n.split("/")[0] in detectors and getattr(r, "image", None) in (None, *detectors))
            or isinstance(r, FixedRule)
        }
    runs = replay_all(traces, rules, strict=bool(detectors))
    agg = aggregate(runs)
    run_dir.write_csv("runs.csv", runs)
    run_dir.write_csv("summary.csv", agg)
    run_dir.write_json(
        "summary.json",
        {
            "protocol": protocol,
            "fits": len(traces),
            "rules": {name: r.label for name, r in rules.items()},
            "fit_seconds_mean": statistics.fmean(m["seconds"] for m, _ in traces),
            "aggregate": agg,
        },
    )
    main_rules = [n for n in rules if "/" not in n or n.split("/")[1] in MAIN_VARIANTS]
    plot_curves(traces, runs, main_rules, run_dir.file("curves.png"))
    plot_stop_vs_peak(runs, main_rules, run_dir.file("stop_vs_peak.png"))
    return {"fits": len(traces), "aggregate": agg, "rules": main_rules}


@dataclass(frozen=True)
class Network:
    """One network of a cross-architecture bench: its name, architecture and fit settings (FitConfig fields)."""

    name: str
    arch: dict[str, Any]
    fit: dict[str, Any]
    genome: dict[str, Any] | None = None  # None: the seed network


def sample_networks(
    space_file: str | Path, count: int, sample_seed: int, image_shape: tuple[int, int, int]
) -> list[Network]:
    """`count` seeded random candidates of a space, their fit genes (learning rate, input noise) included.

    The space is first cut down to the networks that can fit an image of `image_shape` (channels, height, width),
    as a search cuts it, so no candidate is a certain failure; a space with no such network raises.
    """
    import random
    from types import SimpleNamespace

    from ..nets.genes import config_settings
    from ..nets.space import load_space
    from ..search.prepare import fit_space_to_image

    check_at_least("candidates", count, 1)
    space, _ = fit_space_to_image(load_space(space_file), SimpleNamespace(image_shape=image_shape))
    rng = random.Random(sample_seed)
    networks = []
    for i in range(count):
        genome = space.sample(rng)
        settings = config_settings(space.fit_settings(genome))
        networks.append(Network(f"c{i:02d}", spec_to_dict(space.decode(genome)), settings, genome))
    return networks


def jobs_from(
    images: list[str],
    noises: list[str],
    levels: list[int],
    seeds: list[int],
    protocol: dict[str, Any],
    folder: Path,
    networks: list[Network] | None = None,
    values: dict[str, list[float]] | None = None,
) -> list[FitJob]:
    """The fits of a bench. `networks` (cross-architecture): each network's fits, named by it, the seed network's
    first. `values`: noise levels given by value for some noise types (e.g. Gaussian sigma 25 and 50), used
    instead of `levels` for those types."""
    values = values or {}
    nets = networks or [Network("", protocol["arch"], {})]
    settings = [(noise, lv, None) for lv in levels for noise in noises if noise not in values]
    settings += [(noise, 0, v) for noise in noises for v in values.get(noise, [])]
    detectors = tuple(protocol.get("detectors", ()))
    return [
        FitJob(
            str(img),
            noise,
            level,
            seed,
            protocol.get("crop"),
            net.arch,
            {**protocol["fit"], **net.fit},
            protocol["holdout"],
            protocol["window"],
            str(folder),
            net.name,
            value,
            detectors,
        )
        # networks and noise innermost: a bench cut short still covers every network and noise type
        for seed in seeds
        for img in images
        for noise, level, value in settings
        for net in nets
    ]


def protocol_dict(
    crop: int | None, spec: ArchSpec, config: FitConfig, holdout: float, window: int, fixed: int = 2400
) -> dict[str, Any]:
    fit_settings = {k: v for k, v in config.to_dict().items() if k != "seed"}
    return {
        "crop": crop or 0,
        "arch": spec_to_dict(spec),
        "fit": fit_settings,
        "holdout": holdout,
        "window": window,
        "fixed_budget": fixed,
    }


def elapsed(start: float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(time.perf_counter() - start))


__all__ = [
    "FitJob",
    "aggregate",
    "bench_rules",
    "jobs_from",
    "Network",
    "check_detectors",
    "is_premature",
    "load_traces",
    "plot_stop_vs_peak",
    "plot_curves",
    "protocol_dict",
    "replay_all",
    "run_job",
    "run_jobs",
    "sample_networks",
    "score",
    "write_results",
]
