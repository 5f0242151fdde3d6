"""Pre-selection as one call: sample candidates, score them without training, keep the best, fit those.

`preselect(problem, space, config)` returns every candidate with its scores and, for the kept ones
that were fitted, their Evaluation (the search's own unit of work, dipsearch.scoring.evaluate). The pick is the
best fitness among the fitted ones, or the best score when nothing is fitted. Writing a run folder is
the caller's business (the CLI does it with write_run).
"""

from __future__ import annotations

import random
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ArgumentError, check_at_least
from ..nets.space import SearchSpace
from ..problems.problem import Problem
from ..scoring.evaluate import Candidate, Evaluation, evaluate
from ..scoring.fitness import make_fitness
from .metrics import DEFAULT_METRIC, get_metric
from .scoring import ScoreConfig, Scored, ranked, sample_candidates, score_all


@dataclass(frozen=True)
class PreselectConfig:
    candidates: int = 64
    keep: int = 8
    metric: str = DEFAULT_METRIC
    fit_iters: int = 0  # 0: score only, the pick is the best score
    fitness: str = "holdout"
    inputs: int = 4
    seed: int = 0
    device: str = "auto"
    threads: int | None = None

    def check(self, problem: Problem | None = None) -> None:
        get_metric(self.metric)
        check_at_least("candidates", self.candidates, 1)
        check_at_least("keep", self.keep, 1)
        if self.keep > self.candidates:
            raise ArgumentError(
                "{keep:{keep_value}} is larger than {candidates:{candidates_value}}: keep at most as "
                "many candidates as are scored",
                keep_value=self.keep,
                candidates_value=self.candidates,
            )
        check_at_least("fit_iters", self.fit_iters, 0)
        ScoreConfig(inputs=self.inputs)
        if problem is not None and self.fit_iters:
            make_fitness(self.fitness, problem)  # unknown fitness, or psnr without a clean image


@dataclass
class PreselectResult:
    candidates: list[Scored]  # in sampling order; index = position
    ranking: list[int]  # candidate indices, best score first
    evaluations: dict[int, Evaluation] = field(default_factory=dict)
    seconds_scoring: float = 0.0
    seconds_fitting: float = 0.0
    metric: str = DEFAULT_METRIC
    keep: int = 1

    @property
    def kept(self) -> list[int]:
        return self.ranking[: self.keep]

    @property
    def best(self) -> int:
        fitted = [i for i, e in self.evaluations.items() if e.fitness is not None]
        if fitted:
            return max(fitted, key=lambda i: self.evaluations[i].search_value)
        return self.ranking[0]

    def rank_of(self, index: int) -> int:
        return self.ranking.index(index) + 1


def preselect(
    problem: Problem,
    space: SearchSpace,
    config: PreselectConfig,
    on_scored: Callable[[int], Any] | None = None,
    on_fitted: Callable[[int, Evaluation], Any] | None = None,
) -> PreselectResult:
    config.check(problem)
    candidates = sample_candidates(space, problem, config.candidates, random.Random(config.seed))
    if len(candidates) < config.candidates:
        _, h, w = problem.image_shape
        warnings.warn(
            f"space {space.name!r} gave {len(candidates)} distinct network(s) that fit the {w}x{h} image, fewer "
            f"than the {config.candidates} candidates asked for: scoring those {len(candidates)}",
            stacklevel=2,
        )
    start = time.perf_counter()
    score_all(
        problem,
        candidates,
        ScoreConfig(inputs=config.inputs, seed=config.seed, device=config.device, threads=config.threads),
        on_scored,
    )
    order = {id(c): i for i, c in enumerate(candidates)}
    result = PreselectResult(
        candidates,
        [order[id(c)] for c in ranked(candidates, config.metric)],
        seconds_scoring=time.perf_counter() - start,
        metric=config.metric,
        keep=config.keep,
    )
    if config.fit_iters:
        start = time.perf_counter()
        for index in result.ranking[: config.keep]:
            c = candidates[index]
            evaluation = evaluate(
                Candidate(
                    genome=c.genome,
                    arch=c.spec,
                    problem=problem,
                    iters=config.fit_iters,
                    seed=config.seed,
                    fitness=config.fitness,
                    fit_settings=space.fit_settings(c.genome),
                    device=config.device,
                    index=index,
                    threads=config.threads,
                )
            )
            result.evaluations[index] = evaluation
            if on_fitted is not None:
                on_fitted(index, evaluation)
        result.seconds_fitting = time.perf_counter() - start
    return result
