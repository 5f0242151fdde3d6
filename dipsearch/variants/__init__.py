"""Variants of the DIP fit that plug into the engine's seams (dipsearch.fitting) without changing it.

    settings = VariantSettings(variant="sgld", tv=0.001, init="runs/fit/.../weights.pt")
    result = fit_variant(problem, spec, FitConfig(iters=20000), settings, hooks=[...])

Each variant is a registered object (base.Variant; the registry VARIANTS, name -> class; a new one is one
module: docs/extending/variant.md):
- variant "plain": the seed's fit.
- variant "sgld" (Bayesian DIP, sgld.py): Adam with weight decay, Langevin noise on the convolution weights after
  each step (FitHook.on_update), and the posterior mean / per-pixel standard deviation of the outputs sampled
  after the burn-in; result.extras["images"]["output_posterior"], result.extras["uncertainty"], summary keys
  psnr_posterior, sgld_samples, uncertainty_error_corr.
- tv > 0 (DIP-TV, tv.py): adds tv * TV(x) to the loss (anisotropic, mean-normalised; see tv.py).
- init (warm start, warmstart.py): the initial weights from a weights.pt file or a run folder holding one.
The plain DIP fit is VariantSettings() and gives exactly `dipsearch.fit`'s result.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

from ..errors import ArgumentError, DipsearchError
from ..fitting.fit import FitConfig, FitHook, FitResult
from ..fitting.loop import Engine
from ..fitting.parts import FitParts
from ..nets.genes import VARIANT_GENES
from ..problems.problem import Problem
from . import sgld as _sgld  # noqa: F401 - registers the variant
from .base import VARIANTS, Variant, get_variant, owner_of, register_variant
from .tv import check_tv_weight


@dataclass(frozen=True)
class VariantSettings:
    """Which variant, and its settings. The SGLD defaults are the published ones (Cheng et al. 2019)."""

    variant: str = "plain"
    sgld_noise: float = 2.0  # Langevin noise std = sgld_noise * lr, on every convolution weight
    weight_decay: float = 5e-8  # Adam's L2 weight decay under SGLD (the prior on the weights)
    burn_in: int = 7000  # steps before the first posterior sample
    sample_every: int = 50  # one posterior sample every k steps after the burn-in
    tv: float = 0.0  # weight of the total-variation term (DIP-TV); 0 = none
    init: str | None = None  # weights.pt file or run folder to start from (warm start)

    def __post_init__(self) -> None:
        get_variant(self.variant)  # an unknown name: the registered ones
        check_tv_weight(self.tv)
        if not self.sgld_noise >= 0:
            raise DipsearchError(f"the SGLD noise factor must be >= 0, got {self.sgld_noise:g}")
        if not self.weight_decay >= 0:
            raise DipsearchError(f"the SGLD weight decay must be >= 0, got {self.weight_decay:g}")
        if self.burn_in < 0:
            raise DipsearchError(f"the SGLD burn-in must be >= 0 steps, got {self.burn_in}")
        if self.sample_every < 1:
            raise DipsearchError(f"the SGLD sample interval must be >= 1 step, got {self.sample_every}")
        # Another variant's settings do nothing here; given, they are a mistake, not a silent no-op.
        for f in fields(self):
            owner = owner_of(f.name)
            if owner not in (None, self.variant) and getattr(self, f.name) != f.default:
                raise ArgumentError(
                    f"{{{f.name}}} is a setting of {{variant:{owner}}} ({VARIANTS[owner].summary}), and this fit's "
                    f"variant is {{name}}: add {{variant:{owner}}} or drop {{{f.name}}}",
                    name=self.variant,
                )

    @property
    def plain(self) -> bool:
        return self == VariantSettings()

    def check(self, config: FitConfig) -> None:
        """Refuse settings that cannot work with this fit's budget, before any work."""
        get_variant(self.variant).check(self, config)

    def to_dict(self) -> dict[str, Any]:
        """The form recorded in config.toml ([variant]); TOML has no null, so an absent init is left out."""
        data = asdict(self)
        if data["init"] is None:
            del data["init"]
        else:
            path = Path(data["init"])
            data["init"] = str((path / "weights.pt" if path.is_dir() else path).resolve())  # the file itself
        return data

    @classmethod
    def from_settings(cls, settings: dict[str, Any], **overrides: Any) -> VariantSettings:
        """From fit settings that may hold variant genes (and other keys, ignored); overrides win."""
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in settings.items() if k in known}
        return cls(**{**data, **{k: v for k, v in overrides.items() if v is not None}})

    def updated(self, **changes: Any) -> VariantSettings:
        return replace(self, **changes)


def variant_parts(
    spec: Any, channels: int, config: FitConfig, settings: VariantSettings
) -> tuple[FitParts, list[FitHook]]:
    """The engine parts and hooks that make this variant; hooks run after the caller's own."""
    from .tv import tv_term
    from .warmstart import read_weights

    parts = FitParts()
    if settings.init is not None:
        parts.weights = read_weights(settings.init, spec, channels).state_dict
    if settings.tv > 0:
        parts.losses = [tv_term(settings.tv)]
    return parts, get_variant(settings.variant).apply(parts, settings, config)


def candidate_variant(fit_settings: dict[str, Any], iters: int, init: str | None = None) -> VariantSettings:
    """The variant of a search candidate, from its genome's fit settings (genes `variant`, `tv`), for a run of
    `iters` steps (each variant adapts its own settings to short runs: Variant.for_run)."""
    settings = VariantSettings.from_settings(fit_settings, init=init)
    return get_variant(settings.variant).for_run(settings, iters)


def check_variant_genes(genes: dict[str, Any], fixed: dict[str, Any], source: str) -> None:
    """A space's `variant` and `tv` genes (or [fixed] values) must name registered variants and weights >= 0."""
    variant = genes.get("variant")
    choices = variant.choices if variant is not None else ((fixed["variant"],) if "variant" in fixed else ())
    if variant is not None and variant.kind != "choice":
        raise DipsearchError(f"{source}: gene 'variant' must be a choice gene (choices among {', '.join(VARIANTS)})")
    unknown = [c for c in choices if c not in VARIANTS]
    if unknown:
        raise DipsearchError(f"{source}: variant {unknown[0]!r} is not known; choose among {', '.join(VARIANTS)}")
    tv = genes.get("tv")
    check_tv_weight(
        (min(tv.choices) if tv.kind == "choice" else tv.low) if tv is not None else fixed.get("tv", 0), source
    )


def fit_variant(
    problem: Problem,
    spec: Any,
    config: FitConfig | None = None,
    settings: VariantSettings | None = None,
    hooks: Iterable[FitHook] = (),
) -> FitResult:
    """`dipsearch.fit` with a variant: SGLD, a TV term and/or initial weights. Raises for bad settings first."""
    config, settings = config or FitConfig(), settings or VariantSettings()
    settings.check(config)
    parts, own = variant_parts(spec, problem.image_shape[0], config, settings)
    return Engine(spec, config, parts).run(problem, [*hooks, *own])


__all__ = [
    "VARIANTS",
    "Variant",
    "get_variant",
    "register_variant",
    "VARIANT_GENES",
    "VariantSettings",
    "candidate_variant",
    "check_variant_genes",
    "fit_variant",
    "variant_parts",
]
