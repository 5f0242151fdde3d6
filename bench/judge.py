"""The judges' shared pieces: what search_vs_default.py, default_restarts.py, fidelity.py, fitness_ranking.py
and final_rung_scores.py judge on and with, kept in one place so that two judges that compare their figures
build them the same way.

- the problems: classic9 centre crops with seeded Gaussian noise (classic9_recipe, classic9_problem);
- the cheap CPU space the search judges share (fidelity_space, space_on_disk);
- the reference every judge of a restoration compares with: the space's default network, seed 0, every pixel,
  EMV-stopped (default_fit);
- the ensemble of a set of final-rung members, each judged on the pixels its own fit withheld, as the search
  builds its own (final_members, member_ensemble);
- rank agreement of a cheap score with the truth (rank_correlation);
- rows appended to a JSONL file, so a killed run resumes, and the summary written next to it (Rows, write_result).

Machine facts, result paths and gain statistics stay in common.py.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from common import machine, write_json

from dipsearch import make_problem
from dipsearch.fitting.fit import FitConfig
from dipsearch.metrics import psnr
from dipsearch.nets.genes import config_settings
from dipsearch.nets.space import SPACES_DIR, SearchSpace, space_from_dict
from dipsearch.problems.problem import Problem
from dipsearch.problems.recipe import ProblemRecipe
from dipsearch.scoring.fitness import make_fitness
from dipsearch.search.ensemble import Ensemble, held_out_values, make_ensemble, own_splits
from dipsearch.stopping.spec import StopSpec
from dipsearch.store.imageio import center_crop, load_image
from dipsearch.store.runs import read_jsonl
from dipsearch.store.tomlio import dumps_toml
from dipsearch.variants import VariantSettings, fit_variant


def classic9_recipe(data: Path, name: str, crop: int, sigma: float) -> ProblemRecipe:
    """A classic9 image's centre crop with Gaussian noise, as a recipe (what a search run folder stores)."""
    return ProblemRecipe(clean=str(data / "classic9" / f"{name}.png"), crop=crop, sigma=sigma)


def classic9_problem(data: Path, name: str, crop: int, sigma: float, seed: int) -> Problem:
    """A classic9 image's centre crop with Gaussian noise drawn from `seed`, as a Problem made in Python."""
    clean = center_crop(load_image(data / "classic9" / f"{name}.png"), crop, crop)
    return make_problem("denoise", clean=clean, noise="gaussian", level=sigma, seed=seed)


def fidelity_space() -> dict[str, Any]:
    """demo.toml made cheaper for a CPU: depth 3-4, 8-32 channels, 3x3 down convs (half-scale crops of 32 px
    must still fit a depth-4 hourglass), skips 0/4. lr stays searched: it decides how fast a network fits."""
    data = tomllib.loads((SPACES_DIR / "demo.toml").read_text())
    data["name"] = "fidelity"
    data["genes"]["depth"].update(low=3, high=4, default=4)
    for name in ("n_down", "n_up"):
        data["levels"][name].update(choices=[8, 16, 32], default=[8, 16, 32, 32])
    data["levels"]["n_skip"].update(choices=[0, 4], default=[0, 0, 4, 4])
    data["levels"]["k_down"].update(choices=[3], default=3)
    return data


def space_on_disk(raw: dict[str, Any], folder: Path) -> tuple[SearchSpace, Path]:
    """The space and a TOML file of it in `folder` (what a search or restore is given)."""
    path = folder / f"{raw['name']}.toml"
    path.write_text(dumps_toml(raw))
    return space_from_dict(raw, source=raw["name"]), path


def default_fit(problem: Problem, space: SearchSpace, iters: int, stop: bool = True) -> tuple[float, int]:
    """The space's default genome fitted with seed 0 on every pixel. stop: EMV stopping, its stopped output's
    true PSNR and the iteration it stopped at; else the averaged (EMA) output's true PSNR at the full budget and
    the iterations run."""
    genome = space.default()
    settings = space.fit_settings(genome)
    config = FitConfig(iters=iters, seed=0, device="cpu", ssim_every=0, **config_settings(settings))
    hooks = [StopSpec.parse("emv").hook(0, problem)] if stop else []
    fitted = hooks[0].prepare(problem) if stop else problem
    result = fit_variant(fitted, space.decode(genome), config, VariantSettings.from_settings(settings), hooks)
    if not stop:
        return psnr(result.ema, problem.clean), result.iters_run
    return result.summary(problem)["psnr_stopped"], int(result.summary_extra.get("stopped_iter", result.iters_run))


def final_members(folder: Path, fits: Sequence[dict]) -> tuple[list, list[int]]:
    """The final-rung outputs (final/<key>.png) of a search folder's fits and the split each fit withheld."""
    images = [load_image(folder / "final" / f"{f['key']}.png") for f in fits]
    splits = [0 if f.get("split") is None else f["split"] for f in fits]
    return images, splits


def member_ensemble(problem: Problem, keys: Sequence[str], images: Sequence, splits: Sequence[int]) -> Ensemble:
    """The inverse-MSE ensemble of these members, each judged on the held-out pixels of its own split (one
    shared split: all on the same pixels), as the search weighs its own."""
    fitness = make_fitness("holdout")
    if len(set(splits)) == 1:
        values = held_out_values(fitness, problem, splits[0], list(images))
    else:
        values = own_splits(fitness, problem, list(splits), list(images))
    return make_ensemble(list(keys), list(images), values, "inverse-mse", problem.clean)


def rank_correlation(x: list[float], y: list[float]) -> tuple[float, float]:
    """Spearman's rho and Kendall's tau of two scores over the same candidates."""
    from scipy.stats import kendalltau, spearmanr

    return float(spearmanr(x, y).statistic), float(kendalltau(x, y).statistic)


class Rows:
    """A judge's JSONL file of rows keyed by some of their fields: a row already there is not measured again,
    a new one is appended as soon as it is measured (two processes may share the file, each with its keys)."""

    def __init__(self, path: Path, key: Sequence[str]):
        self.path, self.key = Path(path), tuple(key)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.done = {self.key_of(r) for r in self.read()}

    def key_of(self, row: dict) -> tuple:
        return tuple(row[k] for k in self.key)

    def read(self) -> list[dict]:
        return read_jsonl(self.path) if self.path.exists() else []

    def add(self, row: dict) -> None:
        with self.path.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        self.done.add(self.key_of(row))


def earlier_rows(path: Path | None, key: Iterable[str]) -> dict[tuple, dict]:
    """The rows of an earlier run's JSONL by key (--references): figures that do not depend on what is judged."""
    key = tuple(key)
    return {tuple(r[k] for k in key): r for r in read_jsonl(path)} if path else {}


def write_result(out: Path, args: argparse.Namespace, rows: list[dict], summary: dict) -> Path:
    """The settings, rows, summary and machine, as the .json next to the rows file."""
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    return write_json(
        out.with_suffix(".json"), {"settings": settings, "rows": rows, "summary": summary, "machine": machine()}
    )
