"""The names of the genes a search space may declare, each declared once.

- The fit-setting genes (lr, reg_noise_std, iters, variant, tv) set how a network is fitted, not what it is;
  they are the same for every family and are declared here with the limits every fit needs.
- A network family's genes (FamilyGenes) are declared by the family itself, on its spec class
  (`ArchSpec.genes`, `DeepDecoderSpec.genes`); the search space, the specs' own checks and the family
  protocol read them from there.

Standard library only: the CLI reads these names while it builds its parser.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ArgumentError, DipsearchError

CONFIG_GENES = ("lr", "reg_noise_std")  # FitConfig fields a genome sets as they are
BUDGET_GENE = "iters"  # the fit's length; a search may cap it (rungs, budgets), so callers read it apart
VARIANT_GENES = ("variant", "tv")  # VariantSettings fields (dipsearch.variants checks their values)
FIT_GENES = (*CONFIG_GENES, BUDGET_GENE, *VARIANT_GENES)


@dataclass(frozen=True)
class _Limit:
    ok: Callable[[float], bool]
    wanted: str


_LIMITS = {
    "lr": _Limit(lambda v: math.isfinite(v) and v > 0, "a finite number > 0"),
    "reg_noise_std": _Limit(lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    BUDGET_GENE: _Limit(lambda v: v >= 1, "at least 1"),
}


def check_fit_settings(settings: Mapping[str, Any], where: str | None = None) -> None:
    """Refuse learning rates, input noise and budgets no fit can use (inf, nan, <= 0) before any work.

    Without `where` the values are arguments (the CLI names their flags); with it, they came from a file that
    `where` names ("in [fixed] of space.toml").
    """
    for name, limit in _LIMITS.items():
        value = settings.get(name)
        if value is None or limit.ok(value):
            continue
        if where is None:
            raise ArgumentError(f"{{{name}}} must be {limit.wanted}, got {{value}}", value=value)
        raise DipsearchError(f"{name} must be {limit.wanted}, got {value} ({where})")


def fit_settings_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """The fit-setting genes among `values` (a genome, a [fit] table, a space's [fixed] table)."""
    return {k: values[k] for k in FIT_GENES if k in values}


def config_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The fit settings that FitConfig takes as they are (the budget and the variant genes are read apart)."""
    return {k: settings[k] for k in CONFIG_GENES if k in settings}


@dataclass(frozen=True)
class FamilyGenes:
    """The genes of one network family, as a search space names them."""

    arch_globals: tuple[str, ...]  # one value per network; "depth" first (the number of levels)
    per_level: tuple[str, ...]  # one value per level ("n_down[3]" in a space); the spec's per-level fields
    global_per_level: tuple[str, ...]  # per-level settings a space may also give as one global gene

    @property
    def global_genes(self) -> tuple[str, ...]:
        """Every gene a space may declare in [genes]: the family's globals and the fit settings."""
        return self.arch_globals + FIT_GENES + self.global_per_level
