"""What the variants add to a fit's run folder: weights.pt (every fit) and the SGLD uncertainty figure."""

from __future__ import annotations

from typing import Any

from ..fitting.fit import FitResult
from ..store.runs import RunDir
from .sgld import save_uncertainty
from .warmstart import WEIGHTS_FILE, save_weights


def save_variant_outputs(run_dir: RunDir, result: FitResult, spec: Any, channels: int) -> None:
    if "weights" in result.extras:
        save_weights(run_dir.file(WEIGHTS_FILE), result.extras["weights"], spec, channels)
    if "uncertainty" in result.extras:
        samples = result.summary_extra.get("sgld_samples")
        save_uncertainty(
            run_dir.file("uncertainty.png"),
            result.extras["uncertainty"],
            title=f"SGLD posterior std per pixel ({samples} samples)",
        )
