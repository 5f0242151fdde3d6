"""A study's best genomes as the first candidates of a per-image search (`--start-from STUDY_DIR`).

Only the standard library and the space are imported: a search reads a study folder without Optuna's study.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ArgumentError, DipsearchError
from ..nets.space import Genome, SearchSpace

TOP_GENOMES = "top_genomes.json"  # as files.TOP_GENOMES, which the study writes after every trial
START_FROM_TOP = 3  # a search's first candidates after its default: the study's best few, not its whole history


def study_genomes(folder: str | Path, space: SearchSpace, top: int = START_FROM_TOP) -> tuple[list[Genome], int]:
    """The study's `top` best complete genomes that are genomes of `space` (a search over a smaller image may have
    cut some away), and how many were left out for that."""
    folder = Path(folder)
    path = folder / TOP_GENOMES
    if not folder.is_dir():
        raise ArgumentError("{start_from:{folder}}: no such study folder", folder=folder)
    if not path.is_file():
        raise ArgumentError(
            "{start_from:{folder}}: not a study's run folder (no {file}); give a folder that `dipsearch study` wrote",
            folder=folder,
            file=TOP_GENOMES,
        )
    try:
        rows = json.loads(path.read_text())
        genomes = [dict(r["genome"]) for r in rows]
    except (ValueError, TypeError, KeyError) as err:
        raise DipsearchError(f"{path} is damaged ({err}); rerun or resume the study that wrote it") from None
    if not genomes:
        raise ArgumentError(
            "{start_from:{folder}}: the study has no trial fitted on every instance yet; resume it first",
            folder=folder,
        )
    usable = []
    for genome in genomes[:top]:
        try:
            space.validate(genome)
        except DipsearchError:
            continue
        usable.append(genome)
    if not usable:
        raise ArgumentError(
            "{start_from:{folder}}: none of the study's best genomes is a genome of space {space!r}; start a "
            "search only from a study over the same space (its winner_space.toml has the same genes)",
            folder=folder,
            space=space.name,
        )
    return usable, min(top, len(genomes)) - len(usable)
