"""Command-line flags that describe a restoration problem, shared by `fit` and the searchers."""

from __future__ import annotations

import argparse
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from ..errors import DipsearchError
from ..imageio import center_crop, load_image
from ..tasks import DEFAULT_LEVEL, NOISE_KINDS, Problem, load_mask, make_problem

DEMO_IMAGE = "demo.png"


def demo_image_path() -> Path:
    return Path(str(resources.files("dipsearch") / "data" / DEMO_IMAGE))


def add_problem_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("problem")
    group.add_argument("observation", nargs="?", help="the corrupted image to restore (omit it with --clean to synthesise one)")
    group.add_argument("--task", choices=("denoise", "sr", "inpaint"), default="denoise")
    group.add_argument("--clean", metavar="PATH", help="ground truth: enables PSNR/SSIM; alone, the observation is synthesised from it")
    group.add_argument("--noise", choices=NOISE_KINDS, default="gaussian", help="noise model for denoising (default gaussian)")
    group.add_argument(
        "--sigma",
        type=float,
        metavar="S",
        help="noise level: gaussian sigma on the 0-255 scale, poisson scale c, impulse fraction, speckle relative sigma "
        f"(defaults {DEFAULT_LEVEL})",
    )
    group.add_argument("--factor", type=int, default=4, help="super-resolution factor: 2, 4 or 8 (default 4)")
    masks = group.add_mutually_exclusive_group()
    masks.add_argument("--mask", metavar="PATH", help="inpainting mask image, white = known pixel")
    masks.add_argument("--mask-ratio", type=float, metavar="R", help="inpainting: random mask with this fraction missing")
    masks.add_argument("--mask-kind", choices=("text", "region"), help="inpainting: a synthetic text or central-region mask")
    group.add_argument("--crop", type=int, metavar="N", help="centre-crop the image(s) to N x N first")
    group.add_argument("--seed", type=int, default=0, help="seed of the synthesised corruption and of the fit (default 0)")
    group.add_argument("--demo", action="store_true", help="use the embedded demo image (denoising, gaussian sigma 25)")


def _load(path: str | None, crop: int | None, what: str) -> torch.Tensor | None:
    if path is None:
        return None
    image = load_image(path)
    if crop:
        _, _, h, w = image.shape
        if crop > min(h, w):
            raise DipsearchError(f"--crop {crop} is larger than the {what} ({h}x{w} px)")
        image = center_crop(image, crop, crop)
    return image


def problem_from_args(args: argparse.Namespace) -> Problem:
    """Build the Problem the flags describe; every inconsistency is a DipsearchError naming the flag."""
    if args.crop is not None and args.crop < 8:
        raise DipsearchError(f"--crop must be at least 8 px, got {args.crop}")
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

    observed = _load(args.observation, args.crop if args.task != "sr" else None, "observation")
    clean = _load(clean_path, args.crop, "clean image")
    mask = None
    if args.mask:
        reference = observed if observed is not None else clean
        mask = load_mask(args.mask, tuple(reference.shape[-2:]))
    level = args.sigma
    if args.task == "denoise" and level is None and observed is None:
        level = DEFAULT_LEVEL[args.noise]
    problem = make_problem(
        args.task,
        clean=clean,
        observed=observed,
        noise=args.noise,
        level=level,
        factor=args.factor,
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
