"""DIP-TV: the data loss plus lambda * TV(x) of the network's output.

The term is engine.total_variation: ANISOTROPIC total variation, normalised by the number of differences,

    TV(x) = mean |x[..., i+1, j] - x[..., i, j]|  +  mean |x[..., i, j+1] - x[..., i, j]|

(means over every channel and pixel pair), so lambda does not depend on the image size or channel count.
bench/variants.py compares lambda 0.002 and 0.01 against the plain fit (Gaussian noise, sigma 25).
"""

from __future__ import annotations

from ..errors import DipsearchError
from ..fitting.parts import LossTerm, total_variation


def check_tv_weight(weight: object, source: str = "") -> None:
    """The one rule for a TV weight, wherever it is given (flag, settings, a space's gene or [fixed] value)."""
    prefix = f"{source}: " if source else ""
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise DipsearchError(f"{prefix}the TV weight must be a number >= 0, got {weight!r}")
    if not weight >= 0:
        raise DipsearchError(f"{prefix}the TV weight must be >= 0, got {weight:g}")


def tv_term(weight: float) -> LossTerm:
    check_tv_weight(weight)
    return total_variation(weight)
