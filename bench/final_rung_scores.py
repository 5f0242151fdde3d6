"""How would another ground-truth-free score have chosen among a finished GA search's finalists?

The final rung of a search refits its finalists (the default genome among them) at the full budget with
online stopping and keeps the one its fitness scores best. This refits the same finalists, with the same
stopping, scored by another fitness (default: sure, Stein's unbiased risk estimate; Gaussian noise only),
and prints each finalist's score next to the true PSNR of the image that score rated (the run's recipe
must know the clean image), with the stored final-rung score and PSNR beside them.

    python bench/final_rung_scores.py RUN_DIR [RUN_DIR ...] [--fitness sure] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import RESULTS, machine, write_json  # noqa: E402

from dipsearch.nets.space import load_space  # noqa: E402
from dipsearch.scoring.evaluate import Candidate, evaluate  # noqa: E402
from dipsearch.search.ga.driver import SPACE_SNAPSHOT, stored_recipe, stored_spec  # noqa: E402
from dipsearch.store.runs import RunDir  # noqa: E402
from dipsearch.store.tomlio import load_toml  # noqa: E402


def rescore(run_dir: Path, fitness: str) -> dict:
    run = RunDir.open(run_dir)
    config = load_toml(run.file("config.toml"), "run configuration")
    recipe, spec = stored_recipe(config), stored_spec(config)
    summary = json.loads(run.file("summary.json").read_text())
    if not summary.get("final"):
        raise SystemExit(f"{run_dir}: no final rung in summary.json")
    problem = recipe.rebuild(f"the run {run.path}")
    space = load_space(run.file(SPACE_SNAPSHOT))
    rows = []
    for finalist in summary["final"]:
        genome = finalist["genome"]
        candidate = Candidate(
            genome=genome,
            arch=space.decode(genome),
            problem=problem,
            iters=finalist["iters_run"],
            seed=spec.seed,
            fitness=fitness,
            fit_settings=space.fit_settings(genome),
            device="cpu",
            threads=1,
            stop=spec.rungs.stop if spec.rungs else {"detector": "emv"},
        )
        ev = evaluate(candidate)
        rows.append(
            {
                "default": finalist["default"],
                "stored_score": finalist["score"],
                "stored_psnr": finalist["psnr"],
                "score": ev.fitness,
                "psnr": ev.psnr,
                "stopped_iter": ev.stopped_iter,
                "error": ev.error,
            }
        )
        print(
            f"  {'default ' if finalist['default'] else 'finalist'}  stored {spec.fitness} "
            f"{finalist['score']:.2f} dB (true {finalist['psnr']:.2f})  |  {fitness} "
            f"{ev.fitness if ev.fitness is None else round(ev.fitness, 2)} dB (true "
            f"{ev.psnr if ev.psnr is None else round(ev.psnr, 2)})",
            flush=True,
        )
    ok = [r for r in rows if r["score"] is not None]

    def chosen(key: str) -> dict:
        return max(ok, key=lambda r: r[key])

    out = {
        "run": str(run.path),
        "finalists": rows,
        "true_best_psnr": max(r["stored_psnr"] for r in rows),
        "default_psnr": next(r["stored_psnr"] for r in rows if r["default"]),
        "stored_choice_psnr": summary["final_choice_psnr"] if "final_choice_psnr" in summary else None,
        f"{fitness}_choice_is_default": chosen("score")["default"] if ok else None,
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--fitness", default="sure")
    parser.add_argument("--json", type=Path, default=RESULTS / "final_rung_scores.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for run in args.runs:
        print(run, flush=True)
        results.append(rescore(run, args.fitness))
    print(f"wrote {write_json(args.json, {'machine': machine(), 'fitness': args.fitness, 'runs': results})}")


if __name__ == "__main__":
    main()
