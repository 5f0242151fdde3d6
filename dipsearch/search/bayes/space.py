"""A SearchSpace as Optuna suggestions, define-by-run.

Depth is suggested first; per-level genes are suggested only for the levels below that depth, so the
sampler sees a conditional space (TPE with group=True models each depth's sub-space separately).
Genes of inactive levels keep their defaults in the genome, which therefore stays complete and
passes SearchSpace.validate. Fit-setting genes (dipsearch.nets.genes.FIT_GENES) and input_depth are plain
global genes here: a space that declares them turns the study into a hyperparameter study.
"""

from __future__ import annotations

from typing import Any

import optuna

from ...nets.space import Gene, Genome, SearchSpace


def suggest_gene(trial: optuna.Trial, gene: Gene) -> Any:
    """One Optuna suggestion with the gene's kind, bounds, log scale and step."""
    if gene.kind == "choice":
        return trial.suggest_categorical(gene.name, list(gene.choices))
    if gene.kind == "int":
        if gene.log and gene.step > 1:
            # Optuna refuses step together with log; sample on the log scale, then snap to the grid.
            return gene.snap(trial.suggest_int(gene.name, int(gene.low), int(gene.high), log=True))
        return trial.suggest_int(gene.name, int(gene.low), int(gene.high), step=gene.step, log=gene.log)
    return trial.suggest_float(gene.name, float(gene.low), float(gene.high), log=gene.log)


def suggest_genome(trial: optuna.Trial, space: SearchSpace) -> Genome:
    """A complete genome: depth first, then every gene active at that depth; inactive genes at default."""
    genome = space.default()
    if "depth" in space.genes:
        genome["depth"] = suggest_gene(trial, space.genes["depth"])
    depth = space.depth_of(genome)
    for name, gene in space.genes.items():
        if name == "depth" or (gene.level is not None and gene.level >= depth):
            continue
        genome[name] = suggest_gene(trial, gene)
    return genome


def genome_from_params(space: SearchSpace, params: dict[str, Any]) -> Genome:
    """The genome of a finished trial from its params (used when a trial carries no stored genome)."""
    genome = space.default()
    for name, value in params.items():
        if name in space.genes:
            genome[name] = space.genes[name].snap(value)
    return genome


def enqueue_default(study: optuna.Study, space: SearchSpace) -> None:
    """Queue the space's default genome as the study's first trial (the seed network as a baseline)."""
    enqueue_genome(study, space, space.default())


def enqueue_genome(study: optuna.Study, space: SearchSpace, genome: Genome) -> None:
    """Queue a genome's active genes as a trial (inactive ones are never suggested); a queued twin is skipped."""
    active = set(space.active(genome))
    study.enqueue_trial({k: v for k, v in genome.items() if k in active}, skip_if_exists=True)
