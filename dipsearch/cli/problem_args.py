"""Command-line flags that describe a restoration problem, shared by `fit` and the searchers."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DipsearchError
from .names import DEFAULT_LEVEL, NOISE_KINDS, name_arguments

if TYPE_CHECKING:
    import torch

    from ..tasks import Problem

DEMO_IMAGE = "demo.png"


def demo_image_path() -> Path:
    return Path(str(resources.files("dipsearch") / "data" / DEMO_IMAGE))


SEED_MAX = 2**32 - 1  # numpy's and Optuna's samplers take seeds in [0, 2^32); torch and random take any


def add_problem_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("problem")
    group.add_argument("observation", nargs="?", help="the corrupted image to restore (omit it with --clean to synthesise one)")
    group.add_argument("--task", choices=("denoise", "sr", "inpaint"), default="denoise",
                       help="denoise (default), sr = super-resolution by --factor, inpaint = fill the pixels a mask marks missing")
    group.add_argument("--clean", metavar="PATH", help="ground truth: enables PSNR/SSIM; alone, the observation is synthesised from it")
    group.add_argument("--noise", choices=NOISE_KINDS, default="gaussian", help="noise model for denoising (default gaussian)")
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
    masks.add_argument("--mask", metavar="PATH", help="inpainting mask image, white = known pixel (cropped like the image by --crop)")
    masks.add_argument("--mask-ratio", type=float, metavar="R", help="inpainting: random mask with this fraction missing")
    masks.add_argument("--mask-kind", choices=("text", "region"), help="inpainting: a synthetic text or central-region mask")
    group.add_argument("--crop", type=int, metavar="N", help="centre-crop the image(s) and the mask to N x N first")
    group.add_argument("--seed", type=int, default=0,
                       help=f"seed of the synthesised corruption and of the fit, 0 to {SEED_MAX} (default 0)")
    group.add_argument("--demo", action="store_true", help="use the embedded demo image (denoising, gaussian sigma 25)")
    # --sigma is make_problem's noise level; the library's `sigma` is the sure detector's (--sure-sigma, if any)
    name_arguments(parser, level="--sigma", sigma=None)


def check_seed(seed: int | None, flag: str = "--seed") -> None:
    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise DipsearchError(f"{flag} must be between 0 and {SEED_MAX} (2^32 - 1), got {seed}")


def _load(path: str | None, crop: int | None, what: str) -> torch.Tensor | None:
    from ..imageio import center_crop, load_image

    if path is None:
        return None
    image = load_image(path)
    if crop:
        _, _, h, w = image.shape
        if crop > min(h, w):
            raise DipsearchError(f"--crop {crop} is larger than the {what} ({w}x{h} px, width x height)")
        image = center_crop(image, crop, crop)
    return image


def problem_from_args(args: argparse.Namespace) -> Problem:
    """Build the Problem the flags describe; every inconsistency is a DipsearchError naming the flag."""
    from ..tasks import load_mask, make_problem

    if args.crop is not None and args.crop < 8:
        raise DipsearchError(f"--crop must be at least 8 px, got {args.crop}")
    check_seed(args.seed)
    clean_path = args.clean
    if args.demo:
        if args.observation or args.clean:
            raise DipsearchError("--demo uses the embedded image: do not also give an observation or --clean")
        if args.task != "denoise":
            raise DipsearchError("--demo is a denoising demo; drop --task or use --task denoise")
        clean_path = str(demo_image_path())
    if args.observation is None and clean_path is None:
        raise DipsearchError("give an OBSERVATION image, or --clean PATH to synthesise one, or --demo")
    if args.task == "inpaint" and args.mask is None and args.mask_ratio is None and args.mask_kind is None:
        if args.observation is not None or clean_path is not None:
            raise DipsearchError("inpainting needs a mask: --mask PATH, --mask-ratio R or --mask-kind text|region")
    if args.task != "inpaint" and (args.mask or args.mask_ratio is not None or args.mask_kind):
        raise DipsearchError(f"--mask/--mask-ratio/--mask-kind are for --task inpaint, not {args.task}")
    if args.task != "sr" and args.factor is not None:
        raise DipsearchError(f"--factor is the super-resolution factor, for --task sr; {args.task} has no use for it")

    crop = args.crop if args.task != "sr" else None
    observed = _load(args.observation, crop, "observation")
    clean = _load(clean_path, args.crop, "clean image")
    mask = None
    if args.mask:
        reference = observed if observed is not None else clean
        mask = load_mask(args.mask, tuple(reference.shape[-2:]), crop=crop)
    level = args.sigma
    if args.task == "denoise" and level is None and observed is None:
        level = DEFAULT_LEVEL[args.noise]
    problem = make_problem(
        args.task,
        clean=clean,
        observed=observed,
        noise=args.noise,
        level=level,
        factor=4 if args.factor is None else args.factor,
        mask=mask,
        mask_ratio=args.mask_ratio,
        mask_kind=args.mask_kind,
        seed=args.seed,
    )
    problem.meta.update(_sources(args, clean_path))
    return problem


def _sources(args: argparse.Namespace, clean_path: str | None) -> dict[str, Any]:
    return {
        "observation_file": str(Path(args.observation).resolve()) if args.observation else None,
        "clean_file": "<demo>" if args.demo else (str(Path(clean_path).resolve()) if clean_path else None),
        "mask_file": str(Path(args.mask).resolve()) if args.mask else None,
        "crop": args.crop,
    }


def problem_tag(args: argparse.Namespace) -> str:
    if args.demo:
        return f"demo_{args.task}"
    source = args.observation or args.clean
    stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(source).stem)[:40]
    return f"{stem}_{args.task}"


def problem_flags(args: argparse.Namespace) -> str:
    """The problem flags of `args` as a shell command line, for the "refit the winner" hint."""
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
    for flag, dest in (("--sigma", "sigma"), ("--factor", "factor"), ("--mask-ratio", "mask_ratio"),
                       ("--mask-kind", "mask_kind"), ("--crop", "crop")):
        if getattr(args, dest, None) is not None:
            parts += [flag, f"{getattr(args, dest):g}" if isinstance(getattr(args, dest), float) else str(getattr(args, dest))]
    if args.mask:
        parts += ["--mask", str(Path(args.mask).resolve())]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    return shlex.join(parts)
