"""Moved to dipsearch.problems (one module per task); these names stay importable from here."""

from .metrics import psnr, ssim  # noqa: F401  (re-exported: callers score problems from here)
from .problems.base import task_names
from .problems.deblur import CircularBlur, blur_kernel, gaussian_kernel, motion_kernel  # noqa: F401
from .problems.inpaint import (  # noqa: F401
    MASK_KINDS,
    bernoulli_mask,
    check_known,
    inpaint_mask,
    load_mask,
    region_mask,
    text_mask,
)
from .problems.make import make_problem  # noqa: F401
from .problems.noise import (  # noqa: F401
    DEFAULT_LEVEL,
    LITERATURE_LEVELS,
    NOISE_KINDS,
    SPECKLE_MAX,
    add_noise,
    check_level,
)
from .problems.problem import Problem  # noqa: F401
from .problems.sr import (  # noqa: F401
    SR_FACTORS,
    LanczosDownsampler,
    check_factor,
    lanczos_downsampler,
    lanczos_kernel,
    make_lr,
)

TASKS = task_names()  # the tasks a recipe (files and flags) builds
