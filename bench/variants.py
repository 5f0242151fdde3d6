"""Benchmark of the fit variants on classic9 centre crops, Gaussian sigma 25, one budget for every method.

Methods (each fitted for the same --iters steps): plain DIP (scored at its last output, its EMA and its peak),
Bayesian DIP / SGLD (posterior mean; burn-in 35 % of the run and a sample every run/80 steps, the published
7000/20000 and ~260 samples scaled down), DIP-TV (a small lambda grid), a warm start from weights pre-trained
with Reptile on OTHER classic9 images (iterations to reach the cold start's peak PSNR, and the peak), and the Deep
Decoder (published family, fixed input). Claim checked: does SGLD remove the need to stop, i.e. is its posterior
mean at 2x and 4x the plain fit's peak iteration as good as the plain fit's peak?

    nice -n 10 python bench/variants.py --threads 1                # runs, appending to bench/results/variants.jsonl
    python bench/variants.py --report-only                         # table (variants.md) and plot (variants.png)

Rows are appended per (method, image) as they finish (all images of one method, then the next method), so a killed run keeps what it did and a rerun skips it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from bench.common import DEFAULT_DATA, RESULTS, machine  # noqa: E402
from dipsearch import ArchSpec, FitConfig, make_problem  # noqa: E402
from dipsearch.families import DeepDecoderSpec  # noqa: E402
from dipsearch.store.imageio import center_crop, load_image  # noqa: E402
from dipsearch.variants import VariantSettings, fit_variant  # noqa: E402
from dipsearch.variants.pretrain import pretrain  # noqa: E402
from dipsearch.variants.warmstart import save_weights  # noqa: E402

TRACE_EVERY = 5  # steps between the trace points kept for the plot


def problem_for(data: Path, name: str, size: int):
    clean = center_crop(load_image(data / "classic9" / f"{name}.png"), size, size)
    problem = make_problem("denoise", clean=clean, noise="gaussian", level=25, seed=0)
    problem.meta["name"] = name
    return problem


def curve(trace, key):
    return [
        [int(r["step"]), round(float(r[key]), 3)]
        for r in trace
        if key in r and (int(r["step"]) % TRACE_EVERY == 0 or key == "psnr_posterior")
    ]


def run_method(problem, method: str, args, weights: Path | None) -> dict:
    iters = args.iters
    if method.endswith("_long"):  # the stopping claim: plain and SGLD run to 4x the plain fit's peak
        iters, method = args.claim_iters, method[: -len("_long")]
    spec, config, settings = ArchSpec(), FitConfig(iters=iters, seed=0, device="cpu", ssim_every=0), VariantSettings()
    if method == "sgld":
        settings = VariantSettings("sgld", burn_in=round(0.35 * iters), sample_every=max(1, iters // 80))
    elif method.startswith("tv"):
        settings = VariantSettings(tv=float(method[2:]))
    elif method == "warm":
        settings = VariantSettings(init=str(weights))
    elif method == "deep_decoder":
        spec, config = DeepDecoderSpec(), config.updated(reg_noise_std=0.0)
    start = time.perf_counter()
    result = fit_variant(problem, spec, config, settings)
    summary = result.summary(problem)
    row = {
        "image": problem.meta["name"],
        "method": method + ("_long" if iters != args.iters else ""),
        "iters": iters,
        "seconds": round(time.perf_counter() - start, 1),
        **{k: summary[k] for k in ("psnr_observed", "psnr_final", "psnr_ema", "psnr_peak", "iter_peak")},
        "curve": curve(result.trace, "psnr"),
        "curve_ema": curve(result.trace, "psnr_ema"),
    }
    if method == "sgld":
        row.update(
            psnr_posterior=summary.get("psnr_posterior"),
            sgld_samples=summary["sgld_samples"],
            uncertainty_error_corr=summary.get("uncertainty_error_corr"),
            curve_posterior=curve(result.trace, "psnr_posterior"),
        )
    return row


def done_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line cut short by a kill
    return rows


def append(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        handle.write(json.dumps(row) + "\n")


def run(args) -> None:
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    rows = done_rows(out)
    have = {
        (r.get("image"), r.get("method"))
        for r in rows
        if not str(r.get("method")).endswith("_long") or r.get("iters") == args.claim_iters
    }
    weights = out.with_name(out.stem + "_pretrained") / "weights.pt"
    if not weights.exists():
        problems = [problem_for(args.data, name, args.size) for name in args.pretrain_images]
        start = time.perf_counter()
        result = pretrain(
            problems,
            ArchSpec(),
            FitConfig(iters=args.inner_iters, seed=100, device="cpu", ssim_every=0),
            args.rounds,
            1.0,
            log=lambda r: print("pretrain", r, flush=True),
        )
        weights.parent.mkdir(parents=True, exist_ok=True)
        save_weights(weights, result.state_dict, ArchSpec(), 3)
        append(
            out,
            {
                "method": "pretrain",
                "images": args.pretrain_images,
                "rounds": args.rounds,
                "inner_iters": args.inner_iters,
                "seconds": round(time.perf_counter() - start, 1),
                "rows": result.rounds,
                "machine": machine(),
            },
        )
    methods = ["plain", "sgld", "warm", *[f"tv{lam:g}" for lam in args.tv], "deep_decoder"]
    problems = {name: problem_for(args.data, name, args.size) for name in args.images}
    # Method-major: a run cut short still compares the first methods on every image; then the long plain and
    # SGLD runs of the stopping claim, image by image.
    jobs = [(m, n) for m in methods for n in problems]
    jobs += [(m, n) for n in args.claim_images if n in problems for m in ("plain_long", "sgld_long")]
    for method, name in jobs:
        if (name, method) in have:
            continue
        row = run_method(problems[name], method, args, weights)
        append(out, row)
        posterior = f" posterior {row['psnr_posterior']:.2f}" if row.get("psnr_posterior") is not None else ""
        print(
            f"{name} {method}: final {row['psnr_final']:.2f} ema {row['psnr_ema']:.2f} peak {row['psnr_peak']:.2f}"
            f" @{row['iter_peak']}{posterior} ({row['seconds']} s)",
            flush=True,
        )


def at(curve_points, step):
    """The value of a curve at the last point at or before `step` (None if the curve does not reach it)."""
    if not curve_points or curve_points[-1][0] < step:
        return None
    before = [v for s, v in curve_points if s <= step]
    return before[-1] if before else None


def mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def fmt(value, digits=2):
    return "n/a" if value is None else f"{value:.{digits}f}"


def report(args) -> None:
    rows = done_rows(Path(args.out))
    pre = next((r for r in rows if r.get("method") == "pretrain"), None)
    fits = [r for r in rows if r.get("method") != "pretrain"]
    by = {(r["image"], r["method"]): r for r in fits}
    images = sorted({r["image"] for r in fits if (r["image"], "plain") in by})
    methods = [m for m in dict.fromkeys(r["method"] for r in fits) if not m.endswith("_long")]
    lines = [
        f"# Variants benchmark: {len(images)} image(s) ({', '.join(images)}), {args.size} px centre crops, "
        f"Gaussian sigma 25, {fits[0]['iters'] if fits else '?'} iterations per method",
        "",
        "| method | final | EMA | peak (iter) | posterior mean | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for m in methods:
        rs = [by[(i, m)] for i in images if (i, m) in by]
        if not rs:
            continue
        lines.append(
            f"| {m} ({len(rs)}) | {fmt(mean([r['psnr_final'] for r in rs]))} | "
            f"{fmt(mean([r['psnr_ema'] for r in rs]))} | {fmt(mean([r['psnr_peak'] for r in rs]))} "
            f"({fmt(mean([r['iter_peak'] for r in rs]), 0)}) | {fmt(mean([r.get('psnr_posterior') for r in rs]))} | "
            f"{fmt(mean([r['seconds'] for r in rs]), 0)} |"
        )
    lines += [
        "",
        "PSNR in dB, mean over images (the count in brackets). Observation: "
        + fmt(mean([by[(i, "plain")]["psnr_observed"] for i in images]))
        + " dB.",
        "",
    ]
    lines += [
        "## Does SGLD remove the need to stop?",
        "",
        "p = the peak iteration of the longest plain fit of that image. n/a: the runs are shorter than that multiple.",
        "",
        "| image | p | plain peak | plain last@2p | plain EMA@2p | SGLD posterior@2p | plain last@4p | plain EMA@4p | SGLD posterior@4p | at the end: plain last / EMA / SGLD posterior | unc./error corr. |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i in images:
        long = by.get((i, "plain_long"), by[(i, "plain")])
        sgld = by.get((i, "sgld_long"), by.get((i, "sgld")))
        p, plain = long["iter_peak"], long  # the long run's peak: a short run may end before the true peak
        post = sgld["curve_posterior"] if sgld else []
        cells = [
            fmt(at(plain["curve"], 2 * p)),
            fmt(at(plain["curve_ema"], 2 * p)),
            fmt(at(post, 2 * p)),
            fmt(at(plain["curve"], 4 * p)),
            fmt(at(plain["curve_ema"], 4 * p)),
            fmt(at(post, 4 * p)),
        ]
        end = (
            f"{plain['psnr_final']:.2f} / {plain['psnr_ema']:.2f} / {fmt(sgld.get('psnr_posterior') if sgld else None)}"
        )
        lines.append(
            f"| {i} (plain {plain['iters']}, SGLD {sgld['iters'] if sgld else '-'} it) | {p} | {plain['psnr_peak']:.2f} | "
            + " | ".join(cells)
            + f" | {end} | {fmt(sgld.get('uncertainty_error_corr') if sgld else None)} |"
        )
    lines += ["", "## Warm start (Reptile pre-training) vs cold start", ""]
    if pre:
        lines.append(
            f"Pre-trained on {', '.join(pre['images'])} (not benchmark images): {pre['rounds']} rounds x "
            f"{pre['inner_iters']} steps, {pre['seconds']} s."
        )
    lines += [
        "",
        "| image | cold: iters to its peak | cold peak | warm: iters to cold peak | warm peak (iter) |",
        "|---|---|---|---|---|",
    ]
    for i in images:
        cold, warm = by[(i, "plain")], by.get((i, "warm"))
        if not warm:
            continue
        reach = next((s for s, v in warm["curve"] if v >= cold["psnr_peak"]), None)
        lines.append(
            f"| {i} | {cold['iter_peak']} | {cold['psnr_peak']:.2f} | {reach if reach is not None else 'never'} "
            f"(trace every {TRACE_EVERY}) | {warm['psnr_peak']:.2f} ({warm['iter_peak']}) |"
        )
    text = "\n".join(lines) + "\n"
    Path(args.out).with_suffix(".md").write_text(text)
    print(text)
    plot(by, images, methods, Path(args.out).with_suffix(".png"))


def plot(by, images, methods, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    long = [i for i in images if (i, "plain_long") in by and (i, "sgld_long") in by]
    fig, axes = plt.subplots(1, 2 if long else 1, figsize=(14 if long else 8, 5), squeeze=False)
    series = [(m, "curve", m) for m in methods] + [
        ("plain", "curve_ema", "plain (EMA)"),
        ("sgld", "curve_posterior", "sgld posterior mean"),
    ]
    _panel(axes[0][0], by, images, series, f"DIP variants, {len(images)} image(s), same budget")
    if long:
        claim = [
            ("plain_long", "curve", "plain"),
            ("plain_long", "curve_ema", "plain (EMA)"),
            ("sgld_long", "curve", "sgld (current sample)"),
            ("sgld_long", "curve_posterior", "sgld posterior mean"),
        ]
        _panel(axes[0][1], by, long, claim, f"stopping claim: long runs, {len(long)} image(s)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _panel(ax, by, images, series, title) -> None:
    for method, key, label in series:
        curves = [dict(by[(i, method)][key]) for i in images if (i, method) in by and by[(i, method)].get(key)]
        if len(curves) < len(images):
            continue  # a mean over fewer images would not be comparable
        steps = sorted(set.intersection(*[set(c) for c in curves]))
        ax.plot(
            steps,
            [statistics.fmean(c[s] for c in curves) for s in steps],
            label=label,
            lw=2 if "posterior" in label else 1.2,
        )
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"PSNR (dB), mean over {len(images)} image(s)")
    ax.set_title(f"{title}, Gaussian sigma 25", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--size", type=int, default=64, help="centre crop (default 64: what a shared CPU affords)")
    parser.add_argument("--iters", type=int, default=600, help="iterations for every method (default 600)")
    parser.add_argument("--images", nargs="+", default=["House", "F16", "Peppers"])
    parser.add_argument("--pretrain-images", nargs="+", default=["Baboon", "Lena", "kodim03"])
    parser.add_argument("--rounds", type=int, default=8, help="Reptile rounds (default 8)")
    parser.add_argument("--inner-iters", type=int, default=30, help="steps per Reptile round (default 30)")
    parser.add_argument("--tv", type=float, nargs="+", default=[0.002, 0.01], help="DIP-TV lambda grid")
    parser.add_argument(
        "--claim-images",
        nargs="+",
        default=["House", "F16", "Peppers"],
        help="images of the long plain and SGLD runs (the stopping claim)",
    )
    parser.add_argument(
        "--claim-iters",
        type=int,
        default=2400,
        help="length of those runs (default 2400: 4x the plain peaks of 533-587 at 64 px)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "variants.jsonl"))
    parser.add_argument("--report-only", action="store_true")
    args = parser.parse_args()
    if not args.report_only:
        run(args)
    report(args)


if __name__ == "__main__":
    main()
