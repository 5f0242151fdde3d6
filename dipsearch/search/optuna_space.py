"""A SearchSpace as Optuna suggestions, define-by-run.

Depth is suggested first; per-level genes are suggested only for the levels below that depth, so the
sampler sees a conditional space (TPE with group=True models each depth's sub-space separately).
Genes of inactive levels keep their defaults in the genome, which therefore stays complete and
passes SearchSpace.validate. Fit-setting genes (dipsearch.genes.FIT_GENES) and input_depth are plain
global genes here: a space that declares them turns the study into a hyperparameter study.
"""

from __future__ import annotations

from typing import Any

import optuna

from ..space import Gene, Genome, SearchSpace


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


def space_to_dict(space: SearchSpace) -> dict[str, Any]:
    """The space as the TOML tables it was read from, so a worker on another host can rebuild it exactly
    (space_from_dict(space_to_dict(s)) == s) without the space file."""

    def table(gene: Gene) -> dict[str, Any]:
        if gene.kind == "choice":
            return {"kind": "choice", "choices": list(gene.choices)}
        out: dict[str, Any] = {"kind": gene.kind, "low": gene.low, "high": gene.high}
        if gene.log:
            out["log"] = True
        if gene.kind == "int" and gene.step != 1:
            out["step"] = gene.step
        return out

    genes: dict[str, Any] = {}
    levels: dict[str, Any] = {}
    for name, gene in space.genes.items():
        if name.startswith("cross_skip["):
            continue  # rebuilt from the [cross_skip] table below
        if gene.level is None:
            genes[name] = {**table(gene), "default": gene.default}
        elif gene.level == 0:
            base = name.split("[", 1)[0]
            per_level = [
                g.default for g in space.genes.values() if g.level is not None and g.name.startswith(base + "[")
            ]
            levels[base] = {**table(gene), "default": per_level}
    out = {"name": space.name, "genes": genes, "levels": levels, "fixed": dict(space.fixed), "ties": dict(space.ties)}
    cross = [g for g in space.genes.values() if g.name.startswith("cross_skip[")]
    if cross:
        out["cross_skip"] = {"default": [[int(v) for v in g.name[11:-1].split("][")] for g in cross if g.default]}
    return out
