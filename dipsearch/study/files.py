"""The study's run folder: what it writes after every trial (the trials, the pick and its files) and at the end
(the per-instance table, importances, plots, report.html).

winner_arch.toml is a best_arch.toml ([arch], [fit], [genome]): `dipsearch fit --arch` and `restore --arch` take
it. winner_space.toml is the study's space with the pick as its default: `restore --space` fits it, and every
search starts from it (its default is the first GA individual and the first Bayes trial). top_genomes.json lists
the complete trials' genomes, best first: what `--start-from` seeds a search with.
"""

from __future__ import annotations

from typing import Any

import optuna

from ..families import spec_to_dict
from ..nets.space import SearchSpace
from ..store.runs import RunDir
from .genomes import space_with_default
from .outcome import Outcome, instance_table
from .start import TOP_GENOMES

WINNER_ARCH = "winner_arch.toml"
WINNER_SPACE = "winner_space.toml"
TRIALS = "trials.csv"
INSTANCES = "instances.csv"
FITS = "fits.jsonl"


def write_pick(run: RunDir, found: Outcome, space: SearchSpace, full_space: SearchSpace, about: dict[str, Any]) -> None:
    """trials.csv, top_genomes.json and, once a trial is complete, the winner's arch and space files."""
    run.write_csv(TRIALS, [{k: v for k, v in r.items() if k not in ("genome", "key")} for r in found.rows])
    done = sorted((r for r in found.rows if r["complete"]), key=lambda r: (-r["mean_psnr"], r["trial"]))
    run.write_json(
        TOP_GENOMES, [{"trial": r["trial"], "mean_psnr": r["mean_psnr"], "genome": r["genome"]} for r in done]
    )
    pick = found.pick
    if pick is None:
        return
    genome = pick["genome"]
    run.write_toml(
        WINNER_ARCH,
        {
            "arch": spec_to_dict(space.decode(genome)),
            "fit": space.fit_settings(genome) or None,
            "study": {
                "trial": pick["trial"],
                "mean_psnr": pick["mean_psnr"],
                "seconds_per_fit": pick["seconds_per_fit"],
                **about,
            },
            "genome": genome,
        },
    )
    description = (
        f"{full_space.name} with its default studied: trial {pick['trial']} of a study over {about['instances']} "
        f"instances ({about['what']}), mean true PSNR {pick['mean_psnr']:.2f} dB"
    )
    run.write_toml(WINNER_SPACE, space_with_default(full_space, genome, description))


def write_comparison(run: RunDir, study: optuna.Study, found: Outcome, instances: list[Any]) -> list[dict[str, Any]]:
    """instances.csv: the pick against the space default on every instance (empty until both are complete)."""
    if found.default is None or found.pick is None:
        return []
    rows = instance_table(study, instances, found.default, found.pick)
    run.write_csv(INSTANCES, rows)
    return rows
