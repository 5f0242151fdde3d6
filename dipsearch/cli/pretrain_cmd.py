"""`dipsearch pretrain`: learn an initialisation (weights.pt) from a folder of images (Reptile)."""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArgumentError, DipsearchError
from .names import NOISE_KINDS

if TYPE_CHECKING:
    from rich.console import Console

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "pretrain",
        help="learn initial weights from a set of images (Reptile), for fit --init",
        description="Reptile over the corrupted observations of a folder of images: each round fits the current "
        "weights to one image for --inner-iters steps and moves them toward the result. Writes "
        "OUT/weights.pt, OUT/report.json and OUT/report.md. Only the observations are fitted; the "
        "images serve as clean references for the report.",
    )
    parser.add_argument("--images", required=True, metavar="DIR", help="folder of training images (png/jpg/tif)")
    parser.add_argument("--task", choices=("denoise", "sr", "inpaint"), default="denoise")  # tasks pretrain covers
    parser.add_argument("--noise", choices=NOISE_KINDS, default="gaussian")
    parser.add_argument("--sigma", type=float, metavar="S", help="noise level (default: the task's, gaussian 25)")
    parser.add_argument("--factor", type=int, help="super-resolution factor (default 4)")
    parser.add_argument("--mask-ratio", type=float, metavar="R", help="inpainting: random mask, this fraction missing")
    parser.add_argument("--mask-kind", choices=("text", "region"), help="inpainting: synthetic text or region mask")
    parser.add_argument("--crop", type=int, metavar="N", help="centre-crop each image to N x N")
    arch = parser.add_mutually_exclusive_group()
    arch.add_argument("--space", metavar="PATH", help="the network of this space's default genome")
    arch.add_argument("--arch", metavar="PATH", help="an architecture file (default: the seed network)")
    parser.add_argument("--rounds", type=int, default=30, help="Reptile rounds, one image each, cycling (default 30)")
    parser.add_argument("--inner-iters", type=int, default=100, help="fit steps per round (default 100)")
    parser.add_argument("--meta-lr", type=float, default=1.0, help="first outer step size, decays to 0 (default 1)")
    parser.add_argument("--lr", type=float, default=0.01, help="Adam learning rate of the inner fits (default 0.01)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, inputs and corruptions")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder (new or empty)")
    parser.set_defaults(func=run)


def image_files(folder: str) -> list[Path]:
    path = Path(folder)
    if not path.is_dir():
        raise DipsearchError(f"--images: {path} is not a folder")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DipsearchError(f"--images: {path} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return files


def run(args: argparse.Namespace, console: Console) -> int:
    from ..families import family_of
    from ..fitting.fit import FitConfig
    from ..problems.recipe import ProblemRecipe
    from ..store.runs import versions
    from ..store.tomlio import dumps_toml
    from ..variants.pretrain import pretrain
    from ..variants.warmstart import save_weights
    from .fit_cmd import resolve_arch

    if args.inner_iters < 1 or args.rounds < 1:
        raise DipsearchError("--rounds and --inner-iters must be >= 1")
    if args.task == "inpaint" and args.mask_ratio is None and args.mask_kind is None:
        raise DipsearchError("inpainting needs --mask-ratio R or --mask-kind text|region")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DipsearchError(f"--out {out} exists and is not an empty folder; choose a new one")
    spec, _, source = resolve_arch(args)
    problems = []
    for i, path in enumerate(image_files(args.images)):
        # Each image is a problem as a search would describe it: the one problem builder loads, crops and corrupts.
        recipe = ProblemRecipe(
            clean=str(path),
            task=args.task,
            noise=args.noise,
            sigma=args.sigma,
            factor=args.factor,
            mask_ratio=args.mask_ratio,
            mask_kind=args.mask_kind,
            crop=args.crop,
            seed=args.seed + i,
        )
        try:
            problem = recipe.build()
        except ArgumentError as err:  # say which image of the folder
            raise ArgumentError("{image}: " + err.template, image=path.name, **err.values) from None
        problem.meta["name"] = path.name
        problems.append(problem)
    config = FitConfig(iters=args.inner_iters, lr=args.lr, seed=args.seed, device=args.device, ssim_every=0)

    def log(row):
        psnr_text = f", EMA PSNR {row['psnr_last_ema']:.2f} dB" if "psnr_last_ema" in row else ""
        console.print(
            f"round {row['round']}/{args.rounds} {row['image']}: loss {row['loss_first']:.5f} -> "
            f"{row['loss_last']:.5f}{psnr_text}",
            highlight=False,
            soft_wrap=True,
        )

    result = pretrain(problems, spec, config, args.rounds, args.meta_lr, log=log)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        save_weights(staging / "weights.pt", result.state_dict, spec, problems[0].image_shape[0])
        settings = {
            "method": "reptile",
            "images": [p.meta["name"] for p in problems],
            "task": args.task,
            "noise": problems[0].meta.get("noise"),
            "level": problems[0].meta.get("level"),
            "crop": args.crop,
            "rounds": args.rounds,
            "inner_iters": args.inner_iters,
            "meta_lr": args.meta_lr,
            "lr": args.lr,
            "seed": args.seed,
            "source": source,
        }
        (staging / "config.toml").write_text(
            dumps_toml(
                {"pretrain": {k: v for k, v in settings.items() if v is not None}, "arch": family_of(spec).to_dict()}
            )
        )
        report = {"settings": settings, "rounds": result.rounds, "versions": versions(str(config.device))}
        (staging / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        (staging / "report.md").write_text(markdown_report(settings, result.rounds))
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    console.print(
        f"weights: [bold]{out / 'weights.pt'}[/bold] (use: dipsearch fit --init {out})", soft_wrap=True, highlight=False
    )
    return 0


def markdown_report(settings: dict, rows: list[dict]) -> str:
    lines = [
        f"# Reptile pre-training: {len(settings['images'])} image(s), {settings['rounds']} rounds of "
        f"{settings['inner_iters']} steps",
        "",
        f"Task {settings['task']}, images: {', '.join(settings['images'])}. The step-1 loss of each round is "
        "the loss of the current initialisation on that round's observation: it falls as the weights learn.",
        "",
        "| round | image | meta step | loss at step 1 | loss at end | EMA PSNR at end (dB) |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        ema = f"{r['psnr_last_ema']:.2f}" if "psnr_last_ema" in r else "-"
        lines.append(
            f"| {r['round']} | {r['image']} | {r['meta_step']:.3f} | {r['loss_first']:.5f} | "
            f"{r['loss_last']:.5f} | {ema} |"
        )
    return "\n".join(lines) + "\n"
