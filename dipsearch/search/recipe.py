"""Moved to dipsearch.problems.recipe; these names stay importable from here."""

from ..problems.recipe import (  # noqa: F401
    DEMO_IMAGE,
    SEED_MAX,
    ProblemRecipe,
    as_problem,
    check_seed,
    demo_image_path,
    problem_fingerprint,
)
