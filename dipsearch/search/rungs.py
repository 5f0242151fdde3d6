"""Multi-fidelity selection, shared by the GA and the Bayesian search: promotion rungs and a final rung.

A searcher screens many candidates cheaply (its own loop: short fits scored by the promotion fitness). A
short fit rewards networks that fit fast, not those that restore best at full budget, so the choice is
not made there. Successive halving takes over:
  rung 1..n (optional, `budgets`): the best `final * eta^k` screened candidates are refitted at a longer
      budget and re-ranked by the same fitness;
  final rung: the best `final` candidates, with the space's default genome always among them, are fitted
      at the full budget with online stopping (default auto, the stopping that held across networks), and
      scored by the GT-free fitness of the stopped output (held-out PSNR). The best of these is the
      search's single pick, so a search never picks a network its own GT-free measure rates below the default.
      With the holdout fitness a finalist must also beat the default significantly: on the same held-out
      pixels, the paired difference of squared errors must favour it by `margin` standard errors. A held-out
      set of a small image is a few hundred noisy values, and the default is a strong network: a finalist
      that is better by chance would otherwise replace it as often as not.
  ensemble: the search's other answer is a weighted average of the finalists' stopped outputs (search/ensemble.py),
      the default always a member, optionally with `restarts` refits of the chosen network with other seeds.
      The finalists withhold the same pixels (they share the search's seed), which the paired test needs. A
      restart withholds the pixels of its own seed (`splits` "own"), so no pixel is missing from every member,
      or the finalists' (`splits` "shared"), so the weights are judged on values none of them was fitted on. It is
      written as ensemble.png, its members, weights and scores in summary.json.
Every rung fit is logged in evaluations.jsonl with its rung and budget (the key includes budget and
stopping), so a killed search resumes inside a rung without refitting finished candidates.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import dataclass, field, replace
from typing import Any

from ..errors import ArgumentError, DipsearchError
from ..nets.space import Genome, SearchSpace
from ..scoring.evaluate import Candidate, Evaluation, evaluate
from ..scoring.executors import InProcessExecutor
from ..stopping.spec import StopSpec
from .ensemble import Ensemble, check_weighting, ensemble_weights, held_out_values, make_ensemble, own_splits
from .member_batches import batches, check_replicas_mode, evaluate_members
from .record import SearchRecord
from .result import ENSEMBLE_IMAGE

FINAL = "final"
SPLITS = ("own", "shared")


@dataclass
class RungPlan:
    final: int = 3  # candidates in the final rung (K), the default genome included
    final_iters: int = 2400  # the full budget: `dipsearch fit`'s default
    # stopping in the final rung (its dict form accepted); None: none, the averaged output at the full budget is
    # scored
    # auto, the recommended stopping (stopping/auto.py): EMV stopped half of the searched networks within the first
    # 200 iterations; the members it stopped made the ensemble 0.5 dB worse than the default on average, the
    # recommended stopping's members 0.4 dB better (bench/search_vs_default.py)
    stop: StopSpec | None = field(default_factory=lambda: StopSpec("auto"))
    budgets: tuple[int, ...] = ()  # promotion rungs between the screening and the final rung
    eta: int = 3  # each earlier rung holds eta times as many candidates as the next
    margin: float = 1.64  # z a finalist needs over the default on the held-out pixels (one-sided 5 %)
    # How the ensemble weighs its members (ensemble.WEIGHTINGS); None: fitted where the fitness holds pixels out,
    # else equal.
    weights: str | None = None
    restarts: int = 0  # extra ensemble members: refits of the chosen finalist with the next seeds
    # the held-out split of a restart: "own" (its seed's) or "shared" (the finalists'); own measured better
    # (docs/guide/ensembles.md)
    splits: str = "own"
    # fits of one network (restarts; the default and its restarts without a search) as one batch of replicas:
    # auto, on or off (search/member_batches.py)
    replicas: str = "auto"

    def __post_init__(self) -> None:
        self.stop = StopSpec.of(self.stop)

    def check(self) -> None:
        budgets = list(self.budgets)
        problems = [
            (
                self.final >= 2,
                (
                    "{final} must be >= 2 (the default genome takes one place), got {value}; {final:0} turns "
                    "the final rung off",
                    self.final,
                ),
            ),
            (self.eta >= 2, ("{eta} must be >= 2, got {value}", self.eta)),
            (self.margin >= 0, ("{margin} must be >= 0, got {value}", self.margin)),
            (self.restarts >= 0, ("{restarts} must be >= 0, got {value}", self.restarts)),
            (all(b >= 1 for b in budgets), ("{budgets} budgets must be >= 1, got {value}", budgets)),
            (budgets == sorted(set(budgets)), ("{budgets} budgets must increase, got {value}", budgets)),
            (
                self.final_iters > max(budgets, default=0),
                ("{final_iters} ({value}) must exceed every {budgets} budget ({budgets_given})", self.final_iters),
            ),
        ]
        for ok, (template, value) in problems:
            if not ok:
                raise ArgumentError(template, value=value, budgets_given=budgets)
        if self.weights is not None:
            check_weighting(self.weights)
        check_replicas_mode(self.replicas)
        if self.splits not in SPLITS:
            raise ArgumentError(
                "{splits} must be one of {names}, got {value}", value=self.splits, names=", ".join(SPLITS)
            )
        if self.weights == "fitted" and self.splits == "own" and self.restarts > 0:
            raise ArgumentError(
                "{weights} fitted needs every ensemble member on one held-out split, and restarts withhold their "
                "own ({splits} own); use {splits} shared or {weights} inverse-mse"
            )

    def check_weights(self, fitness: Any) -> None:
        """Weights other than equal are judged on held-out pixels: the search's fitness must withhold some."""
        from ..scoring.fitness import HoldoutFitness

        if self.weights not in (None, "equal") and not isinstance(fitness, HoldoutFitness):
            ensemble_weights(self.weights, None, 1)  # raises the one message for weights without held-out pixels

    def sizes(self) -> list[int]:
        """Candidates per rung after the screening: promotion rungs, then the final one."""
        n = len(self.budgets)
        return [self.final * self.eta ** (n - i) for i in range(n)] + [self.final]

    def to_dict(self) -> dict[str, Any]:
        return {
            "final": self.final,
            "final_iters": self.final_iters,
            "stop": self.stop.to_dict() if self.stop is not None else {"detector": "none"},
            "budgets": list(self.budgets),
            "eta": self.eta,
            "margin": self.margin,
            "weights": self.weights,
            "restarts": self.restarts,
            "splits": self.splits,
            "replicas": self.replicas,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RungPlan:
        return cls(
            final=int(data["final"]),
            final_iters=int(data["final_iters"]),
            stop=StopSpec.of(data["stop"]),
            budgets=tuple(int(b) for b in data.get("budgets", ())),
            eta=int(data.get("eta", 3)),
            margin=float(data.get("margin", cls.margin)),
            weights=data.get("weights"),
            restarts=int(data.get("restarts", 0)),
            splits=data.get("splits", "shared"),  # what plans written before the choice existed did
            replicas=data.get("replicas", "auto"),
        )


@dataclass
class Finalist:
    genome: Genome
    evaluation: Evaluation
    default: bool
    screen_fitness: float | None
    z: float | None = None  # paired held-out advantage over the default in standard errors (> 0: better)
    restart: int | None = None  # the seed offset of a restart of the chosen finalist (None: a finalist)
    split: int | None = None  # the seed of the pixels its fit withheld (None: the search's)

    def row(self) -> dict[str, Any]:
        e = self.evaluation
        return {
            "index": e.index,
            "key": e.key,
            "default": self.default,
            "score": e.fitness,
            "psnr": e.psnr,
            "stopped_iter": e.stopped_iter,
            "iters_run": e.iters_run,
            "params": e.params,
            "screen_fitness": self.screen_fitness,
            "z_vs_default": self.z,
            "restart": self.restart,
            "split": self.split,
            "error": e.error,
            "genome": self.genome,
        }


@dataclass
class Selection:
    choice: Finalist
    finalists: list[Finalist]
    rungs: list[dict[str, Any]]  # one row per rung: budget, candidates, fits, cached
    ensemble: Ensemble | None = None
    restarts: list[Finalist] = field(default_factory=list)

    def members(self) -> list[Finalist]:
        """The ensemble's members (successful finalists and restarts), in the order of its weights."""
        if self.ensemble is None:
            return []
        by_key = {f.evaluation.key: f for f in (*self.finalists, *self.restarts)}
        return [by_key[key] for key in self.ensemble.keys]

    def ensemble_summary(self) -> dict[str, Any] | None:
        if self.ensemble is None:
            return None
        members = [
            {
                "index": f.evaluation.index,
                "key": f.evaluation.key,
                "default": f.default,
                "restart": f.restart,
                "weight": round(w, 6),
                "score": f.evaluation.fitness,
                "psnr": f.evaluation.psnr,
            }
            for f, w in zip(self.members(), self.ensemble.weights)
        ]
        return {**self.ensemble.to_dict(), "members": members}

    def summary(self) -> dict[str, Any]:
        """The summary.json fields of a multi-fidelity search."""
        default = next((f for f in self.finalists if f.default), None)
        ensemble = self.ensemble_summary()
        return {
            "selection": "final rung",
            "rungs": self.rungs,
            "final": [f.row() for f in self.finalists],
            "final_choice": self.choice.evaluation.index,
            "final_choice_is_default": self.choice.default,
            "final_default_score": default.evaluation.fitness if default else None,
            "final_default_psnr": default.evaluation.psnr if default else None,
            "restarts": [f.row() for f in self.restarts],
            "ensemble": ensemble,
            "ensemble_psnr": ensemble["psnr"] if ensemble else None,
            "ensemble_heldout_psnr": ensemble["heldout_psnr"] if ensemble else None,
        }


Rank = list[tuple[Genome, Evaluation]]
Notify = Callable[[str, Evaluation], None]


class RungRunner:
    """Runs the rungs after a searcher's screening, on its executor, into its run record."""

    def __init__(
        self,
        space: SearchSpace,
        make_candidate: Callable[[Genome, int], Candidate],
        record: SearchRecord,
        executor: Executor,
        plan: RungPlan,
        evaluate_fn: Callable[[Candidate], Evaluation] = evaluate,
        notify: Notify | None = None,
        watch: Any = None,
    ):
        self.space, self.make_candidate, self.record = space, make_candidate, record
        self.executor, self.plan, self.evaluate_fn = executor, plan, evaluate_fn
        self.notify = notify or (lambda label, evaluation: None)
        # watch.hook(name, candidate) -> a FitHook that shows a final-rung fit as it runs (in-process executors)
        self.watch = watch

    def candidate(
        self, genome: Genome, budget: int, stop: StopSpec | None, index: int, scale: float | None = None
    ) -> Candidate:
        """The genome's candidate at a rung's budget: the rung sets the iterations, over a space's iters gene."""
        base = self.make_candidate(dict(genome), index)
        settings = {k: v for k, v in base.fit_settings.items() if k != "iters"}
        return replace(
            base,
            iters=budget,
            fit_settings=settings,
            stop=stop if stop is not None else base.stop,
            reporter=None,
            scale=base.scale if scale is None else scale,
        )

    def screened(self) -> Rank:
        """The screening's distinct candidates by fitness, best first (failed and pruned fits excluded; ties
        keep the order of evaluation)."""
        done = [
            e
            for e in self.record.cache.values()
            if e.fitness is not None and not e.pruned and math.isfinite(e.search_value)
        ]
        done.sort(key=lambda e: (-e.search_value, e.index))
        return [(e.genome, e) for e in done]

    def run(self) -> Selection:
        ranked = self.screened()
        rows = [
            {
                "rung": 0,
                "budget": self.make_candidate(self.space.default(), -1).iters,
                "candidates": len(ranked),
                "label": "screening",
            }
        ]
        sizes = self.plan.sizes()
        for number, (budget, size) in enumerate(zip(self.plan.budgets, sizes), 1):
            promoted = ranked[:size]
            results, counts = self._run_rung(
                str(number), [(g, self.candidate(g, budget, None, -1)) for g, _ in promoted]
            )
            ranked = sorted(zip([g for g, _ in promoted], results), key=lambda ge: -ge[1].search_value)
            rows.append({"rung": number, "budget": budget, "candidates": len(promoted), **counts})
        finalists = self._finalists(ranked, sizes[-1])
        started = time.perf_counter()
        # the full budget at full scale: what the user's refit does
        jobs = [(g, self.candidate(g, self.plan.final_iters, self.plan.stop, -1, scale=1.0)) for g, _, _ in finalists]
        names = ["default" if is_default else f"finalist #{i}" for i, (_, is_default, _) in enumerate(finalists)]
        # A single finalist is the pick before it is fitted: its restarts join its rung, to be fitted with it as one
        # batch (the same fits, logged in the same order, as when they follow it)
        early = self._restart_jobs(finalists[0][0], jobs[0][1].seed) if len(finalists) == 1 else []
        results, counts = self._run_rung(FINAL, [*jobs, *[job for job, _ in early]], [*names, *self._restart_names()])
        early_results, results = results[len(jobs) :], results[: len(jobs)]
        rows.append(
            {
                "rung": FINAL,
                "budget": self.plan.final_iters,
                "candidates": len(jobs),
                "stop": self.plan.stop.detector if self.plan.stop is not None else "none",
                "margin": self.plan.margin,
                **counts,
            }
        )
        out = [Finalist(g, e, is_default, screen) for (g, is_default, screen), e in zip(finalists, results)]
        self._paired_with_default(out, [job for _, job in jobs])
        choice = self._choose(out)
        if choice.evaluation.fitness is None:
            errors = "; ".join(sorted({f.evaluation.error or "failed" for f in out}))
            raise DipsearchError(f"every fit of the final rung failed ({errors})")
        if early:
            restarts = [
                Finalist(choice.genome, e, choice.default, None, restart=offset, split=split)
                for offset, (e, (_, split)) in enumerate(zip(early_results, early), 1)
            ]
        else:
            restarts = self._restarts(choice, jobs[0][1].seed)
        if restarts:
            rows[-1]["restarts"] = len(restarts)
        rows[-1]["seconds"] = round(time.perf_counter() - started, 2)  # the finalists' and restarts' fits
        ensemble = self._ensemble([*out, *restarts], jobs[0][1])
        return Selection(choice, out, rows, ensemble, restarts)

    def _restart_jobs(self, genome: Genome, seed: int) -> list[tuple[tuple[Genome, Candidate], int]]:
        """The jobs of the restarts of `genome` with the next seeds and the seed of the split each withholds."""
        jobs = []
        for offset in range(1, self.plan.restarts + 1):
            job = self.candidate(genome, self.plan.final_iters, self.plan.stop, -1, scale=1.0)
            split = seed + offset if self.plan.splits == "own" else seed
            # holdout_seed None: the split of the fit's own seed (and the candidate key of any other such fit)
            jobs.append(
                ((genome, replace(job, seed=seed + offset, holdout_seed=None if split != seed else seed)), split)
            )
        return jobs

    def _restart_names(self) -> list[str]:
        return [f"restart #{offset}" for offset in range(1, self.plan.restarts + 1)]

    def _restarts(self, choice: Finalist, seed: int) -> list[Finalist]:
        """Refits of the chosen finalist with the next seeds, each withholding its own pixels or the finalists'."""
        if self.plan.restarts == 0:
            return []
        jobs = self._restart_jobs(choice.genome, seed)
        results, _ = self._run_rung(FINAL, [job for job, _ in jobs], self._restart_names())
        return [
            Finalist(choice.genome, e, choice.default, None, restart=offset, split=split)
            for offset, (e, (_, split)) in enumerate(zip(results, jobs), 1)
        ]

    def _ensemble(self, candidates: list[Finalist], job: Candidate) -> Ensemble | None:
        """The weighted average of the members' stopped outputs (as kept in final/), by the plan's weighting;
        the other weightings' scores beside it, for comparison."""
        from ..scoring.fitness import make_fitness

        members = [
            (f, image)
            for f in candidates
            if f.evaluation.fitness is not None and (image := self.record.final_image(f.evaluation.key)) is not None
        ]
        if not members:
            return None
        keys = [f.evaluation.key for f, _ in members]
        images = [image for _, image in members]
        splits = [job.seed if f.split is None else f.split for f, _ in members]
        fitness = make_fitness(job.fitness)
        if len(set(splits)) == 1:  # every member withheld these pixels: the weights are judged on them
            values = held_out_values(fitness, job.problem, splits[0], images)
        else:
            values = own_splits(fitness, job.problem, splits, images)
        return make_ensemble(keys, images, values, self.plan.weights, job.problem.clean)

    def _choose(self, finalists: list[Finalist]) -> Finalist:
        """The best finalist by the final score among the default and those that beat it by the margin (when
        a paired comparison exists); the first of equals is the better-ranked one."""
        default = next(f for f in finalists if f.default)
        if default.evaluation.fitness is None:
            eligible = finalists
        else:
            eligible = [
                f
                for f in finalists
                if f.default
                or (
                    f.evaluation.search_value > default.evaluation.search_value
                    and (f.z is None or f.z >= self.plan.margin)
                )
            ]
        return max(eligible, key=lambda f: f.evaluation.search_value)

    def _paired_with_default(self, finalists: list[Finalist], jobs: list[Candidate]) -> None:
        """Each finalist's held-out advantage over the default, in standard errors of the paired difference."""
        from ..scoring.fitness import make_fitness

        fitness = make_fitness(jobs[0].fitness)
        if not fitness.paired:
            return
        prepared = fitness.prepare(jobs[0].problem, jobs[0].seed)
        errors = {}
        for f, job in zip(finalists, jobs):
            image = self.record.final_image(job.key)
            if image is not None and f.evaluation.fitness is not None:
                errors[id(f)] = fitness.residuals(image, prepared)
        default = next(f for f in finalists if f.default)
        if id(default) not in errors:
            return
        for f in finalists:
            if f.default or id(f) not in errors:
                continue
            d = errors[id(default)] - errors[id(f)]  # > 0 where the finalist is closer to the held-out values
            se = float(d.std()) / math.sqrt(d.numel())
            f.z = float(d.mean()) / se if se > 0 else (math.inf if float(d.mean()) > 0 else 0.0)

    def _finalists(self, ranked: Rank, size: int) -> list[tuple[Genome, bool, float | None]]:
        """The top `size` of the ranking, with the default genome always among them (it takes the last place
        when it did not earn one)."""
        default = self.space.default()
        default_key = self.make_candidate(default, -1).key
        is_default = [self.make_candidate(g, -1).key == default_key for g, _ in ranked]
        top = list(range(min(size, len(ranked))))
        if not any(is_default[i] for i in top):
            top = top[: size - 1]
        out = [(ranked[i][0], is_default[i], ranked[i][1].fitness) for i in top]
        if not any(d for _, d, _ in out):
            screened = self.record.lookup(default_key)
            out.append((default, True, screened.fitness if screened else None))
        return out

    def _run_rung(
        self, label: str, jobs: list[tuple[Genome, Candidate]], names: list[str] | None = None
    ) -> tuple[list[Evaluation], dict[str, int]]:
        """Evaluations in job order: from the record when a fit with this key finished before, else fitted (fits
        of one network together as a batch of replicas, as the plan's `replicas` allows). `names`: the jobs'
        names for the watch (final rung)."""
        results: dict[str, Evaluation] = {}
        todo: list[Candidate] = []
        named: dict[str, str] = {}
        cached = 0
        for i, (_, job) in enumerate(jobs):
            if names is not None:
                named.setdefault(job.key, names[i])
            known = self.record.lookup_any(job.key)
            if known is not None:
                results[job.key] = known
                cached += 1
            elif job.key not in results and all(t.key != job.key for t in todo):
                todo.append(replace(job, index=self.record.next_index()))
                self.record.reserve(todo[-1].index)
        in_process = isinstance(self.executor, InProcessExecutor)
        # Only the real evaluation is batched: a caller's own evaluate_fn (a test's, a wrapper) sees every fit.
        mode = self.plan.replicas if label == FINAL and self.evaluate_fn is evaluate else "off"
        groups = batches(todo, mode)
        # In-process execution happens at submit time: one at a time, so that each result is logged at once
        # (a killed search then loses only the fits that were running).
        window = 1 if in_process else max(1, len(groups))
        pending: deque[tuple[list[Candidate], Future]] = deque()
        queue = deque(groups)
        while queue or pending:
            while queue and len(pending) < window:
                group = queue.popleft()
                watchers = [self._watcher(named, job) for job in group] if in_process else []
                if len(group) > 1:
                    future = self.executor.submit(evaluate_members, group, watchers)
                elif watchers and watchers[0]:
                    future = self.executor.submit(self.evaluate_fn, group[0], watchers[0])
                else:
                    future = self.executor.submit(self.evaluate_fn, group[0])
                pending.append((group, future))
            group, future = pending.popleft()
            for job, evaluation in zip(group, _results(future, group)):
                stop = job.stop.to_dict() if job.stop is not None else None
                self.record.add_rung(evaluation, {"rung": label, "budget": job.iters, "stop": stop})
                results[job.key] = evaluation
                self.notify(label, evaluation)
        return [results[job.key] for _, job in jobs], {"fits": len(todo), "cached": cached}

    def _watcher(self, named: dict[str, str], job: Candidate) -> list[Any]:
        if self.watch is None or job.key not in named:
            return []
        return [self.watch.hook(named[job.key], job)]


def rung_printer(console):
    """One line per rung fit, for the searchers' consoles."""
    from ..search.display import _db

    def show(label: str, evaluation) -> None:
        where = "final rung" if label == "final" else f"rung {label}"
        stopped = f", stopped at {evaluation.stopped_iter}" if evaluation.stopped_iter is not None else ""
        psnr = f", true PSNR {_db(evaluation.psnr)}" if evaluation.psnr is not None else ""
        result = f"fitness {_db(evaluation.fitness)} dB" if evaluation.error is None else f"failed: {evaluation.error}"
        console.print(f"{where}: evaluation {evaluation.index} {result}{psnr}{stopped}", highlight=False)

    return show


def _results(future: Future, group: list[Candidate]) -> list[Evaluation]:
    try:
        done = future.result()
    except Exception as err:  # noqa: BLE001 - a lost worker fails these candidates; the rung goes on
        return [Evaluation.lost(job, err) for job in group]
    return done if len(group) > 1 else [done]


def finish(record: SearchRecord, selection: Selection, plan: RungPlan) -> dict[str, Any]:
    """Write the final choice as the run's best (best_arch.toml with the full budget, best_output.png) and the
    ensemble (ensemble.png), and return the summary fields; `best_*` then describe the final choice,
    `screen_best_*` the screening's best, `ensemble*` the ensemble."""
    screen = record.best
    if selection.ensemble is not None:
        record.run.save_image(ENSEMBLE_IMAGE, selection.ensemble.image)
    choice = selection.choice.evaluation
    record.write_best(
        choice,
        fit={"iters": plan.final_iters},
        extra={
            "rung": FINAL,
            "stop": plan.stop.to_dict() if plan.stop is not None else {"detector": "none"},
            "stopped_iter": choice.stopped_iter,
        },
    )
    return {
        **selection.summary(),
        "screen_best_fitness": screen.fitness if screen else None,
        "screen_best_psnr": screen.psnr if screen else None,
        "best_fitness": choice.fitness,
        "best_psnr": choice.psnr,
        "best_genome": choice.genome,
        "best_key": choice.key,
        "best_params": choice.params,
    }
