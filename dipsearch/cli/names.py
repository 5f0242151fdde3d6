"""The names and defaults the flags offer, importable without torch, Optuna or DEAP.

Registering the parser must stay cheap (see the package docstring), so the choices that help texts and
`choices=` need are written here once more; tests/test_cli_startup.py asserts that each equals the
constant of the module that owns it, so the two cannot drift apart unnoticed.
"""

from __future__ import annotations

import argparse

from ..nets.genes import VARIANT_GENES  # noqa: F401 - light already (standard library only), so not written again

NOISE_KINDS = ("gaussian", "poisson", "impulse", "speckle")  # dipsearch.problems.noise.NOISE_KINDS
DEFAULT_LEVEL = {
    "gaussian": 25,
    "poisson": 12,
    "impulse": 0.5,
    "speckle": 0.35,
}  # dipsearch.problems.noise.DEFAULT_LEVEL
TASKS = ("denoise", "sr", "inpaint", "deblur", "cs-mri")  # dipsearch.problems.base.task_names()
SR_FACTORS = (2, 4, 8)  # dipsearch.problems.sr.SR_FACTORS
FITNESSES = ("holdout", "psnr", "sure")  # keys of dipsearch.scoring.fitness.FITNESSES
DETECTORS = ("wmv", "emv", "sure", "holdout", "spectral")  # keys of dipsearch.stopping.DETECTORS
SAMPLERS = ("tpe", "random", "cmaes", "gp", "nsga2")  # dipsearch.search.bayes.samplers.SAMPLERS
PRUNERS = ("hyperband", "median", "sha", "none")  # dipsearch.search.bayes.samplers.PRUNERS
CROSSOVERS = ("level", "uniform")  # dipsearch.search.ga.operators.CROSSOVERS
STALE_AFTER = 180.0  # dipsearch.search.bayes.storage.STALE_AFTER
SQLITE_HELP = (
    "SQLite is not for many parallel writers: use a journal file or PostgreSQL for parallel "
    "workers"
)  # dipsearch.search.bayes.storage.SQLITE_HELP
PRESELECT_METRICS = ("psd_mse", "psd_emd", "bandwidth", "slope_gap")  # keys of dipsearch.preselect.METRICS
DEFAULT_PRESELECT_METRIC = "psd_mse"  # dipsearch.preselect.DEFAULT_METRIC
BASELINE_TASKS = {
    "cbm3d": ("denoise",),
    "bm3d": ("denoise",),
    "biharmonic": ("inpaint",),
    "nlm": ("denoise",),
    "bicubic": ("sr",),
    "lanczos": ("sr",),
    "wiener": ("deblur",),
    "zero-filled": ("cs-mri",),
    "tv": ("deblur", "cs-mri"),
}  # dipsearch.baselines.BASELINES: name -> tasks
CHOOSERS = ("ga", "bayes", "random", "none")  # keys of dipsearch.pipelines.choosers.CHOOSERS
RESTORE_BUDGETS = {  # dipsearch.pipelines.choosers.BUDGETS as (space, pop, gens, trials, search_iters, iters)
    "cpu": ("demo", 4, 2, 12, 300, 2400),
    "gpu": ("default", 8, 5, 48, 1200, 3000),
}
CUDA_GRAPH_MODES = ("auto", "on", "off")  # dipsearch.fitting.fit.CUDA_GRAPH_MODES
VARIANTS = ("plain", "sgld")  # keys of dipsearch.variants.VARIANTS
SGLD_ITERS = 20000  # dipsearch.variants.sgld.SGLD.default_iters: the published run length
SGLD_DEFAULTS = {"sgld_noise": 2.0, "burn_in": 7000, "sample_every": 50}  # dipsearch.variants.VariantSettings()


def name_arguments(parser: argparse.ArgumentParser, **flags: str | None) -> None:
    """The flag that sets a library argument where the argument is not named like the flag's dest (see
    cli.argument_flags): name_arguments(parser, level="--sigma"); None where a flag of that dest sets something
    else and none sets the argument. Adds to what other helpers named on the same parser."""
    parser.set_defaults(argument_flags={**(parser.get_default("argument_flags") or {}), **flags})
