"""`restore`: the ground-truth-free pipeline from an observation to one restored image.

1. choose an architecture: the space's default (no search, the default) or a search scored by held-out pixels
   (see choosers.py);
2. the search's final rung (search/rungs.py): up to three finalists, the space's default always among them, and
   refits of the pick with the next seeds, all at the full budget with online stopping, each on its own held-out
   pixels;
3. the answer: with K >= 2 members their stopped outputs averaged per pixel with inverse held-out MSE weights
   (search/ensemble.py); with K = 1 the final rung's single pick.
There is one refit path, the final rung's, for every chooser. A clean image, when given, is used only to score
each stage afterwards. The defaults follow bench/default_restarts.py and bench/search_vs_default.py: for fewer fits,
the default network and its restarts did better than a search's finalists and their restarts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from rich.console import Console

from ..errors import ArgumentError, DipsearchError, check_at_least
from ..fitting.fit import FitConfig, baseline_psnr, check_size, resolve_device
from ..fitting.memory import check_fit_memory
from ..metrics import psnr, ssim
from ..nets.space import SearchSpace, find_space, load_space
from ..problems.problem import Problem
from ..scoring.evaluate import stop_hook
from ..search.member_batches import check_replica_memory, check_replicas_mode
from ..search.prepare import check_final_stop
from ..stopping.spec import StopSpec
from ..store.imageio import load_image
from ..store.runs import RunDir
from .choosers import BUDGETS, RESTART_MEMBERS_MAX, Budget, Choice, ChooseContext, get_chooser
from .restore_progress import MemberWatch

# Members of the ensemble unless --ensemble says otherwise: the default network and three restarts without a
# search; three finalists and two restarts of the pick with one (the settings bench/default_restarts.py and
# bench/search_vs_default.py measured).
ENSEMBLE_DEFAULT = {"none": 4, "search": 5}
ENSEMBLE_FINALISTS = 3  # finalists of a search's final rung; further members are restarts of the pick


@dataclass
class RestoreSettings:
    search: str = "none"
    budget: str = "auto"  # a name in choosers.BUDGETS, or auto: gpu when CUDA is visible, else cpu
    space: str | None = None  # overrides the budget's space
    arch: str | None = None  # a network file (best_arch.toml, a study's winner_arch.toml) instead of a space
    start_from: list[str] = field(default_factory=list)  # study folders whose best genomes start the search
    pop: int | None = None
    gens: int | None = None
    trials: int | None = None
    search_iters: int | None = None
    iters: int | None = None
    stop: str = "auto"  # the final rung's stopping: the recommended one (stopping/auto.py)
    patience: int | None = None
    ensemble: int | None = None  # members K of the final rung and its ensemble; None: ENSEMBLE_DEFAULT
    seed: int = 0
    device: str = "auto"
    workers: int | None = None
    tensorboard: bool = False  # every fit (search candidates, the final rung) logs to TensorBoard
    # members of one network (the default and its restarts, the pick's restarts) fitted as one batch: auto, on, off
    replicas: str = "auto"

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
        if self.arch is not None and self.space is not None:
            raise ArgumentError("give {arch} or {space}, not both: the file is the network, the space its default")
        if self.start_from and self.search == "none":
            raise ArgumentError(
                "{start_from} seeds a search with a study's best genomes; add {search:ga} (or bayes), or restore "
                "with the study's pick alone ({space} its winner_space.toml)"
            )
        if self.arch is not None and self.search != "none":
            raise ArgumentError(
                "{arch} fixes the network, so there is nothing to search; drop {search:{name}}, or search from a "
                "space ({space}: a study's winner_space.toml has the studied network as its default)",
                name=self.search,
            )
        if self.workers is not None:
            check_at_least("workers", self.workers, 1)
        self.check_search_fields()
        if self.tensorboard:
            from ..fitting.tensorboard import require

            require()
        k = self.members(budget)
        check_replicas_mode(self.replicas)
        if self.replicas == "on" and self.batched(budget, k) < 2:
            raise ArgumentError(
                "{replicas:on}: no two members of this restore share a network ("
                + (
                    "{ensemble:1} fits the default alone"
                    if self.search == "none"
                    else f"{{ensemble:{k}}} leaves "
                    f"{max(k - self.finalists(budget), 0)} restart(s) of the pick; a batch needs two"
                )
                + "); use {replicas:auto} or {replicas:off}"
            )
        if self.search != "none":  # a search too large to draw is refused here, not inside the restore folder
            from ..search.limits import check_fits

            check_fits(
                get_chooser(self.search).max_candidates(budget), "{search:{name}} with this budget", name=self.search
            )
        return budget

    def batched(self, budget: Budget, k: int) -> int:
        """How many members share one network and can fit as one batch: the default and its restarts without a
        search; the pick's restarts with one (the pick itself is fitted among the finalists before)."""
        if self.search == "none":
            return k
        return max(k - min(k, self.finalists(budget)), 0)

    def check_search_fields(self) -> None:
        """A search setting the chosen search does not read is refused: ignoring it would run something else
        than what was asked."""
        from .choosers import CHOOSERS, SEARCH_FIELDS

        reads = get_chooser(self.search).reads
        for key in SEARCH_FIELDS:
            if getattr(self, key) is not None and key not in reads:
                users = " or ".join(n for n, c in CHOOSERS.items() if key in c.reads)
                raise ArgumentError(
                    "{" + key + "} is for {search} {users}, not {search:{name}}; drop it", users=users, name=self.search
                )

    def members(self, budget: Budget) -> int:
        """K: the ensemble's members, as given (checked against what the chooser can produce) or the default."""
        most = self.most_members(budget)
        if self.ensemble is None:
            return min(ENSEMBLE_DEFAULT["none" if self.search == "none" else "search"], most)
        check_at_least("ensemble", self.ensemble, 1)
        if self.ensemble > most:
            raise ArgumentError(
                "{ensemble:{value}} is larger than the {most} member(s) {search:{name}} can produce "
                "with this budget; use {ensemble} <= {most}",
                value=self.ensemble,
                most=most,
                name=self.search,
            )
        return self.ensemble

    def finalists(self, budget: Budget) -> int:
        """The most finalists the final rung takes: the default alone without a search, else as many candidates as
        the search can produce, at most ENSEMBLE_FINALISTS. Further members are restarts of the pick."""
        if self.search == "none":
            return 1
        return min(get_chooser(self.search).max_candidates(budget), ENSEMBLE_FINALISTS)

    def most_members(self, budget: Budget) -> int:
        return self.finalists(budget) + RESTART_MEMBERS_MAX - 1

    def stop_spec(self) -> StopSpec | None:
        return StopSpec.parse(self.stop, patience=self.patience)


@dataclass
class Stage:
    stage: str
    description: str
    iters: int | None
    psnr: float | None = None
    ssim: float | None = None
    fitness: float | None = None
    folder: str | None = None
    weight: float | None = None  # the member's weight in the ensemble (None: not a member)


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


class Pipeline:
    def __init__(self, problem: Problem, settings: RestoreSettings, console: Console | None = None):
        self.problem, self.settings = problem, settings
        self.console = console or Console(quiet=True)
        self.budget_name, self.budget = settings.resolved_budget()
        self.chooser = get_chooser(settings.search)
        self.space: SearchSpace = self._space()
        self.stop = settings.stop_spec()
        self.device = str(resolve_device(settings.device))
        self.k = settings.members(self.budget)
        self._check()

    def _space(self) -> SearchSpace:
        if self.settings.arch is None:
            return load_space(find_space(self.budget.space))
        from ..nets.arch_space import space_of_arch

        self.settings.check()  # --arch with --space or a search is refused before the file is read
        return space_of_arch(self.settings.arch)

    def _check(self) -> None:
        s = self.settings
        s.check()
        spec = self.space.decode(self.space.default())
        check_size(self.problem, spec)
        check_fit_memory(self.problem, spec, resolve_device(s.device))
        if s.start_from:  # a folder that is not a study over this space fails before any work
            from ..study.start import study_genomes

            for folder in s.start_from:
                study_genomes(folder, self.space)
        if s.replicas == "on":  # the batch of the default and its restarts (a search's pick: checked when known)
            check_replica_memory(spec, self.problem.image_shape, s.device, s.batched(self.budget, self.k))
        if self.stop is not None:  # a detector that cannot work here (or with this budget) fails before any work
            check_final_stop(self.plan(), self.problem, s.seed)  # in the flags the user gave, before any folder
            hook = stop_hook(self.stop, s.seed, self.problem)
            hook.on_start(hook.prepare(self.problem), spec, FitConfig(iters=self.budget.iters, device="cpu"))

    def plan(self) -> Any:
        """The final rung every chooser ends in: the finalists (at least the default and one more), restarts of the
        pick for the members beyond them, the full budget, the restore's stopping."""
        from ..search.rungs import RungPlan

        final = min(self.k, self.settings.finalists(self.budget))
        # RungPlan asks for two finalists at least (the default and the best other); without a search there is
        # no other, and with K = 1 the second one is fitted but not averaged
        return RungPlan(
            final=max(final, 2),
            final_iters=self.budget.iters,
            stop=self.stop,
            restarts=self.k - final,
            replicas=self.settings.replicas,
        )

    def config(self) -> dict[str, Any]:
        s = self.settings
        return {
            "problem": self.problem.meta,
            "restore": {
                "search": s.search,
                "budget": self.budget_name,
                **self.budget.__dict__,
                "stop": self.stop.to_dict() if self.stop else {"detector": "none"},
                "ensemble": self.k,
                "seed": s.seed,
                "device": self.device,
                "replicas": s.replicas,
                "space_file": self.space.source,
                **({"start_from": [str(Path(f).resolve()) for f in s.start_from]} if s.start_from else {}),
                **({"arch_file": str(Path(s.arch).resolve())} if s.arch else {}),
            },
        }

    def run(self, out: str | Path, tag: str) -> RestoreResult:
        run = RunDir.create(out, "restore", tag)
        try:
            return self._run(run)
        except BaseException as err:
            # a restore does not resume, so nothing is kept; what was lost is told (the CLI prints it)
            err.discarded = (run.path, *self._finished(run.path))
            run.discard()
            raise

    def _finished(self, root: Path) -> tuple[int, int]:
        """(members of the final rung, search candidates) whose fits had finished, from the search's records."""
        from ..store.runs import read_jsonl

        members = candidates = 0
        for records in root.glob("search/*/evaluations.jsonl"):
            for row in read_jsonl(records):
                if row.get("rung") == "final":
                    members += 1
                else:
                    candidates += 1
        return min(members, self.k), candidates

    def _say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def _run(self, run: RunDir) -> RestoreResult:
        start = time.perf_counter()
        s, problem, b = self.settings, self.problem, self.budget
        run.write_toml("config.toml", self.config())
        run.write_versions(self.device)
        for name, picture in problem.pictures().items():  # observed.png and the task's own (kernel)
            run.save_image(name, picture)
        if problem.clean is not None:
            run.save_image("clean.png", problem.clean)
        stop_name = self.stop.detector if self.stop else "none"
        if s.search == "none":
            self._say(
                f"restore: the default network (space {self.space.name}) at {b.iters} iterations, stop {stop_name}"
            )
        else:
            self._say(
                f"restore: choosing the architecture ({self.chooser.description}; space {self.space.name}, "
                f"{b.search_iters} iterations per candidate), then the final rung: the finalists, the default "
                f"among them, at {b.iters} iterations, stop {stop_name}"
            )
        with MemberWatch(self.console) as watch:
            ctx = ChooseContext(
                problem,
                self.space,
                b,
                run.path,
                s.seed,
                self.console,
                self.device,
                self.plan(),
                s.workers,
                s.tensorboard,
                watch,
                list(s.start_from),
            )
            choice: Choice = self.chooser.choose(ctx)
        if not choice.ranked:
            raise DipsearchError(f"the search produced no usable candidate: every fit failed (see {choice.run_dir})")
        summary = choice.summary
        ensemble = summary.get("ensemble")
        k = min(self.k, len(ensemble["members"]) if ensemble else 1)
        if k < self.k:
            self._say(f"note: only {k} members fitted; the ensemble averages {k}, not {self.k}")
        stages = self._search_stages(choice, run.path) + self._final_stages(choice, run.path, stop_name)
        image = load_image(choice.run_dir / ("ensemble.png" if k > 1 else "best_output.png"))
        if k > 1:
            weights = ", ".join(f"{m['weight']:.3f}" for m in ensemble["members"])
            p, q = _score(image, problem)
            stages.append(Stage("ensemble", f"{ensemble['method']} weights of {k} members ({weights})", None, p, q))
        run.save_image("restored.png", image)
        run.write_csv("stages.csv", [st.__dict__ for st in stages])
        out = self._summary(choice, stages, k, image, time.perf_counter() - start, run.path)
        run.write_json("summary.json", out)
        return RestoreResult(run, image, stages, out)

    def _final_stages(self, choice: Choice, root: Path, stop_name: str) -> list[Stage]:
        """One stage per finalist (the default first, as the reference), per restart of the pick, then the pick."""
        folder = str(choice.run_dir.relative_to(root))
        stages = []
        for member, (name, row) in zip(_members(choice.summary), _member_rows(choice.summary)):
            if row.get("restart"):
                what = f"the pick refitted with seed + {row['restart']}, full budget, stop {stop_name}"
            else:
                what = f"{'the default network' if row['default'] else 'candidate'}, full budget, stop {stop_name}"
            iters = row["stopped_iter"] or row["iters_run"]
            stages.append(Stage(name, what, iters, row["psnr"], None, row["score"], folder, member["weight"]))
        (pick,) = [f for f in choice.summary["final"] if f["index"] == choice.summary["final_choice"]]
        q = _score(load_image(choice.run_dir / "best_output.png"), self.problem)[1]
        what = "the final rung's single choice" + (" (the default network)" if pick["default"] else "")
        stages.append(Stage("pick", what, pick["stopped_iter"] or pick["iters_run"], pick["psnr"], q, pick["score"]))
        return stages

    def _search_stages(self, choice: Choice, root: Path) -> list[Stage]:
        best = choice.ranked[0].evaluation
        if best is None:  # no search ran
            return []
        folder = str(choice.run_dir.relative_to(root))
        stages = []
        if choice.default is not None:
            d = choice.default
            stages.append(
                Stage(
                    "default (search)",
                    "the default network at the search budget",
                    d.iters_run,
                    d.psnr,
                    None,
                    d.fitness,
                    folder,
                )
            )
        stages.append(
            Stage(
                "search winner",
                "best candidate at the search budget",
                best.iters_run,
                best.psnr,
                None,
                best.fitness,
                folder,
            )
        )
        return stages

    def _summary(
        self, choice: Choice, stages: list[Stage], k: int, image: torch.Tensor, seconds: float, root: Path
    ) -> dict[str, Any]:
        p, q = _score(image, self.problem)
        summary, ensemble = choice.summary, choice.summary.get("ensemble")
        pick = next(f for f in summary["final"] if f["index"] == summary["final_choice"])
        out: dict[str, Any] = {
            "search": self.settings.search,
            "budget": self.budget_name,
            "space": self.space.name,
            "candidates": len(choice.ranked),
            "ensemble": k,
            "weighting": ensemble["method"] if ensemble and k > 1 else None,
            "weights": [m["weight"] for m in ensemble["members"]] if ensemble and k > 1 else [1.0],
            "stop": self.stop.detector if self.stop else "none",
            # every member's stop: the finalists (the default first), then the restarts
            "stopped_iters": [m["stopped_iter"] for m in _members(summary)],
            "members": _members(summary),
            "winner_genome": pick["genome"],
            "winner_fitness": pick["score"],
            "winner_is_default": pick["default"],
            "search_run": str(choice.run_dir.relative_to(root)),
            "seconds": round(seconds, 2),
        }
        if p is not None:
            out.update(psnr_observed=baseline_psnr(self.problem), psnr_restored=p, ssim_restored=q)
            out["stages"] = {st.stage: st.psnr for st in stages}
        out.update(choice.extra)
        return out


def _member_rows(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The final rung's fits with their stage names: the finalists (the default first), then the restarts."""
    rows = sorted(summary["final"], key=lambda f: not f["default"])
    named = [("default" if f["default"] else f"finalist #{i}", f) for i, f in enumerate(rows)]
    return named + [(f"restart #{r['restart']}", r) for r in summary.get("restarts", [])]


def _members(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """Each final-rung fit: its stage name, stop, held-out fitness and ensemble weight (None: not averaged)."""
    ensemble = summary.get("ensemble")
    weights = {m["key"]: m["weight"] for m in ensemble["members"]} if ensemble else {}
    return [
        {
            "stage": name,
            "stopped_iter": row["stopped_iter"],
            "iters_run": row["iters_run"],
            "fitness": row["score"],
            "weight": weights.get(row["key"]),
        }
        for name, row in _member_rows(summary)
    ]
