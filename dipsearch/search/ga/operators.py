"""Gene-aware variation operators for the GA: every child they return is a genome the space validates.

Genomes are dicts keyed by the space's gene names (in the space's order). All genes, active or not, are
always present: the per-level genes beyond a genome's depth keep their (valid) values, so that a later
depth mutation re-activates a sensible level rather than an invented one. The operators take an explicit
`random.Random`, never the global one, so that the driver's stream is the only randomness in a search.
"""

from __future__ import annotations

import math
import random
from typing import Any

from ...nets.space import Gene, Genome, SearchSpace

CROSSOVERS = ("level", "uniform")


def mutate_value(gene: Gene, value: Any, rng: random.Random, sigma: float = 0.2) -> Any:
    """A different legal value near `value` (or unchanged when the gene has only one legal value).

    int / float: a Gaussian step of `sigma` times the gene's range, in log space for log genes, then
    clipped and snapped to the step grid; an int step that rounds back to the same value moves one grid
    step instead, so a mutation never silently does nothing. choice: another choice, uniformly.
    """
    if gene.kind == "choice":
        others = [c for c in gene.choices if c != value]
        return rng.choice(others) if others else value
    if gene.log:
        span = math.log(gene.high) - math.log(gene.low)
        moved = math.exp(math.log(value) + rng.gauss(0.0, sigma * span))
    else:
        moved = value + rng.gauss(0.0, sigma * (gene.high - gene.low))
    new = gene.snap(moved)
    if gene.kind == "int" and new == value:
        up, down = gene.snap(value + gene.step), gene.snap(value - gene.step)
        options = [v for v in (up, down) if v != value]
        new = rng.choice(options) if options else value
    return new


def mutate(
    space: SearchSpace, genome: Genome, rng: random.Random, indpb: float | None = None, sigma: float = 0.2
) -> Genome:
    """A mutated copy: each active gene changes with probability `indpb` (default: two genes expected).

    Only active genes are drawn (inactive levels cannot change the network, so mutating them would
    waste the offspring); at least one gene always changes.
    """
    child = dict(genome)
    active = [name for name in space.active(genome) if _mutable(space.genes[name])]
    if not active:
        return child
    p = indpb if indpb is not None else min(1.0, 2.0 / len(active))
    chosen = [name for name in active if rng.random() < p] or [rng.choice(active)]
    for name in chosen:
        child[name] = mutate_value(space.genes[name], child[name], rng, sigma)
    return child


def _mutable(gene: Gene) -> bool:
    return gene.kind != "choice" or len(gene.choices) > 1


def blocks(space: SearchSpace) -> list[list[str]]:
    """Gene names grouped as [global genes] + one block per level: the units of one-point crossover."""
    levels: dict[int, list[str]] = {}
    globals_: list[str] = []
    for name, gene in space.genes.items():
        (globals_ if gene.level is None else levels.setdefault(gene.level, [])).append(name)
    return [b for b in [globals_] + [levels[i] for i in sorted(levels)] if b]


def crossover(
    space: SearchSpace, a: Genome, b: Genome, rng: random.Random, kind: str = "level", indpb: float = 0.5
) -> tuple[Genome, Genome]:
    """Two children that mix two parents gene by gene, so both are valid whenever the parents are.

    level: one-point crossover at a block boundary (globals | level 0 | level 1 | ...), the unit-boundary
    crossover of Ho et al. 2020: a child keeps one parent's shallow levels and the other's deep ones.
    uniform: each gene is swapped with probability `indpb`. `level` falls back to uniform when the space
    has a single block (no per-level genes).
    """
    if kind not in CROSSOVERS:
        raise ValueError(f"unknown crossover {kind!r}; choose one of {', '.join(CROSSOVERS)}")
    c1, c2 = dict(a), dict(b)
    units = blocks(space)
    if kind == "level" and len(units) > 1:
        cut = rng.randint(1, len(units) - 1)
        swapped = [name for unit in units[cut:] for name in unit]
    else:
        swapped = [name for name in space.genes if rng.random() < indpb]
    for name in swapped:
        c1[name], c2[name] = b[name], a[name]
    return c1, c2
