"""The genomes a study starts from and what it hands on: the seed's skip pattern, and a space with a new default."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..nets.space import Genome, SearchSpace, space_from_dict, space_to_dict

SKIP = "n_skip["


def skips_everywhere(space: SearchSpace) -> Genome | None:
    """The space default with skip channels at every level, as the seed's denoising network has them (the largest
    skip width of the default at every level, or the smallest non-zero choice); None when the space does not
    search the skips per level or its default already has them everywhere."""
    genome = space.default()
    genes = [g for name, g in space.genes.items() if name.startswith(SKIP)]
    if not genes or all(genome[g.name] for g in genes):
        return None
    widths = [genome[g.name] for g in genes if genome[g.name]]
    if widths:
        width = max(widths)
    else:
        nonzero = [v for v in (genes[0].choices if genes[0].kind == "choice" else ()) if v]
        if not nonzero:
            return None
        width = min(nonzero)
    for gene in genes:
        if gene.contains(width):
            genome[gene.name] = width
    return genome


def space_with_default(space: SearchSpace, genome: Genome, description: str) -> dict[str, Any]:
    """The space's TOML tables with `genome` as the default: the same genes and ranges, a new starting network.
    Genes the genome lacks (levels below a depth a cut space did not reach) keep the space's default."""
    genes = {name: replace(gene, default=genome.get(name, gene.default)) for name, gene in space.genes.items()}
    data = space_to_dict(replace(space, genes=genes))
    data["description"] = description
    if space.family != "hourglass":
        data["family"] = space.family
    data = {k: v for k, v in data.items() if v != {}}  # an empty [ties] table says nothing
    space_from_dict(data, source="<the studied space>")  # a default that does not build is a bug here, not later
    return data
