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
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ArgumentError, DipsearchError

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

# The kind of value each fit-setting gene takes (a TOML file can hold any: iters = "many", iters = true); the
# variant's names and the TV weight's range are checked by dipsearch.variants, which owns them.
_KINDS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "lr": ("a number", lambda v: isinstance(v, numbers.Real)),
    "reg_noise_std": ("a number", lambda v: isinstance(v, numbers.Real)),
    BUDGET_GENE: ("an integer", lambda v: isinstance(v, numbers.Integral)),
    "tv": ("a number", lambda v: isinstance(v, numbers.Real)),
    "variant": ("a variant name", lambda v: isinstance(v, str)),
}


def check_fit_settings(settings: Mapping[str, Any], where: str | None = None) -> None:
    """Refuse learning rates, input noise and budgets no fit can use (wrong kind, inf, nan, <= 0) before any work.

    Without `where` the values are arguments (the CLI names their flags); with it, they came from a file that
    `where` names ("in [fixed] of space.toml").
    """
    for name, (kind, is_kind) in _KINDS.items():
        value = settings.get(name)
        if value is None or (is_kind(value) and not isinstance(value, bool)):
            continue
        if where is None:
            raise ArgumentError(f"{{{name}}} must be {kind}, got {{value!r}}", value=value)
        raise DipsearchError(f"{name} must be {kind}, got {value!r} ({where})")
    for name, limit in _LIMITS.items():
        value = settings.get(name)
        if value is None or limit.ok(value):
            continue
        if where is None:
            raise ArgumentError(f"{{{name}}} must be {limit.wanted}, got {{value}}", value=value)
        raise DipsearchError(f"{name} must be {limit.wanted}, got {value} ({where})")


def check_fit_table(table: Any, source: str) -> dict[str, Any]:
    """The [fit] table of an architecture file (`source`), checked as [arch] is: known keys, usable values."""
    if not isinstance(table, Mapping):
        raise DipsearchError(f"{source}: [fit] must be a table of fit settings ({', '.join(FIT_GENES)})")
    unknown = sorted(set(table) - set(FIT_GENES))
    if unknown:
        raise DipsearchError(
            f"{source}: unknown [fit] key(s) {', '.join(unknown)}; known keys are {', '.join(FIT_GENES)}"
        )
    check_fit_settings(table, f"in [fit] of {source}")
    return dict(table)


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
