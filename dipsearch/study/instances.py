"""A study's instances: every clean image x noise level, each a restoration problem synthesised with a fixed seed.

The instances are built (files read, corruption synthesised) before any run folder exists, so a missing or
unreadable image, an image smaller than the crop or a bad task flag fails the study before it starts. An
instance's number is its place in this list, which the study's recipe fixes: it is the step every trial reports
to the Wilcoxon pruner, so that the pruner pairs the same problem across trials.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArgumentError, DipsearchError

if TYPE_CHECKING:
    from ..problems.problem import Problem
    from ..problems.recipe import ProblemRecipe

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


@dataclass
class Instance:
    number: int
    name: str  # "<image stem> s<sigma>", for tables
    recipe: ProblemRecipe
    problem: Problem


def parse_sigmas(text: str) -> list[float]:
    """ "15,25,50" -> [15.0, 25.0, 50.0]; anything that is not a list of positive numbers is refused."""
    parts = [p.strip() for p in str(text).split(",")]
    values = []
    for part in parts:
        try:
            value = float(part)
        except ValueError:
            raise ArgumentError(
                "{sigmas} must be a comma-separated list of numbers such as 15,25,50, got {value!r}", value=text
            ) from None
        if not math.isfinite(value) or value <= 0:
            raise ArgumentError("{sigmas} must hold positive numbers, got {value!r}", value=text)
        values.append(value)
    if len(set(values)) != len(values):
        raise ArgumentError("{sigmas} lists a level twice: {value!r}", value=text)
    return values


def image_files(paths: list[str]) -> list[Path]:
    """The image files that `paths` name: files as given, folders by their image files (sorted), each once."""
    if not paths:
        raise ArgumentError("give at least one clean image or folder of images ({images})")
    found: list[Path] = []
    for text in paths:
        path = Path(text)
        if path.is_dir():
            inside = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not inside:
                raise DipsearchError(f"folder {path} holds no image ({', '.join(IMAGE_SUFFIXES)})")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise DipsearchError(f"image file or folder not found: {path} (check the path and spelling)")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    stems = [p.stem for p in unique]
    twins = sorted({s for s in stems if stems.count(s) > 1})
    if twins:  # the tables name instances by stem: two images of one name would be indistinguishable there
        raise DipsearchError(f"two images share the name {twins[0]!r}; rename one (instances are named by file stem)")
    return unique


def build_instances(paths: list[str], sigmas: list[float | None], base: ProblemRecipe) -> list[Instance]:
    """One instance per image and level: `base` (task, crop, seed, task options) with the image as the clean one."""
    out = []
    for path in image_files(paths):
        for sigma in sigmas:
            recipe = replace(base, clean=str(path), sigma=sigma)
            try:
                problem = recipe.build()
            except ArgumentError as err:  # e.g. the crop is larger than this image: say which image
                raise ArgumentError(err.template + " ({file})", **{**err.values, "file": path}) from None
            name = path.stem if sigma is None else f"{path.stem} s{sigma:g}"
            out.append(Instance(len(out), name, recipe, problem))
    return out


def check_distinct(instances: list[Instance]) -> None:
    """Refuse two images whose crops are the same picture (Set5's head and Set14's face are one photo at two
    sizes): the study's mean would count it twice and the pruner would pair it with itself."""
    import torch

    seen: dict[tuple, list[Instance]] = {}
    for inst in instances:
        clean = inst.problem.clean
        if clean is None:
            continue
        key = (inst.recipe.sigma, tuple(clean.shape), round(float(clean.double().sum()), 6))
        for twin in seen.get(key, []):  # a flipped picture has the same sum: compare every one
            if torch.equal(twin.problem.clean, clean):
                raise DipsearchError(
                    f"{Path(twin.recipe.clean).name} and {Path(inst.recipe.clean).name} give the same crop: "
                    "the study would count one picture twice; leave one of them out"
                )
        seen.setdefault(key, []).append(inst)
