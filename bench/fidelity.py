"""Search fidelity: which cheap score predicts the restoration a candidate gives at full budget with stopping?

A search ranks candidates by a cheap score; the user then refits the winner at full budget with automatic
stopping. This benchmark measures, for random candidates of a cheap space on classic9 crops with Gaussian noise,
how well each cheap score ranks the candidates by the quantity the user gets: the true PSNR at full budget
with the default stopping detector (EMV, the stopping benchmark's best median), and how much that quantity
the score's pick loses against the best candidate (regret).

Per (candidate, image) there are two fits, each seeded like a search candidate (seed 0):
  main: full resolution, 5 % of the pixels withheld (holdout), `--budget` iterations, recording every step the
        EMV statistic, the held-out error of the output, of the EMA and of EMV's averaged image, and SURE for
        the first `--sure-until` steps (a twin network: SURE costs a second fit while it runs). The budgets
        100/300/1000 are prefixes of this one fit, which is exact: a 300-iteration candidate fit with the
        same seed takes the same first 300 steps. Stopping rules are replayed on the trace prefix, which
        reproduces online stopping inside the short fit exactly (rules.replay).
  half: the problem subsampled by 2 (`--eval-scale 0.5`), 5 % withheld, `--half-iters` iterations.
Truth: EMV's rule (patience 1000) replayed over the whole main fit; the true PSNR of EMV's image at its chosen
step. The held-out PSNR of that same image is the GT-free score a final full-budget rung can use (`final`).
The truth fit withholds 5 % of the pixels, unlike a plain `dipsearch fit --stop emv`; with the same seed the
two fits differ only in those pixels' loss terms.

Scores (all in dB, higher is better): `ho@B` held-out PSNR of the EMA output at B iterations (the search's
default fitness so far); `ho-stop@B` held-out PSNR at the holdout detector's stop (patience 500) within B;
`emv-stop@B` held-out PSNR of EMV's image at EMV's stop within B; `half@B`/`half-stop@B` the same at half scale;
`sure@B`/`sure-min@B` SURE of the last iterate / its minimum within B; `true@B` the true PSNR at B (what
bench/fitness_ranking.py compared the holdout with); `final` as above.

Results go to a JSONL file, one line per (candidate, image), appended as they finish: a killed run resumes
where it stopped, and `--shard I/N` splits the candidates between processes. `--report` only reads the file.

    python bench/fidelity.py [DATA] [--candidates 40] [--images F16 House Peppers Baboon Lena]
        [--sigmas 15 25 50 15 25] [--crop 64] [--budget 1200] [--half-iters 600] [--sure-until 300]
        [--threads 1] [--shard I/N] [--out bench/results/fidelity.jsonl] [--report]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import DEFAULT_DATA, RESULTS, machine, write_json  # noqa: E402
from judge import Rows, classic9_problem, fidelity_space, rank_correlation  # noqa: E402

from dipsearch import FitConfig  # noqa: E402
from dipsearch.fitting.fit import FitHook, StepState, fit, min_size  # noqa: E402
from dipsearch.nets.space import space_from_dict  # noqa: E402
from dipsearch.scoring.evaluate import subsample  # noqa: E402
from dipsearch.stopping import EMV, Holdout, StoppingHook, Sure, replay  # noqa: E402
from dipsearch.store.runs import read_jsonl  # noqa: E402

BUDGETS = (100, 300, 1000)


class SureUntil(Sure):
    """SURE for the first `until` steps only: the twin network stops training there, so SURE costs a second
    fit only over the budgets where it is compared."""

    def __init__(self, until: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.until = until

    def update(self, state: StepState) -> float | None:
        return super().update(state) if state.step <= self.until else None


class HeldOutRecorder(FitHook):
    """Held-out PSNR of the EMA output and of EMV's averaged image, every step (5 % of the pixels: cheap)."""

    name = "heldout-recorder"

    def __init__(self, holdout: Holdout, emv: EMV | None) -> None:
        self.holdout, self.emv = holdout, emv

    def _score(self, image: torch.Tensor, problem) -> float:
        return self.holdout.held.psnr(image, problem)

    def on_step(self, state: StepState) -> bool:
        with torch.no_grad():
            state.record["ho_ema"] = self._score(state.ema, state.problem)
            if self.emv is not None and self.emv.mu is not None:
                state.record["ho_emv"] = self._score(self.emv.mu, state.problem)
        return False


def db(mse: float) -> float:
    return 10 * math.log10(1 / max(mse, 1e-10))


def stop_score(trace: list[dict], budget: int, rule, column: str | None = None) -> tuple[float | None, int | None]:
    """Replay `rule` on the first `budget` steps; the score at its chosen step (a dB column, or the rule's
    MSE statistic in dB) and that step."""
    rows = [r for r in trace if r["step"] <= budget]
    if not any(rule.stat in r for r in rows):
        return None, None
    chosen = replay(rows, rule).chosen
    row = rows[chosen - 1]
    return (row[column] if column else db(row[rule.stat])), chosen


def main_fit(problem, spec, settings: dict, budget: int, sure_until: int) -> dict[str, Any]:
    emv, holdout = EMV(), Holdout()
    detectors = [emv, holdout]
    if sure_until:
        detectors.append(SureUntil(sure_until))
    stopper = StoppingHook(detectors)
    prepared = stopper.prepare(problem)
    config = FitConfig(iters=budget, seed=0, device="cpu", ssim_every=0, **settings)
    result = fit(prepared, spec, config, [stopper, HeldOutRecorder(holdout, emv)])
    trace = result.trace
    by_step = {int(r["step"]): r for r in trace}
    out: dict[str, Any] = {
        "params": result.params,
        "main_seconds": round(result.seconds, 2),
        "psnr_peak": max(r["psnr"] for r in trace),
        "restores": result.restores,
    }
    emv_rule, ho_rule = emv.rule(), holdout.rule()
    for b in BUDGETS:
        out[f"ho@{b}"] = by_step[b]["ho_ema"]
        out[f"true@{b}"] = by_step[b]["psnr_ema"]
        out[f"ho-stop@{b}"], _ = stop_score(trace, b, ho_rule)
        out[f"emv-stop@{b}"], _ = stop_score(trace, b, emv_rule, "ho_emv")
    if sure_until:
        sure_rule = SureUntil(sure_until).rule()
        for b in (100, sure_until):
            out[f"sure@{b}"] = db(by_step[b]["stat_sure"])
            out[f"sure-min@{b}"], _ = stop_score(trace, b, sure_rule)
    decision = replay(trace, emv_rule)
    chosen = decision.chosen
    out.update(
        final=by_step[chosen]["ho_emv"],
        truth=by_step[chosen]["psnr_emv"],
        emv_chosen=chosen,
        emv_fired=decision.fired_at,
    )
    ho_final, ho_chosen = stop_score(trace, budget, ho_rule)
    out.update({"final-ho-stop": ho_final, "truth_ho_stop": by_step[ho_chosen]["psnr"], "ho_chosen": ho_chosen})
    out["ho_curve"] = [round(by_step[s]["ho_ema"], 3) for s in range(25, budget + 1, 25)]
    return out


def half_fit(problem, spec, settings: dict, iters: int) -> dict[str, Any]:
    small = subsample(problem, 0.5)
    holdout = Holdout()
    stopper = StoppingHook([holdout])
    config = FitConfig(iters=iters, seed=0, device="cpu", ssim_every=0, **settings)
    result = fit(stopper.prepare(small), spec, config, [stopper, HeldOutRecorder(holdout, None)])
    trace = result.trace
    out: dict[str, Any] = {"half_seconds": round(result.seconds, 2)}
    for b in (iters // 3, 2 * iters // 3, iters):
        out[f"half@{b}"] = trace[b - 1]["ho_ema"]
        out[f"half-stop@{b}"], _ = stop_score(trace, b, holdout.rule())
    return out


def candidates(n: int, seed: int, crop: int) -> tuple[Any, list[dict]]:
    space = space_from_dict(fidelity_space(), source="fidelity")
    rng = random.Random(seed)
    genomes, seen = [space.default()], {json.dumps(space.decode(space.default()).to_dict(), sort_keys=True)}
    while len(genomes) < n:
        genome = space.sample(rng)
        key = json.dumps(space.decode(genome).to_dict(), sort_keys=True) + repr(space.fit_settings(genome))
        if key not in seen and min_size(space.decode(genome)) <= crop // 2:
            seen.add(key)
            genomes.append(genome)
    return space, genomes


def report(rows: list[dict], out_json: Path) -> dict[str, Any]:
    images = sorted({r["image"] for r in rows})
    shared = set(range(max(r["candidate"] for r in rows) + 1))
    for name in images:  # only candidates that finished on every image, so that each image ranks the same set
        shared &= {r["candidate"] for r in rows if r["image"] == name}
    rows = [r for r in rows if r["candidate"] in shared]
    scores = [k for k in rows[0] if "@" in k or k in ("final", "final-ho-stop")]
    table = {}
    for score in scores:
        per_image = []
        for name in images:
            mine = [r for r in rows if r["image"] == name and r.get(score) is not None]
            if len(mine) < 3:
                continue
            rho, tau = rank_correlation([r[score] for r in mine], [r["truth"] for r in mine])
            pick = max(mine, key=lambda r: r[score])
            best = max(r["truth"] for r in mine)
            default = next((r["truth"] for r in mine if r["candidate"] == 0), None)
            per_image.append(
                {
                    "image": name,
                    "n": len(mine),
                    "spearman": rho,
                    "kendall": tau,
                    "regret": best - pick["truth"],
                    "pick_vs_default": None if default is None else pick["truth"] - default,
                }
            )
        if not per_image:
            continue
        table[score] = {
            "n": min(p["n"] for p in per_image),
            "spearman": statistics.mean(p["spearman"] for p in per_image),
            "kendall": statistics.mean(p["kendall"] for p in per_image),
            "regret_mean": statistics.mean(p["regret"] for p in per_image),
            "regret_max": max(p["regret"] for p in per_image),
            "pick_vs_default_mean": statistics.mean(p["pick_vs_default"] for p in per_image),
            "pick_vs_default_min": min(p["pick_vs_default"] for p in per_image),
            "per_image": per_image,
        }
    print(f"\n{len(shared)} candidates x {len(images)} images; truth = true PSNR at full budget with EMV stopping")
    print(
        f"{'score':16s} {'n':>3s} {'Spearman':>9s} {'Kendall':>8s} {'regret':>7s} {'worst':>6s} {'pick-def':>9s} {'worst':>6s}"
    )
    for score, t in sorted(table.items(), key=lambda kv: -kv[1]["spearman"]):
        print(
            f"{score:16s} {t['n']:3d} {t['spearman']:+9.3f} {t['kendall']:+8.3f} {t['regret_mean']:7.2f} {t['regret_max']:6.2f}"
            f" {t['pick_vs_default_mean']:+9.2f} {t['pick_vs_default_min']:+6.2f}"
        )
    summary = {"candidates": len(shared), "images": images, "table": table, "machine": machine()}
    write_json(out_json, summary)
    print(f"wrote {out_json}")
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", nargs="?", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--images", nargs="+", default=["F16", "House", "Peppers", "Baboon", "Lena"])
    parser.add_argument("--sigmas", nargs="+", type=float, default=[15, 25, 50, 15, 25])
    parser.add_argument("--candidates", type=int, default=40)
    parser.add_argument("--crop", type=int, default=64)
    parser.add_argument("--budget", type=int, default=1200)
    parser.add_argument("--half-iters", type=int, default=600)
    parser.add_argument("--sure-until", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shard", default="0/1", help="I/N: this process takes candidates i with i %% N == I")
    parser.add_argument("--out", type=Path, default=RESULTS / "fidelity.jsonl")
    parser.add_argument("--report", action="store_true", help="only summarise the JSONL file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.report:
        report(read_jsonl(args.out), args.out.with_suffix(".json"))
        return
    if args.budget < max(BUDGETS):
        parser.error(f"--budget must be at least {max(BUDGETS)}")
    shard, shards = (int(v) for v in args.shard.split("/"))
    sigmas = [args.sigmas[i % len(args.sigmas)] for i in range(len(args.images))]
    problems = {}
    for name, sigma in zip(args.images, sigmas):
        problems[name] = (sigma, classic9_problem(args.data, name, args.crop, sigma, args.seed))
    space, genomes = candidates(args.candidates, args.seed, args.crop)
    rows_file = Rows(args.out, ("candidate", "image"))
    done = rows_file.done
    todo = [(i, name) for i in range(len(genomes)) if i % shards == shard for name in problems if (i, name) not in done]
    start = time.perf_counter()
    for n, (i, name) in enumerate(todo, 1):
        genome = genomes[i]
        sigma, problem = problems[name]
        spec, settings = space.decode(genome), space.fit_settings(genome)
        row = {"candidate": i, "image": name, "sigma": sigma, "genome": genome}
        row.update(main_fit(problem, spec, settings, args.budget, args.sure_until))
        row.update(half_fit(problem, spec, settings, args.half_iters))
        rows_file.add(row)
        eta = (time.perf_counter() - start) / n * (len(todo) - n)
        print(
            f"[{n}/{len(todo)}] candidate {i} {name} s{sigma:g}: truth {row['truth']:.2f} dB (EMV at "
            f"{row['emv_chosen']}), ho@300 {row['ho@300']:.2f}, final {row['final']:.2f}; "
            f"{row['main_seconds'] + row['half_seconds']:.0f} s, eta {eta / 60:.0f} min",
            flush=True,
        )
    report(read_jsonl(args.out), args.out.with_suffix(".json"))


if __name__ == "__main__":
    main()
