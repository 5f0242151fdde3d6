"""Command-line flags that describe a restoration problem, shared by `fit` and the searchers."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from .names import DEFAULT_LEVEL, NOISE_KINDS, TASKS, name_arguments

if TYPE_CHECKING:
    from ..problems.problem import Problem
    from ..problems.recipe import ProblemRecipe

SEED_MAX = 2**32 - 1  # as dipsearch.problems.recipe.SEED_MAX (not imported: the help text is built at start-up)
PROBLEM_KEYS = (
    "observation",
    "task",
    "clean",
    "noise",
    "sigma",
    "factor",
    "mask",
    "mask_ratio",
    "mask_kind",
    "kernel",
    "kernel_width",
    "acceleration",
    "crop",
    "seed",
    "demo",
)  # the fields of ProblemRecipe that are flags


def demo_image_path() -> Path:
    from ..problems.recipe import demo_image_path

    return demo_image_path()


def add_problem_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("problem")
    group.add_argument(
        "observation", nargs="?", help="the corrupted image to restore (omit it with --clean to synthesise one)"
    )
    group.add_argument(
        "--task",
        choices=TASKS,
        default="denoise",
        help="denoise (default), sr = super-resolution by --factor, inpaint = fill the pixels a mask marks missing, "
        "deblur = undo a known --kernel blur, cs-mri = Cartesian k-space undersampling by --acceleration (grey)",
    )
    group.add_argument(
        "--clean", metavar="PATH", help="ground truth: enables PSNR/SSIM; alone, the observation is synthesised from it"
    )
    group.add_argument(
        "--noise", choices=NOISE_KINDS, default="gaussian", help="noise model for denoising (default gaussian)"
    )
    defaults = ", ".join(f"{kind} {level:g}" for kind, level in DEFAULT_LEVEL.items())
    group.add_argument(
        "--sigma",
        type=float,
        metavar="S",
        help="noise level: gaussian sigma on the 0-255 scale, poisson scale c, impulse fraction, speckle relative sigma "
        f"(defaults: {defaults})",
    )
    group.add_argument("--factor", type=int, help="super-resolution factor: 2, 4 or 8 (default 4; only with --task sr)")
    masks = group.add_mutually_exclusive_group()
    masks.add_argument(
        "--mask", metavar="PATH", help="inpainting mask image, white = known pixel (cropped like the image by --crop)"
    )
    masks.add_argument(
        "--mask-ratio", type=float, metavar="R", help="inpainting: random mask with this fraction missing"
    )
    masks.add_argument(
        "--mask-kind", choices=("text", "region"), help="inpainting: a synthetic text or central-region mask"
    )
    group.add_argument(
        "--kernel", choices=("gaussian", "motion"), help="deblurring kernel (default gaussian; saved as kernel.png)"
    )
    group.add_argument(
        "--kernel-width",
        type=float,
        metavar="W",
        help="deblurring: Gaussian sigma in px (default 2) or motion stroke length in px (default 9)",
    )
    group.add_argument(
        "--acceleration", type=float, metavar="A", help="cs-mri: keep 1/A of the k-space columns (>= 1, default 4)"
    )
    group.add_argument("--crop", type=int, metavar="N", help="centre-crop the image(s) and the mask to N x N first")
    group.add_argument(
        "--seed",
        type=int,
        default=0,
        help=f"seed of the synthesised corruption and of the fit, 0 to {SEED_MAX} (default 0)",
    )
    group.add_argument("--demo", action="store_true", help="use the embedded demo image (denoising, gaussian sigma 25)")
    # --sigma is make_problem's noise level; the library's `sigma` is the sure detector's (--sure-sigma, if any)
    name_arguments(parser, level="--sigma", sigma=None)


def recipe_from_args(args: argparse.Namespace) -> ProblemRecipe:
    """The ProblemRecipe the problem flags describe (paths as given)."""
    from ..problems.recipe import ProblemRecipe

    return ProblemRecipe(**{k: getattr(args, k) for k in PROBLEM_KEYS})


def problem_from_args(args: argparse.Namespace) -> Problem:
    """Build the Problem the flags describe; every inconsistency is an ArgumentError naming the flag."""
    return recipe_from_args(args).build()


def problem_tag(args: argparse.Namespace) -> str:
    return recipe_from_args(args).tag()


def problem_flags(args: argparse.Namespace | ProblemRecipe) -> str:
    """The problem flags of `args` (or of a recipe) as a shell command line, for the "refit the winner" hint."""
    import shlex

    if args.demo:
        parts = ["--demo"]
    else:
        parts = [str(Path(args.observation).resolve())] if args.observation else []
        if args.clean:
            parts += ["--clean", str(Path(args.clean).resolve())]
        if args.task != "denoise":
            parts += ["--task", args.task]
    if args.noise != "gaussian":
        parts += ["--noise", args.noise]
    for flag, dest in (
        ("--sigma", "sigma"),
        ("--factor", "factor"),
        ("--mask-ratio", "mask_ratio"),
        ("--mask-kind", "mask_kind"),
        ("--kernel", "kernel"),
        ("--kernel-width", "kernel_width"),
        ("--acceleration", "acceleration"),
        ("--crop", "crop"),
    ):
        if getattr(args, dest, None) is not None:
            parts += [
                flag,
                f"{getattr(args, dest):g}" if isinstance(getattr(args, dest), float) else str(getattr(args, dest)),
            ]
    if args.mask:
        parts += ["--mask", str(Path(args.mask).resolve())]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    return shlex.join(parts)
