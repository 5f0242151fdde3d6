"""`restore`: the ground-truth-free pipeline from an observation to one restored image.

1. choose an architecture (a search scored by held-out pixels, or the space's default; see choosers.py);
2. refit the winner at the full budget with online stopping (EMV by default: the best median gap of the
   stopping benchmark), and optionally the next K-1 candidates too;
3. with K > 1, average the K refits, weighting each by the inverse of its held-out MSE from the search
   (10^(fitness/10)): an inverse-variance average of the candidates' estimates. The held-out error contains
   the noise variance, the same for every candidate, so the weights stay close to equal unless a candidate
   fitted clearly worse, which is the robust behaviour an average needs.
A clean image, when given, is used only to score each stage afterwards.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from .arch import ArchSpec
from .choosers import BUDGETS, Budget, Choice, ChooseContext, Ranked, get_chooser
from .errors import ArgumentError, DipsearchError, check_at_least
from .evaluate import stop_hook
from .fit import FitConfig, FitResult, baseline_psnr, check_size, fit, resolve_device
from .genes import config_settings
from .metrics import psnr, ssim
from .runs import RunDir
from .space import SearchSpace, find_space, load_space
from .stopping import prepare_problem
from .tasks import Problem


@dataclass
class RestoreSettings:
    search: str = "ga"
    budget: str = "auto"  # a name in choosers.BUDGETS, or auto: gpu when CUDA is visible, else cpu
    space: str | None = None  # overrides the budget's space
    pop: int | None = None
    gens: int | None = None
    trials: int | None = None
    search_iters: int | None = None
    iters: int | None = None
    stop: str = "emv"
    patience: int | None = None
    ensemble: int = 1
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    compare_default: bool = True  # with a clean image: also refit the default network, for the stage table
    tensorboard: bool = False  # every fit (search candidates, refits) logs to TensorBoard (dipsearch.tensorboard)

    def resolved_budget(self) -> tuple[str, Budget]:
        name = self.budget
        if name == "auto":
            name = "gpu" if resolve_device(self.device).type == "cuda" else "cpu"
        if name not in BUDGETS:
            raise ArgumentError(
                "unknown {budget} {name!r}; choose auto or one of {names}", name=self.budget, names=", ".join(BUDGETS)
            )
        base = BUDGETS[name]
        changes = {
            k: getattr(self, k)
            for k in ("space", "pop", "gens", "trials", "search_iters", "iters")
            if getattr(self, k) is not None
        }
        for key in ("pop", "gens", "trials", "search_iters", "iters"):
            low = 0 if key == "gens" else (2 if key == "pop" else 1)
            if key in changes:
                check_at_least(key, changes[key], low)
        return name, replace(base, **changes)

    def check(self) -> Budget:
        """Validate what needs no image (budget, chooser, ensemble size); returns the resolved budget."""
        _, budget = self.resolved_budget()
        if self.tensorboard:
            from .tensorboard import require

            require()
        most = get_chooser(self.search).max_candidates(budget)
        check_at_least("ensemble", self.ensemble, 1)
        if self.ensemble > most:
            raise ArgumentError(
                "{ensemble:{value}} is larger than the {most} candidate(s) {search:{name}} can produce "
                "with this budget; use {ensemble} <= {most}",
                value=self.ensemble,
                most=most,
                name=self.search,
            )
        return budget

    def stop_spec(self) -> dict[str, Any] | None:
        if self.stop == "none":
            return None
        return {k: v for k, v in {"detector": self.stop, "patience": self.patience}.items() if v is not None}


@dataclass
class Stage:
    stage: str
    description: str
    iters: int | None
    psnr: float | None = None
    ssim: float | None = None
    fitness: float | None = None
    folder: str | None = None


@dataclass
class RestoreResult:
    run: RunDir
    image: torch.Tensor
    stages: list[Stage]
    summary: dict[str, Any] = field(default_factory=dict)


def _score(image: torch.Tensor | None, problem: Problem) -> tuple[float | None, float | None]:
    if image is None or problem.clean is None:
        return None, None
    clean = problem.clean.cpu()
    return psnr(image, clean), ssim(image, clean)


@dataclass
class Refit:
    image: torch.Tensor
    result: FitResult
    path: Path


def refit(
    problem: Problem,
    spec: ArchSpec,
    fit_settings: dict[str, Any],
    stop: dict[str, Any] | None,
    seed: int,
    iters: int,
    device: str,
    root: Path,
    tag: str,
    tensorboard: bool = False,
) -> Refit:
    """One full-budget fit, saved as a fit run folder under root/fit/; returns the stopped (or EMA) image.
    tensorboard: the fit's log goes to the folder's tensorboard/ (dipsearch.tensorboard)."""
    settings = config_settings(fit_settings)
    config = FitConfig(iters=iters, seed=seed, device=device, **settings)
    hooks = [stop_hook(stop, seed, problem)] if stop else []
    run = RunDir.create(root, "fit", tag)
    if tensorboard:
        from .tensorboard import FOLDER, TensorBoardHook

        hooks.append(TensorBoardHook(run.path / FOLDER))  # last: it reads the step the stopping rule chose
    result = fit(prepare_problem(problem, hooks), spec, config, hooks)
    image = result.extras["images"]["output_stopped"] if stop else result.ema
    run.write_toml(
        "config.toml",
        {
            "problem": problem.meta,
            "fit": config.to_dict(),
            "arch": spec.to_dict(),
            "stop": stop or {"detector": "none"},
        },
    )
    run.write_csv("trace.csv", result.trace)
    run.save_image("observed.png", problem.observed)
    if problem.clean is not None:
        run.save_image("clean.png", problem.clean)
    run.save_image("output.png", result.output)
    run.save_image("output_ema.png", result.ema)
    for name, extra in result.extras.get("images", {}).items():
        run.save_image(f"{name}.png", extra)
    run.write_json("summary.json", result.summary(problem))
    return Refit(image, result, run.path)


def ensemble_weights(ranked: list[Ranked]) -> list[float]:
    """Inverse held-out MSE (fitness is a held-out PSNR), normalised; equal weights without fitnesses."""
    raw = [
        10 ** (r.evaluation.fitness / 10) if r.evaluation and r.evaluation.fitness is not None else None for r in ranked
    ]
    if any(w is None or not math.isfinite(w) for w in raw):
        return [1 / len(ranked)] * len(ranked)
    total = sum(raw)
    return [w / total for w in raw]


class Pipeline:
    def __init__(self, problem: Problem, settings: RestoreSettings, console: Console | None = None):
        self.problem, self.settings = problem, settings
        self.console = console or Console(quiet=True)
        self.budget_name, self.budget = settings.resolved_budget()
        self.chooser = get_chooser(settings.search)
        self.space: SearchSpace = load_space(find_space(self.budget.space))
        self.stop = settings.stop_spec()
        self.device = str(resolve_device(settings.device))
        self._check()

    def _check(self) -> None:
        s = self.settings
        s.check()
        spec = self.space.decode(self.space.default())
        check_size(self.problem, spec)
        if self.stop is not None:  # a detector that cannot work here (or with this budget) fails before any work
            hook = stop_hook(self.stop, s.seed, self.problem)
            hook.on_start(hook.prepare(self.problem), spec, FitConfig(iters=self.budget.iters, device="cpu"))

    def config(self) -> dict[str, Any]:
        s = self.settings
        return {
            "problem": self.problem.meta,
            "restore": {
                "search": s.search,
                "budget": self.budget_name,
                **self.budget.__dict__,
                "stop": self.stop or {"detector": "none"},
                "ensemble": s.ensemble,
                "seed": s.seed,
                "device": self.device,
                "space_file": self.space.source,
            },
        }

    def run(self, out: str | Path, tag: str) -> RestoreResult:
        run = RunDir.create(out, "restore", tag)
        try:
            return self._run(run)
        except BaseException:
            run.discard()
            raise

    def _say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def _run(self, run: RunDir) -> RestoreResult:
        start = time.perf_counter()
        s, problem, b = self.settings, self.problem, self.budget
        run.write_toml("config.toml", self.config())
        run.write_versions(self.device)
        run.save_image("observed.png", problem.observed)
        if problem.clean is not None:
            run.save_image("clean.png", problem.clean)
        self._say(
            f"restore: choosing the architecture ({self.chooser.description}; space {self.space.name}, "
            f"{b.search_iters} iterations per candidate)"
        )
        ctx = ChooseContext(
            problem, self.space, b, run.path, s.seed, self.console, self.device, s.workers, s.tensorboard
        )
        choice: Choice = self.chooser.choose(ctx)
        if not choice.ranked:
            raise DipsearchError(f"the search produced no usable candidate: every fit failed (see {choice.run_dir})")
        stages = self._search_stages(choice, run.path)
        k = min(s.ensemble, len(choice.ranked))
        if k < s.ensemble:
            self._say(f"note: only {k} distinct successful candidates; the ensemble averages {k}, not {s.ensemble}")
        stop_name = self.stop["detector"] if self.stop else "none"
        refits: list[Refit] = []
        for i, ranked in enumerate(choice.ranked[:k]):
            self._say(f"restore: refit of candidate #{i + 1} at {b.iters} iterations, stop {stop_name}")
            done = refit(
                problem,
                self.space.decode(ranked.genome),
                self.space.fit_settings(ranked.genome),
                self.stop,
                s.seed,
                b.iters,
                self.device,
                run.path,
                f"rank{i + 1}",
                s.tensorboard,
            )
            refits.append(done)
            stages.append(
                self._stage(
                    f"refit #{i + 1}" if k > 1 else "refit",
                    f"candidate #{i + 1}, full budget, stop {stop_name}",
                    done,
                    ranked,
                    run.path,
                )
            )
        weights = ensemble_weights(choice.ranked[:k])
        image = sum(w * r.image for w, r in zip(weights, refits)) if k > 1 else refits[0].image
        if k > 1:
            p, q = _score(image, problem)
            stages.append(
                Stage(
                    "ensemble",
                    f"weighted mean of {k} refits (weights {', '.join(f'{w:.3f}' for w in weights)})",
                    None,
                    p,
                    q,
                )
            )
        if problem.clean is not None and s.compare_default and s.search != "none":
            self._say("restore: refit of the default network, for comparison (scored against the clean image only)")
            default = refit(
                problem,
                self.space.decode(self.space.default()),
                self.space.fit_settings(self.space.default()),
                self.stop,
                s.seed,
                b.iters,
                self.device,
                run.path,
                "default",
                s.tensorboard,
            )
            stages.insert(
                0, self._stage("default", f"space default, full budget, stop {stop_name}", default, None, run.path)
            )
        run.save_image("restored.png", image)
        run.write_csv("stages.csv", [st.__dict__ for st in stages])
        summary = self._summary(choice, stages, weights, k, refits, image, time.perf_counter() - start, run.path)
        run.write_json("summary.json", summary)
        return RestoreResult(run, image, stages, summary)

    def _stage(self, name: str, description: str, done: Refit, ranked: Ranked | None, root: Path) -> Stage:
        p, q = _score(done.image, self.problem)
        iters = done.result.summary_extra.get("stopped_iter", done.result.iters_run)
        fitness = ranked.evaluation.fitness if ranked and ranked.evaluation else None
        return Stage(name, description, int(iters), p, q, fitness, str(done.path.relative_to(root)))

    def _search_stages(self, choice: Choice, root: Path) -> list[Stage]:
        if choice.run_dir is None:
            return []
        folder = str(choice.run_dir.relative_to(root))
        stages = []
        if choice.default is not None:
            d = choice.default
            stages.append(
                Stage(
                    "default (search)",
                    "space default at the search budget",
                    d.iters_run,
                    d.psnr,
                    None,
                    d.fitness,
                    folder,
                )
            )
        best = choice.ranked[0].evaluation
        image_file = choice.run_dir / "best_output.png"
        q = None
        if self.problem.clean is not None and image_file.is_file():
            from .imageio import load_image

            q = ssim(load_image(image_file), self.problem.clean.cpu())  # of the saved 8-bit image
        stages.append(
            Stage(
                "search winner",
                "best candidate at the search budget",
                best.iters_run,
                best.psnr,
                q,
                best.fitness,
                folder,
            )
        )
        return stages

    def _summary(
        self,
        choice: Choice,
        stages: list[Stage],
        weights: list[float],
        k: int,
        refits: list[Refit],
        image: torch.Tensor,
        seconds: float,
        root: Path,
    ) -> dict[str, Any]:
        p, q = _score(image, self.problem)
        out: dict[str, Any] = {
            "search": self.settings.search,
            "budget": self.budget_name,
            "space": self.space.name,
            "candidates": len(choice.ranked),
            "ensemble": k,
            "weights": [round(w, 4) for w in weights],
            "stop": self.stop["detector"] if self.stop else "none",
            "stopped_iters": [r.result.summary_extra.get("stopped_iter") for r in refits],
            "winner_genome": choice.ranked[0].genome,
            "winner_fitness": choice.ranked[0].evaluation.fitness if choice.ranked[0].evaluation else None,
            "search_run": str(choice.run_dir.relative_to(root)) if choice.run_dir else None,
            "seconds": round(seconds, 2),
        }
        if p is not None:
            out.update(psnr_observed=baseline_psnr(self.problem), psnr_restored=p, ssim_restored=q)
            out["stages"] = {st.stage: st.psnr for st in stages}
        out.update(choice.extra)
        return out
