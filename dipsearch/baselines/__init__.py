"""Classical restoration baselines behind one interface: `run_baseline(name, problem) -> image`.

Each method lives in its own module and registers a `Baseline` here. A baseline sees only what a user has
(the observation, the mask, the SR factor, the noise level when stated, else an estimate); it never reads
`problem.clean`. Methods whose package is optional (CBM3D: `bm3d`) import it when they run, so listing the
registry never needs it.
"""

from __future__ import annotations

from . import bm3d_method, inpaint, nlm, upscale  # noqa: F401,E402  (each registers its methods)

# isort: split
# Registered after the methods above, so the listing keeps its order.
from . import deconvolution  # noqa: F401,E402
from .registry import BASELINES, Baseline, baseline_names, get_baseline, run_baseline

__all__ = ["BASELINES", "Baseline", "baseline_names", "get_baseline", "run_baseline"]
