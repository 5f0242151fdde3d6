"""`reproduce`: the seed's results table, recomputed here for DIP, the GT-free pipeline and classical baselines.

One cell = (row, image set, image, method). Every finished cell is appended as one line to results.jsonl
(after its image is written), so a killed run continues with --resume and recomputes nothing it finished.
per_image.csv and summary.csv are rebuilt from the log after every cell.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from ..errors import ArgumentError, DipsearchError, check_at_least
from ..fitting.fit import FitConfig, baseline_psnr, fit, resolve_device
from ..metrics import psnr, ssim
from ..nets.arch import ArchSpec
from ..problems.make import make_problem
from ..problems.problem import Problem
from ..scoring.evaluate import stop_hook
from ..stopping import prepare_problem
from ..store.imageio import center_crop, load_image
from ..store.runs import RunDir
from ..store.tomlio import load_toml
from .reproduce_rows import Row, check_methods, check_methods_apply, get_rows, methods_for
from .restore import Pipeline, RestoreSettings

RESULTS = "results.jsonl"
SET_NAMES = {"classic9": "classic-9", "set5": "Set5", "set14": "Set14"}


@dataclass
class ReproduceSettings:
    rows: list[str]
    methods: list[str]
    data: str = "../shared/data"
    size: str = "auto"  # "full", a crop side in px, or auto: full on a GPU, 128 on a CPU
    images: int | None = None  # the first K images (sorted by name) of each set
    iters: int = 2400  # every DIP method's budget: dip's fixed length, dip-stop's and restore's refit maximum
    patience: int | None = None
    search: str = "ga"
    search_iters: int | None = None  # restore's iterations per search candidate (default iters / 4)
    pop: int | None = None
    gens: int | None = None
    ensemble: int = 1
    seed: int = 0
    device: str = "auto"

    def crop(self) -> int | None:
        size = self.size
        if size == "auto":
            size = "full" if resolve_device(self.device).type == "cuda" else "128"
        if size == "full":
            return None
        try:
            side = int(size)
        except ValueError:
            raise ArgumentError("{size} takes 'full' or a crop side in px, got {value!r}", value=self.size) from None
        if side < 64:
            raise ArgumentError("{size} must be at least 64 px (the seed network has 5 levels), got {side}", side=side)
        return side

    def restore_settings(self) -> RestoreSettings:
        return RestoreSettings(
            search=self.search,
            pop=self.pop,
            gens=self.gens,
            iters=self.iters,
            # without a search there are no candidates to budget (and restore refuses a setting it would ignore)
            search_iters=None if self.search == "none" else self.search_iters or max(20, self.iters // 4),
            patience=self.patience,
            ensemble=self.ensemble,
            seed=self.seed,
            device=self.device,
        )


@dataclass
class Cell:
    row: Row
    set: str
    image: Path

    def key(self, method: str) -> str:
        return f"{self.row.name}/{self.set}/{self.image.stem}/{method}"

    @property
    def folder(self) -> str:
        return f"images/{self.row.name}/{self.set}/{self.image.stem}"


def images_of(data: Path, row: Row, limit: int | None, needed: tuple[str, ...] = ()) -> dict[str, list[Path]]:
    """The images of each set of `row`; a missing set names every folder in `needed` (all rows asked for)."""
    out = {}
    for name in row.sets:
        folder = data / name
        files = sorted(folder.glob("*.png")) if folder.is_dir() else []
        if not files:
            raise ArgumentError(
                "row {row} needs the {kind} images as PNG files in {folder}/, and there are none; "
                "give {data:DIR} with {sets} in it",
                row=row.name,
                kind=SET_NAMES.get(name, name),
                folder=folder,
                sets=" and ".join(", ".join(f"{s}/" for s in dict.fromkeys(needed or row.sets)).rsplit(", ", 1)),
            )
        out[name] = files[:limit] if limit else files
    return out


def check(settings: ReproduceSettings) -> list[Row]:
    """Everything that can be refused before any work: rows, methods, data, sizes, budgets."""
    rows = get_rows(settings.rows)
    settings.methods = check_methods(settings.methods)
    check_methods_apply(rows, settings.methods)
    if settings.images is not None:
        check_at_least("images", settings.images, 1)
    check_at_least("iters", settings.iters, 1)
    settings.crop()
    needed = tuple(s for row in rows for s in row.sets)
    for row in rows:
        images_of(Path(settings.data), row, settings.images, needed)
    if "dip-stop" in settings.methods or "restore" in settings.methods:
        probe = make_problem("denoise", clean=torch.zeros(1, 3, 64, 64))
        _check_stopping_budget(settings, probe)
        hook = stop_hook(_emv(settings), settings.seed, probe)
        hook.on_start(probe, ArchSpec(), FitConfig(iters=settings.iters, device="cpu"))
    if "restore" in settings.methods:
        settings.restore_settings().check()
    return rows


def _check_stopping_budget(settings: ReproduceSettings, probe: Problem) -> None:
    """--iters too short for the stopping of dip-stop (EMV) or restore (its default stopping), said in the flag
    the user gave before a detector or the restore's final rung says it in their own terms."""
    from ..search.prepare import least_final_iters
    from ..search.rungs import RungPlan
    from ..stopping import EMV

    warmup = EMV().warmup
    needs = {"dip-stop": warmup + 1} if "dip-stop" in settings.methods else {}
    if "restore" in settings.methods:
        needs["restore"] = least_final_iters(RungPlan(final_iters=settings.iters), probe, settings.seed)[0]
    least = max(needs.values())
    if settings.iters < least:
        raise ArgumentError(
            "{iters} {value} is too short for {methods}: {least} iterations at least (EMV's {warmup}-step warm-up "
            "comes first)",
            value=settings.iters,
            methods=" and ".join(needs),
            least=least,
            warmup=warmup,
        )


def _emv(settings: ReproduceSettings) -> dict[str, Any]:
    return {k: v for k, v in {"detector": "emv", "patience": settings.patience}.items() if v is not None}


def build_problem(cell: Cell, crop: int | None, seed: int) -> Problem:
    clean = load_image(cell.image)
    if crop is not None:
        _, _, h, w = clean.shape
        clean = center_crop(clean, min(crop, h), min(crop, w))
    problem = make_problem(cell.row.task, clean=clean, seed=seed, **cell.row.problem)
    problem.meta.update(clean_file=str(cell.image), crop=crop)
    return problem


class Reproduction:
    def __init__(self, run: RunDir, settings: ReproduceSettings, console: Console | None = None):
        self.run, self.settings = run, settings
        self.console = console or Console(quiet=True)
        self.rows = check(settings)
        self.done = {r["key"]: r for r in run.read_jsonl(RESULTS)}

    @classmethod
    def create(cls, out: str | Path, settings: ReproduceSettings, console: Console | None = None) -> Reproduction:
        check(settings)  # refuse bad input before a folder exists
        run = RunDir.create(out, "reproduce", "_".join(dict.fromkeys(settings.rows)))
        run.write_toml("config.toml", {"reproduce": {k: v for k, v in asdict(settings).items() if v is not None}})
        run.write_versions(str(resolve_device(settings.device)))
        return cls(run, settings, console)

    @classmethod
    def resume(cls, path: str | Path, console: Console | None = None) -> Reproduction:
        run = RunDir.open(path)
        stored = load_toml(run.file("config.toml"), "run configuration").get("reproduce")
        if not stored:
            raise DipsearchError(f"{path} is not a reproduce run folder (its config.toml has no [reproduce] table)")
        return cls(run, ReproduceSettings(**stored), console)

    def cells(self) -> list[Cell]:
        out = []
        for row in self.rows:
            for name, files in images_of(Path(self.settings.data), row, self.settings.images).items():
                out += [Cell(row, name, f) for f in files]
        return out

    def run_all(self) -> int:
        """Compute every missing cell; returns how many were computed now."""
        computed = 0
        for cell in self.cells():
            methods = [m for m in methods_for(cell.row, self.settings.methods) if cell.key(m) not in self.done]
            if not methods:
                continue
            problem = build_problem(cell, self.settings.crop(), self.settings.seed)
            folder = self.run.file(cell.folder)
            folder.mkdir(parents=True, exist_ok=True)
            self.run.save_image(f"{cell.folder}/observed.png", problem.observed)
            self.run.save_image(f"{cell.folder}/clean.png", problem.clean)
            for method in methods:
                self._cell(cell, method, problem)
                computed += 1
        self.write_tables()
        return computed

    def _cell(self, cell: Cell, method: str, problem: Problem) -> None:
        start = time.perf_counter()
        image, info = self._method(method)(cell, problem)
        self.run.save_image(f"{cell.folder}/{method}.png", image)
        clean = problem.clean.cpu()
        row = {
            "key": cell.key(method),
            "row": cell.row.name,
            "set": cell.set,
            "image": cell.image.stem,
            "method": method,
            "psnr": psnr(image, clean),
            "ssim": ssim(image, clean),
            "psnr_observed": baseline_psnr(problem),
            "seconds": round(time.perf_counter() - start, 2),
            **info,
        }
        self.run.append_jsonl(RESULTS, row)
        self.done[row["key"]] = row
        self.console.print(f"{cell.key(method)}: {row['psnr']:.2f} dB ({row['seconds']:.0f} s)", highlight=False)
        self.write_tables()

    def _method(self, method: str) -> Callable[[Cell, Problem], tuple[torch.Tensor, dict[str, Any]]]:
        if method == "dip":
            return lambda cell, problem: self._dip(problem, stop=False)
        if method == "dip-stop":
            return lambda cell, problem: self._dip(problem, stop=True)
        if method == "restore":
            return self._restore
        return self._baseline(method)

    def _dip(self, problem: Problem, stop: bool) -> tuple[torch.Tensor, dict[str, Any]]:
        s = self.settings
        hooks = [stop_hook(_emv(s), s.seed, problem)] if stop else []
        config = FitConfig(iters=s.iters, seed=s.seed, device=s.device, ssim_every=0)
        result = fit(prepare_problem(problem, hooks), ArchSpec(), config, hooks)
        if stop:
            return result.extras["images"]["output_stopped"], {
                "iters": result.iters_run,
                "stopped_iter": result.summary_extra["stopped_iter"],
            }
        return result.ema, {"iters": result.iters_run}

    def _restore(self, cell: Cell, problem: Problem) -> tuple[torch.Tensor, dict[str, Any]]:
        root = self.run.file(f"restore/{cell.row.name}_{cell.set}_{cell.image.stem}")
        shutil.rmtree(root, ignore_errors=True)  # what a killed attempt left
        result = Pipeline(problem, self.settings.restore_settings()).run(root, cell.image.stem)
        info = {
            "iters": sum(int(i or 0) for i in result.summary["stopped_iters"]),
            "folder": str(result.run.path.relative_to(self.run.path)),
        }
        return result.image, info

    @staticmethod
    def _baseline(name: str) -> Callable[[Cell, Problem], tuple[torch.Tensor, dict[str, Any]]]:
        def run(cell: Cell, problem: Problem) -> tuple[torch.Tensor, dict[str, Any]]:
            from ..baselines.result import apply_baseline

            image, summary = apply_baseline(name, problem)
            return image, {k: summary[k] for k in ("sigma", "sigma_source") if k in summary}

        return run

    def write_tables(self) -> list[dict[str, Any]]:
        results = list(self.done.values())
        columns = ("row", "set", "image", "method", "psnr", "ssim", "psnr_observed", "seconds", "iters", "stopped_iter")
        self.run.write_csv("per_image.csv", [{c: r.get(c) for c in columns} for r in results])
        summary = summary_rows(self.rows, self.settings.methods, results)
        self.run.write_csv("summary.csv", summary)
        return summary


def _mean(rows: list[dict[str, Any]], key: str) -> float | None:
    return round(sum(r[key] for r in rows) / len(rows), 3) if rows else None


def summary_rows(rows: list[Row], methods: list[str], results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        for name in row.sets:
            for method in methods_for(row, methods):
                mine = [r for r in results if r["row"] == row.name and r["set"] == name and r["method"] == method]
                published = row.published.get(name, {}).get(method)
                out.append(
                    {
                        "row": row.name,
                        "set": SET_NAMES.get(name, name),
                        "method": method,
                        "images": len(mine),
                        "psnr": _mean(mine, "psnr"),
                        "ssim": _mean(mine, "ssim"),
                        "published": published,
                        "note": row.note if published is not None and method == "dip" else "",
                    }
                )
    return out
