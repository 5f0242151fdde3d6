"""Flags of the fit variants (dipsearch.variants): --variant sgld and its settings, --tv, --init."""

from __future__ import annotations

import argparse
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from .names import SGLD_DEFAULTS, SGLD_ITERS, VARIANT_GENES, VARIANTS

if TYPE_CHECKING:
    from ..variants import VariantSettings

_DEFAULT = SimpleNamespace(**SGLD_DEFAULTS)  # the help's defaults, without importing torch to build the parser


def add_variant_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("variants (Bayesian DIP, DIP-TV, warm start)")
    group.add_argument(
        "--variant",
        default=None,
        metavar="NAME",
        help=f"{' | '.join(VARIANTS)} (default plain). sgld: Bayesian DIP, Langevin noise on the weights "
        f"and the posterior mean of the outputs; without --iters it runs the published {SGLD_ITERS} "
        "iterations, about 8x a plain 2400-iteration fit (~14 min at 64 px, ~25 min at 128 px on one "
        "CPU thread; give --iters for less)",
    )
    group.add_argument(
        "--sgld-noise",
        type=float,
        metavar="F",
        help=f"sgld: noise std on every conv weight = F x lr (default {_DEFAULT.sgld_noise:g}: 0.02 at lr 0.01)",
    )
    group.add_argument(
        "--burn-in",
        type=int,
        metavar="N",
        help=f"sgld: steps before the first posterior sample (default {_DEFAULT.burn_in})",
    )
    group.add_argument(
        "--sample-every",
        type=int,
        metavar="K",
        help=f"sgld: one posterior sample every K steps after the burn-in (default {_DEFAULT.sample_every})",
    )
    group.add_argument(
        "--tv",
        type=float,
        metavar="LAMBDA",
        help="DIP-TV: add LAMBDA x anisotropic TV of the output (mean absolute neighbour difference) "
        "to the loss (default 0: none; bench/variants.py compares 0.002 and 0.01)",
    )
    group.add_argument(
        "--init",
        metavar="RUN_DIR|weights.pt",
        help="start from these weights (a fit's run folder or weights.pt, or a pretrain's); same architecture required",
    )


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Fit settings from an arch or space file, split into FitConfig's and the variants'."""
    variant = {k: v for k, v in settings.items() if k in VARIANT_GENES}
    return {k: v for k, v in settings.items() if k not in VARIANT_GENES}, variant


def variant_from_args(args: argparse.Namespace, from_file: dict[str, Any]) -> VariantSettings:
    """Flags win over the variant genes of the space or arch file."""
    from ..variants import VariantSettings

    return VariantSettings.from_settings(
        from_file,
        variant=args.variant,
        sgld_noise=args.sgld_noise,
        burn_in=args.burn_in,
        sample_every=args.sample_every,
        tv=args.tv,
        init=args.init,
    )
