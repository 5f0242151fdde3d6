"""Genetic architecture search with DEAP: (mu + lambda), tournament mating, checkpoint after every generation.

The loop is explicit (not deap.algorithms.eaMuPlusLambda) so that it can checkpoint and resume:
  generation 0: the space's default genome + (mu - 1) random genomes, evaluated;
  generation g: lambda offspring, each from crossover (prob cxpb), mutation (prob mutpb) or a copy of
  tournament-chosen parents; the new ones are evaluated; the best mu distinct architectures of
  parents + offspring survive (truncation, the classic (mu + lambda) rule); hall of fame and logbook
  are updated; then ga_state.json (population, hall of fame, logbook, random state, generation) is
  written atomically.
A child whose architecture was generated before is drawn again (up to NOVEL_TRIES times), and identical
architectures are fitted once (the run's evaluation cache, SearchRecord, keyed by Candidate.key).
Determinism: all randomness comes from one `random.Random(seed)` on the driver; evaluations go to the
executor and are consumed in submission order, and each candidate carries its own fit seed and torch
thread count (CPU float results depend on it), so a seeded search gives the same result with any number
of workers. A resumed run replays the same random stream from the checkpoint and finds the candidates the
killed run had finished in the evaluation cache.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from dataclasses import InitVar, asdict, dataclass, field
from typing import Any

from deap import base, creator, tools

from ...errors import ArgumentError
from ...nets.space import Genome, SearchSpace
from ...scoring.evaluate import Candidate, Evaluation, evaluate
from ...scoring.executors import InProcessExecutor
from ..base import evaluation_result
from ..display import GAObserver, NullObserver
from ..record import SearchRecord
from ..rungs import Notify, RungPlan, RungRunner
from ..rungs import finish as finish_rungs
from . import checkpoint
from .operators import CROSSOVERS, crossover, mutate
from .plot import plot_generations

NOVEL_TRIES = 10
PLOT_EVERY_S = 30.0


def individual_class() -> type:
    """DEAP's creator classes are module globals of deap.creator: create them once, under our own names."""
    if not hasattr(creator, "DipsearchFitness"):
        creator.create("DipsearchFitness", base.Fitness, weights=(1.0,))
    if not hasattr(creator, "DipsearchIndividual"):
        creator.create("DipsearchIndividual", dict, fitness=creator.DipsearchFitness)
    return creator.DipsearchIndividual


@dataclass
class GAConfig:
    pop: int = 8  # mu: survivors per generation
    offspring: int | None = None  # lambda: children per generation (default: pop)
    gens: int = 5  # generations after the initial population
    cxpb: float = 0.4
    mutpb: float = 0.6  # cxpb + mutpb <= 1; the rest are plain copies
    tournament: int = 3
    crossover: str = "level"
    indpb: float | None = None  # per-gene mutation probability (default: two active genes expected)
    mutation_step: float = 0.2  # Gaussian mutation step, as a fraction of a numeric gene's (log) range
    hof: int = 5
    seed: int = 0
    sigma: InitVar[float | None] = None  # the earlier name of mutation_step (and the key in older run folders)

    def __post_init__(self, sigma: float | None) -> None:
        self._step_argument = "mutation_step"  # errors name the argument the caller gave
        if sigma is not None:
            self.mutation_step, self._step_argument = sigma, "sigma"

    @property
    def lam(self) -> int:
        return self.pop if self.offspring is None else self.offspring

    def check(self) -> None:
        problems = [
            (self.pop >= 2, "{pop} must be >= 2, got {value}", self.pop),
            (self.lam >= 1, "{offspring} must be >= 1, got {value}", self.offspring),
            (self.gens >= 0, "{gens} must be >= 0, got {value}", self.gens),
            (
                0 <= self.cxpb and 0 <= self.mutpb and self.cxpb + self.mutpb <= 1,
                "{cxpb} and {mutpb} must be >= 0 with cxpb + mutpb <= 1, got {value}",
                f"{self.cxpb} and {self.mutpb}",
            ),
            (self.tournament >= 1, "{tournament} must be >= 1, got {value}", self.tournament),
            (self.crossover in CROSSOVERS, "{crossover} must be one of {choices}, got {value!r}", self.crossover),
            (self.indpb is None or 0 < self.indpb <= 1, "{indpb} must be in (0, 1], got {value}", self.indpb),
            (self.mutation_step > 0, f"{{{self._step_argument}}} must be > 0, got {{value}}", self.mutation_step),
            (self.hof >= 1, "{hof} must be >= 1, got {value}", self.hof),
        ]
        for ok, template, value in problems:
            if not ok:
                raise ArgumentError(template, value=value, choices=", ".join(CROSSOVERS))
        from ..limits import check_fits

        check_fits(self.pop + self.gens * self.lam, "{pop} {p} and {gens} {g}", p=self.pop, g=self.gens)


@dataclass
class GAResult:
    best: Genome
    best_evaluation: Evaluation
    hall_of_fame: list[tuple[Genome, Evaluation]]
    logbook: list[dict[str, Any]]
    summary: dict[str, Any] = field(default_factory=dict)
    selection: Any = None  # rungs.Selection of a multi-fidelity search: the finalists and the final choice


def _finite(values: list[float]) -> list[float]:
    return [v for v in values if math.isfinite(v)]


def _mean(values: list[float]) -> float | None:
    good = _finite(values)
    return sum(good) / len(good) if good else None


class GASearch:
    """One GA run over `space`, recorded in `record`'s run folder; run() starts or resumes it."""

    def __init__(
        self,
        space: SearchSpace,
        make_candidate: Callable[[Genome, int], Candidate],
        record: SearchRecord,
        executor: Executor,
        config: GAConfig,
        observer: GAObserver | None = None,
        evaluate_fn: Callable[[Candidate], Evaluation] = evaluate,
        plan: RungPlan | None = None,
        notify: Notify | None = None,
        initial: list[Genome] | None = None,
    ):
        config.check()
        self.initial = list(initial or [])  # generation 0 starts from these (dipsearch.preselect.seeding)
        self.space, self.make_candidate, self.record = space, make_candidate, record
        self.executor, self.config, self.evaluate_fn = executor, config, evaluate_fn
        self.observer = observer or NullObserver()
        self.plan, self.notify = plan, notify  # plan None: the screening's best is the answer (no rungs)
        self.Individual = individual_class()
        self.rng = random.Random(config.seed)
        self.toolbox = self._toolbox()
        self.hof = tools.HallOfFame(config.hof, similar=lambda a, b: self.key(a) == self.key(b))
        self.logbook = tools.Logbook()
        self.stats = tools.Statistics(key=lambda ind: ind.fitness.values[0])
        self.stats.register("best", max)
        self.stats.register("mean", _mean)
        self.next_index = self.first_index = record.next_index()
        self.seconds = 0.0
        self._keys: dict[tuple, str] = {}
        self._plotted = -math.inf
        self.seen: set[str] = set()  # keys of every genome the driver generated so far
        self.fitness_name = make_candidate(space.default(), -1).fitness

    # ------------------------------------------------------------------ operators (the DEAP toolbox)

    def _toolbox(self) -> base.Toolbox:
        cfg, tb = self.config, base.Toolbox()
        tb.register("mate", crossover, self.space, rng=self.rng, kind=cfg.crossover)
        tb.register("mutate", mutate, self.space, rng=self.rng, indpb=cfg.indpb, sigma=cfg.mutation_step)
        tb.register("select_parent", self._tournament, size=cfg.tournament)
        tb.register("select", self._survivors)
        return tb

    def _tournament(self, population: list, size: int) -> Any:
        # DEAP's selTournament draws from the global `random`; this one uses the driver's rng.
        entrants = [population[self.rng.randrange(len(population))] for _ in range(size)]
        return max(entrants, key=lambda ind: ind.fitness.values[0])

    def _survivors(self, pool: list, mu: int) -> list:
        """The best mu distinct architectures (stable sort: ties keep pool order); duplicates only to fill."""
        ranked = sorted(pool, key=lambda ind: ind.fitness.values[0], reverse=True)
        seen, unique, spare = set(), [], []
        for ind in ranked:
            (spare if self.key(ind) in seen else unique).append(ind)
            seen.add(self.key(ind))
        return (unique + spare)[:mu]

    def key(self, genome: Genome) -> str:
        """The evaluation-cache key of a genome (decoded architecture + budget), memoised."""
        frozen = tuple(genome.items())
        if frozen not in self._keys:
            self._keys[frozen] = self.make_candidate(dict(genome), -1).key
        return self._keys[frozen]

    def _offspring(self, population: list) -> list:
        """lambda children. A varied child whose architecture was already generated is drawn again (up to
        NOVEL_TRIES times): with costly fits, a generation of cache hits would be a wasted generation.
        `seen` only grows on the driver, from the random stream, so a resumed run redraws the same children."""
        out = []
        for _ in range(self.config.lam):
            for _ in range(NOVEL_TRIES):
                child = self._child(population)
                if child.fitness.valid or self.key(child) not in self.seen:
                    break
            self.seen.add(self.key(child))
            out.append(child)
        return out

    def _child(self, population: list) -> Any:
        cfg, tb = self.config, self.toolbox
        draw = self.rng.random()
        if draw < cfg.cxpb:
            return self.Individual(tb.mate(tb.select_parent(population), tb.select_parent(population))[0])
        if draw < cfg.cxpb + cfg.mutpb:
            return self.Individual(tb.mutate(tb.select_parent(population)))
        parent = tb.select_parent(population)
        child = self.Individual(parent)
        child.fitness.values = parent.fitness.values
        return child

    # ------------------------------------------------------------------ evaluation

    def _evaluate(self, individuals: list, gen: int) -> dict[str, int]:
        """Give every individual without a fitness one: from the cache, or by a fit on the executor."""
        waiting: dict[str, list] = {}
        jobs: list[Candidate] = []
        cached = 0
        for ind in individuals:
            if ind.fitness.valid:
                continue
            key = self.key(ind)
            known = self.record.lookup(key)
            if known is not None:
                ind.fitness.values = (known.search_value,)
                cached += 1
            elif key in waiting:
                waiting[key].append(ind)
                cached += 1
            else:
                waiting[key] = [ind]
                jobs.append(self.make_candidate(dict(ind), self.next_index))
                self.next_index += 1
        self.observer.generation_started(gen, self.config.gens, len(jobs), cached)
        # In-process execution happens at submit time: submit one at a time so each result is logged at
        # once. Real pools get every job up front. Either way results are consumed in submission order.
        window = 1 if isinstance(self.executor, InProcessExecutor) else max(1, len(jobs))
        pending: deque[tuple[str, Future]] = deque()
        failed = 0
        queue = deque(jobs)
        while queue or pending:
            while queue and len(pending) < window:
                job = queue.popleft()
                pending.append((job.key, self.executor.submit(self.evaluate_fn, job)))
            key, future = pending.popleft()
            evaluation = evaluation_result(future)
            self.record.add(evaluation, {"generation": gen})
            evaluation.image = None  # written as best_output.png if it was the best; do not hoard images
            failed += evaluation.fitness is None
            for ind in waiting[key]:
                ind.fitness.values = (evaluation.search_value,)
            self.observer.evaluated(evaluation, self.record.best)
        return {"fits": len(jobs), "cached": cached, "failed": failed}

    # ------------------------------------------------------------------ the loop

    def run(self) -> GAResult:
        start = time.perf_counter()
        gen, population = self._restore()
        if population is None:
            population = [self.Individual(g) for g in self.initial[: self.config.pop]]
            population = population or [self.Individual(self.space.default())]
            population += [
                self.Individual(self.space.sample(self.rng)) for _ in range(self.config.pop - len(population))
            ]
            self.seen.update(self.key(ind) for ind in population)
            counts = self._evaluate(population, 0)
            self.hof.update(population)
            self._close_generation(0, population, counts, start)
        while gen < self.config.gens:
            gen += 1
            offspring = self._offspring(population)
            counts = self._evaluate(offspring, gen)
            population = self.toolbox.select(population + offspring, self.config.pop)
            self.hof.update(offspring)
            self._close_generation(gen, population, counts, start)
        return self._finish(gen, start)

    def _close_generation(self, gen: int, population: list, counts: dict[str, int], start: float) -> None:
        best = self.record.lookup(self.key(self.hof[0]))
        stats = {
            k: (v if v is not None and math.isfinite(v) else None) for k, v in self.stats.compile(population).items()
        }
        row = {
            "gen": gen,
            **counts,
            **stats,
            "best_ever": best.fitness if best else None,
            "best_psnr": best.psnr if best else None,
            "evaluations": len(self.record),
            "seconds": self._elapsed(start),
        }
        self.logbook.record(**row)
        self.record.run.write_csv("generations.csv", list(self.logbook))
        if time.perf_counter() - self._plotted > PLOT_EVERY_S:  # a plot costs ~0.3 s: not after every quick generation
            self._plot()
        self._checkpoint(gen, population, start)  # last: the commit point of this generation
        self.observer.generation_done(row)

    def _plot(self) -> None:
        plot_generations(list(self.logbook), self.record.run.file("fitness.png"), self.fitness_name)
        self._plotted = time.perf_counter()

    def _elapsed(self, start: float) -> float:
        return round(self.seconds + time.perf_counter() - start, 3)

    def _finish(self, gen: int, start: float) -> GAResult:
        best_eval = self.record.lookup(self.key(self.hof[0]))
        default = self.record.lookup(self.key(self.space.default()))
        finished = self.record.run.file("summary.json")
        # A finished run resumed without new generations keeps its summary: its figures (the wall time above
        # all) describe the run that made them, not this replay from the cache.
        keep = finished.is_file() and self.record.next_index() == self.first_index
        summary = self.record.summary(
            generations=gen,
            seconds=None,
            default_fitness=default.fitness if default else None,
            default_psnr=default.psnr if default else None,
            best_genome=None,
        )
        best, selection = dict(self.hof[0]), None
        if best_eval.fitness is not None:  # when every candidate failed there is no best, only failures
            summary.update(best_genome=dict(self.hof[0]), best_key=best_eval.key, best_params=best_eval.params)
            # The hall of fame's best, not the log's first-seen: they are the same architecture and fitness.
            summary.update(best_fitness=best_eval.fitness, best_psnr=best_eval.psnr)
            if self.plan is not None:
                selection = RungRunner(
                    self.space,
                    self.make_candidate,
                    self.record,
                    self.executor,
                    self.plan,
                    self.evaluate_fn,
                    self.notify,
                ).run()
                summary.update(finish_rungs(self.record, selection, self.plan))
                best, best_eval = selection.choice.genome, selection.choice.evaluation
        # The wall time of the whole run: every session's generations and the rungs, not the screening alone.
        summary["seconds"] = self._elapsed(start)
        if keep:
            summary = json.loads(finished.read_text())
        else:
            self.record.run.write_json("summary.json", summary)
        self._plot()
        hall = [(dict(ind), self.record.lookup(self.key(ind))) for ind in self.hof]
        return GAResult(best, best_eval, hall, list(self.logbook), summary, selection)

    # ------------------------------------------------------------------ checkpoint

    def _checkpoint(self, gen: int, population: list, start: float) -> None:
        checkpoint.save(
            self.record.run,
            {
                "generation": gen,
                "config": asdict(self.config),
                "population": checkpoint.dump(population),
                "hall_of_fame": checkpoint.dump(list(self.hof)),
                "logbook": list(self.logbook),
                "random_state": checkpoint.rng_state(self.rng),
                "seconds": self._elapsed(start),
                "seen": sorted(self.seen),
            },
        )

    def _restore(self) -> tuple[int, list | None]:
        """(last finished generation, population) from the checkpoint, or (0, None) for a fresh start."""
        state = checkpoint.load(self.record.run)
        if state is None:
            return 0, None
        checkpoint.set_rng_state(self.rng, state["random_state"])
        self.hof.update(checkpoint.restore(state["hall_of_fame"], self._individual))
        for row in state["logbook"]:
            self.logbook.record(**row)
        self.seconds = float(state.get("seconds", 0.0))
        self.seen = set(state["seen"])
        return int(state["generation"]), checkpoint.restore(state["population"], self._individual)

    def _individual(self, genome: Genome) -> Any:
        self.space.validate(genome)  # the space is the run's own copy: a mismatch means a damaged folder
        return self.Individual(genome)
