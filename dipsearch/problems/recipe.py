"""How to rebuild a restoration problem anywhere: ProblemRecipe, and the one problem fingerprint.

A search stores the recipe of its problem (in config.toml, and in an Optuna study's user attrs), not the
tensors: a worker on another host or a resumed run rebuilds the problem from it and checks the result
against the stored fingerprint, so a changed image file or another torch synthesising other noise is a
clear error instead of a silently different search. A problem handed over as tensors in Python has no
files to rebuild it from; its recipe holds only the fingerprint, and whatever would need to rebuild it
(a `dipsearch worker`, a resume) says so.

Only the standard library is imported at module level: the CLI builds recipes while it starts; the task
registry (torch) is imported when a recipe is checked or built.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, fields, replace
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ArgumentError, DipsearchError

if TYPE_CHECKING:
    import torch

    from .base import Task
    from .problem import Problem

DEMO_IMAGE = "demo.png"
SEED_MAX = 2**32 - 1  # numpy's and Optuna's samplers take seeds in [0, 2^32); torch and random take any


def demo_image_path() -> Path:
    return Path(str(resources.files("dipsearch") / "data" / DEMO_IMAGE))


def check_seed(seed: int | None) -> None:
    if seed is not None and not 0 <= seed <= SEED_MAX:
        raise ArgumentError("{seed} must be between 0 and {max} (2^32 - 1), got {value}", max=SEED_MAX, value=seed)


def problem_fingerprint(problem: Problem) -> str:
    """A hash of what a fit sees and scores (task, shape, operator, observation, mask, clean image)."""
    digest = hashlib.sha256(f"{problem.task}|{problem.image_shape}|{type(problem.operator).__name__}".encode())
    for tensor in (problem.observed, problem.mask, problem.clean):
        digest.update(b"-" if tensor is None else tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass
class ProblemRecipe:
    """A restoration problem as files and settings (the fields are the `dipsearch fit` problem flags).

    observation: the corrupted image; without it the observation is synthesised from `clean` (seeded).
    demo: the packaged demo image as the clean one (denoising only).
    sigma: the noise level (gaussian: 0-255 scale); None: the noise kind's default.
    in_memory: made by `of_problem` from tensors: only `fingerprint` is known, build() refuses.
    """

    observation: str | None = None
    task: str = "denoise"
    clean: str | None = None
    noise: str = "gaussian"
    sigma: float | None = None
    factor: int | None = None
    mask: str | None = None
    mask_ratio: float | None = None
    mask_kind: str | None = None
    kernel: str | None = None
    kernel_width: float | None = None
    acceleration: float | None = None
    crop: int | None = None
    seed: int = 0
    demo: bool = False
    in_memory: bool = False
    fingerprint: str | None = None  # of the built problem, once known

    @classmethod
    def of_problem(cls, problem: Problem) -> ProblemRecipe:
        """The recipe of a problem made in Python: it can be checked against, not rebuilt."""
        return cls(task=problem.task, in_memory=True, fingerprint=problem_fingerprint(problem))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProblemRecipe:
        """From to_dict(), or from the problem flags older runs stored ([args] of config.toml, a study's problem_args)."""
        known = {f.name for f in fields(cls)}
        recipe = cls(**{k: v for k, v in data.items() if k in known and v is not None})
        recipe.demo, recipe.in_memory = bool(recipe.demo), bool(recipe.in_memory)
        if recipe.in_memory:
            return recipe
        # Runs made before the factor was refused outside sr stored the default 4: drop what the task does not read.
        own = set(recipe.spec().option_fields)
        return replace(recipe, **{f: None for f in _option_fields() - own})

    def to_dict(self) -> dict[str, Any]:
        """TOML/JSON friendly; None values are left out."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def resolved(self) -> ProblemRecipe:
        """The same recipe with absolute file paths: what a run stores, so it rebuilds from any folder."""
        absolute = {
            k: str(Path(getattr(self, k)).resolve()) for k in ("observation", "clean", "mask") if getattr(self, k)
        }
        return replace(self, **absolute)

    @property
    def rebuildable(self) -> bool:
        return not self.in_memory

    def spec(self) -> Task:
        """The registered task object of `task` (an unknown name is an ArgumentError listing the names)."""
        from .base import get_task

        return get_task(self.task)

    def check(self) -> None:
        """Refuse inconsistent settings before any file is read."""
        from .base import registry
        from .denoise import check_demo

        if self.in_memory:
            return
        task = self.spec()
        if not task.buildable:
            raise ArgumentError("{task} {value} is built in Python, not from files", value=self.task)
        if self.crop is not None and self.crop < 8:
            raise ArgumentError("{crop} must be at least 8 px, got {value}", value=self.crop)
        check_seed(self.seed)
        if self.demo:
            if self.observation or self.clean:
                raise ArgumentError("{demo} uses the embedded image: do not also give an observation or {clean}")
            check_demo(task)
        elif self.observation is None and self.clean is None:
            raise ArgumentError("give an {observation} image, or {clean:PATH} to synthesise one, or {demo}")
        if self.observation is not None and not task.observation_files:
            raise ArgumentError(
                "{task} {value} measures no image an image file could hold: give {clean:PATH} to synthesise the "
                "measurements instead of an {observation}",
                value=self.task,
            )
        task.check(self)
        for other in registry().values():
            for group in other.options if other is not task else ():
                if any(getattr(self, f) is not None for f in group.fields):
                    raise ArgumentError(group.foreign, value=self.task)

    def build(self) -> Problem:
        """Load the files and synthesise the corruption (seeded); every inconsistency is an ArgumentError."""
        from .inpaint import load_mask
        from .make import make_problem
        from .noise import DEFAULT_LEVEL

        if self.in_memory:
            raise DipsearchError(
                f"this problem was given as tensors in Python (fingerprint {self.fingerprint}): it "
                "cannot be rebuilt from its recipe; run the search in the process that holds it, or "
                "describe the problem by files (a ProblemRecipe with observation= or clean=)"
            )
        self.check()
        task = self.spec()
        clean_path = str(demo_image_path()) if self.demo else self.clean
        crop = self.crop if task.crops_observation else None
        observed = self._load(self.observation, crop, "observation")
        clean = self._load(clean_path, self.crop, "clean image")
        mask = None
        if self.mask:
            reference = observed if observed is not None else clean
            mask = load_mask(self.mask, tuple(reference.shape[-2:]), crop=crop)
        level = self.sigma
        if task.noise_by_default and level is None and observed is None:
            level = DEFAULT_LEVEL[self.noise]
        problem = make_problem(
            self.task,
            clean=clean,
            observed=observed,
            noise=self.noise,
            level=level,
            seed=self.seed,
            **{f: getattr(self, f) for f in task.option_fields if f != "mask"},
            **({"mask": mask} if "mask" in task.option_fields else {}),
        )
        problem.meta.update(
            {
                "observation_file": str(Path(self.observation).resolve()) if self.observation else None,
                "clean_file": "<demo>" if self.demo else (str(Path(clean_path).resolve()) if clean_path else None),
                "mask_file": str(Path(self.mask).resolve()) if self.mask else None,
                "crop": self.crop,
            }
        )
        return problem

    def rebuild(self, what: str) -> Problem:
        """build(), checked against the stored fingerprint; `what` names the run or study for the messages."""
        if self.in_memory:
            raise DipsearchError(
                f"{what} was started on a problem given as tensors in Python: it cannot be rebuilt "
                "here; only the process that holds those tensors can run it"
            )
        try:
            problem = self.build()
        except DipsearchError as err:
            raise DipsearchError(f"cannot rebuild the problem of {what} here: {err}") from None
        if self.fingerprint is not None and problem_fingerprint(problem) != self.fingerprint:
            raise DipsearchError(
                f"the problem rebuilt here differs from the one {what} was started with (changed "
                "image files, or another torch version synthesising the noise); use the same files "
                "and versions"
            )
        return problem

    def tag(self) -> str:
        """A short name for run folders: the image's stem and the task."""
        if self.demo or self.in_memory:
            return f"{'demo' if self.demo else 'tensors'}_{self.task}"
        stem = "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(self.observation or self.clean).stem)[:40]
        return f"{stem}_{self.task}"

    def _load(self, path: str | None, crop: int | None, what: str) -> torch.Tensor | None:
        from ..store.imageio import center_crop, load_image

        if path is None:
            return None
        image = load_image(path)
        if crop:
            _, _, h, w = image.shape
            if crop > min(h, w):
                raise ArgumentError(
                    f"{{crop:{crop}}} is larger than the {{what}} ({w}x{h} px, width x height)", what=what
                )
            image = center_crop(image, crop, crop)
        return image


def _option_fields() -> set[str]:
    from .base import registry

    return {f for task in registry().values() for f in task.option_fields}


def as_problem(problem_or_recipe: Problem | ProblemRecipe) -> tuple[Problem, ProblemRecipe]:
    """The problem and its recipe, whichever of the two the caller gave."""
    if isinstance(problem_or_recipe, ProblemRecipe):
        problem = problem_or_recipe.build()
        return problem, replace(problem_or_recipe.resolved(), fingerprint=problem_fingerprint(problem))
    if not hasattr(problem_or_recipe, "observed"):
        raise ArgumentError(
            "{problem} must be a ProblemRecipe or a dipsearch.Problem, got {value}",
            value=type(problem_or_recipe).__name__,
        )
    return problem_or_recipe, ProblemRecipe.of_problem(problem_or_recipe)
