"""Where a search starts: pre-selected samples and an archive of past winners as its first candidates.

`initial_genomes` returns the genomes a GA puts into its initial population, or a Bayesian search enqueues
as its first trials, in this order: the space's default genome, the best genomes of studies across images
(`--start-from`: dipsearch.study), the winners of earlier runs (`--seed-from`: each folder's best_arch.toml
[genome]), then the best-scored of `preselect` samples (training-free metric, dipsearch.preselect.scoring),
distinct by the network they decode to. A series of images of the same kind can so start from what worked before.
"""

from __future__ import annotations

import glob
import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ArgumentError, DipsearchError, check_at_least
from ..nets.space import Genome, SearchSpace
from ..problems.problem import Problem
from ..store.runs import RunDir
from ..store.tomlio import dumps_toml, load_toml
from .metrics import DEFAULT_METRIC, get_metric
from .scoring import ScoreConfig, ranked, sample_candidates, score_all

INITIAL = "initial_genomes.json"  # in the run folder: what the search started from, for --resume


@dataclass
class SeedPlan:
    preselect: int = 0  # samples to score (0: no pre-selection)
    keep: int | None = None  # how many of them to use (None: what the searcher has room for)
    metric: str = DEFAULT_METRIC
    seed_from: list[str] = field(default_factory=list)  # run folders or glob patterns
    start_from: list[str] = field(default_factory=list)  # study folders: their best genomes follow the default
    inputs: int = 4

    @property
    def active(self) -> bool:
        return bool(self.preselect or self.seed_from or self.start_from)

    def check(self) -> None:
        get_metric(self.metric)
        check_at_least("preselect", self.preselect, 0)
        if self.keep is not None and not 1 <= self.keep <= max(self.preselect, 1):
            raise ArgumentError(
                "{keep} must be between 1 and {preselect} ({most}), got {value}", most=self.preselect, value=self.keep
            )
        if self.keep is not None and not self.preselect:
            raise ArgumentError("{keep} needs {preselect:N}")


def archive_winners(patterns: list[str], space: SearchSpace) -> list[tuple[Path, Genome]]:
    """(folder, genome) of every run folder the patterns name; each must hold a winner of this space."""
    folders: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise ArgumentError("{seed_from} {pattern!r} matches no folder", pattern=pattern)
        folders += [Path(m) for m in matches if Path(m) not in folders]
    out = []
    for folder in folders:
        path = folder / "best_arch.toml"
        if not folder.is_dir():
            raise ArgumentError("{seed_from:{folder}}: no such run folder", folder=folder)
        if not path.is_file():
            raise ArgumentError(
                "{seed_from:{folder}}: the folder has no winner (no best_arch.toml); give the "
                "folders of finished searches or pre-selections",
                folder=folder,
            )
        genome = load_toml(path, "winner file").get("genome")
        if not isinstance(genome, dict):
            raise ArgumentError(
                "{seed_from:{folder}}: {file} has no [genome] table (written by an older dipsearch, "
                "or by hand); only searches and pre-selections record their genome",
                folder=folder,
                file=path.name,
            )
        try:
            space.validate(genome)
        except DipsearchError as err:
            raise ArgumentError(
                "{seed_from:{folder}}: its winner is not a genome of space {space!r} ({err}); seed "
                "only from runs over the same space",
                folder=folder,
                space=space.name,
                err=err,
            ) from None
        out.append((folder, genome))
    return out


def initial_genomes(
    space: SearchSpace,
    problem: Problem,
    plan: SeedPlan,
    room: int,
    seed: int = 0,
    device: str = "auto",
    threads: int | None = None,
) -> tuple[list[Genome], dict[str, Any]]:
    """At most `room` distinct genomes (default first) and a record of where they came from."""
    plan.check()
    genomes: list[Genome] = []
    keys: set[str] = set()

    def add(genome: Genome) -> bool:
        key = space.decode(genome).canonical_key() + json.dumps(space.fit_settings(genome), sort_keys=True)
        if key in keys or len(genomes) >= room:
            return False
        keys.add(key)
        genomes.append(dict(genome))
        return True

    add(space.default())
    from_study = 0
    for folder in plan.start_from:
        from ..study.start import study_genomes

        from_study += sum(add(genome) for genome in study_genomes(folder, space)[0])
    winners = archive_winners(plan.seed_from, space)
    from_archive = sum(add(genome) for _, genome in winners)
    info: dict[str, Any] = {
        **asdict(plan),
        "seed_from_folders": [str(f.resolve()) for f, _ in winners],
        "from_archive": from_archive,
        "from_study": from_study,
        "preselected": 0,
    }
    if plan.preselect:
        scored = sample_candidates(space, problem, plan.preselect, random.Random(seed))
        score_all(
            problem,
            scored,
            ScoreConfig(inputs=plan.inputs, seed=seed, device=device, metrics=(plan.metric,), threads=threads),
        )
        wanted = plan.keep if plan.keep is not None else room
        chosen = 0
        for candidate in ranked(scored, plan.metric):
            if chosen >= wanted:
                break
            chosen += add(candidate.genome)
        info.update(
            preselected=chosen,
            scored=len(scored),
            best_scores=[c.scores[plan.metric] for c in ranked(scored, plan.metric)[:chosen]],
        )
    info["initial"] = len(genomes)
    return genomes, info


def save_initial(run: RunDir, genomes: list[Genome]) -> None:
    run.write_json(INITIAL, genomes)


def load_initial(run: RunDir) -> list[Genome]:
    path = run.file(INITIAL)
    return json.loads(path.read_text()) if path.is_file() else []


def record_seeding(run: RunDir, info: dict[str, Any]) -> None:
    """Adds a [seeding] table to config.toml and a "seeding" entry to summary.json (when it exists)."""
    config = load_toml(run.file("config.toml"), "run configuration")
    config["seeding"] = {k: v for k, v in info.items() if v is not None and v != []}
    run.write_text("config.toml", dumps_toml(config))
    summary = run.file("summary.json")
    if summary.is_file():
        run.write_json("summary.json", {**json.loads(summary.read_text()), "seeding": info})
